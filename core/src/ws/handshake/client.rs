//! The client's side of the opening handshake (RFC 6455 §4.1).

use super::{
    accept_key, header, key_from_random, lists_token, owned_headers, parse_error, present,
    HandshakeError, HeadBuffer, MAX_HEADERS,
};

/// Header fields the request writes itself; extra headers may not repeat them.
const OWN_HEADERS: [&str; 5] = [
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
];

/// The caller asked for a request that cannot be written (caller misuse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The host is empty or not visible ASCII without `/`.
    #[error("host {0:?} is not an authority (visible ASCII, no '/')")]
    BadHost(String),
    /// The path does not start with `/` or has bytes other than visible ASCII
    /// (percent-encode the query first).
    #[error("request target must start with '/' and be visible ASCII")]
    BadPath,
    /// An extra header whose name is not an HTTP token, or whose value has control
    /// characters (CR, LF, NUL …).
    #[error("header {name:?} is not a valid HTTP field")]
    BadHeader {
        /// The header name as given (at most 64 characters).
        name: String,
    },
    /// An extra header the request writes itself (`Host`, `Upgrade`, `Connection`,
    /// `Sec-WebSocket-Key`, `Sec-WebSocket-Version`).
    #[error("header {name:?} is written by the handshake itself")]
    OwnHeader {
        /// The header name as given.
        name: String,
    },
}

/// The server accepted the upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgraded {
    /// How many bytes of the input given to the read that completed the handshake were
    /// the answer's head. The rest of that input is websocket frames: feed it to
    /// [`crate::ws::WsConnection::read`].
    pub consumed: usize,
    /// The answer's header fields, in order (name as sent, raw value).
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A client's opening handshake: the request to write, then the server's answer read
/// and checked (status 101, `Upgrade: websocket`, `Connection: upgrade`, the accept
/// value of our key, no extension or subprotocol we did not offer; RFC 6455 §4.1).
#[derive(Debug)]
pub struct ClientHandshake {
    expected_accept: String,
    head: HeadBuffer,
}

impl ClientHandshake {
    /// Starts a handshake with `host` (the authority: `host` or `host:port`),
    /// `path_and_query` (starting with `/`, already percent-encoded) and `extra_headers`
    /// (for the platform `cookie: zone=Z;` and `Content-Type`, PROTOCOL §3), keyed by the
    /// caller's 16 random bytes. Returns the handshake and the request bytes to write.
    pub fn start(
        host: &str,
        path_and_query: &str,
        extra_headers: &[(&str, &str)],
        key: [u8; 16],
    ) -> Result<(ClientHandshake, Vec<u8>), RequestError> {
        if host.is_empty() || !host.bytes().all(|b| b.is_ascii_graphic() && b != b'/') {
            return Err(RequestError::BadHost(host.chars().take(64).collect()));
        }
        if !path_and_query.starts_with('/') || !path_and_query.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(RequestError::BadPath);
        }
        for (name, value) in extra_headers {
            if name.is_empty()
                || !name.bytes().all(is_token_byte)
                || !value
                    .bytes()
                    .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
            {
                return Err(RequestError::BadHeader {
                    name: name.chars().take(64).collect(),
                });
            }
            if OWN_HEADERS.iter().any(|own| own.eq_ignore_ascii_case(name)) {
                return Err(RequestError::OwnHeader {
                    name: (*name).to_owned(),
                });
            }
        }
        let key = key_from_random(key);
        let mut request = format!(
            "GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        );
        for (name, value) in extra_headers {
            request.push_str(name);
            request.push_str(": ");
            request.push_str(value);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        let handshake = ClientHandshake {
            expected_accept: accept_key(key.as_bytes()),
            head: HeadBuffer::default(),
        };
        Ok((handshake, request.into_bytes()))
    }

    /// Reads bytes of the server's answer. `Ok(None)`: the head is not complete yet.
    /// `Ok(Some(_))`: the upgrade succeeded; see [`Upgraded::consumed`] for the bytes of
    /// this input that follow the head.
    pub fn read(&mut self, input: &[u8]) -> Result<Option<Upgraded>, HandshakeError> {
        self.head.check_done()?;
        let before = self.head.append(input);
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut fields);
        let parsed = response.parse(&self.head.bytes);
        let result = match parsed {
            Ok(httparse::Status::Partial) => return self.head.partial().map(|()| None),
            Ok(httparse::Status::Complete(len)) => {
                let status = response.code.unwrap_or(0);
                let reason = response.reason.unwrap_or("");
                let headers = owned_headers(response.headers);
                // The head was incomplete with `before` bytes, so it ends in `input`.
                check_answer(status, reason, headers, &self.expected_accept).map(|headers| {
                    Upgraded {
                        consumed: len - before,
                        headers,
                    }
                })
            }
            Err(e) => Err(parse_error(e)),
        };
        self.head.finish(result).map(Some)
    }
}

fn check_answer(
    status: u16,
    reason: &str,
    headers: Vec<(String, Vec<u8>)>,
    expected_accept: &str,
) -> Result<Vec<(String, Vec<u8>)>, HandshakeError> {
    if status != 101 {
        return Err(HandshakeError::Status {
            status,
            reason: reason.chars().take(128).collect(),
        });
    }
    if !lists_token(&headers, "upgrade", "websocket") {
        return Err(HandshakeError::NoUpgradeHeader);
    }
    if !lists_token(&headers, "connection", "upgrade") {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    if header(&headers, "sec-websocket-accept").map(<[u8]>::trim_ascii)
        != Some(expected_accept.as_bytes())
    {
        return Err(HandshakeError::BadAccept);
    }
    for name in ["Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"] {
        if present(&headers, name) {
            return Err(HandshakeError::NotOffered { header: name });
        }
    }
    Ok(headers)
}

/// An HTTP token character (RFC 9110 §5.6.2).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
