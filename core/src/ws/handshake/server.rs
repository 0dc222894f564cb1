//! The server's side of the opening handshake (RFC 6455 §4.2), for the platform role.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::{
    accept_key, header, lists_token, owned_headers, parse_error, HandshakeError, HeadBuffer,
    MAX_HEADERS,
};

/// A valid upgrade request, read by [`ServerHandshake::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedUpgrade {
    /// How many bytes of the input given to the read that completed the request were
    /// its head; the rest of that input is websocket frames.
    pub consumed: usize,
    /// The request target: path and query, as sent.
    pub path_and_query: String,
    /// The header fields, in order (name as sent, raw value).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The `Sec-WebSocket-Key` value, as sent.
    pub key: String,
}

impl ReceivedUpgrade {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        header(&self.headers, name)
    }

    /// The value of cookie `name` from the `Cookie` headers (the platform's client sends
    /// `cookie: zone=Z;`, PROTOCOL §3), spaces around it trimmed.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .flat_map(|(_, v)| v.split(|&b| b == b';'))
            .find_map(|pair| {
                let pair = std::str::from_utf8(pair).ok()?.trim();
                let (key, value) = pair.split_once('=')?;
                (key.trim() == name).then(|| value.trim())
            })
    }

    /// The `101 Switching Protocols` answer that accepts the upgrade (RFC 6455 §4.2.2).
    pub fn accept_answer(&self) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(self.key.as_bytes())
        )
        .into_bytes()
    }
}

/// An HTTP answer refusing an upgrade: `status`, `reason`, the `extra` header fields,
/// `Content-Length: 0` and `Connection: close` (write it, then close the stream).
pub fn reject_answer(status: u16, reason: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut answer = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in extra {
        answer.push_str(&format!("{name}: {value}\r\n"));
    }
    answer.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
    answer.into_bytes()
}

/// A server's opening handshake: reads the client's upgrade request (RFC 6455 §4.2.1:
/// `GET`, HTTP/1.1, `Upgrade: websocket`, `Connection: upgrade`, a 16-byte key,
/// version 13). Answer with [`ReceivedUpgrade::accept_answer`], or
/// [`HandshakeError::server_answer`] when it fails.
#[derive(Debug, Default)]
pub struct ServerHandshake {
    head: HeadBuffer,
}

impl ServerHandshake {
    /// A handshake waiting for the request.
    pub fn new() -> Self {
        ServerHandshake::default()
    }

    /// Reads bytes of the client's request. `Ok(None)`: the head is not complete yet.
    pub fn read(&mut self, input: &[u8]) -> Result<Option<ReceivedUpgrade>, HandshakeError> {
        self.head.check_done()?;
        let before = self.head.append(input);
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut fields);
        let parsed = request.parse(&self.head.bytes);
        let result = match parsed {
            Ok(httparse::Status::Partial) => return self.head.partial().map(|()| None),
            Ok(httparse::Status::Complete(len)) => {
                let method = request.method.unwrap_or("");
                let version = request.version.unwrap_or(0);
                let path_and_query = request.path.unwrap_or("").to_owned();
                let headers = owned_headers(request.headers);
                check_request(method, version, &headers).map(|key| ReceivedUpgrade {
                    // The head was incomplete with `before` bytes, so it ends in `input`.
                    consumed: len - before,
                    path_and_query,
                    headers,
                    key,
                })
            }
            Err(e) => Err(parse_error(e)),
        };
        self.head.finish(result).map(Some)
    }
}

/// Checks the request (RFC 6455 §4.2.1); returns the key.
fn check_request(
    method: &str,
    version: u8,
    headers: &[(String, Vec<u8>)],
) -> Result<String, HandshakeError> {
    if method != "GET" {
        return Err(HandshakeError::NotGet {
            method: method.chars().take(16).collect(),
        });
    }
    if version < 1 {
        return Err(HandshakeError::NotHttp11);
    }
    if !lists_token(headers, "upgrade", "websocket") {
        return Err(HandshakeError::NoUpgradeHeader);
    }
    if !lists_token(headers, "connection", "upgrade") {
        return Err(HandshakeError::NoConnectionUpgrade);
    }
    if header(headers, "sec-websocket-version").map(<[u8]>::trim_ascii) != Some(b"13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let key = header(headers, "sec-websocket-key")
        .map(<[u8]>::trim_ascii)
        .ok_or(HandshakeError::BadKey)?;
    match STANDARD.decode(key) {
        Ok(nonce) if nonce.len() == 16 => {}
        _ => return Err(HandshakeError::BadKey),
    }
    // Base64 is ASCII.
    Ok(String::from_utf8_lossy(key).into_owned())
}
