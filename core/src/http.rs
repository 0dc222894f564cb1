//! The HTTP/1.1 exchange of `register.do` (PROTOCOL §1, §3): request bytes out,
//! response bytes in. The adapter only moves bytes.

/// Most bytes accepted for a register answer, headers and body together.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Most header lines in a register answer.
const MAX_HEADERS: usize = 64;

/// Why an HTTP answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// Larger than the limit.
    #[error("HTTP response larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The status line or headers are not HTTP/1.x.
    #[error("malformed HTTP response: {reason}")]
    Malformed {
        /// What httparse or the body decoder reported.
        reason: String,
    },
    /// The connection closed before the response was complete.
    #[error("connection closed before the HTTP response was complete")]
    Truncated,
}

/// A complete HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header fields in order, names as received.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Values of every header with this name (case-insensitive).
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Builds a `GET` request for `path_and_query` on `authority` with the `extra_headers`
/// (name, value; written as given, after `Accept`), asking the server to close the
/// connection after answering.
pub fn get_request(
    authority: &str,
    path_and_query: &str,
    user_agent: &str,
    extra_headers: &[(&str, &str)],
) -> Vec<u8> {
    let mut request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {user_agent}\r\nAccept: application/json\r\n"
    );
    for (name, value) in extra_headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    request.into_bytes()
}

/// Parses a response from the bytes received so far.
///
/// Returns `Ok(None)` while more bytes are needed. `eof` says the peer closed the
/// connection: a body without `Content-Length` or chunking then ends there.
///
/// ```
/// use alipay_msg_core::http::parse_response;
/// let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
/// assert_eq!(parse_response(&bytes[..20], false, 1024).unwrap(), None);
/// let response = parse_response(bytes, false, 1024).unwrap().unwrap();
/// assert_eq!((response.status, &response.body[..]), (200, &b"{}"[..]));
/// ```
pub fn parse_response(
    buf: &[u8],
    eof: bool,
    max_bytes: usize,
) -> Result<Option<HttpResponse>, HttpError> {
    if buf.len() > max_bytes {
        return Err(HttpError::TooLarge { limit: max_bytes });
    }
    let mut header_buf = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut header_buf);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if eof => return Err(HttpError::Truncated),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(HttpError::Malformed {
                reason: e.to_string(),
            })
        }
    };
    let status = response.code.unwrap_or_default();
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).trim().to_owned(),
            )
        })
        .collect();
    let values = |name: &'static str| {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let rest = &buf[head_len..];
    // Repeated fields form one list (RFC 9112 §5.3): chunked anywhere in any of them.
    let chunked = values("transfer-encoding").any(|v| v.to_ascii_lowercase().contains("chunked"));
    // Several Content-Length fields must agree.
    let mut lengths = values("content-length");
    let content_length = match lengths.next() {
        None => None,
        Some(first) => {
            if lengths.any(|other| other != first) {
                return Err(HttpError::Malformed {
                    reason: "conflicting Content-Length fields".into(),
                });
            }
            Some(first)
        }
    };
    let body = if status == 204 || status == 304 || (100..200).contains(&status) {
        // These answers have no body, whatever follows (RFC 9112 §6.3).
        Vec::new()
    } else if chunked {
        match dechunk(rest)? {
            Some(body) => body,
            None if eof => return Err(HttpError::Truncated),
            None => return Ok(None),
        }
    } else if let Some(len) = content_length {
        let len: usize = len.parse().map_err(|_| HttpError::Malformed {
            reason: "Content-Length is not a number".into(),
        })?;
        if len > max_bytes {
            return Err(HttpError::TooLarge { limit: max_bytes });
        }
        if rest.len() < len {
            return if eof {
                Err(HttpError::Truncated)
            } else {
                Ok(None)
            };
        }
        rest[..len].to_vec()
    } else if eof {
        rest.to_vec()
    } else {
        return Ok(None);
    };
    Ok(Some(HttpResponse {
        status,
        headers,
        body,
    }))
}

/// Decodes a chunked body; `None` until the last chunk has arrived.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>, HttpError> {
    let malformed = |reason: &str| HttpError::Malformed {
        reason: reason.to_owned(),
    };
    let mut body = Vec::new();
    loop {
        let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| malformed("chunk size"))?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| malformed("chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            // Trailers are not used by the platform; the body is complete.
            return Ok(Some(body));
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        if &rest[size..size + 2] != b"\r\n" {
            return Err(malformed("chunk not followed by CRLF"));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_close_delimited() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n3;x=1\r\nabc\r\n0\r\n\r\n";
        let r = parse_response(chunked, false, 1024).unwrap().unwrap();
        assert_eq!(r.body, b"{}abc");
        assert_eq!(parse_response(&chunked[..60], false, 1024).unwrap(), None);
        assert_eq!(
            parse_response(&chunked[..60], true, 1024),
            Err(HttpError::Truncated)
        );

        let close = b"HTTP/1.1 200 OK\r\nSet-Cookie: zone=A\r\nset-cookie: b=1\r\n\r\nbody";
        assert_eq!(parse_response(close, false, 1024).unwrap(), None);
        let r = parse_response(close, true, 1024).unwrap().unwrap();
        assert_eq!(r.body, b"body");
        assert_eq!(
            r.header_values("Set-Cookie").collect::<Vec<_>>(),
            ["zone=A", "b=1"]
        );
    }

    #[test]
    fn limits_and_garbage() {
        assert_eq!(
            parse_response(&[b'a'; 20], false, 10),
            Err(HttpError::TooLarge { limit: 10 })
        );
        assert!(matches!(
            parse_response(b"NOT HTTP\r\n\r\n", false, 100),
            Err(HttpError::Malformed { .. })
        ));
        let big = b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n";
        assert_eq!(
            parse_response(big, false, 100),
            Err(HttpError::TooLarge { limit: 100 })
        );
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(matches!(
            parse_response(bad, false, 100),
            Err(HttpError::Malformed { .. })
        ));
    }

    #[test]
    fn no_body_statuses_and_repeated_fields() {
        let r = parse_response(b"HTTP/1.1 204 No Content\r\n\r\ntrailing", false, 100)
            .unwrap()
            .unwrap();
        assert!(r.body.is_empty());
        let te = b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n";
        assert_eq!(parse_response(te, false, 100).unwrap().unwrap().body, b"a");
        let cl = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
        assert!(matches!(
            parse_response(cl, false, 100),
            Err(HttpError::Malformed { .. })
        ));
    }

    #[test]
    fn request_bytes() {
        let r = get_request(
            "h:1",
            "/websocket/register.do?a=1",
            "ua",
            &[("Content-Type", "x")],
        );
        assert!(r.windows(17).any(|w| w == b"Content-Type: x\r\n"));
        assert!(r.starts_with(b"GET /websocket/register.do?a=1 HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(r.ends_with(b"\r\n\r\n"));
    }
}
