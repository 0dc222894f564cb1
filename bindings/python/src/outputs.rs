//! What `ClientSession.poll_output()` returns: one Python object per core [`Output`] —
//! the transmits ([`Connect`], [`Write`], [`Close`]), the events (a verified
//! [`crate::message::Message`], [`Connecting`], [`Connected`], [`Disconnected`], …), and
//! [`Timeout`] / [`Done`] when there is nothing more to do now, and the shared window's
//! queries ([`WindowQuery`]) with `Config.shared_window`.
//!
//! Every event carries `str(event)`: the one human line the Rust clients log for it
//! (the core's `ClientEvent` display); the kinds of reasons are the snake_case names the
//! Rust clients' JSON events use (`"network"`, `"bad_signature"`, …).

use alipay_msg_core::client::{
    ClientEvent, DisconnectReason, Event, Output, RejectReason, Transmit,
};
use alipay_msg_core::register::RegisterError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::IntoPyObjectExt;

use crate::errors::send_error;
use crate::message::{Message, ProduceAck};
use crate::window::WindowQuery;

/// Open a TCP connection to `host:port` (TLS with `host` as the server name when `tls`),
/// then report `Input.connected(conn_id)` or `Input.connect_failed(conn_id, error)`,
/// every read as `Input.bytes(conn_id, data)` and its end as `Input.closed(conn_id,
/// error)`.
///
/// Attributes:
///     conn_id (int): The new connection's id (never reused within a session).
///     host (str): Host name or address (an IPv6 address without brackets).
///     port (int): TCP port.
///     tls (bool): Wrap the connection in TLS (PROTOCOL §1: https/wss).
#[pyclass(frozen, get_all, module = "alipay_msg.session")]
pub struct Connect {
    conn_id: u64,
    host: String,
    port: u16,
    tls: bool,
}

#[pymethods]
impl Connect {
    fn __repr__(&self) -> String {
        format!(
            "Connect(conn_id={}, host={:?}, port={}, tls={})",
            self.conn_id,
            self.host,
            self.port,
            if self.tls { "True" } else { "False" }
        )
    }
}

/// Write `data` on connection `conn_id`, after every earlier Write for it.
///
/// Attributes:
///     conn_id (int): The connection.
///     data (bytes): The bytes: an HTTP request, or websocket frames (consecutive writes
///         for one connection come joined in one Write).
#[pyclass(frozen, get_all, module = "alipay_msg.session")]
pub struct Write {
    conn_id: u64,
    data: Py<PyBytes>,
}

#[pymethods]
impl Write {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Write(conn_id={}, data=<{} bytes>)",
            self.conn_id,
            self.data.bind(py).as_bytes().len()
        )
    }
}

/// Close connection `conn_id` once every earlier Write for it is written, and forget
/// it: later input for it is ignored.
///
/// Attributes:
///     conn_id (int): The connection.
#[pyclass(frozen, get_all, module = "alipay_msg.session")]
pub struct Close {
    conn_id: u64,
}

#[pymethods]
impl Close {
    fn __repr__(&self) -> String {
        format!("Close(conn_id={})", self.conn_id)
    }
}

/// Nothing more to do now: call handle_timeout(now) at `at` (or earlier, when input
/// arrives), then poll_output again.
///
/// Attributes:
///     at (float): The deadline, on the time.monotonic() clock (seconds).
#[pyclass(frozen, get_all, module = "alipay_msg.session")]
pub struct Timeout {
    at: f64,
}

#[pymethods]
impl Timeout {
    fn __repr__(&self) -> String {
        format!("Timeout(at={})", self.at)
    }
}

/// The session has ended (shut down, or stopped on its own: see ClientSession.error);
/// it asks for nothing more.
#[pyclass(frozen, module = "alipay_msg.session")]
pub struct Done;

#[pymethods]
impl Done {
    fn __repr__(&self) -> &'static str {
        "Done()"
    }
}

/// Declares an event class: frozen, its fields readable, `str()` its human line and
/// `repr()` the class name with that line.
macro_rules! event_class {
    ($(#[$doc:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[pyclass(frozen, module = "alipay_msg.session")]
        pub struct $name {
            $(#[pyo3(get)] $field: $ty,)*
            text: String,
        }

        #[pymethods]
        impl $name {
            fn __str__(&self) -> &str {
                &self.text
            }

            fn __repr__(&self) -> String {
                format!(concat!("<", stringify!($name), ": {}>"), self.text)
            }
        }
    };
}

event_class!(
    /// A connection attempt starts (attempt 1 is the first since the last success).
    ///
    /// Attributes:
    ///     attempt (int): The attempt number.
    Connecting { attempt: u32 }
);

event_class!(
    /// The websocket is open (every time, the first connection included).
    Connected {}
);

event_class!(
    /// The connection (or an attempt) ended; the session reconnects after `retry_in`
    /// unless it is shutting down (PROTOCOL §8).
    ///
    /// Attributes:
    ///     reason (str): Why, in words.
    ///     kind (str): Why, by name: "register", "sign", "request", "handshake",
    ///         "connect_timeout", "dead", "network", "proxy" (the HTTP proxy did not
    ///         open the tunnel), "eof", "closed_by_peer", "protocol", "read_overflow",
    ///         "shutdown" (or "other").
    ///     retry_in (float | None): Seconds until the next attempt, if one will be made.
    Disconnected {
        reason: String,
        kind: &'static str,
        retry_in: Option<f64>
    }
);

event_class!(
    /// A message already handled successfully (or being handled) came again: it is not
    /// delivered again; the ack is SUCCESS (or follows the delivery in progress).
    ///
    /// Attributes:
    ///     msg_id (str): `x-msgId`.
    ///     in_flight (bool): The first delivery is still being handled.
    Duplicate {
        msg_id: String,
        in_flight: bool
    }
);

event_class!(
    /// A frame that is not delivered (PROTOCOL §5–6): unverified ones (unsigned, forged,
    /// another app's, outside the timestamp window) are answered FAIL and never reach
    /// the application; malformed ones cannot be answered.
    ///
    /// Attributes:
    ///     msg_id (str | None): `x-msgId`, when the frame had one.
    ///     reason (str): Why, in words.
    ///     kind (str): Why, by name: "undecodable", "malformed", "unsigned",
    ///         "bad_signature", "foreign_app_id", "timestamp", "shutting_down",
    ///         "no_consumer", "undeliverable", "unexpected", "claimed_elsewhere"
    ///         (another instance holds its claim in the shared window),
    ///         "not_recorded" (handled here, its success not yet recorded in the shared
    ///         window) (or "other").
    Rejected {
        msg_id: Option<String>,
        reason: String,
        kind: &'static str
    }
);

event_class!(
    /// The platform refused the configuration at register.do (or this client refused
    /// the platform's answer); the session stops (ClientSession.error: RefusedError).
    ///
    /// Attributes:
    ///     error (str): What was refused, in words.
    ///     kind (str): "http", "status", "malformed", "refused", "unsigned",
    ///         "bad_signature", "cert_sn_mismatch" (or "other").
    Fatal {
        error: String,
        kind: &'static str
    }
);

event_class!(
    /// No connection opened within first_connect_timeout; the session stops
    /// (ClientSession.error: ConnectTimeoutError).
    ///
    /// Attributes:
    ///     waited (float): first_connect_timeout, in seconds.
    ///     last (str | None): Why the last attempt failed, if one did.
    GaveUp {
        waited: f64,
        last: Option<String>
    }
);

event_class!(
    /// A configured key works but is weak (e.g. under 2048 bits): reported first, when
    /// the session starts.
    ///
    /// Attributes:
    ///     which (str): "app private key" or "platform public key".
    ///     warning (str): What is wrong with it.
    KeyWarning {
        which: String,
        warning: String
    }
);

event_class!(
    /// A message was completed as failed (ClientSession.complete with success=False): it
    /// was acked FAIL and the platform delivers it again later.
    ///
    /// Attributes:
    ///     msg_id (str): `x-msgId`.
    ///     error (str): The application's text of the failure.
    HandlerFailed {
        msg_id: String,
        error: String
    }
);

event_class!(
    /// The shared duplicate window's store could not answer a claim or a record
    /// (Config.shared_window): with on_store_failure "fail" the message was acked FAIL
    /// (the platform redelivers it; a success not recorded is recorded again in the
    /// background); with "local_window" it went on with the local window (`fallback`).
    ///
    /// Attributes:
    ///     msg_id (str): `x-msgId`.
    ///     op (str): "claim" or "record".
    ///     error (str): The store's error, in words.
    ///     fallback (bool): Went on with the local window instead of acking FAIL.
    SharedWindowFailed {
        msg_id: String,
        op: &'static str,
        error: String,
        fallback: bool
    }
);

event_class!(
    /// The shared duplicate window's store answers again after `failures` failed
    /// queries in a row.
    ///
    /// Attributes:
    ///     failures (int): Failed queries since the last answer.
    SharedWindowRestored { failures: u64 }
);

event_class!(
    /// Shutdown finished: in-flight messages completed (or shutdown_timeout passed) and
    /// the connection is closed. Done follows.
    ShutdownComplete {}
);

/// The answer to ClientSession.send: the platform's PRODUCE_ACK, or why there is none.
///
/// Attributes:
///     stream_id (str): The stream id send returned.
///     ack (ProduceAck | None): The PRODUCE_ACK (a FAIL too), when one came.
///     error (SendError | None): Otherwise, why not: SendTimeoutError (none within
///         send_timeout) or ConnectionLostError (the connection closed first); not
///         raised, an instance to raise or inspect.
#[pyclass(frozen, get_all, module = "alipay_msg.session")]
pub struct ProduceAnswer {
    stream_id: String,
    ack: Option<Py<ProduceAck>>,
    error: Option<Py<PyAny>>,
}

#[pymethods]
impl ProduceAnswer {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(match (&self.ack, &self.error) {
            (Some(ack), _) => format!("ProduceAnswer(ack={})", ack.bind(py).repr()?),
            (None, Some(error)) => format!(
                "ProduceAnswer(stream_id={:?}, error={})",
                self.stream_id,
                error.bind(py).repr()?
            ),
            (None, None) => format!("ProduceAnswer(stream_id={:?})", self.stream_id),
        })
    }
}

fn disconnect_kind(reason: &DisconnectReason) -> &'static str {
    match reason {
        DisconnectReason::Register(_) => "register",
        DisconnectReason::Sign(_) => "sign",
        DisconnectReason::Request(_) => "request",
        DisconnectReason::Handshake(_) => "handshake",
        DisconnectReason::ConnectTimeout => "connect_timeout",
        DisconnectReason::Dead { .. } => "dead",
        DisconnectReason::Network(_) => "network",
        DisconnectReason::Proxy(_) => "proxy",
        DisconnectReason::Eof => "eof",
        DisconnectReason::ClosedByPeer { .. } => "closed_by_peer",
        DisconnectReason::Protocol(_) => "protocol",
        DisconnectReason::ReadOverflow { .. } => "read_overflow",
        DisconnectReason::Shutdown => "shutdown",
        _ => "other",
    }
}

fn reject_kind(reason: &RejectReason) -> &'static str {
    match reason {
        RejectReason::Undecodable(_) => "undecodable",
        RejectReason::Malformed(_) => "malformed",
        RejectReason::Unsigned => "unsigned",
        RejectReason::BadSignature(_) => "bad_signature",
        RejectReason::ForeignAppId { .. } => "foreign_app_id",
        RejectReason::Timestamp { .. } => "timestamp",
        RejectReason::ShuttingDown => "shutting_down",
        RejectReason::NoConsumer { .. } => "no_consumer",
        RejectReason::Undeliverable(_) => "undeliverable",
        RejectReason::Unexpected { .. } => "unexpected",
        RejectReason::ClaimedElsewhere => "claimed_elsewhere",
        RejectReason::NotRecorded => "not_recorded",
        _ => "other",
    }
}

fn register_kind(error: &RegisterError) -> &'static str {
    match error {
        RegisterError::Http(_) => "http",
        RegisterError::Status { .. } => "status",
        RegisterError::Malformed { .. } => "malformed",
        RegisterError::Refused { .. } => "refused",
        RegisterError::Unsigned => "unsigned",
        RegisterError::BadSignature(_) => "bad_signature",
        RegisterError::CertSnMismatch { .. } => "cert_sn_mismatch",
        _ => "other",
    }
}

/// The Python object of one output; `None` for an output this binding does not know
/// (of a later core version), which is skipped. `at` converts a deadline to
/// time.monotonic() seconds.
pub(crate) fn to_python(
    py: Python<'_>,
    output: Output,
    at: impl Fn(std::time::Instant) -> f64,
) -> PyResult<Option<Py<PyAny>>> {
    Ok(Some(match output {
        Output::Transmit(Transmit::Connect {
            conn,
            host,
            port,
            tls,
        }) => Connect {
            conn_id: conn.as_u64(),
            host,
            port,
            tls,
        }
        .into_py_any(py)?,
        Output::Transmit(Transmit::Write { conn, bytes }) => Write {
            conn_id: conn.as_u64(),
            data: PyBytes::new(py, &bytes).unbind(),
        }
        .into_py_any(py)?,
        Output::Transmit(Transmit::Close { conn }) => Close {
            conn_id: conn.as_u64(),
        }
        .into_py_any(py)?,
        Output::Event(event) => return event_to_python(py, event),
        Output::Timeout(deadline) => Timeout { at: at(deadline) }.into_py_any(py)?,
        Output::Done => Done.into_py_any(py)?,
        Output::Window(query) => WindowQuery::new(query).into_py_any(py)?,
        // Check jobs are run by the session before its outputs are handed out
        // (`session::ClientSession::fill`); outputs of later core versions are skipped.
        _ => return Ok(None),
    }))
}

/// Writes for one connection joined into one output (fewer system calls).
pub(crate) fn joined_write(py: Python<'_>, conn_id: u64, bytes: &[u8]) -> PyResult<Py<PyAny>> {
    Write {
        conn_id,
        data: PyBytes::new(py, bytes).unbind(),
    }
    .into_py_any(py)
}

fn event_to_python(py: Python<'_>, event: Event) -> PyResult<Option<Py<PyAny>>> {
    let text = ClientEvent::from_event(&event)
        .map(|e| e.to_string())
        .unwrap_or_default();
    Ok(Some(match event {
        Event::Message(delivery) => Message::new(delivery).into_py_any(py)?,
        Event::ProduceAck { stream_id, result } => {
            let (ack, error) = match result {
                Ok(ack) => (Some(Py::new(py, ProduceAck::new(ack))?), None),
                Err(e) => (None, Some(send_error(&e).into_value(py).into_any())),
            };
            ProduceAnswer {
                stream_id,
                ack,
                error,
            }
            .into_py_any(py)?
        }
        Event::Connecting { attempt } => Connecting { attempt, text }.into_py_any(py)?,
        Event::Connected => Connected { text }.into_py_any(py)?,
        Event::Disconnected { reason, retry_in } => Disconnected {
            kind: disconnect_kind(&reason),
            reason: reason.to_string(),
            retry_in: retry_in.map(|d| d.as_secs_f64()),
            text,
        }
        .into_py_any(py)?,
        Event::Duplicate { msg_id, in_flight } => Duplicate {
            msg_id,
            in_flight,
            text,
        }
        .into_py_any(py)?,
        Event::Rejected { msg_id, reason } => Rejected {
            msg_id,
            kind: reject_kind(&reason),
            reason: reason.to_string(),
            text,
        }
        .into_py_any(py)?,
        Event::Fatal(error) => Fatal {
            kind: register_kind(&error),
            error: error.to_string(),
            text,
        }
        .into_py_any(py)?,
        Event::GaveUp { waited, last } => GaveUp {
            waited: waited.as_secs_f64(),
            last: last.map(|l| l.to_string()),
            text,
        }
        .into_py_any(py)?,
        Event::KeyWarning { which, warning } => KeyWarning {
            which: which.to_owned(),
            warning: warning.to_string(),
            text,
        }
        .into_py_any(py)?,
        Event::HandlerFailed { msg_id, error } => HandlerFailed {
            msg_id,
            error,
            text,
        }
        .into_py_any(py)?,
        Event::SharedWindowFailed {
            msg_id,
            op,
            error,
            fallback,
        } => SharedWindowFailed {
            msg_id,
            op,
            error: error.to_string(),
            fallback,
            text,
        }
        .into_py_any(py)?,
        Event::SharedWindowRestored { failures } => {
            SharedWindowRestored { failures, text }.into_py_any(py)?
        }
        Event::ShutdownComplete => ShutdownComplete { text }.into_py_any(py)?,
        // Events of later core versions: nothing this binding knows to say.
        _ => return Ok(None),
    }))
}
