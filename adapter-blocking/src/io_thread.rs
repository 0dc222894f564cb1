//! The I/O thread (`alipay-msg-io`): the one thread that owns the [`ClientSession`] and
//! the websocket. It feeds every input to the session and carries out every output
//! (DESIGN: adapters are thin).
//!
//! # Waiting for two things at once without async
//!
//! The thread waits for its inputs — commands from [`crate::Client`] handles (send,
//! complete, shutdown) and results of connect attempts, all on one
//! `std::sync::mpsc` channel — and for frames on the socket. The standard library
//! cannot wait on a channel and a socket together, and a TLS websocket cannot be split
//! into a reading and a writing half for two threads (rustls and tungstenite keep one
//! state for both directions). So:
//!
//! - while the session wants frames ([`ClientSession::wants_read`]), the thread reads
//!   the socket with a read timeout of [`READ_SLICE`] (20 ms), and takes waiting
//!   commands between reads: an idle connection costs 50 wake-ups a second, and a
//!   command waits at most 20 ms (less when frames are flowing);
//! - otherwise (connecting, backing off, or paused for backpressure) it blocks on the
//!   channel until the session's next deadline: commands are handled at once.
//!
//! Writes happen on this thread only. A write that cannot go out within
//! `dead_after` closes the connection (the peer stopped reading).
//!
//! # Checking on every core
//!
//! Parsing a frame and checking a CONSUME's signature is nearly all of a message's
//! cost. Unless there is one lane (`ClientConfig::check_parallelism`; by default, on a
//! single core) the thread deals the text frames it reads to checking lanes
//! ([`crate::lanes`]) and takes them back, checked, in the order it read them.
//! While frames are being checked it reads the socket without waiting (non-blocking),
//! and waits for the next checked frame instead when nothing is there: a checked frame
//! never waits for the read timeout. Writes always wait (up to `dead_after`).
//!
//! Connect attempts (`register.do`, then the websocket upgrade) run on a short-lived
//! `alipay-msg-connect` thread each, so that a slow or unreachable platform never keeps
//! this thread from taking commands: a shutdown or a send during a reconnect is answered
//! at once. The attempt hands its results back through the channel — the answer bytes
//! of `register.do`, then the open websocket — and is abandoned (its cancel flag set)
//! when the session says [`Transmit::Close`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alipay_msg_core::client::{
    Application, AttemptFailure, ClientError, ClientEvent, ClientSession, DeliveryId, Event,
    Message, Outcome, Output, SendError, Transmit, WsRead,
};
use alipay_msg_core::endpoint::Endpoint;
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_core::register::{RegisterError, WsConnect};
use tungstenite::Message as WsMessage;

use crate::events::EventHub;
use crate::lanes::{Lanes, NotTaken};
use crate::lock;
use crate::transport::{self, Bounds, HttpProgress, Ws};

/// Read timeout of the open websocket: the longest a command waits while the thread
/// reads.
pub(crate) const READ_SLICE: Duration = Duration::from_millis(20);

/// The longest a written frame (an ack, a ping) waits to be flushed while the thread
/// keeps reading.
const FLUSH_WITHIN: Duration = Duration::from_millis(1);

/// Everything the I/O thread waits for.
pub(crate) enum Input {
    /// PRODUCE; the answer goes to `reply`.
    Send {
        msg_api: String,
        biz_content: String,
        reply: SyncSender<Result<ProduceAck, SendError>>,
    },
    /// A handler's outcome.
    Complete { id: DeliveryId, outcome: Outcome },
    /// Graceful shutdown.
    Shutdown,
    /// A result of connect attempt `id`.
    Attempt { id: u64, result: AttemptResult },
}

/// What a connect attempt reports.
pub(crate) enum AttemptResult {
    Http(HttpProgress),
    WsOpen(Box<Ws>),
    WsFailed(transport::Failed),
}

/// State shared between the I/O thread and the client handles.
#[derive(Default)]
pub(crate) struct Shared {
    /// The platform's refusal, when it stopped the client.
    pub(crate) fatal: Mutex<Option<RegisterError>>,
    /// Why the last connection or attempt ended (for `connect_timeout`'s error).
    pub(crate) last_disconnect: Mutex<Option<AttemptFailure>>,
    /// Set when the I/O thread has ended: deliveries still buffered can no longer be
    /// acknowledged.
    pub(crate) finished: AtomicBool,
    /// Set by [`crate::Client::run`] while it runs: deliveries go straight to its
    /// handler pool instead of through the delivery channel and the thread that called
    /// `run` (one hand-off and one wake-up fewer per message).
    pub(crate) handlers: Mutex<Option<HandlerSink>>,
}

/// Hands a message to the handler pool; `Err` (why) when the pool takes no more.
pub(crate) type HandlerSink = Box<dyn Fn(Message) -> Result<(), String> + Send + Sync>;

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
    fn deliver(&mut self, message: Message) -> Result<(), String> {
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
            Err(TrySendError::Full(_)) => Err("the delivery queue is full".to_owned()),
            Err(TrySendError::Disconnected(_)) => {
                Err("nobody takes deliveries any more".to_owned())
            }
        }
    }

    fn produce_ack(&mut self, stream_id: String, result: Result<ProduceAck, SendError>) {
        if let Some(reply) = self.sends.remove(&stream_id) {
            let _ = reply.try_send(result);
        }
    }

    fn connect_result(&mut self, result: Result<(), RegisterError>) {
        match &result {
            Ok(()) => tracing::info!("connected"),
            Err(error) => {
                tracing::error!(%error, "the platform refused the configuration");
                *lock(&self.shared.fatal) = Some(error.clone());
            }
        }
        if let Some(tx) = self.connected.take() {
            let _ = tx.try_send(result.map_err(ClientError::Refused));
        }
    }

    fn publish(&mut self, event: ClientEvent) {
        tracing::debug!(%event);
        // Published before `connect` returns (the session publishes `Connected`
        // before answering it): a subscription made after it never sees the first
        // `Connected`.
        self.events.publish(&event);
    }
}

/// The I/O thread's state.
pub(crate) struct IoThread {
    pub(crate) session: ClientSession,
    pub(crate) inputs: Receiver<Input>,
    /// For connect attempts to report through.
    pub(crate) input_tx: Sender<Input>,
    pub(crate) deliveries: SyncSender<Message>,
    pub(crate) events: Arc<EventHub>,
    pub(crate) connected: Option<SyncSender<Result<(), ClientError>>>,
    pub(crate) shared: Arc<Shared>,
    sends: HashMap<String, SyncSender<Result<ProduceAck, SendError>>>,
    /// The current attempt; results of other attempts are stale.
    attempt: u64,
    attempt_cancel: Arc<AtomicBool>,
    attempt_threads: Vec<JoinHandle<()>>,
    conn: Option<Ws>,
    /// When the oldest frame written to `conn` since its last flush was written.
    unflushed: Option<Instant>,
    /// `conn`'s socket is in non-blocking mode (for reads while frames are checked).
    nonblocking: bool,
    /// Checking lanes; `None` for one lane (frames are checked here).
    lanes: Option<Lanes>,
    /// The socket error kind of the attempt in progress, until the session reports how
    /// the attempt ended.
    io_kind: Option<std::io::ErrorKind>,
}

pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl IoThread {
    pub(crate) fn new(
        session: ClientSession,
        inputs: Receiver<Input>,
        input_tx: Sender<Input>,
        deliveries: SyncSender<Message>,
        events: Arc<EventHub>,
        connected: SyncSender<Result<(), ClientError>>,
        shared: Arc<Shared>,
    ) -> Self {
        let lanes = Lanes::start(&session.frame_checker(), session.config());
        IoThread {
            session,
            inputs,
            input_tx,
            deliveries,
            events,
            connected: Some(connected),
            shared,
            sends: HashMap::new(),
            attempt: 0,
            attempt_cancel: Arc::new(AtomicBool::new(false)),
            attempt_threads: Vec::new(),
            conn: None,
            unflushed: None,
            nonblocking: false,
            lanes,
            io_kind: None,
        }
    }

    /// Runs until the session is done, then closes everything and joins the attempt
    /// threads.
    pub(crate) fn run(mut self) {
        for event in ClientEvent::start_up(self.session.config()) {
            tracing::warn!(%event);
            self.events.publish(&event);
        }
        loop {
            // Carry out everything the session asks for, up to its next deadline.
            let deadline = loop {
                match self.session.poll_output() {
                    Output::Transmit(t) => self.transmit(t),
                    Output::Event(e) => {
                        if matches!(e, Event::Connecting { .. }) {
                            self.io_kind = None;
                        }
                        if let Some(failure) = AttemptFailure::from_event(&e, self.io_kind.take()) {
                            *lock(&self.shared.last_disconnect) = Some(failure);
                        }
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
                }
            };
            let Some(deadline) = deadline else { break };
            // Timestamps the session signs follow the wall clock, adjustments included.
            self.session.update_wall_clock(Instant::now(), unix_ms());
            self.wait(deadline);
        }
        self.finish();
    }

    /// Waits for one input (or the deadline) and feeds it to the session.
    fn wait(&mut self, deadline: Instant) {
        let now = Instant::now();
        if now >= deadline {
            return self.session.handle_timeout(now);
        }
        if self.conn.is_some() && self.session.wants_read() {
            // Acks leave in bursts (below), but never later than FLUSH_WITHIN after
            // they were written, however busy the thread stays.
            if self
                .unflushed
                .is_some_and(|since| now.saturating_duration_since(since) >= FLUSH_WITHIN)
            {
                self.flush();
                if self.conn.is_none() {
                    return;
                }
            }
            match self.inputs.try_recv() {
                Ok(input) => return self.input(input),
                Err(TryRecvError::Empty) => {}
                // The thread holds a sender itself: never disconnected.
                Err(TryRecvError::Disconnected) => {
                    return self.session.shutdown(Instant::now());
                }
            }
            // Every frame checked by now, at once, for as long as the session wants
            // frames (`max_in_flight`): their deliveries reach the handlers together
            // (one wake-up for a burst, not one each).
            let mut took = false;
            while let Some(lanes) = self.lanes.as_mut() {
                if !self.session.wants_read() {
                    break;
                }
                match lanes.try_take() {
                    Ok(frame) => {
                        took = true;
                        self.checked(frame);
                    }
                    Err(NotTaken::Gone) => return self.lanes_gone(),
                    Err(NotTaken::Empty | NotTaken::NotYet) => break,
                }
            }
            if took {
                return;
            }
            // What was written goes out before the thread waits: here, unless frames
            // are being checked (then the read does not wait, and the wait for a
            // checked frame flushes first), so that acks leave in bursts.
            if !self.checking() {
                self.flush();
                if self.conn.is_none() {
                    return;
                }
            }
            if self.lanes.as_ref().is_some_and(Lanes::is_full) {
                // Every lane holds all it may: the due frame first.
                self.take_checked(deadline);
            } else {
                self.read_frame(deadline);
            }
            let now = Instant::now();
            if now >= deadline {
                self.session.handle_timeout(now);
            }
        } else {
            self.flush();
            match self.inputs.recv_timeout(deadline - now) {
                Ok(input) => self.input(input),
                Err(RecvTimeoutError::Timeout) => self.session.handle_timeout(Instant::now()),
                Err(RecvTimeoutError::Disconnected) => self.session.shutdown(Instant::now()),
            }
        }
    }

    /// Reads one frame, or nothing within [`READ_SLICE`] — nothing at once while frames
    /// are being checked, and then waits for the next checked frame (until `deadline`).
    fn read_frame(&mut self, deadline: Instant) {
        let checking = self.checking();
        if !self.set_nonblocking(checking) {
            return;
        }
        let Some(ws) = self.conn.as_mut() else { return };
        let result = ws.read();
        let now = Instant::now();
        match result.map(WsRead::from_message) {
            Ok(Some(WsRead::Text(text))) => match self.lanes.as_mut() {
                Some(lanes) => {
                    if !lanes.deal(text) {
                        self.lanes_gone();
                    }
                }
                None => self.session.handle_text(text.as_str(), now),
            },
            Ok(Some(WsRead::Pong)) => self.session.handle_pong(now),
            Ok(Some(WsRead::Closed(reason))) => self.read_ended(&reason),
            // Pings (tungstenite answers them) and binary frames.
            Ok(None) => {}
            Err(tungstenite::Error::Io(e)) if transport::is_timeout(&e) => {
                if checking {
                    self.take_checked(deadline);
                }
            }
            Err(e) => self.read_ended(&e.to_string()),
        }
    }

    /// Frames are being checked on the lanes.
    fn checking(&self) -> bool {
        self.lanes.as_ref().is_some_and(|l| l.pending() > 0)
    }

    /// The platform closed the connection, or reading failed: the frames read before
    /// still count, as far as the session wants them (`max_in_flight`), then the
    /// connection is let go.
    fn read_ended(&mut self, reason: &str) {
        // Checking a frame takes a parse and one signature check (well under a
        // second); frames not checked by then, or not wanted, are dropped with the
        // connection (they were never acked: the platform delivers them again).
        let drain_by = Instant::now() + Duration::from_secs(1);
        while let Some(lanes) = self.lanes.as_mut() {
            if !self.session.wants_read() {
                break;
            }
            match lanes.take(drain_by) {
                Ok(frame) => self.checked(frame),
                Err(NotTaken::Gone) => {
                    self.lanes_stopped();
                    break;
                }
                Err(NotTaken::Empty | NotTaken::NotYet) => break,
            }
        }
        self.let_go();
        self.session.handle_ws_closed(reason, Instant::now());
    }

    /// Waits (until `deadline`) for the next checked frame and gives it to the session;
    /// what was written goes out first.
    fn take_checked(&mut self, deadline: Instant) {
        self.flush();
        let Some(lanes) = self.lanes.as_mut() else {
            return;
        };
        match lanes.take(deadline) {
            Ok(frame) => self.checked(frame),
            Err(NotTaken::Gone) => self.lanes_gone(),
            Err(NotTaken::Empty | NotTaken::NotYet) => {}
        }
    }

    fn checked(&mut self, frame: alipay_msg_core::client::CheckedFrame) {
        // Checked by this session's own checker: never foreign.
        let _ = self.session.handle_checked(frame, Instant::now());
    }

    /// A checking lane's thread ended (it cannot on any input): the frames it held are
    /// lost, so the connection is closed for the platform to deliver them again, and
    /// from now on this thread checks frames itself.
    fn lanes_gone(&mut self) {
        self.lanes_stopped();
        if self.conn.is_some() {
            self.let_go();
            self.session
                .handle_ws_closed("a checking lane stopped", Instant::now());
        }
    }

    /// Lets go of the connection, and of its frames still being checked.
    fn let_go(&mut self) {
        self.conn = None;
        self.unflushed = None;
        self.nonblocking = false;
        if let Some(lanes) = self.lanes.as_mut() {
            if !lanes.reset() {
                self.lanes_stopped();
            }
        }
    }

    fn lanes_stopped(&mut self) {
        tracing::error!(
            "a checking lane stopped; frames are checked on the I/O thread from now on"
        );
        self.lanes = None;
    }

    /// Puts the socket in (non-)blocking mode, when it is not already; `false` if that
    /// failed, which ends the connection.
    fn set_nonblocking(&mut self, nonblocking: bool) -> bool {
        if self.nonblocking == nonblocking {
            return true;
        }
        let Some(ws) = self.conn.as_ref() else {
            return false;
        };
        match ws.get_ref().set_nonblocking(nonblocking) {
            Ok(()) => {
                self.nonblocking = nonblocking;
                true
            }
            Err(e) => {
                self.let_go();
                self.session
                    .handle_ws_closed(&format!("socket mode: {e}"), Instant::now());
                false
            }
        }
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
            Input::Shutdown => self.session.shutdown(now),
            Input::Attempt { id, result } if id == self.attempt => match result {
                AttemptResult::Http(HttpProgress::Data(data)) => {
                    self.session.handle_http_data(&data, now)
                }
                AttemptResult::Http(HttpProgress::Eof) => self.session.handle_http_eof(now),
                AttemptResult::Http(HttpProgress::Failed(failed)) => {
                    self.io_kind = failed.kind;
                    self.session.handle_http_failed(&failed.text, now)
                }
                AttemptResult::WsOpen(ws) => {
                    let ready = ws.get_ref().set_read_timeout(READ_SLICE).and_then(|()| {
                        ws.get_ref()
                            .set_write_timeout(self.session.config().dead_after)
                    });
                    match ready {
                        Ok(()) => {
                            self.let_go();
                            self.conn = Some(*ws);
                            self.session.update_wall_clock(now, unix_ms());
                            self.session.handle_ws_open(now);
                        }
                        Err(e) => {
                            self.io_kind = Some(e.kind());
                            self.session.handle_ws_failed(&e.to_string(), now)
                        }
                    }
                }
                AttemptResult::WsFailed(failed) => {
                    self.io_kind = failed.kind;
                    self.session.handle_ws_failed(&failed.text, now)
                }
            },
            Input::Attempt { .. } => {} // from an abandoned attempt
        }
    }

    fn transmit(&mut self, transmit: Transmit) {
        match transmit {
            Transmit::HttpRequest { endpoint, request } => {
                self.abandon_attempt();
                self.start_attempt(endpoint, Attempt::Http(request));
            }
            Transmit::WsConnect { endpoint, connect } => {
                // The register exchange is over; the upgrade belongs to the same
                // attempt.
                self.attempt_cancel.store(true, Ordering::Relaxed);
                self.start_attempt(endpoint, Attempt::Ws(connect));
            }
            Transmit::Text(text) => self.write(WsMessage::Text(text.into())),
            Transmit::Ping => self.write(WsMessage::Ping(Vec::new().into())),
            Transmit::Close => {
                self.abandon_attempt();
                self.close();
            }
        }
    }

    /// Queues a frame; [`IoThread::flush`] sends what is queued before the thread
    /// waits, so a burst of acks leaves in one write.
    fn write(&mut self, message: WsMessage) {
        // Writes wait for the socket (up to `dead_after`).
        if !self.set_nonblocking(false) {
            return;
        }
        let Some(ws) = self.conn.as_mut() else { return };
        match ws.write(message) {
            Ok(()) => {
                self.unflushed.get_or_insert_with(Instant::now);
            }
            Err(e) => self.write_failed(&e),
        }
    }

    fn flush(&mut self) {
        if self.unflushed.take().is_none() {
            return;
        }
        if !self.set_nonblocking(false) {
            return;
        }
        let Some(ws) = self.conn.as_mut() else { return };
        if let Err(e) = ws.flush() {
            self.write_failed(&e);
        }
    }

    /// Sends a close frame (best effort: it may not get out) and lets the connection go.
    fn close(&mut self) {
        if self.set_nonblocking(false) {
            if let Some(mut ws) = self.conn.take() {
                let _ = ws.close(None);
                let _ = ws.flush();
            }
        }
        self.let_go();
    }

    fn write_failed(&mut self, e: &tungstenite::Error) {
        // Even a timeout is fatal here: the peer took no bytes for `dead_after`.
        self.let_go();
        self.session
            .handle_ws_closed(&format!("write failed: {e}"), Instant::now());
    }

    /// Results of the current attempt become stale; its thread stops soon.
    fn abandon_attempt(&mut self) {
        self.attempt_cancel.store(true, Ordering::Relaxed);
        self.attempt += 1;
    }

    fn start_attempt(&mut self, endpoint: Endpoint, attempt: Attempt) {
        // Attempt threads that already ended: join them now.
        let (finished, running): (Vec<_>, Vec<_>) = std::mem::take(&mut self.attempt_threads)
            .into_iter()
            .partition(JoinHandle::is_finished);
        self.attempt_threads = running;
        for handle in finished {
            let _ = handle.join();
        }
        let cancel = Arc::new(AtomicBool::new(false));
        self.attempt_cancel = cancel.clone();
        let (id, tx) = (self.attempt, self.input_tx.clone());
        let deadline = Instant::now() + self.session.config().connect_timeout;
        let max_message = self.session.config().frame_limits.max_frame_bytes;
        let spawned = std::thread::Builder::new()
            .name("alipay-msg-connect".to_owned())
            .spawn(move || {
                let bounds = Bounds {
                    deadline,
                    cancel: &cancel,
                };
                let report = |result| tx.send(Input::Attempt { id, result }).is_ok();
                match attempt {
                    Attempt::Http(request) => {
                        transport::http_exchange(&endpoint, &request, bounds, |progress| {
                            report(AttemptResult::Http(progress))
                        });
                    }
                    Attempt::Ws(connect) => {
                        report(
                            match transport::websocket(&endpoint, &connect, max_message, bounds) {
                                Ok(ws) => AttemptResult::WsOpen(Box::new(ws)),
                                Err(e) => AttemptResult::WsFailed(e),
                            },
                        );
                    }
                }
            });
        match spawned {
            Ok(handle) => self.attempt_threads.push(handle),
            Err(e) => {
                let reason = format!("could not start a connect thread: {e}");
                let now = Instant::now();
                self.session.handle_http_failed(&reason, now);
                self.session.handle_ws_failed(&reason, now);
            }
        }
    }

    /// The session is done: close, answer what waits, join the attempt threads, tell
    /// everyone.
    fn finish(&mut self) {
        self.abandon_attempt();
        self.close();
        // Ends the checking threads.
        self.lanes = None;
        for (_, reply) in self.sends.drain() {
            let _ = reply.try_send(Err(SendError::ConnectionLost));
        }
        for handle in self.attempt_threads.drain(..) {
            let _ = handle.join();
        }
        self.shared.finished.store(true, Ordering::SeqCst);
        self.events.close();
        // `connected` (if still unanswered) and `deliveries` close when `self` drops.
    }
}

/// The work of a connect thread.
enum Attempt {
    Http(Vec<u8>),
    Ws(WsConnect),
}
