//! A message that arrives alone starts its handler on the task that awaits
//! `Client::run` (no hop to a task of its own at a trickle); these hold what that must
//! not change: a handler that panics before it first waits still answers FAIL, and a
//! handler that waits moves to a task of its own, so the next message is handled
//! meanwhile.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alipay_msg_simulator::{test_keys, Simulator, SimulatorOptions};
use alipay_msg_tokio::{Client, ClientConfig, Credentials};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

const API: &str = "alipay.open.mini.version.audit.passed";
const LIMIT: Duration = Duration::from_secs(20);

async fn connect(sim: &Simulator) -> Arc<Client> {
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
            .expect("the test keys load");
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    let client = timeout(LIMIT, Client::connect(config)).await;
    Arc::new(client.expect("connected in time").expect("connects"))
}

/// The first run of the message panics before the handler ever waits: FAIL, then
/// the redelivery succeeds, and `run` goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_panics_at_once_answers_fail() {
    let mut options = SimulatorOptions::with_test_keys();
    options.server.redelivery = vec![Duration::from_millis(20)];
    let sim = Simulator::start(options).await.expect("simulator");
    let client = connect(&sim).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let run = tokio::spawn({
        let (client, runs) = (client.clone(), runs.clone());
        async move {
            client
                .run(move |_message| {
                    let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(run > 1, "the first run panics on purpose");
                    async { Ok::<(), String>(()) }
                })
                .await
        }
    });
    let id = sim.push(API, r#"{"n":1}"#).await.expect("push");
    // The simulator's settled flag follows the inputs it has handled: wait for the
    // redelivery's run before asking it.
    timeout(LIMIT, async {
        while runs.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the redelivery runs");
    timeout(LIMIT, sim.wait_settled())
        .await
        .expect("settled in time")
        .expect("simulator runs");
    assert_eq!(sim.acked_messages().await.expect("acked"), vec![(id, 2)]);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert!(!run.is_finished(), "run goes on after a panic");
    timeout(LIMIT, client.shutdown()).await.expect("shut down");
    let result = timeout(LIMIT, run).await.expect("run returns");
    result.expect("no panic").expect("run ends well");
    sim.shutdown().await;
}

/// Message A's handler waits until message B's handler has run; A arrives alone, so
/// it starts on `run`'s task, and must leave it when it waits, or B is never taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_waits_does_not_hold_up_the_next_message() {
    let sim = Simulator::start(SimulatorOptions::with_test_keys())
        .await
        .expect("simulator");
    let client = connect(&sim).await;
    let (started_tx, mut started) = mpsc::unbounded_channel::<String>();
    let (release_tx, release) = oneshot::channel::<()>();
    let release = Arc::new(Mutex::new((Some(release), Some(release_tx))));
    let run = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .run(move |message| {
                    let (started_tx, release) = (started_tx.clone(), release.clone());
                    async move {
                        let biz = message.biz_content().to_owned();
                        let _ = started_tx.send(biz.clone());
                        if biz.contains("\"a\"") {
                            let wait = release.lock().expect("lock").0.take();
                            let wait = wait.expect("A runs once");
                            wait.await.map_err(|_| "never released".to_owned())
                        } else {
                            let release = release.lock().expect("lock").1.take();
                            let _ = release.expect("B runs once").send(());
                            Ok(())
                        }
                    }
                })
                .await
        }
    });
    sim.push(API, r#"{"n":"a"}"#).await.expect("push");
    let first = timeout(LIMIT, started.recv()).await.expect("A started");
    assert_eq!(first.as_deref(), Some(r#"{"n":"a"}"#));
    // A waits; B arrives alone too.
    sim.push(API, r#"{"n":"b"}"#).await.expect("push");
    let second = timeout(LIMIT, started.recv()).await.expect("B started");
    assert_eq!(second.as_deref(), Some(r#"{"n":"b"}"#));
    timeout(LIMIT, sim.wait_settled())
        .await
        .expect("both acked in time")
        .expect("simulator runs");
    assert_eq!(sim.counts().await.expect("counts").acked, 2);
    timeout(LIMIT, client.shutdown()).await.expect("shut down");
    let result = timeout(LIMIT, run).await.expect("run returns");
    result.expect("no panic").expect("run ends well");
    sim.shutdown().await;
}
