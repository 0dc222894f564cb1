//! The blocking client with a shared duplicate window, on a store in memory (the Redis
//! store is exercised in `alipay-msg-redis` and the cluster scenarios): queries go to the
//! store off the I/O thread, their answers decide, and a configuration that asks for a
//! shared window without a store is refused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alipay_msg_blocking::core::window::{
    SharedWindowConfig, WindowAnswer, WindowError, WindowOp, WindowQuery, WindowStore, HANDLED,
};
use alipay_msg_blocking::{Client, ClientConfig, ClientError, Credentials, Network, PoolConfig};
use alipay_msg_simulator::{test_keys, Simulator, SimulatorHandle, SimulatorOptions};

const MSG_API: &str = "alipay.open.mini.version.audit.passed";

/// Keys to values, no expiry (the tests are short); `down` answers every query with an
/// error.
#[derive(Default)]
struct MemStore {
    values: Mutex<HashMap<String, String>>,
    queries: AtomicUsize,
    down: AtomicBool,
    /// Claims are answered `Handled`, as when another instance recorded the id.
    handled_elsewhere: AtomicBool,
}

impl WindowStore for MemStore {
    fn answer(&self, query: &WindowQuery) -> Result<WindowAnswer, WindowError> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(WindowError("connection refused".into()));
        }
        let key = query.key.render("test");
        let mut values = self.values.lock().unwrap();
        if self.handled_elsewhere.load(Ordering::SeqCst) {
            values.insert(key.clone(), HANDLED.to_owned());
        }
        Ok(match &query.op {
            WindowOp::Claim { token, .. } => match values.get(&key).map(String::as_str) {
                None => {
                    values.insert(key, token.clone());
                    WindowAnswer::Claimed
                }
                Some(HANDLED) => WindowAnswer::Handled,
                Some(_) => WindowAnswer::Held,
            },
            WindowOp::Record { .. } => {
                values.insert(key, HANDLED.to_owned());
                WindowAnswer::Recorded
            }
            WindowOp::Release { token } => {
                if values.get(&key) == Some(token) {
                    values.remove(&key);
                }
                WindowAnswer::Released
            }
        })
    }
}

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

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn messages_are_claimed_and_recorded_in_the_store() {
    let sim = simulator();
    let store = Arc::new(MemStore::default());
    let client = Arc::new(
        Client::connect_with_window(
            config_for(&sim),
            PoolConfig::default(),
            Network::default(),
            store.clone(),
        )
        .unwrap(),
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let (runner, counter) = (client.clone(), runs.clone());
    let run = std::thread::spawn(move || {
        runner.run(move |_msg| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<(), String>(())
        })
    });
    for i in 0..50 {
        sim.push(MSG_API, &format!(r#"{{"n":{i}}}"#)).unwrap();
    }
    assert!(sim.wait_settled(Duration::from_secs(20)).unwrap());
    assert_eq!(runs.load(Ordering::SeqCst), 50);
    {
        let values = store.values.lock().unwrap();
        assert_eq!(values.len(), 50);
        assert!(values.values().all(|v| v == HANDLED));
    }
    // One claim and one record per message.
    assert_eq!(store.queries.load(Ordering::SeqCst), 100);

    // Another instance handled this one already: SUCCESS without the handler.
    store.handled_elsewhere.store(true, Ordering::SeqCst);
    sim.push(MSG_API, r#"{"n":"elsewhere"}"#).unwrap();
    assert!(sim.wait_settled(Duration::from_secs(20)).unwrap());
    assert_eq!(runs.load(Ordering::SeqCst), 50, "not handled here");
    assert_eq!(
        store.queries.load(Ordering::SeqCst),
        101,
        "one claim, nothing recorded"
    );
    client.shutdown();
    run.join().unwrap().unwrap();
    sim.shutdown();
}

#[test]
fn the_store_down_fails_messages_and_reports_it_until_it_is_back() {
    let sim = simulator();
    let store = Arc::new(MemStore::default());
    store.down.store(true, Ordering::SeqCst);
    let client = Arc::new(
        Client::connect_with_window(
            config_for(&sim),
            PoolConfig::default(),
            Network::default(),
            store.clone(),
        )
        .unwrap(),
    );
    let events = client.events();
    let runs = Arc::new(AtomicUsize::new(0));
    let (runner, counter) = (client.clone(), runs.clone());
    let run = std::thread::spawn(move || {
        runner.run(move |_msg| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok::<(), String>(())
        })
    });
    sim.push(MSG_API, r#"{"n":1}"#).unwrap();
    wait_for("a failed claim", || {
        store.queries.load(Ordering::SeqCst) >= 3
    });
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "nothing handled without a claim"
    );
    store.down.store(false, Ordering::SeqCst);
    assert!(sim.wait_settled(Duration::from_secs(20)).unwrap());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    client.shutdown();
    run.join().unwrap().unwrap();
    let events: Vec<_> = events.collect();
    assert!(events.iter().any(|e| matches!(
        e,
        alipay_msg_blocking::ClientEvent::SharedWindowFailed {
            op: "claim",
            fallback: false,
            ..
        }
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        alipay_msg_blocking::ClientEvent::SharedWindowRestored { .. }
    )));
    sim.shutdown();
}

#[test]
fn a_shared_window_without_a_store_is_refused() {
    let sim = simulator();
    let mut config = config_for(&sim);
    config.shared_window = Some(SharedWindowConfig::new());
    let Err(error) = Client::connect(config) else {
        panic!("a shared window without a store is refused");
    };
    assert!(
        matches!(&error, ClientError::Config(e) if e.to_string().contains("shared_window")),
        "{error}"
    );
    sim.shutdown();
}
