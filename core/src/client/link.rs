//! The session's connections: their ids, what an adapter reports about them
//! ([`Input`]), and the requests written on them (PROTOCOL §1–3, RFC 6455 §4).
//!
//! One attempt uses two TCP (+TLS) connections, each with its own [`ConnId`]: the first
//! carries the `register.do` HTTP/1.1 exchange and is closed once the answer is read;
//! the second carries the websocket upgrade and then the websocket itself. The session
//! asks for each with [`super::Transmit::Connect`] and forgets it with
//! [`super::Transmit::Close`]; input for any other id (an abandoned connection) is
//! ignored.

use std::fmt;
use std::io;

use super::connect_error::ConnectError;

use crate::charset::Charset;
use crate::endpoint::Endpoint;
use crate::register::{form_content_type, SignedParams, WsConnect};
use crate::ws::handshake::{ClientHandshake, RequestError};

use super::check::CheckedFrame;
use crate::window::{QueryId, WindowAnswer, WindowError};

#[cfg(doc)]
use super::{ClientSession, Transmit};

/// One TCP (+TLS) connection the session asked for with [`Transmit::Connect`]. Every
/// connection gets a new id; ids are never reused within a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// The number behind the id (1 for the session's first connection), for logs.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn-{}", self.0)
    }
}

/// Something that happened to one of the session's connections, or a checked frame
/// coming back, for [`ClientSession::handle_input`]. Input naming a connection that is
/// not the session's current one is ignored (it was abandoned).
#[derive(Debug)]
#[non_exhaustive]
// A checked frame is moved straight in; boxing it would add an allocation per message.
#[allow(clippy::large_enum_variant)]
pub enum Input<'a> {
    /// The connection of a [`Transmit::Connect`] is established (TCP connected and, when
    /// `tls`, the TLS handshake done): the session now writes on it.
    Connected(ConnId),
    /// The connection could not be established (resolution, TCP connect, the proxy's
    /// tunnel, TLS handshake).
    ConnectFailed {
        /// The connection.
        conn: ConnId,
        /// What failed (`io::ErrorKind::into()` for a plain network failure).
        error: ConnectError,
    },
    /// Bytes read from the connection (after TLS), in order. Any split is fine.
    Bytes {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// The connection ended: `error: None` at end of stream (the peer closed), `Some`
    /// when a read or write failed.
    Closed {
        /// The connection.
        conn: ConnId,
        /// The I/O error, if the end was not a clean end of stream.
        error: Option<io::ErrorKind>,
    },
    /// A frame checked by [`super::FrameChecker::run`] for a [`super::CheckJob`] of this
    /// session; results may come back in any order.
    Checked(CheckedFrame),
    /// The shared store's answer to the [`crate::window::WindowQuery`] of an
    /// [`super::Output::Window`], with the query's `id` (exactly one answer per query,
    /// in any order; `Err` when the store could not be asked or did not answer in time).
    WindowAnswered {
        /// The query's id.
        id: QueryId,
        /// The answer.
        answer: Result<WindowAnswer, WindowError>,
    },
}

/// The host to connect to: the endpoint's host without the brackets of an IPv6
/// literal (`[::1]` → `::1`), also the TLS server name.
pub(crate) fn connect_host(endpoint: &Endpoint) -> String {
    let host = endpoint.host.as_str();
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .to_owned()
}

/// The websocket upgrade request (RFC 6455 §4.1) for the signed parameters: `GET
/// /websocket?<query>` with `cookie: zone=Z;` when the register answer set a zone
/// (PROTOCOL §1, §3) and the form content type, keyed by 16 random bytes.
pub(crate) fn upgrade_request(
    endpoint: &Endpoint,
    params: &SignedParams,
    charset: Charset,
    zone: Option<&str>,
    key: [u8; 16],
) -> Result<(ClientHandshake, Vec<u8>), RequestError> {
    let connect = WsConnect::new(endpoint, params, charset, zone);
    // The URL is `ws(s)://AUTHORITY/websocket?…`: the request target starts at the
    // path.
    let after_scheme = connect
        .url
        .split_once("://")
        .map_or(connect.url.as_str(), |(_, rest)| rest);
    let target = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let content_type = form_content_type(charset);
    let mut headers: Vec<(&str, &str)> = connect
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    headers.push(("Content-Type", &content_type));
    ClientHandshake::start(&endpoint.authority(), target, &headers, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_hosts() {
        assert_eq!(ConnId(3).to_string(), "conn-3");
        assert_eq!(connect_host(&Endpoint::plain("[::1]", 80)), "::1");
        assert_eq!(connect_host(&Endpoint::plain("127.0.0.1", 80)), "127.0.0.1");
    }
}
