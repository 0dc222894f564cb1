//! PRODUCE_ACK: the platform's answer to a PRODUCE, matched by stream id (PROTOCOL §7).

use std::fmt;

use crate::consume::AckStatus;
use crate::frame::{
    write_frame, Command, Frame, FrameError, FrameHeaders, FrameLimits, Protocol, ProtocolOut,
};

/// The class of an `x-code`, from the platform's table (PROTOCOL §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProduceCode {
    /// `10000`: accepted.
    Accepted,
    /// `20000` (`msg.unknow-error`): service unavailable; retry later.
    ServiceUnavailable,
    /// `20001` (`msg.no-permission`): the app may not send this message; check the
    /// subscription.
    NoPermission,
    /// `30000`: bad request (invalid parameter, signature, app id, msgApi, timestamp,
    /// sign type, version or charset; empty content). Fix; do not retry as is.
    InvalidRequest,
    /// `30001`: a required parameter is missing. Fix.
    MissingParameter,
    /// `40000` (`msg.consumer-not-exist`, `msg.sys-abort`): nobody subscribes, or
    /// delivery was abandoned. Give up.
    Abandoned,
    /// Any other code, or none on a FAIL.
    Unknown,
}

impl ProduceCode {
    /// Classifies an `x-code`.
    pub fn from_code(code: &str) -> Self {
        match code {
            "10000" => ProduceCode::Accepted,
            "20000" => ProduceCode::ServiceUnavailable,
            "20001" => ProduceCode::NoPermission,
            "30000" => ProduceCode::InvalidRequest,
            "30001" => ProduceCode::MissingParameter,
            "40000" => ProduceCode::Abandoned,
            _ => ProduceCode::Unknown,
        }
    }

    /// The code the platform writes for this class (`None` for [`ProduceCode::Unknown`]).
    pub const fn code(self) -> Option<&'static str> {
        match self {
            ProduceCode::Accepted => Some("10000"),
            ProduceCode::ServiceUnavailable => Some("20000"),
            ProduceCode::NoPermission => Some("20001"),
            ProduceCode::InvalidRequest => Some("30000"),
            ProduceCode::MissingParameter => Some("30001"),
            ProduceCode::Abandoned => Some("40000"),
            ProduceCode::Unknown => None,
        }
    }

    /// What the table says to do, in a few words.
    pub const fn advice(self) -> &'static str {
        match self {
            ProduceCode::Accepted => "accepted",
            ProduceCode::ServiceUnavailable => "service unavailable, retry later",
            ProduceCode::NoPermission => "not allowed to send this message, check the subscription",
            ProduceCode::InvalidRequest => "bad request, fix it and do not retry as is",
            ProduceCode::MissingParameter => "missing parameter, fix it",
            ProduceCode::Abandoned => "nobody subscribes or delivery abandoned, give up",
            ProduceCode::Unknown => "unknown code",
        }
    }
}

/// A PRODUCE_ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceAck {
    /// The stream id of the PRODUCE this answers.
    pub stream_id: String,
    /// `x-msgId` the platform gave the message, when accepted.
    pub msg_id: Option<String>,
    /// `x-status`.
    pub status: AckStatus,
    /// `x-code`, as received.
    pub code: Option<String>,
    /// `x-error`, e.g. `msg.invalid-sign`.
    pub error: Option<String>,
}

impl ProduceAck {
    /// Parses a frame that must be a PRODUCE_ACK. The stream id header is required.
    ///
    /// ```
    /// use alipay_msg_core::{frame::FrameLimits, produce_ack::{ProduceAck, ProduceCode}};
    /// let text = "stream-id:c1\r\n\r\n{\"protocol\":{\"x-type\":\"message\",\"x-cmd\":\"PRODUCE_ACK\",\"x-version\":\"1.0\",\"x-status\":\"FAIL\",\"x-code\":\"20000\",\"x-error\":\"msg.unknow-error\"}}";
    /// let ack = ProduceAck::parse(text, &FrameLimits::default()).unwrap();
    /// assert_eq!(ack.result(), ProduceCode::ServiceUnavailable);
    /// assert!(ack.is_retryable() && !ack.is_success());
    /// ```
    pub fn parse(text: &str, limits: &FrameLimits) -> Result<Self, FrameError> {
        Self::from_frame(Frame::parse(text, limits)?)
    }

    /// The typed view of a parsed PRODUCE_ACK.
    pub fn from_frame(frame: Frame<'_>) -> Result<Self, FrameError> {
        if frame.command != Command::ProduceAck {
            return Err(FrameError::UnexpectedCommand { cmd: frame.command });
        }
        let stream_id = frame
            .headers
            .stream_id
            .filter(|s| !s.is_empty())
            .ok_or(FrameError::MissingField { field: "stream-id" })?;
        let p = frame.protocol;
        let status = AckStatus::parse(Protocol::required(&p.status, "x-status")?)?;
        Ok(ProduceAck {
            stream_id,
            msg_id: p.msg_id.filter(|s| !s.is_empty()),
            status,
            code: p.code.filter(|s| !s.is_empty()),
            error: p.error.filter(|s| !s.is_empty()),
        })
    }

    /// The code's class. A SUCCESS without a code counts as accepted.
    pub fn result(&self) -> ProduceCode {
        match (&self.code, self.status) {
            (Some(code), _) => ProduceCode::from_code(code),
            (None, AckStatus::Success) => ProduceCode::Accepted,
            (None, AckStatus::Fail) => ProduceCode::Unknown,
        }
    }

    /// The platform accepted the message.
    pub fn is_success(&self) -> bool {
        self.status == AckStatus::Success && self.result() == ProduceCode::Accepted
    }

    /// Sending the same message again later may succeed (only `20000`, service
    /// unavailable).
    pub fn is_retryable(&self) -> bool {
        self.result() == ProduceCode::ServiceUnavailable
    }

    /// The frame text (platform side).
    pub fn encode(&self) -> String {
        let fields = ProtocolOut {
            msg_id: self.msg_id.as_deref(),
            status: Some(self.status.as_str()),
            code: self.code.as_deref(),
            error: self.error.as_deref(),
            ..ProtocolOut::default()
        };
        write_frame(
            &FrameHeaders::with_stream_id(self.stream_id.as_str()),
            Command::ProduceAck,
            &fields,
            None,
        )
    }
}

impl fmt::Display for ProduceAck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.code.as_deref().unwrap_or("-"))?;
        if let Some(error) = &self.error {
            write!(f, " {error}")?;
        }
        write!(f, " ({})", self.result().advice())
    }
}
