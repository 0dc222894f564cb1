//! `alipay_msg.session.ClientSession`: the core's sans-IO client state machine
//! ([`alipay_msg_core::client::ClientSession`]) for Python — bytes in, transmits and
//! events out, time as `time.monotonic()` seconds — so that any Python I/O framework
//! can drive it (the package's own asyncio and blocking clients do).
//!
//! Signature checks run in Rust without the GIL. They are not handed out as jobs: with
//! `check_parallelism` 1 the core checks each frame inside `handle_input`; with more
//! (the default picks one lane per core, at most 4) the frames read are checked by
//! `poll_output`, split over that many threads, and their results fed back in read
//! order before any output is handed out. Either way the outputs, and what they
//! mean, are the core's.

use std::collections::{HashMap, VecDeque};
use std::io::ErrorKind;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use alipay_msg_core::client::{
    CheckJob, CheckedFrame, ClientSession as CoreSession, ConnId, ConnectError, FrameChecker,
    Input as CoreInput, Outcome, Output, Transmit,
};
use alipay_msg_core::window::{QueryId, WindowAnswer, WindowError};
use pyo3::exceptions::{
    PyBlockingIOError, PyBrokenPipeError, PyConnectionAbortedError, PyConnectionRefusedError,
    PyConnectionResetError, PyOSError, PyTimeoutError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};

use crate::clock::{monotonic, unix_ms_now, Clock};
use crate::config::client_config;
use crate::errors::{client_error, config_error, send_error, UnknownDeliveryError};
use crate::message::Message;
use crate::outputs::{joined_write, to_python};
use crate::proxy::proxy_error_of;
use crate::window::{answer_name, answer_of};

/// Check jobs out per checking lane at most: a read of 64 KiB holds about a hundred
/// CONSUMEs, which the session then checks in batches of `lanes` × this.
const JOBS_PER_LANE: usize = 32;

/// A lane gets at least this many jobs of a batch; smaller batches are checked on the
/// calling thread (starting a thread costs about as much as checking two frames).
const MIN_JOBS_PER_LANE: usize = 2;

#[derive(Debug)]
enum InputKind {
    Connected,
    ConnectFailed(ConnectError),
    Bytes(Py<PyBytes>),
    Closed(Option<ErrorKind>),
    /// The shared store's answer to a query (`conn_id` is None).
    WindowAnswered {
        id: QueryId,
        answer: Result<WindowAnswer, WindowError>,
    },
}

/// Something that happened on one of the session's connections, or the shared store's
/// answer to a WindowQuery, for ClientSession.handle_input. Build it with one of the
/// static methods; input naming a connection that is not the session's current one is
/// ignored (it was abandoned).
///
/// Attributes:
///     conn_id (int | None): The connection (Connect.conn_id); None for
///         window_answered.
///     kind (str): "connected", "connect_failed", "bytes", "closed" or
///         "window_answered".
#[pyclass(frozen, module = "alipay_msg.session")]
pub struct Input {
    #[pyo3(get)]
    conn_id: Option<u64>,
    kind: InputKind,
}

/// The I/O error kind of a Python error: an errno (int), an OSError (its errno, or
/// without one its class: ConnectionRefusedError, ConnectionResetError …; TimeoutError →
/// timed out, an ssl.SSLError → invalid data, as rustls reports a refused certificate),
/// another exception (other).
fn error_kind(py: Python<'_>, error: &Bound<'_, PyAny>) -> PyResult<ErrorKind> {
    if let Ok(errno) = error.extract::<i32>() {
        return Ok(std::io::Error::from_raw_os_error(errno).kind());
    }
    if error.is_instance_of::<PyTimeoutError>() {
        return Ok(ErrorKind::TimedOut);
    }
    let ssl_error = py.import("ssl")?.getattr("SSLError")?;
    if error.is_instance(&ssl_error)? {
        return Ok(ErrorKind::InvalidData);
    }
    if error.is_instance_of::<PyOSError>() {
        // socket.gaierror's errno is a negative EAI_ code, not an errno.
        if let Ok(Some(errno)) = error.getattr("errno")?.extract::<Option<i32>>() {
            if errno > 0 {
                return Ok(std::io::Error::from_raw_os_error(errno).kind());
            }
        }
        // Without an errno, the class says it (Python picks it from the errno anyway).
        let kind = if error.is_instance_of::<PyConnectionRefusedError>() {
            ErrorKind::ConnectionRefused
        } else if error.is_instance_of::<PyConnectionResetError>() {
            ErrorKind::ConnectionReset
        } else if error.is_instance_of::<PyConnectionAbortedError>() {
            ErrorKind::ConnectionAborted
        } else if error.is_instance_of::<PyBrokenPipeError>() {
            ErrorKind::BrokenPipe
        } else if error.is_instance_of::<PyBlockingIOError>() {
            ErrorKind::WouldBlock
        } else {
            ErrorKind::Other
        };
        return Ok(kind);
    }
    if error.is_instance_of::<pyo3::exceptions::PyBaseException>() {
        return Ok(ErrorKind::Other);
    }
    Err(PyTypeError::new_err(format!(
        "error must be an exception, an errno (int) or None, not {}",
        error.get_type().name()?
    )))
}

#[pymethods]
impl Input {
    /// Input.connected(conn_id: int) -> Input
    ///
    /// The connection of a Connect is established (TCP connected and, with tls, the TLS
    /// handshake done): the session now writes on it.
    #[staticmethod]
    fn connected(conn_id: u64) -> Input {
        Input {
            conn_id: Some(conn_id),
            kind: InputKind::Connected,
        }
    }

    /// Input.connect_failed(conn_id: int, error: BaseException | int) -> Input
    ///
    /// The connection could not be established (name resolution, TCP connect, the
    /// proxy's tunnel, TLS handshake). `error` is the exception raised or an errno: a
    /// ProxyError raised by ConnectAnswer.feed is the proxy's failure, which the session
    /// reports as such ("the proxy refused the tunnel: 407 …", Disconnected.kind
    /// "proxy"); of any other exception the errno is kept (refused, timed out …; an
    /// ssl.SSLError counts as invalid data). Raises TypeError for anything else.
    #[staticmethod]
    fn connect_failed(py: Python<'_>, conn_id: u64, error: &Bound<'_, PyAny>) -> PyResult<Input> {
        let error = match proxy_error_of(error) {
            Some(proxy) => ConnectError::Proxy(proxy),
            None => ConnectError::Network(error_kind(py, error)?),
        };
        Ok(Input {
            conn_id: Some(conn_id),
            kind: InputKind::ConnectFailed(error),
        })
    }

    /// Input.bytes(conn_id: int, data: bytes) -> Input
    ///
    /// Bytes read from the connection (after TLS), in order; any split is fine.
    /// bytearray is copied; raises TypeError for anything else.
    #[staticmethod]
    fn bytes(conn_id: u64, data: &Bound<'_, PyAny>) -> PyResult<Input> {
        let data = if let Ok(bytes) = data.cast::<PyBytes>() {
            bytes.clone().unbind()
        } else if let Ok(array) = data.cast::<PyByteArray>() {
            PyBytes::new(data.py(), &array.to_vec()).unbind()
        } else {
            return Err(PyTypeError::new_err(format!(
                "data must be bytes, not {}",
                data.get_type().name()?
            )));
        };
        Ok(Input {
            conn_id: Some(conn_id),
            kind: InputKind::Bytes(data),
        })
    }

    /// Input.closed(conn_id: int, error: BaseException | int | None = None) -> Input
    ///
    /// The connection ended: `error` None at end of stream (the peer closed), the
    /// exception (or errno) when a read or write failed.
    #[staticmethod]
    #[pyo3(signature = (conn_id, error = None))]
    fn closed(py: Python<'_>, conn_id: u64, error: Option<&Bound<'_, PyAny>>) -> PyResult<Input> {
        let error = match error {
            Some(e) if !e.is_none() => Some(error_kind(py, e)?),
            _ => None,
        };
        Ok(Input {
            conn_id: Some(conn_id),
            kind: InputKind::Closed(error),
        })
    }

    /// Input.window_answered(id: int, answer: str | BaseException) -> Input
    ///
    /// The shared store's answer to the WindowQuery numbered `id` (WindowQuery.id):
    /// "claimed", "handled" or "held" to a claim, "recorded" to a record, "released" to
    /// a release; or the exception the store raised (it could not answer: the session
    /// then follows Config.shared_window.on_store_failure; the exception's text goes to
    /// the SharedWindowFailed event). Give each query exactly one answer; an id the
    /// session does not wait for is ignored. Raises ValueError for another text,
    /// TypeError for anything but a str or an exception.
    #[staticmethod]
    fn window_answered(id: u64, answer: &Bound<'_, PyAny>) -> PyResult<Input> {
        let answer = if let Ok(text) = answer.extract::<String>() {
            Ok(answer_of(&text)?)
        } else if answer.is_instance_of::<pyo3::exceptions::PyBaseException>() {
            let text = answer.str()?.to_string();
            let name = answer.get_type().name()?.to_string();
            Err(WindowError(if text.is_empty() {
                name
            } else {
                format!("{name}: {text}")
            }))
        } else {
            return Err(PyTypeError::new_err(format!(
                "answer must be a str or an exception, not {}",
                answer.get_type().name()?
            )));
        };
        Ok(Input {
            conn_id: None,
            kind: InputKind::WindowAnswered {
                id: QueryId::new(id),
                answer,
            },
        })
    }

    #[getter]
    fn kind(&self) -> &'static str {
        match self.kind {
            InputKind::Connected => "connected",
            InputKind::ConnectFailed(_) => "connect_failed",
            InputKind::Bytes(_) => "bytes",
            InputKind::Closed(_) => "closed",
            InputKind::WindowAnswered { .. } => "window_answered",
        }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let conn = self.conn_id.unwrap_or_default();
        match &self.kind {
            InputKind::Connected => format!("Input.connected({})", conn),
            InputKind::ConnectFailed(ConnectError::Network(kind)) => {
                format!("Input.connect_failed({}, <{kind:?}>)", conn)
            }
            InputKind::ConnectFailed(e) => {
                format!("Input.connect_failed({}, <{e}>)", conn)
            }
            InputKind::Bytes(b) => format!(
                "Input.bytes({}, <{} bytes>)",
                conn,
                b.bind(py).as_bytes().len()
            ),
            InputKind::Closed(None) => format!("Input.closed({})", conn),
            InputKind::Closed(Some(e)) => format!("Input.closed({}, <{e:?}>)", conn),
            InputKind::WindowAnswered { id, answer } => match answer {
                Ok(answer) => format!(
                    "Input.window_answered({}, {:?})",
                    id.as_u64(),
                    answer_name(*answer)
                ),
                Err(e) => format!("Input.window_answered({}, <{}>)", id.as_u64(), e.0),
            },
        }
    }
}

/// Checks `jobs` on up to `lanes` threads (the calling one included), each taking the
/// next job left until none is; results in any order (the session restores read
/// order). A thread that cannot be started leaves its share to the others.
fn check_all(checker: &FrameChecker, jobs: Vec<CheckJob>, lanes: usize) -> Vec<CheckedFrame> {
    let lanes = lanes.min(jobs.len() / MIN_JOBS_PER_LANE).max(1);
    if lanes == 1 {
        return jobs.into_iter().map(|job| checker.run(job)).collect();
    }
    let slots: Vec<Mutex<Option<CheckJob>>> =
        jobs.into_iter().map(|job| Mutex::new(Some(job))).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        let mut out = Vec::new();
        while let Some(slot) = slots.get(next.fetch_add(1, Ordering::Relaxed)) {
            // Each slot is taken once; a poisoned lock (a panic while holding it, which
            // `take` cannot cause) still holds its job.
            let job = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(job) = job {
                out.push(checker.run(job));
            }
        }
        out
    };
    std::thread::scope(|scope| {
        let threads: Vec<_> = (1..lanes)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("alipay-msg-check".into())
                    .spawn_scoped(scope, work)
                    .ok()
            })
            .collect();
        let mut out = work();
        for thread in threads {
            match thread.join() {
                Ok(checked) => out.extend(checked),
                // Checking never panics on input (fuzzed); a panic is a bug: pass it on.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// The core's client session, for Python: bytes in, transmits and events out, time as
/// time.monotonic() seconds. See the module alipay_msg.session.
///
/// ClientSession(config: Config, *, now: float | None = None, unix_ms: int | None =
/// None, seed: bytes | None = None)
///
/// Validates `config` and starts the first connection attempt. `now` is the current
/// time.monotonic() (default: read now), `unix_ms` the wall-clock time at `now` in
/// milliseconds since the Unix epoch (default: read now), `seed` 32 random bytes for
/// nonces, websocket keys and masks, and backoff jitter (default: os.urandom(32); fixed
/// in tests). Raises ConfigError for a configuration the core refuses, TypeError for
/// an attribute of the wrong type, ValueError for a seed that is not 32 bytes.
///
/// After every call that changes the session (handle_input, handle_timeout, complete,
/// send, set_consumer, shutdown), call poll_output until it returns Timeout or Done.
/// One thread at a time: the session is not locked (a second thread gets RuntimeError
/// "Already borrowed").
#[pyclass(module = "alipay_msg.session", name = "ClientSession")]
pub struct ClientSession {
    session: CoreSession,
    clock: Clock,
    /// Threads that check frames (1: the core checks inline in `handle_input`).
    lanes: usize,
    /// Outputs taken from the core (check jobs done), in order.
    ready: VecDeque<Output>,
    /// The time of the latest call, for the checked frames fed back by `fill`.
    now: Instant,
    /// The connections handed out (Connect) and not closed yet (Close), by the number
    /// Python sees: every Connect is followed by one Close, so this holds the few
    /// connections of the current attempt.
    conns: HashMap<u64, ConnId>,
}

impl ClientSession {
    /// Takes the core's outputs into `ready` until its Timeout or Done (returned),
    /// checking the frames it hands out as jobs and feeding them back in; without the
    /// GIL.
    fn fill(&mut self, py: Python<'_>) -> Output {
        let ClientSession {
            session,
            ready,
            lanes,
            now,
            ..
        } = self;
        let (lanes, now) = (*lanes, *now);
        py.detach(|| loop {
            let mut jobs = Vec::new();
            let terminal = loop {
                match session.poll_output() {
                    Output::Check(job) => jobs.push(job),
                    out @ (Output::Timeout(_) | Output::Done) => break out,
                    out => ready.push_back(out),
                }
            };
            if jobs.is_empty() {
                return terminal;
            }
            let checker = session.frame_checker();
            for checked in check_all(&checker, jobs, lanes) {
                session.handle_input(CoreInput::Checked(checked), now);
            }
        })
    }

    fn instant(&mut self, now: f64) -> PyResult<Instant> {
        let at = self.clock.instant(now)?;
        self.now = at;
        Ok(at)
    }
}

#[pymethods]
impl ClientSession {
    #[new]
    #[pyo3(signature = (config, *, now = None, unix_ms = None, seed = None))]
    fn new(
        py: Python<'_>,
        config: &Bound<'_, PyAny>,
        now: Option<f64>,
        unix_ms: Option<i64>,
        seed: Option<&[u8]>,
    ) -> PyResult<Self> {
        let config = client_config(config)?;
        let seed: [u8; 32] = match seed {
            Some(seed) => seed.try_into().map_err(|_| {
                PyValueError::new_err(format!("seed must be 32 bytes, not {}", seed.len()))
            })?,
            None => {
                let random: Vec<u8> = py.import("os")?.call_method1("urandom", (32,))?.extract()?;
                random
                    .try_into()
                    .map_err(|_| PyValueError::new_err("os.urandom(32) did not give 32 bytes"))?
            }
        };
        let now = match now {
            Some(now) => now,
            None => monotonic(py)?,
        };
        let clock = Clock::new(now);
        let anchor = clock.instant(now)?;
        let lanes = config.check_parallelism_for(
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        );
        let unix_ms = unix_ms.unwrap_or_else(unix_ms_now);
        let mut session = py
            .detach(|| CoreSession::new(config, seed, anchor, unix_ms))
            .map_err(config_error)?;
        if lanes > 1 {
            session.set_check_offload(lanes * JOBS_PER_LANE);
        }
        Ok(ClientSession {
            session,
            clock,
            lanes,
            ready: VecDeque::new(),
            now: anchor,
            conns: HashMap::new(),
        })
    }

    /// handle_input(input: Input, now: float) -> None
    ///
    /// Something happened on one of the session's connections (see Input), at `now`
    /// (time.monotonic() seconds). Bytes are read without the GIL (with
    /// check_parallelism 1, their signatures are checked here too). Raises ValueError
    /// for a `now` that is not a finite number of seconds.
    fn handle_input(&mut self, py: Python<'_>, input: &Bound<'_, Input>, now: f64) -> PyResult<()> {
        let now = self.instant(now)?;
        let input = input.get();
        if let InputKind::WindowAnswered { id, answer } = &input.kind {
            let answer = answer.clone();
            let session = &mut self.session;
            py.detach(|| session.handle_input(CoreInput::WindowAnswered { id: *id, answer }, now));
            return Ok(());
        }
        let Some(&conn) = input.conn_id.and_then(|c| self.conns.get(&c)) else {
            // Not a connection of this session (any more): ignored, as the core does.
            return Ok(());
        };
        let session = &mut self.session;
        match &input.kind {
            InputKind::Connected => session.handle_input(CoreInput::Connected(conn), now),
            InputKind::ConnectFailed(error) => session.handle_input(
                CoreInput::ConnectFailed {
                    conn,
                    error: error.clone(),
                },
                now,
            ),
            InputKind::Bytes(data) => {
                let bytes = data.bind(py).as_bytes();
                py.detach(|| session.handle_input(CoreInput::Bytes { conn, bytes }, now));
            }
            InputKind::Closed(error) => session.handle_input(
                CoreInput::Closed {
                    conn,
                    error: *error,
                },
                now,
            ),
            // Handled above.
            InputKind::WindowAnswered { .. } => {}
        }
        Ok(())
    }

    /// handle_timeout(now: float) -> None
    ///
    /// Time has passed (call it at Timeout.at, or later): attempts, heartbeats,
    /// dead-connection detection, send timeouts, the shutdown deadline. Raises
    /// ValueError for a `now` that is not a finite number of seconds.
    fn handle_timeout(&mut self, py: Python<'_>, now: f64) -> PyResult<()> {
        let now = self.instant(now)?;
        let session = &mut self.session;
        py.detach(|| session.handle_timeout(now));
        Ok(())
    }

    /// poll_output() -> Connect | Write | Close | Message | <event> | Timeout | Done
    ///
    /// The next thing to do: a transmit, a verified Message to handle (answer it with
    /// complete), another event (Connecting, Connected, Disconnected, Duplicate,
    /// Rejected, ProduceAnswer, Fatal, GaveUp, KeyWarning, HandlerFailed,
    /// ShutdownComplete), or — nothing more to do now — Timeout(at) or Done. Frames read
    /// are checked here, without the GIL, on check_parallelism threads. Consecutive
    /// writes for one connection come joined in one Write.
    fn poll_output(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        loop {
            let output = match self.ready.pop_front() {
                Some(output) => output,
                None => {
                    let terminal = self.fill(py);
                    match self.ready.pop_front() {
                        Some(output) => {
                            // `terminal` is the core's again at the next call.
                            drop(terminal);
                            output
                        }
                        None => terminal,
                    }
                }
            };
            if let Output::Transmit(Transmit::Write { conn, bytes }) = output {
                let mut joined = bytes;
                while let Some(Output::Transmit(Transmit::Write { conn: next, .. })) =
                    self.ready.front()
                {
                    if *next != conn {
                        break;
                    }
                    if let Some(Output::Transmit(Transmit::Write { bytes, .. })) =
                        self.ready.pop_front()
                    {
                        joined.extend_from_slice(&bytes);
                    }
                }
                return joined_write(py, conn.as_u64(), &joined);
            }
            match &output {
                Output::Transmit(Transmit::Connect { conn, .. }) => {
                    self.conns.insert(conn.as_u64(), *conn);
                }
                Output::Transmit(Transmit::Close { conn }) => {
                    self.conns.remove(&conn.as_u64());
                }
                _ => {}
            }
            let clock = self.clock;
            if let Some(object) = to_python(py, output, |at| clock.seconds(at))? {
                return Ok(object);
            }
        }
    }

    /// poll_timeout() -> float | None
    ///
    /// When to call handle_timeout (time.monotonic() seconds) once every output has
    /// been polled; None when the session is done. Does not consume outputs.
    fn poll_timeout(&mut self, py: Python<'_>) -> Option<f64> {
        match self.fill(py) {
            Output::Timeout(at) => Some(self.clock.seconds(at)),
            _ => None,
        }
    }

    /// send(msg_api: str, biz_content: str, now: float) -> str
    ///
    /// Sends a PRODUCE of `msg_api` with `biz_content` (the text of one JSON object),
    /// signed with the app key without the GIL (PROTOCOL §5, §7). Returns its stream id;
    /// the answer comes as a ProduceAnswer event with that stream id. Raises
    /// NotConnectedError, TooManyPendingError, ShuttingDownError or InvalidMessageError
    /// (all SendError); nothing is sent then.
    fn send(
        &mut self,
        py: Python<'_>,
        msg_api: &str,
        biz_content: &str,
        now: f64,
    ) -> PyResult<String> {
        let now = self.instant(now)?;
        let session = &mut self.session;
        py.detach(|| session.send(msg_api, biz_content, now))
            .map_err(|e| send_error(&e))
    }

    /// complete(message: Message, success: bool, now: float, error: str = "handler
    /// failed") -> None
    ///
    /// The application finished handling `message`: success acks SUCCESS and remembers
    /// the msg_id as handled (a redelivery is then answered SUCCESS without delivering
    /// it again); failure acks FAIL (the platform delivers it again later) and reports
    /// a HandlerFailed event with `error`. Raises UnknownDeliveryError when the message
    /// was already completed or the session has forgotten it (closed after
    /// shutdown_timeout).
    #[pyo3(signature = (message, success, now, error = None))]
    fn complete(
        &mut self,
        py: Python<'_>,
        message: &Bound<'_, Message>,
        success: bool,
        now: f64,
        error: Option<String>,
    ) -> PyResult<()> {
        let now = self.instant(now)?;
        let id = message.get().delivery_id();
        let outcome = if success {
            Outcome::Success
        } else {
            Outcome::Failure(error.unwrap_or_else(|| "handler failed".to_owned()))
        };
        let session = &mut self.session;
        py.detach(|| session.complete(id, outcome, now))
            .map_err(|e| UnknownDeliveryError::new_err(e.to_string()))
    }

    /// set_consumer(attached: bool, now: float) -> None
    ///
    /// Whether the application takes messages (True when the session starts). While
    /// none is attached, a verified message waits at most consumer_grace seconds, then
    /// is answered FAIL for the platform to redeliver (a client that only sends);
    /// attaching hands out the waiting ones.
    fn set_consumer(&mut self, py: Python<'_>, attached: bool, now: f64) -> PyResult<()> {
        let now = self.instant(now)?;
        let session = &mut self.session;
        py.detach(|| session.set_consumer(attached, now));
        Ok(())
    }

    /// shutdown(now: float) -> None
    ///
    /// Starts a graceful shutdown: new messages are answered FAIL, the ones in flight
    /// may still be completed and acked; then the connection closes, ShutdownComplete
    /// and Done follow. After shutdown_timeout seconds it closes anyway.
    fn shutdown(&mut self, py: Python<'_>, now: f64) -> PyResult<()> {
        let now = self.instant(now)?;
        let session = &mut self.session;
        py.detach(|| session.shutdown(now));
        Ok(())
    }

    /// update_wall_clock(now: float, unix_ms: int) -> None
    ///
    /// Re-reads the wall clock: `unix_ms` (milliseconds since the Unix epoch) is the
    /// time at `now`. Timestamps the session signs and checks follow it; timers do not
    /// change.
    fn update_wall_clock(&mut self, now: f64, unix_ms: i64) -> PyResult<()> {
        let now = self.instant(now)?;
        self.session.update_wall_clock(now, unix_ms);
        Ok(())
    }

    /// Whether to read the open websocket now (bool): False while max_in_flight
    /// messages await completion (backpressure: stop reading the socket; the platform
    /// holds the messages) and while not connected. Register and upgrade connections
    /// are always read.
    #[getter]
    fn wants_read(&self) -> bool {
        self.session.wants_read()
    }

    /// Whether the websocket is open (bool).
    #[getter]
    fn is_connected(&self) -> bool {
        self.session.is_connected()
    }

    /// Messages delivered and not completed yet (int).
    #[getter]
    fn in_flight(&self) -> usize {
        self.session.in_flight()
    }

    /// Sends waiting for their PRODUCE_ACK (int).
    #[getter]
    fn pending_sends(&self) -> usize {
        self.session.pending_sends()
    }

    /// Whether a consumer is attached (bool, see set_consumer).
    #[getter]
    fn has_consumer(&self) -> bool {
        self.session.has_consumer()
    }

    /// Message ids remembered as handled (int, the duplicate window).
    #[getter]
    fn remembered_handled(&self) -> usize {
        self.session.remembered_handled()
    }

    /// Threads that check signatures (int): the configuration's check_parallelism, 0
    /// meaning one per core, at most 4.
    #[getter]
    fn check_parallelism(&self) -> usize {
        self.lanes
    }

    /// Why the session stopped on its own, as an exception instance to raise
    /// (RefusedError, ConnectTimeoutError), or None.
    #[getter]
    fn error(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.session
            .error()
            .map(|e| client_error(e).into_value(py).into_any())
    }

    fn __repr__(&self) -> String {
        format!(
            "<alipay_msg.session.ClientSession app_id={:?} connected={} in_flight={}>",
            self.session.config().app_id,
            self.session.is_connected(),
            self.session.in_flight()
        )
    }
}
