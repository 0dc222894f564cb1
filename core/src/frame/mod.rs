//! Frames: the text of one websocket message (PROTOCOL §4).
//!
//! ```text
//! <header lines, each "key:value\r\n">\r\n<message JSON>
//! ```
//!
//! [`Frame::parse`] reads any frame into borrowed parts and keeps the exact received
//! text of the `data` object, because that text — not a re-serialisation — is what the
//! signature covers (PROTOCOL §5). Typed views ([`crate::consume::ConsumeFrame`],
//! [`crate::produce_ack::ProduceAck`] …) are built from it. Writing goes through
//! the typed encoders (`ConsumeAck::encode`, `ProduceRequest::sign_and_encode` …), which put fields in the order the platform's client writes them.
//!
//! Limits ([`FrameLimits`]) are enforced before any JSON parsing.

mod header;
pub(crate) mod json_scan;
mod signed;

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::value::RawValue;

pub use header::FrameHeaders;
pub(crate) use signed::SignedData;
pub use signed::{InvalidSignature, SignatureStatus};

/// Bounds on what [`Frame::parse`] accepts. Everything past a bound is an error before
/// any allocation proportional to the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest frame, in bytes (default 1 MiB).
    pub max_frame_bytes: usize,
    /// Most header lines (default 32).
    pub max_header_lines: usize,
    /// Longest header line, in bytes (default 1024).
    pub max_header_line_bytes: usize,
    /// Deepest nesting of JSON objects and arrays (default 64).
    pub max_json_depth: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_frame_bytes: 1024 * 1024,
            max_header_lines: 32,
            max_header_line_bytes: 1024,
            max_json_depth: 64,
        }
    }
}

/// Why a frame could not be read. Each variant names the rule it broke; none echoes
/// the frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Bigger than [`FrameLimits::max_frame_bytes`].
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the frame.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// No `\r\n\r\n` separates header lines from the message.
    #[error("no blank line (\\r\\n\\r\\n) after the header lines")]
    NoHeaderEnd,
    /// More header lines than [`FrameLimits::max_header_lines`].
    #[error("more than {limit} header lines")]
    TooManyHeaderLines {
        /// The limit.
        limit: usize,
    },
    /// A header line longer than [`FrameLimits::max_header_line_bytes`].
    #[error("header line {line} is longer than {limit} bytes")]
    HeaderLineTooLong {
        /// 1-based line number.
        line: usize,
        /// The limit.
        limit: usize,
    },
    /// A header line with no `:`.
    #[error("header line {line} has no ':'")]
    HeaderLineWithoutColon {
        /// 1-based line number.
        line: usize,
    },
    /// Nothing after the header block.
    #[error("the frame has no message after the header lines")]
    EmptyMessage,
    /// JSON nested deeper than [`FrameLimits::max_json_depth`].
    #[error("message JSON nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// The message is not JSON of the expected shape.
    #[error("message is not valid: {reason}")]
    Json {
        /// serde_json's description (position and expectation, no content).
        reason: String,
    },
    /// A required field is missing or empty.
    #[error("missing required field `{field}`")]
    MissingField {
        /// The field.
        field: &'static str,
    },
    /// `x-type` is not `message`.
    #[error("x-type is {x_type:?}, expected \"message\"")]
    UnexpectedType {
        /// The value received (truncated).
        x_type: String,
    },
    /// `x-cmd` is not one of the four commands.
    #[error("unknown x-cmd {cmd:?}")]
    UnknownCommand {
        /// The value received (truncated).
        cmd: String,
    },
    /// `x-timestamp` is not a decimal number of milliseconds.
    #[error("x-timestamp is not a number of milliseconds")]
    BadTimestamp,
    /// `x-status` is neither `SUCCESS` nor `FAIL`.
    #[error("x-status {status:?} is neither SUCCESS nor FAIL")]
    BadStatus {
        /// The value received (truncated).
        status: String,
    },
    /// The `data` value, or its `header`/`content`, is not a JSON object.
    #[error("`{part}` is not a JSON object")]
    NotAnObject {
        /// `data`, `data.header` or `data.content`.
        part: &'static str,
    },
    /// The platform's textual rule for the signed span does not find the `data`
    /// object the JSON parser found, so what is signed and what would be delivered
    /// could differ.
    #[error("the signed `data` span is ambiguous (a \"data\" key appears before the message's data object)")]
    AmbiguousData,
    /// A frame of a command the receiver does not take (e.g. a PRODUCE sent to a client).
    #[error("unexpected {cmd} frame")]
    UnexpectedCommand {
        /// The command received.
        cmd: Command,
    },
}

/// Truncates a peer-supplied value for an error message.
pub(crate) fn clip(value: &str) -> String {
    value.chars().take(64).collect()
}

/// The `x-cmd` of a message (PROTOCOL §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Platform → app message.
    Consume,
    /// App's answer to a CONSUME.
    ConsumeAck,
    /// App → platform message.
    Produce,
    /// Platform's answer to a PRODUCE.
    ProduceAck,
}

impl Command {
    /// The name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Command::Consume => "CONSUME",
            Command::ConsumeAck => "CONSUME_ACK",
            Command::Produce => "PRODUCE",
            Command::ProduceAck => "PRODUCE_ACK",
        }
    }
}

impl FromStr for Command {
    type Err = FrameError;
    fn from_str(s: &str) -> Result<Self, FrameError> {
        match s {
            "CONSUME" => Ok(Command::Consume),
            "CONSUME_ACK" => Ok(Command::ConsumeAck),
            "PRODUCE" => Ok(Command::Produce),
            "PRODUCE_ACK" => Ok(Command::ProduceAck),
            _ => Err(FrameError::UnknownCommand { cmd: clip(s) }),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `protocol` object: every field is a string on the wire (PROTOCOL §4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Protocol {
    /// `x-type`, always `message`.
    #[serde(rename = "x-type")]
    pub x_type: Option<String>,
    /// `x-cmd`.
    #[serde(rename = "x-cmd")]
    pub cmd: Option<String>,
    /// `x-msgId`.
    #[serde(rename = "x-msgId")]
    pub msg_id: Option<String>,
    /// `x-timestamp`, milliseconds as a decimal string.
    #[serde(rename = "x-timestamp")]
    pub timestamp: Option<String>,
    /// `x-version`.
    #[serde(rename = "x-version")]
    pub version: Option<String>,
    /// `x-status`.
    #[serde(rename = "x-status")]
    pub status: Option<String>,
    /// `x-code`.
    #[serde(rename = "x-code")]
    pub code: Option<String>,
    /// `x-error`.
    #[serde(rename = "x-error")]
    pub error: Option<String>,
    /// `x-charset`.
    #[serde(rename = "x-charset")]
    pub charset: Option<String>,
    /// `x-signType`.
    #[serde(rename = "x-signType")]
    pub sign_type: Option<String>,
    /// `x-sign`.
    #[serde(rename = "x-sign")]
    pub sign: Option<String>,
}

impl Protocol {
    /// `x-timestamp` as milliseconds, if present.
    pub fn timestamp_ms(&self) -> Result<Option<i64>, FrameError> {
        match self.timestamp.as_deref() {
            None => Ok(None),
            Some(t) => t
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| FrameError::BadTimestamp),
        }
    }

    /// A required, non-empty field.
    pub(crate) fn required<'a>(
        value: &'a Option<String>,
        field: &'static str,
    ) -> Result<&'a str, FrameError> {
        value
            .as_deref()
            .filter(|v| !v.is_empty())
            .ok_or(FrameError::MissingField { field })
    }
}

/// `data.header` (PROTOCOL §4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct DataHeader {
    /// `appId`.
    #[serde(rename = "appId")]
    pub app_id: Option<String>,
    /// `msgApi`.
    #[serde(rename = "msgApi")]
    pub msg_api: Option<String>,
    /// `app_cert_sn` (certificate mode).
    pub app_cert_sn: Option<String>,
    /// `alipay_root_cert_sn` (certificate mode).
    pub alipay_root_cert_sn: Option<String>,
}

/// The `data` object of a message, with its exact text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data<'a> {
    /// The exact received text of the `data` object: the signed content.
    pub text: &'a str,
    /// `data.header`.
    pub header: DataHeader,
    /// The exact text of `data.content` (the business JSON object), if present.
    pub content: Option<&'a str>,
}

/// A parsed frame, borrowing the received text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Header lines.
    pub headers: FrameHeaders,
    /// The `protocol` object.
    pub protocol: Protocol,
    /// The command, from `x-cmd`.
    pub command: Command,
    /// The `data` object, if present.
    pub data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct MessageJson<'a> {
    protocol: Option<Protocol>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

/// The message with `data` read in the same pass (see [`Frame::parse`]).
#[derive(Deserialize)]
struct MessageOnePass<'a> {
    protocol: Option<Protocol>,
    #[serde(borrow)]
    data: Option<DataJson<'a>>,
}

#[derive(Deserialize)]
struct DataJson<'a> {
    header: Option<&'a RawValue>,
    #[serde(borrow)]
    content: Option<&'a RawValue>,
}

fn json_error(e: serde_json::Error) -> FrameError {
    FrameError::Json {
        reason: e.to_string(),
    }
}

fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

impl<'a> Frame<'a> {
    /// Parses a frame under `limits`.
    ///
    /// ```
    /// use alipay_msg_core::frame::{Command, Frame, FrameLimits};
    /// let text = "stream-id:s1\r\n\r\n{\"protocol\":{\"x-type\":\"message\",\"x-cmd\":\"PRODUCE_ACK\",\"x-status\":\"SUCCESS\",\"x-code\":\"10000\"}}";
    /// let frame = Frame::parse(text, &FrameLimits::default()).unwrap();
    /// assert_eq!(frame.command, Command::ProduceAck);
    /// assert_eq!(frame.headers.stream_id.as_deref(), Some("s1"));
    /// assert!(Frame::parse("{}", &FrameLimits::default()).is_err());
    /// ```
    pub fn parse(text: &'a str, limits: &FrameLimits) -> Result<Self, FrameError> {
        Self::parse_with(text, limits, read_message)
    }

    /// [`Frame::parse`] through the two-pass reading only: the reference the fuzz
    /// target compares the one-pass reading with.
    #[doc(hidden)]
    pub fn parse_two_pass(text: &'a str, limits: &FrameLimits) -> Result<Self, FrameError> {
        Self::parse_with(text, limits, two_pass)
    }

    fn parse_with(
        text: &'a str,
        limits: &FrameLimits,
        read: fn(&'a str) -> Result<MessageParts<'a>, FrameError>,
    ) -> Result<Self, FrameError> {
        if text.len() > limits.max_frame_bytes {
            return Err(FrameError::TooLarge {
                size: text.len(),
                limit: limits.max_frame_bytes,
            });
        }
        let split = json_scan::header_end(text).ok_or(FrameError::NoHeaderEnd)?;
        let headers = parse_headers(&text[..split], limits)?;
        let body = &text[split + 4..];
        if body.trim().is_empty() {
            return Err(FrameError::EmptyMessage);
        }
        if json_scan::nesting_exceeds(body, limits.max_json_depth) {
            return Err(FrameError::TooDeep {
                limit: limits.max_json_depth,
            });
        }
        let (protocol, data) = read(body)?;
        let protocol = protocol.ok_or(FrameError::MissingField { field: "protocol" })?;
        let x_type = Protocol::required(&protocol.x_type, "x-type")?;
        if x_type != "message" {
            return Err(FrameError::UnexpectedType {
                x_type: clip(x_type),
            });
        }
        let command = Protocol::required(&protocol.cmd, "x-cmd")?.parse()?;
        Ok(Frame {
            headers,
            protocol,
            command,
            data,
        })
    }
}

/// One JSON pass reads `protocol` and `data` alike; the signed span is then located
/// textually and tied to the parsed `data` object ([`one_pass_data`]). Anything
/// unusual (an error, a `data` with neither `header` nor `content`) goes through the
/// two-pass reading, which gives the precise error. The `message_json` fuzz target
/// holds the two to the same answer on every input.
fn read_message(body: &str) -> Result<MessageParts<'_>, FrameError> {
    serde_json::from_str::<MessageOnePass<'_>>(body)
        .ok()
        .and_then(|m| Some((m.protocol, one_pass_data(body, m.data)?)))
        .map_or_else(|| two_pass(body), Ok)
}

type MessageParts<'a> = (Option<Protocol>, Option<Data<'a>>);

/// The two-pass reading: the message with `data` as raw text, then `data` itself.
fn two_pass(body: &str) -> Result<MessageParts<'_>, FrameError> {
    let message: MessageJson<'_> = serde_json::from_str(body).map_err(json_error)?;
    let data = match message.data {
        None => None,
        Some(raw) => Some(parse_data(body, raw)?),
    };
    Ok((message.protocol, data))
}

/// `data` as read in the one pass, tied to its text; `None` sends the frame through
/// the two-pass reading.
///
/// The parser found `header` and/or `content` as members of the `data` object. Walking
/// out from them over nothing but whitespace, the key, `:` and `,`-free gaps gives that
/// object's braces: the `{` right before the first member and the `}` right after the
/// last. The platform's textual rule for the signed span must start at that `{`
/// (PROTOCOL §5); in well-formed JSON it then ends at that `}`. Members in any other
/// place (an unknown key first or last, an escaped key) take the two-pass reading.
fn one_pass_data<'a>(body: &'a str, data: Option<DataJson<'a>>) -> Option<Option<Data<'a>>> {
    let Some(data) = data else {
        return Some(None);
    };
    let base = body.as_ptr() as usize;
    let members = [("header", data.header), ("content", data.content)];
    let placed = members.iter().filter_map(|&(key, raw)| {
        let raw = raw?;
        let start = raw.get().as_ptr() as usize - base;
        Some((key, start, start + raw.get().len()))
    });
    let (first_key, first_start, _) = placed.clone().min_by_key(|m| m.1)?;
    let last_end = placed.map(|m| m.2).max()?;
    let bytes = body.as_bytes();
    let open = json_scan::object_start_before(bytes, first_start, first_key)?;
    let close = json_scan::object_end_after(bytes, last_end)?;
    if json_scan::data_open(body)? != open {
        return None;
    }
    let header = match data.header {
        None => DataHeader::default(),
        Some(h) if is_object(h) => serde_json::from_str(h.get()).ok()?,
        Some(_) => return None,
    };
    let content = match data.content {
        None => None,
        Some(c) if is_object(c) => Some(c.get()),
        Some(_) => return None,
    };
    Some(Some(Data {
        text: &body[open..=close],
        header,
        content,
    }))
}

impl Frame<'_> {
    /// Checks the frame's `x-sign` over its exact `data` text with `verifier` (the
    /// platform key for a CONSUME, the app key for a PRODUCE), using `x-signType` and
    /// `x-charset` (PROTOCOL §5).
    pub fn verify(&self, verifier: &crate::signature::Verifier) -> SignatureStatus {
        SignedData {
            sign: self.protocol.sign.as_deref(),
            sign_type: self.protocol.sign_type.as_deref(),
            charset: self.protocol.charset.as_deref(),
            data: self.data.as_ref().map_or("", |d| d.text),
        }
        .verify(verifier)
    }
}

fn parse_headers(block: &str, limits: &FrameLimits) -> Result<FrameHeaders, FrameError> {
    let mut headers = FrameHeaders::default();
    if block.is_empty() {
        return Ok(headers);
    }
    for (n, line) in block.split("\r\n").enumerate() {
        if n >= limits.max_header_lines {
            return Err(FrameError::TooManyHeaderLines {
                limit: limits.max_header_lines,
            });
        }
        if line.len() > limits.max_header_line_bytes {
            return Err(FrameError::HeaderLineTooLong {
                line: n + 1,
                limit: limits.max_header_line_bytes,
            });
        }
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or(FrameError::HeaderLineWithoutColon { line: n + 1 })?;
        headers.set(key.trim(), value.trim());
    }
    Ok(headers)
}

fn parse_data<'a>(body: &'a str, raw: &'a RawValue) -> Result<Data<'a>, FrameError> {
    if !is_object(raw) {
        return Err(FrameError::NotAnObject { part: "data" });
    }
    // The signature covers the span the platform's textual rule finds; it must be the
    // very object the parser found, or what is verified and what is delivered differ.
    // The parser has checked that object is well-formed, so when the rule's span starts
    // where it does it also ends where it does (`json_scan::data_open`); the
    // `message_json` fuzz target holds the full rule to that.
    let offset = raw.get().as_ptr() as usize - body.as_ptr() as usize;
    if json_scan::data_open(body) != Some(offset) {
        return Err(FrameError::AmbiguousData);
    }
    let text = raw.get();
    let data: DataJson<'a> = serde_json::from_str(text).map_err(json_error)?;
    let header = match data.header {
        None => DataHeader::default(),
        Some(h) if is_object(h) => serde_json::from_str(h.get()).map_err(json_error)?,
        Some(_) => {
            return Err(FrameError::NotAnObject {
                part: "data.header",
            })
        }
    };
    let content = match data.content {
        None => None,
        Some(c) if is_object(c) => Some(c.get()),
        Some(_) => {
            return Err(FrameError::NotAnObject {
                part: "data.content",
            })
        }
    };
    Ok(Data {
        text,
        header,
        content,
    })
}

/// The protocol fields a writer sets; written in the platform client's order:
/// x-type, x-cmd, x-msgId, x-timestamp, x-version, x-status, x-code, x-error,
/// x-charset, x-signType, x-sign (PROTOCOL §4). `x-version` is always `1.0`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProtocolOut<'a> {
    pub(crate) msg_id: Option<&'a str>,
    pub(crate) timestamp_ms: Option<i64>,
    pub(crate) status: Option<&'a str>,
    pub(crate) code: Option<&'a str>,
    pub(crate) error: Option<&'a str>,
    pub(crate) charset: Option<&'a str>,
    pub(crate) sign_type: Option<&'a str>,
    pub(crate) sign: Option<&'a str>,
}

/// Writes a whole frame: header block, then
/// `{"protocol":{…}[,"data":<data>]}` (PROTOCOL §4).
pub(crate) fn write_frame(
    headers: &FrameHeaders,
    command: Command,
    fields: &ProtocolOut<'_>,
    data: Option<&str>,
) -> String {
    let mut out = String::with_capacity(
        headers.written_len() + 160 + fields.sign.map_or(0, str::len) + data.map_or(0, str::len),
    );
    headers.write(&mut out);
    out.push_str("{\"protocol\":{\"x-type\":\"message\"");
    push_field(&mut out, "x-cmd", Some(command.as_str()));
    push_field(&mut out, "x-msgId", fields.msg_id);
    if let Some(ts) = fields.timestamp_ms {
        push_field(&mut out, "x-timestamp", Some(&ts.to_string()));
    }
    push_field(&mut out, "x-version", Some("1.0"));
    push_field(&mut out, "x-status", fields.status);
    push_field(&mut out, "x-code", fields.code);
    push_field(&mut out, "x-error", fields.error);
    push_field(&mut out, "x-charset", fields.charset);
    push_field(&mut out, "x-signType", fields.sign_type);
    push_field(&mut out, "x-sign", fields.sign);
    out.push('}');
    if let Some(data) = data {
        out.push_str(",\"data\":");
        out.push_str(data);
    }
    out.push('}');
    out
}

/// Writes the `data` object: `{"header":{appId, msgApi[, app_cert_sn,
/// alipay_root_cert_sn]},"content":<content>}` (PROTOCOL §4–5). This text is what
/// gets signed.
pub(crate) fn write_data(header: &DataHeader, content: Option<&str>) -> String {
    let mut out = String::with_capacity(96 + content.map_or(0, str::len));
    out.push_str("{\"header\":{");
    let fields = [
        ("appId", &header.app_id),
        ("msgApi", &header.msg_api),
        ("app_cert_sn", &header.app_cert_sn),
        ("alipay_root_cert_sn", &header.alipay_root_cert_sn),
    ];
    let mut first = true;
    for (key, value) in fields {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            if !first {
                out.push(',');
            }
            first = false;
            push_json_string(&mut out, key);
            out.push(':');
            push_json_string(&mut out, value);
        }
    }
    out.push('}');
    if let Some(content) = content {
        out.push_str(",\"content\":");
        out.push_str(content);
    }
    out.push('}');
    out
}

fn push_field(out: &mut String, key: &str, value: Option<&str>) {
    if let Some(value) = value.filter(|v| !v.is_empty()) {
        out.push(',');
        push_json_string(out, key);
        out.push(':');
        push_json_string(out, value);
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_string(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        // serde_json escapes exactly what JSON requires; serialising a str cannot fail.
        out.push_str(&serde_json::to_string(s).expect("a str always serialises"));
    }
}

/// Checks that `text` is one JSON object (the shape `bizContent` must have) and returns
/// it without surrounding whitespace.
pub(crate) fn json_object<'a>(text: &'a str, limits: &FrameLimits) -> Result<&'a str, FrameError> {
    if json_scan::nesting_exceeds(text, limits.max_json_depth) {
        return Err(FrameError::TooDeep {
            limit: limits.max_json_depth,
        });
    }
    let raw: &RawValue = serde_json::from_str(text).map_err(json_error)?;
    if is_object(raw) {
        Ok(raw.get())
    } else {
        Err(FrameError::NotAnObject {
            part: "data.content",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Frame<'_>, FrameError> {
        Frame::parse(text, &FrameLimits::default())
    }

    const ACK: &str = r#"{"protocol":{"x-type":"message","x-cmd":"CONSUME_ACK","x-msgId":"m","x-status":"SUCCESS"}}"#;

    #[test]
    fn headers_trimmed_unknown_ignored() {
        let text = format!("from-sys: a \r\nX-Other:1\r\nstream-id:s:with:colons\r\n\r\n{ACK}");
        let f = parse(&text).unwrap();
        assert_eq!(f.headers.from_sys.as_deref(), Some("a"));
        assert_eq!(f.headers.stream_id.as_deref(), Some("s:with:colons"));
        assert_eq!(f.headers.from_sys_ip, None);
        let text = format!("\r\n\r\n{ACK}");
        assert_eq!(parse(&text).unwrap().headers, FrameHeaders::default());
    }

    #[test]
    fn malformed_cases_are_typed() {
        let limits = FrameLimits {
            max_frame_bytes: 200,
            max_header_lines: 2,
            max_header_line_bytes: 10,
            max_json_depth: 3,
        };
        let p = |t: &str| Frame::parse(t, &limits).unwrap_err();
        assert_eq!(p(ACK), FrameError::NoHeaderEnd);
        assert!(matches!(
            p(&"x".repeat(201)),
            FrameError::TooLarge { size: 201, .. }
        ));
        assert!(matches!(
            p("a:1\r\nb:2\r\nc:3\r\n\r\n{}"),
            FrameError::TooManyHeaderLines { .. }
        ));
        assert!(matches!(
            p("a:12345678901\r\n\r\n{}"),
            FrameError::HeaderLineTooLong { line: 1, .. }
        ));
        assert_eq!(
            p("abc\r\n\r\n{}"),
            FrameError::HeaderLineWithoutColon { line: 1 }
        );
        assert_eq!(p("\r\n\r\n  "), FrameError::EmptyMessage);
        assert!(matches!(
            p("\r\n\r\n[[[[1]]]]"),
            FrameError::TooDeep { limit: 3 }
        ));
        assert!(matches!(
            p("\r\n\r\n{\"protocol\":"),
            FrameError::Json { .. }
        ));
        assert_eq!(
            p("\r\n\r\n{}"),
            FrameError::MissingField { field: "protocol" }
        );
        assert_eq!(
            p("\r\n\r\n{\"protocol\":{\"x-cmd\":\"PRODUCE\"}}"),
            FrameError::MissingField { field: "x-type" }
        );
        assert!(matches!(
            p("\r\n\r\n{\"protocol\":{\"x-type\":\"x\",\"x-cmd\":\"PRODUCE\"}}"),
            FrameError::UnexpectedType { .. }
        ));
        assert!(matches!(
            p("\r\n\r\n{\"protocol\":{\"x-type\":\"message\",\"x-cmd\":\"PING\"}}"),
            FrameError::UnknownCommand { .. }
        ));
        assert!(matches!(
            p("\r\n\r\n{\"protocol\":{\"x-type\":\"message\",\"x-timestamp\":1}}"),
            FrameError::Json { .. }
        ));
    }

    #[test]
    fn data_shapes() {
        let base = r#"{"protocol":{"x-type":"message","x-cmd":"CONSUME"},"data":"#;
        let p = |d: &str| {
            let text = format!("\r\n\r\n{base}{d}}}");
            parse(&text).map(|f| {
                f.data
                    .map(|d| (d.header, d.content.map(str::to_owned), d.text.to_owned()))
            })
        };
        assert_eq!(
            p("1").unwrap_err(),
            FrameError::NotAnObject { part: "data" }
        );
        assert_eq!(
            p(r#"{"header":[]}"#).unwrap_err(),
            FrameError::NotAnObject {
                part: "data.header"
            }
        );
        assert_eq!(
            p(r#"{"content":"x"}"#).unwrap_err(),
            FrameError::NotAnObject {
                part: "data.content"
            }
        );
        let (header, content, text) = p(r#"{"header":{"appId":"1"},"content":{"k":"v"}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(header.app_id.as_deref(), Some("1"));
        assert_eq!(content.as_deref(), Some(r#"{"k":"v"}"#));
        assert_eq!(text, r#"{"header":{"appId":"1"},"content":{"k":"v"}}"#);
    }

    #[test]
    fn data_key_inside_protocol_is_ambiguous() {
        let text = "\r\n\r\n{\"protocol\":{\"x-type\":\"message\",\"x-cmd\":\"CONSUME\",\"data\" : {}},\"data\":{\"content\":{}}}";
        // serde ignores the unknown protocol key, but the textual rule would sign `{}`.
        assert_eq!(parse(text).unwrap_err(), FrameError::AmbiguousData);
    }

    #[test]
    fn duplicate_keys_rejected() {
        let text = "\r\n\r\n{\"protocol\":{\"x-type\":\"message\",\"x-cmd\":\"CONSUME\"},\"data\":{},\"data\":{}}";
        assert!(matches!(parse(text).unwrap_err(), FrameError::Json { .. }));
    }

    #[test]
    fn write_orders_fields_and_escapes() {
        let headers = FrameHeaders::default();
        let fields = ProtocolOut {
            msg_id: Some("a\"b"),
            ..ProtocolOut::default()
        };
        let text = write_frame(&headers, Command::ConsumeAck, &fields, None);
        assert_eq!(
            text,
            "\r\n\r\n{\"protocol\":{\"x-type\":\"message\",\"x-cmd\":\"CONSUME_ACK\",\"x-msgId\":\"a\\\"b\",\"x-version\":\"1.0\"}}"
        );
        let f = parse(&text).unwrap();
        assert_eq!(f.protocol.msg_id.as_deref(), Some("a\"b"));
    }
}
