//! The client as a state machine: every decision of the message channel's client, with
//! no I/O (DESIGN: "the core is a state machine you drive").
//!
//! A [`ClientSession`] takes inputs — bytes and frames received, connection events,
//! the application's calls, the passing of time — each with the current time `now`, and
//! answers through [`ClientSession::poll_output`]: things to [`Transmit`], [`Event`]s
//! for the application, and the [`Output::Timeout`] at which to call
//! [`ClientSession::handle_timeout`]. **After every input, call `poll_output` until it
//! returns [`Output::Timeout`] or [`Output::Done`].**
//!
//! Lifecycle: `register.do` (HTTP request out, answer in) → websocket upgrade → open →
//! closed → backoff → again (PROTOCOL §1–3, §8). While open: a ping every
//! `heartbeat_interval`; when no pong has come back for `dead_after` the connection is
//! dead — whichever direction broke — and is closed. (Frames from the platform do not
//! count: they arrive on a connection whose other direction may have failed, and then
//! no ack would ever get through.) While reading is paused for backpressure the check
//! waits, since pongs are not read either.
//!
//! The ack decision for each CONSUME, in this order (PROTOCOL §5–6):
//!
//! 1. malformed frame → [`Event::Rejected`], no ack (it cannot be addressed);
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
//! # The poll loop
//!
//! ```no_run
//! use std::time::{Instant, SystemTime, UNIX_EPOCH};
//! use alipay_msg_core::client::{ClientConfig, ClientSession, Credentials, Event, Outcome, Output, Transmit};
//!
//! /// What an adapter's sockets and timers produce (one value per wake-up).
//! enum Input { HttpData(Vec<u8>), HttpEof, WsOpen, Text(String), Pong, Closed(String), Deadline }
//! # fn carry_out(_: Transmit) {}
//! # fn wait_for_input(_deadline: Instant) -> Input { Input::Deadline }
//! # fn handle(_: &str, _: &str) -> Result<(), String> { Ok(()) }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let credentials = Credentials::public_key(
//!     &std::fs::read_to_string("app_private_key.pem")?,
//!     &std::fs::read_to_string("alipay_public_key.pem")?,
//! )?;
//! let config = ClientConfig::new("2021000000000001", credentials);
//! let unix_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
//! // Any rand_core::RngCore: nonces, stream-id tags and backoff jitter. Seed it from the
//! // operating system in production, with a fixed seed in tests.
//! # let os_seed = 7;
//! let rng = Box::new(<rand_xoshiro::Xoshiro256PlusPlus as rand_core::SeedableRng>::seed_from_u64(os_seed));
//! let mut session = ClientSession::new(config, rng, Instant::now(), unix_ms)?;
//! loop {
//!     match session.poll_output() {
//!         // 1. Network work: open the register.do connection and send the request, open
//!         //    the websocket, send a text frame or a ping, close.
//!         Output::Transmit(t) => carry_out(t),
//!         // 2. Run the handler; report its outcome (here at once, usually later).
//!         Output::Event(Event::Message(delivery)) => {
//!             let outcome = match handle(delivery.msg_api(), delivery.biz_content()) {
//!                 Ok(()) => Outcome::Success,
//!                 Err(e) => Outcome::Failure(e),
//!             };
//!             session.complete(delivery.id, outcome, Instant::now())?;
//!         }
//!         Output::Event(other) => println!("{other:?}"),
//!         // 3. Wait for input until the deadline (read the websocket only while
//!         //    `session.wants_read()`), and feed what came.
//!         Output::Timeout(deadline) => {
//!             let input = wait_for_input(deadline);
//!             let now = Instant::now();
//!             match input {
//!                 Input::HttpData(bytes) => session.handle_http_data(&bytes, now),
//!                 Input::HttpEof => session.handle_http_eof(now),
//!                 Input::WsOpen => session.handle_ws_open(now),
//!                 Input::Text(text) => session.handle_text(&text, now),
//!                 Input::Pong => session.handle_pong(now),
//!                 Input::Closed(reason) => session.handle_ws_closed(&reason, now),
//!                 Input::Deadline => session.handle_timeout(now),
//!             }
//!         }
//!         // 4. Shut down, or stopped by a fatal configuration error.
//!         Output::Done => break,
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod app;
mod backoff;
mod check;
mod config;
mod dedup;
mod output;
mod pending;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand_core::RngCore;

pub use app::{Application, AttemptFailure, ClientError, ClientEvent, Message};
pub use backoff::BackoffConfig;
pub use check::{CheckedFrame, ForeignCheckedFrame, FrameChecker};
#[cfg(feature = "tungstenite")]
pub use check::{Inbound, WsRead};
pub use config::{ClientConfig, ConfigError, Credentials};
pub use output::{
    Delivery, DeliveryId, DisconnectReason, Event, Outcome, Output, RejectReason, SendError,
    Transmit, UnknownDelivery,
};

use crate::clock::WallClock;
use crate::consume::{AckStatus, ConsumeAck, ConsumeFrame};
use crate::frame::{Command, FrameHeaders, SignatureStatus};
use crate::http::parse_response;
use crate::produce::ProduceRequest;
use crate::produce_ack::ProduceAck;
use crate::register::{
    parse_register_answer, register_request, RegisterError, RegisterParams, UpgradeParams,
    WsConnect,
};
use crate::stream_id::StreamIdGenerator;

use config::Prepared;
use dedup::DuplicateWindow;
use pending::PendingSends;

/// Connections that redelivered a message being handled, waiting for its ack; more
/// than this many copies are left to the platform's next redelivery.
const MAX_WAITERS: usize = 8;

/// The client state machine. See the [module documentation](self).
pub struct ClientSession {
    config: ClientConfig,
    keys: Prepared,
    checker: FrameChecker,
    clock: WallClock,
    rng: Box<dyn RngCore + Send>,
    state: State,
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
}

#[derive(Debug)]
enum State {
    /// Waiting to start the next attempt.
    Backoff { until: Instant },
    /// `register.do` sent; collecting the answer.
    Registering { deadline: Instant, answer: Vec<u8> },
    /// Upgrade requested.
    Upgrading { deadline: Instant },
    /// Connected. `last_pong` starts at the open.
    Open {
        since: Instant,
        last_pong: Instant,
        next_ping: Instant,
    },
    /// Shut down, or stopped by a fatal error.
    Ended,
}

/// A delivery being handled, and the connections that want its ack.
#[derive(Debug)]
struct InFlight {
    msg_id: String,
    waiters: Vec<Waiter>,
}

#[derive(Debug)]
struct Waiter {
    generation: u64,
    headers: FrameHeaders,
}

impl ClientSession {
    /// Validates `config` (keys, certificates, app id, tunables) and starts the first
    /// connection attempt. `unix_ms` is the wall-clock time at `now`; `rng` provides
    /// nonces, stream-id tags and backoff jitter.
    pub fn new(
        config: ClientConfig,
        mut rng: Box<dyn RngCore + Send>,
        now: Instant,
        unix_ms: i64,
    ) -> Result<Self, ConfigError> {
        let keys = config.validate()?;
        let checker = FrameChecker::new(keys.verifier.clone(), config.frame_limits);
        let stream_ids = StreamIdGenerator::new(rng.next_u64());
        let mut session = ClientSession {
            keys,
            checker,
            clock: WallClock::new(now, unix_ms),
            rng,
            state: State::Backoff { until: now },
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
            config,
        };
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

    /// The session wants frames: it is connected and fewer than `max_in_flight`
    /// deliveries await completion. When `false`, stop reading the socket (the platform
    /// holds the messages) until a [`ClientSession::complete`].
    pub fn wants_read(&self) -> bool {
        matches!(self.state, State::Open { .. }) && self.in_flight.len() < self.config.max_in_flight
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

    // ----- inputs: time -------------------------------------------------------------

    /// Time has passed: attempts, heartbeats, dead-connection detection, send timeouts,
    /// the shutdown deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.handled.expire(now);
        for stream_id in self.pending.take_expired(now) {
            self.emit(Event::ProduceAck {
                stream_id,
                result: Err(SendError::Timeout),
            });
        }
        if self.shutdown_deadline.is_some_and(|d| now >= d) {
            self.finish_shutdown();
            return;
        }
        let reading = self.wants_read();
        match &mut self.state {
            State::Backoff { until } if now >= *until => self.start_attempt(now),
            State::Registering { deadline, .. } | State::Upgrading { deadline }
                if now >= *deadline =>
            {
                self.transmit(Transmit::Close);
                self.attempt_failed(DisconnectReason::ConnectTimeout, now);
            }
            State::Open {
                last_pong,
                next_ping,
                ..
            } => {
                let silent_for = now.saturating_duration_since(*last_pong);
                if reading && silent_for >= self.config.dead_after {
                    self.transmit(Transmit::Close);
                    self.connection_lost(DisconnectReason::Dead { silent_for }, now);
                } else if now >= *next_ping {
                    *next_ping = now + self.config.heartbeat_interval;
                    self.transmit(Transmit::Ping);
                }
            }
            _ => {}
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        let state = match &self.state {
            State::Ended => return None,
            State::Backoff { until } => *until,
            State::Registering { deadline, .. } | State::Upgrading { deadline } => *deadline,
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
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- inputs: register.do -------------------------------------------------------

    /// Bytes of the `register.do` answer, as they arrive.
    pub fn handle_http_data(&mut self, data: &[u8], now: Instant) {
        let State::Registering { answer, .. } = &mut self.state else {
            return;
        };
        answer.extend_from_slice(data);
        let limit = self.config.max_register_response_bytes;
        match parse_response(answer, false, limit) {
            Ok(None) => {}
            Ok(Some(response)) => self.on_register_answer(&response, now),
            Err(e) => self.register_failed(RegisterError::Http(e), now),
        }
    }

    /// The `register.do` connection reached end of stream.
    pub fn handle_http_eof(&mut self, now: Instant) {
        let State::Registering { answer, .. } = &mut self.state else {
            return;
        };
        let limit = self.config.max_register_response_bytes;
        match parse_response(answer, true, limit) {
            Ok(Some(response)) => self.on_register_answer(&response, now),
            Ok(None) => {} // unreachable with eof = true; nothing to do either way
            Err(e) => self.register_failed(RegisterError::Http(e), now),
        }
    }

    /// The `register.do` request failed at the network level (connect, TLS, I/O).
    pub fn handle_http_failed(&mut self, reason: &str, now: Instant) {
        if matches!(self.state, State::Registering { .. }) {
            self.attempt_failed(DisconnectReason::Closed(reason.to_owned()), now);
        }
    }

    fn on_register_answer(&mut self, response: &crate::http::HttpResponse, now: Instant) {
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
        let signed = UpgradeParams {
            app_id: &self.config.app_id,
            charset: self.config.charset,
            link_token: &answer.link_token,
            timestamp_ms: self.clock.unix_ms(now),
            cert_sns: self.keys.cert_sns.as_ref(),
        }
        .sign(&self.keys.signer);
        match signed {
            Ok(signed) => {
                let connect = WsConnect::new(
                    &self.config.endpoint,
                    &signed,
                    self.config.charset,
                    answer.zone.as_deref(),
                );
                self.state = State::Upgrading { deadline };
                self.transmit(Transmit::WsConnect {
                    endpoint: self.config.endpoint.clone(),
                    connect,
                });
            }
            Err(e) => self.attempt_failed(DisconnectReason::Upgrade(e.to_string()), now),
        }
    }

    fn register_failed(&mut self, error: RegisterError, now: Instant) {
        self.transmit(Transmit::Close);
        if error.is_retryable() || self.config.retry_on_auth_error {
            self.attempt_failed(DisconnectReason::Register(error), now);
        } else {
            self.fail_pending();
            self.state = State::Ended;
            self.emit(Event::Fatal(error));
        }
    }

    // ----- inputs: websocket ---------------------------------------------------------

    /// The websocket upgrade succeeded.
    pub fn handle_ws_open(&mut self, now: Instant) {
        if !matches!(self.state, State::Upgrading { .. }) {
            return;
        }
        self.generation += 1;
        self.attempts = 0;
        self.state = State::Open {
            since: now,
            last_pong: now,
            next_ping: now + self.config.heartbeat_interval,
        };
        self.emit(Event::Connected);
        if self.shutdown_deadline.is_some() && self.in_flight.is_empty() {
            self.finish_shutdown();
        }
    }

    /// The websocket upgrade failed (refused, network error).
    pub fn handle_ws_failed(&mut self, reason: &str, now: Instant) {
        if matches!(self.state, State::Upgrading { .. }) {
            self.attempt_failed(DisconnectReason::Upgrade(reason.to_owned()), now);
        }
    }

    /// The open websocket closed or failed.
    pub fn handle_ws_closed(&mut self, reason: &str, now: Instant) {
        if matches!(self.state, State::Open { .. }) {
            self.connection_lost(DisconnectReason::Closed(reason.to_owned()), now);
        }
    }

    /// A pong arrived: the platform received our ping, so the connection works in both
    /// directions. Only pongs prove that — frames from the platform say nothing about
    /// whether our acks reach it — so only pongs keep a connection alive.
    pub fn handle_pong(&mut self, now: Instant) {
        if let State::Open { last_pong, .. } = &mut self.state {
            *last_pong = now;
        }
    }

    /// A websocket text message arrived: parsed, and for a CONSUME verified, here (see
    /// [`ClientSession::handle_checked`] to do that elsewhere).
    pub fn handle_text(&mut self, text: &str, now: Instant) {
        if !matches!(self.state, State::Open { .. }) {
            return;
        }
        let checked = self.checker.check(text);
        self.on_checked(checked.checked, now);
    }

    /// Carries out an [`Event`] from [`ClientSession::poll_output`] through the
    /// adapter's [`Application`]: a message to the application (completed FAIL at
    /// once when nobody takes it), a PRODUCE_ACK to its sender, `Connected` and
    /// `Fatal` published and then answered to a pending `connect`, everything else
    /// published as a [`ClientEvent`].
    pub fn dispatch(&mut self, event: Event, app: &mut impl Application, now: Instant) {
        match event {
            Event::Message(delivery) => {
                let id = delivery.id;
                if let Err(reason) = app.deliver(Message::new(delivery)) {
                    // Known: it was just delivered.
                    let _ = self.complete(id, Outcome::Failure(reason), now);
                }
            }
            Event::ProduceAck { stream_id, result } => app.produce_ack(stream_id, result),
            Event::Connected => {
                app.publish(ClientEvent::Connected);
                app.connect_result(Ok(()));
            }
            Event::Fatal(error) => {
                app.publish(ClientEvent::Fatal(error.to_string()));
                app.connect_result(Err(error));
            }
            other => {
                if let Some(event) = ClientEvent::from_event(&other) {
                    app.publish(event);
                }
            }
        }
    }

    /// A checker for this session's frames, to parse and verify them away from the
    /// session's task (see [`FrameChecker`]).
    pub fn frame_checker(&self) -> FrameChecker {
        self.checker.clone()
    }

    /// A text frame from the platform, already checked by this session's
    /// [`FrameChecker`]: the same as [`ClientSession::handle_text`] with its text.
    /// A frame checked by another session's checker is refused, and nothing happens.
    pub fn handle_checked(
        &mut self,
        frame: CheckedFrame,
        now: Instant,
    ) -> Result<(), ForeignCheckedFrame> {
        if frame.tag() != self.checker.tag() {
            return Err(ForeignCheckedFrame);
        }
        if matches!(self.state, State::Open { .. }) {
            self.on_checked(frame.checked, now);
        }
        Ok(())
    }

    fn on_checked(&mut self, checked: check::Checked, now: Instant) {
        match checked {
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
            self.ack(&consume.headers, &consume.msg_id, AckStatus::Success);
            return self.emit(Event::Duplicate {
                msg_id: consume.msg_id,
                in_flight: false,
            });
        }
        if let Some(id) = self.in_flight_by_msg.get(&consume.msg_id) {
            // Invariant: the two maps are updated together.
            let entry = self.in_flight.get_mut(id).expect("in-flight maps agree");
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
        self.in_flight.insert(
            id,
            InFlight {
                msg_id: consume.msg_id.clone(),
                waiters: vec![Waiter {
                    generation: self.generation,
                    headers: consume.headers.clone(),
                }],
            },
        );
        self.emit(Event::Message(Delivery { id, frame: consume }));
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
    /// handled; the ack goes to every connection still open that delivered it.
    pub fn complete(
        &mut self,
        id: DeliveryId,
        outcome: Outcome,
        now: Instant,
    ) -> Result<(), UnknownDelivery> {
        let was_full = self.in_flight.len() >= self.config.max_in_flight;
        let entry = self.in_flight.remove(&id).ok_or(UnknownDelivery(id))?;
        self.in_flight_by_msg.remove(&entry.msg_id);
        let status = match outcome {
            Outcome::Success => {
                self.handled.insert(&entry.msg_id, now);
                AckStatus::Success
            }
            Outcome::Failure(_) => AckStatus::Fail,
        };
        if let State::Open { last_pong, .. } = &mut self.state {
            if was_full {
                // Reading resumes now; the time spent paused was not silence.
                *last_pong = now;
            }
            for waiter in entry
                .waiters
                .iter()
                .filter(|w| w.generation == self.generation)
            {
                self.outputs.push_back(Output::Transmit(Transmit::Text(
                    ConsumeAck {
                        headers: waiter.headers.clone(),
                        msg_id: entry.msg_id.clone(),
                        status,
                    }
                    .encode(),
                )));
            }
        }
        if self.shutdown_deadline.is_some() && self.in_flight.is_empty() {
            self.finish_shutdown();
        }
        Ok(())
    }

    fn ack(&mut self, headers: &FrameHeaders, msg_id: &str, status: AckStatus) {
        let ack = ConsumeAck {
            headers: headers.clone(),
            msg_id: msg_id.to_owned(),
            status,
        };
        self.transmit(Transmit::Text(ack.encode()));
    }

    fn reject(&mut self, msg_id: Option<String>, reason: RejectReason) {
        self.emit(Event::Rejected { msg_id, reason });
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
        self.transmit(Transmit::Text(frame));
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
        if self.in_flight.is_empty() || !self.is_connected() {
            self.finish_shutdown();
        }
    }

    fn finish_shutdown(&mut self) {
        if matches!(self.state, State::Ended) {
            return;
        }
        if !matches!(self.state, State::Backoff { .. }) {
            self.transmit(Transmit::Close);
        }
        self.fail_pending();
        self.state = State::Ended;
        self.emit(Event::ShutdownComplete);
    }

    // ----- connection lifecycle ------------------------------------------------------

    fn start_attempt(&mut self, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return self.finish_shutdown();
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
                self.state = State::Registering {
                    deadline: now + self.config.connect_timeout,
                    answer: Vec::new(),
                };
                self.transmit(Transmit::HttpRequest {
                    endpoint: self.config.endpoint.clone(),
                    request: register_request(&self.config.endpoint, &signed, self.config.charset),
                });
            }
            Err(e) => self.attempt_failed(DisconnectReason::Closed(e.to_string()), now),
        }
    }

    /// An attempt (register or upgrade) failed: back off and try again.
    fn attempt_failed(&mut self, reason: DisconnectReason, now: Instant) {
        if self.shutdown_deadline.is_some() {
            return self.finish_shutdown();
        }
        let delay = self.backoff.next_delay(&mut *self.rng);
        self.state = State::Backoff { until: now + delay };
        self.emit(Event::Disconnected {
            reason,
            retry_in: Some(delay),
        });
    }

    /// An open connection is gone. Unacked deliveries stay in flight (their completion
    /// is remembered); pending sends fail.
    fn connection_lost(&mut self, reason: DisconnectReason, now: Instant) {
        if let State::Open { since, .. } = self.state {
            if now.saturating_duration_since(since) >= self.backoff.reset_after() {
                self.backoff.reset();
            }
        }
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
