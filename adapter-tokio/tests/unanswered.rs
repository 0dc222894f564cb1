//! Messages handed to the application that it will never answer are answered FAIL at
//! once, so that the platform delivers them again: those still in the stream when a
//! `Deliveries` is dropped, and those whose handlers a cancelled `run` had started.
//! (Unanswered, they would hold their in-flight slots, and the platform would see no
//! ack until the connection dropped.)

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alipay_msg_core::consume::AckStatus;
use alipay_msg_core::server::ServerEvent;
use alipay_msg_simulator::{test_keys, Simulator, SimulatorEvent, SimulatorOptions};
use alipay_msg_tokio::{Client, ClientConfig, Credentials};
use tokio::sync::broadcast;
use tokio::time::timeout;

const API: &str = "alipay.open.mini.version.audit.passed";
const LIMIT: Duration = Duration::from_secs(20);

/// A simulator that waits for acks longer than the tests run: every ack it sees comes
/// from the client.
async fn simulator() -> Simulator {
    let mut options = SimulatorOptions::with_test_keys();
    options.server.ack_timeout = 6 * LIMIT;
    Simulator::start(options).await.unwrap()
}

async fn client(sim: &Simulator) -> Arc<Client> {
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
            .unwrap();
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    Arc::new(
        timeout(LIMIT, Client::connect(config))
            .await
            .unwrap()
            .unwrap(),
    )
}

async fn push(sim: &Simulator, numbers: std::ops::Range<usize>) -> Vec<String> {
    let mut ids = Vec::new();
    for i in numbers {
        let id = sim.push(API, &format!(r#"{{"n":{i}}}"#)).await.unwrap();
        ids.push(id.as_str().to_owned());
    }
    ids
}

/// Waits until the platform has sent `n` CONSUMEs.
async fn delivered(events: &mut broadcast::Receiver<SimulatorEvent>, n: usize) {
    let mut seen = 0;
    while seen < n {
        let event = timeout(LIMIT, events.recv()).await.unwrap().unwrap();
        if let SimulatorEvent::Server(ServerEvent::Delivered { .. }) = event {
            seen += 1;
        }
    }
}

/// Waits until the platform has an ack with `status` for each of `ids`.
async fn acked(
    events: &mut broadcast::Receiver<SimulatorEvent>,
    ids: &[String],
    status: AckStatus,
) {
    let mut waiting: HashSet<&str> = ids.iter().map(String::as_str).collect();
    while !waiting.is_empty() {
        let event = timeout(LIMIT, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {status:?} ack within {LIMIT:?} for {waiting:?}"))
            .unwrap();
        if let SimulatorEvent::Server(ServerEvent::Acked {
            msg_id, status: s, ..
        }) = event
        {
            if s == status {
                waiting.remove(msg_id.as_str());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_left_in_dropped_deliveries_are_answered_fail() {
    let sim = simulator().await;
    let client = client(&sim).await;
    let mut events = sim.events();
    let mut deliveries = client.deliveries().unwrap();
    let mut ids = push(&sim, 0..1).await;
    let first = timeout(LIMIT, deliveries.next()).await.unwrap().unwrap();
    assert_eq!(first.msg_id(), ids[0]);
    // The consumer is attached (it took the first): the others are delivered to it.
    ids.extend(push(&sim, 1..4).await);
    delivered(&mut events, 4).await;
    // A PRODUCE_ACK follows the four CONSUMEs on the connection, and the client hands
    // out what it reads in order: once the send returns, the other three wait in the
    // stream.
    let ack = client
        .send(
            "alipay.open.app.openbizmock.message.send",
            &serde_json::json!({"shop_id": "1001"}),
        )
        .await
        .unwrap();
    assert!(ack.is_success(), "{ack}");
    first.ack().await;
    drop(deliveries);
    acked(&mut events, &ids[1..], AckStatus::Fail).await;
    timeout(LIMIT, client.shutdown()).await.unwrap();
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_of_a_cancelled_run_are_answered_fail() {
    let sim = simulator().await;
    let client = client(&sim).await;
    let mut events = sim.events();
    let started = Arc::new(AtomicUsize::new(0));
    let (runner, s) = (client.clone(), started.clone());
    let run = tokio::spawn(async move {
        runner
            .run(move |_msg| {
                s.fetch_add(1, Ordering::SeqCst);
                // Never finishes.
                std::future::pending::<Result<(), String>>()
            })
            .await
    });
    let started_at_least = |n| {
        let started = started.clone();
        timeout(LIMIT, async move {
            while started.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut ids = push(&sim, 0..1).await;
    started_at_least(1).await.unwrap();
    // The consumer is attached (it took the first): the others are delivered to it.
    ids.extend(push(&sim, 1..3).await);
    started_at_least(3).await.unwrap();
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());
    acked(&mut events, &ids, AckStatus::Fail).await;
    timeout(LIMIT, client.shutdown()).await.unwrap();
    sim.shutdown().await;
}
