//! CONSUME (platform → app) and CONSUME_ACK (app → platform), PROTOCOL §5–6.

use std::fmt;
use std::ops::Range;

use crate::charset::Charset;
use crate::frame::{
    clip, write_data, write_frame, Command, DataHeader, Frame, FrameError, FrameHeaders,
    FrameLimits, Protocol, ProtocolOut, SignatureStatus, SignedData,
};
use crate::signature::{SignType, SignatureError, Signer, Verifier};

/// A CONSUME frame: a platform message for the app (PROTOCOL §4–6).
///
/// Holds the exact `data` text; [`ConsumeFrame::verify`] checks the platform's
/// signature over it, and [`ConsumeFrame::biz_content`] is a slice of that same text, so
/// what is delivered is exactly what was verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeFrame {
    /// Header lines, copied into the ack.
    pub headers: FrameHeaders,
    /// `x-msgId`: the message's identity across redeliveries.
    pub msg_id: String,
    /// `x-timestamp` in milliseconds, when present.
    pub timestamp_ms: Option<i64>,
    /// `x-charset` as received.
    pub charset: Option<String>,
    /// `x-signType` as received.
    pub sign_type: Option<String>,
    /// `x-sign` as received.
    pub sign: Option<String>,
    /// `data.header`.
    pub data_header: DataHeader,
    /// Exact text of the `data` object (empty when absent).
    data: String,
    /// Where `data.content` sits in `data`.
    content: Option<Range<usize>>,
}

impl ConsumeFrame {
    /// Parses a frame that must be a CONSUME.
    ///
    /// ```
    /// # let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/frame_vectors.json")).unwrap()).unwrap();
    /// # let text = v["consume"]["frame"].as_str().unwrap();
    /// use alipay_msg_core::{consume::ConsumeFrame, frame::{FrameLimits, SignatureStatus}};
    /// use alipay_msg_core::{key::PublicKey, signature::Verifier};
    /// let pem = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/keys/alipay_public.pem")).unwrap();
    /// let verifier = Verifier::new(&PublicKey::from_pem_or_base64(&pem).unwrap()).unwrap();
    ///
    /// let consume = ConsumeFrame::parse(text, &FrameLimits::default()).unwrap();
    /// assert_eq!(consume.verify(&verifier), SignatureStatus::Valid);
    /// assert_eq!(consume.msg_api(), Some("alipay.open.mini.version.audit.rejected"));
    /// ```
    pub fn parse(text: &str, limits: &FrameLimits) -> Result<Self, FrameError> {
        Self::from_frame(Frame::parse(text, limits)?)
    }

    /// The typed view of a parsed frame whose command is CONSUME.
    pub fn from_frame(frame: Frame<'_>) -> Result<Self, FrameError> {
        if frame.command != Command::Consume {
            return Err(FrameError::UnexpectedCommand { cmd: frame.command });
        }
        let msg_id = Protocol::required(&frame.protocol.msg_id, "x-msgId")?.to_owned();
        let timestamp_ms = frame.protocol.timestamp_ms()?;
        let (data, content, data_header) = match frame.data {
            None => (String::new(), None, DataHeader::default()),
            Some(d) => {
                let content = d.content.map(|c| {
                    let start = c.as_ptr() as usize - d.text.as_ptr() as usize;
                    start..start + c.len()
                });
                (d.text.to_owned(), content, d.header)
            }
        };
        let p = frame.protocol;
        Ok(ConsumeFrame {
            headers: frame.headers,
            msg_id,
            timestamp_ms,
            charset: p.charset,
            sign_type: p.sign_type,
            sign: p.sign,
            data_header,
            data,
            content,
        })
    }

    /// The signed text: the exact `data` object as received.
    pub fn signed_content(&self) -> &str {
        &self.data
    }

    /// The business content (`data.content`), exact text of a JSON object; `{}` when the
    /// frame has none.
    pub fn biz_content(&self) -> &str {
        match &self.content {
            Some(range) => &self.data[range.clone()],
            None => "{}",
        }
    }

    /// `data.header.appId`.
    pub fn app_id(&self) -> Option<&str> {
        self.data_header.app_id.as_deref()
    }

    /// `data.header.msgApi`.
    pub fn msg_api(&self) -> Option<&str> {
        self.data_header.msg_api.as_deref()
    }

    /// Checks `x-sign` over the exact `data` text with the platform key, using
    /// `x-signType` and `x-charset` (PROTOCOL §5). `x-msgId` and the header lines are
    /// outside the signature.
    pub fn verify(&self, platform: &Verifier) -> SignatureStatus {
        SignedData {
            sign: self.sign.as_deref(),
            sign_type: self.sign_type.as_deref(),
            charset: self.charset.as_deref(),
            data: &self.data,
        }
        .verify(platform)
    }

    /// The ack for this message, on the same connection (PROTOCOL §6).
    pub fn ack(&self, status: AckStatus) -> ConsumeAck {
        ConsumeAck {
            headers: self.headers.clone(),
            msg_id: self.msg_id.clone(),
            status,
        }
    }
}

/// The parts of a CONSUME the platform side writes (simulator, tests).
#[derive(Debug, Clone, Copy)]
pub struct ConsumeOut<'a> {
    /// Header lines.
    pub headers: &'a FrameHeaders,
    /// `x-msgId`.
    pub msg_id: &'a str,
    /// `x-timestamp`.
    pub timestamp_ms: i64,
    /// `appId` and `msgApi` (and cert SNs).
    pub data_header: &'a DataHeader,
    /// `data.content`: exact text of a JSON object.
    pub biz_content: &'a str,
    /// `x-charset`.
    pub charset: Charset,
}

impl ConsumeOut<'_> {
    /// Writes the CONSUME, signed with the platform key over the `data` text.
    pub fn sign_and_encode(&self, platform: &Signer) -> Result<String, SignatureError> {
        let data = write_data(self.data_header, Some(self.biz_content));
        let sign = platform.sign_text(&data, self.charset)?;
        Ok(self.encode_with_sign(&data, Some((platform.sign_type(), &sign))))
    }

    /// Writes the CONSUME with the given `data` text and `x-signType`/`x-sign` (or
    /// none): the simulator's way to forge, corrupt or leave out signatures.
    pub fn encode_with_sign(&self, data: &str, sign: Option<(SignType, &str)>) -> String {
        let fields = ProtocolOut {
            msg_id: Some(self.msg_id),
            timestamp_ms: Some(self.timestamp_ms),
            charset: Some(self.charset.as_str()),
            sign_type: sign.map(|(t, _)| t.as_str()),
            sign: sign.map(|(_, s)| s),
            ..ProtocolOut::default()
        };
        write_frame(self.headers, Command::Consume, &fields, Some(data))
    }

    /// The `data` text this CONSUME signs.
    pub fn data_text(&self) -> String {
        write_data(self.data_header, Some(self.biz_content))
    }
}

/// `x-status` of an ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckStatus {
    /// The app handled the message.
    Success,
    /// The app did not handle it; the platform delivers it again later.
    Fail,
}

impl AckStatus {
    /// `SUCCESS` or `FAIL`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AckStatus::Success => "SUCCESS",
            AckStatus::Fail => "FAIL",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, FrameError> {
        match s {
            "SUCCESS" => Ok(AckStatus::Success),
            "FAIL" => Ok(AckStatus::Fail),
            _ => Err(FrameError::BadStatus { status: clip(s) }),
        }
    }
}

impl fmt::Display for AckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CONSUME_ACK: header lines copied from the CONSUME, its `x-msgId` and the status.
/// Acks are not signed (PROTOCOL §5–6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeAck {
    /// Header lines of the CONSUME.
    pub headers: FrameHeaders,
    /// `x-msgId` of the CONSUME.
    pub msg_id: String,
    /// SUCCESS or FAIL.
    pub status: AckStatus,
}

impl ConsumeAck {
    /// The frame text.
    pub fn encode(&self) -> String {
        let fields = ProtocolOut {
            msg_id: Some(&self.msg_id),
            status: Some(self.status.as_str()),
            ..ProtocolOut::default()
        };
        write_frame(&self.headers, Command::ConsumeAck, &fields, None)
    }

    /// Parses a frame that must be a CONSUME_ACK (platform side).
    pub fn parse(text: &str, limits: &FrameLimits) -> Result<Self, FrameError> {
        Self::from_frame(Frame::parse(text, limits)?)
    }

    /// The typed view of a parsed CONSUME_ACK.
    pub fn from_frame(frame: Frame<'_>) -> Result<Self, FrameError> {
        if frame.command != Command::ConsumeAck {
            return Err(FrameError::UnexpectedCommand { cmd: frame.command });
        }
        let msg_id = Protocol::required(&frame.protocol.msg_id, "x-msgId")?.to_owned();
        let status = AckStatus::parse(Protocol::required(&frame.protocol.status, "x-status")?)?;
        Ok(ConsumeAck {
            headers: frame.headers,
            msg_id,
            status,
        })
    }
}
