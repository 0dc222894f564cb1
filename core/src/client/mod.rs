//! The client as a state machine over bytes: every decision of the message channel's
//! client, with no I/O (DESIGN: "the core is a state machine you drive, over bytes").
//!
//! A [`ClientSession`] owns its connections: it asks for TCP (+TLS) connections with
//! [`Transmit::Connect`], writes the bytes to send with [`Transmit::Write`] and ends
//! each with [`Transmit::Close`]; the adapter reports what happens on them with
//! [`ClientSession::handle_input`] ([`Input::Connected`], [`Input::Bytes`],
//! [`Input::Closed`] …), each with the current time `now`. Over those bytes the session
//! runs `register.do` (HTTP/1.1), the websocket upgrade and RFC 6455 framing (module
//! [`crate::ws`]), with text frames in the app's charset (PROTOCOL §1–4). It answers
//! through [`ClientSession::poll_output`]: [`Transmit`]s, [`Event`]s for the
//! application, [`Output::Check`] jobs when checking is offloaded, and the
//! [`Output::Timeout`] at which to call [`ClientSession::handle_timeout`]. **After every
//! input, call `poll_output` until it returns [`Output::Timeout`] or [`Output::Done`].**
//!
//! Lifecycle: `register.do` on one connection (request out, answer in, connection
//! closed) → the websocket upgrade on a new connection → open → closed → backoff →
//! again (PROTOCOL §1–3, §8). While open: a ping every `heartbeat_interval`; when no
//! pong has come back for `dead_after` the connection is dead — whichever direction
//! broke — and is closed. (Frames from the platform do not count: they arrive on a
//! connection whose other direction may have failed, and then no ack would ever get
//! through.) While reading is paused for backpressure the check waits, since pongs are
//! not read either.
//!
//! The ack decision for each CONSUME, in this order (PROTOCOL §4–6):
//!
//! 1. malformed frame, or bytes that do not decode in the app's charset →
//!    [`Event::Rejected`], no ack (it cannot be addressed); the connection stays open;
//! 2. signature absent or invalid, or `appId` not this app's → `Rejected`, ack FAIL;
//!    the handler never sees it;
//! 3. `x-timestamp` outside the window → `Rejected`, ack FAIL (a CONSUME without
//!    `x-timestamp` is not checked: the field is outside the signature anyway);
//! 4. `x-msgId` already handled successfully → [`Event::Duplicate`], ack SUCCESS;
//! 5. `x-msgId` being handled right now → not delivered twice; acked when the first
//!    delivery completes;
//! 6. otherwise → [`Event::Message`]; ack SUCCESS or FAIL only when the application
//!    calls [`ClientSession::complete`].
//!
//! Nothing is acked SUCCESS before the handler succeeded. A completion that arrives
//! after its connection died is remembered: a later redelivery of the message is
//! answered SUCCESS from memory.
//!
//! With a duplicate window shared by several instances
//! ([`ClientConfig::shared_window`], module [`crate::window`]), rule 6 first claims the
//! id in the shared store ([`Output::Window`], answered with [`Input::WindowAnswered`]):
//! claimed → delivered; handled by another instance → SUCCESS without the handler
//! ([`Event::Duplicate`]); held by another instance's live claim → FAIL
//! ([`RejectReason::ClaimedElsewhere`]); store unreachable → FAIL and
//! [`Event::SharedWindowFailed`] (or the local window, if configured). A success is
//! recorded in the store before its SUCCESS ack; a failure releases the claim. Without
//! a shared window the session never outputs [`Output::Window`].
//!
//! Checking (decode, parse, RSA verify) is done inline by default. After
//! [`ClientSession::set_check_offload`]`(n)` with `n >= 2`, each text frame goes out as
//! an [`Output::Check`] job for [`FrameChecker::run`] on any thread; results come back
//! with [`Input::Checked`] in any order and the session restores read order.
//!
//! # The pump loop
//!
//! ```no_run
//! use std::io::ErrorKind;
//! use std::time::{Instant, SystemTime, UNIX_EPOCH};
//! use alipay_msg_core::client::{
//!     ClientConfig, ClientSession, ConnId, Credentials, Event, Input, Outcome, Output, Transmit,
//! };
//!
//! /// What an adapter's sockets produce (one value per wake-up).
//! enum Io { Connected(ConnId), Failed(ConnId, ErrorKind), Read(ConnId, Vec<u8>), Eof(ConnId), Deadline }
//! # fn connect(_: ConnId, _: &str, _: u16, _: bool) {}
//! # fn write(_: ConnId, _: &[u8]) {}
//! # fn close(_: ConnId) {}
//! # fn wait_for_io(_deadline: Instant, _read_websocket: bool) -> Io { Io::Deadline }
//! # fn handle(_: &str, _: &str) -> Result<(), String> { Ok(()) }
//! # fn os_random_seed() -> [u8; 32] { [7; 32] }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let credentials = Credentials::public_key(
//!     &std::fs::read_to_string("app_private_key.pem")?,
//!     &std::fs::read_to_string("alipay_public_key.pem")?,
//! )?;
//! let config = ClientConfig::new("2021000000000001", credentials);
//! let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
//! // 32 bytes from the operating system: nonces, websocket keys and masks, jitter.
//! let mut session = ClientSession::new(config, os_random_seed(), Instant::now(), unix_ms)?;
//! loop {
//!     match session.poll_output() {
//!         // 1. Network work, in order per connection.
//!         Output::Transmit(Transmit::Connect { conn, host, port, tls }) => connect(conn, &host, port, tls),
//!         Output::Transmit(Transmit::Write { conn, bytes }) => write(conn, &bytes),
//!         Output::Transmit(Transmit::Close { conn }) => close(conn),
//!         // 2. Run the handler; report its outcome (here at once, usually later).
//!         Output::Event(Event::Message(delivery)) => {
//!             let outcome = match handle(delivery.msg_api(), delivery.biz_content()) {
//!                 Ok(()) => Outcome::Success,
//!                 Err(e) => Outcome::Failure(e),
//!             };
//!             session.complete(delivery.id, outcome, Instant::now())?;
//!         }
//!         Output::Event(other) => println!("{other:?}"),
//!         // Only after `set_check_offload(n >= 2)`: run it anywhere, feed it back.
//!         Output::Check(job) => {
//!             let checked = session.frame_checker().run(job);
//!             session.handle_input(Input::Checked(checked), Instant::now());
//!         }
//!         // 3. Wait for I/O until the deadline (read the websocket only while
//!         //    `session.wants_read()`), and feed what came.
//!         Output::Timeout(deadline) => {
//!             let io = wait_for_io(deadline, session.wants_read());
//!             let now = Instant::now();
//!             match io {
//!                 Io::Connected(conn) => session.handle_input(Input::Connected(conn), now),
//!                 Io::Failed(conn, error) => session.handle_input(Input::ConnectFailed { conn, error: error.into() }, now),
//!                 Io::Read(conn, bytes) => session.handle_input(Input::Bytes { conn, bytes: &bytes }, now),
//!                 Io::Eof(conn) => session.handle_input(Input::Closed { conn, error: None }, now),
//!                 Io::Deadline => session.handle_timeout(now),
//!             }
//!         }
//!         // 4. Shut down, or stopped by a fatal configuration error.
//!         Output::Done => break,
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod app;
mod backoff;
mod check;
mod config;
mod connect_error;
pub(crate) mod dedup;
mod link;
mod order;
mod output;
mod pending;
mod shared;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

pub use app::{Application, ClientError, ClientEvent, DeliverError, Message};
pub use backoff::BackoffConfig;
pub use check::{CheckJob, CheckedFrame, FrameChecker};
pub use config::{ClientConfig, ConfigError, Credentials};
pub use connect_error::{CertificateProblem, ConnectError};
pub use link::{ConnId, Input};
pub use output::{
    Delivery, DeliveryId, DisconnectReason, Event, HumanDuration, Outcome, Output, RejectReason,
    SendError, Transmit, UnknownDelivery,
};

use crate::clock::WallClock;
use crate::consume::{AckStatus, ConsumeAck, ConsumeFrame};
use crate::frame::{Command, FrameHeaders, SignatureStatus};
use crate::http::{parse_response, HttpError, HttpResponse};
use crate::produce::ProduceRequest;
use crate::produce_ack::ProduceAck;
use crate::register::{
    parse_register_answer, register_request, RegisterError, RegisterParams, UpgradeParams,
};
use crate::stream_id::StreamIdGenerator;
use crate::window::{
    QueryId, StoreFailure, WindowAnswer, WindowError, WindowKey, WindowKind, WindowOp, WindowQuery,
};
use crate::ws::handshake::ClientHandshake;
use crate::ws::{CloseCode, Role, WsConnection, WsEvent, WsLimits};

use config::Prepared;
use dedup::DuplicateWindow;
use order::ReadOrder;
use pending::PendingSends;
use shared::{Purpose, SharedWindow};

/// Connections that redelivered a message being handled, waiting for its ack; more
/// than this many copies are left to the platform's next redelivery.
const MAX_WAITERS: usize = 8;

/// Bytes kept while reading is paused, beyond one frame: the rest of the adapter's
/// read that was under way when the session stopped wanting frames (see
/// [`ClientSession::wants_read`]).
const STASH_SLACK_BYTES: usize = 64 * 1024;

/// The client state machine. See the [module documentation](self).
pub struct ClientSession {
    config: ClientConfig,
    keys: Prepared,
    checker: FrameChecker,
    clock: WallClock,
    /// Nonces, websocket keys and masks, stream-id tags, backoff jitter.
    rng: Xoshiro256PlusPlus,
    state: State,
    /// The number of the last connection asked for.
    last_conn: u64,
    /// Increases with every open connection; an ack goes only to the connection that
    /// carried the message.
    generation: u64,
    /// Attempts since the last successful connection.
    attempts: u32,
    backoff: backoff::Backoff,
    outputs: VecDeque<Output>,
    in_flight: HashMap<DeliveryId, InFlight>,
    in_flight_by_msg: HashMap<String, DeliveryId>,
    next_delivery: u64,
    handled: DuplicateWindow,
    pending: PendingSends,
    stream_ids: StreamIdGenerator,
    /// Set by [`ClientSession::shutdown`]: the latest time to close.
    shutdown_deadline: Option<Instant>,
    /// Most check jobs out at once; 0 or 1: frames are checked inline.
    max_outstanding: usize,
    /// Check jobs handed out on the open connection, in read order.
    order: ReadOrder,
    /// The platform refused the configuration (sticky).
    fatal: Option<ClientError>,
    /// Until the first connection opens: when to give up (`first_connect_timeout`).
    first_deadline: Option<Instant>,
    /// Why the last attempt failed, for [`Event::GaveUp`].
    last_failure: Option<DisconnectReason>,
    /// A consumer takes [`Event::Message`]s ([`ClientSession::set_consumer`]).
    consumer: bool,
    /// Verified deliveries waiting for a consumer, in arrival order, each until its
    /// deadline (`consumer_grace` after it arrived). They are in `in_flight` too: they
    /// count toward `max_in_flight`. At most `max_in_flight` of them.
    held: VecDeque<(Instant, Delivery)>,
    /// The shared duplicate window, when configured ([`ClientConfig::shared_window`]).
    shared: Option<SharedWindow>,
}

#[derive(Debug)]
enum State {
    /// Waiting to start the next attempt.
    Backoff { until: Instant },
    /// `register.do` on `conn`: the request waits for the connection, then the answer
    /// is collected (at most `max_register_response_bytes`).
    Registering {
        deadline: Instant,
        conn: ConnId,
        request: Option<Vec<u8>>,
        answer: Vec<u8>,
    },
    /// The websocket upgrade on `conn`: the request waits for the connection, then the
    /// answer's head is read by the handshake.
    Upgrading {
        deadline: Instant,
        conn: ConnId,
        request: Option<Vec<u8>>,
        handshake: Box<ClientHandshake>,
    },
    /// The websocket on `conn` is open. `last_pong` starts at the open. `stash` holds
    /// bytes read while frames could not be taken (bounded, see `stash_limit`), of
    /// which those before `stash_at` have been read since: a long stash is read a
    /// frame at a time without being copied again for each.
    Open {
        since: Instant,
        last_pong: Instant,
        next_ping: Instant,
        conn: ConnId,
        ws: Box<WsConnection>,
        stash: Vec<u8>,
        stash_at: usize,
    },
    /// Shut down, or stopped by a fatal error.
    Ended,
}

impl State {
    /// The connection in use, if any.
    fn conn(&self) -> Option<ConnId> {
        match self {
            State::Registering { conn, .. }
            | State::Upgrading { conn, .. }
            | State::Open { conn, .. } => Some(*conn),
            State::Backoff { .. } | State::Ended => None,
        }
    }
}

/// A delivery being handled, and the connections that want its ack.
#[derive(Debug)]
struct InFlight {
    msg_id: String,
    waiters: Vec<Waiter>,
    /// Shared window: the token of our claim, while it may be ours to release.
    token: Option<String>,
    /// Shared window: the delivery, while its claim is being asked for.
    claiming: Option<Delivery>,
    /// Shared window: the success is being recorded; the ack waits for it.
    recording: bool,
}

#[derive(Debug)]
struct Waiter {
    generation: u64,
    headers: FrameHeaders,
}

impl ClientSession {
    /// Validates `config` (keys, certificates, app id, tunables) and starts the first
    /// connection attempt. `unix_ms` is the wall-clock time at `now`; `seed` (32 bytes
    /// from the operating system's random source in production, fixed in tests) seeds
    /// the session's random source: nonces, websocket keys and masks, stream-id tags,
    /// backoff jitter.
    pub fn new(
        config: ClientConfig,
        seed: [u8; 32],
        now: Instant,
        unix_ms: i64,
    ) -> Result<Self, ConfigError> {
        let keys = config.validate()?;
        let checker = FrameChecker::new(keys.verifier.clone(), config.frame_limits, config.charset);
        let mut rng = Xoshiro256PlusPlus::from_seed(seed);
        let stream_ids = StreamIdGenerator::new(rng.next_u64());
        // Drawn only when configured: sessions without a shared window see the same
        // random sequence as before.
        let shared = config
            .shared_window
            .clone()
            .map(|c| SharedWindow::new(c, rng.next_u64()));
        let mut session = ClientSession {
            keys,
            checker,
            clock: WallClock::new(now, unix_ms),
            rng,
            state: State::Backoff { until: now },
            last_conn: 0,
            generation: 0,
            attempts: 0,
            backoff: backoff::Backoff::new(config.backoff),
            outputs: VecDeque::new(),
            in_flight: HashMap::new(),
            in_flight_by_msg: HashMap::new(),
            next_delivery: 0,
            handled: DuplicateWindow::new(config.duplicate_capacity, config.duplicate_max_age),
            pending: PendingSends::default(),
            stream_ids,
            shutdown_deadline: None,
            max_outstanding: 0,
            order: ReadOrder::default(),
            fatal: None,
            first_deadline: config.first_connect_timeout.map(|t| now + t),
            last_failure: None,
            consumer: true,
            held: VecDeque::new(),
            shared,
            config,
        };
        for (which, warning) in session.config.credentials.warnings() {
            session.emit(Event::KeyWarning { which, warning });
        }
        session.start_attempt(now);
        Ok(session)
    }

    /// The next thing to do. Call until it returns [`Output::Timeout`] or
    /// [`Output::Done`] after every input.
    pub fn poll_output(&mut self) -> Output {
        if let Some(output) = self.outputs.pop_front() {
            return output;
        }
        match self.next_timeout() {
            Some(at) => Output::Timeout(at),
            None => Output::Done,
        }
    }

    /// Re-reads the wall clock: `unix_ms` is the wall-clock time at `now`. Adapters may
    /// call this to follow clock adjustments; timers are unaffected.
    pub fn update_wall_clock(&mut self, now: Instant, unix_ms: i64) {
        self.clock = WallClock::new(now, unix_ms);
    }

    /// Checks frames away from the session: with `max_outstanding` of 2 or more, every
    /// text frame read goes out as an [`Output::Check`] job, at most `max_outstanding`
    /// at once, and its result comes back with [`Input::Checked`] in any order; the
    /// session restores read order. 0 or 1 (the default): frames are checked inline,
    /// inside [`ClientSession::handle_input`].
    pub fn set_check_offload(&mut self, max_outstanding: usize) {
        self.max_outstanding = max_outstanding;
    }

    /// Whether a consumer takes the verified messages ([`Event::Message`]); `true`
    /// when the session starts. While none is attached, a verified message waits at
    /// most `consumer_grace` (default 500 ms) for one; then it is answered FAIL at once
    /// (the platform redelivers it to a connection that consumes) and reported as
    /// [`Event::Rejected`] with [`RejectReason::NoConsumer`]. Attaching one hands it
    /// the waiting messages, in arrival order. Waiting messages count toward
    /// `max_in_flight`; shutting down answers them FAIL at once.
    ///
    /// The adapters start their sessions detached and attach when the application
    /// calls `run` or `deliveries`: a client that only sends does not hold the
    /// platform's pushes (which the platform sends to every connection of the app),
    /// while a message that arrives between `connect` and `run` still reaches the
    /// handler.
    pub fn set_consumer(&mut self, attached: bool, now: Instant) {
        self.consumer = attached;
        if attached {
            while let Some((_, delivery)) = self.held.pop_front() {
                self.emit(Event::Message(delivery));
            }
        } else {
            self.expire_held(now);
        }
    }

    /// Whether a consumer is attached ([`ClientSession::set_consumer`]).
    pub fn has_consumer(&self) -> bool {
        self.consumer
    }

    /// Verified deliveries waiting for a consumer ([`ClientSession::set_consumer`]).
    pub fn waiting_for_consumer(&self) -> usize {
        self.held.len()
    }

    /// Answers FAIL the held deliveries whose grace has passed.
    fn expire_held(&mut self, now: Instant) {
        while self.held.front().is_some_and(|(until, _)| *until <= now) {
            if let Some((_, delivery)) = self.held.pop_front() {
                self.fail_held(
                    delivery,
                    RejectReason::NoConsumer {
                        waited: self.config.consumer_grace,
                    },
                    now,
                );
            }
        }
    }

    /// Answers FAIL a delivery no consumer took, reporting why.
    fn fail_held(&mut self, delivery: Delivery, reason: RejectReason, now: Instant) {
        if self.in_flight.contains_key(&delivery.id) {
            self.reject(Some(delivery.frame.msg_id), reason);
            // Known: checked above.
            let _ = self.finish(delivery.id, AckStatus::Fail, now);
        }
    }

    /// The session wants bytes from the open websocket: it is connected, fewer than
    /// `max_in_flight` deliveries await completion (counting check jobs out, which may
    /// become deliveries), fewer than the offload's `max_outstanding` check jobs are
    /// out, and nothing read earlier waits. When `false`, stop reading the socket (the
    /// platform holds the messages) until a [`ClientSession::complete`] or an
    /// [`Input::Checked`]; bytes handed in anyway are kept, up to
    /// `frame_limits.max_frame_bytes` + 64 KiB (past that the connection is dropped
    /// with [`DisconnectReason::ReadOverflow`]).
    pub fn wants_read(&self) -> bool {
        match &self.state {
            // The stash is emptied (and `stash_at` reset) when its last byte is read.
            State::Open { stash, .. } => stash.is_empty() && self.can_take_frames(),
            _ => false,
        }
    }

    /// Another text frame may be read: deliveries and check jobs under their bounds.
    fn can_take_frames(&self) -> bool {
        let outstanding = self.order.outstanding();
        let detached = self.shared.as_ref().map_or(0, |s| s.detached);
        self.in_flight.len() + outstanding + detached < self.config.max_in_flight
            && outstanding < self.max_outstanding.max(1)
    }

    /// A websocket is open.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// Deliveries awaiting [`ClientSession::complete`].
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// PRODUCEs awaiting their PRODUCE_ACK.
    pub fn pending_sends(&self) -> usize {
        self.pending.len()
    }

    /// Message ids remembered as handled (the duplicate window).
    pub fn remembered_handled(&self) -> usize {
        self.handled.len()
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Why the session stopped on its own: the platform refused the configuration
    /// ([`Event::Fatal`], as [`ClientError::Refused`]) or no connection opened within
    /// `first_connect_timeout` ([`Event::GaveUp`], as [`ClientError::ConnectTimeout`]);
    /// sticky.
    pub fn error(&self) -> Option<&ClientError> {
        self.fatal.as_ref()
    }

    // ----- inputs: time -------------------------------------------------------------

    /// Time has passed: attempts, heartbeats, dead-connection detection, send timeouts,
    /// the shutdown deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.handled.expire(now);
        self.expire_held(now);
        self.retry_records(now);
        for stream_id in self.pending.take_expired(now) {
            self.emit(Event::ProduceAck {
                stream_id,
                result: Err(SendError::Timeout),
            });
        }
        if self.shutdown_deadline.is_some_and(|d| now >= d) {
            self.finish_shutdown(now);
            return;
        }
        if self.first_deadline.is_some_and(|d| now >= d) && !matches!(self.state, State::Ended) {
            return self.give_up(now);
        }
        let reading = self.wants_read();
        let mask = self.mask();
        match &mut self.state {
            State::Backoff { until } if now >= *until => self.start_attempt(now),
            State::Registering { deadline, .. } | State::Upgrading { deadline, .. }
                if now >= *deadline =>
            {
                self.attempt_failed(DisconnectReason::ConnectTimeout, now);
            }
            State::Open {
                last_pong,
                next_ping,
                conn,
                ws,
                ..
            } => {
                let silent_for = now.saturating_duration_since(*last_pong);
                if reading && silent_for >= self.config.dead_after {
                    self.connection_lost(DisconnectReason::Dead { silent_for }, true, now);
                } else if now >= *next_ping {
                    *next_ping = now + self.config.heartbeat_interval;
                    // An empty payload is within the 125-byte bound; `Err` means a close
                    // was sent, and then there is nothing to keep alive.
                    if let Ok(bytes) = ws.ping(&[], mask) {
                        let conn = *conn;
                        self.transmit(Transmit::Write { conn, bytes });
                    }
                }
            }
            _ => {}
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        let state = match &self.state {
            State::Ended => return None,
            State::Backoff { until } => *until,
            State::Registering { deadline, .. } | State::Upgrading { deadline, .. } => *deadline,
            State::Open {
                last_pong,
                next_ping,
                ..
            } => {
                if self.wants_read() {
                    (*next_ping).min(*last_pong + self.config.dead_after)
                } else {
                    *next_ping
                }
            }
        };
        [
            Some(state),
            self.pending.next_deadline(),
            self.shutdown_deadline,
            self.first_deadline,
            self.held.front().map(|(until, _)| *until),
            self.shared
                .as_ref()
                .and_then(|s| s.next_retry(self.config.max_in_flight)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- inputs: the network -------------------------------------------------------

    /// Something happened on one of the session's connections, or a checked frame came
    /// back. Input for a connection that is not the current one is ignored.
    pub fn handle_input(&mut self, input: Input<'_>, now: Instant) {
        match input {
            Input::Checked(frame) => self.on_checked_frame(frame, now),
            Input::WindowAnswered { id, answer } => self.on_window_answer(id, answer, now),
            Input::Connected(conn)
            | Input::ConnectFailed { conn, .. }
            | Input::Bytes { conn, .. }
            | Input::Closed { conn, .. }
                if self.state.conn() != Some(conn) => {}
            Input::Connected(_) => self.on_connected(),
            Input::ConnectFailed { error, .. } => {
                let reason = DisconnectReason::from(error);
                if matches!(self.state, State::Open { .. }) {
                    self.connection_lost(reason, false, now);
                } else {
                    self.attempt_failed(reason, now);
                }
            }
            Input::Bytes { bytes, .. } => self.on_bytes(bytes, now),
            Input::Closed { error, .. } => self.on_closed(error, now),
        }
    }

    /// The current connection is established: write the request waiting for it.
    fn on_connected(&mut self) {
        match &mut self.state {
            State::Registering { conn, request, .. } | State::Upgrading { conn, request, .. } => {
                if let Some(bytes) = request.take() {
                    let conn = *conn;
                    self.transmit(Transmit::Write { conn, bytes });
                }
            }
            _ => {}
        }
    }

    fn on_bytes(&mut self, bytes: &[u8], now: Instant) {
        match &mut self.state {
            State::Registering { answer, .. } => {
                let limit = self.config.max_register_response_bytes;
                if answer.len().saturating_add(bytes.len()) > limit {
                    return self
                        .register_failed(RegisterError::Http(HttpError::TooLarge { limit }), now);
                }
                answer.extend_from_slice(bytes);
                match parse_response(answer, false, limit) {
                    Ok(None) => {}
                    Ok(Some(response)) => self.on_register_answer(&response, now),
                    Err(e) => self.register_failed(RegisterError::Http(e), now),
                }
            }
            State::Upgrading { handshake, .. } => match handshake.read(bytes) {
                Ok(None) => {}
                Ok(Some(upgraded)) => {
                    // `consumed` is at most `bytes.len()` (the handshake's contract).
                    let rest = bytes.get(upgraded.consumed..).unwrap_or_default();
                    self.on_open(rest, now);
                }
                Err(e) => self.attempt_failed(DisconnectReason::Handshake(e), now),
            },
            State::Open { .. } => self.read_ws(bytes, now),
            State::Backoff { .. } | State::Ended => {}
        }
    }

    fn on_closed(&mut self, error: Option<std::io::ErrorKind>, now: Instant) {
        let reason = error.map_or(DisconnectReason::Eof, DisconnectReason::Network);
        match &mut self.state {
            State::Registering { answer, .. } if error.is_none() => {
                let limit = self.config.max_register_response_bytes;
                match parse_response(answer, true, limit) {
                    Ok(Some(response)) => self.on_register_answer(&response, now),
                    // `None` cannot come with eof = true; either way the answer is cut.
                    Ok(None) => {
                        self.register_failed(RegisterError::Http(HttpError::Truncated), now)
                    }
                    Err(e) => self.register_failed(RegisterError::Http(e), now),
                }
            }
            State::Registering { .. } | State::Upgrading { .. } => self.attempt_failed(reason, now),
            State::Open { .. } => self.connection_lost(reason, false, now),
            State::Backoff { .. } | State::Ended => {}
        }
    }

    // ----- register.do and the upgrade -----------------------------------------------

    fn on_register_answer(&mut self, response: &HttpResponse, now: Instant) {
        let deadline = match self.state {
            State::Registering { deadline, .. } => deadline,
            _ => return,
        };
        let answer = match parse_register_answer(
            response,
            self.config.charset,
            &self.keys.verifier,
            self.config.sign_type,
            self.keys.platform_cert_sn.as_deref(),
        ) {
            Ok(answer) => answer,
            Err(e) => return self.register_failed(e, now),
        };
        // The register connection's work is done.
        self.drop_link(false, now);
        let signed = UpgradeParams {
            app_id: &self.config.app_id,
            charset: self.config.charset,
            link_token: &answer.link_token,
            timestamp_ms: self.clock.unix_ms(now),
            cert_sns: self.keys.cert_sns.as_ref(),
        }
        .sign(&self.keys.signer);
        let signed = match signed {
            Ok(signed) => signed,
            Err(e) => return self.attempt_failed(DisconnectReason::Sign(e), now),
        };
        let mut key = [0u8; 16];
        self.rng.fill_bytes(&mut key);
        let request = link::upgrade_request(
            &self.config.endpoint,
            &signed,
            self.config.charset,
            answer.zone.as_deref(),
            key,
        );
        match request {
            Ok((handshake, request)) => {
                let conn = self.connect();
                self.state = State::Upgrading {
                    deadline,
                    conn,
                    request: Some(request),
                    handshake: Box::new(handshake),
                };
            }
            Err(e) => self.attempt_failed(DisconnectReason::Request(e), now),
        }
    }

    fn register_failed(&mut self, error: RegisterError, now: Instant) {
        if error.is_retryable() || self.config.retry_on_auth_error {
            self.attempt_failed(DisconnectReason::Register(error), now);
        } else {
            self.drop_link(false, now);
            self.fail_pending();
            self.state = State::Ended;
            self.fatal = Some(ClientError::Refused(error.clone()));
            self.emit(Event::Fatal(error));
        }
    }

    /// `first_connect_timeout` passed before any connection opened: stop, naming the
    /// last attempt's failure.
    fn give_up(&mut self, now: Instant) {
        let waited = self.config.first_connect_timeout.unwrap_or_default();
        let last = self.last_failure.take();
        self.drop_link(false, now);
        self.fail_pending();
        self.state = State::Ended;
        self.first_deadline = None;
        self.fatal = Some(ClientError::ConnectTimeout {
            waited,
            last: last.clone().map(Box::new),
        });
        self.emit(Event::GaveUp { waited, last });
    }

    /// The upgrade succeeded: the websocket is open; `rest` are the first bytes after
    /// the handshake answer.
    fn on_open(&mut self, rest: &[u8], now: Instant) {
        let State::Upgrading { conn, .. } = self.state else {
            return;
        };
        self.generation += 1;
        self.attempts = 0;
        self.first_deadline = None;
        self.last_failure = None;
        self.order.abandon();
        let limits = WsLimits {
            max_message_bytes: self.config.frame_limits.max_frame_bytes,
        };
        self.state = State::Open {
            since: now,
            last_pong: now,
            next_ping: now + self.config.heartbeat_interval,
            conn,
            ws: Box::new(WsConnection::new(Role::Client, limits)),
            stash: Vec::new(),
            stash_at: 0,
        };
        self.emit(Event::Connected);
        if self.shutdown_deadline.is_some() && self.in_flight.is_empty() {
            return self.finish_shutdown(now);
        }
        self.read_ws(rest, now);
    }

    // ----- the open websocket --------------------------------------------------------

    /// Reads websocket bytes (RFC 6455 §5): message by message while frames can be
    /// taken, the rest kept for later (behind anything kept already).
    fn read_ws(&mut self, bytes: &[u8], now: Instant) {
        let waiting = match &self.state {
            State::Open { stash, .. } => !stash.is_empty(),
            _ => return,
        };
        let used = if waiting {
            0
        } else {
            self.read_frames(bytes, now)
        };
        if used < bytes.len() {
            self.keep(&bytes[used..], now);
        }
    }

    /// Keeps bytes that cannot be read yet, failing the connection past the bound.
    fn keep(&mut self, bytes: &[u8], now: Instant) {
        let stash_limit = self.config.frame_limits.max_frame_bytes + STASH_SLACK_BYTES;
        let State::Open {
            stash, stash_at, ..
        } = &mut self.state
        else {
            return;
        };
        let kept = stash.len() - *stash_at;
        if kept.saturating_add(bytes.len()) > stash_limit {
            let reason = DisconnectReason::ReadOverflow { limit: stash_limit };
            return self.connection_lost(reason, true, now);
        }
        if *stash_at > 0 {
            // Only when more comes: what was read of the stash goes, once.
            stash.drain(..*stash_at);
            *stash_at = 0;
        }
        stash.extend_from_slice(bytes);
    }

    /// Reads frames from `bytes` while they can be taken and the websocket is open;
    /// returns how many bytes were read.
    fn read_frames(&mut self, bytes: &[u8], now: Instant) -> usize {
        let mut used = 0;
        while used < bytes.len() && self.can_take_frames() {
            let State::Open { ws, .. } = &mut self.state else {
                break;
            };
            let read = ws.read(&bytes[used..]);
            self.write_ws_control();
            match read {
                Ok((n, event)) => {
                    used += n;
                    if let Some(event) = event {
                        let more_follows = used < bytes.len();
                        self.on_ws_event(event, more_follows, now);
                    }
                }
                Err(violation) => {
                    self.connection_lost(DisconnectReason::Protocol(violation), false, now);
                    return bytes.len();
                }
            }
        }
        used
    }

    /// Reads what was kept while frames could not be taken, now that they can, without
    /// copying what is still left.
    fn resume_reading(&mut self, now: Instant) {
        if !self.can_take_frames() {
            return;
        }
        let State::Open {
            stash, stash_at, ..
        } = &mut self.state
        else {
            return;
        };
        if stash.is_empty() {
            return;
        }
        let kept = std::mem::take(stash);
        let at = std::mem::take(stash_at);
        let used = self.read_frames(&kept[at..], now);
        if let State::Open {
            stash, stash_at, ..
        } = &mut self.state
        {
            // Still this connection, and nothing was kept meanwhile (reading took
            // every byte offered while frames could be taken).
            if at + used < kept.len() && stash.is_empty() {
                *stash = kept;
                *stash_at = at + used;
            }
        }
    }

    /// Writes the frames the websocket itself wants sent: pongs, the close echo, the
    /// close that fails the connection.
    fn write_ws_control(&mut self) {
        loop {
            let mask = self.mask();
            let State::Open { ws, conn, .. } = &mut self.state else {
                return;
            };
            let Some(bytes) = ws.poll_transmit(mask) else {
                return;
            };
            let conn = *conn;
            self.transmit(Transmit::Write { conn, bytes });
        }
    }

    /// A websocket event; `more_follows`: more bytes were read with it (a burst).
    fn on_ws_event(&mut self, event: WsEvent, more_follows: bool, now: Instant) {
        match event {
            WsEvent::Text(payload) => self.on_text(payload, more_follows, now),
            WsEvent::Pong(_) => self.on_pong(now),
            WsEvent::Closed { code, reason, .. } => {
                let reason = DisconnectReason::ClosedByPeer { code, reason };
                self.connection_lost(reason, false, now);
            }
            // Not part of the protocol (PROTOCOL §4 has text frames only): dropped.
            _ => {}
        }
    }

    /// A pong arrived: the platform received our ping, so the connection works in both
    /// directions. Only pongs prove that — frames from the platform say nothing about
    /// whether our acks reach it — so only pongs keep a connection alive.
    fn on_pong(&mut self, now: Instant) {
        if let State::Open { last_pong, .. } = &mut self.state {
            *last_pong = now;
        }
    }

    /// A text message: checked inline, or handed out as a job. With checking offloaded,
    /// a frame that came alone (no bytes after it in this read, no job out) is still
    /// checked inline: on the quiet path a hand-off to another thread and back costs
    /// more than it saves; frames that arrive together go out as jobs, to every core.
    fn on_text(&mut self, payload: Vec<u8>, more_follows: bool, now: Instant) {
        let Some(conn) = self.state.conn() else {
            return;
        };
        let outstanding = self.order.outstanding();
        if outstanding > 0 || (self.max_outstanding >= 2 && more_follows) {
            let seq = self.order.next_job(conn);
            self.outputs
                .push_back(Output::Check(CheckJob { seq, conn, payload }));
        } else {
            let checked = self.checker.check_bytes(&payload);
            self.on_checked(checked.checked, now);
        }
    }

    /// A job's result: decided once every earlier frame's result is in.
    fn on_checked_frame(&mut self, frame: CheckedFrame, now: Instant) {
        if frame.tag() != self.checker.tag() {
            return;
        }
        let Some((seq, conn)) = frame.job else {
            return;
        };
        if self.state.conn() != Some(conn) || !self.is_connected() {
            return;
        }
        let was_paused = !self.wants_read();
        if !self.order.accept(seq, conn, frame) {
            return;
        }
        while let Some(frame) = self.order.pop_ready() {
            self.on_checked(frame.checked, now);
        }
        if was_paused {
            self.resume_after_pause(now);
        } else {
            self.resume_reading(now);
        }
    }

    /// Writes a text frame on the open websocket, in the app's charset (PROTOCOL §4).
    fn write_text(&mut self, text: &str) {
        let mask = self.mask();
        let payload = self.config.charset.encode(text);
        let State::Open { ws, conn, .. } = &mut self.state else {
            return;
        };
        // `Err`: a close was sent; no frame may follow it.
        if let Ok(bytes) = ws.encode_text(&payload, mask) {
            let conn = *conn;
            self.transmit(Transmit::Write { conn, bytes });
        }
    }

    /// Four fresh random bytes to mask a client frame (RFC 6455 §5.3).
    fn mask(&mut self) -> [u8; 4] {
        self.rng.next_u32().to_be_bytes()
    }

    /// Carries out an [`Event`] from [`ClientSession::poll_output`] through the
    /// adapter's [`Application`]: a message to the application (completed FAIL at
    /// once when nobody takes it), a PRODUCE_ACK to its sender, `Connected` and
    /// `Fatal` published and then answered to a pending `connect`, everything else
    /// published as a [`ClientEvent`].
    pub fn dispatch(&mut self, event: Event, app: &mut impl Application, now: Instant) {
        match event {
            Event::Message(delivery) => {
                let (id, msg_id) = (delivery.id, delivery.frame.msg_id.clone());
                if let Err(error) = app.deliver(Message::new(delivery)) {
                    // Known: it was just delivered.
                    if self.finish(id, AckStatus::Fail, now).is_ok() {
                        app.publish(ClientEvent::Rejected {
                            msg_id: Some(msg_id),
                            reason: RejectReason::Undeliverable(error),
                        });
                    }
                }
            }
            Event::ProduceAck { stream_id, result } => app.produce_ack(stream_id, result),
            Event::Connected => {
                app.publish(ClientEvent::Connected);
                app.connect_result(Ok(()));
            }
            Event::Fatal(error) => {
                app.publish(ClientEvent::Fatal(error.clone()));
                app.connect_result(Err(ClientError::Refused(error)));
            }
            Event::GaveUp { waited, last } => {
                app.publish(ClientEvent::GaveUp {
                    waited,
                    last: last.clone(),
                });
                app.connect_result(Err(ClientError::ConnectTimeout {
                    waited,
                    last: last.map(Box::new),
                }));
            }
            other => {
                if let Some(event) = ClientEvent::from_event(&other) {
                    app.publish(event);
                }
            }
        }
    }

    /// A checker for this session's frames, to run the [`CheckJob`]s of
    /// [`Output::Check`] away from the session's task (see [`FrameChecker`]).
    pub fn frame_checker(&self) -> FrameChecker {
        self.checker.clone()
    }

    fn on_checked(&mut self, checked: check::Checked, now: Instant) {
        match checked {
            check::Checked::Undecodable(e) => self.reject(None, RejectReason::Undecodable(e)),
            check::Checked::Malformed(e) => self.reject(None, RejectReason::Malformed(e)),
            check::Checked::Consume { consume, signature } => {
                self.on_consume(consume, signature, now)
            }
            check::Checked::ProduceAck(ack) => self.on_produce_ack(ack),
            check::Checked::Unexpected { msg_id, cmd } => {
                self.reject(msg_id, RejectReason::Unexpected { cmd })
            }
        }
    }

    // ----- the ack decision ----------------------------------------------------------

    fn on_consume(&mut self, consume: ConsumeFrame, signature: SignatureStatus, now: Instant) {
        if let Err(reason) = self.check_consume(&consume, signature, now) {
            self.reject(Some(consume.msg_id.clone()), reason);
            return self.ack(&consume.headers, &consume.msg_id, AckStatus::Fail);
        }
        if self.handled.contains(&consume.msg_id) {
            if self.unrecorded(&consume.msg_id) {
                // Handled here, not in the shared window yet: no SUCCESS until it is.
                self.reject(Some(consume.msg_id.clone()), RejectReason::NotRecorded);
                return self.ack(&consume.headers, &consume.msg_id, AckStatus::Fail);
            }
            self.ack(&consume.headers, &consume.msg_id, AckStatus::Success);
            return self.emit(Event::Duplicate {
                msg_id: consume.msg_id,
                in_flight: false,
            });
        }
        if let Some(id) = self.in_flight_by_msg.get(&consume.msg_id) {
            // Invariant: the two maps are updated together.
            let entry = self.in_flight.get_mut(id).expect("in-flight maps agree");
            // Waiters on connections lost since can never be acked: make room for this one.
            let generation = self.generation;
            entry.waiters.retain(|w| w.generation == generation);
            if entry.waiters.len() < MAX_WAITERS {
                entry.waiters.push(Waiter {
                    generation: self.generation,
                    headers: consume.headers,
                });
            }
            return self.emit(Event::Duplicate {
                msg_id: consume.msg_id,
                in_flight: true,
            });
        }
        if self.shutdown_deadline.is_some() {
            self.reject(Some(consume.msg_id.clone()), RejectReason::ShuttingDown);
            return self.ack(&consume.headers, &consume.msg_id, AckStatus::Fail);
        }
        self.next_delivery += 1;
        let id = DeliveryId(self.next_delivery);
        self.in_flight_by_msg.insert(consume.msg_id.clone(), id);
        let token = self.shared.as_mut().map(|s| s.tokens.next());
        let msg_id = consume.msg_id.clone();
        self.in_flight.insert(
            id,
            InFlight {
                msg_id: msg_id.clone(),
                waiters: vec![Waiter {
                    generation: self.generation,
                    headers: consume.headers.clone(),
                }],
                token: token.clone(),
                claiming: None,
                recording: false,
            },
        );
        let delivery = Delivery { id, frame: consume };
        match (token, self.shared.as_mut()) {
            (Some(token), Some(shared)) => {
                // Claimed before it is delivered; delivered when the answer comes.
                let lease = shared.config.lease;
                let query = shared.register(Purpose::Claim { delivery: id });
                if let Some(entry) = self.in_flight.get_mut(&id) {
                    entry.claiming = Some(delivery);
                }
                self.window_query(query, &msg_id, WindowOp::Claim { token, lease });
            }
            _ => self.hand_out(delivery, now),
        }
    }

    /// Gives a delivery to the consumer, or holds it until one attaches.
    fn hand_out(&mut self, delivery: Delivery, now: Instant) {
        if self.consumer {
            self.emit(Event::Message(delivery));
        } else {
            self.held
                .push_back((now + self.config.consumer_grace, delivery));
            self.expire_held(now);
        }
    }

    /// Rules 2 and 3: signature, app id, timestamp window.
    fn check_consume(
        &self,
        consume: &ConsumeFrame,
        signature: SignatureStatus,
        now: Instant,
    ) -> Result<(), RejectReason> {
        match signature {
            SignatureStatus::Valid => {}
            SignatureStatus::Absent => return Err(RejectReason::Unsigned),
            SignatureStatus::Invalid(e) => return Err(RejectReason::BadSignature(e)),
        }
        if consume.app_id() != Some(self.config.app_id.as_str()) {
            return Err(RejectReason::ForeignAppId {
                app_id: consume.app_id().map(str::to_owned),
            });
        }
        if let Some(timestamp_ms) = consume.timestamp_ms {
            let now_ms = self.clock.unix_ms(now);
            let age_ms = now_ms.saturating_sub(timestamp_ms);
            let too_old = self
                .config
                .max_message_age
                .is_some_and(|max| age_ms > millis(max));
            let too_new = self
                .config
                .max_clock_skew
                .is_some_and(|max| -age_ms > millis(max));
            if too_old || too_new {
                return Err(RejectReason::Timestamp {
                    timestamp_ms,
                    direction: if too_old { "older than" } else { "ahead of" },
                });
            }
        }
        Ok(())
    }

    /// The application finished handling a delivery. SUCCESS remembers the message as
    /// handled; the ack goes to every connection still open that delivered it. A
    /// [`Outcome::Failure`] is reported as [`Event::HandlerFailed`].
    pub fn complete(
        &mut self,
        id: DeliveryId,
        outcome: Outcome,
        now: Instant,
    ) -> Result<(), UnknownDelivery> {
        match outcome {
            Outcome::Success if self.shared.is_some() => self.record(id),
            Outcome::Success => self.finish(id, AckStatus::Success, now).map(drop),
            Outcome::Failure(error) => {
                let msg_id = self.finish(id, AckStatus::Fail, now)?;
                self.emit(Event::HandlerFailed { msg_id, error });
                Ok(())
            }
        }
    }

    /// Ends a delivery with `status`: acks it, remembers a success. Returns its
    /// `x-msgId`.
    fn finish(
        &mut self,
        id: DeliveryId,
        status: AckStatus,
        now: Instant,
    ) -> Result<String, UnknownDelivery> {
        let was_full = !self.can_take_frames();
        let entry = self.in_flight.remove(&id).ok_or(UnknownDelivery(id))?;
        self.in_flight_by_msg.remove(&entry.msg_id);
        if status == AckStatus::Fail {
            if let Some(token) = entry.token.clone() {
                // Our claim goes, so that another instance may take the message now
                // rather than at the end of the lease.
                self.release(&entry.msg_id, token);
            }
        }
        // Completed before it was handed out (an id guessed by the application).
        self.held.retain(|(_, delivery)| delivery.id != id);
        if status == AckStatus::Success {
            self.handled.insert(&entry.msg_id, now);
        }
        if let State::Open { last_pong, .. } = &mut self.state {
            if was_full {
                // Reading resumes now; the time spent paused was not silence.
                *last_pong = now;
            }
            let generation = self.generation;
            for waiter in entry.waiters.iter().filter(|w| w.generation == generation) {
                let ack = ConsumeAck {
                    headers: waiter.headers.clone(),
                    msg_id: entry.msg_id.clone(),
                    status,
                }
                .encode();
                self.write_text(&ack);
            }
        }
        if self.shutdown_deadline.is_some() && self.in_flight.is_empty() {
            self.finish_shutdown(now);
        }
        self.resume_reading(now);
        Ok(entry.msg_id)
    }

    fn ack(&mut self, headers: &FrameHeaders, msg_id: &str, status: AckStatus) {
        let ack = ConsumeAck {
            headers: headers.clone(),
            msg_id: msg_id.to_owned(),
            status,
        };
        self.write_text(&ack.encode());
    }

    fn reject(&mut self, msg_id: Option<String>, reason: RejectReason) {
        self.emit(Event::Rejected { msg_id, reason });
    }

    // ----- the shared duplicate window ----------------------------------------------

    /// A success handled here whose record in the shared window is still missing.
    fn unrecorded(&self, msg_id: &str) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.unrecorded.contains_key(msg_id))
    }

    /// Asks the adapter to put `op` to the shared store for `msg_id`.
    fn window_query(&mut self, id: QueryId, msg_id: &str, op: WindowOp) {
        let key = WindowKey {
            app_id: self.config.app_id.clone(),
            kind: WindowKind::Msg,
            id: msg_id.to_owned(),
        };
        self.outputs
            .push_back(Output::Window(WindowQuery { id, key, op }));
    }

    /// A handler succeeded: record the success in the shared window; the SUCCESS ack
    /// waits for the answer.
    fn record(&mut self, id: DeliveryId) -> Result<(), UnknownDelivery> {
        let entry = self.in_flight.get_mut(&id).ok_or(UnknownDelivery(id))?;
        if entry.recording || entry.claiming.is_some() {
            return Err(UnknownDelivery(id));
        }
        entry.recording = true;
        let msg_id = entry.msg_id.clone();
        let Some(shared) = self.shared.as_mut() else {
            return Err(UnknownDelivery(id));
        };
        let window = shared.config.window;
        let query = shared.register(Purpose::Record {
            delivery: Some(id),
            msg_id: msg_id.clone(),
        });
        self.window_query(query, &msg_id, WindowOp::Record { window });
        Ok(())
    }

    /// Lets go of our claim on `msg_id` (the answer changes nothing).
    fn release(&mut self, msg_id: &str, token: String) {
        let Some(shared) = self.shared.as_mut() else {
            return;
        };
        let query = shared.register(Purpose::Release);
        self.window_query(query, msg_id, WindowOp::Release { token });
    }

    /// Records again the successes whose record failed, a few at a time (they count
    /// toward `max_in_flight`).
    fn retry_records(&mut self, now: Instant) {
        let max = self.config.max_in_flight;
        let Some(shared) = self.shared.as_mut() else {
            return;
        };
        let budget = shared.retry_budget(max);
        if budget == 0 || shared.unrecorded.is_empty() {
            return;
        }
        let window = shared.config.window;
        for msg_id in shared.due(now, budget) {
            let Some(shared) = self.shared.as_mut() else {
                return;
            };
            let query = shared.register(Purpose::Record {
                delivery: None,
                msg_id: msg_id.clone(),
            });
            self.window_query(query, &msg_id, WindowOp::Record { window });
        }
    }

    /// The store answered query `id` (or could not): the session goes on where the
    /// query left it.
    fn on_window_answer(
        &mut self,
        id: QueryId,
        answer: Result<WindowAnswer, WindowError>,
        now: Instant,
    ) {
        // A query out holds a place in `max_in_flight`: its answer may make room, and
        // frames read meanwhile wait in the stash for it.
        let was_paused = self.is_connected() && !self.wants_read();
        self.take_window_answer(id, answer, now);
        if was_paused {
            self.resume_after_pause(now);
        }
    }

    /// Reading resumes after a pause (for check jobs or shared-window queries): the time
    /// spent paused was not silence, and the frames kept meanwhile are read now.
    fn resume_after_pause(&mut self, now: Instant) {
        if let State::Open { last_pong, .. } = &mut self.state {
            *last_pong = now;
        }
        self.resume_reading(now);
    }

    /// Carries out what a shared-window answer means for its query's purpose.
    fn take_window_answer(
        &mut self,
        id: QueryId,
        answer: Result<WindowAnswer, WindowError>,
        now: Instant,
    ) {
        let Some(shared) = self.shared.as_mut() else {
            return;
        };
        let Some(purpose) = shared.take(id) else {
            return;
        };
        let policy = shared.config.on_store_failure;
        let retry_at = now + shared.config.record_retry;
        match &answer {
            Ok(_) if shared.failures > 0 => {
                let failures = std::mem::take(&mut shared.failures);
                self.emit(Event::SharedWindowRestored { failures });
            }
            Ok(_) => {}
            Err(_) => shared.failures = shared.failures.saturating_add(1),
        }
        match purpose {
            Purpose::Release => {}
            Purpose::Claim { delivery } => self.on_claim_answer(delivery, answer, policy, now),
            Purpose::Record {
                delivery: None,
                msg_id,
            } => {
                if let Some(shared) = self.shared.as_mut() {
                    match answer {
                        Ok(WindowAnswer::Recorded) => shared.remove_unrecorded(&msg_id),
                        _ => {
                            shared.add_unrecorded(&msg_id, retry_at);
                        }
                    }
                }
            }
            Purpose::Record {
                delivery: Some(delivery),
                msg_id,
            } => {
                let error = match answer {
                    Ok(WindowAnswer::Recorded) => {
                        if let Some(shared) = self.shared.as_mut() {
                            shared.remove_unrecorded(&msg_id);
                        }
                        let _ = self.finish(delivery, AckStatus::Success, now);
                        return;
                    }
                    Ok(other) => WindowError(format!("unexpected answer {other:?} to a record")),
                    Err(e) => e,
                };
                // The handler succeeded but the success is not in the shared window:
                // recorded again in the background; the claim stays until then (or
                // until its lease ends), so no other instance takes the message.
                if let Some(shared) = self.shared.as_mut() {
                    shared.add_unrecorded(&msg_id, retry_at);
                }
                if let Some(entry) = self.in_flight.get_mut(&delivery) {
                    entry.token = None;
                }
                let fallback = policy == StoreFailure::LocalWindow;
                self.emit(Event::SharedWindowFailed {
                    msg_id: msg_id.clone(),
                    op: "record",
                    error,
                    fallback,
                });
                if fallback {
                    let _ = self.finish(delivery, AckStatus::Success, now);
                } else {
                    self.handled.insert(&msg_id, now);
                    let _ = self.finish(delivery, AckStatus::Fail, now);
                }
            }
        }
    }

    /// The answer to the claim of `delivery`: deliver it, ack it from the shared
    /// window, or FAIL it.
    fn on_claim_answer(
        &mut self,
        id: DeliveryId,
        answer: Result<WindowAnswer, WindowError>,
        policy: StoreFailure,
        now: Instant,
    ) {
        // Gone: failed meanwhile (shutdown), and its claim released then.
        let Some(entry) = self.in_flight.get_mut(&id) else {
            return;
        };
        let Some(delivery) = entry.claiming.take() else {
            return;
        };
        let msg_id = entry.msg_id.clone();
        match answer {
            Ok(WindowAnswer::Claimed) => {
                if self.shutdown_deadline.is_some() {
                    self.reject(Some(msg_id), RejectReason::ShuttingDown);
                    let _ = self.finish(id, AckStatus::Fail, now);
                } else {
                    self.hand_out(delivery, now);
                }
            }
            Ok(WindowAnswer::Handled) => {
                // Handled by another instance: SUCCESS without the handler.
                entry.token = None;
                let _ = self.finish(id, AckStatus::Success, now);
                self.emit(Event::Duplicate {
                    msg_id,
                    in_flight: false,
                });
            }
            Ok(WindowAnswer::Held) => {
                entry.token = None;
                self.reject(Some(msg_id), RejectReason::ClaimedElsewhere);
                let _ = self.finish(id, AckStatus::Fail, now);
            }
            other => {
                let error = match other {
                    Err(e) => e,
                    Ok(answer) => WindowError(format!("unexpected answer {answer:?} to a claim")),
                };
                let fallback = policy == StoreFailure::LocalWindow;
                self.emit(Event::SharedWindowFailed {
                    msg_id,
                    op: "claim",
                    error,
                    fallback,
                });
                if fallback {
                    self.hand_out(delivery, now);
                } else {
                    // The claim may have landed before the answer was lost: released.
                    let _ = self.finish(id, AckStatus::Fail, now);
                }
            }
        }
    }

    // ----- producing -----------------------------------------------------------------

    /// Sends a PRODUCE of `msg_api` with `biz_content` (the text of one JSON object).
    /// Returns its stream id; the answer comes as [`Event::ProduceAck`] with that id.
    pub fn send(
        &mut self,
        msg_api: &str,
        biz_content: &str,
        now: Instant,
    ) -> Result<String, SendError> {
        if self.shutdown_deadline.is_some() {
            return Err(SendError::ShuttingDown);
        }
        if !self.is_connected() {
            return Err(SendError::NotConnected);
        }
        if self.pending.len() >= self.config.max_pending_sends {
            return Err(SendError::TooManyPending {
                limit: self.config.max_pending_sends,
            });
        }
        let now_ms = self.clock.unix_ms(now);
        let stream_id = self
            .stream_ids
            .next_id(u64::try_from(now_ms).unwrap_or_default());
        let frame = ProduceRequest {
            app_id: &self.config.app_id,
            msg_api,
            biz_content,
            cert_sns: self
                .keys
                .cert_sns
                .as_ref()
                .map(|s| (s.app_cert_sn.as_str(), s.alipay_root_cert_sn.as_str())),
            stream_id: &stream_id,
            timestamp_ms: now_ms,
            charset: self.config.charset,
        }
        .sign_and_encode(&self.keys.signer, &self.config.frame_limits)?;
        self.pending
            .insert(stream_id.clone(), now + self.config.send_timeout);
        self.write_text(&frame);
        Ok(stream_id)
    }

    fn on_produce_ack(&mut self, ack: ProduceAck) {
        if self.pending.remove(&ack.stream_id) {
            self.emit(Event::ProduceAck {
                stream_id: ack.stream_id.clone(),
                result: Ok(ack),
            });
        } else {
            self.reject(
                ack.msg_id,
                RejectReason::Unexpected {
                    cmd: Command::ProduceAck,
                },
            );
        }
    }

    fn fail_pending(&mut self) {
        for stream_id in self.pending.take_all() {
            self.emit(Event::ProduceAck {
                stream_id,
                result: Err(SendError::ConnectionLost),
            });
        }
    }

    // ----- shutdown ------------------------------------------------------------------

    /// Starts a graceful shutdown: no new deliveries (new CONSUMEs are answered FAIL),
    /// in-flight ones may still complete and be acked; then the connection closes and
    /// [`Event::ShutdownComplete`] follows. After `shutdown_timeout` it closes anyway.
    pub fn shutdown(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() || matches!(self.state, State::Ended) {
            return;
        }
        self.shutdown_deadline = Some(now + self.config.shutdown_timeout);
        // Nobody will take the deliveries waiting for a consumer: FAIL them now.
        while let Some((_, delivery)) = self.held.pop_front() {
            self.fail_held(delivery, RejectReason::ShuttingDown, now);
            if matches!(self.state, State::Ended) {
                return;
            }
        }
        if self.in_flight.is_empty() || !self.is_connected() {
            self.finish_shutdown(now);
        }
    }

    fn finish_shutdown(&mut self, now: Instant) {
        if matches!(self.state, State::Ended) {
            return;
        }
        self.drop_link(true, now);
        self.order.abandon();
        self.fail_pending();
        self.state = State::Ended;
        self.emit(Event::ShutdownComplete);
    }

    // ----- connection lifecycle ------------------------------------------------------

    fn start_attempt(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return self.finish_shutdown(now);
        }
        self.attempts = self.attempts.saturating_add(1);
        self.emit(Event::Connecting {
            attempt: self.attempts,
        });
        let mut nonce_bytes = [0u8; 16];
        self.rng.fill_bytes(&mut nonce_bytes);
        let nonce: String = nonce_bytes.iter().map(|b| format!("{b:02x}")).collect();
        let signed = RegisterParams {
            app_id: &self.config.app_id,
            charset: self.config.charset,
            timestamp_ms: self.clock.unix_ms(now),
            nonce: &nonce,
            cert_sns: self.keys.cert_sns.as_ref(),
        }
        .sign(&self.keys.signer);
        match signed {
            Ok(signed) => {
                let request = register_request(&self.config.endpoint, &signed, self.config.charset);
                let conn = self.connect();
                self.state = State::Registering {
                    deadline: now + self.config.connect_timeout,
                    conn,
                    request: Some(request),
                    answer: Vec::new(),
                };
            }
            Err(e) => self.attempt_failed(DisconnectReason::Sign(e), now),
        }
    }

    /// Asks for a new connection to the endpoint.
    fn connect(&mut self) -> ConnId {
        self.last_conn += 1;
        let conn = ConnId(self.last_conn);
        self.transmit(Transmit::Connect {
            conn,
            host: link::connect_host(&self.config.endpoint),
            port: self.config.endpoint.port,
            tls: self.config.endpoint.tls,
        });
        conn
    }

    /// Leaves the current connection, if any: on an open websocket first a Close frame
    /// when `polite` (RFC 6455 §7.1.2), then [`Transmit::Close`]. Returns when the
    /// websocket opened, if it was open; the state is `Backoff` until `now` afterwards
    /// (the caller sets the next one).
    fn drop_link(&mut self, polite: bool, now: Instant) -> Option<Instant> {
        self.state.conn()?;
        let mask = self.mask();
        match std::mem::replace(&mut self.state, State::Backoff { until: now }) {
            State::Open {
                conn,
                mut ws,
                since,
                ..
            } => {
                if polite {
                    // `Err`: a close was already sent.
                    if let Ok(bytes) = ws.close(CloseCode::NORMAL, "", mask) {
                        self.transmit(Transmit::Write { conn, bytes });
                    }
                }
                self.transmit(Transmit::Close { conn });
                Some(since)
            }
            State::Registering { conn, .. } | State::Upgrading { conn, .. } => {
                self.transmit(Transmit::Close { conn });
                None
            }
            State::Backoff { .. } | State::Ended => None,
        }
    }

    /// An attempt (register or upgrade) failed: back off and try again.
    fn attempt_failed(&mut self, reason: DisconnectReason, now: Instant) {
        self.drop_link(false, now);
        if self.shutdown_deadline.is_some() {
            return self.finish_shutdown(now);
        }
        let delay = self.backoff.next_delay(&mut self.rng);
        self.state = State::Backoff { until: now + delay };
        if self.first_deadline.is_some() {
            self.last_failure = Some(reason.clone());
        }
        self.emit(Event::Disconnected {
            reason,
            retry_in: Some(delay),
        });
    }

    /// An open connection is gone (closed with a Close frame first when `polite`).
    /// Unacked deliveries stay in flight (their completion is remembered); pending sends
    /// fail; check jobs out are abandoned.
    fn connection_lost(&mut self, reason: DisconnectReason, polite: bool, now: Instant) {
        if let Some(since) = self.drop_link(polite, now) {
            if now.saturating_duration_since(since) >= self.backoff.reset_after() {
                self.backoff.reset();
            }
        }
        self.order.abandon();
        self.fail_pending();
        self.attempt_failed(reason, now);
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    fn transmit(&mut self, transmit: Transmit) {
        self.outputs.push_back(Output::Transmit(transmit));
    }
}

impl std::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSession")
            .field("app_id", &self.config.app_id)
            .field("state", &self.state)
            .field("in_flight", &self.in_flight.len())
            .field("pending_sends", &self.pending.len())
            .finish_non_exhaustive()
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
