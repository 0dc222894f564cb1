//! The I/O thread (`alipay-msg-io`): the one thread that owns the [`ClientSession`] and
//! its sockets. It is a byte pump (DESIGN: adapters are byte pumps): it opens the
//! connections the session asks for, feeds every byte read and every command to the
//! session, and writes the bytes the session gives it. HTTP, the websocket upgrade and
//! the websocket framing are the session's.
//!
//! # Waiting for several things at once without async
//!
//! The thread waits for its inputs — commands from [`crate::Client`] handles (send,
//! complete, shutdown), opened connections from connect threads and checked frames from
//! the checking lanes, all on one `std::sync::mpsc` channel — and for bytes on a socket.
//! The standard library cannot wait on a channel and a socket together, and a TLS
//! stream cannot be split into a reading and a writing half for two threads (rustls
//! keeps one state for both directions). So:
//!
//! - while a socket may be read (the session is not connected yet — `register.do` or
//!   the upgrade — or it is and [`ClientSession::wants_read`]), the thread reads it
//!   with a read timeout of [`READ_SLICE`] (20 ms), and takes waiting inputs between
//!   reads: an idle connection costs 50 wake-ups a second, and a command waits at most
//!   20 ms (less when bytes are flowing) — except while handlers run (below);
//! - otherwise (connecting, backing off, or paused for backpressure: then the socket is
//!   not read at all, and the platform holds its messages) it blocks on the channel
//!   until the session's next deadline: inputs are handled at once.
//!
//! Writes happen on this thread only. They are collected per connection and written
//! before the thread waits, or at most [`FLUSH_WITHIN`] (1 ms) after the first of them
//! while the thread keeps reading: a burst of acks leaves in one write. A write that
//! cannot go out within `dead_after` fails the connection (the peer stopped reading).
//!
//! # Checking on every core
//!
//! Parsing a frame and checking a CONSUME's signature is nearly all of a message's
//! cost. Unless there is one lane (`ClientConfig::check_parallelism`; by default, on a
//! single core, where the session checks inline), the session hands each text frame out
//! as a check job ([`ClientSession::set_check_offload`]) and the thread deals the jobs
//! to checking lanes ([`crate::lanes`]), whose results come back on the channel in any
//! order (the session restores read order). While jobs are out, or handlers run, the
//! thread reads the socket without waiting (non-blocking), and waits on the channel
//! instead when nothing is there: a checked frame or a handler's completion never waits
//! for a read timeout (which the kernel rounds up to a scheduler tick, 4 ms at HZ=250).
//! A frame that arrives alone is checked on this thread (the session decides: the
//! quiet path needs no hand-off); frames that arrive together go to the lanes.
//!
//! # Connect threads
//!
//! Each [`Transmit::Connect`] starts a short-lived `alipay-msg-connect` thread that
//! opens TCP (and TLS), so that a slow or unreachable platform never keeps this thread
//! from taking commands: a shutdown or a send during a reconnect is answered at once.
//! The thread hands the open stream back through the channel; a connection the session
//! closes first is abandoned (its cancel flag set) and its stream, if it still comes,
//! dropped. How long a connection may take is the session's business
//! (`connect_timeout`, `first_connect_timeout`); connect threads only stop at that
//! deadline too, so as not to linger.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alipay_msg_core::client::{
    Application, CheckJob, CheckedFrame, ClientError, ClientEvent, ClientSession, ConnId,
    ConnectError, DeliverError, DeliveryId, FrameChecker, Input as SessionInput, Message, Outcome,
    Output, SendError, Transmit,
};
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_core::register::RegisterError;
use alipay_msg_core::window::{QueryId, WindowAnswer, WindowError, WindowQuery, WindowStore};

use crate::events::EventHub;
use crate::lanes::{Lanes, NotDealt, Work, JOBS_PER_LANE};
use crate::lock;
use crate::network::{self, Connector};
use crate::transport::{self, Bounds, Stream, StreamTimeouts};
use crate::window::{Reply, WindowThreads, QUEUE_PER_IN_FLIGHT};

/// Read timeout of an open connection: the longest an input waits while the thread
/// reads.
pub(crate) const READ_SLICE: Duration = Duration::from_millis(20);

/// The longest written bytes (an ack, a ping) wait to be flushed while the thread keeps
/// reading.
const FLUSH_WITHIN: Duration = Duration::from_millis(1);

/// Bytes collected for one connection before they are written at once, whatever
/// [`FLUSH_WITHIN`] says: the bound of a connection's write buffer (a text frame over
/// it is written on its own, right away).
const WRITE_BUFFER: usize = 64 * 1024;

/// Bytes read from a socket at once.
const READ_CHUNK: usize = 16 * 1024;

/// How long the thread waits on the channel between non-blocking reads when it must
/// read more than one socket (never for long: the session has one connection at a
/// time, a second only while the first is being let go).
const POLL_SLICE: Duration = Duration::from_millis(1);

/// Everything the I/O thread waits for besides bytes.
// A checked frame is moved straight to the session; boxing it would add an allocation
// per message for nothing (checked frames in the channel are at most the jobs out).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Input {
    /// PRODUCE; the answer goes to `reply`.
    Send {
        msg_api: String,
        biz_content: String,
        reply: SyncSender<Result<ProduceAck, SendError>>,
    },
    /// A handler's outcome.
    Complete { id: DeliveryId, outcome: Outcome },
    /// A consumer (`run`, `deliveries`) attached or went away
    /// ([`ClientSession::set_consumer`]).
    Consumer(bool),
    /// Graceful shutdown.
    Shutdown,
    /// A connect thread's result for `conn`: the open stream, or why it could not be
    /// opened.
    Opened {
        conn: ConnId,
        result: Result<Stream, ConnectError>,
    },
    /// A frame checked on a checking lane.
    Checked(CheckedFrame),
    /// A window thread's answer to a shared-window query.
    WindowAnswered {
        id: QueryId,
        answer: Result<WindowAnswer, WindowError>,
    },
}

/// State shared between the I/O thread and the client handles.
#[derive(Default)]
pub(crate) struct Shared {
    /// The platform's refusal, when it stopped the client.
    pub(crate) fatal: Mutex<Option<RegisterError>>,
    /// Set when the I/O thread has ended: deliveries still buffered can no longer be
    /// acknowledged.
    pub(crate) finished: AtomicBool,
    /// Set by [`crate::Client::run`] while it runs: deliveries go straight to its
    /// handler pool instead of through the delivery channel and the thread that called
    /// `run` (one hand-off and one wake-up fewer per message).
    pub(crate) handlers: Mutex<Option<HandlerSink>>,
}

/// Hands a message to the handler pool; `Err` (why) when the pool takes no more.
pub(crate) type HandlerSink = Box<dyn Fn(Message) -> Result<(), DeliverError> + Send + Sync>;

/// Where the session's events go ([`ClientSession::dispatch`]): the I/O thread's
/// channels, borrowed for one event.
struct AppSide<'a> {
    deliveries: &'a SyncSender<Message>,
    events: &'a EventHub,
    connected: &'a mut Option<SyncSender<Result<(), ClientError>>>,
    shared: &'a Shared,
    sends: &'a mut HashMap<String, SyncSender<Result<ProduceAck, SendError>>>,
}

impl Application for AppSide<'_> {
    fn deliver(&mut self, message: Message) -> Result<(), DeliverError> {
        // Held while the message goes to the channel too: `run` drains the channel
        // under this lock before it installs the sink, so order is kept.
        let handlers = lock(&self.shared.handlers);
        if let Some(handlers) = handlers.as_ref() {
            return handlers(message);
        }
        match self.deliveries.try_send(message) {
            Ok(()) => Ok(()),
            // The session admits at most `max_in_flight` deliveries and the channel
            // holds that many, so it is never full.
            Err(TrySendError::Full(_)) => Err(DeliverError::Full),
            Err(TrySendError::Disconnected(_)) => Err(DeliverError::Closed),
        }
    }

    fn produce_ack(&mut self, stream_id: String, result: Result<ProduceAck, SendError>) {
        if let Some(reply) = self.sends.remove(&stream_id) {
            let _ = reply.try_send(result);
        }
    }

    fn connect_result(&mut self, result: Result<(), ClientError>) {
        match &result {
            Ok(()) => tracing::info!("connected"),
            Err(ClientError::Refused(error)) => {
                tracing::error!(%error, "the platform refused the configuration");
                *lock(&self.shared.fatal) = Some(error.clone());
            }
            Err(error) => tracing::error!(%error, "the client stopped"),
        }
        if let Some(tx) = self.connected.take() {
            let _ = tx.try_send(result);
        }
    }

    fn publish(&mut self, event: ClientEvent) {
        match &event {
            ClientEvent::KeyWarning { .. } | ClientEvent::Fatal(_) | ClientEvent::GaveUp { .. } => {
                tracing::warn!(%event)
            }
            _ => tracing::debug!(%event),
        }
        // Published before `connect` returns (the session publishes `Connected`
        // before answering it): a subscription made after it never sees the first
        // `Connected`.
        self.events.publish(&event);
    }
}

/// One connection the session asked for, from its [`Transmit::Connect`] to its
/// [`Transmit::Close`].
struct Conn {
    /// `None` while its connect thread runs (or after it failed).
    stream: Option<Stream>,
    /// Tells the connect thread to give up.
    cancel: Arc<AtomicBool>,
    /// Bytes written by the session and not yet sent (at most about
    /// [`WRITE_BUFFER`]).
    out: Vec<u8>,
    /// When the oldest of `out` was written.
    unflushed: Option<Instant>,
    /// The socket is in non-blocking mode (for reads while frames are checked).
    nonblocking: bool,
    /// Its end (or failure) was reported to the session: nothing more is read or
    /// written; the session's `Close` follows.
    ended: bool,
}

/// The I/O thread's state.
pub(crate) struct IoThread {
    session: ClientSession,
    /// For [`Input::Checked`] when a lane cannot take a job.
    checker: FrameChecker,
    inputs: Receiver<Input>,
    /// For connect threads and checking lanes to report through.
    input_tx: Sender<Input>,
    deliveries: SyncSender<Message>,
    events: Arc<EventHub>,
    connected: Option<SyncSender<Result<(), ClientError>>>,
    shared: Arc<Shared>,
    sends: HashMap<String, SyncSender<Result<ProduceAck, SendError>>>,
    /// The session's connections (one at a time, at most two while one is let go).
    conns: HashMap<ConnId, Conn>,
    connect_threads: Vec<JoinHandle<()>>,
    /// How connections are opened (TLS configuration, proxy).
    connector: Arc<Connector>,
    /// Checking lanes; `None` for one lane (the session checks inline).
    lanes: Option<Lanes<CheckJob>>,
    /// Check jobs dealt whose results have not come back.
    checks_out: usize,
    /// The shared window's threads, when the client has a store.
    window: Option<WindowThreads>,
    /// Shared-window queries asked whose answers have not come back.
    window_out: usize,
    read_buf: Vec<u8>,
    /// How long to wait on the channel next while only handlers run (doubling from
    /// [`POLL_SLICE`] to [`READ_SLICE`] while nothing happens).
    idle_wait: Duration,
}

pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl IoThread {
    pub(crate) fn new(
        mut session: ClientSession,
        inputs: Receiver<Input>,
        input_tx: Sender<Input>,
        deliveries: SyncSender<Message>,
        events: Arc<EventHub>,
        connected: SyncSender<Result<(), ClientError>>,
        shared: Arc<Shared>,
    ) -> Self {
        let checker = session.frame_checker();
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let count = session.config().check_parallelism_for(cores);
        let max_outstanding = count.saturating_mul(JOBS_PER_LANE);
        let work: Work<CheckJob> = {
            let (checker, results) = (checker.clone(), input_tx.clone());
            Arc::new(move |job| results.send(Input::Checked(checker.run(job))).is_ok())
        };
        let lanes = Lanes::start(count, max_outstanding, work);
        if let Some(lanes) = &lanes {
            tracing::debug!(
                lanes = lanes.count(),
                max_outstanding,
                "frames are checked on lanes"
            );
            session.set_check_offload(max_outstanding);
        }
        IoThread {
            session,
            checker,
            inputs,
            input_tx,
            deliveries,
            events,
            connected: Some(connected),
            shared,
            sends: HashMap::new(),
            conns: HashMap::new(),
            connect_threads: Vec::new(),
            connector: Arc::default(),
            lanes,
            checks_out: 0,
            window: None,
            window_out: 0,
            read_buf: vec![0; READ_CHUNK],
            idle_wait: POLL_SLICE,
        }
    }

    /// Opens connections with `connector` (default: webpki roots, no proxy).
    pub(crate) fn with_connector(mut self, connector: Arc<Connector>) -> Self {
        self.connector = connector;
        self
    }

    /// Answers the session's shared-window queries with `store`, on window threads.
    /// Errors: no window thread could be started.
    pub(crate) fn with_window(mut self, store: Arc<dyn WindowStore>) -> Result<Self, String> {
        let tx = self.input_tx.clone();
        let reply: Reply = Arc::new(move |query: WindowQuery, answer| {
            tx.send(Input::WindowAnswered {
                id: query.id,
                answer,
            })
            .is_ok()
        });
        let capacity = self
            .session
            .config()
            .max_in_flight
            .saturating_mul(QUEUE_PER_IN_FLIGHT)
            .saturating_add(16);
        self.window = Some(WindowThreads::start(store, capacity, reply)?);
        Ok(self)
    }

    /// Puts a shared-window query to the window threads (answered with an error at once
    /// when there are none or their queue is full).
    fn ask_window(&mut self, query: WindowQuery) {
        let refused = match &self.window {
            Some(window) => window.ask(query).err(),
            None => Some((
                query.id,
                WindowError("this client has no shared window store".into()),
            )),
        };
        match refused {
            None => self.window_out += 1,
            Some((id, error)) => self.session.handle_input(
                SessionInput::WindowAnswered {
                    id,
                    answer: Err(error),
                },
                Instant::now(),
            ),
        }
    }

    /// Runs until the session is done, then closes everything and joins the connect
    /// threads and the checking lanes.
    pub(crate) fn run(mut self) {
        loop {
            // Carry out everything the session asks for, up to its next deadline.
            let deadline = loop {
                match self.session.poll_output() {
                    Output::Transmit(t) => self.transmit(t),
                    Output::Check(job) => self.check(job),
                    Output::Window(query) => self.ask_window(query),
                    Output::Event(e) => {
                        let mut app = AppSide {
                            deliveries: &self.deliveries,
                            events: &self.events,
                            connected: &mut self.connected,
                            shared: &self.shared,
                            sends: &mut self.sends,
                        };
                        self.session.dispatch(e, &mut app, Instant::now());
                    }
                    Output::Timeout(at) => break Some(at),
                    Output::Done => break None,
                    other => tracing::warn!(?other, "an output this client does not know"),
                }
            };
            let Some(deadline) = deadline else { break };
            // Timestamps the session signs follow the wall clock, adjustments included.
            self.session.update_wall_clock(Instant::now(), unix_ms());
            self.wait(deadline);
        }
        self.finish();
    }

    /// Waits for one input, some bytes or the deadline, and feeds it to the session.
    fn wait(&mut self, deadline: Instant) {
        let now = Instant::now();
        if now >= deadline {
            return self.session.handle_timeout(now);
        }
        let readable = self.readable();
        if readable.is_empty() {
            if self.flush_all() {
                return;
            }
            return match self.inputs.recv_timeout(deadline - now) {
                Ok(input) => self.input(input),
                Err(RecvTimeoutError::Timeout) => self.session.handle_timeout(Instant::now()),
                // The thread holds a sender itself: never disconnected.
                Err(RecvTimeoutError::Disconnected) => self.session.shutdown(Instant::now()),
            };
        }
        // Acks leave in bursts (below), but never later than FLUSH_WITHIN after they
        // were written, however busy the thread stays.
        let due = self.conns.values().any(|c| {
            c.unflushed
                .is_some_and(|since| now.saturating_duration_since(since) >= FLUSH_WITHIN)
        });
        if due && self.flush_all() {
            return;
        }
        match self.inputs.try_recv() {
            Ok(input) => return self.input(input),
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => return self.session.shutdown(Instant::now()),
        }
        // Answers from the lanes and the window threads come on the channel: while any
        // are due, the socket is read without waiting. While a handler runs, its
        // completion must not wait for a socket read's timeout either (kernel socket
        // timeouts round up to a scheduler tick, 4 ms at HZ=250): the thread waits on
        // the channel instead, where it wakes at once.
        let checking = self.checks_out > 0 || self.window_out > 0;
        let handling = self.session.in_flight() > 0;
        if let ([conn], false) = (readable.as_slice(), checking || handling) {
            // What was written goes out before the thread waits in the read.
            if self.flush_all() {
                return;
            }
            self.read(*conn, false);
        } else {
            // Frames are being checked or handled (or, briefly, two sockets are
            // open): read without waiting, and wait on the channel when nothing is
            // there. While only handlers run, the wait doubles from POLL_SLICE up to
            // READ_SLICE as nothing happens: a quick handler's completion is taken at
            // once, a slow one costs at most 50 wake-ups a second.
            let mut read = false;
            for conn in readable {
                read |= self.read(conn, true);
            }
            if read || self.flush_all() {
                self.idle_wait = POLL_SLICE;
                return;
            }
            let slice = if checking {
                READ_SLICE
            } else if handling {
                self.idle_wait
            } else {
                POLL_SLICE
            };
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .min(slice);
            match self.inputs.recv_timeout(wait) {
                Ok(input) => {
                    self.idle_wait = POLL_SLICE;
                    return self.input(input);
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.idle_wait = (self.idle_wait * 2).min(READ_SLICE);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return self.session.shutdown(Instant::now())
                }
            }
        }
        let now = Instant::now();
        if now >= deadline {
            self.session.handle_timeout(now);
        }
    }

    /// The connections to read now: the open ones, unless the session is connected and
    /// wants no frames (backpressure: then the socket is not read, so the platform
    /// holds its messages).
    fn readable(&self) -> Vec<ConnId> {
        if self.session.is_connected() && !self.session.wants_read() {
            return Vec::new();
        }
        self.conns
            .iter()
            .filter(|(_, c)| c.stream.is_some() && !c.ended)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Reads `conn` once — without waiting when `nonblocking`, else up to the read
    /// timeout — and feeds what came to the session. `true` when the session got
    /// something (bytes, the end of the stream or a failure).
    fn read(&mut self, id: ConnId, nonblocking: bool) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        let Some(stream) = conn.stream.as_mut() else {
            return false;
        };
        if conn.nonblocking != nonblocking {
            if let Err(e) = stream.set_nonblocking(nonblocking) {
                return self.failed(id, e.kind());
            }
            conn.nonblocking = nonblocking;
        }
        let result = stream.read(&mut self.read_buf);
        let now = Instant::now();
        match result {
            Ok(0) => {
                conn.ended = true;
                let eof = SessionInput::Closed {
                    conn: id,
                    error: None,
                };
                self.session.handle_input(eof, now);
                true
            }
            Ok(n) => {
                // `read` returns at most the buffer's length.
                let bytes = &self.read_buf[..n];
                self.session
                    .handle_input(SessionInput::Bytes { conn: id, bytes }, now);
                true
            }
            Err(e) if transport::is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => false,
            // A TLS peer that closed without close_notify: the session decides whether
            // what it read is complete (the register answer), as for a clean end.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                conn.ended = true;
                let eof = SessionInput::Closed {
                    conn: id,
                    error: None,
                };
                self.session.handle_input(eof, now);
                true
            }
            Err(e) => self.failed(id, e.kind()),
        }
    }

    /// Reading or writing `id` failed: nothing more is done on it, and the session is
    /// told (its `Close` follows). Returns `true` (the session got an input).
    fn failed(&mut self, id: ConnId, error: io::ErrorKind) -> bool {
        if let Some(conn) = self.conns.get_mut(&id) {
            conn.ended = true;
            conn.out = Vec::new();
            conn.unflushed = None;
        }
        tracing::debug!(%id, %error, "connection failed");
        self.session.handle_input(
            SessionInput::Closed {
                conn: id,
                error: Some(error),
            },
            Instant::now(),
        );
        true
    }

    /// Writes what was collected for every connection. `true` when a write failed
    /// (the session was told).
    fn flush_all(&mut self) -> bool {
        let pending: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.unflushed.is_some())
            .map(|(id, _)| *id)
            .collect();
        let mut failed = false;
        for id in pending {
            failed |= self.flush(id);
        }
        failed
    }

    /// Writes what was collected for `id` (waiting up to the write timeout,
    /// `dead_after`). `true` when the write failed (the session was told).
    fn flush(&mut self, id: ConnId) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        if conn.unflushed.take().is_none() || conn.ended {
            return false;
        }
        let Some(stream) = conn.stream.as_mut() else {
            // Not open yet: the bytes wait for the connection.
            conn.unflushed = Some(Instant::now());
            return false;
        };
        let mut written = || {
            if conn.nonblocking {
                stream.set_nonblocking(false)?;
                conn.nonblocking = false;
            }
            stream.write_all(&conn.out)?;
            stream.flush()
        };
        match written() {
            Ok(()) => {
                conn.out.clear();
                false
            }
            // Even a timeout is a failure here: the peer took no bytes for
            // `dead_after`.
            Err(e) if transport::is_timeout(&e) => self.failed(id, io::ErrorKind::TimedOut),
            Err(e) => self.failed(id, e.kind()),
        }
    }

    fn transmit(&mut self, transmit: Transmit) {
        match transmit {
            Transmit::Connect {
                conn,
                host,
                port,
                tls,
            } => self.connect(conn, host, port, tls),
            Transmit::Write { conn: id, bytes } => {
                let Some(conn) = self.conns.get_mut(&id) else {
                    return;
                };
                if conn.ended {
                    return;
                }
                if conn.out.is_empty() {
                    conn.out = bytes;
                } else {
                    conn.out.extend_from_slice(&bytes);
                }
                conn.unflushed.get_or_insert_with(Instant::now);
                if conn.out.len() >= WRITE_BUFFER {
                    self.flush(id);
                }
            }
            Transmit::Close { conn: id } => {
                if let Some(mut conn) = self.conns.remove(&id) {
                    conn.cancel.store(true, Ordering::Relaxed);
                    close(id, &mut conn);
                }
            }
            other => tracing::warn!(?other, "a transmit this client does not know"),
        }
    }

    /// Starts a connect thread for `conn`.
    fn connect(&mut self, id: ConnId, host: String, port: u16, tls: bool) {
        // Connect threads that already ended: join them now.
        let (finished, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.connect_threads)
            .into_iter()
            .partition(JoinHandle::is_finished);
        self.connect_threads = running;
        for handle in finished {
            let _ = handle.join();
        }
        let cancel = Arc::new(AtomicBool::new(false));
        self.conns.insert(
            id,
            Conn {
                stream: None,
                cancel: cancel.clone(),
                out: Vec::new(),
                unflushed: None,
                nonblocking: false,
                ended: false,
            },
        );
        let config = self.session.config();
        // The session closes the connection at its own deadline; the thread stops then
        // too.
        let deadline = Instant::now() + config.connect_timeout;
        let timeouts = StreamTimeouts {
            read: READ_SLICE,
            write: config.dead_after,
        };
        let tx = self.input_tx.clone();
        let connector = self.connector.clone();
        let spawned = std::thread::Builder::new()
            .name("alipay-msg-connect".to_owned())
            .spawn(move || {
                let bounds = Bounds {
                    deadline,
                    cancel: &cancel,
                };
                let result = transport::connect(&host, port, tls, &connector, timeouts, bounds);
                if let Err(error) = &result {
                    network::log_connect_failure(id, &host, port, error);
                }
                // A closed channel: the client has stopped; the stream is dropped.
                let _ = tx.send(Input::Opened {
                    conn: id,
                    result: result.map_err(|e| network::connect_error(&e)),
                });
            });
        match spawned {
            Ok(handle) => self.connect_threads.push(handle),
            Err(error) => {
                tracing::error!(%error, "could not start a connect thread");
                if let Some(conn) = self.conns.get_mut(&id) {
                    conn.ended = true;
                }
                let failed = SessionInput::ConnectFailed {
                    conn: id,
                    error: error.kind().into(),
                };
                self.session.handle_input(failed, Instant::now());
            }
        }
    }

    /// Runs a check job: on a lane, or here when there is none.
    fn check(&mut self, job: CheckJob) {
        let job = match self.lanes.as_mut() {
            None => job,
            Some(lanes) => match lanes.deal(job) {
                Ok(()) => {
                    self.checks_out += 1;
                    return;
                }
                Err(NotDealt::Full(job)) => job,
                Err(NotDealt::Gone(job)) => {
                    tracing::error!(
                        "a checking lane stopped; frames are checked on the I/O thread from now on"
                    );
                    self.lanes = None;
                    job
                }
            },
        };
        let checked = self.checker.run(job);
        self.session
            .handle_input(SessionInput::Checked(checked), Instant::now());
    }

    fn input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Send {
                msg_api,
                biz_content,
                reply,
            } => match self.session.send(&msg_api, &biz_content, now) {
                Ok(stream_id) => {
                    self.sends.insert(stream_id, reply);
                }
                Err(e) => {
                    let _ = reply.try_send(Err(e));
                }
            },
            Input::Complete { id, outcome } => {
                // A completion for a delivery the session no longer tracks (after a
                // shutdown timeout) has nothing left to do.
                let _ = self.session.complete(id, outcome, now);
            }
            Input::Consumer(attached) => self.session.set_consumer(attached, now),
            Input::Shutdown => self.session.shutdown(now),
            Input::Opened { conn: id, result } => {
                // A connection the session closed meanwhile: dropped (and so closed).
                let Some(conn) = self.conns.get_mut(&id) else {
                    return;
                };
                match result {
                    Ok(stream) => {
                        conn.stream = Some(stream);
                        self.session
                            .handle_input(SessionInput::Connected(id), Instant::now());
                    }
                    Err(error) => {
                        conn.ended = true;
                        self.session.handle_input(
                            SessionInput::ConnectFailed { conn: id, error },
                            Instant::now(),
                        );
                    }
                }
            }
            Input::Checked(checked) => {
                self.checks_out = self.checks_out.saturating_sub(1);
                self.session
                    .handle_input(SessionInput::Checked(checked), now);
            }
            Input::WindowAnswered { id, answer } => {
                self.window_out = self.window_out.saturating_sub(1);
                self.session
                    .handle_input(SessionInput::WindowAnswered { id, answer }, now);
            }
        }
    }

    /// The session is done: close what is left, answer what waits, join the connect
    /// threads and the lanes, tell everyone.
    fn finish(&mut self) {
        for (id, mut conn) in std::mem::take(&mut self.conns) {
            conn.cancel.store(true, Ordering::Relaxed);
            close(id, &mut conn);
        }
        // Ends and joins the checking threads and the window threads.
        self.lanes = None;
        self.window = None;
        for (_, reply) in self.sends.drain() {
            let _ = reply.try_send(Err(SendError::ConnectionLost));
        }
        for handle in self.connect_threads.drain(..) {
            let _ = handle.join();
        }
        self.shared.finished.store(true, Ordering::SeqCst);
        self.events.close();
        // `connected` (if still unanswered) and `deliveries` close when `self` drops.
    }
}

/// Writes what is left for `conn` (best effort: the session is done with it) and
/// shuts it down.
fn close(id: ConnId, conn: &mut Conn) {
    let Some(mut stream) = conn.stream.take() else {
        return;
    };
    // Writes wait (up to `dead_after`), the close_notify of TLS too.
    let blocking = stream.set_nonblocking(false);
    if !conn.ended && !conn.out.is_empty() {
        let written = blocking
            .and_then(|()| stream.write_all(&conn.out))
            .and_then(|()| stream.flush());
        if let Err(error) = written {
            tracing::debug!(%id, %error, "the last bytes could not be written");
        }
    }
    stream.shut();
}
