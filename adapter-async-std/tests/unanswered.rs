//! Messages handed to the application that it will never answer are answered FAIL at
//! once, so that the platform delivers them again: those still in the stream when a
//! `Deliveries` is dropped, and those whose handlers a cancelled `run` had started.
//! (Unanswered, they would hold their in-flight slots, and the platform would see no
//! ack until the connection dropped.)
//!
//! The simulator runs on its own thread; its blocking methods are called on
//! `spawn_blocking` threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alipay_msg_async_std::{Client, ClientConfig, Credentials};
use alipay_msg_core::server::{MessageState, MsgId};
use alipay_msg_simulator::{test_keys, Simulator, SimulatorHandle, SimulatorOptions};
use async_std::task;

const API: &str = "alipay.open.mini.version.audit.passed";
const LIMIT: Duration = Duration::from_secs(20);

/// A simulator that waits for acks longer than the tests run: every ack it sees comes
/// from the client.
fn simulator() -> Arc<SimulatorHandle> {
    let mut options = SimulatorOptions::with_test_keys();
    options.server.ack_timeout = 6 * LIMIT;
    Arc::new(Simulator::start_on_thread(options).unwrap())
}

async fn client(sim: &SimulatorHandle) -> Arc<Client> {
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
            .unwrap();
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    let connect = Client::connect(config);
    Arc::new(
        async_std::future::timeout(LIMIT, connect)
            .await
            .unwrap()
            .unwrap(),
    )
}

async fn push(sim: &Arc<SimulatorHandle>, numbers: std::ops::Range<usize>) -> Vec<MsgId> {
    let sim = sim.clone();
    task::spawn_blocking(move || {
        numbers
            .map(|i| {
                let biz = format!(r#"{{"n":{i}}}"#);
                sim.push(API, &biz).unwrap()
            })
            .collect()
    })
    .await
}

/// Waits (polling the simulator) until `done` holds for the state of each of `ids`.
async fn each(
    sim: &Arc<SimulatorHandle>,
    ids: &[MsgId],
    what: &str,
    done: fn(MessageState) -> bool,
) {
    let (sim, ids, what) = (sim.clone(), ids.to_vec(), what.to_owned());
    task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + LIMIT;
        for id in ids {
            loop {
                let state = sim.message_state(&id).unwrap();
                if state.is_some_and(done) {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{what} within {LIMIT:?}: {id} is {state:?}"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    })
    .await;
}

/// Sent, waiting for the ack.
fn in_flight(state: MessageState) -> bool {
    matches!(state, MessageState::InFlight { attempt: 1, .. })
}

/// The first attempt was answered FAIL (the ack timeout is far away): the message
/// waits for its redelivery, or is on its way again.
fn failed_once(state: MessageState) -> bool {
    matches!(
        state,
        MessageState::WaitingRetry { attempts: 1.., .. }
            | MessageState::Queued { attempts: 1.. }
            | MessageState::InFlight { attempt: 2.., .. }
    )
}

#[async_std::test]
async fn messages_left_in_dropped_deliveries_are_answered_fail() {
    let sim = simulator();
    let client = client(&sim).await;
    let mut deliveries = client.deliveries().unwrap();
    let mut ids = push(&sim, 0..1).await;
    let next = async_std::future::timeout(LIMIT, deliveries.next());
    let first = next.await.unwrap().unwrap();
    assert_eq!(first.msg_id(), ids[0].as_str());
    // The consumer is attached (it took the first): the others are delivered to it.
    ids.extend(push(&sim, 1..4).await);
    each(&sim, &ids, "sent", in_flight).await;
    // A PRODUCE_ACK follows the four CONSUMEs on the connection, and the client hands
    // out what it reads in order: once the send returns, the other three wait in the
    // stream.
    let biz = serde_json::json!({"shop_id": "1001"});
    let ack = client
        .send("alipay.open.app.openbizmock.message.send", &biz)
        .await
        .unwrap();
    assert!(ack.is_success(), "{ack}");
    first.ack().await;
    drop(deliveries);
    each(&sim, &ids[1..], "answered FAIL", failed_once).await;
    async_std::future::timeout(LIMIT, client.shutdown())
        .await
        .unwrap();
    assert_eq!(client.live_tasks(), 0);
}

#[async_std::test]
async fn handlers_of_a_cancelled_run_are_answered_fail() {
    let sim = simulator();
    let client = client(&sim).await;
    let started = Arc::new(AtomicUsize::new(0));
    let (runner, s) = (client.clone(), started.clone());
    let run = task::spawn(async move {
        runner
            .run(move |_msg| {
                s.fetch_add(1, Ordering::SeqCst);
                // Never finishes.
                std::future::pending::<Result<(), String>>()
            })
            .await
    });
    let mut ids = push(&sim, 0..1).await;
    let started_at_least = |n| {
        let started = started.clone();
        async_std::future::timeout(LIMIT, async move {
            while started.load(Ordering::SeqCst) < n {
                task::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    started_at_least(1).await.unwrap();
    // The consumer is attached (it took the first): the others are delivered to it.
    ids.extend(push(&sim, 1..3).await);
    started_at_least(3).await.unwrap();
    assert!(run.cancel().await.is_none(), "run was still running");
    each(&sim, &ids, "answered FAIL", failed_once).await;
    async_std::future::timeout(LIMIT, client.shutdown())
        .await
        .unwrap();
    assert_eq!(client.live_tasks(), 0);
}
