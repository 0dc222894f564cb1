//! A simulated-time driver that runs a [`ClientSession`] against a [`ServerSession`]
//! (quinn's `Pair::drive`, str0m's `progress()`): no sockets, no sleeps, a clock that
//! moves only when the test says so.
//!
//! The link between the two is simulated: new connections can be refused or left
//! unanswered, each direction of an open connection can silently drop everything
//! (half-open) and has its own delay queue, and frames for a client that does not
//! want to read wait in a per-connection buffer, like a TCP receive buffer.
//!
//! Every client event, client transmit and server event is recorded with a [`Stamp`]
//! (time and a global sequence number), and per message id: when the handler saw it,
//! when and how it completed, and every CONSUME_ACK the client transmitted.

// Each test binary uses a different part of the driver.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use alipay_msg_core::cert::{platform_cert_sn, root_cert_sn, Certificate};
use alipay_msg_core::charset::Charset;
use alipay_msg_core::client::{
    CheckJob, ClientConfig, ClientSession, ConnId, Credentials, Delivery, Event, Input, Outcome,
    Output, Transmit,
};
use alipay_msg_core::consume::{AckStatus, ConsumeAck};
use alipay_msg_core::endpoint::Endpoint;
use alipay_msg_core::frame::{Command, Frame, FrameLimits};
use alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_core::server::{
    AppRegistration, ConnectionId, MsgId, ServerConfig, ServerEvent, ServerInput, ServerOutput,
    ServerSession,
};
use alipay_msg_core::signature::{SignType, Signer, Verifier};
use alipay_msg_core::window::{WindowAnswer, WindowError, WindowOp, WindowQuery, HANDLED};
use alipay_msg_core::ws::handshake::ServerHandshake;
use alipay_msg_core::ws::{Role, WsConnection, WsEvent, WsLimits};
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Our app.
pub const APP: &str = "2021000000000001";
/// Another app the platform knows.
pub const OTHER_APP: &str = "2021000000000002";
/// Wall clock (ms) of both sides at `t0`.
pub const UNIX0: i64 = 1_795_430_400_000;
/// The simulated platform's port on 127.0.0.1.
pub const PORT: u16 = 18_080;
/// A message API the server accepts.
pub const API: &str = "alipay.open.app.openbizmock.message.send";
/// `drive` gives up (a livelock is a bug) after this many rounds without quiescing.
const MAX_ROUNDS: usize = 1_000_000;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

/// A test-vector file as text (cached: keys are read by every pair).
pub fn vector(rel: &str) -> String {
    static CACHE: OnceLock<std::sync::Mutex<HashMap<String, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap();
    cache
        .entry(rel.to_owned())
        .or_insert_with(|| {
            std::fs::read_to_string(format!("{VECTORS}/{rel}"))
                .unwrap_or_else(|e| panic!("{rel}: {e}"))
        })
        .clone()
}

/// Public-key-mode credentials of the app.
pub fn app_credentials() -> Credentials {
    Credentials::public_key(
        &vector("keys/app_private_pkcs1.pem"),
        &vector("keys/alipay_public.pem"),
    )
    .unwrap()
}

/// Credentials signing with a key the platform does not know for the app.
pub fn wrong_key_credentials() -> Credentials {
    Credentials::public_key(
        &vector("keys/alipay_private_pkcs1.pem"),
        &vector("keys/alipay_public.pem"),
    )
    .unwrap()
}

/// Certificate-mode credentials of the app.
pub fn cert_credentials() -> Credentials {
    Credentials::certificate(
        &vector("keys/app_private_pkcs1.pem"),
        &vector("certs/app_cert.crt"),
        &vector("certs/alipay_cert.crt"),
        &vector("certs/root_bundle_simple.crt"),
    )
    .unwrap()
}

/// The platform's signer (to build frames the server would not send by itself).
pub fn platform_signer() -> Signer {
    let key = PrivateKey::from_pem_or_base64(&vector("keys/alipay_private_pkcs1.pem")).unwrap();
    Signer::new(&key, SignType::Rsa2).unwrap()
}

/// The app's signer: a key that is not the platform's (a forger).
pub fn app_signer() -> Signer {
    let key = PrivateKey::from_pem_or_base64(&vector("keys/app_private_pkcs1.pem")).unwrap();
    Signer::new(&key, SignType::Rsa2).unwrap()
}

fn app_verifier() -> Verifier {
    Verifier::new(&PublicKey::from_pem_or_base64(&vector("keys/app_public.pem")).unwrap()).unwrap()
}

/// 32 seed bytes for a client session from a small seed.
pub fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes
}

/// The client configuration every pair starts from.
pub fn client_config(credentials: Credentials) -> ClientConfig {
    let mut config = ClientConfig::new(APP, credentials);
    config.endpoint = Endpoint::plain("127.0.0.1", PORT);
    // Retry until connected, however long the simulated outage (the give-up after
    // `first_connect_timeout` has its own tests, which set it).
    config.first_connect_timeout = None;
    config
}

/// The server configuration every pair starts from: our app (public-key mode) and
/// another one.
pub fn server_config() -> ServerConfig {
    let key = PrivateKey::from_pem_or_base64(&vector("keys/alipay_private_pkcs1.pem")).unwrap();
    ServerConfig::from_platform_key(&key)
        .unwrap()
        .with_app(APP, AppRegistration::new(app_verifier()))
        .with_app(OTHER_APP, AppRegistration::new(app_verifier()))
}

/// The server configuration of certificate mode: the app registered with its
/// certificate's key and SNs, the platform announcing its certificate SN.
pub fn server_config_cert_mode() -> ServerConfig {
    let app_cert = Certificate::from_pem(&vector("certs/app_cert.crt")).unwrap();
    let platform_chain = Certificate::all_from_pem(&vector("certs/alipay_cert.crt")).unwrap();
    let roots = Certificate::all_from_pem(&vector("certs/root_bundle_simple.crt")).unwrap();
    let mut config = server_config();
    config.platform_cert_sn = Some(platform_cert_sn(&platform_chain).unwrap());
    config.apps.insert(
        APP.to_owned(),
        AppRegistration::new(Verifier::new(&app_cert.public_key().unwrap()).unwrap())
            .with_cert_sns(&app_cert.sn(), Some(&root_cert_sn(&roots).unwrap())),
    );
    config
}

// ----- what the driver records ---------------------------------------------------------

/// When something happened: the simulated time and a global sequence number (several
/// things happen at the same instant; the sequence orders them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    /// The sequence number.
    pub seq: u64,
    /// The simulated time.
    pub at: Instant,
}

/// One CONSUME_ACK the client transmitted.
#[derive(Debug, Clone)]
pub struct AckSent {
    /// When.
    pub stamp: Stamp,
    /// SUCCESS or FAIL.
    pub status: AckStatus,
    /// The connection it was written to (`None`: no connection).
    pub conn: Option<ConnectionId>,
    /// The link lost it (half-open).
    pub dropped: bool,
}

/// Everything about one message id.
#[derive(Debug, Clone, Default)]
pub struct MsgRecord {
    /// Each `Event::Message` the handler saw.
    pub handled: Vec<Stamp>,
    /// Each completion reported to the client, with its outcome.
    pub completed: Vec<(Stamp, Outcome)>,
    /// Each CONSUME_ACK the client transmitted.
    pub acks: Vec<AckSent>,
    /// Each `Event::Duplicate` (`in_flight` flag).
    pub duplicates: Vec<(Stamp, bool)>,
    /// Each `Event::Rejected` naming this id.
    pub rejected: Vec<Stamp>,
}

impl MsgRecord {
    /// Completions with `Outcome::Success`.
    pub fn successes(&self) -> usize {
        self.completed
            .iter()
            .filter(|(_, o)| *o == Outcome::Success)
            .count()
    }

    /// Acks with the given status.
    pub fn acks_with(&self, status: AckStatus) -> usize {
        self.acks.iter().filter(|a| a.status == status).count()
    }

    /// No SUCCESS ack was transmitted before the handler's first success.
    pub fn no_success_ack_before_success(&self) -> bool {
        let first_success = self
            .completed
            .iter()
            .find(|(_, o)| *o == Outcome::Success)
            .map(|(s, _)| *s);
        self.acks
            .iter()
            .filter(|a| a.status == AckStatus::Success)
            .all(|a| first_success.is_some_and(|s| s < a.stamp))
    }
}

// ----- the handler ---------------------------------------------------------------------

/// What the handler does with a message that is not scheduled to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Complete with `Success` at once.
    Succeed,
    /// Keep the delivery; the test completes it ([`Pair::complete`]).
    Hold,
}

/// The application's handler for `Event::Message`.
#[derive(Debug, Clone)]
pub struct Handler {
    /// What to do once the failures are used up.
    pub policy: Policy,
    /// Fail the first N deliveries of every message id (unless `fail_plan` names it).
    pub fail_first: u32,
    /// Fail the first N deliveries of these message ids.
    pub fail_plan: HashMap<String, u32>,
    /// How long the handler takes: outcomes (other than held ones) are reported this
    /// long after the delivery (zero: at once).
    pub latency: Duration,
    /// Failures given so far per message id.
    failures_done: HashMap<String, u32>,
}

impl Default for Handler {
    fn default() -> Self {
        Handler {
            policy: Policy::Succeed,
            fail_first: 0,
            fail_plan: HashMap::new(),
            latency: Duration::ZERO,
            failures_done: HashMap::new(),
        }
    }
}

impl Handler {
    /// `Some(outcome)` to complete now, `None` to hold.
    fn decide(&mut self, msg_id: &str) -> Option<Outcome> {
        let planned = self
            .fail_plan
            .get(msg_id)
            .copied()
            .unwrap_or(self.fail_first);
        let done = self.failures_done.entry(msg_id.to_owned()).or_default();
        if *done < planned {
            *done += 1;
            return Some(Outcome::Failure(format!("planned failure {done}")));
        }
        match self.policy {
            Policy::Succeed => Some(Outcome::Success),
            Policy::Hold => None,
        }
    }
}

// ----- the link --------------------------------------------------------------------------

/// How `register.do` requests are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterMode {
    /// By the server session.
    Answer,
    /// Never (no answer, no end of stream): the attempt can only time out.
    Silent,
    /// The TCP connect fails (`handle_http_failed`).
    NetworkError,
    /// An HTTP error status with an empty body (e.g. 503 from a proxy).
    Status(u16),
}

/// How websocket upgrades are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeMode {
    /// By the server session (`accept_upgrade`).
    Answer,
    /// Never: the attempt can only time out.
    Silent,
    /// The TCP connect fails (`handle_ws_failed`).
    NetworkError,
}

/// The simulated network.
#[derive(Debug, Clone)]
pub struct Net {
    /// register.do.
    pub register: RegisterMode,
    /// The upgrade.
    pub upgrade: UpgradeMode,
    /// Client → server delay of an open connection.
    pub delay_c2s: Duration,
    /// Server → client delay of an open connection.
    pub delay_s2c: Duration,
    /// Connections whose client → server packets are silently dropped.
    pub dead_c2s: HashSet<ConnectionId>,
    /// Connections whose server → client packets are silently dropped.
    pub dead_s2c: HashSet<ConnectionId>,
}

impl Default for Net {
    fn default() -> Self {
        Net {
            register: RegisterMode::Answer,
            upgrade: UpgradeMode::Answer,
            delay_c2s: Duration::ZERO,
            delay_s2c: Duration::ZERO,
            dead_c2s: HashSet::new(),
            dead_s2c: HashSet::new(),
        }
    }
}

/// What the client wrote, as the platform side decoded it from the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum C2s {
    /// A `register.do` request (the whole HTTP request, as text).
    Register(String),
    /// A websocket upgrade request: its target and header fields.
    Upgrade {
        /// Path and query.
        target: String,
        /// Header fields (name as sent, value lossily decoded).
        headers: Vec<(String, String)>,
    },
    /// A text frame, decoded in the connection's charset.
    Text(String),
    /// A ping.
    Ping,
    /// A pong (the answer to a platform ping), with its payload.
    Pong(Vec<u8>),
    /// The client left a websocket (Close frame or connection closed), or abandoned an
    /// attempt before its answer came.
    Close,
}

/// What travels client → server on an open websocket.
#[derive(Debug, Clone)]
enum Wire {
    /// Bytes the client wrote.
    Bytes(Vec<u8>),
    /// The client closed the connection.
    Close,
}

#[derive(Debug, Clone)]
enum S2c {
    /// Bytes the platform wrote (or a test injects).
    Bytes(Vec<u8>),
    /// The platform closed the connection.
    Close,
}

/// Which of the client's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkKind {
    Register,
    Upgrade,
}

/// One client connection: the server session's id of it, and what the harness decodes
/// of the client's bytes for [`Pair::transmits`] (the server session decodes them too).
struct Link {
    /// The server session's id of the connection.
    server: ConnectionId,
    /// Register or upgrade: decided at connect time (for the network modes), checked
    /// against the request.
    kind: LinkKind,
    /// A server-role websocket reading the client's frames (for the record), once the
    /// upgrade request is written.
    tee: Option<WsConnection>,
    /// The upgrade request's charset.
    charset: Charset,
    /// The server answered `101`: the connection is the client's websocket, on the
    /// delayed, lossy part of the link.
    upgraded: bool,
    /// The server answered register.do with 200.
    answered: bool,
    /// The client's leaving was handled.
    left: bool,
}

// ----- the pair --------------------------------------------------------------------------

/// Builds a [`Pair`].
pub struct PairBuilder {
    /// The client configuration.
    pub client: ClientConfig,
    /// The server configuration.
    pub server: ServerConfig,
    /// Seeds both sides' randomness.
    pub seed: u64,
    /// Added to the client's wall clock (the server's reads [`UNIX0`] at `t0`).
    pub client_clock_offset_ms: i64,
}

impl PairBuilder {
    /// Adjusts the client configuration.
    pub fn client(mut self, f: impl FnOnce(&mut ClientConfig)) -> Self {
        f(&mut self.client);
        self
    }

    /// Adjusts the server configuration.
    pub fn server(mut self, f: impl FnOnce(&mut ServerConfig)) -> Self {
        f(&mut self.server);
        self
    }

    /// Certificate mode on both sides (replaces the server configuration: call before
    /// [`PairBuilder::server`]).
    pub fn cert_mode(mut self) -> Self {
        self.client.credentials = cert_credentials();
        self.server = server_config_cert_mode();
        self
    }

    /// The seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The client's wall clock runs `offset_ms` ahead of the server's.
    pub fn client_clock_offset_ms(mut self, offset_ms: i64) -> Self {
        self.client_clock_offset_ms = offset_ms;
        self
    }

    /// The pair at `t0`; the client's first attempt is queued, nothing driven yet.
    pub fn build(self) -> Pair {
        let t0 = Instant::now();
        let client = ClientSession::new(
            self.client,
            seed_bytes(self.seed),
            t0,
            UNIX0 + self.client_clock_offset_ms,
        )
        .expect("valid client configuration");
        let server = ServerSession::new(
            self.server,
            Box::new(Xoshiro256PlusPlus::seed_from_u64(self.seed ^ 0x5eed)),
            t0,
            UNIX0,
        );
        Pair {
            client,
            server,
            t0,
            now: t0,
            net: Net::default(),
            handler: Handler::default(),
            held: Vec::new(),
            running: VecDeque::new(),
            client_conn: None,
            client_ws: None,
            links: HashMap::new(),
            upgrade_next: false,
            by_server: HashMap::new(),
            jobs: Vec::new(),
            jobs_handed_out: 0,
            coalesce_reads: false,
            c2s: VecDeque::new(),
            s2c: VecDeque::new(),
            stale: Vec::new(),
            client_deadline: None,
            client_done: false,
            seq: 0,
            client_events: Vec::new(),
            transmits: Vec::new(),
            server_events: Vec::new(),
            msgs: BTreeMap::new(),
            register_replies: 0,
            window: MemWindow::default(),
            window_mode: WindowMode::Answer,
            window_queue: Vec::new(),
            window_log: Vec::new(),
            window_answers: Vec::new(),
        }
    }
}

/// A client and a server session, the link between them and everything that happened.
pub struct Pair {
    /// The client under test.
    pub client: ClientSession,
    /// The simulated platform.
    pub server: ServerSession,
    /// Start time.
    pub t0: Instant,
    /// Simulated now.
    pub now: Instant,
    /// The network.
    pub net: Net,
    /// The application's handler.
    pub handler: Handler,
    /// Deliveries the handler holds ([`Policy::Hold`]).
    pub held: Vec<Delivery>,
    /// Outcomes the handler reports later ([`Handler::latency`]), in time order.
    running: VecDeque<(Instant, Delivery, Outcome)>,
    /// The server's id of the client's open websocket.
    pub client_conn: Option<ConnectionId>,
    /// The client's id of its open websocket.
    pub client_ws: Option<ConnId>,
    /// Each client connection the harness knows.
    links: HashMap<ConnId, Link>,
    /// The client's id of each server connection.
    by_server: HashMap<ConnectionId, ConnId>,
    /// The client's last output closed an answered register connection: its next
    /// `Connect` is the upgrade.
    upgrade_next: bool,
    /// Check jobs handed out, returned in reverse order at the next quiet point.
    jobs: Vec<CheckJob>,
    /// How many check jobs the client has handed out in all.
    pub jobs_handed_out: usize,
    /// Hand the client every byte the platform has written so far in one read (as a
    /// socket read does after a burst), instead of one frame per read.
    pub coalesce_reads: bool,
    c2s: VecDeque<(Instant, ConnectionId, Wire)>,
    /// Frames for the client's connection (the TCP buffer), in order.
    s2c: VecDeque<(Instant, S2c)>,
    /// Connections the client closed while their close could not reach the server.
    stale: Vec<ConnectionId>,
    /// The client's last `Output::Timeout`.
    pub client_deadline: Option<Instant>,
    /// The client answered `Output::Done`.
    pub client_done: bool,
    seq: u64,
    /// Every client event.
    pub client_events: Vec<(Stamp, Event)>,
    /// Everything the client wrote, as the platform side decoded it.
    pub transmits: Vec<(Stamp, C2s)>,
    /// Every server event.
    pub server_events: Vec<(Stamp, ServerEvent)>,
    /// Per message id.
    pub msgs: BTreeMap<String, MsgRecord>,
    /// register.do answers the server gave.
    pub register_replies: usize,
    /// The shared duplicate window's store (in memory, on simulated time).
    pub window: MemWindow,
    /// How the store answers.
    pub window_mode: WindowMode,
    /// Queries not answered yet (kept while [`WindowMode::Hold`]).
    pub window_queue: Vec<WindowQuery>,
    /// Every query the client asked, when, and what it was answered (when).
    pub window_log: Vec<(Stamp, WindowQuery)>,
    /// Every answer fed back.
    pub window_answers: Vec<(Stamp, WindowQuery, Result<WindowAnswer, WindowError>)>,
}

/// How the simulated shared store answers [`Output::Window`] queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowMode {
    /// From [`Pair::window`], at the next quiet point.
    Answer,
    /// Not yet: the test answers with [`Pair::answer_window`].
    Hold,
    /// The store is unreachable: every query is answered with an error.
    Down,
}

/// An in-memory shared store with the semantics of `alipay-msg-redis` (keys with
/// expiry on simulated time).
#[derive(Debug, Default, Clone)]
pub struct MemWindow {
    /// Rendered key → (value, expires at).
    pub entries: HashMap<String, (String, Instant)>,
}

impl MemWindow {
    /// The value of `key` at `now`.
    pub fn get(&self, key: &str, now: Instant) -> Option<&str> {
        self.entries
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v.as_str())
    }

    /// Sets `key` to `value` for `ttl`.
    pub fn set(&mut self, key: &str, value: &str, ttl: Duration, now: Instant) {
        self.entries
            .insert(key.to_owned(), (value.to_owned(), now + ttl));
    }

    /// Answers one query.
    pub fn answer(&mut self, query: &WindowQuery, now: Instant) -> WindowAnswer {
        let key = query.key.render("test");
        match &query.op {
            WindowOp::Claim { token, lease } => match self.get(&key, now) {
                None => {
                    self.set(&key, token, *lease, now);
                    WindowAnswer::Claimed
                }
                Some(HANDLED) => WindowAnswer::Handled,
                Some(_) => WindowAnswer::Held,
            },
            WindowOp::Record { window } => {
                self.set(&key, HANDLED, *window, now);
                WindowAnswer::Recorded
            }
            WindowOp::Release { token } => {
                if self.get(&key, now) == Some(token.as_str()) {
                    self.entries.remove(&key);
                }
                WindowAnswer::Released
            }
        }
    }
}

impl Default for Pair {
    fn default() -> Self {
        Pair::builder().build()
    }
}

impl Pair {
    /// A builder with the default configurations (plain 127.0.0.1 endpoint, our app
    /// registered, seed 1).
    pub fn builder() -> PairBuilder {
        PairBuilder {
            client: client_config(app_credentials()),
            server: server_config(),
            seed: 1,
            client_clock_offset_ms: 0,
        }
    }

    /// A default pair, driven until connected.
    pub fn connected() -> Pair {
        let mut pair = Pair::default();
        pair.connect();
        pair
    }

    /// Drives and checks the client is connected.
    pub fn connect(&mut self) {
        self.drive();
        assert!(
            self.client.is_connected(),
            "not connected: {:?}",
            self.client
        );
    }

    fn stamp(&mut self) -> Stamp {
        self.seq += 1;
        Stamp {
            seq: self.seq,
            at: self.now,
        }
    }

    /// A stamp for "now", to look at what happens after it.
    pub fn mark(&mut self) -> Stamp {
        self.stamp()
    }

    /// Simulated time since `t0`.
    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// The record of a message id.
    pub fn msg(&self, msg_id: &str) -> MsgRecord {
        self.msgs.get(msg_id).cloned().unwrap_or_default()
    }

    // ----- the loop ----------------------------------------------------------------------

    /// Runs both sessions and the link until nothing more happens at `now`.
    pub fn drive(&mut self) {
        for _ in 0..MAX_ROUNDS {
            let mut progress = self.pump_client();
            progress |= self.pump_server();
            if progress {
                continue;
            }
            if self.deliver_c2s() || self.deliver_s2c() {
                continue;
            }
            if !self.jobs.is_empty() {
                // Out of order: the last job handed out comes back first.
                let checker = self.client.frame_checker();
                for job in std::mem::take(&mut self.jobs).into_iter().rev() {
                    let checked = checker.run(job);
                    self.client.handle_input(Input::Checked(checked), self.now);
                }
                continue;
            }
            if !self.window_queue.is_empty() && self.window_mode != WindowMode::Hold {
                for query in std::mem::take(&mut self.window_queue) {
                    let answer = match self.window_mode {
                        WindowMode::Down => Err(WindowError("connection refused".into())),
                        _ => Ok(self.window.answer(&query, self.now)),
                    };
                    self.feed_window(query, answer);
                }
                continue;
            }
            if self
                .running
                .front()
                .is_some_and(|(at, _, _)| *at <= self.now)
            {
                let (_, delivery, outcome) = self.running.pop_front().expect("checked");
                self.complete_delivery(&delivery, outcome);
                continue;
            }
            if !self.client_done && self.client_deadline.is_some_and(|d| d <= self.now) {
                self.client.handle_timeout(self.now);
                continue;
            }
            if self.server.poll_timeout().is_some_and(|d| d <= self.now) {
                self.server.handle_timeout(self.now);
                continue;
            }
            return;
        }
        panic!("drive did not quiesce at {:?}", self.elapsed());
    }

    /// Moves time forward by `d`, stopping at every timer and delivery on the way.
    pub fn advance(&mut self, d: Duration) {
        self.advance_to(self.now + d);
    }

    /// Moves time forward to `target`, stopping at every timer and delivery on the way.
    pub fn advance_to(&mut self, target: Instant) {
        self.drive();
        while let Some(next) = self.next_wakeup().filter(|t| *t <= target) {
            assert!(
                next > self.now,
                "wakeup {next:?} not after now {:?}: drive left work undone",
                self.now
            );
            self.now = next;
            self.drive();
        }
        self.now = self.now.max(target);
        self.drive();
    }

    /// The next instant something is due: a client or server timer, or a frame in
    /// transit that can be delivered.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let client = self.client_deadline.filter(|_| !self.client_done);
        let c2s = self.c2s.front().map(|(at, _, _)| *at);
        let s2c = self
            .s2c
            .front()
            .filter(|(_, item)| matches!(item, S2c::Close) || self.client.wants_read())
            .map(|(at, _)| *at);
        let handler = self.running.front().map(|(at, _, _)| *at);
        [client, self.server.poll_timeout(), c2s, s2c, handler]
            .into_iter()
            .flatten()
            .min()
    }

    /// Polls the client until `Timeout`/`Done`; `true` when it output anything else.
    fn pump_client(&mut self) -> bool {
        let mut progress = false;
        loop {
            match self.client.poll_output() {
                Output::Transmit(t) => {
                    progress = true;
                    self.on_transmit(t);
                }
                Output::Check(job) => {
                    progress = true;
                    self.jobs_handed_out += 1;
                    self.jobs.push(job);
                }
                Output::Window(query) => {
                    progress = true;
                    let stamp = self.stamp();
                    self.window_log.push((stamp, query.clone()));
                    self.window_queue.push(query);
                }
                Output::Event(e) => {
                    progress = true;
                    self.upgrade_next = false;
                    self.on_event(e);
                }
                Output::Timeout(at) => {
                    self.client_deadline = Some(at);
                    return progress;
                }
                Output::Done => {
                    self.client_deadline = None;
                    self.client_done = true;
                    return progress;
                }
                other => panic!("unexpected client output {other:?}"),
            }
        }
    }

    fn on_event(&mut self, event: Event) {
        let stamp = self.stamp();
        match &event {
            Event::Message(delivery) => {
                let delivery = delivery.clone();
                let msg_id = delivery.msg_id().to_owned();
                self.msgs
                    .entry(msg_id.clone())
                    .or_default()
                    .handled
                    .push(stamp);
                self.client_events.push((stamp, event));
                match self.handler.decide(&msg_id) {
                    Some(outcome) if self.handler.latency.is_zero() => {
                        self.complete_delivery(&delivery, outcome)
                    }
                    Some(outcome) => {
                        let at = self.now + self.handler.latency;
                        self.running.push_back((at, delivery, outcome));
                    }
                    None => self.held.push(delivery),
                }
                return;
            }
            Event::Duplicate { msg_id, in_flight } => {
                self.msgs
                    .entry(msg_id.clone())
                    .or_default()
                    .duplicates
                    .push((stamp, *in_flight));
            }
            Event::Rejected {
                msg_id: Some(msg_id),
                ..
            } => {
                self.msgs
                    .entry(msg_id.clone())
                    .or_default()
                    .rejected
                    .push(stamp);
            }
            _ => {}
        }
        self.client_events.push((stamp, event));
    }

    fn complete_delivery(&mut self, delivery: &Delivery, outcome: Outcome) {
        let stamp = self.stamp();
        self.msgs
            .entry(delivery.msg_id().to_owned())
            .or_default()
            .completed
            .push((stamp, outcome.clone()));
        self.client
            .complete(delivery.id, outcome, self.now)
            .expect("a delivery the client handed out");
    }

    /// Feeds one answer to the client (no driving).
    fn feed_window(&mut self, query: WindowQuery, answer: Result<WindowAnswer, WindowError>) {
        let stamp = self.stamp();
        self.window_answers
            .push((stamp, query.clone(), answer.clone()));
        self.client.handle_input(
            Input::WindowAnswered {
                id: query.id,
                answer,
            },
            self.now,
        );
    }

    /// Answers the held queries: each with `f(store, query)` (e.g. the store's own
    /// answer, or an error), then drives.
    pub fn answer_window(
        &mut self,
        mut f: impl FnMut(&mut MemWindow, &WindowQuery, Instant) -> Result<WindowAnswer, WindowError>,
    ) {
        for query in std::mem::take(&mut self.window_queue) {
            let answer = f(&mut self.window, &query, self.now);
            self.feed_window(query, answer);
        }
        self.drive();
    }

    /// Completes a held delivery of `msg_id` (the oldest) and drives.
    pub fn complete(&mut self, msg_id: &str, outcome: Outcome) {
        let index = self
            .held
            .iter()
            .position(|d| d.msg_id() == msg_id)
            .unwrap_or_else(|| panic!("no held delivery of {msg_id}"));
        let delivery = self.held.remove(index);
        self.complete_delivery(&delivery, outcome);
        self.drive();
    }

    fn record(&mut self, c2s: C2s) -> Stamp {
        let stamp = self.stamp();
        self.transmits.push((stamp, c2s));
        stamp
    }

    fn input(&mut self, input: Input<'_>) {
        self.client.handle_input(input, self.now);
    }

    fn on_transmit(&mut self, t: Transmit) {
        let upgrade_next = std::mem::take(&mut self.upgrade_next);
        match t {
            Transmit::Connect {
                conn,
                host,
                port,
                tls,
            } => {
                assert_eq!((host.as_str(), port, tls), ("127.0.0.1", PORT, false));
                let kind = if upgrade_next {
                    LinkKind::Upgrade
                } else {
                    LinkKind::Register
                };
                let refused = match kind {
                    LinkKind::Register => self.net.register == RegisterMode::NetworkError,
                    LinkKind::Upgrade => self.net.upgrade == UpgradeMode::NetworkError,
                };
                if refused {
                    let error = std::io::ErrorKind::ConnectionRefused;
                    self.input(Input::ConnectFailed {
                        conn,
                        error: error.into(),
                    });
                    return;
                }
                let server = self.server.accept(self.now).expect("below max_links");
                self.by_server.insert(server, conn);
                self.links.insert(
                    conn,
                    Link {
                        server,
                        kind,
                        tee: None,
                        charset: Charset::Utf8,
                        upgraded: false,
                        answered: false,
                        left: false,
                    },
                );
                self.input(Input::Connected(conn));
            }
            Transmit::Write { conn, bytes } => {
                let Some(link) = self.links.get(&conn) else {
                    panic!("write on {conn}, which the client never connected")
                };
                let (server, kind, upgraded) = (link.server, link.kind, link.upgraded);
                if upgraded {
                    // Forwarded first: what the record sees may end the connection.
                    self.send_to_server(server, Wire::Bytes(bytes.clone()));
                    self.record_frames(conn, &bytes);
                    return;
                }
                match kind {
                    LinkKind::Register => self.record_register(&bytes),
                    LinkKind::Upgrade => self.record_upgrade(conn, &bytes),
                }
                let answer = match kind {
                    LinkKind::Register => match self.net.register {
                        RegisterMode::Answer => true,
                        RegisterMode::Silent => false,
                        RegisterMode::NetworkError => unreachable!("refused at connect"),
                        RegisterMode::Status(status) => {
                            let bytes = format!(
                                "HTTP/1.1 {status} Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            );
                            self.input(Input::Bytes {
                                conn,
                                bytes: bytes.as_bytes(),
                            });
                            self.input(Input::Closed { conn, error: None });
                            false
                        }
                    },
                    LinkKind::Upgrade => match self.net.upgrade {
                        UpgradeMode::Answer => true,
                        UpgradeMode::Silent => false,
                        UpgradeMode::NetworkError => unreachable!("refused at connect"),
                    },
                };
                if answer {
                    let input = ServerInput::Bytes {
                        conn: server,
                        bytes: &bytes,
                    };
                    self.server.handle_input(input, self.now);
                }
            }
            Transmit::Close { conn } => {
                let Some(link) = self.links.remove(&conn) else {
                    return;
                };
                if !link.upgraded {
                    // The server forgets it (it may have already).
                    let input = ServerInput::Closed {
                        conn: link.server,
                        error: None,
                    };
                    self.server.handle_input(input, self.now);
                }
                match link.kind {
                    LinkKind::Register if link.answered => self.upgrade_next = true,
                    _ if link.left => {}
                    // The attempt is abandoned, or the websocket closed.
                    _ => {
                        self.record(C2s::Close);
                        self.client_left(conn);
                    }
                }
            }
            other => panic!("unexpected transmit {other:?}"),
        }
    }

    /// Records a `register.do` request.
    fn record_register(&mut self, bytes: &[u8]) {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        let status = request.parse(bytes).expect("an HTTP request");
        assert!(status.is_complete(), "the whole request in one write");
        assert_eq!(request.method, Some("GET"));
        let text = String::from_utf8(bytes.to_vec()).expect("register request is ASCII");
        self.record(C2s::Register(text));
    }

    /// Records a websocket upgrade request, and starts reading the client's frames.
    fn record_upgrade(&mut self, conn: ConnId, bytes: &[u8]) {
        let upgrade = ServerHandshake::new()
            .read(bytes)
            .expect("a valid upgrade request")
            .expect("the whole request in one write");
        assert_eq!(upgrade.consumed, bytes.len(), "no frames before the answer");
        let target = upgrade.path_and_query.clone();
        let headers: Vec<(String, String)> = upgrade
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        let charset = target
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("charset="))
            .and_then(|c| c.parse().ok())
            .unwrap_or(Charset::Utf8);
        if let Some(link) = self.links.get_mut(&conn) {
            link.charset = charset;
            let limits = WsLimits {
                max_message_bytes: usize::MAX / 2,
            };
            link.tee = Some(WsConnection::new(Role::Server, limits));
        }
        self.record(C2s::Upgrade { target, headers });
    }

    /// Records the websocket frames the client wrote.
    fn record_frames(&mut self, conn: ConnId, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let link = self.links.get_mut(&conn).expect("known link");
            let charset = link.charset;
            let server = link.server;
            let ws = link.tee.as_mut().expect("upgraded");
            let (used, event) = ws.read(bytes).expect("the client writes valid frames");
            bytes = &bytes[used..];
            let pong = ws.poll_transmit([0; 4]);
            match event {
                None => {}
                Some(WsEvent::Text(payload)) => {
                    let text = charset
                        .decode_strict(&payload)
                        .expect("the client writes text in its charset")
                        .into_owned();
                    let stamp = self.record(C2s::Text(text.clone()));
                    if let Some(ack) = parse_consume_ack(&text) {
                        let current = self.client_conn == Some(server);
                        let dropped = !current || self.net.dead_c2s.contains(&server);
                        self.msgs
                            .entry(ack.msg_id.clone())
                            .or_default()
                            .acks
                            .push(AckSent {
                                stamp,
                                status: ack.status,
                                conn: self.client_conn,
                                dropped,
                            });
                    }
                }
                Some(WsEvent::Closed { .. }) => {
                    if let Some(link) = self.links.get_mut(&conn) {
                        link.left = true;
                    }
                    self.record(C2s::Close);
                    self.client_left(conn);
                }
                Some(WsEvent::Pong(payload)) => {
                    self.record(C2s::Pong(payload));
                }
                Some(other) => panic!("unexpected client frame {other:?}"),
            }
            // A ping is seen by the pong it asks for (not the close echo).
            if pong.is_some_and(|frame| frame.first() == Some(&0x8a)) {
                self.record(C2s::Ping);
            }
        }
    }

    /// The client left its websocket `conn` (or abandoned an attempt).
    fn client_left(&mut self, conn: ConnId) {
        if self.client_ws != Some(conn) {
            return;
        }
        self.client_ws = None;
        if let Some(server_conn) = self.client_conn.take() {
            self.s2c.clear();
            if self.net.dead_c2s.contains(&server_conn) {
                self.stale.push(server_conn);
            } else {
                let at = self.now + self.net.delay_c2s;
                self.c2s.push_back((at, server_conn, Wire::Close));
            }
        }
    }

    /// Puts client bytes on the websocket's link, unless it is the client's current one
    /// and loses them (half-open).
    fn send_to_server(&mut self, server: ConnectionId, item: Wire) {
        if self.client_conn == Some(server) && !self.net.dead_c2s.contains(&server) {
            let at = self.now + self.net.delay_c2s;
            self.c2s.push_back((at, server, item));
        }
    }

    /// Polls the server until `None`; `true` when it output anything.
    fn pump_server(&mut self) -> bool {
        let mut progress = false;
        while let Some(out) = self.server.poll_output() {
            progress = true;
            match out {
                ServerOutput::Write { conn, bytes } => self.server_wrote(conn, bytes),
                ServerOutput::Close { conn } => self.server_closed(conn),
                ServerOutput::Event(e) => {
                    let stamp = self.stamp();
                    self.server_events.push((stamp, e));
                }
                other => panic!("unexpected server output {other:?}"),
            }
        }
        progress
    }

    /// Bytes the server wrote on `server`: before the upgrade straight to the client
    /// (register answers in two pieces, as a socket may deliver them), after it through
    /// the link.
    fn server_wrote(&mut self, server: ConnectionId, bytes: Vec<u8>) {
        let Some(&conn) = self.by_server.get(&server) else {
            return;
        };
        let Some(link) = self.links.get_mut(&conn) else {
            // The client closed it.
            return;
        };
        if link.upgraded {
            if self.client_conn == Some(server) && !self.net.dead_s2c.contains(&server) {
                let at = self.now + self.net.delay_s2c;
                self.s2c.push_back((at, S2c::Bytes(bytes)));
            }
            return;
        }
        match link.kind {
            LinkKind::Register => {
                self.register_replies += 1;
                link.answered = bytes.starts_with(b"HTTP/1.1 200 ");
                let (a, b) = bytes.split_at(bytes.len() / 2);
                self.input(Input::Bytes { conn, bytes: a });
                self.input(Input::Bytes { conn, bytes: b });
            }
            LinkKind::Upgrade => {
                if bytes.starts_with(b"HTTP/1.1 101 ") {
                    link.upgraded = true;
                    self.client_conn = Some(server);
                    self.client_ws = Some(conn);
                    self.s2c.clear();
                }
                self.input(Input::Bytes {
                    conn,
                    bytes: &bytes,
                });
            }
        }
    }

    /// The server closed `server`: before the upgrade at once, after it through the
    /// link.
    fn server_closed(&mut self, server: ConnectionId) {
        let Some(&conn) = self.by_server.get(&server) else {
            return;
        };
        let Some(link) = self.links.get(&conn) else {
            return;
        };
        if !link.upgraded {
            self.input(Input::Closed { conn, error: None });
        } else if self.client_conn == Some(server) && !self.net.dead_s2c.contains(&server) {
            let at = self.now + self.net.delay_s2c;
            self.s2c.push_back((at, S2c::Close));
        }
        // Otherwise the client is gone from that connection (or the link eats it).
    }

    /// Delivers the first due client → server item.
    fn deliver_c2s(&mut self) -> bool {
        if self.c2s.front().is_none_or(|(at, _, _)| *at > self.now) {
            return false;
        }
        let (_, conn, item) = self.c2s.pop_front().expect("checked");
        let input = match &item {
            Wire::Bytes(bytes) => ServerInput::Bytes { conn, bytes },
            Wire::Close => ServerInput::Closed { conn, error: None },
        };
        self.server.handle_input(input, self.now);
        true
    }

    /// Delivers the first due server → client item, unless the client does not want
    /// to read (it then waits, and so does everything behind it, as in a TCP buffer).
    fn deliver_s2c(&mut self) -> bool {
        let ready = match self.s2c.front() {
            Some((at, S2c::Close)) => *at <= self.now,
            Some((at, _)) => *at <= self.now && self.client.wants_read(),
            None => false,
        };
        if !ready {
            return false;
        }
        let (_, item) = self.s2c.pop_front().expect("checked");
        let Some(conn) = self.client_ws else {
            return true;
        };
        match item {
            S2c::Bytes(mut bytes) => {
                while self.coalesce_reads {
                    match self.s2c.front() {
                        Some((at, S2c::Bytes(more))) if *at <= self.now => {
                            bytes.extend_from_slice(more);
                            self.s2c.pop_front();
                        }
                        _ => break,
                    }
                }
                self.input(Input::Bytes {
                    conn,
                    bytes: &bytes,
                })
            }
            S2c::Close => {
                self.client_conn = None;
                self.client_ws = None;
                self.s2c.clear();
                if let Some(link) = self.links.get_mut(&conn) {
                    link.left = true;
                }
                self.input(Input::Closed { conn, error: None });
            }
        }
        true
    }

    // ----- what tests do to the link ---------------------------------------------------

    /// The link under the open connection breaks: both sides see the close at once;
    /// whatever was in transit on it is lost.
    pub fn drop_connection(&mut self) {
        self.drive();
        if let Some(conn) = self.client_conn.take() {
            self.s2c.clear();
            self.c2s.retain(|(_, c, _)| *c != conn);
            if let Some(ws) = self.client_ws.take() {
                if let Some(link) = self.links.get_mut(&ws) {
                    link.left = true;
                }
                let error = Some(std::io::ErrorKind::ConnectionReset);
                self.input(Input::Closed { conn: ws, error });
            }
            let error = Some(std::io::ErrorKind::ConnectionReset);
            self.server
                .handle_input(ServerInput::Closed { conn, error }, self.now);
        }
        self.drive();
    }

    /// The open connection turns half-open: packets in the chosen directions are
    /// silently dropped (new connections are not affected).
    pub fn half_open(&mut self, c2s: bool, s2c: bool) {
        self.drive();
        let conn = self.client_conn.expect("an open connection");
        if c2s {
            self.net.dead_c2s.insert(conn);
            self.c2s.retain(|(_, c, _)| *c != conn);
        }
        if s2c {
            self.net.dead_s2c.insert(conn);
            self.s2c.clear();
        }
    }

    /// Half-open connections work again. Server connections the client has left are
    /// reset (the server sees them close).
    pub fn heal(&mut self) {
        self.net.dead_c2s.clear();
        self.net.dead_s2c.clear();
        let mut gone: Vec<ConnectionId> = std::mem::take(&mut self.stale);
        gone.extend(
            self.server
                .connections_of(APP)
                .into_iter()
                .filter(|c| Some(*c) != self.client_conn),
        );
        for conn in gone {
            let error = Some(std::io::ErrorKind::ConnectionReset);
            self.server
                .handle_input(ServerInput::Closed { conn, error }, self.now);
        }
        self.drive();
    }

    /// A frame as if the platform sent it on the client's connection, in the
    /// connection's charset.
    pub fn inject(&mut self, text: String) {
        let charset = self
            .client_conn
            .and_then(|c| self.server.connection_charset(c))
            .unwrap_or(Charset::Utf8);
        let bytes = Pair::server_ws()
            .encode_text(&charset.encode(&text), [0; 4])
            .expect("a new websocket is open");
        self.inject_bytes(bytes);
    }

    /// Raw bytes as if the platform wrote them on the client's websocket.
    pub fn inject_bytes(&mut self, bytes: Vec<u8>) {
        self.s2c.push_back((self.now, S2c::Bytes(bytes)));
        self.drive();
    }

    /// A server-role websocket (unmasked frames) to encode frames for
    /// [`Pair::inject_bytes`].
    pub fn server_ws() -> WsConnection {
        WsConnection::new(Role::Server, WsLimits::default())
    }

    /// Pushes `n` messages (`{"n":i}`) and drives; returns their ids.
    pub fn push(&mut self, n: usize) -> Vec<MsgId> {
        let ids = (0..n)
            .map(|i| {
                self.server
                    .push(APP, API, &format!("{{\"n\":{i}}}"), self.now)
                    .expect("push")
            })
            .collect();
        self.drive();
        ids
    }

    // ----- queries ---------------------------------------------------------------------

    /// Client events after `since`.
    pub fn events_after(&self, since: Stamp) -> impl Iterator<Item = &(Stamp, Event)> {
        self.client_events.iter().filter(move |(s, _)| *s > since)
    }

    /// Client transmits after `since`.
    pub fn transmits_after(&self, since: Stamp) -> impl Iterator<Item = &(Stamp, C2s)> {
        self.transmits.iter().filter(move |(s, _)| *s > since)
    }

    /// Server events after `since`.
    pub fn server_events_after(&self, since: Stamp) -> impl Iterator<Item = &(Stamp, ServerEvent)> {
        self.server_events.iter().filter(move |(s, _)| *s > since)
    }

    /// Pings the client transmitted, with their times.
    pub fn ping_times(&self) -> Vec<Instant> {
        self.transmits
            .iter()
            .filter(|(_, t)| matches!(t, C2s::Ping))
            .map(|(s, _)| s.at)
            .collect()
    }

    /// Register requests the client transmitted.
    pub fn register_requests(&self) -> usize {
        self.transmits
            .iter()
            .filter(|(_, t)| matches!(t, C2s::Register(_)))
            .count()
    }

    /// Number of client events matching `f`.
    pub fn count_events(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.client_events.iter().filter(|(_, e)| f(e)).count()
    }

    /// Number of server events matching `f`.
    pub fn count_server_events(&self, f: impl Fn(&ServerEvent) -> bool) -> usize {
        self.server_events.iter().filter(|(_, e)| f(e)).count()
    }
}

/// The CONSUME_ACK in a client text frame, if it is one.
pub fn parse_consume_ack(text: &str) -> Option<ConsumeAck> {
    let frame = Frame::parse(text, &FrameLimits::default()).ok()?;
    (frame.command == Command::ConsumeAck)
        .then(|| ConsumeAck::from_frame(frame).ok())
        .flatten()
}
