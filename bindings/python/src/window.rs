//! The duplicate window shared by every instance of a service, for Python (module
//! [`alipay_msg_core::window`], PROTOCOL §6): the query a session asks
//! ([`WindowQuery`], with its [`WindowKey`]), the answers as text (`"claimed"`,
//! `"handled"`, `"held"`, `"recorded"`, `"released"`), and the Redis store
//! ([`RedisWindow`], `alipay_msg_redis::RedisWindow`) that answers them without the GIL.

use std::time::Duration;

use alipay_msg_core::window::{
    QueryId, WindowAnswer, WindowKey as CoreKey, WindowKind, WindowOp, WindowQuery as CoreQuery,
};
use alipay_msg_redis::{RedisWindow as CoreRedis, RedisWindowConfig};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use crate::errors::{ConfigError, WindowError};

/// The Python text of an answer: `claimed`, `handled`, `held`, `recorded`, `released`.
pub(crate) fn answer_name(answer: WindowAnswer) -> &'static str {
    match answer {
        WindowAnswer::Claimed => "claimed",
        WindowAnswer::Handled => "handled",
        WindowAnswer::Held => "held",
        WindowAnswer::Recorded => "recorded",
        WindowAnswer::Released => "released",
    }
}

/// The answer named by `text` (one of [`answer_name`]'s); ValueError otherwise.
pub(crate) fn answer_of(text: &str) -> PyResult<WindowAnswer> {
    Ok(match text {
        "claimed" => WindowAnswer::Claimed,
        "handled" => WindowAnswer::Handled,
        "held" => WindowAnswer::Held,
        "recorded" => WindowAnswer::Recorded,
        "released" => WindowAnswer::Released,
        other => {
            return Err(PyValueError::new_err(format!(
                "a window answer is 'claimed', 'handled', 'held', 'recorded' or 'released', \
                 not {other:?}"
            )))
        }
    })
}

/// A duration in seconds for a query: finite, more than 0, at most 365 days.
fn query_seconds(name: &str, value: f64) -> PyResult<Duration> {
    match Duration::try_from_secs_f64(value) {
        Ok(d) if !d.is_zero() && d <= alipay_msg_core::window::MAX_DURATION => Ok(d),
        _ => Err(PyValueError::new_err(format!(
            "{name} must be more than 0 seconds, at most 365 days"
        ))),
    }
}

/// Where one id lives in the shared store: app id, kind and the id itself
/// (alipay_msg_core::window::WindowKey).
///
/// WindowKey(app_id: str, kind: str, id: str)
///
/// Raises ValueError for a kind other than "msg" or "notify".
///
/// Attributes:
///     app_id (str): The app id the message is for (digits).
///     kind (str): "msg" (a websocket CONSUME, by x-msgId) or "notify" (an HTTP
///         notification, by notify_id).
///     id (str): The x-msgId or notify_id, as received.
#[pyclass(frozen, module = "alipay_msg.session")]
#[derive(Clone)]
pub struct WindowKey {
    key: CoreKey,
}

#[pymethods]
impl WindowKey {
    #[new]
    fn new(app_id: String, kind: &str, id: String) -> PyResult<Self> {
        let kind = match kind {
            "msg" => WindowKind::Msg,
            "notify" => WindowKind::Notify,
            other => {
                return Err(PyValueError::new_err(format!(
                    "a window key's kind is 'msg' or 'notify', not {other:?}"
                )))
            }
        };
        Ok(WindowKey {
            key: CoreKey { app_id, kind, id },
        })
    }

    #[getter]
    fn app_id(&self) -> &str {
        &self.key.app_id
    }

    #[getter]
    fn kind(&self) -> &'static str {
        self.key.kind.as_str()
    }

    #[getter]
    fn id(&self) -> &str {
        &self.key.id
    }

    /// render(prefix: str = "alipay-msg") -> str
    ///
    /// The key's text in the store: ``{prefix}:{app_id}:{kind}:{id}`` (the text
    /// RedisWindow uses).
    #[pyo3(signature = (prefix = alipay_msg_redis::DEFAULT_PREFIX))]
    fn render(&self, prefix: &str) -> String {
        self.key.render(prefix)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<WindowKey>()
            .is_ok_and(|other| other.get().key == self.key)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.key.hash(&mut hasher);
        hasher.finish()
    }

    fn __repr__(&self) -> String {
        format!(
            "WindowKey(app_id={:?}, kind={:?}, id={:?})",
            self.key.app_id,
            self.key.kind.as_str(),
            self.key.id
        )
    }
}

/// One question for the shared store, from ClientSession.poll_output: answer it exactly
/// once, with ``Input.window_answered(query.id, answer)``
/// (alipay_msg_core::window::WindowQuery). What each op must do, atomically:
///
/// * "claim": if the key is absent, set it to ``token`` for ``lease`` seconds and
///   answer "claimed"; else "handled" when it holds "handled", "held" otherwise;
/// * "record": set the key to "handled" for ``window`` seconds; answer "recorded";
/// * "release": delete the key only if it still holds ``token``; answer "released".
///
/// WindowQuery(id: int, key: WindowKey, op: str, *, token: str | None = None, lease:
/// float | None = None, window: float | None = None)
///
/// Made by the session; the constructor is for stores' own tests. Raises ValueError for
/// an unknown op, or one without what it needs (claim: token and lease; record: window;
/// release: token), or a duration not more than 0 s or over 365 days.
///
/// Attributes:
///     id (int): Numbers the query; give it back with the answer.
///     key (WindowKey): The key.
///     op (str): "claim", "record" or "release".
///     token (str | None): Claim and release: the claim's token (ASCII, at most 40
///         bytes), unique to one delivery attempt.
///     lease (float | None): Claim: how long the claim lives (s).
///     window (float | None): Record: how long the id stays handled (s).
#[pyclass(frozen, module = "alipay_msg.session")]
pub struct WindowQuery {
    query: CoreQuery,
}

impl WindowQuery {
    /// The Python object of the core's query.
    pub(crate) fn new(query: CoreQuery) -> Self {
        WindowQuery { query }
    }
}

#[pymethods]
impl WindowQuery {
    #[new]
    #[pyo3(signature = (id, key, op, *, token = None, lease = None, window = None))]
    fn py_new(
        id: u64,
        key: &Bound<'_, WindowKey>,
        op: &str,
        token: Option<String>,
        lease: Option<f64>,
        window: Option<f64>,
    ) -> PyResult<Self> {
        let op = match (op, token, lease, window) {
            ("claim", Some(token), Some(lease), None) => WindowOp::Claim {
                token,
                lease: query_seconds("lease", lease)?,
            },
            ("record", None, None, Some(window)) => WindowOp::Record {
                window: query_seconds("window", window)?,
            },
            ("release", Some(token), None, None) => WindowOp::Release { token },
            _ => {
                return Err(PyValueError::new_err(
                    "a window query is op 'claim' with token and lease, 'record' with window, \
                     or 'release' with token",
                ))
            }
        };
        Ok(WindowQuery {
            query: CoreQuery {
                id: QueryId::new(id),
                key: key.get().key.clone(),
                op,
            },
        })
    }

    #[getter]
    fn id(&self) -> u64 {
        self.query.id.as_u64()
    }

    #[getter]
    fn key(&self) -> WindowKey {
        WindowKey {
            key: self.query.key.clone(),
        }
    }

    #[getter]
    fn op(&self) -> &'static str {
        self.query.op.name()
    }

    #[getter]
    fn token(&self) -> Option<&str> {
        match &self.query.op {
            WindowOp::Claim { token, .. } | WindowOp::Release { token } => Some(token),
            WindowOp::Record { .. } => None,
        }
    }

    #[getter]
    fn lease(&self) -> Option<f64> {
        match &self.query.op {
            WindowOp::Claim { lease, .. } => Some(lease.as_secs_f64()),
            _ => None,
        }
    }

    #[getter]
    fn window(&self) -> Option<f64> {
        match &self.query.op {
            WindowOp::Record { window } => Some(window.as_secs_f64()),
            _ => None,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "WindowQuery(id={}, op={:?}, key={:?})",
            self.query.id.as_u64(),
            self.query.op.name(),
            self.query.key.render(alipay_msg_redis::DEFAULT_PREFIX)
        )
    }
}

/// The shared duplicate window on Redis (alipay_msg_redis::RedisWindow): one key per id,
/// ``{prefix}:{app_id}:{msg|notify}:{id}``, always with a TTL; claims and releases are
/// Lua scripts (atomic). Give it to a client (``Client(config, window=...)``); safe to
/// share between threads and clients.
///
/// RedisWindow(url: str, *, prefix: str = "alipay-msg", timeout: float = 0.5)
///
/// ``url`` is ``redis://[user:password@]host[:port][/db]`` or ``redis+unix:///path``
/// (no TLS in this build); it is never put into messages. Every call, connecting
/// included, ends within ``timeout`` seconds. Connects lazily: Redis may be down now.
/// Raises ConfigError for an invalid URL, an empty prefix or one with ":", or a
/// timeout that is not more than 0 s.
#[pyclass(frozen, module = "alipay_msg")]
pub struct RedisWindow {
    store: CoreRedis,
}

#[pymethods]
impl RedisWindow {
    #[new]
    #[pyo3(signature = (url, *, prefix = alipay_msg_redis::DEFAULT_PREFIX.to_owned(), timeout = 0.5))]
    fn new(url: String, prefix: String, timeout: f64) -> PyResult<Self> {
        let timeout = Duration::try_from_secs_f64(timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                ConfigError::new_err("the Redis call timeout must be more than 0 seconds")
            })?;
        let config = RedisWindowConfig::new(url)
            .with_prefix(prefix)
            .with_timeout(timeout);
        let store = CoreRedis::new(config).map_err(|e| ConfigError::new_err(e.to_string()))?;
        Ok(RedisWindow { store })
    }

    /// answer(query: WindowQuery) -> str
    ///
    /// Answers one query in Redis, without the GIL: "claimed", "handled" or "held" to a
    /// claim, "recorded" to a record, "released" to a release. Raises WindowError when
    /// Redis is unreachable, slower than the timeout or refuses the command; TypeError
    /// for anything but a WindowQuery.
    fn answer(&self, py: Python<'_>, query: &Bound<'_, PyAny>) -> PyResult<&'static str> {
        let query = query
            .cast::<WindowQuery>()
            .map_err(|_| PyTypeError::new_err("RedisWindow.answer takes a WindowQuery"))?;
        let query = &query.get().query;
        let store = &self.store;
        py.detach(|| store.answer(query))
            .map(answer_name)
            .map_err(|e| WindowError::new_err(e.to_string()))
    }

    /// ping() -> None
    ///
    /// ``PING``, without the GIL: a start-up check that Redis answers within the
    /// timeout. Raises WindowError otherwise.
    fn ping(&self, py: Python<'_>) -> PyResult<()> {
        let store = &self.store;
        py.detach(|| store.ping())
            .map_err(|e| WindowError::new_err(e.to_string()))
    }

    /// The key prefix (str).
    #[getter]
    fn prefix(&self) -> &str {
        &self.store.config().prefix
    }

    /// The time limit of one call (float, seconds).
    #[getter]
    fn timeout(&self) -> f64 {
        self.store.config().timeout.as_secs_f64()
    }

    fn __repr__(&self) -> String {
        format!(
            "<alipay_msg.RedisWindow prefix={:?} timeout={}>",
            self.store.config().prefix,
            self.store.config().timeout.as_secs_f64()
        )
    }
}
