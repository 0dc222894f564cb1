//! What is particular to the blocking client (pool, explicit answers, backpressure,
//! shutdown from a handler, pongs), against the simulator over 127.0.0.1; the shared
//! end-to-end scenarios are in the conformance suite.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alipay_msg_blocking::{Client, ClientConfig, ClientEvent, Credentials, PoolConfig};
use alipay_msg_simulator::{test_keys, Simulator, SimulatorHandle, SimulatorOptions};

const LIMIT: Duration = Duration::from_secs(10);
const MSG_API: &str = "alipay.open.mini.version.audit.passed";

fn simulator() -> SimulatorHandle {
    let mut options = SimulatorOptions::with_test_keys();
    options.server.redelivery = vec![Duration::from_millis(100)];
    options.server.ack_timeout = Duration::from_secs(3);
    Simulator::start_on_thread(options).unwrap()
}

fn config_for(sim: &SimulatorHandle) -> ClientConfig {
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
            .unwrap();
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    config
}

fn connect(sim: &SimulatorHandle, pool: PoolConfig) -> Arc<Client> {
    Arc::new(Client::connect_with_timeout(config_for(sim), pool, LIMIT).unwrap())
}

fn push_n(sim: &SimulatorHandle, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let biz = format!(r#"{{"mini_app_id":"2014072300007148","n":{i}}}"#);
            sim.push(MSG_API, &biz).unwrap().as_str().to_owned()
        })
        .collect()
}

/// Successful handler runs per msg id.
type Counts = Arc<Mutex<HashMap<String, usize>>>;

fn assert_each_once(successes: &Counts, ids: &[String]) {
    let s = successes.lock().unwrap();
    for id in ids {
        assert_eq!(s.get(id), Some(&1), "{id} handled once: {s:?}");
    }
    assert_eq!(s.len(), ids.len(), "nothing else handled: {s:?}");
}

/// Runs `client` on a thread with `handler`; the thread returns `run`'s result.
fn spawn_run<F>(
    client: &Arc<Client>,
    handler: F,
) -> std::thread::JoinHandle<Result<(), alipay_msg_blocking::Error>>
where
    F: Fn(alipay_msg_blocking::Message) -> Result<(), String> + Send + Sync + 'static,
{
    let client = client.clone();
    std::thread::spawn(move || client.run(handler))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_pool_grows_from_core_to_max_under_load_and_never_beyond() {
    let sim = simulator();
    let pool = PoolConfig {
        core_threads: 2,
        max_threads: 4,
        keep_alive: Duration::from_millis(200),
    };
    let client = connect(&sim, pool);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let names: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (r, p, n) = (running.clone(), peak.clone(), names.clone());
    let runner = spawn_run(&client, move |_msg| {
        let now = r.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(now, Ordering::SeqCst);
        let name = std::thread::current().name().unwrap_or_default().to_owned();
        assert!(name.starts_with("alipay-msg-handler-"), "{name}");
        n.lock().unwrap().insert(name);
        std::thread::sleep(Duration::from_millis(100));
        r.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    });
    push_n(&sim, 16);
    assert!(sim.wait_settled(LIMIT).unwrap());
    assert_eq!(peak.load(Ordering::SeqCst), 4, "grew to max_threads");
    assert_eq!(client.peak_handler_threads(), 4);
    assert!(names.lock().unwrap().len() <= 4, "{names:?}");
    // Idle beyond keep_alive: back to the core threads.
    wait_for("the pool to shrink to core", || {
        client.handler_threads() == 2
    });
    client.shutdown();
    runner.join().unwrap().unwrap();
    assert_eq!(client.handler_threads(), 0);
}

#[test]
fn deliveries_are_answered_explicitly() {
    let sim = simulator();
    let client = connect(&sim, PoolConfig::default());
    let mut deliveries = client.deliveries().unwrap();
    assert!(matches!(
        client.run(|_| Ok::<(), String>(())),
        Err(alipay_msg_blocking::Error::AlreadyConsuming)
    ));
    let ids = push_n(&sim, 2);
    let mut seen: HashMap<String, usize> = HashMap::new();
    while !(seen.len() == 2 && seen.values().all(|n| *n >= 3)) {
        let incoming = deliveries.recv_timeout(LIMIT).expect("a delivery");
        let run = {
            let n = seen.entry(incoming.msg_id().to_owned()).or_default();
            *n += 1;
            *n
        };
        match run {
            1 => incoming.fail("not yet"),
            2 => drop(incoming), // unanswered: FAIL
            _ => incoming.ack(),
        }
    }
    assert!(sim.wait_settled(LIMIT).unwrap());
    for id in &ids {
        assert_eq!(seen.get(id), Some(&3), "{seen:?}");
    }
    for (_, attempts) in sim.acked_messages().unwrap() {
        assert_eq!(attempts, 3);
    }
    client.shutdown();
    assert!(deliveries.next().is_none(), "ends after shutdown");
}

#[test]
fn a_handler_may_shut_the_client_down() {
    let sim = simulator();
    let client = connect(&sim, PoolConfig::default());
    let handled = Arc::new(AtomicUsize::new(0));
    let runner = {
        let (me, handled) = (Arc::downgrade(&client), handled.clone());
        spawn_run(&client, move |_msg| {
            handled.fetch_add(1, Ordering::SeqCst);
            if let Some(client) = me.upgrade() {
                // Starts the shutdown; cannot wait for its own thread.
                client.shutdown();
            }
            Ok(())
        })
    };
    push_n(&sim, 1);
    runner.join().unwrap().unwrap();
    assert_eq!(handled.load(Ordering::SeqCst), 1);
    assert!(sim.wait_settled(Duration::from_secs(2)).unwrap());
    client.shutdown();
    assert_eq!(client.handler_threads(), 0);
}

#[test]
fn a_full_pipeline_stops_reading_instead_of_dropping() {
    let sim = simulator();
    let mut config = config_for(&sim);
    config.max_in_flight = 2;
    let client =
        Arc::new(Client::connect_with_timeout(config, PoolConfig::default(), LIMIT).unwrap());
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let started = Arc::new(AtomicUsize::new(0));
    let successes: Counts = Arc::default();
    let (st, s) = (started.clone(), successes.clone());
    let runner = spawn_run(&client, move |msg| {
        st.fetch_add(1, Ordering::SeqCst);
        let _ = release_rx.lock().unwrap().recv();
        *s.lock()
            .unwrap()
            .entry(msg.msg_id().to_owned())
            .or_default() += 1;
        Ok(())
    });
    let ids = push_n(&sim, 6);
    wait_for("2 handlers running", || started.load(Ordering::SeqCst) == 2);
    std::thread::sleep(Duration::from_millis(300));
    // Ten handler threads are allowed, but only max_in_flight deliveries are taken.
    assert_eq!(started.load(Ordering::SeqCst), 2);
    for _ in 0..6 {
        release_tx.send(()).unwrap();
    }
    assert!(sim.wait_settled(LIMIT).unwrap());
    client.shutdown();
    runner.join().unwrap().unwrap();
    assert_each_once(&successes, &ids);
}

#[test]
fn pongs_keep_an_idle_connection_open() {
    let sim = simulator();
    let mut config = config_for(&sim);
    config.heartbeat_interval = Duration::from_millis(50);
    config.dead_after = Duration::from_secs(1);
    let client = Client::connect_with_timeout(config, PoolConfig::default(), LIMIT).unwrap();
    let events = client.events();
    // Longer than `dead_after` without a frame from the platform, 30 pings: only
    // their pongs keep the connection alive.
    std::thread::sleep(Duration::from_millis(1500));
    client.shutdown();
    let events: Vec<ClientEvent> = events.collect();
    // The first subscription holds the events since start-up: the first connection,
    // then nothing until the shutdown.
    assert_eq!(
        events,
        vec![
            ClientEvent::Connecting { attempt: 1 },
            ClientEvent::Connected,
            ClientEvent::ShutdownComplete
        ]
    );
}

#[test]
fn messages_delivered_before_run_are_handled_first_in_order() {
    let sim = simulator();
    // One handler thread: the pool runs jobs in the order it is given them.
    let pool = PoolConfig {
        core_threads: 1,
        max_threads: 1,
        keep_alive: Duration::from_secs(60),
    };
    let client = connect(&sim, pool);
    // Delivered (sent, awaiting their handler) before anyone runs a handler: they wait
    // in the client's delivery channel.
    let mut ids = push_n(&sim, 8);
    wait_for("8 messages in flight", || {
        sim.counts().map(|c| c.in_flight).unwrap_or(0) == 8
    });
    std::thread::sleep(Duration::from_millis(50));
    let order = Arc::new(Mutex::new(Vec::new()));
    let handled = order.clone();
    let runner = spawn_run(&client, move |msg| {
        handled.lock().unwrap().push(msg.msg_id().to_owned());
        Ok(())
    });
    // More while `run` starts: handed to the pool after the buffered ones.
    ids.extend(push_n(&sim, 8));
    assert!(sim.wait_settled(LIMIT).unwrap(), "{:?}", sim.counts());
    client.shutdown();
    runner.join().unwrap().unwrap();
    assert_eq!(
        *order.lock().unwrap(),
        ids,
        "handled in the order delivered"
    );
}

#[test]
fn frames_checked_inline_or_on_lanes_are_handled_in_read_order() {
    // 1: the session checks inline on the I/O thread; 3: three `alipay-msg-check`
    // lanes whose results come back in any order.
    for lanes in [1, 3] {
        let sim = simulator();
        let mut config = config_for(&sim);
        config.check_parallelism = lanes;
        // One handler thread: the pool runs jobs in the order it is given them.
        let pool = PoolConfig {
            core_threads: 1,
            max_threads: 1,
            keep_alive: Duration::from_secs(60),
        };
        let client = Arc::new(Client::connect_with_timeout(config, pool, LIMIT).unwrap());
        let order = Arc::new(Mutex::new(Vec::new()));
        let handled = order.clone();
        let runner = spawn_run(&client, move |msg| {
            handled.lock().unwrap().push(msg.msg_id().to_owned());
            Ok(())
        });
        let ids = push_n(&sim, 40);
        assert!(sim.wait_settled(LIMIT).unwrap(), "{:?}", sim.counts());
        client.shutdown();
        runner.join().unwrap().unwrap();
        let order = order.lock().unwrap();
        let unique: HashSet<&String> = order.iter().collect();
        assert_eq!(unique.len(), order.len(), "{lanes} lanes: handled once");
        assert_eq!(*order, ids, "{lanes} lanes: handled in the order read");
    }
}
