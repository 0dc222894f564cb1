//! The platform side of the message channel as a sans-IO state machine: a simulated
//! "openchannel" host for tests, the local simulator and benchmarks (DESIGN: "A
//! `ServerSession` in the same crate plays the platform side").
//!
//! It answers `register.do` (PROTOCOL §2–3), checks websocket upgrades (§2, §8), pushes
//! signed CONSUME frames and redelivers them until acknowledged (§5–6), answers PRODUCE
//! with PRODUCE_ACK codes (§7), and injects faults on request ([`FaultPlan`]).
//!
//! # Driving it
//!
//! The session speaks bytes, as [`crate::client::ClientSession`] does: the embedder
//! accepts a TCP connection and tells the session ([`ServerSession::accept`]), feeds what
//! it reads ([`ServerInput::Bytes`]) and its end ([`ServerInput::Closed`]), and writes
//! what [`ServerOutput::Write`] gives, closing on [`ServerOutput::Close`]. Per connection
//! the session reads the HTTP/1.1 request head from the first byte (module `link`):
//! `register.do` is answered and closed (PROTOCOL §2–3); a websocket upgrade is checked
//! (RFC 6455 §4.2, PROTOCOL §2, §8) and answered `101` or refused; then the websocket
//! (RFC 6455 framing, unmasking, pings, the close handshake, module `websocket`) carries
//! text frames in the connection's charset both ways (PROTOCOL §4). A request for any
//! other path comes back as [`ServerOutput::Foreign`] for the embedder to answer (the
//! simulator's admin endpoints).
//!
//! Inputs carry the current time (`now: Instant`); nothing reads a clock. **After every
//! input, call [`ServerSession::poll_output`] until it returns `None`**, then wait until
//! [`ServerSession::poll_timeout`] (if any) and call [`ServerSession::handle_timeout`].
//!
//! ```
//! use std::time::Instant;
//! use alipay_msg_core::key::{PrivateKey, PublicKey};
//! use alipay_msg_core::server::{AppRegistration, ServerConfig, ServerInput, ServerOutput, ServerSession};
//! use alipay_msg_core::signature::Verifier;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/keys");
//! let platform = PrivateKey::from_pem_or_base64(&std::fs::read_to_string(format!("{keys}/alipay_private_pkcs1.pem"))?)?;
//! let app_key = PublicKey::from_pem_or_base64(&std::fs::read_to_string(format!("{keys}/app_public.pem"))?)?;
//! let config = ServerConfig::from_platform_key(&platform)?
//!     .with_app("2021000000000001", AppRegistration::new(Verifier::new(&app_key)?));
//! # struct Zero; impl rand_core::RngCore for Zero { fn next_u32(&mut self) -> u32 { 0 } fn next_u64(&mut self) -> u64 { 0 } fn fill_bytes(&mut self, d: &mut [u8]) { d.fill(7) } fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> { d.fill(7); Ok(()) } }
//! # let rng = Box::new(Zero);
//! let t0 = Instant::now();
//! let mut server = ServerSession::new(config, rng, t0, 1_795_430_400_000);
//! let msg_id = server.push("2021000000000001", "alipay.x.y", r#"{"k":"v"}"#, t0)?;
//! // No websocket yet: the message waits. A socket is accepted and sends a request:
//! let conn = server.accept(t0)?;
//! let request = b"GET /admin/status HTTP/1.1\r\nHost: localhost\r\n\r\n";
//! server.handle_input(ServerInput::Bytes { conn, bytes: request }, t0);
//! while let Some(out) = server.poll_output() {
//!     match out {
//!         ServerOutput::Write { conn, bytes } => { /* write `bytes` on socket `conn` */ }
//!         ServerOutput::Close { conn } => { /* flush, then close socket `conn` */ }
//!         ServerOutput::Foreign { conn, request } => {
//!             // Not the platform's path: the embedder answers it.
//!             assert_eq!(request.path(), "/admin/status");
//!         }
//!         ServerOutput::Event(event) => println!("{event:?}"),
//!         _ => {}
//!     }
//! }
//! assert!(!server.is_settled());
//! assert!(server.message_state(msg_id.as_str()).is_some());
//! # Ok(()) }
//! ```

mod config;
mod delivery;
mod faults;
mod link;
mod produce;
mod register;
mod spread;
mod websocket;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand_core::RngCore;

use crate::charset::{Charset, MalformedText};
use crate::clock::WallClock;
use crate::consume::{AckStatus, ConsumeAck};
use crate::frame::{Command, Frame, FrameError};
use crate::produce_ack::ProduceAck;
use crate::signature::SignType;
use crate::ws::handshake::HandshakeError;
use crate::ws::{ProtocolViolation, WsConnection, WsLimits};

pub use config::{AppRegistration, ProduceFailure, ServerConfig};

pub use delivery::{DeliveryKind, MessageCounts, MessageState, PresignedContent};
pub use faults::{CloseAfterFrames, FaultPlan, GARBAGE_FRAME};
pub use link::{ConnectionId, ForeignRequest};
pub use produce::ProduceVerdict;
pub use register::{RegisterRefusal, RegisterReply, UpgradeRefusal};

use delivery::{Message, Settled};
use link::{HeadReader, Route};
use register::{check_params, failure_text, success_text, LinkTokens, Params};

/// The path of `register.do` (PROTOCOL §1).
pub const REGISTER_PATH: &str = "/websocket/register.do";

/// The path of the websocket upgrade (PROTOCOL §1).
pub const WEBSOCKET_PATH: &str = "/websocket";

/// A message id (`x-msgId`) the platform gave a pushed message or an accepted PRODUCE:
/// 20 decimal digits, unique within the session (PROTOCOL §4, §6).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId(Arc<str>);

impl MsgId {
    /// The id as written in `x-msgId`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for MsgId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What happened on a connection the embedder accepted, for
/// [`ServerSession::handle_input`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerInput<'a> {
    /// Bytes read from the connection, in order. Any split is fine.
    Bytes {
        /// The connection.
        conn: ConnectionId,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// The connection ended: `error: None` at end of stream (the client closed), `Some`
    /// when a read or write failed. Messages in flight on its websocket are redelivered
    /// (PROTOCOL §6).
    Closed {
        /// The connection.
        conn: ConnectionId,
        /// The I/O error, if the end was not a clean end of stream.
        error: Option<io::ErrorKind>,
    },
}

/// What the caller does next (see the module docs for the loop).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum ServerOutput {
    /// Write these bytes on the connection, in order: HTTP answers, then websocket
    /// frames (text in the connection's charset, PROTOCOL §4; pongs; close frames).
    Write {
        /// The connection.
        conn: ConnectionId,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// Write what is queued for the connection, then close it (a client may still send
    /// its close frame: reading on for a short grace before dropping the socket avoids
    /// a reset). The session has forgotten the connection; later input for it is
    /// ignored.
    Close {
        /// The connection.
        conn: ConnectionId,
    },
    /// The request on the connection is for a path the platform does not serve: the
    /// embedder answers it (the session has forgotten the connection).
    Foreign {
        /// The connection.
        conn: ConnectionId,
        /// The request head, and what followed it.
        request: Box<ForeignRequest>,
    },
    /// Something happened that a simulator prints and tests assert on.
    Event(ServerEvent),
}

/// Why a message is delivered again (PROTOCOL §6: FAIL or no ack means redelivery).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RedeliveryReason {
    /// The client answered FAIL.
    Fail,
    /// No ack within [`ServerConfig::ack_timeout`].
    AckTimeout,
    /// The connection the message was in flight on closed.
    Disconnected,
}

/// Why an ack did not settle anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnexpectedAck {
    /// No message with this `x-msgId` is known (never pushed, or forgotten).
    UnknownMsgId,
    /// The message is known but not in flight (already settled, waiting for
    /// redelivery, or queued): e.g. the second ack of a duplicated CONSUME, or a late
    /// ack after the ack timeout.
    NotInFlight,
    /// The message is in flight on another connection.
    WrongConnection,
}

/// How a PRODUCE was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProduceAnswer {
    /// The PRODUCE_ACK was sent at once.
    Sent,
    /// The PRODUCE_ACK will be sent at this time ([`FaultPlan::delay_produce_acks`]).
    Delayed {
        /// When.
        at: Instant,
    },
    /// Not answered ([`FaultPlan::withhold_produce_acks`]).
    Withheld,
    /// The PRODUCE had no `stream-id`, so no PRODUCE_ACK can be matched to it.
    NoStreamId,
}

/// What happened, for simulators to print and tests to assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// register.do issued a link token.
    Registered {
        /// The app.
        app_id: String,
    },
    /// register.do was refused.
    RegisterRefused {
        /// `app_id` as sent, when present.
        app_id: Option<String>,
        /// The answer's `sub_code`.
        sub_code: &'static str,
    },
    /// A websocket upgrade was accepted.
    Connected {
        /// The new connection.
        conn: ConnectionId,
        /// Its app.
        app_id: String,
        /// `zone` from the `cookie` header, when sent.
        zone: Option<String>,
    },
    /// A websocket upgrade was refused.
    UpgradeRefused {
        /// `app_id` as sent, when present.
        app_id: Option<String>,
        /// Why.
        refusal: UpgradeRefusal,
    },
    /// A connection closed.
    Disconnected {
        /// The connection.
        conn: ConnectionId,
        /// Closed by the server ([`ServerSession::disconnect`] or a fault) rather than
        /// reported by the client ([`ServerInput::Closed`], or its close frame).
        by_server: bool,
        /// Messages that were in flight on it (now scheduled for redelivery).
        unacked: usize,
    },
    /// A CONSUME was sent.
    Delivered {
        /// The message.
        msg_id: MsgId,
        /// Where.
        conn: ConnectionId,
        /// Attempt number, from 1 (a duplicate copy repeats its attempt's number).
        attempt: u32,
        /// Genuine, corrupted, duplicate copy or forged.
        kind: DeliveryKind,
    },
    /// [`GARBAGE_FRAME`] was sent.
    GarbageSent {
        /// Where.
        conn: ConnectionId,
    },
    /// A CONSUME_ACK settled an attempt: SUCCESS completes the message, FAIL schedules
    /// redelivery (a [`ServerEvent::RedeliveryScheduled`] or [`ServerEvent::Abandoned`]
    /// follows).
    Acked {
        /// The message.
        msg_id: MsgId,
        /// Where the ack came from.
        conn: ConnectionId,
        /// SUCCESS or FAIL.
        status: AckStatus,
        /// The attempt acknowledged.
        attempt: u32,
        /// From sending this attempt's CONSUME to receiving its ack: the delivery
        /// latency the platform sees (benchmarks report its percentiles).
        latency: Duration,
    },
    /// A message will be delivered again.
    RedeliveryScheduled {
        /// The message.
        msg_id: MsgId,
        /// Attempts made so far.
        attempts: u32,
        /// When it becomes ready again.
        at: Instant,
        /// Why.
        reason: RedeliveryReason,
    },
    /// A message reached [`ServerConfig::max_attempts`] and is given up.
    Abandoned {
        /// The message.
        msg_id: MsgId,
        /// Attempts made.
        attempts: u32,
    },
    /// A forged message ([`ServerSession::push_forged`]) was answered or dropped after
    /// its single attempt. `status` SUCCESS means the client accepted a forgery.
    ForgedDiscarded {
        /// The message.
        msg_id: MsgId,
        /// The client's ack; `None` after a timeout or disconnect.
        status: Option<AckStatus>,
    },
    /// An ack that did not settle anything.
    UnexpectedAck {
        /// Where it came from.
        conn: ConnectionId,
        /// `x-msgId` as received.
        msg_id: String,
        /// Its status.
        status: AckStatus,
        /// Why it was ignored.
        reason: UnexpectedAck,
    },
    /// A PRODUCE was checked.
    Produced {
        /// Where it came from.
        conn: ConnectionId,
        /// Its `stream-id`.
        stream_id: Option<String>,
        /// Its `data.header.msgApi`.
        msg_api: Option<String>,
        /// The code decided.
        verdict: ProduceVerdict,
        /// The `x-msgId` given when accepted.
        msg_id: Option<MsgId>,
        /// The business content, when accepted.
        biz_content: Option<String>,
        /// How it was answered.
        answer: ProduceAnswer,
    },
    /// A text frame from a client could not be read (or is a command a client does not
    /// send). The connection is kept.
    MalformedFromClient {
        /// Where it came from.
        conn: ConnectionId,
        /// Why.
        error: FrameError,
    },
    /// Text arrived for a connection the session does not know (closed or never
    /// accepted); it was ignored.
    TextOnUnknownConnection {
        /// The connection.
        conn: ConnectionId,
    },
    /// A request was refused before the platform looked at its parameters: a malformed
    /// or oversized HTTP head, or an upgrade request RFC 6455 §4.2.1 refuses (bad
    /// `Sec-WebSocket-Key`, version, missing headers). Answered with
    /// [`HandshakeError::server_answer`] (400, 405, 426 or 431) and closed.
    RequestRefused {
        /// The connection.
        conn: ConnectionId,
        /// Why.
        error: HandshakeError,
    },
    /// A client sent a text frame whose bytes are not valid in its connection's
    /// charset: the websocket was closed with 1007, as the platform's Java client does
    /// (PROTOCOL §4), and its messages in flight are redelivered.
    UndecodableText {
        /// The connection.
        conn: ConnectionId,
        /// The charset and where the first malformed sequence starts.
        error: MalformedText,
    },
    /// A client broke RFC 6455 (e.g. an unmasked frame, §5.1) or sent a message over
    /// [`crate::frame::FrameLimits::max_frame_bytes`]: the websocket was failed with
    /// the violation's close code (1002, or 1009 for sizes, RFC 6455 §7.4.1).
    ProtocolViolation {
        /// The connection.
        conn: ConnectionId,
        /// What the client did.
        violation: ProtocolViolation,
    },
}

/// Why [`ServerSession::accept`] refused a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcceptError {
    /// [`ServerConfig::max_links`] connections are open.
    #[error("{limit} connections are already open")]
    TooManyConnections {
        /// The limit.
        limit: usize,
    },
}

/// Why a message could not be queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The app is not registered.
    #[error("app {app_id:?} is not registered")]
    UnknownApp {
        /// The app id given.
        app_id: String,
    },
    /// The message API is empty.
    #[error("msg_api is empty")]
    EmptyMsgApi,
    /// The business content is not one JSON object.
    #[error("biz_content must be a JSON object: {0}")]
    BizContent(FrameError),
    /// [`ServerConfig::max_queued`] messages are not settled yet.
    #[error("{limit} messages are already queued")]
    QueueFull {
        /// The limit.
        limit: usize,
    },
    /// Signing failed.
    #[error(transparent)]
    Signature(#[from] crate::signature::SignatureError),
}

/// An open websocket connection.
#[derive(Debug)]
struct Connection {
    app_id: String,
    /// The `charset` of its upgrade: frames on it are written in it (PROTOCOL §4).
    charset: Charset,
    /// Its websocket, in the server role.
    ws: WsConnection,
    /// Messages in flight here (primary copies only).
    in_flight: HashSet<MsgId>,
    /// Marked by a close fault: no more frames; closed at the end of the input.
    closing: bool,
}

/// Per app: its open connections (in accept order) and its ready messages.
#[derive(Debug, Default)]
struct AppState {
    conns: Vec<ConnectionId>,
    /// Round-robin cursor into `conns`.
    next: usize,
    /// Messages ready to send, oldest first.
    ready: VecDeque<MsgId>,
}

/// A timer; keyed by `(when, sequence)` in [`ServerSession::timers`].
#[derive(Debug)]
enum Timer {
    AckTimeout(MsgId),
    Retry(MsgId),
    ProduceAck { conn: ConnectionId, text: String },
}

type TimerKey = (Instant, u64);

/// The simulated platform (see the module docs).
pub struct ServerSession {
    config: ServerConfig,
    rng: Box<dyn RngCore + Send>,
    clock: WallClock,
    faults: FaultPlan,
    tokens: LinkTokens,
    /// Accepted connections still reading their request head.
    links: HashMap<ConnectionId, HeadReader>,
    connections: HashMap<ConnectionId, Connection>,
    apps: HashMap<String, AppState>,
    messages: HashMap<MsgId, Message>,
    /// Messages in `messages` that are not forged.
    genuine_live: usize,
    settled: HashMap<MsgId, Settled>,
    settled_order: VecDeque<MsgId>,
    totals: MessageCounts,
    timers: BTreeMap<TimerKey, Timer>,
    timer_seq: u64,
    outputs: VecDeque<ServerOutput>,
    pending_events: usize,
    events_dropped: u64,
    to_close: Vec<ConnectionId>,
    next_conn: u64,
    msg_prefix: i64,
    msg_seq: u64,
    stream_seq: u64,
}

impl fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSession")
            .field("connections", &self.connections.len())
            .field("messages", &self.messages.len())
            .field("outputs", &self.outputs.len())
            .finish_non_exhaustive()
    }
}

impl ServerSession {
    /// A platform with `config`. `rng` makes link tokens; at monotonic time `now` the
    /// wall clock reads `unix_ms` (timestamps are checked and written against it).
    pub fn new(
        config: ServerConfig,
        rng: Box<dyn RngCore + Send>,
        now: Instant,
        unix_ms: i64,
    ) -> Self {
        let apps = config
            .apps
            .keys()
            .map(|id| (id.clone(), AppState::default()))
            .collect();
        ServerSession {
            config,
            rng,
            clock: WallClock::new(now, unix_ms),
            faults: FaultPlan::default(),
            tokens: LinkTokens::default(),
            links: HashMap::new(),
            connections: HashMap::new(),
            apps,
            messages: HashMap::new(),
            genuine_live: 0,
            settled: HashMap::new(),
            settled_order: VecDeque::new(),
            totals: MessageCounts::default(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            outputs: VecDeque::new(),
            pending_events: 0,
            events_dropped: 0,
            to_close: Vec::new(),
            next_conn: 1,
            msg_prefix: unix_ms.div_euclid(1000).rem_euclid(10_000_000_000),
            msg_seq: 0,
            stream_seq: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The platform's wall clock at `now`, in milliseconds since the epoch.
    pub fn unix_ms(&self, now: Instant) -> i64 {
        self.clock.unix_ms(now)
    }

    // ----- outputs and timers -----

    /// The next output, or `None` when there is nothing to do until the next input or
    /// [`ServerSession::poll_timeout`]. Call until `None` after every input.
    pub fn poll_output(&mut self) -> Option<ServerOutput> {
        let out = self.outputs.pop_front()?;
        if matches!(out, ServerOutput::Event(_)) {
            self.pending_events = self.pending_events.saturating_sub(1);
        }
        Some(out)
    }

    /// When [`ServerSession::handle_timeout`] must be called next: the earliest ack
    /// deadline, redelivery or delayed PRODUCE_ACK.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(at, _)| *at)
    }

    /// Runs every timer due at `now`: ack timeouts (redelivery, PROTOCOL §6),
    /// redeliveries becoming ready, delayed PRODUCE_ACKs.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            match timer {
                Timer::AckTimeout(id) => self.on_ack_timeout(&id, now),
                Timer::Retry(id) => self.on_retry_due(&id),
                Timer::ProduceAck { conn, text } => self.send_frame(conn, text),
            }
        }
        self.finish(now);
    }

    /// Events dropped because [`ServerConfig::max_pending_events`] were waiting.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    fn event(&mut self, event: ServerEvent) {
        if self.pending_events >= self.config.max_pending_events {
            self.events_dropped += 1;
        } else {
            self.pending_events += 1;
            self.outputs.push_back(ServerOutput::Event(event));
        }
    }

    fn add_timer(&mut self, at: Instant, timer: Timer) -> TimerKey {
        self.timer_seq += 1;
        let key = (at, self.timer_seq);
        self.timers.insert(key, timer);
        key
    }

    /// Sends a text frame, encoded in the connection's charset (PROTOCOL §4), unless
    /// the connection is gone or closing; applies the close-after-frames fault.
    fn send_frame(&mut self, conn: ConnectionId, text: String) {
        let Some(c) = self.connections.get_mut(&conn).filter(|c| !c.closing) else {
            return;
        };
        match c
            .ws
            .encode_text(&c.charset.encode(&text), websocket::NO_MASK)
        {
            Ok(bytes) => self.outputs.push_back(ServerOutput::Write { conn, bytes }),
            // A close went either way: no data frame may follow (RFC 6455 §5.5.1).
            Err(_) => return,
        }
        let fire = match &mut self.faults.close_after_frames {
            Some(f) if f.conn.is_none_or(|c| c == conn) => {
                f.frames = f.frames.saturating_sub(1);
                f.frames == 0
            }
            _ => false,
        };
        if fire {
            self.faults.close_after_frames = None;
            self.close_websocket(conn, crate::ws::CloseCode::NORMAL, "");
            self.to_close.push(conn);
        }
    }

    /// Ends every input: closes connections marked by faults, then sends what can be
    /// sent.
    fn finish(&mut self, now: Instant) {
        loop {
            while let Some(conn) = self.to_close.pop() {
                self.close_connection(conn, true, now);
            }
            self.pump(now);
            if self.to_close.is_empty() {
                break;
            }
        }
    }

    fn next_msg_id(&mut self) -> MsgId {
        self.msg_seq += 1;
        MsgId(format!("{:010}{:010}", self.msg_prefix, self.msg_seq).into())
    }

    // ----- register.do and the upgrade -----

    /// Answers `GET <target>` where `target` is the path and query as received
    /// (`/websocket/register.do?<query>`), PROTOCOL §2–3.
    ///
    /// Checks, in order: required parameters `app_id`, `charset`, `sign_type`,
    /// `timestamp`, `sign` (`40001`, `isv.missing-app-id`, `isv.missing-charset`,
    /// `isv.missing-signature-type`, `isv.missing-timestamp`, `isv.missing-signature`);
    /// then with code `40004`: registered app (`isv.invalid-app-id`), charset UTF-8/GBK
    /// (`isv.invalid-charset`), sign type RSA2/RSA (`isv.invalid-signature-type`),
    /// timestamp within [`ServerConfig::timestamp_window`] (`isv.invalid-timestamp`),
    /// the V2 signature with the app key in the request's sign type and charset
    /// (`isv.invalid-signature`), and in certificate mode `app_cert_sn`
    /// (`isv.missing-app-cert-sn` 40001, `isv.app-cert-sn-mismatch`) and
    /// `alipay_root_cert_sn` (`isv.missing-alipay-root-cert-sn` 40001,
    /// `isv.alipay-root-cert-sn-mismatch`).
    ///
    /// Every answer is HTTP 200 with the `response` object signed by the platform in the
    /// request's sign type and charset; a success carries a fresh single-use link token,
    /// `alipay_cert_sn` when configured, and the zone cookie. A path other than
    /// [`REGISTER_PATH`] gets 404.
    fn handle_register(&mut self, target: &str, now: Instant) -> RegisterReply {
        let now_ms = self.clock.unix_ms(now);
        let Some((path, params)) = Params::from_target(target) else {
            return self.refuse_register(None, register::ParamProblem::TooLong, &Params::default());
        };
        if path != REGISTER_PATH {
            self.event(ServerEvent::RegisterRefused {
                app_id: None,
                sub_code: "isv.invalid-method",
            });
            return RegisterReply::not_found();
        }
        let required = ["app_id", "charset", "sign_type", "timestamp", "sign"];
        let checked = check_params(&params, &required, &self.config, now_ms)
            .map(|c| (c.app_id, c.sign_type, c.charset));
        let (app_id, sign_type, charset) = match checked {
            Ok(checked) => checked,
            Err(problem) => {
                let app_id = params.get("app_id").map(str::to_owned);
                return self.refuse_register(app_id, problem, &params);
            }
        };
        let token = self.link_token();
        self.tokens.issue(
            token.clone(),
            &app_id,
            now,
            self.config.link_token_ttl,
            self.config.max_link_tokens,
        );
        let reply = RegisterReply::signed(
            success_text(&token),
            self.config.platform_signer(sign_type),
            charset,
            self.config.platform_cert_sn.as_deref(),
            self.config.zone.as_deref(),
            Ok(token),
        );
        self.event(ServerEvent::Registered { app_id });
        reply
    }

    /// A failure answer, signed in the request's sign type and charset when they are
    /// valid (RSA2 and UTF-8 otherwise).
    fn refuse_register(
        &mut self,
        app_id: Option<String>,
        problem: register::ParamProblem,
        params: &Params,
    ) -> RegisterReply {
        let sign_type = params
            .get("sign_type")
            .and_then(|s| s.parse().ok())
            .unwrap_or(SignType::Rsa2);
        let charset = params
            .get("charset")
            .and_then(|s| s.parse().ok())
            .unwrap_or_default();
        let refusal = RegisterRefusal::from_problem(problem);
        let sub_code = refusal.sub_code;
        let reply = RegisterReply::signed(
            failure_text(&refusal),
            self.config.platform_signer(sign_type),
            charset,
            None,
            None,
            Err(refusal),
        );
        self.event(ServerEvent::RegisterRefused { app_id, sub_code });
        reply
    }

    /// 32 random hex characters.
    fn link_token(&mut self) -> String {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Checks a websocket upgrade request, `target` being the path and query as
    /// received (`/websocket?<query>`) and `cookie` the `cookie` header (PROTOCOL §2,
    /// §8).
    ///
    /// In order: path [`WEBSOCKET_PATH`]; parameters `app_id`, `charset`,
    /// `link_token`, `timestamp`, `sign_type`, `sign` present; the same app, charset,
    /// sign type, timestamp, V2 signature and certificate checks as
    /// [`ServerSession::handle_register`]; the zone cookie when
    /// [`ServerConfig::require_zone_cookie`]; the link token known, unused, unexpired
    /// and issued to this app — it is consumed here, even if the connection limit then
    /// refuses; at most [`ServerConfig::max_connections_per_app`] open connections.
    ///
    /// On success `conn` is recorded as a websocket and queued messages for the app
    /// start flowing (the caller writes the `101` answer first: outputs are queued
    /// behind it until the next [`ServerSession::finish`]).
    fn upgrade(
        &mut self,
        conn: ConnectionId,
        target: &str,
        cookie: Option<&str>,
        now: Instant,
    ) -> Result<(), UpgradeRefusal> {
        let result = self.check_upgrade(conn, target, cookie, now);
        match &result {
            Ok(app_id) => {
                let zone = cookie.and_then(register::zone_in_cookie).map(str::to_owned);
                self.event(ServerEvent::Connected {
                    conn,
                    app_id: app_id.clone(),
                    zone,
                });
            }
            Err((app_id, refusal)) => self.event(ServerEvent::UpgradeRefused {
                app_id: app_id.clone(),
                refusal: refusal.clone(),
            }),
        }
        result.map(|_| ()).map_err(|(_, refusal)| refusal)
    }

    fn check_upgrade(
        &mut self,
        conn: ConnectionId,
        target: &str,
        cookie: Option<&str>,
        now: Instant,
    ) -> Result<String, (Option<String>, UpgradeRefusal)> {
        let Some((path, params)) = Params::from_target(target) else {
            return Err((None, UpgradeRefusal::TooLong));
        };
        let sent_app = params.get("app_id").map(str::to_owned);
        let refuse = |refusal| Err((sent_app.clone(), refusal));
        if path != WEBSOCKET_PATH {
            return refuse(UpgradeRefusal::NotFound);
        }
        let required = [
            "app_id",
            "charset",
            "link_token",
            "timestamp",
            "sign_type",
            "sign",
        ];
        let (app_id, charset) =
            match check_params(&params, &required, &self.config, self.clock.unix_ms(now)) {
                Ok(checked) => (checked.app_id, checked.charset),
                Err(problem) => return refuse(UpgradeRefusal::from_problem(problem)),
            };
        if self.config.require_zone_cookie {
            let zone = cookie.and_then(register::zone_in_cookie);
            if zone.is_none() || zone != self.config.zone.as_deref() {
                return refuse(UpgradeRefusal::ZoneMismatch);
            }
        }
        let token = params.get("link_token").unwrap_or_default();
        if let Err(refusal) = self.tokens.redeem(token, &app_id, now) {
            return refuse(refusal);
        }
        let limit = self.config.max_connections_per_app;
        let app = self.apps.entry(app_id.clone()).or_default();
        if app.conns.len() >= limit {
            return refuse(UpgradeRefusal::TooManyConnections { limit });
        }
        app.conns.push(conn);
        let limits = WsLimits {
            max_message_bytes: self.config.limits.max_frame_bytes,
        };
        self.connections.insert(
            conn,
            Connection {
                app_id: app_id.clone(),
                charset,
                ws: WsConnection::new(crate::ws::Role::Server, limits),
                in_flight: HashSet::new(),
                closing: false,
            },
        );
        Ok(app_id)
    }

    /// The open connections of `app_id`, in accept order.
    pub fn connections_of(&self, app_id: &str) -> Vec<ConnectionId> {
        self.apps
            .get(app_id)
            .map(|a| a.conns.clone())
            .unwrap_or_default()
    }

    /// The charset of open websocket `conn`: the `charset` parameter of its upgrade.
    /// Every text frame on it is written and read in it (PROTOCOL §4): texts the session
    /// sends are encoded in it, and text frames received on it decoded with it
    /// (strictly; the platform's client closes with 1007 on bytes that do not decode,
    /// [`ServerEvent::UndecodableText`]). CONSUMEs to it carry it as `x-charset` and are
    /// signed over its bytes.
    pub fn connection_charset(&self, conn: ConnectionId) -> Option<Charset> {
        self.connections.get(&conn).map(|c| c.charset)
    }

    /// Link tokens remembered (issued and not yet forgotten).
    pub fn link_token_count(&self) -> usize {
        self.tokens.len()
    }

    /// Open websocket connections (all apps).
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    // ----- connections and their bytes -----

    /// A TCP connection the embedder accepted: the session reads its request from the
    /// first byte ([`ServerInput::Bytes`]). Refused when [`ServerConfig::max_links`]
    /// connections (request heads being read, plus websockets) are open: close the
    /// socket.
    pub fn accept(&mut self, _now: Instant) -> Result<ConnectionId, AcceptError> {
        let limit = self.config.max_links;
        if self.links.len() + self.connections.len() >= limit {
            return Err(AcceptError::TooManyConnections { limit });
        }
        let conn = ConnectionId(self.next_conn);
        self.next_conn += 1;
        self.links.insert(conn, HeadReader::default());
        Ok(conn)
    }

    /// Handles what happened on an accepted connection (see [`ServerInput`]). Input for
    /// a connection the session does not know (never accepted, or forgotten after a
    /// [`ServerOutput::Close`] or [`ServerOutput::Foreign`]) is ignored.
    pub fn handle_input(&mut self, input: ServerInput<'_>, now: Instant) {
        match input {
            ServerInput::Bytes { conn, bytes } => {
                if self.links.contains_key(&conn) {
                    self.read_request(conn, bytes, now);
                } else if self.connections.contains_key(&conn) {
                    self.read_websocket(conn, bytes, now);
                }
            }
            ServerInput::Closed { conn, error: _ } => {
                self.links.remove(&conn);
                if self.connections.contains_key(&conn) {
                    self.close_connection(conn, false, now);
                }
            }
        }
        self.finish(now);
    }

    /// Bytes of the request head of `conn`, and the route it takes once complete.
    fn read_request(&mut self, conn: ConnectionId, bytes: &[u8], now: Instant) {
        let Some(reader) = self.links.get_mut(&conn) else {
            return;
        };
        let route = match reader.read(bytes) {
            Ok(None) => return,
            Ok(Some(route)) => route,
            Err(error) => {
                self.links.remove(&conn);
                let bytes = error.server_answer();
                self.event(ServerEvent::RequestRefused { conn, error });
                self.outputs.push_back(ServerOutput::Write { conn, bytes });
                self.outputs.push_back(ServerOutput::Close { conn });
                return;
            }
        };
        self.links.remove(&conn);
        match route {
            Route::Register { target } => {
                let bytes = self.handle_register(&target, now).to_http_bytes();
                self.outputs.push_back(ServerOutput::Write { conn, bytes });
                self.outputs.push_back(ServerOutput::Close { conn });
            }
            Route::Upgrade { upgrade, rest } => {
                let cookie = upgrade
                    .header("cookie")
                    .map(|v| String::from_utf8_lossy(v).trim().to_owned());
                let target = &upgrade.path_and_query;
                match self.upgrade(conn, target, cookie.as_deref(), now) {
                    Ok(()) => {
                        let bytes = upgrade.accept_answer();
                        self.outputs.push_back(ServerOutput::Write { conn, bytes });
                        if !rest.is_empty() {
                            self.read_websocket(conn, &rest, now);
                        }
                    }
                    Err(refusal) => {
                        let bytes = refusal.http_answer();
                        self.outputs.push_back(ServerOutput::Write { conn, bytes });
                        self.outputs.push_back(ServerOutput::Close { conn });
                    }
                }
            }
            Route::Foreign(request) => {
                self.outputs
                    .push_back(ServerOutput::Foreign { conn, request });
            }
        }
    }

    /// Closes a connection from the platform side: writes a close frame (1000), outputs
    /// [`ServerOutput::Close`], and schedules the messages in flight on it for
    /// redelivery (PROTOCOL §6).
    pub fn disconnect(&mut self, conn: ConnectionId, now: Instant) {
        if self.connections.contains_key(&conn) {
            self.close_websocket(conn, crate::ws::CloseCode::NORMAL, "");
            self.close_connection(conn, true, now);
        }
        self.finish(now);
    }

    /// Writes the close frame (unless one went either way) and the
    /// [`ServerOutput::Close`] of websocket `conn`, once; marks it closing.
    fn close_websocket(&mut self, conn: ConnectionId, code: crate::ws::CloseCode, reason: &str) {
        let Some(c) = self.connections.get_mut(&conn).filter(|c| !c.closing) else {
            return;
        };
        c.closing = true;
        if let Ok(bytes) = c.ws.close(code, reason, websocket::NO_MASK) {
            self.outputs.push_back(ServerOutput::Write { conn, bytes });
        }
        self.outputs.push_back(ServerOutput::Close { conn });
    }

    // ----- text from clients -----

    /// A text frame from the client on `conn`, decoded (strictly) in the connection's
    /// charset ([`ServerSession::connection_charset`]): a CONSUME_ACK settles or fails a
    /// delivery (PROTOCOL §6), a PRODUCE is checked and answered (§7). Anything else is
    /// reported as [`ServerEvent::MalformedFromClient`] and the connection is kept.
    fn on_text(&mut self, conn: ConnectionId, text: &str, now: Instant) {
        if !self.connections.contains_key(&conn) {
            self.event(ServerEvent::TextOnUnknownConnection { conn });
            return;
        }
        match Frame::parse(text, &self.config.limits) {
            Err(error) => self.event(ServerEvent::MalformedFromClient { conn, error }),
            Ok(frame) => match frame.command {
                Command::ConsumeAck => match ConsumeAck::from_frame(frame) {
                    Ok(ack) => self.on_ack(conn, ack, now),
                    Err(error) => self.event(ServerEvent::MalformedFromClient { conn, error }),
                },
                Command::Produce => self.on_produce(conn, &frame, now),
                cmd => self.event(ServerEvent::MalformedFromClient {
                    conn,
                    error: FrameError::UnexpectedCommand { cmd },
                }),
            },
        }
    }

    fn on_produce(&mut self, conn: ConnectionId, frame: &Frame<'_>, now: Instant) {
        let Some(app_id) = self.connections.get(&conn).map(|c| c.app_id.clone()) else {
            return;
        };
        let Some(app) = self.config.apps.get(&app_id) else {
            return;
        };
        let verdict =
            produce::check_produce(frame, &app_id, app, &self.config, self.clock.unix_ms(now));
        let accepted = verdict.is_accepted();
        let msg_id = accepted.then(|| self.next_msg_id());
        let stream_id = frame.headers.stream_id.clone().filter(|s| !s.is_empty());
        let answer = match &stream_id {
            None => ProduceAnswer::NoStreamId,
            Some(_) if faults::take(&mut self.faults.withhold_produce_acks) => {
                ProduceAnswer::Withheld
            }
            Some(stream_id) => {
                let text = ProduceAck {
                    stream_id: stream_id.clone(),
                    msg_id: msg_id.as_ref().map(|m| m.as_str().to_owned()),
                    status: if accepted {
                        AckStatus::Success
                    } else {
                        AckStatus::Fail
                    },
                    code: Some(verdict.code.to_owned()),
                    error: verdict.error.map(str::to_owned),
                }
                .encode();
                match self.faults.delay_produce_acks {
                    Some(delay) => {
                        let at = now.checked_add(delay).unwrap_or(now);
                        self.add_timer(at, Timer::ProduceAck { conn, text });
                        ProduceAnswer::Delayed { at }
                    }
                    None => {
                        self.send_frame(conn, text);
                        ProduceAnswer::Sent
                    }
                }
            }
        };
        let data = frame.data.as_ref();
        self.event(ServerEvent::Produced {
            conn,
            stream_id,
            msg_api: data.and_then(|d| d.header.msg_api.clone()),
            verdict,
            msg_id,
            biz_content: data
                .and_then(|d| d.content)
                .filter(|_| accepted)
                .map(str::to_owned),
            answer,
        });
    }

    // ----- faults and hooks -----

    /// Replaces the armed faults.
    pub fn set_faults(&mut self, plan: FaultPlan) {
        self.faults = plan;
    }

    /// The armed faults (counters show what is left).
    pub fn faults(&self) -> &FaultPlan {
        &self.faults
    }

    /// The armed faults, to change one.
    pub fn faults_mut(&mut self) -> &mut FaultPlan {
        &mut self.faults
    }

    /// Makes PRODUCEs of `msg_api` fail with `failure` (or removes the hook with
    /// `None`), see [`ServerConfig::produce_failures`].
    pub fn set_produce_failure(&mut self, msg_api: &str, failure: Option<ProduceFailure>) {
        match failure {
            Some(f) => {
                self.config.produce_failures.insert(msg_api.to_owned(), f);
            }
            None => {
                self.config.produce_failures.remove(msg_api);
            }
        }
    }
}

#[cfg(test)]
mod tests;
