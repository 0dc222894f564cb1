//! What is particular to the async-std client, against the simulator over 127.0.0.1
//! (the shared end-to-end scenarios are in the conformance suite).
//!
//! The simulator runs on its own tokio runtime on a background thread
//! ([`Simulator::start_on_thread`]); its blocking methods are called through
//! `spawn_blocking` so that no executor thread ever waits on it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alipay_msg_async_std::{Client, ClientConfig, ClientError, ClientEvent, Credentials};
use alipay_msg_simulator::{test_keys, Simulator, SimulatorHandle, SimulatorOptions};
use async_std::task::{self};
use futures_lite::StreamExt;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(30);
const AUDIT: &str = "alipay.open.mini.version.audit.passed";

/// A simulator that redelivers quickly.
fn start_simulator(mut options: SimulatorOptions) -> Sim {
    options.server.redelivery = vec![Duration::from_millis(100)];
    options.server.ack_timeout = Duration::from_secs(3);
    Sim(Arc::new(Simulator::start_on_thread(options).unwrap()))
}

fn simulator() -> Sim {
    start_simulator(SimulatorOptions::with_test_keys())
}

/// The simulator's blocking handle, called off the executor threads.
#[derive(Clone)]
struct Sim(Arc<SimulatorHandle>);

impl Sim {
    async fn call<T, F>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(&SimulatorHandle) -> T + Send + 'static,
    {
        let sim = self.0.clone();
        task::spawn_blocking(move || f(&sim)).await
    }

    async fn push_n(&self, n: usize) -> Vec<String> {
        self.call(move |sim| {
            (0..n)
                .map(|i| {
                    let biz = json!({"mini_app_id": "2014072300007148", "n": i}).to_string();
                    sim.push(AUDIT, &biz).unwrap().as_str().to_owned()
                })
                .collect()
        })
        .await
    }

    async fn settle(&self) {
        assert!(
            self.call(|sim| sim.wait_settled(LIMIT)).await.unwrap(),
            "every message settled in time"
        );
    }

    fn config(&self) -> ClientConfig {
        let credentials =
            Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
                .unwrap();
        let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
        config.endpoint = self.0.endpoint();
        config
    }

    async fn client(&self) -> Arc<Client> {
        Arc::new(within(Client::connect(self.config())).await.unwrap())
    }
}

async fn within<T>(future: impl Future<Output = T>) -> T {
    async_std::future::timeout(LIMIT, future)
        .await
        .expect("finished in time")
}

#[test]
fn client_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Client>();
}

/// Counts its drops: held by a handler, observed after shutdown.
struct DropGuard(Arc<AtomicUsize>);

impl Drop for DropGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_std::test]
async fn no_task_outlives_shutdown() {
    let sim = simulator();
    let client = sim.client().await;
    let mut events = client.events();
    assert!(
        client.live_tasks() >= 2,
        "the driver and the connection's task run"
    );
    let (started, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (runner, st, dr) = (client.clone(), started.clone(), dropped.clone());
    let task = task::spawn(async move {
        runner
            .run(move |_msg| {
                let (st, guard) = (st.clone(), DropGuard(dr.clone()));
                async move {
                    let _guard = guard;
                    st.fetch_add(1, Ordering::SeqCst);
                    task::sleep(Duration::from_millis(200)).await;
                    Ok::<(), String>(())
                }
            })
            .await
    });
    sim.push_n(4).await;
    within(async {
        while started.load(Ordering::SeqCst) < 4 {
            task::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    within(client.shutdown()).await;
    assert_eq!(dropped.load(Ordering::SeqCst), 4, "every handler ended");
    assert_eq!(client.live_tasks(), 0, "no task of the client is left");
    within(task).await.unwrap();
    // The event stream ends after shutdown, with ShutdownComplete.
    let mut seen = Vec::new();
    while let Some(event) = within(events.recv()).await {
        seen.push(event);
    }
    assert_eq!(
        seen.last(),
        Some(&ClientEvent::ShutdownComplete),
        "{seen:?}"
    );
    assert!(matches!(
        client.deliveries(),
        Err(ClientError::AlreadyConsuming)
    ));
}

#[async_std::test]
async fn deliveries_stream_ack_fail_and_drop() {
    let sim = simulator();
    let client = sim.client().await;
    let mut deliveries = client.deliveries().unwrap();
    assert!(matches!(
        client.run(|_| async { Ok::<(), String>(()) }).await,
        Err(ClientError::AlreadyConsuming)
    ));
    let ids = sim.push_n(3).await;
    // Each message: FAIL, then dropped unanswered (FAIL), then acked.
    let consumer = task::spawn(async move {
        let mut seen: HashMap<String, usize> = HashMap::new();
        // Through the `Stream` implementation.
        while let Some(incoming) = StreamExt::next(&mut deliveries).await {
            let n = seen.entry(incoming.msg_id().to_owned()).or_default();
            *n += 1;
            match *n {
                1 => incoming.fail("not yet").await,
                2 => drop(incoming),
                _ => incoming.ack().await,
            }
        }
        seen
    });
    sim.settle().await;
    for (id, attempts) in sim.call(|sim| sim.acked_messages()).await.unwrap() {
        assert_eq!(attempts, 3, "{}: FAIL, dropped, SUCCESS", id.as_str());
    }
    within(client.shutdown()).await;
    let seen = within(consumer).await;
    assert_eq!(seen.len(), ids.len());
    assert!(seen.values().all(|n| *n == 3), "{seen:?}");
    assert_eq!(client.live_tasks(), 0);
}

/// Backpressure reaches the socket: with one delivery in flight and a slow handler,
/// the client stops reading while the handler runs, so the platform's burst (far more
/// bytes than the session keeps while paused: one frame + 64 KiB) waits in the socket
/// instead of overflowing the session, and every message is handled once, in order,
/// on one connection.
#[async_std::test]
async fn a_slow_handler_pauses_reading() {
    let sim = simulator();
    let mut config = sim.config();
    config.max_in_flight = 1;
    config.check_parallelism = 1;
    config.frame_limits.max_frame_bytes = 16 * 1024;
    let client = Arc::new(within(Client::connect(config)).await.unwrap());
    let mut events = client.events();
    let handled = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (runner, h) = (client.clone(), handled.clone());
    let run = task::spawn(async move {
        runner
            .run(move |msg| {
                let h = h.clone();
                async move {
                    task::sleep(Duration::from_millis(3)).await;
                    h.lock().unwrap().push(msg.msg_id().to_owned());
                    Ok::<(), String>(())
                }
            })
            .await
    });
    // 60 messages of about 4 KiB: 240 KiB against the session's 80 KiB while paused.
    let filler = "x".repeat(4000);
    let ids: Vec<String> = sim
        .call(move |sim| {
            (0..60)
                .map(|i| {
                    let biz = json!({"n": i, "filler": filler}).to_string();
                    sim.push(AUDIT, &biz).unwrap().as_str().to_owned()
                })
                .collect()
        })
        .await;
    sim.settle().await;
    within(client.shutdown()).await;
    within(run).await.unwrap();
    assert_eq!(*handled.lock().unwrap(), ids, "each once, in order");
    while let Some(event) = within(events.recv()).await {
        assert!(
            !matches!(event, ClientEvent::Disconnected { .. }),
            "the connection held: {event}"
        );
    }
    assert_eq!(client.live_tasks(), 0);
}
