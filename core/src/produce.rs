//! PRODUCE (app → platform), PROTOCOL §5 and §7.

use crate::charset::Charset;
use crate::frame::{
    json_object, write_data, write_frame, Command, DataHeader, Frame, FrameError, FrameHeaders,
    FrameLimits, Protocol, ProtocolOut, SignatureStatus, SignedData,
};
use crate::signature::{SignatureError, Signer, Verifier};

/// Why a PRODUCE could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// `msg_api` is empty.
    #[error("msg_api is empty")]
    EmptyMsgApi,
    /// The business content is not one JSON object.
    #[error("biz_content must be a JSON object: {0}")]
    BizContent(FrameError),
    /// Signing failed.
    #[error(transparent)]
    Signature(#[from] SignatureError),
}

/// What a PRODUCE says; [`ProduceRequest::sign_and_encode`] writes the frame.
///
/// The `data` object is `{"header":{"appId":..,"msgApi":..[,cert SNs]},"content":<biz>}`
/// and its exact text is signed with the app key (PROTOCOL §5). There is no `x-msgId`;
/// the stream id in the header line matches the PRODUCE_ACK (PROTOCOL §7).
#[derive(Debug, Clone, Copy)]
pub struct ProduceRequest<'a> {
    /// The app id.
    pub app_id: &'a str,
    /// The message API name, e.g. `alipay.open.app.openbizmock.message.send`.
    pub msg_api: &'a str,
    /// Business content: the text of one JSON object.
    pub biz_content: &'a str,
    /// Certificate mode: `(app_cert_sn, alipay_root_cert_sn)`.
    pub cert_sns: Option<(&'a str, &'a str)>,
    /// The stream id (see [`crate::stream_id::StreamIdGenerator`]).
    pub stream_id: &'a str,
    /// `x-timestamp`: milliseconds since the epoch at sending.
    pub timestamp_ms: i64,
    /// `x-charset`.
    pub charset: Charset,
}

impl ProduceRequest<'_> {
    /// The `data` text that gets signed.
    pub fn data_text(&self, limits: &FrameLimits) -> Result<String, ProduceError> {
        if self.msg_api.is_empty() {
            return Err(ProduceError::EmptyMsgApi);
        }
        let content = json_object(self.biz_content, limits).map_err(ProduceError::BizContent)?;
        let header = DataHeader {
            app_id: Some(self.app_id.to_owned()),
            msg_api: Some(self.msg_api.to_owned()),
            app_cert_sn: self.cert_sns.map(|(a, _)| a.to_owned()),
            alipay_root_cert_sn: self.cert_sns.map(|(_, r)| r.to_owned()),
        };
        Ok(write_data(&header, Some(content)))
    }

    /// Signs the `data` text with the app key and writes the whole frame.
    pub fn sign_and_encode(
        &self,
        app_key: &Signer,
        limits: &FrameLimits,
    ) -> Result<String, ProduceError> {
        let data = self.data_text(limits)?;
        let sign = app_key.sign_text(&data, self.charset)?;
        let fields = ProtocolOut {
            timestamp_ms: Some(self.timestamp_ms),
            charset: Some(self.charset.as_str()),
            sign_type: Some(app_key.sign_type().as_str()),
            sign: Some(&sign),
            ..ProtocolOut::default()
        };
        Ok(write_frame(
            &FrameHeaders::with_stream_id(self.stream_id),
            Command::Produce,
            &fields,
            Some(&data),
        ))
    }
}

/// A received PRODUCE (platform side: the simulator checks these).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceFrame {
    /// Header lines; the ack copies the stream id.
    pub headers: FrameHeaders,
    /// `x-timestamp`, when present.
    pub timestamp_ms: Option<i64>,
    /// The `protocol` object as received.
    pub protocol: Protocol,
    /// `data.header`.
    pub data_header: DataHeader,
    /// Exact text of `data` (empty when absent).
    pub data: String,
    /// Exact text of `data.content`, when present.
    pub biz_content: Option<String>,
}

impl ProduceFrame {
    /// Parses a frame that must be a PRODUCE.
    pub fn parse(text: &str, limits: &FrameLimits) -> Result<Self, FrameError> {
        Self::from_frame(Frame::parse(text, limits)?)
    }

    /// The typed view of a parsed PRODUCE.
    pub fn from_frame(frame: Frame<'_>) -> Result<Self, FrameError> {
        if frame.command != Command::Produce {
            return Err(FrameError::UnexpectedCommand { cmd: frame.command });
        }
        let timestamp_ms = frame.protocol.timestamp_ms()?;
        let (data, biz_content, data_header) = match frame.data {
            None => (String::new(), None, DataHeader::default()),
            Some(d) => (d.text.to_owned(), d.content.map(str::to_owned), d.header),
        };
        Ok(ProduceFrame {
            headers: frame.headers,
            timestamp_ms,
            protocol: frame.protocol,
            data_header,
            data,
            biz_content,
        })
    }

    /// Checks `x-sign` over the exact `data` text with the app's public key.
    pub fn verify(&self, app: &Verifier) -> SignatureStatus {
        SignedData {
            sign: self.protocol.sign.as_deref(),
            sign_type: self.protocol.sign_type.as_deref(),
            charset: self.protocol.charset.as_deref(),
            data: &self.data,
        }
        .verify(app)
    }
}
