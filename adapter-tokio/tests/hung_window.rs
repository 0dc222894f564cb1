//! A shared duplicate window whose store never answers (a network partition with no
//! timeout of its own): the message waits, nothing is handled, and shutdown — which
//! waits for the message in flight up to `shutdown_timeout`, as for a handler — still
//! ends every task of the client, the query's too, before it returns.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alipay_msg_simulator::{test_keys, Simulator, SimulatorOptions};
use alipay_msg_tokio::core::window::{
    AsyncWindowStore, SharedWindowConfig, WindowFuture, WindowQuery,
};
use alipay_msg_tokio::{Client, ClientConfig, Credentials, Network};
use tokio::time::timeout;

const API: &str = "alipay.open.mini.version.audit.passed";
const LIMIT: Duration = Duration::from_secs(20);

/// Counts the queries and answers none of them.
#[derive(Default)]
struct HungStore {
    queries: AtomicUsize,
}

impl AsyncWindowStore for HungStore {
    fn answer<'a>(&'a self, _query: &'a WindowQuery) -> WindowFuture<'a> {
        self.queries.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::pending())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_abandons_the_queries_of_a_store_that_never_answers() {
    let sim = Simulator::start(SimulatorOptions::with_test_keys())
        .await
        .expect("simulator");
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
            .expect("the test keys load");
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    config.shared_window = Some(SharedWindowConfig::new());
    config.shutdown_timeout = Duration::from_millis(300);
    let store = Arc::new(HungStore::default());
    let connecting = Client::connect_with_window(config, Network::default(), store.clone());
    let client = Arc::new(
        timeout(LIMIT, connecting)
            .await
            .expect("connected in time")
            .expect("connects"),
    );
    let handled = Arc::new(AtomicUsize::new(0));
    let run = tokio::spawn({
        let (client, handled) = (client.clone(), handled.clone());
        async move {
            client
                .run(move |_message| {
                    handled.fetch_add(1, Ordering::SeqCst);
                    async { Ok::<(), String>(()) }
                })
                .await
        }
    });
    sim.push(API, r#"{"n":1}"#).await.expect("push");
    timeout(LIMIT, async {
        while store.queries.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the claim is asked");
    timeout(LIMIT, client.shutdown()).await.expect("shut down");
    assert_eq!(client.live_tasks(), 0, "no task of the client is left");
    let result = timeout(LIMIT, run).await.expect("run returns");
    result.expect("no panic").expect("run ends well");
    assert_eq!(
        handled.load(Ordering::SeqCst),
        0,
        "nothing handled unclaimed"
    );
    sim.shutdown().await;
}
