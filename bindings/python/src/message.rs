//! What the message channel hands the application: a verified [`Message`] (a CONSUME
//! the session delivers, PROTOCOL §5–6) and the platform's answer to a send
//! ([`ProduceAck`] with its [`ProduceCode`], PROTOCOL §7).

use alipay_msg_core::client::{Delivery, DeliveryId};
use alipay_msg_core::produce_ack::{ProduceAck as CoreProduceAck, ProduceCode as CoreProduceCode};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// A verified platform message (a CONSUME whose signature, app id and timestamp checked
/// out; PROTOCOL §5–6), delivered once per `msg_id` while it is being handled.
///
/// Answer it with ClientSession.complete(message, success, now) — or, from the
/// clients, `await msg.ack()` / `msg.ack()` — only once it has been handled: SUCCESS
/// tells the platform to forget it, FAIL makes it deliver the message again later.
/// Immutable.
///
/// Attributes:
///     msg_id (str): `x-msgId`, the same across redeliveries of the message.
///     msg_api (str): The message type, e.g. "alipay.open.mini.version.audit.passed".
///     app_id (str): The app the message is for (always the session's).
///     timestamp_ms (int | None): `x-timestamp`, milliseconds since the Unix epoch.
///     biz_content (dict): The business content, the verified JSON object read with
///         json.loads (integers of any size exact, fractions as float), on first use.
///     biz_content_text (str): The exact text of the verified JSON object.
#[pyclass(frozen, module = "alipay_msg.session", name = "Message")]
pub struct Message {
    delivery: Delivery,
    biz_content: PyOnceLock<Py<PyAny>>,
}

impl Message {
    pub(crate) fn new(delivery: Delivery) -> Self {
        Message {
            delivery,
            biz_content: PyOnceLock::new(),
        }
    }

    /// The handle to complete it with.
    pub(crate) fn delivery_id(&self) -> DeliveryId {
        self.delivery.id
    }
}

#[pymethods]
impl Message {
    /// `x-msgId` (str), the same across redeliveries.
    #[getter]
    fn msg_id(&self) -> &str {
        self.delivery.msg_id()
    }

    /// The message type (str), e.g. "alipay.open.mini.version.audit.passed".
    #[getter]
    fn msg_api(&self) -> &str {
        self.delivery.msg_api()
    }

    /// The app the message is for (str, the session's).
    #[getter]
    fn app_id(&self) -> &str {
        self.delivery.frame.app_id().unwrap_or_default()
    }

    /// `x-timestamp` (int, milliseconds since the Unix epoch), or None.
    #[getter]
    fn timestamp_ms(&self) -> Option<i64> {
        self.delivery.frame.timestamp_ms
    }

    /// The exact text of the verified JSON object (str).
    #[getter]
    fn biz_content_text(&self) -> &str {
        self.delivery.biz_content()
    }

    /// The verified JSON object as a dict (json.loads of biz_content_text, once).
    #[getter]
    fn biz_content<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let value = self
            .biz_content
            .get_or_try_init(py, || -> PyResult<Py<PyAny>> {
                // The core checked that this is the text of one JSON object; Python's reader
                // accepts all of it short of nesting past the recursion limit (the frame
                // limits allow 64 levels).
                let json = py.import("json")?;
                Ok(json
                    .call_method1("loads", (self.delivery.biz_content(),))?
                    .unbind())
            })?;
        Ok(value.bind(py).clone())
    }

    fn __repr__(&self) -> String {
        format!(
            "<alipay_msg.session.Message msg_id={:?} msg_api={:?}>",
            self.delivery.msg_id(),
            self.delivery.msg_api()
        )
    }
}

/// The class of a PRODUCE_ACK's `x-code` (PROTOCOL §7), and what to do about it.
///
/// ACCEPTED (10000), SERVICE_UNAVAILABLE (20000: retry later), NO_PERMISSION (20001:
/// check the subscription), INVALID_REQUEST (30000: fix, do not retry as is),
/// MISSING_PARAMETER (30001: fix), ABANDONED (40000: nobody subscribes, or delivery
/// was abandoned: give up), UNKNOWN (any other code, or none on a FAIL).
#[pyclass(frozen, eq, hash, module = "alipay_msg", name = "ProduceCode")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProduceCode {
    /// `10000`: accepted.
    #[pyo3(name = "ACCEPTED")]
    Accepted,
    /// `20000` (`msg.unknow-error`): service unavailable; retry later.
    #[pyo3(name = "SERVICE_UNAVAILABLE")]
    ServiceUnavailable,
    /// `20001` (`msg.no-permission`): the app may not send this message.
    #[pyo3(name = "NO_PERMISSION")]
    NoPermission,
    /// `30000`: a bad request.
    #[pyo3(name = "INVALID_REQUEST")]
    InvalidRequest,
    /// `30001`: a required parameter is missing.
    #[pyo3(name = "MISSING_PARAMETER")]
    MissingParameter,
    /// `40000` (`msg.consumer-not-exist`, `msg.sys-abort`): give up.
    #[pyo3(name = "ABANDONED")]
    Abandoned,
    /// Any other code, or none on a FAIL.
    #[pyo3(name = "UNKNOWN")]
    Unknown,
}

impl ProduceCode {
    fn core(self) -> CoreProduceCode {
        match self {
            ProduceCode::Accepted => CoreProduceCode::Accepted,
            ProduceCode::ServiceUnavailable => CoreProduceCode::ServiceUnavailable,
            ProduceCode::NoPermission => CoreProduceCode::NoPermission,
            ProduceCode::InvalidRequest => CoreProduceCode::InvalidRequest,
            ProduceCode::MissingParameter => CoreProduceCode::MissingParameter,
            ProduceCode::Abandoned => CoreProduceCode::Abandoned,
            ProduceCode::Unknown => CoreProduceCode::Unknown,
        }
    }

    fn of(code: CoreProduceCode) -> Self {
        match code {
            CoreProduceCode::Accepted => ProduceCode::Accepted,
            CoreProduceCode::ServiceUnavailable => ProduceCode::ServiceUnavailable,
            CoreProduceCode::NoPermission => ProduceCode::NoPermission,
            CoreProduceCode::InvalidRequest => ProduceCode::InvalidRequest,
            CoreProduceCode::MissingParameter => ProduceCode::MissingParameter,
            CoreProduceCode::Abandoned => ProduceCode::Abandoned,
            _ => ProduceCode::Unknown,
        }
    }
}

#[pymethods]
impl ProduceCode {
    /// The `x-code` the platform writes for this class (str, e.g. "10000"), None for
    /// UNKNOWN.
    #[getter]
    fn code(&self) -> Option<&'static str> {
        self.core().code()
    }

    /// What the platform's table says to do, in a few words (str).
    #[getter]
    fn advice(&self) -> &'static str {
        self.core().advice()
    }
}

/// The platform's answer to a send (a PRODUCE_ACK, PROTOCOL §7), matched to it by
/// `stream_id`. A FAIL is an answer too: see `result` and `is_retryable`. Immutable.
///
/// Attributes:
///     stream_id (str): The stream id send returned.
///     msg_id (str | None): The `x-msgId` the platform gave the message, when accepted.
///     status (str): `x-status`, "SUCCESS" or "FAIL".
///     code (str | None): `x-code` as received, e.g. "10000", "20000".
///     error (str | None): `x-error`, e.g. "msg.invalid-sign".
///     result (ProduceCode): The class of the code (a SUCCESS without a code counts as
///         ACCEPTED).
///     is_success (bool): The platform accepted the message (SUCCESS and ACCEPTED).
///     is_retryable (bool): Sending the same message later may succeed (only
///         SERVICE_UNAVAILABLE, 20000).
#[pyclass(frozen, module = "alipay_msg", name = "ProduceAck")]
pub struct ProduceAck {
    ack: CoreProduceAck,
}

impl ProduceAck {
    pub(crate) fn new(ack: CoreProduceAck) -> Self {
        ProduceAck { ack }
    }
}

#[pymethods]
impl ProduceAck {
    /// The stream id send returned (str).
    #[getter]
    fn stream_id(&self) -> &str {
        &self.ack.stream_id
    }

    /// The `x-msgId` the platform gave the message (str), when accepted; else None.
    #[getter]
    fn msg_id(&self) -> Option<&str> {
        self.ack.msg_id.as_deref()
    }

    /// `x-status` (str): "SUCCESS" or "FAIL".
    #[getter]
    fn status(&self) -> &'static str {
        self.ack.status.as_str()
    }

    /// `x-code` as received (str, e.g. "10000"), or None.
    #[getter]
    fn code(&self) -> Option<&str> {
        self.ack.code.as_deref()
    }

    /// `x-error` (str, e.g. "msg.invalid-sign"), or None.
    #[getter]
    fn error(&self) -> Option<&str> {
        self.ack.error.as_deref()
    }

    /// The class of the code (ProduceCode); a SUCCESS without a code is ACCEPTED.
    #[getter]
    fn result(&self) -> ProduceCode {
        ProduceCode::of(self.ack.result())
    }

    /// Whether the platform accepted the message (bool).
    #[getter]
    fn is_success(&self) -> bool {
        self.ack.is_success()
    }

    /// Whether sending the same message later may succeed (bool: SERVICE_UNAVAILABLE).
    #[getter]
    fn is_retryable(&self) -> bool {
        self.ack.is_retryable()
    }

    fn __repr__(&self) -> String {
        format!(
            "<alipay_msg.ProduceAck stream_id={:?} status={} code={:?} error={:?} msg_id={:?}>",
            self.ack.stream_id,
            self.ack.status.as_str(),
            self.ack.code.as_deref().unwrap_or(""),
            self.ack.error.as_deref().unwrap_or(""),
            self.ack.msg_id.as_deref().unwrap_or(""),
        )
    }
}
