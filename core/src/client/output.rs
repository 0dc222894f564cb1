//! What a [`super::ClientSession`] asks of its adapter: things to transmit, events to
//! deliver, and when to call back.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use crate::charset::MalformedText;
use crate::consume::ConsumeFrame;
use crate::frame::{Command, FrameError, InvalidSignature};
use crate::produce::ProduceError;
use crate::produce_ack::ProduceAck;
use crate::proxy::ProxyError;
use crate::register::RegisterError;
use crate::signature::SignatureError;
use crate::ws::handshake::{HandshakeError, RequestError};
use crate::ws::{CloseCode, ProtocolViolation};

use super::check::CheckJob;
use super::connect_error::{CertificateProblem, ConnectError};
use super::link::ConnId;
use crate::window::{WindowError, WindowQuery};

/// One thing for the adapter to do. After every input, call
/// [`super::ClientSession::poll_output`] until it returns [`Output::Timeout`] or
/// [`Output::Done`].
#[derive(Debug)]
#[must_use]
// An output is moved straight from the queue to the adapter; boxing the event would add
// an allocation per message for nothing.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum Output {
    /// Network work: connect, write, close.
    Transmit(Transmit),
    /// A text frame to check, only after [`super::ClientSession::set_check_offload`]
    /// with 2 or more: run it with [`super::FrameChecker::run`] (on any thread) and give
    /// the result back with [`super::Input::Checked`], in any order.
    Check(CheckJob),
    /// A question for the shared duplicate window, only with
    /// [`super::ClientConfig::shared_window`] set: ask the store (off the thread or task
    /// that drives the session: it may be slow) and give the answer back with
    /// [`super::Input::WindowAnswered`] and the same `id`, exactly once, in any order.
    /// Until then the message it is about counts toward `max_in_flight`.
    Window(WindowQuery),
    /// Something to tell the application.
    Event(Event),
    /// Nothing more to do now: call [`super::ClientSession::handle_timeout`] at this
    /// instant (or earlier, when an input arrives).
    Timeout(Instant),
    /// The session has ended (shut down, or stopped by a fatal error); drop it.
    Done,
}

/// Network work for the adapter, on the connections the session asks for. Every
/// `Connect` is followed, sooner or later, by exactly one `Close` for the same
/// connection; do the transmits of one connection in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transmit {
    /// Open a TCP connection to `host:port`, wrapped in TLS with `host` as the server
    /// name when `tls`; then report [`super::Input::Connected`] (or
    /// [`super::Input::ConnectFailed`]), every read as [`super::Input::Bytes`], and its
    /// end as [`super::Input::Closed`].
    Connect {
        /// The new connection.
        conn: ConnId,
        /// Host name or address (an IPv6 address without brackets).
        host: String,
        /// TCP port.
        port: u16,
        /// Wrap in TLS (PROTOCOL §1: `https`/`wss`).
        tls: bool,
    },
    /// Write `bytes` on `conn` (after every earlier `Write` for it).
    Write {
        /// The connection.
        conn: ConnId,
        /// The bytes: an HTTP request, or websocket frames.
        bytes: Vec<u8>,
    },
    /// Close `conn` after writing every earlier `Write` for it, and forget it: later
    /// input for it is ignored.
    Close {
        /// The connection.
        conn: ConnId,
    },
}

/// An opaque handle for one delivery awaiting [`super::ClientSession::complete`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryId(pub(crate) u64);

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "delivery-{}", self.0)
    }
}

/// A verified message for the application's handler.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Pass to [`super::ClientSession::complete`].
    pub id: DeliveryId,
    /// The verified CONSUME.
    pub frame: ConsumeFrame,
}

impl Delivery {
    /// `x-msgId`.
    pub fn msg_id(&self) -> &str {
        &self.frame.msg_id
    }

    /// `msgApi`, e.g. `alipay.open.mini.version.audit.passed`.
    pub fn msg_api(&self) -> &str {
        self.frame.msg_api().unwrap_or_default()
    }

    /// The business content: exact text of the verified JSON object.
    pub fn biz_content(&self) -> &str {
        self.frame.biz_content()
    }
}

/// What the handler made of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled: ack SUCCESS.
    Success,
    /// Not handled: ack FAIL, the platform delivers it again later.
    Failure(String),
}

impl Outcome {
    /// The failure of a handler that panicked, with the panic's message (adapters catch
    /// handler panics and answer FAIL).
    ///
    /// ```
    /// use alipay_msg_core::client::Outcome;
    /// let payload = std::panic::catch_unwind(|| panic!("boom")).unwrap_err();
    /// assert_eq!(Outcome::from_panic(&*payload), Outcome::Failure("handler panicked: boom".into()));
    /// ```
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Outcome {
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic".to_owned());
        Outcome::Failure(format!("handler panicked: {text}"))
    }
}

/// Something for the application.
#[derive(Debug)]
#[non_exhaustive]
// `Message` is the common case; see `Output`.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// A connection attempt starts (attempt 1 is the first since the last success).
    Connecting {
        /// Attempt number.
        attempt: u32,
    },
    /// The websocket is open.
    Connected,
    /// The connection (or an attempt) ended; the session reconnects after `retry_in`
    /// unless it is shutting down.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
        /// When the next attempt starts, if one will.
        retry_in: Option<Duration>,
    },
    /// A verified message to handle; answer with [`super::ClientSession::complete`].
    Message(Delivery),
    /// A message id already handled successfully (or being handled) came again. It is
    /// not delivered again; the ack is SUCCESS (or follows the delivery in progress).
    Duplicate {
        /// `x-msgId`.
        msg_id: String,
        /// The first delivery is still being handled.
        in_flight: bool,
    },
    /// A frame that is not delivered (PROTOCOL §5–6). Unverified messages are answered
    /// FAIL; malformed ones cannot be answered.
    Rejected {
        /// `x-msgId`, when the frame had one.
        msg_id: Option<String>,
        /// Why.
        reason: RejectReason,
    },
    /// The answer to [`super::ClientSession::send`].
    ProduceAck {
        /// The stream id `send` returned.
        stream_id: String,
        /// The platform's answer, or why there is none.
        result: Result<ProduceAck, SendError>,
    },
    /// The platform refused the configuration; the session stops (see
    /// `retry_on_auth_error`).
    Fatal(RegisterError),
    /// No connection opened within `first_connect_timeout` of the session's start; the
    /// session stops. Once a connection has opened, reconnects go on for ever.
    GaveUp {
        /// `first_connect_timeout`.
        waited: Duration,
        /// Why the last attempt failed, if one did.
        last: Option<DisconnectReason>,
    },
    /// A configured key works but is weak (e.g. under 2048 bits): reported once, first,
    /// when the session starts.
    KeyWarning {
        /// Which key: `app private key`, `platform public key`, ….
        which: &'static str,
        /// What is wrong with it.
        warning: crate::key::KeyWarning,
    },
    /// A delivery was completed with [`Outcome::Failure`] (the handler returned an
    /// error, panicked, or its answer was dropped): it was acked FAIL and the platform
    /// delivers it again later. Emitted by [`super::ClientSession::complete`].
    HandlerFailed {
        /// `x-msgId`.
        msg_id: String,
        /// The application's text of the failure ([`Outcome::Failure`]).
        error: String,
    },
    /// The shared duplicate window ([`super::ClientConfig::shared_window`]) could not
    /// answer a claim or a record: with [`crate::window::StoreFailure::Fail`] the
    /// message was acked FAIL (the platform redelivers it; a success not recorded is
    /// recorded again in the background); with
    /// [`crate::window::StoreFailure::LocalWindow`] it went on with the local window
    /// (`fallback`).
    SharedWindowFailed {
        /// `x-msgId`.
        msg_id: String,
        /// `claim` or `record`.
        op: &'static str,
        /// The store's error.
        error: WindowError,
        /// Went on with the local window instead of acking FAIL.
        fallback: bool,
    },
    /// The shared duplicate window answers again after `failures` failed queries in a
    /// row.
    SharedWindowRestored {
        /// Failed queries since the last answer.
        failures: u64,
    },
    /// Shutdown finished: in-flight deliveries completed (or the shutdown timeout
    /// passed) and the connection is closed.
    ShutdownComplete,
}

/// Why a connection or attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// `register.do` failed (PROTOCOL §3).
    Register(RegisterError),
    /// The upgrade parameters could not be signed (PROTOCOL §2).
    Sign(SignatureError),
    /// The upgrade request could not be written (RFC 6455 §4.1; e.g. an endpoint host
    /// that is not an authority).
    Request(RequestError),
    /// The server refused or botched the websocket upgrade (RFC 6455 §4.1).
    Handshake(HandshakeError),
    /// Register and upgrade took longer than `connect_timeout`.
    ConnectTimeout,
    /// No pong for `dead_after`: a half-open connection (PROTOCOL §8).
    Dead {
        /// How long no pong came.
        silent_for: Duration,
    },
    /// A connection could not be opened, or failed while reading or writing.
    Network(io::ErrorKind),
    /// The server's TLS certificate was refused ([`ConnectError::Certificate`]).
    Certificate(CertificateProblem),
    /// The TLS handshake failed for another reason ([`ConnectError::Tls`]).
    Tls(String),
    /// The HTTP proxy did not open the tunnel ([`ConnectError::Proxy`]).
    Proxy(ProxyError),
    /// The connection ended without a close handshake (end of stream).
    Eof,
    /// The platform closed the websocket (RFC 6455 §7): its close code (`None`: no
    /// code) and reason.
    ClosedByPeer {
        /// The platform's close code.
        code: Option<CloseCode>,
        /// The platform's reason.
        reason: String,
    },
    /// The platform broke RFC 6455 (or sent a message over the size limit); the
    /// connection was failed with [`ProtocolViolation::close_code`].
    Protocol(ProtocolViolation),
    /// Bytes kept arriving while reading was paused ([`super::ClientSession::wants_read`]
    /// was `false`), past the buffer of `limit` bytes.
    ReadOverflow {
        /// The buffer's limit, in bytes.
        limit: usize,
    },
    /// [`super::ClientSession::shutdown`].
    Shutdown,
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::Register(e) => write!(f, "{e}"),
            DisconnectReason::Sign(e) => write!(f, "signing the upgrade parameters: {e}"),
            DisconnectReason::Request(e) => write!(f, "websocket upgrade request: {e}"),
            DisconnectReason::Handshake(e) => write!(f, "websocket upgrade failed: {e}"),
            DisconnectReason::ConnectTimeout => f.write_str("connect attempt timed out"),
            DisconnectReason::Dead { silent_for } => {
                write!(
                    f,
                    "no pong for {}: connection dead",
                    HumanDuration(*silent_for)
                )
            }
            DisconnectReason::Network(kind) => {
                write!(f, "network error: {}", io::Error::from(*kind))
            }
            DisconnectReason::Certificate(problem) => {
                write!(f, "the server's TLS certificate was refused: {problem}")
            }
            DisconnectReason::Tls(what) => write!(f, "TLS handshake failed: {what}"),
            DisconnectReason::Proxy(e) => write!(f, "{e}"),
            DisconnectReason::Eof => f.write_str("connection closed by the peer"),
            DisconnectReason::ClosedByPeer { code, reason } => match code {
                Some(code) if reason.is_empty() => write!(f, "closed by the platform: {code}"),
                Some(code) => write!(f, "closed by the platform: {code} {reason}"),
                None => f.write_str("closed by the platform"),
            },
            DisconnectReason::Protocol(v) => write!(f, "websocket protocol error: {v}"),
            DisconnectReason::ReadOverflow { limit } => {
                write!(
                    f,
                    "more than {limit} bytes arrived while reading was paused"
                )
            }
            DisconnectReason::Shutdown => f.write_str("shut down"),
        }
    }
}

impl From<ConnectError> for DisconnectReason {
    fn from(error: ConnectError) -> Self {
        match error {
            ConnectError::Network(kind) => DisconnectReason::Network(kind),
            ConnectError::Certificate(problem) => DisconnectReason::Certificate(problem),
            ConnectError::Tls(what) => DisconnectReason::Tls(what),
            ConnectError::Proxy(e) => DisconnectReason::Proxy(e),
        }
    }
}

/// Why a frame was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RejectReason {
    /// The text frame's bytes are not valid in the app's charset (PROTOCOL §4); no ack
    /// is possible. The connection stays open (the platform's Java client would close
    /// it with 1007).
    #[error("undecodable frame: {0}")]
    Undecodable(MalformedText),
    /// The frame could not be read; no ack is possible.
    #[error("malformed frame: {0}")]
    Malformed(FrameError),
    /// No `x-sign`.
    #[error("unsigned message")]
    Unsigned,
    /// The signature is invalid.
    #[error("invalid signature: {0}")]
    BadSignature(InvalidSignature),
    /// `appId` is not this app's.
    #[error("message for app {app_id:?}, not this app")]
    ForeignAppId {
        /// The `appId` in the message.
        app_id: Option<String>,
    },
    /// `x-timestamp` is outside the accepted window.
    #[error("x-timestamp {timestamp_ms} is {direction} the accepted window")]
    Timestamp {
        /// The timestamp.
        timestamp_ms: i64,
        /// "older than" or "ahead of".
        direction: &'static str,
    },
    /// The session is shutting down and takes no new deliveries (answered FAIL).
    #[error("shutting down: not taking new messages")]
    ShuttingDown,
    /// No consumer was attached ([`super::ClientSession::set_consumer`]: no `run`, no
    /// `deliveries`) within `consumer_grace` of the message's arrival: answered FAIL at
    /// once, so that the platform redelivers it to a connection that consumes.
    #[error("no consumer attached within {} (a client that only sends): answered FAIL for redelivery", HumanDuration(*waited))]
    NoConsumer {
        /// How long the message waited for a consumer (`consumer_grace`).
        waited: Duration,
    },
    /// Another instance holds a live claim on the message in the shared duplicate window
    /// (it is being handled there): answered FAIL; the platform redelivers it later, when
    /// it is recorded as handled or the claim's lease has ended.
    #[error(
        "being handled by another instance (claimed in the shared duplicate window): answered FAIL"
    )]
    ClaimedElsewhere,
    /// Handled here, but its success could not be recorded in the shared duplicate
    /// window yet: answered FAIL until it is (it is recorded again in the background).
    #[error("handled, but not yet recorded in the shared duplicate window: answered FAIL")]
    NotRecorded,
    /// The application's side could not take the message
    /// ([`super::Application::deliver`] failed): answered FAIL.
    #[error("not delivered: {0}")]
    Undeliverable(super::DeliverError),
    /// A frame of a kind the client does not expect, or a PRODUCE_ACK for no pending
    /// send.
    #[error("unexpected {cmd} frame")]
    Unexpected {
        /// The command.
        cmd: Command,
    },
}

/// Why [`super::ClientSession::send`] failed or has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// No open connection.
    #[error("not connected")]
    NotConnected,
    /// `max_pending_sends` PRODUCEs are still unacknowledged.
    #[error("{limit} sends are already waiting for their PRODUCE_ACK")]
    TooManyPending {
        /// The limit.
        limit: usize,
    },
    /// Shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// The message could not be built.
    #[error(transparent)]
    Invalid(#[from] ProduceError),
    /// No PRODUCE_ACK within `send_timeout`. The platform may or may not have the
    /// message.
    #[error(
        "no PRODUCE_ACK within the send timeout; the platform may or may not have the message"
    )]
    Timeout,
    /// The connection closed before the PRODUCE_ACK. The platform may or may not have
    /// the message.
    #[error(
        "connection lost before the PRODUCE_ACK; the platform may or may not have the message"
    )]
    ConnectionLost,
}

/// [`super::ClientSession::complete`] was called with an unknown delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown or already completed {0}")]
pub struct UnknownDelivery(pub DeliveryId);

/// A duration as people read it in messages and logs: `350 ms`, `1.2 s`, `10 s`,
/// `2 min 5 s`, `25 h` (rounded; not for parsing). Under a second: whole milliseconds;
/// under a minute: seconds to a tenth; then minutes and seconds, or hours and minutes.
///
/// ```
/// use std::time::Duration;
/// use alipay_msg_core::client::HumanDuration;
/// assert_eq!(HumanDuration(Duration::from_millis(240)).to_string(), "240 ms");
/// assert_eq!(HumanDuration(Duration::from_secs(15 * 3600)).to_string(), "15 h");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms < 1_000 {
            return write!(f, "{ms} ms");
        }
        if ms < 60_000 {
            let tenths = (ms + 50) / 100;
            return if tenths.is_multiple_of(10) {
                write!(f, "{} s", tenths / 10)
            } else {
                write!(f, "{}.{} s", tenths / 10, tenths % 10)
            };
        }
        let secs = (ms + 500) / 1_000;
        let (h, m, s) = (secs / 3_600, secs / 60 % 60, secs % 60);
        match (h, m, s) {
            (0, m, 0) => write!(f, "{m} min"),
            (0, m, s) => write!(f, "{m} min {s} s"),
            (h, 0, _) => write!(f, "{h} h"),
            (h, m, _) => write!(f, "{h} h {m} min"),
        }
    }
}

#[cfg(test)]
mod human_duration_tests {
    use super::HumanDuration;
    use std::time::Duration;

    #[test]
    fn reads_as_people_write_it() {
        let text = |ms| HumanDuration(Duration::from_millis(ms)).to_string();
        assert_eq!(text(0), "0 ms");
        assert_eq!(text(350), "350 ms");
        assert_eq!(text(1_200), "1.2 s");
        assert_eq!(text(1_249), "1.2 s");
        assert_eq!(text(10_000), "10 s");
        assert_eq!(text(59_999), "60 s");
        assert_eq!(text(125_000), "2 min 5 s");
        assert_eq!(text(120_000), "2 min");
        assert_eq!(text(25 * 3_600_000), "25 h");
        assert_eq!(text(90 * 60_000), "1 h 30 min");
    }
}
