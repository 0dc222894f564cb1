//! Messages still waiting in the stream when a `Deliveries` is dropped are answered
//! FAIL at once, so that the platform delivers them again (unanswered, they would hold
//! their in-flight slots, and the platform would see no ack until the connection
//! dropped).

use std::time::{Duration, Instant};

use alipay_msg_blocking::{Client, ClientConfig, Credentials};
use alipay_msg_core::server::{MessageState, MsgId};
use alipay_msg_simulator::{test_keys, Simulator, SimulatorHandle, SimulatorOptions};

const LIMIT: Duration = Duration::from_secs(20);
const MSG_API: &str = "alipay.open.mini.version.audit.passed";

/// Waits until `done` holds for the state of each of `ids`.
fn each(sim: &SimulatorHandle, ids: &[MsgId], what: &str, done: fn(MessageState) -> bool) {
    let deadline = Instant::now() + LIMIT;
    for id in ids {
        loop {
            let state = sim.message_state(id).unwrap();
            if state.is_some_and(done) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what} within {LIMIT:?}: {id} is {state:?}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn messages_left_in_dropped_deliveries_are_answered_fail() {
    // Acks are awaited longer than the test runs: every ack seen comes from the client.
    let mut options = SimulatorOptions::with_test_keys();
    options.server.ack_timeout = 6 * LIMIT;
    let sim = Simulator::start_on_thread(options).unwrap();
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
            .unwrap();
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    let client = Client::connect_timeout(config, LIMIT).unwrap();
    let deliveries = client.deliveries().unwrap();
    let push = |n: usize| sim.push(MSG_API, &format!(r#"{{"n":{n}}}"#)).unwrap();
    let mut ids = vec![push(0)];
    let first = deliveries.recv_timeout(LIMIT).unwrap();
    assert_eq!(first.msg_id(), ids[0].as_str());
    // The consumer is attached (it took the first): the others are delivered to it.
    ids.extend((1..4).map(push));
    each(&sim, &ids, "sent", |state| {
        matches!(state, MessageState::InFlight { attempt: 1, .. })
    });
    // A PRODUCE_ACK follows the four CONSUMEs on the connection, and the client hands
    // out what it reads in order: once the send returns, the other three wait in the
    // stream.
    let ack = client
        .send(
            "alipay.open.app.openbizmock.message.send",
            &serde_json::json!({"shop_id": "1001"}),
        )
        .unwrap();
    assert!(ack.is_success(), "{ack}");
    first.ack();
    drop(deliveries);
    // Answered FAIL (the ack timeout is far away): each waits for its redelivery, or is
    // on its way again.
    each(&sim, &ids[1..], "answered FAIL", |state| {
        matches!(
            state,
            MessageState::WaitingRetry { attempts: 1.., .. }
                | MessageState::Queued { attempts: 1.. }
                | MessageState::InFlight { attempt: 2.., .. }
        )
    });
    client.shutdown();
    sim.shutdown();
}
