//! A session with no consumer attached (`ClientSession::set_consumer(false)`): a client
//! that only sends answers pushes FAIL after `consumer_grace`, so that the platform
//! redelivers them to a connection that consumes (issue 18, item 1); a consumer that
//! attaches within the grace gets them, in order. Simulated time (`support::Pair`).

mod support;

use std::time::Duration;

use alipay_msg_core::client::{Event, RejectReason};
use alipay_msg_core::consume::AckStatus;
use support::Pair;

fn detached(max_in_flight: usize) -> Pair {
    let mut pair = Pair::builder()
        .client(|c| c.max_in_flight = max_in_flight)
        .build();
    let now = pair.now;
    pair.client.set_consumer(false, now);
    pair.connect();
    pair
}

fn messages(pair: &Pair) -> Vec<String> {
    pair.client_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Message(d) => Some(d.msg_id().to_owned()),
            _ => None,
        })
        .collect()
}

#[test]
fn without_a_consumer_a_push_is_failed_after_the_grace() {
    let mut pair = detached(64);
    let id = pair.push(1).remove(0);
    pair.advance(Duration::from_millis(400));
    assert_eq!(pair.client.waiting_for_consumer(), 1);
    assert_eq!(pair.msg(id.as_str()).acks.len(), 0, "nothing answered yet");

    pair.advance(Duration::from_millis(200));
    let record = pair.msg(id.as_str());
    assert_eq!(record.acks_with(AckStatus::Fail), 1);
    assert!(record.handled.is_empty(), "never handed out");
    assert_eq!(
        pair.count_events(|e| matches!(
            e,
            Event::Rejected {
                reason: RejectReason::NoConsumer { waited },
                ..
            } if *waited == Duration::from_millis(500)
        )),
        1
    );
    assert_eq!(pair.client.in_flight(), 0);
    assert_eq!(pair.client.waiting_for_consumer(), 0);
}

#[test]
fn a_consumer_attached_within_the_grace_gets_the_held_messages_in_order() {
    let mut pair = detached(64);
    let ids = pair.push(3);
    pair.advance(Duration::from_millis(300));
    assert!(messages(&pair).is_empty());
    let now = pair.now;
    pair.client.set_consumer(true, now);
    pair.advance(Duration::from_secs(1));
    let expected: Vec<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
    assert_eq!(messages(&pair), expected);
    for id in &ids {
        let record = pair.msg(id.as_str());
        assert_eq!(record.acks_with(AckStatus::Success), 1);
        assert_eq!(record.acks_with(AckStatus::Fail), 0);
    }
}

#[test]
fn held_messages_count_toward_max_in_flight() {
    let mut pair = detached(2);
    pair.push(3);
    pair.advance(Duration::from_millis(100));
    assert_eq!(pair.client.waiting_for_consumer(), 2);
    assert_eq!(pair.client.in_flight(), 2);
    assert!(!pair.client.wants_read(), "reading pauses at max_in_flight");
}

#[test]
fn shutdown_fails_held_messages_at_once() {
    let mut pair = detached(64);
    let id = pair.push(1).remove(0);
    pair.advance(Duration::from_millis(100));
    let now = pair.now;
    pair.client.shutdown(now);
    pair.drive();
    assert_eq!(pair.msg(id.as_str()).acks_with(AckStatus::Fail), 1);
    assert_eq!(
        pair.count_events(|e| matches!(e, Event::ShutdownComplete)),
        1
    );
    assert!(pair.elapsed() < Duration::from_secs(1));
}
