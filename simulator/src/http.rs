//! The little HTTP/1.1 the simulator speaks on its one port: read a request head with
//! `httparse` (bounded), read a `Content-Length` body (bounded), write a response and
//! close. No keep-alive: every answer says `Connection: close`.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request head read (request line and headers).
pub(super) const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Most header fields in a request head.
const MAX_HEADERS: usize = 64;

/// A request head, and the bytes read after it.
#[derive(Debug)]
pub(super) struct RequestHead {
    pub(super) method: String,
    /// Path and query as received.
    pub(super) target: String,
    pub(super) headers: Vec<(String, String)>,
    /// The head's bytes as received (for the websocket handshake, which reads them
    /// itself); at most [`MAX_HEAD_BYTES`].
    pub(super) raw: Vec<u8>,
    /// Bytes received after the head (the start of a body, or of websocket frames).
    pub(super) rest: Vec<u8>,
}

impl RequestHead {
    /// The first value of a header (case-insensitive name).
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    pub(super) fn path(&self) -> &str {
        self.target
            .split_once('?')
            .map_or(self.target.as_str(), |(path, _)| path)
    }
}

/// Why no request head could be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum HeadError {
    #[error("connection closed before a complete request head")]
    Closed,
    #[error("request head over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} fields")]
    TooLarge,
    #[error("malformed request head: {0}")]
    Malformed(httparse::Error),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl HeadError {
    /// The status to answer, when answering is worth it.
    pub(super) fn status(&self) -> Option<u16> {
        match self {
            HeadError::TooLarge => Some(431),
            HeadError::Malformed(_) => Some(400),
            HeadError::Closed | HeadError::Io(_) => None,
        }
    }
}

/// Reads until a complete request head, at most [`MAX_HEAD_BYTES`].
pub(super) async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<RequestHead, HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let room = (MAX_HEAD_BYTES + 1)
            .saturating_sub(buf.len())
            .min(chunk.len());
        let n = stream.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                return Ok(RequestHead {
                    method: request.method.unwrap_or_default().to_owned(),
                    target: request.path.unwrap_or_default().to_owned(),
                    headers: request
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).trim().to_owned(),
                            )
                        })
                        .collect(),
                    raw: buf[..len].to_vec(),
                    rest: buf[len..].to_vec(),
                })
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                return Err(HeadError::TooLarge)
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
            Err(e) => return Err(HeadError::Malformed(e)),
        }
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum BodyError {
    #[error("a Content-Length header is required")]
    LengthRequired,
    #[error("the body is over {limit} bytes")]
    TooLarge { limit: usize },
    #[error("Content-Length is not a number")]
    BadLength,
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl BodyError {
    pub(super) fn status(&self) -> u16 {
        match self {
            BodyError::LengthRequired => 411,
            BodyError::TooLarge { .. } => 413,
            BodyError::BadLength | BodyError::Io(_) => 400,
        }
    }
}

/// Reads the body announced by `Content-Length` (chunked bodies are not supported).
pub(super) async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    head: &RequestHead,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let length: usize = head
        .header("content-length")
        .ok_or(BodyError::LengthRequired)?
        .parse()
        .map_err(|_| BodyError::BadLength)?;
    if length > limit {
        return Err(BodyError::TooLarge { limit });
    }
    let mut body = head.rest.clone();
    body.truncate(length);
    if body.len() < length {
        let start = body.len();
        body.resize(length, 0);
        stream.read_exact(&mut body[start..]).await?;
    }
    Ok(body)
}

/// A whole response with `Content-Length` and `Connection: close`.
pub(super) fn response(status: u16, content_type: &str, body: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A plain-text response (the body gets a trailing newline).
pub(super) fn text_response(status: u16, body: &str) -> Vec<u8> {
    response(status, "text/plain; charset=utf-8", &format!("{body}\n"))
}

/// A JSON response.
pub(super) fn json_response(status: u16, body: &serde_json::Value) -> Vec<u8> {
    response(status, "application/json", &body.to_string())
}

/// Writes `bytes` and closes the sending side; errors mean the peer left, which
/// changes nothing.
pub(super) async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) {
    if stream.write_all(bytes).await.is_ok() {
        let _ = stream.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_a_head_in_pieces_and_keeps_the_rest() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for part in [
                "GET /websocket?a=1 HT",
                "TP/1.1\r\nHost: x\r\nCookie:  zone=Z; \r\n",
                "\r\nEXTRA",
            ] {
                client.write_all(part.as_bytes()).await.unwrap();
                tokio::task::yield_now().await;
            }
            client
        });
        let head = read_head(&mut server).await.unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/websocket?a=1");
        assert_eq!(head.path(), "/websocket");
        assert_eq!(head.header("cookie"), Some("zone=Z;"));
        assert!(head.raw.starts_with(b"GET /websocket?a=1 HTTP/1.1\r\n"));
        assert!(head.raw.ends_with(b"zone=Z; \r\n\r\n"));
        let _client = writer.await.unwrap();
        // The rest may or may not have arrived with the head; what arrived is kept.
        assert!(b"EXTRA".starts_with(&head.rest));
    }

    #[tokio::test]
    async fn a_head_that_never_ends_is_too_large() {
        let (mut client, mut server) = tokio::io::duplex(1 << 16);
        let line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD_BYTES));
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = client.write_all(line.as_bytes()).await;
            client
        });
        assert!(matches!(
            read_head(&mut server).await,
            Err(HeadError::TooLarge)
        ));
    }

    #[test]
    fn responses_have_length_and_close() {
        let bytes = text_response(404, "no");
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\nConnection: close\r\n\r\nno\n"
        );
    }
}
