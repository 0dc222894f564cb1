//! The platform's end of one TCP connection before it is a websocket: the HTTP/1.1
//! request head, read from the connection's first byte (RFC 9112 §2–3, bounded by
//! [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`] with `httparse`), and the route it takes
//! (PROTOCOL §1):
//!
//! - `GET /websocket/register.do?…` → the register answer, then the connection closes
//!   (PROTOCOL §2–3);
//! - `GET /websocket?…` → the websocket opening handshake (RFC 6455 §4.2, checked by
//!   [`ServerHandshake`]), then the platform's accept checks (PROTOCOL §2, §8);
//! - any other path → not the platform's: handed to the embedder as a
//!   [`ForeignRequest`] (the simulator serves its admin endpoints this way).

use std::fmt;

use crate::ws::handshake::{
    HandshakeError, ReceivedUpgrade, ServerHandshake, MAX_HEADERS, MAX_HEAD_BYTES,
};

use super::{REGISTER_PATH, WEBSOCKET_PATH};

/// One TCP connection the embedder accepted ([`super::ServerSession::accept`]); once
/// upgraded, the websocket keeps the id. Ids are never reused within a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub(super) u64);

impl ConnectionId {
    /// The number behind the id.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

/// A request for a path the platform does not serve (neither [`REGISTER_PATH`] nor
/// [`WEBSOCKET_PATH`]), given back with [`super::ServerOutput::Foreign`]. The session has
/// forgotten the connection: the embedder answers it (e.g. an admin endpoint, or 404)
/// and closes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignRequest {
    /// The method, as sent.
    pub method: String,
    /// The request target: path and query, as sent.
    pub target: String,
    /// The head as received: request line and header fields, through the empty line
    /// (at most [`MAX_HEAD_BYTES`] bytes).
    pub head: Vec<u8>,
    /// Bytes received after the head in the same input (the start of a body). Later
    /// bytes of the connection are the embedder's to read.
    pub rest: Vec<u8>,
}

impl ForeignRequest {
    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }
}

/// Where a complete request head goes.
#[derive(Debug)]
pub(super) enum Route {
    /// `GET /websocket/register.do?…`, with its target.
    Register { target: String },
    /// A valid websocket upgrade request for `/websocket?…`, and the bytes after it
    /// (the first websocket frames).
    Upgrade {
        upgrade: Box<ReceivedUpgrade>,
        rest: Vec<u8>,
    },
    /// Another path.
    Foreign(Box<ForeignRequest>),
}

/// The request head of one connection, collected across inputs.
#[derive(Debug, Default)]
pub(super) struct HeadReader {
    bytes: Vec<u8>,
}

impl HeadReader {
    /// Reads `input`: `Ok(None)` while the head is incomplete; the route once it is;
    /// an error when the head is malformed or too large, or is a `/websocket` upgrade
    /// request RFC 6455 §4.2.1 refuses (answer with [`HandshakeError::server_answer`]).
    /// A `register.do` request other than `GET` is refused as
    /// [`HandshakeError::NotGet`] (405).
    pub(super) fn read(&mut self, input: &[u8]) -> Result<Option<Route>, HandshakeError> {
        let room = MAX_HEAD_BYTES.saturating_sub(self.bytes.len());
        let taken = room.min(input.len());
        self.bytes.extend_from_slice(&input[..taken]);
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut fields);
        let len = match request.parse(&self.bytes) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if self.bytes.len() >= MAX_HEAD_BYTES => {
                return Err(HandshakeError::HeadTooLarge {
                    limit: MAX_HEAD_BYTES,
                })
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HandshakeError::TooManyHeaders { limit: MAX_HEADERS })
            }
            Err(e) => {
                return Err(HandshakeError::Malformed {
                    what: e.to_string(),
                })
            }
        };
        let method = request.method.unwrap_or_default().to_owned();
        let target = request.path.unwrap_or_default().to_owned();
        let head = std::mem::take(&mut self.bytes);
        let mut rest = head[len..].to_vec();
        rest.extend_from_slice(&input[taken..]);
        let path = target.split_once('?').map_or(target.as_str(), |(p, _)| p);
        match path {
            REGISTER_PATH if method != "GET" => Err(HandshakeError::NotGet {
                method: method.chars().take(16).collect(),
            }),
            REGISTER_PATH => Ok(Some(Route::Register { target })),
            WEBSOCKET_PATH => match ServerHandshake::new().read(&head[..len])? {
                Some(upgrade) => Ok(Some(Route::Upgrade {
                    upgrade: Box::new(upgrade),
                    rest,
                })),
                // `len` bytes are a complete head for httparse, and the handshake reads
                // them with the same parser and bounds.
                None => Err(HandshakeError::Malformed {
                    what: "incomplete upgrade request".to_owned(),
                }),
            },
            _ => Ok(Some(Route::Foreign(Box::new(ForeignRequest {
                method,
                target,
                head: head[..len].to_vec(),
                rest,
            })))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_path_at_any_split() {
        let request = b"GET /websocket/register.do?a=1 HTTP/1.1\r\nHost: x\r\n\r\nEXTRA";
        for split in 0..request.len() {
            let mut reader = HeadReader::default();
            let first = reader.read(&request[..split]).unwrap();
            let route = first.or_else(|| reader.read(&request[split..]).unwrap());
            match route {
                Some(Route::Register { target }) => {
                    assert_eq!(target, "/websocket/register.do?a=1")
                }
                other => panic!("split {split}: {other:?}"),
            }
        }
    }

    #[test]
    fn foreign_requests_keep_their_head_and_rest() {
        let mut reader = HeadReader::default();
        let route = reader
            .read(b"POST /admin/push HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
            .unwrap();
        let Some(Route::Foreign(request)) = route else {
            panic!("{route:?}")
        };
        assert_eq!(
            (request.method.as_str(), request.path()),
            ("POST", "/admin/push")
        );
        assert!(request.head.ends_with(b"\r\n\r\n"));
        assert_eq!(request.rest, b"{}");
    }

    #[test]
    fn bad_heads_are_refused() {
        let mut reader = HeadReader::default();
        assert!(matches!(
            reader.read(b"POST /websocket/register.do HTTP/1.1\r\n\r\n"),
            Err(HandshakeError::NotGet { .. })
        ));
        let mut reader = HeadReader::default();
        assert!(matches!(
            reader.read(&[b'a'; MAX_HEAD_BYTES + 1]),
            Err(HandshakeError::Malformed { .. } | HandshakeError::HeadTooLarge { .. })
        ));
        let mut reader = HeadReader::default();
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(
            reader.read(long.as_bytes()).unwrap_err(),
            HandshakeError::HeadTooLarge {
                limit: MAX_HEAD_BYTES
            }
        );
        let mut reader = HeadReader::default();
        assert_eq!(
            reader
                .read(b"GET /websocket?x HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap_err(),
            HandshakeError::NoUpgradeHeader
        );
    }
}
