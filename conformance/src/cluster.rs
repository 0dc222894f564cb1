//! Clusters: several instances of a client on one app id, sharing one duplicate window on
//! Redis (`alipay-msg-redis`), against the simulator spreading deliveries over their
//! connections and redelivering on another connection than the last attempt's.
//!
//! A client crate's test implements [`ClusterClientUnderTest`] (how to connect one
//! instance with the shared window) and expands [`cluster_suite!`](crate::cluster_suite). The scenarios need
//! a real Redis: `ALIPAY_MSG_REDIS_URL` (`.ci/run` starts one), and for
//! [`redis_restart`] the `redis-server` program (it starts and stops one of its own).
//! Without the variable they are skipped with a message, except under `CI`, where they
//! fail.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alipay_msg_core::client::{ClientConfig, ClientError, ClientEvent, Message, RejectReason};
use alipay_msg_core::server::{CloseAfterFrames, FaultPlan};
use alipay_msg_core::window::SharedWindowConfig;
use alipay_msg_redis::{redis_url_from_env, RedisWindow, RedisWindowConfig};
use alipay_msg_simulator::{Simulator, SimulatorHandle, SimulatorOptions};
use serde_json::json;

use crate::{config, ClientUnderTest};

/// A client that can run as one instance of a cluster.
pub trait ClusterClientUnderTest: ClientUnderTest {
    /// Connects one instance whose duplicate window is shared through the Redis of
    /// `redis` (settings in `config.shared_window`).
    fn connect_shared(config: ClientConfig, redis: RedisWindowConfig) -> Result<Self, ClientError>;
}

/// Makes one `#[test]` per cluster scenario for a [`ClusterClientUnderTest`].
#[macro_export]
macro_rules! cluster_suite {
    ($client:ty) => {
        #[test]
        fn cluster_exactly_once_across_instances() {
            $crate::cluster::exactly_once_across_instances::<$client>();
        }
        #[test]
        fn cluster_redis_restart() {
            $crate::cluster::redis_restart::<$client>();
        }
        #[test]
        fn cluster_lease_expiry_after_a_crash() {
            $crate::cluster::lease_expiry_after_a_crash::<$client>();
        }
    };
}

/// Instances per cluster.
const INSTANCES: usize = 3;

/// Messages of the main scenarios (`CLUSTER_MESSAGES` overrides).
const MESSAGES: usize = 10_000;

/// The settle limit of one run.
const SETTLE: Duration = Duration::from_secs(180);

fn messages() -> usize {
    std::env::var("CLUSTER_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(MESSAGES)
}

/// A key prefix of its own per run: runs never see each other's keys.
fn prefix(run: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "conformance-{run}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Successful and all handler runs per msg id, across every instance of a cluster.
#[derive(Default)]
struct ClusterTally {
    successes: Mutex<HashMap<String, usize>>,
    runs: Mutex<HashMap<String, usize>>,
}

impl ClusterTally {
    /// Counts a run; fails the first run of about one message in 20 (a seeded hash of
    /// its id) so that its redelivery goes to another instance.
    fn run(&self, msg: &Message) -> Result<(), String> {
        let id = msg.msg_id().to_owned();
        let run = {
            let mut runs = self.runs.lock().expect("lock");
            let n = runs.entry(id.clone()).or_default();
            *n += 1;
            *n
        };
        if run == 1 && fnv(&id).is_multiple_of(20) {
            return Err("first attempt fails on purpose".to_owned());
        }
        *self.successes.lock().expect("lock").entry(id).or_default() += 1;
        Ok(())
    }

    /// (messages handled successfully more than once, successful runs in all).
    fn duplicates(&self) -> (usize, usize) {
        let s = self.successes.lock().expect("lock");
        (s.values().filter(|n| **n > 1).count(), s.values().sum())
    }
}

fn fnv(s: &str) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The simulator of a cluster run: fast redelivery, redelivery on another connection.
fn cluster_simulator() -> SimulatorHandle {
    let mut options = SimulatorOptions::with_test_keys();
    options.server.redelivery = vec![Duration::from_millis(100)];
    options.server.ack_timeout = Duration::from_secs(3);
    options.server.max_connections_per_app = 16;
    options.server.redeliver_elsewhere = true;
    Simulator::start_on_thread(options).expect("simulator starts")
}

/// `INSTANCES` instances, all running `tally`; shared through `redis` when given.
fn instances<C: ClusterClientUnderTest>(
    sim: &SimulatorHandle,
    redis: Option<&RedisWindowConfig>,
    shared: &SharedWindowConfig,
    tally: &Arc<ClusterTally>,
) -> Vec<C> {
    (0..INSTANCES)
        .map(|_| {
            let mut cfg = config(sim);
            cfg.max_in_flight = 128;
            let client = match redis {
                Some(redis) => {
                    cfg.shared_window = Some(shared.clone());
                    C::connect_shared(cfg, redis.clone())
                }
                None => C::connect(cfg),
            }
            .expect("an instance connects to the simulator");
            let tally = tally.clone();
            client.start(Arc::new(move |msg: &Message| tally.run(msg)));
            client
        })
        .collect()
}

/// Pushes `total` messages in batches, with faults armed before each batch: copies of
/// CONSUMEs on another connection (another instance), corrupted signatures (FAIL, then
/// redelivered elsewhere), and a connection cut (its unacked messages redelivered
/// elsewhere, acks in transit lost). `between` runs after each batch.
fn push_with_faults(
    sim: &SimulatorHandle,
    total: usize,
    mut between: impl FnMut(usize),
) -> Vec<String> {
    let app_id = sim.app_id().to_owned();
    let content = sim
        .with_session(move |session, _| {
            session.presign(
                &app_id,
                "alipay.open.mini.version.audit.passed",
                &json!({"mini_app_id": "2014072300007148", "cluster": true}).to_string(),
            )
        })
        .expect("simulator runs")
        .expect("presign");
    let batches = 20usize;
    let mut ids = Vec::with_capacity(total);
    for b in 0..batches {
        let n = total / batches + usize::from(b < total % batches);
        sim.set_faults(FaultPlan {
            duplicate_consumes: u32::try_from(n / 10).unwrap_or(u32::MAX),
            corrupt_consumes: u32::try_from(n / 50).unwrap_or(u32::MAX),
            close_after_frames: (b % 4 == 1).then_some(CloseAfterFrames {
                conn: None,
                frames: u32::try_from(n / 2).unwrap_or(u32::MAX).max(1),
            }),
            ..FaultPlan::default()
        })
        .expect("simulator runs");
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
        between(ids.len());
        std::thread::sleep(Duration::from_millis(50));
    }
    ids
}

/// Every pushed id acked SUCCESS by the platform.
fn assert_none_lost(sim: &SimulatorHandle, ids: &[String], run: &str) {
    assert!(
        sim.wait_settled(SETTLE).expect("simulator runs"),
        "{run}: settled within {SETTLE:?}: {:?}",
        sim.counts()
    );
    let acked: std::collections::HashSet<String> = sim
        .acked_messages()
        .expect("simulator runs")
        .into_iter()
        .map(|(id, _)| id.as_str().to_owned())
        .collect();
    let lost: Vec<&String> = ids.iter().filter(|id| !acked.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{run}: {} never acked, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

/// Each id handled successfully exactly once across the instances, nothing else.
fn assert_each_once(tally: &ClusterTally, ids: &[String], run: &str) {
    let s = tally.successes.lock().expect("lock");
    let twice: Vec<_> = s.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "{run}: {} handled successfully more than once, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    assert_eq!(s.len(), ids.len(), "{run}: every message handled");
}

fn count(events: &[ClientEvent], pred: impl Fn(&ClientEvent) -> bool) -> usize {
    events.iter().filter(|e| pred(e)).count()
}

/// Three instances on one app id, 10 000 messages, the simulator redelivering on other
/// connections with faults on: with the shared window each message is handled
/// successfully exactly once across the instances and none is lost; the same run with
/// local windows shows the duplicates (both counts printed).
pub fn exactly_once_across_instances<C: ClusterClientUnderTest>() {
    let Some(url) =
        redis_url_from_env("cluster_exactly_once_across_instances").expect("CI has Redis")
    else {
        return;
    };
    let total = messages();

    // Local windows only.
    let started = Instant::now();
    let sim = cluster_simulator();
    let local = Arc::new(ClusterTally::default());
    let clients: Vec<C> = instances(&sim, None, &SharedWindowConfig::new(), &local);
    let ids = push_with_faults(&sim, total, |_| {});
    assert_none_lost(&sim, &ids, "local windows");
    for c in &clients {
        c.shutdown();
    }
    sim.shutdown();
    let (local_twice, local_runs) = local.duplicates();
    let local_time = started.elapsed();

    // One window shared on Redis.
    let started = Instant::now();
    let sim = cluster_simulator();
    let shared = Arc::new(ClusterTally::default());
    let redis = RedisWindowConfig::new(&url).with_prefix(prefix("exactly-once"));
    let clients: Vec<C> = instances(&sim, Some(&redis), &SharedWindowConfig::new(), &shared);
    let ids = push_with_faults(&sim, total, |_| {});
    assert_none_lost(&sim, &ids, "shared window");
    for c in &clients {
        c.shutdown();
    }
    let held: usize = clients
        .iter()
        .map(|c| {
            count(&c.events(), |e| {
                matches!(
                    e,
                    ClientEvent::Rejected {
                        reason: RejectReason::ClaimedElsewhere,
                        ..
                    }
                )
            })
        })
        .sum();
    let from_window: usize = clients
        .iter()
        .map(|c| count(&c.events(), |e| matches!(e, ClientEvent::Duplicate { .. })))
        .sum();
    sim.shutdown();
    let (shared_twice, shared_runs) = shared.duplicates();
    eprintln!(
        "cluster: {INSTANCES} instances, {total} messages: local windows: {local_twice} handled more than once ({local_runs} successful runs) in {local_time:?}; shared window on Redis: {shared_twice} handled more than once ({shared_runs} successful runs, {held} FAILed as claimed elsewhere, {from_window} answered from a window) in {:?}",
        started.elapsed()
    );
    assert_each_once(&shared, &ids, "shared window");
    assert!(
        local_twice > 0,
        "the local-window run shows the duplicates the shared window removes"
    );
}

/// A `redis-server` of the test's own, with its data on disk (AOF, every write synced),
/// so that a stop and a start keep what was recorded.
struct OwnRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnRedis {
    /// Starts one on a free port; `None` when there is no `redis-server` program.
    fn start() -> Option<OwnRedis> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("alipay-msg-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let mut redis = OwnRedis {
            port,
            dir,
            child: None,
        };
        redis.run().then_some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts the server and waits until it answers; `false` without the program.
    fn run(&mut self) -> bool {
        let spawned = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = spawned else {
            return false;
        };
        self.child = Some(child);
        let window = RedisWindow::new(RedisWindowConfig::new(self.url())).expect("URL");
        let deadline = Instant::now() + Duration::from_secs(10);
        while window.ping().is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server answers within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Kills the server (what was written is on disk: every write was synced).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shared-window run with Redis stopped in the middle and started again: nothing
/// lost, nothing handled twice, and the stall visible in events (claims and records
/// that failed, then the window answering again).
pub fn redis_restart<C: ClusterClientUnderTest>() {
    if redis_url_from_env("cluster_redis_restart")
        .expect("CI has Redis")
        .is_none()
    {
        return;
    }
    let Some(mut redis) = OwnRedis::start() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI has Redis: redis-server must be on PATH"
        );
        eprintln!("SKIPPED cluster_redis_restart: no redis-server program");
        return;
    };
    let total = messages();
    let sim = cluster_simulator();
    let tally = Arc::new(ClusterTally::default());
    let store = RedisWindowConfig::new(redis.url()).with_prefix(prefix("restart"));
    // A short lease: a claim whose answer was lost when Redis stopped blocks the
    // message for this long at most.
    let window = SharedWindowConfig::new().with_lease(Duration::from_secs(5));
    let clients: Vec<C> = instances(&sim, Some(&store), &window, &tally);
    let mut down_for = Duration::ZERO;
    let ids = push_with_faults(&sim, total, |pushed| {
        if pushed >= total / 2 && redis.child.is_some() && down_for.is_zero() {
            let stopped = Instant::now();
            redis.stop();
            std::thread::sleep(Duration::from_secs(2));
            assert!(redis.run(), "redis-server starts again");
            down_for = stopped.elapsed();
        }
    });
    assert_none_lost(&sim, &ids, "Redis restarted");
    for c in &clients {
        c.shutdown();
    }
    sim.shutdown();
    let events: Vec<ClientEvent> = clients.iter().flat_map(|c| c.events()).collect();
    let failed = count(&events, |e| {
        matches!(
            e,
            ClientEvent::SharedWindowFailed {
                fallback: false,
                ..
            }
        )
    });
    let restored = count(&events, |e| {
        matches!(e, ClientEvent::SharedWindowRestored { .. })
    });
    eprintln!(
        "cluster: Redis down for {down_for:?} in a run of {total} messages: {failed} claims/records failed (acked FAIL), {restored} instances saw the window again"
    );
    assert!(failed > 0, "the stall is visible in events");
    assert!(restored > 0, "so is the recovery");
    assert_each_once(&tally, &ids, "Redis restarted");
}

/// An instance claims a message and crashes while handling it (its handler never
/// finishes): the others answer the message's redeliveries FAIL while the claim's
/// lease lives, then one of them handles it.
pub fn lease_expiry_after_a_crash<C: ClusterClientUnderTest>() {
    let Some(url) = redis_url_from_env("cluster_lease_expiry_after_a_crash").expect("CI has Redis")
    else {
        return;
    };
    // Long enough for the survivors to connect and see the claim, whatever the load.
    let lease = Duration::from_secs(5);
    let mut options = SimulatorOptions::with_test_keys();
    options.server.redelivery = vec![Duration::from_millis(200)];
    options.server.ack_timeout = Duration::from_millis(500);
    options.server.redeliver_elsewhere = true;
    let sim = Simulator::start_on_thread(options).expect("simulator starts");
    let redis = RedisWindowConfig::new(&url).with_prefix(prefix("lease"));
    let window = SharedWindowConfig::new().with_lease(lease);
    let connect = |_| {
        let mut cfg = config(&sim);
        cfg.shared_window = Some(window.clone());
        C::connect_shared(cfg, redis.clone()).expect("an instance connects")
    };

    // The instance that crashes: its handler blocks until the end of the test, then
    // fails (a crashed process never answers).
    let crashed: C = connect(0);
    let (started_tx, started_rx) = mpsc::sync_channel::<String>(1);
    let (end_tx, end_rx) = mpsc::channel::<()>();
    let end_rx = Mutex::new(end_rx);
    crashed.start(Arc::new(move |msg: &Message| {
        let _ = started_tx.try_send(msg.msg_id().to_owned());
        let _ = end_rx.lock().expect("lock").recv();
        Err("crashed".to_owned())
    }));
    let id = sim
        .push(
            "alipay.open.mini.version.audit.passed",
            r#"{"mini_app_id":"1"}"#,
        )
        .expect("push")
        .as_str()
        .to_owned();
    let claimed_at = Instant::now();
    assert_eq!(
        started_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the crashing instance took it"),
        id
    );

    // The survivors.
    let handled = Arc::new(AtomicUsize::new(0));
    let survivors: Vec<C> = (1..INSTANCES).map(connect).collect();
    for s in &survivors {
        let handled = handled.clone();
        s.start(Arc::new(move |_msg: &Message| {
            handled.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }));
    }
    assert!(
        sim.wait_settled(Duration::from_secs(30))
            .expect("simulator runs"),
        "handled after the lease: {:?}",
        sim.counts()
    );
    let settled_after = claimed_at.elapsed();
    let events: Vec<ClientEvent> = survivors.iter().flat_map(|c| c.events()).collect();
    let held = count(
        &events,
        |e| matches!(e, ClientEvent::Rejected { msg_id: Some(m), reason: RejectReason::ClaimedElsewhere } if *m == id),
    );
    eprintln!(
        "cluster: a crashed claim of {lease:?}: {held} redeliveries FAILed as claimed elsewhere, handled by a survivor {settled_after:?} after the claim"
    );
    assert_eq!(
        handled.load(Ordering::SeqCst),
        1,
        "handled once, by a survivor"
    );
    assert!(held > 0, "the survivors waited for the lease");
    let _ = end_tx.send(());
    for c in survivors.iter().chain(std::iter::once(&crashed)) {
        c.shutdown();
    }
    sim.shutdown();
}
