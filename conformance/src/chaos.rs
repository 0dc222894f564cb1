//! Chaos: a seeded, fault-injecting TCP proxy between the client and the simulator, and
//! the [`chaos`] scenario that pushes thousands of messages through it.
//!
//! The proxy ([`ChaosProxy`]) listens on `127.0.0.1:0` and forwards every connection
//! (register.do HTTP and websocket alike) to the simulator. A fault thread, driven by a
//! seeded xoshiro generator and bounded in count and time, at random:
//!
//! * **cuts** a connection (both sockets shut down, both directions);
//! * **stalls** a connection: stops forwarding one or both directions for 0.5–3 s
//!   (data is buffered, not lost), or, on an open websocket, both directions for longer
//!   than the client's `dead_after` + one heartbeat so that half-open detection must
//!   kick in;
//! * **splits** writes into small pieces, or **coalesces** several reads into one write
//!   (a per-connection mode chosen at accept time).
//!
//! `CHAOS_SEED` overrides the seed (printed at start), `CHAOS_MESSAGES` the message count.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use alipay_msg_core::client::{BackoffConfig, ClientEvent, Message};
use alipay_msg_core::endpoint::Endpoint;
use alipay_msg_simulator::{Simulator, SimulatorOptions};
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::json;

use crate::{config, connect, ClientUnderTest, Tally};

/// How often a forwarding thread wakes to look at its stall/cut flags.
const POLL: Duration = Duration::from_millis(10);

/// Slack allowed for measuring detection from the proxy side (poll interval and thread
/// scheduling on a loaded 2-core machine).
const MEASURE_SLACK: Duration = Duration::from_millis(150);

/// A tiny seeded random source.
struct Rng(Xoshiro256PlusPlus);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(Xoshiro256PlusPlus::seed_from_u64(seed))
    }
    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n
    }
    /// Uniform duration in `lo..hi` milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo))
    }
}

/// How a connection's writes are reshaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Plain,
    /// Each write is split into pieces of 1..=max bytes.
    Split,
    /// Reads are gathered for a few ms and written at once.
    Coalesce,
}

/// Direction index: 0 = client → simulator, 1 = simulator → client.
const UP: usize = 0;
const DOWN: usize = 1;

struct Conn {
    id: usize,
    opened: Instant,
    client: TcpStream,
    server: TcpStream,
    shape: Shape,
    /// Stalled until this instant, per direction.
    stall_until: [Mutex<Option<Instant>>; 2],
    /// Set when the proxy cut it or either side closed.
    closed: AtomicBool,
    /// First bytes from the client looked like a websocket upgrade.
    websocket: AtomicBool,
    /// The simulator answered `101`: the websocket is open.
    upgraded: AtomicBool,
    /// When the client closed (EOF or error on its socket).
    client_gone: Mutex<Option<Instant>>,
    /// A long stall is in progress (no other fault may touch this connection).
    long_stalled: AtomicBool,
    /// Cut as soon as the simulator's first answer arrives (register.do answer or
    /// upgrade `101`): faults on short-lived HTTP connections.
    doomed: bool,
}

impl Conn {
    fn stalled(&self, dir: usize) -> bool {
        match *self.stall_until[dir].lock().expect("lock") {
            Some(until) => Instant::now() < until,
            None => false,
        }
    }

    fn cut(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }
}

/// A long stall and what the proxy saw of its detection.
#[derive(Debug, Clone)]
pub struct LongStall {
    conn: usize,
    started: Instant,
    duration: Duration,
}

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct FaultCounts {
    /// Connections accepted.
    pub connections: AtomicUsize,
    /// Cuts of a websocket connection (open, or at its upgrade answer).
    pub cuts_ws: AtomicUsize,
    /// Cuts of an HTTP (register.do) connection.
    pub cuts_http: AtomicUsize,
    /// Short stalls (one or both directions, 0.5–3 s).
    pub short_stalls: AtomicUsize,
    /// Long stalls (both directions, past `dead_after` + heartbeat).
    pub long_stalls: AtomicUsize,
    /// Writes split into pieces.
    pub split_writes: AtomicU64,
    /// Writes that carried several reads.
    pub coalesced_writes: AtomicU64,
}

struct Shared {
    target: SocketAddr,
    conns: Mutex<Vec<Arc<Conn>>>,
    accepts: Mutex<Vec<Instant>>,
    counts: FaultCounts,
    long_stalls: Mutex<Vec<LongStall>>,
    stop: AtomicBool,
    healed: AtomicBool,
    next_id: AtomicUsize,
    seed: u64,
}

/// The fault-injecting proxy.
pub struct ChaosProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// What the fault thread may do.
#[derive(Debug, Clone)]
pub struct FaultBudget {
    /// Most faults (cuts + stalls) in all.
    pub max_faults: usize,
    /// Most long stalls.
    pub max_long_stalls: usize,
    /// No new fault after this long.
    pub duration: Duration,
    /// Long stall length (must exceed `dead_after` + heartbeat).
    pub long_stall: Duration,
}

impl ChaosProxy {
    /// Starts a proxy to `target`, seeded with `seed`.
    pub fn start(target: SocketAddr, seed: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            conns: Mutex::new(Vec::new()),
            accepts: Mutex::new(Vec::new()),
            counts: FaultCounts::default(),
            long_stalls: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            healed: AtomicBool::new(true),
            next_id: AtomicUsize::new(0),
            seed,
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("chaos-accept".to_owned())
            .spawn(move || accept_loop(listener, s))?;
        Ok(ChaosProxy {
            addr,
            shared,
            threads: vec![accept],
        })
    }

    /// Where clients connect.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint::plain(self.addr.ip().to_string(), self.addr.port())
    }

    /// Starts injecting faults within `budget`.
    pub fn unleash(&mut self, budget: FaultBudget) {
        self.shared.healed.store(false, Ordering::SeqCst);
        let s = self.shared.clone();
        let t = std::thread::Builder::new()
            .name("chaos-faults".to_owned())
            .spawn(move || fault_loop(s, budget))
            .expect("fault thread");
        self.threads.push(t);
    }

    /// Stops new faults and lifts every short stall (cuts already made stay made).
    ///
    /// A long stall in progress runs its (bounded) course: lifting it early would hide
    /// whether the client detects it, and a stall begun just before healing would
    /// then count as never detected.
    pub fn heal(&self) {
        self.lift_stalls(false);
    }

    fn lift_stalls(&self, long_too: bool) {
        self.shared.healed.store(true, Ordering::SeqCst);
        for conn in self.shared.conns.lock().expect("lock").iter() {
            if !long_too && conn.long_stalled.load(Ordering::SeqCst) {
                continue;
            }
            for dir in [UP, DOWN] {
                *conn.stall_until[dir].lock().expect("lock") = None;
            }
        }
    }

    /// Fault counts.
    pub fn counts(&self) -> &FaultCounts {
        &self.shared.counts
    }

    /// Waits until every long stall has run its course, so that its detection (or the
    /// lack of one) is final.
    pub fn wait_long_stalls(&self) {
        let end = self
            .shared
            .long_stalls
            .lock()
            .expect("lock")
            .iter()
            .map(|stall| stall.started + stall.duration)
            .max();
        if let Some(end) = end {
            std::thread::sleep(end.saturating_duration_since(Instant::now()));
        }
    }

    /// For each long stall: how long until the client closed the stalled connection or
    /// opened a new one (`None`: never).
    pub fn detections(&self) -> Vec<(LongStall, Option<Duration>)> {
        let conns = self.shared.conns.lock().expect("lock");
        let accepts = self.shared.accepts.lock().expect("lock");
        self.shared
            .long_stalls
            .lock()
            .expect("lock")
            .iter()
            .map(|stall| {
                let gone = conns
                    .iter()
                    .find(|c| c.id == stall.conn)
                    .and_then(|c| *c.client_gone.lock().expect("lock"));
                let reconnect = accepts.iter().copied().find(|t| *t >= stall.started);
                eprintln!(
                    "chaos: stall conn {}: client closed after {:?}, next connection after {:?}",
                    stall.conn,
                    gone.map(|t| t.saturating_duration_since(stall.started)),
                    reconnect.map(|t| t.saturating_duration_since(stall.started))
                );
                let first = match (gone, reconnect) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                (
                    stall.clone(),
                    first.map(|t| t.saturating_duration_since(stall.started)),
                )
            })
            .collect()
    }

    /// Stops everything and joins the threads.
    pub fn stop(mut self) {
        self.lift_stalls(true);
        self.shared.stop.store(true, Ordering::SeqCst);
        for conn in self.shared.conns.lock().expect("lock").iter() {
            conn.cut();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Forwarding threads are detached: they end within one poll of the cut.
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut rng = Rng::new(shared.seed ^ 0xacce_97ed);
    while !shared.stop.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(_) => continue,
        };
        let now = Instant::now();
        shared.accepts.lock().expect("lock").push(now);
        shared.counts.connections.fetch_add(1, Ordering::SeqCst);
        let Ok(server) = TcpStream::connect(shared.target) else {
            continue;
        };
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let doomed = !shared.healed.load(Ordering::SeqCst)
            && shared.counts.cuts_http.load(Ordering::SeqCst) < 6
            && rng.below(100) < 15;
        let shape = match rng.below(4) {
            0 => Shape::Split,
            1 => Shape::Coalesce,
            _ => Shape::Plain,
        };
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        ) else {
            continue;
        };
        let conn = Arc::new(Conn {
            id: shared.next_id.fetch_add(1, Ordering::SeqCst),
            opened: now,
            client,
            server,
            shape,
            stall_until: [Mutex::new(None), Mutex::new(None)],
            closed: AtomicBool::new(false),
            websocket: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            client_gone: Mutex::new(None),
            long_stalled: AtomicBool::new(false),
            doomed,
        });
        shared.conns.lock().expect("lock").push(conn.clone());
        let seed = shared.seed ^ (conn.id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for (dir, from, to) in [(UP, c2, s2), (DOWN, s3, c3)] {
            let (conn, shared) = (conn.clone(), shared.clone());
            let rng = Rng::new(seed ^ dir as u64);
            let _ = std::thread::Builder::new()
                .name(format!("chaos-{}-{dir}", conn.id))
                .spawn(move || forward(&conn, &shared, dir, from, to, rng));
        }
    }
}

fn forward(
    conn: &Conn,
    shared: &Shared,
    dir: usize,
    mut from: TcpStream,
    mut to: TcpStream,
    mut rng: Rng,
) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut pending: VecDeque<u8> = VecDeque::new();
    let mut reads_in_pending = 0u32;
    let mut eof = false;
    let mut buf = vec![0u8; 16 * 1024];
    let mut first = true;
    loop {
        if conn.closed.load(Ordering::SeqCst) {
            break;
        }
        if !eof {
            match from.read(&mut buf) {
                Ok(0) => eof = true,
                Ok(n) => {
                    if first {
                        first = false;
                        let head = String::from_utf8_lossy(&buf[..n.min(2048)]).to_lowercase();
                        if dir == UP && head.contains("upgrade: websocket") {
                            conn.websocket.store(true, Ordering::SeqCst);
                        }
                        if dir == DOWN && head.starts_with("http/1.1 101") {
                            conn.upgraded.store(true, Ordering::SeqCst);
                        }
                        if dir == DOWN && conn.doomed {
                            // The answer is lost with the connection.
                            let counter = if conn.websocket.load(Ordering::SeqCst) {
                                &shared.counts.cuts_ws
                            } else {
                                &shared.counts.cuts_http
                            };
                            counter.fetch_add(1, Ordering::SeqCst);
                            conn.cut();
                            break;
                        }
                    }
                    pending.extend(&buf[..n]);
                    reads_in_pending += 1;
                    if conn.shape == Shape::Coalesce && reads_in_pending < 4 && !pending.is_empty()
                    {
                        // Gather a few more reads before writing.
                        std::thread::sleep(Duration::from_millis(1 + rng.below(3)));
                        continue;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => eof = true,
            }
            if eof && dir == UP {
                conn.client_gone
                    .lock()
                    .expect("lock")
                    .get_or_insert(Instant::now());
            }
        }
        if conn.stalled(dir) {
            if eof {
                std::thread::sleep(POLL);
            }
            continue;
        }
        if !pending.is_empty() {
            if reads_in_pending > 1 {
                shared
                    .counts
                    .coalesced_writes
                    .fetch_add(1, Ordering::Relaxed);
            }
            let data: Vec<u8> = pending.drain(..).collect();
            reads_in_pending = 0;
            let ok = if conn.shape == Shape::Split && data.len() > 1 {
                shared.counts.split_writes.fetch_add(1, Ordering::Relaxed);
                let mut rest = &data[..];
                let mut ok = true;
                while !rest.is_empty() {
                    let n = (1 + rng.below(256) as usize).min(rest.len());
                    if to.write_all(&rest[..n]).is_err() {
                        ok = false;
                        break;
                    }
                    rest = &rest[n..];
                }
                ok
            } else {
                to.write_all(&data).is_ok()
            };
            if !ok {
                if dir == DOWN {
                    conn.client_gone
                        .lock()
                        .expect("lock")
                        .get_or_insert(Instant::now());
                }
                conn.cut();
                break;
            }
        }
        if eof {
            // Everything read was written: pass the close on, then the whole connection
            // goes (the protocol closes both ways at once anyway).
            conn.cut();
            break;
        }
    }
}

fn fault_loop(shared: Arc<Shared>, budget: FaultBudget) {
    let mut rng = Rng::new(shared.seed);
    let started = Instant::now();
    let mut faults = 0;
    while !shared.healed.load(Ordering::SeqCst)
        && faults < budget.max_faults
        && started.elapsed() < budget.duration
    {
        std::thread::sleep(rng.millis(150, 700));
        if shared.healed.load(Ordering::SeqCst) {
            break;
        }
        let live: Vec<Arc<Conn>> = shared
            .conns
            .lock()
            .expect("lock")
            .iter()
            .filter(|c| !c.closed.load(Ordering::SeqCst) && !c.long_stalled.load(Ordering::SeqCst))
            .cloned()
            .collect();
        if live.is_empty() {
            continue;
        }
        let conn = &live[rng.below(live.len() as u64) as usize];
        let counts = &shared.counts;
        let roll = rng.below(100);
        let long_so_far = counts.long_stalls.load(Ordering::SeqCst);
        if roll < 20
            && long_so_far < budget.max_long_stalls
            && conn.upgraded.load(Ordering::SeqCst)
            && conn.opened.elapsed() > Duration::from_millis(300)
        {
            // Long stall: both directions, past dead_after + heartbeat.
            conn.long_stalled.store(true, Ordering::SeqCst);
            let now = Instant::now();
            for dir in [UP, DOWN] {
                *conn.stall_until[dir].lock().expect("lock") = Some(now + budget.long_stall);
            }
            shared.long_stalls.lock().expect("lock").push(LongStall {
                conn: conn.id,
                started: now,
                duration: budget.long_stall,
            });
            counts.long_stalls.fetch_add(1, Ordering::SeqCst);
        } else if roll < 60 {
            conn.cut();
            if conn.websocket.load(Ordering::SeqCst) {
                counts.cuts_ws.fetch_add(1, Ordering::SeqCst);
            } else {
                counts.cuts_http.fetch_add(1, Ordering::SeqCst);
            }
        } else {
            let until = Instant::now() + rng.millis(500, 3000);
            let dirs: &[usize] = match rng.below(3) {
                0 => &[UP],
                1 => &[DOWN],
                _ => &[UP, DOWN],
            };
            for &dir in dirs {
                *conn.stall_until[dir].lock().expect("lock") = Some(until);
            }
            counts.short_stalls.fetch_add(1, Ordering::SeqCst);
        }
        faults += 1;
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// Thousands of messages through the chaos proxy: nothing lost, nothing handled twice,
/// and every long stall detected within `dead_after` + one heartbeat.
pub fn chaos<C: ClientUnderTest>() {
    let seed = env_u64("CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let total = env_u64("CHAOS_MESSAGES").unwrap_or(10_000) as usize;
    eprintln!("chaos: CHAOS_SEED={seed} CHAOS_MESSAGES={total}");
    let test_started = Instant::now();

    let mut options = SimulatorOptions::with_test_keys();
    options.server.redelivery = vec![Duration::from_millis(100)];
    options.server.ack_timeout = Duration::from_secs(2);
    options.server.max_connections_per_app = 16;
    let sim = Simulator::start_on_thread(options).expect("simulator starts");
    let mut proxy = ChaosProxy::start(sim.local_addr(), seed).expect("proxy starts");

    let heartbeat = Duration::from_millis(500);
    let dead_after = Duration::from_secs(2);
    let mut cfg = config(&sim);
    cfg.endpoint = proxy.endpoint();
    cfg.heartbeat_interval = heartbeat;
    cfg.dead_after = dead_after;
    cfg.connect_timeout = Duration::from_secs(3);
    cfg.backoff = BackoffConfig {
        base: Duration::from_millis(50),
        cap: Duration::from_millis(300),
        reset_after: Duration::from_secs(1),
    };
    cfg.max_in_flight = 256;
    let client: C = connect(cfg);

    // Handler: succeeds, except that about 1 in 25 messages fails its first attempt
    // (chosen by a seeded hash of its id).
    let tally = Arc::new(Tally::default());
    let first_failures = Arc::new(AtomicUsize::new(0));
    let inner = tally.clone();
    let failures = first_failures.clone();
    let fail_seed = seed;
    client.start(Arc::new(move |msg: &Message| {
        let id = msg.msg_id().to_owned();
        let run = {
            let mut runs = inner.runs.lock().expect("lock");
            let n = runs.entry(id.clone()).or_default();
            *n += 1;
            *n
        };
        if run == 1 && fnv(fail_seed, &id).is_multiple_of(25) {
            failures.fetch_add(1, Ordering::SeqCst);
            return Err("first attempt fails on purpose".to_owned());
        }
        *inner.successes.lock().expect("lock").entry(id).or_default() += 1;
        Ok(())
    }));

    let long_stall = dead_after + heartbeat + Duration::from_millis(1500);
    proxy.unleash(FaultBudget {
        max_faults: 60,
        max_long_stalls: 3,
        duration: Duration::from_secs(20),
        long_stall,
    });

    // Push in batches while the faults run, pre-signed so the simulator signs once.
    let app_id = sim.app_id().to_owned();
    let content = sim
        .with_session(move |session, _| {
            session.presign(
                &app_id,
                "alipay.open.mini.version.audit.passed",
                &json!({"mini_app_id": "2014072300007148", "chaos": true}).to_string(),
            )
        })
        .expect("simulator runs")
        .expect("presign");
    let batches = 20usize;
    let mut ids: Vec<String> = Vec::with_capacity(total);
    for b in 0..batches {
        let n = total / batches + usize::from(b < total % batches);
        let content = content.clone();
        let batch = sim
            .with_session(move |session, now| {
                (0..n)
                    .map(|_| {
                        session
                            .push_presigned(&content, now)
                            .map(|id| id.as_str().to_owned())
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .expect("simulator runs")
            .expect("push");
        ids.extend(batch);
        std::thread::sleep(Duration::from_millis(400));
    }
    // Let the faults run their course (bounded), then heal.
    let fault_deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < fault_deadline
        && !(sim.is_settled().expect("simulator runs")
            && proxy.counts().long_stalls.load(Ordering::SeqCst) > 0)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    proxy.heal();
    let pushed_at = test_started.elapsed();
    let settle_limit = Duration::from_secs(60);
    assert!(
        sim.wait_settled(settle_limit).expect("simulator runs"),
        "seed {seed}: settled within {settle_limit:?} after healing: {:?}",
        sim.counts()
    );
    let settled_at = test_started.elapsed();

    // Zero lost: every pushed id acknowledged SUCCESS by the platform.
    let acked: std::collections::HashSet<String> = sim
        .acked_messages()
        .expect("simulator runs")
        .into_iter()
        .map(|(id, _)| id.as_str().to_owned())
        .collect();
    let lost: Vec<&String> = ids.iter().filter(|id| !acked.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "seed {seed}: {} of {} messages never acked, e.g. {:?}",
        lost.len(),
        ids.len(),
        &lost[..lost.len().min(5)]
    );
    assert!(sim.is_settled().expect("simulator runs"));

    // Detection of long stalls.
    let bound = dead_after + heartbeat;
    proxy.wait_long_stalls();
    let detections = proxy.detections();
    let mut max_detect = Duration::ZERO;
    for (stall, detected) in &detections {
        let d = detected.unwrap_or_else(|| {
            panic!(
                "seed {seed}: long stall of conn {} ({:?}) never detected",
                stall.conn, stall.duration
            )
        });
        max_detect = max_detect.max(d);
        assert!(
            d <= bound + MEASURE_SLACK,
            "seed {seed}: stall on conn {} detected after {d:?} > dead_after + heartbeat = {bound:?}",
            stall.conn
        );
    }

    client.shutdown();
    // Zero handled twice (and nothing else handled).
    {
        let s = tally.successes.lock().expect("lock");
        let twice: Vec<_> = s.iter().filter(|(_, n)| **n != 1).collect();
        assert!(
            twice.is_empty(),
            "seed {seed}: handled successfully more than once: {:?}",
            &twice[..twice.len().min(5)]
        );
        assert_eq!(s.len(), ids.len(), "seed {seed}: every message handled");
    }

    let events = client.events();
    let disconnects = events
        .iter()
        .filter(|e| matches!(e, ClientEvent::Disconnected { .. }))
        .count();
    let reasons: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Disconnected { reason, .. } => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    eprintln!("chaos: client disconnect reasons: {reasons:?}");
    let c = proxy.counts();
    eprintln!(
        "chaos: seed={seed} messages={} first-attempt failures={} connections={} cuts(ws)={} cuts(http)={} short stalls={} long stalls={} split writes={} coalesced writes={} client disconnects={} detections={:?} max detection={:?} (bound {:?}) pushed+faults {:?} settled {:?} total {:?}",
        ids.len(),
        first_failures.load(Ordering::SeqCst),
        c.connections.load(Ordering::SeqCst),
        c.cuts_ws.load(Ordering::SeqCst),
        c.cuts_http.load(Ordering::SeqCst),
        c.short_stalls.load(Ordering::SeqCst),
        c.long_stalls.load(Ordering::SeqCst),
        c.split_writes.load(Ordering::SeqCst),
        c.coalesced_writes.load(Ordering::SeqCst),
        disconnects,
        detections.iter().map(|(_, d)| *d).collect::<Vec<_>>(),
        max_detect,
        bound,
        pushed_at,
        settled_at,
        test_started.elapsed(),
    );
    proxy.stop();
    sim.shutdown();
}

/// FNV-1a of `s`, mixed with `seed`.
fn fnv(seed: u64, s: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
