//! No handler task of the tokio client outlives `shutdown()`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alipay_msg_simulator::{test_keys, Simulator, SimulatorOptions};
use alipay_msg_tokio::{Client, ClientConfig, Credentials};

/// Counts handler futures that have ended (completed or dropped).
struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_handler_task_outlives_shutdown() {
    let sim = Simulator::start(SimulatorOptions::with_test_keys())
        .await
        .unwrap();
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
            .unwrap();
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    let client = Arc::new(Client::connect(config).await.unwrap());
    let (started, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (runner, s, e) = (client.clone(), started.clone(), ended.clone());
    let run = tokio::spawn(async move {
        runner
            .run(move |_msg| {
                let (s, e) = (s.clone(), e.clone());
                async move {
                    let _guard = Guard(e);
                    s.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok::<(), String>(())
                }
            })
            .await
    });
    for i in 0..4 {
        sim.push(
            "alipay.open.mini.version.audit.passed",
            &format!("{{\"n\":{i}}}"),
        )
        .await
        .unwrap();
    }
    tokio::time::timeout(Duration::from_secs(10), async {
        while started.load(Ordering::SeqCst) < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    client.shutdown().await;
    // Every handler future has ended by the time shutdown returns, and `run` is done.
    assert_eq!(ended.load(Ordering::SeqCst), 4);
    tokio::time::timeout(Duration::from_secs(1), run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    sim.shutdown().await;
}
