//! The opening handshake (RFC 6455 §4): an HTTP/1.1 `GET` with `Upgrade: websocket`,
//! answered `101 Switching Protocols` with the key's accept value.
//!
//! [`ClientHandshake`] writes the request and checks the answer; [`ServerHandshake`]
//! reads a request and writes the answer. Both read the other side's HTTP head
//! incrementally from bytes (it may arrive split across reads), bounded by
//! [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`], and report how many bytes of the last input
//! belonged to the head: the bytes after it are websocket frames for
//! [`super::WsConnection`].

mod accept;
mod client;
mod server;

pub use accept::{accept_key, key_from_random};
pub use client::{ClientHandshake, RequestError, Upgraded};
pub use server::{reject_answer, ReceivedUpgrade, ServerHandshake};

/// Largest HTTP head (request or status line plus headers) accepted, in bytes.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Most header fields accepted in an HTTP head.
pub const MAX_HEADERS: usize = 32;

/// The other side's handshake was refused. Every variant but
/// [`HandshakeError::AlreadyComplete`] is the peer's fault; all are sticky (a handshake
/// that failed answers every later read with the same error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// Not an HTTP/1.x head (`what` is the HTTP parser's complaint).
    #[error("malformed HTTP head: {what}")]
    Malformed {
        /// What the HTTP parser found wrong.
        what: String,
    },
    /// The head did not end within [`MAX_HEAD_BYTES`].
    #[error("HTTP head longer than {limit} bytes")]
    HeadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// More than [`MAX_HEADERS`] header fields.
    #[error("more than {limit} HTTP header fields")]
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// The server answered something other than `101` (RFC 6455 §4.1: the handshake
    /// failed; the platform answers e.g. 403 to a bad signature).
    #[error("upgrade answered {status} {reason:?} instead of 101")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The reason phrase (at most 128 bytes, lossily decoded).
        reason: String,
    },
    /// `Upgrade: websocket` is missing (RFC 6455 §4.1, §4.2.1).
    #[error("no Upgrade: websocket header")]
    NoUpgradeHeader,
    /// `Connection` does not list `upgrade` (RFC 6455 §4.1, §4.2.1).
    #[error("Connection header does not list upgrade")]
    NoConnectionUpgrade,
    /// `Sec-WebSocket-Accept` is missing or not the value of our key (RFC 6455 §4.1).
    #[error("Sec-WebSocket-Accept missing or not derived from our key")]
    BadAccept,
    /// The server chose an extension or subprotocol we did not offer (RFC 6455 §4.1).
    #[error("server selected the {header} we did not offer")]
    NotOffered {
        /// `Sec-WebSocket-Extensions` or `Sec-WebSocket-Protocol`.
        header: &'static str,
    },
    /// The request's method is not `GET` (RFC 6455 §4.2.1; answer 405).
    #[error("upgrade request method {method:?} is not GET")]
    NotGet {
        /// The method (at most 16 bytes).
        method: String,
    },
    /// The request is HTTP/1.0 (RFC 6455 §4.2.1 wants 1.1 or higher).
    #[error("upgrade request is not HTTP/1.1")]
    NotHttp11,
    /// `Sec-WebSocket-Key` missing, or not the base64 of 16 bytes (RFC 6455 §4.2.1).
    #[error("Sec-WebSocket-Key missing or not 16 bytes in base64")]
    BadKey,
    /// `Sec-WebSocket-Version` missing or not 13 (RFC 6455 §4.2.1; answer 426 with
    /// `Sec-WebSocket-Version: 13`, §4.4).
    #[error("Sec-WebSocket-Version missing or not 13")]
    UnsupportedVersion,
    /// The caller read again after the handshake completed (caller misuse: the bytes
    /// after the head belong to [`super::WsConnection`]).
    #[error("the handshake is already complete")]
    AlreadyComplete,
}

impl HandshakeError {
    /// The HTTP answer a server writes before closing, for a request refused with this
    /// error: 405 for [`HandshakeError::NotGet`], 426 (with `Sec-WebSocket-Version: 13`)
    /// for [`HandshakeError::UnsupportedVersion`], 431 for an oversized head, 400
    /// otherwise.
    pub fn server_answer(&self) -> Vec<u8> {
        match self {
            HandshakeError::NotGet { .. } => reject_answer(405, "Method Not Allowed", &[]),
            HandshakeError::UnsupportedVersion => {
                reject_answer(426, "Upgrade Required", &[("Sec-WebSocket-Version", "13")])
            }
            HandshakeError::HeadTooLarge { .. } | HandshakeError::TooManyHeaders { .. } => {
                reject_answer(431, "Request Header Fields Too Large", &[])
            }
            _ => reject_answer(400, "Bad Request", &[]),
        }
    }
}

/// The other side's HTTP head, collected across reads up to [`MAX_HEAD_BYTES`].
#[derive(Debug, Default)]
struct HeadBuffer {
    bytes: Vec<u8>,
    /// Set once a head was read, or the handshake failed (sticky).
    outcome: Option<Result<(), HandshakeError>>,
}

impl HeadBuffer {
    /// Appends what fits of `input`; returns the buffer length before it.
    fn append(&mut self, input: &[u8]) -> usize {
        let before = self.bytes.len();
        let room = MAX_HEAD_BYTES - before;
        self.bytes
            .extend_from_slice(&input[..room.min(input.len())]);
        before
    }

    /// What a read must answer before parsing: the sticky outcome, if any.
    fn check_done(&self) -> Result<(), HandshakeError> {
        match &self.outcome {
            None => Ok(()),
            Some(Ok(())) => Err(HandshakeError::AlreadyComplete),
            Some(Err(e)) => Err(e.clone()),
        }
    }

    /// Records the final outcome and frees the buffer.
    fn finish<T>(&mut self, result: Result<T, HandshakeError>) -> Result<T, HandshakeError> {
        self.outcome = Some(result.as_ref().map(|_| ()).map_err(Clone::clone));
        self.bytes = Vec::new();
        result
    }

    /// The error for a parse that needs more bytes although the buffer is full.
    fn partial(&mut self) -> Result<(), HandshakeError> {
        if self.bytes.len() >= MAX_HEAD_BYTES {
            self.finish(Err(HandshakeError::HeadTooLarge {
                limit: MAX_HEAD_BYTES,
            }))
        } else {
            Ok(())
        }
    }
}

/// Maps the HTTP parser's errors.
fn parse_error(e: httparse::Error) -> HandshakeError {
    match e {
        httparse::Error::TooManyHeaders => HandshakeError::TooManyHeaders { limit: MAX_HEADERS },
        other => HandshakeError::Malformed {
            what: other.to_string(),
        },
    }
}

/// The header fields as owned (name, value) pairs, in order.
fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect()
}

/// The first value of header `name` (case-insensitive).
fn header<'h>(headers: &'h [(String, Vec<u8>)], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// Whether any field `name` lists `token` in its comma-separated value
/// (case-insensitive, RFC 9110 §5.6.1).
fn lists_token(headers: &[(String, Vec<u8>)], name: &str, token: &str) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(|&b| b == b','))
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Whether a field `name` is present with a non-empty value.
fn present(headers: &[(String, Vec<u8>)], name: &str) -> bool {
    headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case(name) && !v.trim_ascii().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn token_lists_span_repeated_fields() {
        let h = fields(&[("Connection", "keep-alive"), ("connection", " Upgrade ,x")]);
        assert!(lists_token(&h, "CONNECTION", "upgrade"));
        assert!(!lists_token(&h, "connection", "close"));
        // A token is a whole list item, not a substring.
        assert!(!lists_token(
            &fields(&[("Upgrade", "websocketx")]),
            "upgrade",
            "websocket"
        ));
        assert!(!present(
            &fields(&[("Sec-WebSocket-Protocol", " ")]),
            "sec-websocket-protocol"
        ));
    }

    #[test]
    fn head_buffer_stops_at_the_limit() {
        let mut head = HeadBuffer::default();
        assert_eq!(head.append(&[b'a'; 5000]), 0);
        assert_eq!(head.append(&[b'a'; 5000]), 5000);
        assert_eq!(head.bytes.len(), MAX_HEAD_BYTES);
        assert_eq!(
            head.partial(),
            Err(HandshakeError::HeadTooLarge {
                limit: MAX_HEAD_BYTES
            })
        );
        assert!(head.bytes.capacity() == 0 && head.check_done().is_err());
    }
}
