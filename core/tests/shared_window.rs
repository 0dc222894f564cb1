//! The shared duplicate window, rule by rule (module `alipay_msg_core::window`): the
//! session claims before delivery, acks SUCCESS without the handler for an id handled
//! elsewhere, FAILs one claimed elsewhere, records a success before its SUCCESS ack,
//! releases a failure's claim, and FAILs (and reports) when the store is away, or falls
//! back to the local window when told to. The store is `support::MemWindow` on
//! simulated time; `alipay-msg-redis` has the same semantics on Redis.

mod support;

use std::time::Duration;

use alipay_msg_core::client::{ClientSession, ConfigError, Event, Outcome, RejectReason};
use alipay_msg_core::consume::AckStatus;
use alipay_msg_core::server::ServerEvent;
use alipay_msg_core::window::{
    SharedWindowConfig, StoreFailure, WindowAnswer, WindowError, WindowKey, WindowKind, WindowOp,
    HANDLED,
};

use support::{app_credentials, client_config, seed_bytes, Pair, Policy, WindowMode, APP, UNIX0};

const SEC: Duration = Duration::from_secs(1);
const LEASE: Duration = Duration::from_secs(30);

fn shared() -> SharedWindowConfig {
    SharedWindowConfig::new().with_lease(LEASE)
}

/// A connected pair with a shared window, the handler holding deliveries and the store
/// answering only when the test says.
fn pair_with(config: SharedWindowConfig) -> Pair {
    let mut pair = Pair::builder()
        .client(|c| c.shared_window = Some(config))
        .server(|s| s.ack_timeout = Duration::from_secs(3600))
        .build();
    pair.handler.policy = Policy::Hold;
    pair.window_mode = WindowMode::Hold;
    pair.connect();
    pair
}

fn key(msg_id: &str) -> String {
    WindowKey {
        app_id: APP.into(),
        kind: WindowKind::Msg,
        id: msg_id.into(),
    }
    .render("test")
}

fn ops(pair: &Pair) -> Vec<&'static str> {
    pair.window_log.iter().map(|(_, q)| q.op.name()).collect()
}

fn store_answers(
    store: &mut support::MemWindow,
    q: &alipay_msg_core::window::WindowQuery,
    now: std::time::Instant,
) -> Result<WindowAnswer, WindowError> {
    Ok(store.answer(q, now))
}

fn window_failures(pair: &Pair) -> Vec<(String, &'static str, bool)> {
    pair.client_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::SharedWindowFailed {
                msg_id,
                op,
                fallback,
                ..
            } => Some((msg_id.clone(), *op, *fallback)),
            _ => None,
        })
        .collect()
}

#[test]
fn claimed_before_delivery_recorded_before_the_success_ack() {
    let mut pair = pair_with(shared());
    let id = pair.push(1).remove(0);
    // Claimed first: nothing delivered, nothing acked until the store answers.
    assert_eq!(ops(&pair), ["claim"]);
    let (_, claim) = &pair.window_log[0];
    assert_eq!(claim.key.kind, WindowKind::Msg);
    assert_eq!(claim.key.app_id, APP);
    assert_eq!(claim.key.id, id.as_str());
    assert!(matches!(&claim.op, WindowOp::Claim { lease, .. } if *lease == LEASE));
    assert!(pair.msg(id.as_str()).handled.is_empty());
    assert_eq!(
        pair.client.in_flight(),
        1,
        "a claim out counts as in flight"
    );

    pair.answer_window(store_answers);
    assert_eq!(
        pair.msg(id.as_str()).handled.len(),
        1,
        "delivered once claimed"
    );
    assert!(pair
        .window
        .get(&key(id.as_str()), pair.now)
        .is_some_and(|v| v != HANDLED));

    // The handler succeeds: the success is recorded, and only then acked.
    pair.complete(id.as_str(), Outcome::Success);
    assert_eq!(ops(&pair), ["claim", "record"]);
    assert!(
        pair.msg(id.as_str()).acks.is_empty(),
        "no SUCCESS before the record is answered"
    );
    pair.advance(SEC);
    assert!(pair.msg(id.as_str()).acks.is_empty());
    pair.answer_window(store_answers);
    let record = pair.msg(id.as_str());
    assert_eq!(record.acks.len(), 1);
    assert_eq!(record.acks[0].status, AckStatus::Success);
    let recorded_at = pair
        .window_answers
        .iter()
        .find(|(_, q, _)| q.op.name() == "record")
        .map(|(s, _, a)| {
            assert_eq!(a, &Ok(WindowAnswer::Recorded));
            *s
        })
        .unwrap();
    assert!(
        recorded_at < record.acks[0].stamp,
        "recorded before the ack"
    );
    assert!(record.no_success_ack_before_success());
    assert_eq!(pair.window.get(&key(id.as_str()), pair.now), Some(HANDLED));
    assert_eq!(pair.client.in_flight(), 0);
}

#[test]
fn handled_elsewhere_is_acked_success_without_the_handler() {
    let mut pair = pair_with(shared());
    let id = pair.push(1).remove(0);
    // Another instance handled it.
    let now = pair.now;
    pair.window
        .set(&key(id.as_str()), HANDLED, Duration::from_secs(3600), now);
    pair.answer_window(store_answers);
    let record = pair.msg(id.as_str());
    assert!(record.handled.is_empty(), "the handler never ran");
    assert_eq!(record.acks.len(), 1);
    assert_eq!(record.acks[0].status, AckStatus::Success);
    assert_eq!(record.duplicates, [(record.duplicates[0].0, false)]);
    // Nothing to release or record: the success is the other instance's.
    assert_eq!(ops(&pair), ["claim"]);
    assert!(pair.server.is_settled());
}

#[test]
fn held_elsewhere_is_acked_fail_then_handled_there() {
    let mut pair = Pair::builder()
        .client(|c| c.shared_window = Some(shared()))
        .build();
    pair.window_mode = WindowMode::Hold;
    pair.connect();
    let id = pair.push(1).remove(0);
    let now = pair.now;
    // Another instance holds a live claim on it.
    pair.window
        .set(&key(id.as_str()), "other-instance-token", LEASE, now);
    pair.answer_window(store_answers);
    let record = pair.msg(id.as_str());
    assert!(record.handled.is_empty());
    assert_eq!(
        record.acks.iter().map(|a| a.status).collect::<Vec<_>>(),
        [AckStatus::Fail]
    );
    assert!(pair.client_events.iter().any(|(_, e)| matches!(
        e,
        Event::Rejected { msg_id: Some(m), reason: RejectReason::ClaimedElsewhere } if m == id.as_str()
    )));
    // Not released: the claim is the other instance's.
    assert_eq!(ops(&pair), ["claim"]);
    assert_eq!(
        pair.window.get(&key(id.as_str()), pair.now),
        Some("other-instance-token")
    );

    // The other instance records its success; the platform's redelivery is SUCCESS.
    let now = pair.now;
    pair.window
        .set(&key(id.as_str()), HANDLED, Duration::from_secs(3600), now);
    pair.window_mode = WindowMode::Answer;
    pair.advance(2 * SEC);
    let record = pair.msg(id.as_str());
    assert!(
        record.handled.is_empty(),
        "handled by the other instance only"
    );
    assert_eq!(
        record.acks.iter().map(|a| a.status).collect::<Vec<_>>(),
        [AckStatus::Fail, AckStatus::Success]
    );
}

#[test]
fn a_failure_releases_the_claim_and_the_retry_is_claimed_again() {
    let mut pair = Pair::builder()
        .client(|c| c.shared_window = Some(shared()))
        .build();
    pair.handler.fail_first = 1;
    pair.connect();
    let id = pair.push(1).remove(0);
    assert_eq!(ops(&pair), ["claim", "release"]);
    let (_, release) = &pair.window_log[1];
    let (_, claim) = &pair.window_log[0];
    match (&claim.op, &release.op) {
        (WindowOp::Claim { token: a, .. }, WindowOp::Release { token: b }) => assert_eq!(a, b),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        pair.window.get(&key(id.as_str()), pair.now),
        None,
        "released"
    );
    assert_eq!(pair.msg(id.as_str()).acks[0].status, AckStatus::Fail);

    // The redelivery is claimed anew (a new token), handled and recorded.
    pair.advance(2 * SEC);
    assert_eq!(ops(&pair), ["claim", "release", "claim", "record"]);
    let record = pair.msg(id.as_str());
    assert_eq!(record.handled.len(), 2);
    assert_eq!(
        record.acks.iter().map(|a| a.status).collect::<Vec<_>>(),
        [AckStatus::Fail, AckStatus::Success]
    );
    assert_eq!(pair.window.get(&key(id.as_str()), pair.now), Some(HANDLED));
    let tokens: Vec<_> = pair
        .window_log
        .iter()
        .filter_map(|(_, q)| match &q.op {
            WindowOp::Claim { token, .. } => Some(token.clone()),
            _ => None,
        })
        .collect();
    assert_ne!(tokens[0], tokens[1]);
}

#[test]
fn store_down_acks_fail_reports_it_and_recovers() {
    let mut pair = Pair::builder()
        .client(|c| c.shared_window = Some(shared()))
        .build();
    pair.window_mode = WindowMode::Down;
    pair.connect();
    let ids = pair.push(3);
    for id in &ids {
        let record = pair.msg(id.as_str());
        assert!(
            record.handled.is_empty(),
            "nothing delivered without a claim"
        );
        assert_eq!(
            record.acks.iter().map(|a| a.status).collect::<Vec<_>>(),
            [AckStatus::Fail]
        );
    }
    assert_eq!(
        window_failures(&pair),
        ids.iter()
            .map(|id| (id.as_str().to_owned(), "claim", false))
            .collect::<Vec<_>>()
    );

    // The store is back: the platform's redeliveries are handled, once each.
    pair.window_mode = WindowMode::Answer;
    pair.advance(2 * SEC);
    for id in &ids {
        let record = pair.msg(id.as_str());
        assert_eq!(record.handled.len(), 1);
        assert_eq!(record.acks.last().unwrap().status, AckStatus::Success);
        assert_eq!(pair.window.get(&key(id.as_str()), pair.now), Some(HANDLED));
    }
    let restored: Vec<u64> = pair
        .client_events
        .iter()
        .filter_map(|(_, e)| match e {
            // At least the three claims failed (their releases too).
            Event::SharedWindowRestored { failures } => Some(*failures),
            _ => None,
        })
        .collect();
    assert_eq!(restored.len(), 1);
    assert!(restored[0] >= 3, "{restored:?}");
}

#[test]
fn a_record_that_fails_is_acked_fail_and_recorded_again_in_the_background() {
    let mut pair = pair_with(shared());
    let id = pair.push(1).remove(0);
    pair.answer_window(store_answers); // claimed, delivered
    pair.complete(id.as_str(), Outcome::Success);
    assert_eq!(ops(&pair), ["claim", "record"]);
    pair.answer_window(|_, _, _| Err(WindowError("timed out".into())));
    let record = pair.msg(id.as_str());
    assert_eq!(
        record.acks.iter().map(|a| a.status).collect::<Vec<_>>(),
        [AckStatus::Fail],
        "no SUCCESS without the record"
    );
    assert_eq!(
        window_failures(&pair),
        [(id.as_str().to_owned(), "record", false)]
    );
    // The claim is kept (not released): no other instance takes the message meanwhile.
    assert!(pair
        .window
        .get(&key(id.as_str()), pair.now)
        .is_some_and(|v| v != HANDLED));
    assert_eq!(ops(&pair), ["claim", "record"]);

    // 1 s after the failure the session records it again (the platform's redelivery
    // comes meanwhile and is answered FAIL: not recorded yet).
    pair.advance(SEC);
    assert_eq!(ops(&pair), ["claim", "record", "record"]);
    assert_eq!(pair.msg(id.as_str()).handled.len(), 1);
    pair.answer_window(store_answers);
    assert_eq!(pair.window.get(&key(id.as_str()), pair.now), Some(HANDLED));
    // The platform redelivers (FAIL earlier): answered SUCCESS from the local window.
    pair.window_mode = WindowMode::Answer;
    pair.advance(3 * SEC);
    let record = pair.msg(id.as_str());
    assert_eq!(record.handled.len(), 1, "handled once");
    assert_eq!(record.acks.last().unwrap().status, AckStatus::Success);
    assert!(pair.server.is_settled());
}

#[test]
fn a_redelivery_before_the_record_lands_is_failed_not_succeeded() {
    let mut pair = Pair::builder()
        .client(|c| c.shared_window = Some(shared().with_record_retry(Duration::from_secs(3600))))
        .build();
    pair.window_mode = WindowMode::Hold;
    pair.handler.policy = Policy::Hold;
    pair.connect();
    let id = pair.push(1).remove(0);
    pair.answer_window(store_answers);
    pair.complete(id.as_str(), Outcome::Success);
    pair.answer_window(|_, _, _| Err(WindowError("timed out".into())));
    // The platform redelivers after the FAIL; the store is still unanswered.
    pair.advance(2 * SEC);
    let record = pair.msg(id.as_str());
    assert_eq!(record.handled.len(), 1);
    assert_eq!(
        record.acks.iter().map(|a| a.status).collect::<Vec<_>>(),
        [AckStatus::Fail, AckStatus::Fail]
    );
    assert!(pair.client_events.iter().any(|(_, e)| matches!(
        e,
        Event::Rejected {
            reason: RejectReason::NotRecorded,
            ..
        }
    )));
}

#[test]
fn fallback_to_the_local_window_when_the_store_is_away() {
    let mut pair = Pair::builder()
        .client(|c| c.shared_window = Some(shared().with_store_failure(StoreFailure::LocalWindow)))
        .build();
    pair.window_mode = WindowMode::Down;
    pair.connect();
    pair.server.faults_mut().duplicate_consumes = 1;
    let id = pair.push(1).remove(0);
    let record = pair.msg(id.as_str());
    assert_eq!(record.handled.len(), 1, "delivered on the local window");
    assert_eq!(record.acks[0].status, AckStatus::Success);
    // The duplicate copy is suppressed by the local window.
    assert_eq!(record.acks.len(), 2);
    assert!(record.acks.iter().all(|a| a.status == AckStatus::Success));
    assert_eq!(
        window_failures(&pair),
        [
            (id.as_str().to_owned(), "claim", true),
            (id.as_str().to_owned(), "record", true)
        ]
    );
}

#[test]
fn claims_out_count_against_max_in_flight() {
    let mut pair = Pair::builder()
        .client(|c| {
            c.shared_window = Some(shared());
            c.max_in_flight = 2;
        })
        .build();
    pair.window_mode = WindowMode::Hold;
    pair.connect();
    let ids = pair.push(5);
    assert_eq!(pair.window_queue.len(), 2, "two claims out, no more read");
    assert!(!pair.client.wants_read());
    pair.window_mode = WindowMode::Answer;
    pair.advance(SEC);
    for id in &ids {
        assert_eq!(pair.msg(id.as_str()).successes(), 1);
    }
    assert!(pair.server.is_settled());
    assert_eq!(
        pair.count_server_events(|e| matches!(e, ServerEvent::UnexpectedAck { .. })),
        0
    );
}

#[test]
fn without_a_shared_window_the_session_asks_nothing() {
    let mut pair = Pair::connected();
    pair.server.faults_mut().duplicate_consumes = 1;
    pair.handler.fail_first = 1;
    let ids = pair.push(20);
    pair.advance(3 * SEC);
    assert!(pair.window_log.is_empty());
    for id in &ids {
        assert_eq!(pair.msg(id.as_str()).successes(), 1);
    }
}

#[test]
fn settings_are_checked_at_start() {
    let mut config = client_config(app_credentials());
    config.shared_window = Some(SharedWindowConfig::new().with_lease(Duration::ZERO));
    let error =
        ClientSession::new(config, seed_bytes(1), std::time::Instant::now(), UNIX0).unwrap_err();
    assert!(matches!(
        error,
        ConfigError::InvalidSetting {
            name: "shared_window.lease",
            ..
        }
    ));
}

#[test]
fn background_records_are_bounded_and_never_busy_wait() {
    // max_in_flight 4: one background record out at a time. Two successes whose record
    // failed, the store silent: one retry goes out, the other waits for room, and the
    // session's next deadline is not in the past meanwhile (the harness checks that
    // every wakeup is after now).
    let mut pair = Pair::builder()
        .client(|c| {
            c.shared_window = Some(shared());
            c.max_in_flight = 4;
        })
        .server(|s| s.ack_timeout = Duration::from_secs(3600))
        .build();
    pair.handler.policy = Policy::Hold;
    pair.window_mode = WindowMode::Hold;
    pair.connect();
    let ids = pair.push(2);
    pair.answer_window(store_answers); // both claimed, delivered
    for id in &ids {
        pair.complete(id.as_str(), Outcome::Success);
    }
    pair.answer_window(|_, _, _| Err(WindowError("timed out".into())));
    pair.advance(SEC);
    assert_eq!(
        pair.window_queue.len(),
        1,
        "one background record at a time"
    );
    if let Some(deadline) = pair.client_deadline {
        assert!(
            deadline > pair.now,
            "no deadline in the past while waiting for room"
        );
    }
    pair.advance(5 * SEC);
    assert_eq!(pair.window_queue.len(), 1);
    // The store answers: the other is recorded next.
    pair.answer_window(store_answers);
    pair.advance(2 * SEC);
    pair.answer_window(store_answers);
    for id in &ids {
        assert_eq!(pair.window.get(&key(id.as_str()), pair.now), Some(HANDLED));
    }
}

/// Review finding: a release (or background record) out holds a place in
/// `max_in_flight`, so when its answer comes back reading must resume — frames read
/// meanwhile wait in the session's stash, and nothing else would read them (the
/// connection then hung with no dead-peer check, since that runs only while reading).
#[test]
fn reading_resumes_when_a_release_is_answered() {
    let mut pair = Pair::builder()
        .client(|c| {
            c.shared_window = Some(shared());
            c.max_in_flight = 1;
        })
        .build();
    pair.window_mode = WindowMode::Down;
    pair.coalesce_reads = true;
    pair.connect();
    // Three frames in one read: the first claimed (store down: FAIL, its release out),
    // the others kept until there is room again.
    let ids = pair.push(3);
    pair.window_mode = WindowMode::Answer;
    pair.advance(3 * SEC);
    for id in &ids {
        let record = pair.msg(id.as_str());
        assert_eq!(record.handled.len(), 1, "{} handled once", id.as_str());
        assert_eq!(record.acks.last().unwrap().status, AckStatus::Success);
    }
    assert!(pair.server.is_settled());
}
