//! The client and the platform side run against each other in simulated time
//! (`support::Pair`): the lifecycle, heartbeats, the numbered ack-decision rules of
//! `alipay_msg_core::client`, backpressure, PRODUCE, shutdown, the documented poll loop,
//! and random fault schedules (proptest).

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use alipay_msg_core::charset::Charset;
use alipay_msg_core::client::{
    CheckJob, DisconnectReason, Event, Input, Outcome, Output, RejectReason, SendError,
};
use alipay_msg_core::consume::{AckStatus, ConsumeOut};
use alipay_msg_core::frame::{DataHeader, FrameHeaders};
use alipay_msg_core::produce::ProduceError;
use alipay_msg_core::produce_ack::{ProduceAck, ProduceCode};
use alipay_msg_core::register::RegisterError;
use alipay_msg_core::server::{
    AppRegistration, CloseAfterFrames, ConnectionId, DeliveryKind, MessageState, MsgId,
    ProduceAnswer, ProduceFailure, RedeliveryReason, ServerEvent, UnexpectedAck,
};
use proptest::prelude::*;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use support::{
    app_signer, platform_signer, C2s, Pair, Policy, RegisterMode, Stamp, UpgradeMode, API, APP,
    OTHER_APP,
};

const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms_i64(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap()
}

// ----- reading the records -----------------------------------------------------------

fn disconnects(pair: &Pair) -> Vec<(Stamp, DisconnectReason, Option<Duration>)> {
    pair.client_events
        .iter()
        .filter_map(|(s, e)| match e {
            Event::Disconnected { reason, retry_in } => Some((*s, reason.clone(), *retry_in)),
            _ => None,
        })
        .collect()
}

fn connecting(pair: &Pair) -> Vec<(Stamp, u32)> {
    pair.client_events
        .iter()
        .filter_map(|(s, e)| match e {
            Event::Connecting { attempt } => Some((*s, *attempt)),
            _ => None,
        })
        .collect()
}

fn connected_at(pair: &Pair) -> Vec<Instant> {
    pair.client_events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Connected))
        .map(|(s, _)| s.at)
        .collect()
}

fn produce_acks(pair: &Pair) -> Vec<(Stamp, String, Result<ProduceAck, SendError>)> {
    pair.client_events
        .iter()
        .filter_map(|(s, e)| match e {
            Event::ProduceAck { stream_id, result } => {
                Some((*s, stream_id.clone(), result.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The single PRODUCE_ACK answer for `stream_id`.
fn produce_answer(pair: &Pair, stream_id: &str) -> (Stamp, Result<ProduceAck, SendError>) {
    let mut answers: Vec<_> = produce_acks(pair)
        .into_iter()
        .filter(|(_, id, _)| id == stream_id)
        .map(|(s, _, r)| (s, r))
        .collect();
    assert_eq!(answers.len(), 1, "answers for {stream_id}: {answers:?}");
    answers.pop().unwrap()
}

fn rejections(pair: &Pair) -> Vec<(Stamp, Option<String>, RejectReason)> {
    pair.client_events
        .iter()
        .filter_map(|(s, e)| match e {
            Event::Rejected { msg_id, reason } => Some((*s, msg_id.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

fn texts_sent(pair: &Pair) -> usize {
    pair.transmits
        .iter()
        .filter(|(_, t)| matches!(t, C2s::Text(_)))
        .count()
}

fn closes_at(pair: &Pair) -> Vec<Stamp> {
    pair.transmits
        .iter()
        .filter(|(_, t)| matches!(t, C2s::Close))
        .map(|(s, _)| *s)
        .collect()
}

fn deliveries_of(pair: &Pair, id: &str) -> Vec<(ConnectionId, u32, DeliveryKind)> {
    pair.server_events
        .iter()
        .filter_map(|(_, e)| match e {
            ServerEvent::Delivered {
                msg_id,
                conn,
                attempt,
                kind,
            } if msg_id.as_str() == id => Some((*conn, *attempt, *kind)),
            _ => None,
        })
        .collect()
}

fn assert_acked(pair: &Pair, id: &MsgId, attempts: u32) {
    assert_eq!(
        pair.server.message_state(id.as_str()),
        Some(MessageState::Acked { attempts }),
        "{id}"
    );
}

/// A CONSUME the server would not send by itself, written with the platform's frame
/// writer: `app_id` in the data header, signed by `signer` (or unsigned).
fn consume_text(
    pair: &Pair,
    msg_id: &str,
    app_id: Option<&str>,
    signer: Option<&alipay_msg_core::signature::Signer>,
) -> String {
    let headers = FrameHeaders {
        from_sys: Some("openchannel".into()),
        from_sys_ip: Some("127.0.0.1".into()),
        stream_id: Some(format!("inj-{msg_id}")),
    };
    let data_header = DataHeader {
        app_id: app_id.map(str::to_owned),
        msg_api: Some(API.into()),
        ..DataHeader::default()
    };
    let out = ConsumeOut {
        headers: &headers,
        msg_id,
        timestamp_ms: pair.server.unix_ms(pair.now),
        data_header: &data_header,
        biz_content: r#"{"injected":true}"#,
        charset: Charset::Utf8,
    };
    match signer {
        Some(signer) => out.sign_and_encode(signer).unwrap(),
        None => out.encode_with_sign(&out.data_text(), None),
    }
}

/// Sets the client's wall clock `offset` ms away from the platform's.
fn skew_client_clock(pair: &mut Pair, offset_ms: i64) {
    let platform_now = pair.server.unix_ms(pair.now);
    pair.client
        .update_wall_clock(pair.now, platform_now + offset_ms);
}

// ===== lifecycle ========================================================================

#[test]
fn lifecycle_register_then_upgrade_then_connected() {
    let mut pair = Pair::default();
    pair.drive();

    assert!(pair.client.is_connected() && pair.client.wants_read());
    assert_eq!(pair.now, pair.t0, "no simulated time passes to connect");
    let events: Vec<String> = pair
        .client_events
        .iter()
        .map(|(_, e)| format!("{e:?}"))
        .collect();
    assert_eq!(events, ["Connecting { attempt: 1 }", "Connected"]);

    // register.do, then the upgrade with the link token and the zone cookie.
    assert_eq!(pair.transmits.len(), 2);
    let C2s::Register(request) = &pair.transmits[0].1 else {
        panic!("first transmit: {:?}", pair.transmits[0].1)
    };
    assert!(
        request.starts_with("GET /websocket/register.do?"),
        "{request}"
    );
    assert!(request.contains("app_id=2021000000000001"), "{request}");
    assert!(request.contains("Host: 127.0.0.1:18080\r\n"), "{request}");
    assert!(
        request.contains("Content-Type: application/x-www-form-urlencoded;charset=UTF-8\r\n"),
        "{request}"
    );
    let C2s::Upgrade { target, headers } = &pair.transmits[1].1 else {
        panic!("second transmit: {:?}", pair.transmits[1].1)
    };
    assert!(target.starts_with("/websocket?"), "{target}");
    assert!(target.contains("link_token="), "{target}");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("cookie"), Some("zone=SIM01;"));
    assert_eq!(
        header("content-type"),
        Some("application/x-www-form-urlencoded;charset=UTF-8")
    );
    assert_eq!(header("host"), Some("127.0.0.1:18080"));

    let conn = pair.client_conn.expect("connection");
    let server: Vec<ServerEvent> = pair.server_events.iter().map(|(_, e)| e.clone()).collect();
    assert_eq!(
        server,
        vec![
            ServerEvent::Registered {
                app_id: APP.to_owned()
            },
            ServerEvent::Connected {
                conn,
                app_id: APP.to_owned(),
                zone: Some("SIM01".to_owned())
            },
        ]
    );
    assert_eq!(pair.server.connections_of(APP), vec![conn]);
    // Idle and connected: the next thing is the first heartbeat.
    assert_eq!(pair.client_deadline, Some(pair.t0 + secs(5)));
}

#[test]
fn lifecycle_certificate_mode_end_to_end() {
    let mut pair = Pair::builder().cert_mode().build();
    pair.connect();
    let C2s::Register(request) = &pair.transmits[0].1 else {
        panic!("first transmit")
    };
    assert!(request.contains("app_cert_sn="), "{request}");
    assert!(request.contains("alipay_root_cert_sn="), "{request}");

    // CONSUME verified with the key inside the platform certificate.
    let ids = pair.push(2);
    for id in &ids {
        let record = pair.msg(id.as_str());
        assert_eq!(record.handled.len(), 1);
        assert_eq!(record.acks_with(AckStatus::Success), 1);
        assert_acked(&pair, id, 1);
    }
    // PRODUCE carries the SNs the platform checks.
    let stream_id = pair.client.send(API, r#"{"k":"v"}"#, pair.now).unwrap();
    pair.drive();
    let (_, result) = produce_answer(&pair, &stream_id);
    let ack = result.unwrap();
    assert!(ack.is_success(), "{ack:?}");
    assert_eq!(ack.code.as_deref(), Some("10000"));

    // A register answer naming another platform certificate is refused, for good.
    let mut pair = Pair::builder()
        .cert_mode()
        .server(|s| s.platform_cert_sn = Some("not-the-configured-sn".into()))
        .build();
    pair.drive();
    assert!(pair.client_done && !pair.client.is_connected());
    assert_eq!(
        pair.count_events(|e| matches!(
            e,
            Event::Fatal(RegisterError::CertSnMismatch { received, .. })
                if received == "not-the-configured-sn"
        )),
        1
    );
}

#[test]
fn lifecycle_register_refused_wrong_key_is_fatal_without_retries() {
    let mut pair = Pair::builder()
        .client(|c| c.credentials = support::wrong_key_credentials())
        .build();
    pair.drive();

    assert!(!pair.client.is_connected());
    assert!(pair.client_done, "the session ends");
    assert!(matches!(pair.client.poll_output(), Output::Done));
    let fatal: Vec<&RegisterError> = pair
        .client_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Fatal(err) => Some(err),
            _ => None,
        })
        .collect();
    assert_eq!(fatal.len(), 1);
    match fatal[0] {
        RegisterError::Refused {
            code,
            sub_code,
            signature_verified,
            ..
        } => {
            assert_eq!(code, "40004");
            assert_eq!(sub_code.as_deref(), Some("isv.invalid-signature"));
            assert!(signature_verified, "the refusal is signed by the platform");
        }
        other => panic!("{other:?}"),
    }
    assert!(disconnects(&pair).is_empty(), "no retry is announced");
    assert_eq!(
        pair.count_server_events(|e| matches!(
            e,
            ServerEvent::RegisterRefused {
                sub_code: "isv.invalid-signature",
                ..
            }
        )),
        1
    );

    pair.advance(10 * MINUTE);
    assert_eq!(pair.register_requests(), 1, "never retried");
    assert_eq!(pair.register_replies, 1);
    assert!(matches!(pair.client.poll_output(), Output::Done));
}

#[test]
fn lifecycle_retry_on_auth_error_keeps_retrying() {
    let mut pair = Pair::builder()
        .client(|c| {
            c.credentials = support::wrong_key_credentials();
            c.retry_on_auth_error = true;
        })
        .build();
    pair.advance(MINUTE);

    assert!(!pair.client_done);
    assert_eq!(pair.count_events(|e| matches!(e, Event::Fatal(_))), 0);
    let failures = disconnects(&pair);
    // Waits are at most 0, 1, 2, 4, 8, 10, 10 … s: at least 9 attempts fit in 60 s.
    assert!(failures.len() >= 9, "{} attempts", failures.len());
    // Every attempt was answered and refused; the next one is scheduled.
    assert_eq!(pair.register_requests(), failures.len());
    for (_, reason, retry_in) in &failures {
        assert!(
            matches!(
                reason,
                DisconnectReason::Register(RegisterError::Refused { sub_code: Some(s), .. })
                    if s == "isv.invalid-signature"
            ),
            "{reason:?}"
        );
        assert!(retry_in.is_some_and(|d| d <= secs(10)));
    }
}

#[test]
fn lifecycle_connect_attempt_times_out_after_10s() {
    // register.do never answers.
    let mut pair = Pair::default();
    pair.net.register = RegisterMode::Silent;
    pair.drive();
    pair.advance(secs(10) - MS);
    assert!(disconnects(&pair).is_empty());
    assert_eq!(pair.register_requests(), 1);
    pair.advance(MS);
    let d = disconnects(&pair);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].0.at, pair.t0 + secs(10));
    assert_eq!(d[0].1, DisconnectReason::ConnectTimeout);
    assert_eq!(d[0].2, Some(Duration::ZERO), "first retry is immediate");
    assert_eq!(closes_at(&pair).len(), 1, "the attempt is abandoned");
    assert_eq!(
        connecting(&pair)
            .iter()
            .map(|(s, a)| (s.at, *a))
            .collect::<Vec<_>>(),
        vec![(pair.t0, 1), (pair.t0 + secs(10), 2)]
    );
    assert_eq!(pair.register_requests(), 2);

    // The upgrade never answers: the same 10 s cover register and upgrade together.
    let mut pair = Pair::default();
    pair.net.upgrade = UpgradeMode::Silent;
    pair.advance(secs(10) - MS);
    assert!(disconnects(&pair).is_empty() && !pair.client.is_connected());
    pair.advance(MS);
    let d = disconnects(&pair);
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].0.at, &d[0].1),
        (pair.t0 + secs(10), &DisconnectReason::ConnectTimeout)
    );
}

#[test]
fn lifecycle_reconnect_backoff_bounds_jitter_and_reset() {
    let mut pair = Pair::builder().seed(42).build();
    pair.net.register = RegisterMode::NetworkError;
    pair.advance(5 * MINUTE);

    let failures = disconnects(&pair);
    let attempts = connecting(&pair);
    assert!(failures.len() > 30, "{} failures", failures.len());
    let mut waits = Vec::new();
    for (k, (stamp, reason, retry_in)) in failures.iter().enumerate() {
        assert_eq!(
            reason,
            &DisconnectReason::Network(std::io::ErrorKind::ConnectionRefused)
        );
        let wait = retry_in.expect("retrying");
        let bound = if k == 0 {
            Duration::ZERO
        } else {
            (SEC * (1u32 << (k - 1).min(20))).min(secs(10))
        };
        assert!(wait <= bound, "retry {k}: {wait:?} > {bound:?}");
        // The next attempt starts exactly when announced.
        if let Some((next, attempt)) = attempts.get(k + 1) {
            assert_eq!(next.at, stamp.at + wait, "attempt {}", k + 2);
            assert_eq!(*attempt, u32::try_from(k).unwrap() + 2);
        }
        waits.push(wait);
    }
    // Full jitter: capped waits vary and reach high into [0, 10 s].
    let capped: HashSet<Duration> = waits[5..].iter().copied().collect();
    assert!(capped.len() > 10, "waits vary: {capped:?}");
    assert!(waits.iter().any(|w| *w > secs(8)), "{waits:?}");

    // The network comes back: connected within one capped wait.
    pair.net.register = RegisterMode::Answer;
    pair.advance(secs(10));
    assert!(pair.client.is_connected());

    // A connection that stayed up 30 s resets the schedule: the retry is immediate.
    pair.advance(secs(30));
    pair.drop_connection();
    let last = disconnects(&pair).pop().unwrap();
    assert_eq!(last.2, Some(Duration::ZERO));
    assert!(pair.client.is_connected(), "reconnected at once");

    // Short-lived connections do not reset it: the bound grows 1 s, 2 s, 4 s, 8 s.
    let mut short_waits = Vec::new();
    for n in 1..=4u32 {
        pair.advance(secs(11));
        assert!(pair.client.is_connected());
        pair.drop_connection();
        let (_, _, retry_in) = disconnects(&pair).pop().unwrap();
        let wait = retry_in.unwrap();
        assert!(wait <= SEC * (1 << (n - 1)), "short {n}: {wait:?}");
        short_waits.push(wait);
    }
    assert!(
        short_waits.iter().any(|w| !w.is_zero()),
        "not reset: {short_waits:?}"
    );
}

#[test]
fn lifecycle_network_and_5xx_errors_retry_forever() {
    let mut pair = Pair::default();
    let failures = |pair: &Pair| disconnects(pair).len();
    pair.net.register = RegisterMode::NetworkError;
    while failures(&pair) < 20 {
        pair.advance(SEC);
    }
    pair.net.register = RegisterMode::Status(503);
    while failures(&pair) < 40 {
        pair.advance(SEC);
    }
    pair.net.register = RegisterMode::Answer;
    pair.net.upgrade = UpgradeMode::NetworkError;
    while failures(&pair) < 50 {
        pair.advance(SEC);
    }
    let all = disconnects(&pair);
    assert_eq!(all.len(), 50, "50 failures in a row");
    for (i, (_, reason, retry_in)) in all.iter().enumerate() {
        let ok = match i {
            20..=39 => *reason == DisconnectReason::Register(RegisterError::Status { status: 503 }),
            _ => *reason == DisconnectReason::Network(std::io::ErrorKind::ConnectionRefused),
        };
        assert!(ok, "failure {i}: {reason:?}");
        assert!(retry_in.is_some());
    }
    assert_eq!(pair.count_events(|e| matches!(e, Event::Fatal(_))), 0);
    assert!(!pair.client_done);

    pair.net.upgrade = UpgradeMode::Answer;
    pair.advance(secs(10));
    assert!(pair.client.is_connected());
    let last_attempt = connecting(&pair).last().unwrap().1;
    assert_eq!(last_attempt, 51, "the 51st attempt connects");
}

// ===== heartbeat ========================================================================

#[test]
fn heartbeat_pings_every_5s_while_idle() {
    let mut pair = Pair::connected();
    pair.advance(secs(61));
    let expected: Vec<Instant> = (1..=12).map(|i| pair.t0 + secs(5 * i)).collect();
    assert_eq!(pair.ping_times(), expected);
    assert!(disconnects(&pair).is_empty());
    assert_eq!(connected_at(&pair), vec![pair.t0]);
}

#[test]
fn heartbeat_half_open_detected_within_15s_then_reconnect_and_redelivery() {
    let mut pair = Pair::connected();
    let first = pair.client_conn.unwrap();
    pair.advance(secs(7)); // the ping at 5 s was answered
    pair.half_open(true, true);
    let broke_at = pair.now;
    let ids = pair.push(3); // into the black hole
    assert!(ids
        .iter()
        .all(|id| pair.msg(id.as_str()).handled.is_empty()));

    pair.advance(secs(25));
    let dead: Vec<_> = disconnects(&pair)
        .into_iter()
        .filter(|(_, r, _)| matches!(r, DisconnectReason::Dead { .. }))
        .collect();
    assert_eq!(dead.len(), 1, "{:?}", disconnects(&pair));
    let (stamp, reason, retry_in) = &dead[0];
    // Last pong at 5 s: dead exactly 15 s later, within 15 s + one heartbeat of breaking.
    assert_eq!(
        reason,
        &DisconnectReason::Dead {
            silent_for: secs(15)
        }
    );
    assert_eq!(stamp.at, pair.t0 + secs(20));
    assert!(stamp.at - broke_at <= secs(15) + secs(5));
    assert_eq!(*retry_in, Some(Duration::ZERO));
    assert!(closes_at(&pair).iter().any(|s| s.at == stamp.at));
    assert!(pair.client.is_connected());
    let second = pair.client_conn.unwrap();
    assert_ne!(first, second);
    assert_eq!(connected_at(&pair), vec![pair.t0, pair.t0 + secs(20)]);

    // The platform learns the old connection is gone; its messages come on the new one.
    pair.heal();
    pair.advance(secs(30));
    for id in &ids {
        let record = pair.msg(id.as_str());
        assert_eq!(record.successes(), 1, "{id}");
        assert_eq!(record.acks_with(AckStatus::Success), 1, "{id}");
        assert!(deliveries_of(&pair, id.as_str())
            .iter()
            .any(|(c, _, _)| *c == second));
    }
    assert!(pair.server.is_settled());
}

// ===== the ack decision =================================================================

#[test]
fn rule1_malformed_frame_rejected_no_ack_connection_kept() {
    let mut pair = Pair::connected();
    let conn = pair.client_conn;
    pair.server.faults_mut().garbage_before_consumes = 1;
    let ids = pair.push(1);
    pair.inject("\r\n\r\n{\"protocol\":".to_owned());

    let rejected = rejections(&pair);
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    for (_, msg_id, reason) in &rejected {
        assert_eq!(*msg_id, None);
        assert!(matches!(reason, RejectReason::Malformed(_)), "{reason:?}");
    }
    assert_eq!(
        pair.count_server_events(|e| matches!(e, ServerEvent::GarbageSent { .. })),
        1
    );
    // The only text the client wrote is the genuine message's SUCCESS ack.
    assert_eq!(texts_sent(&pair), 1);
    let record = pair.msg(ids[0].as_str());
    assert_eq!(
        (record.handled.len(), record.acks_with(AckStatus::Success)),
        (1, 1)
    );
    assert_acked(&pair, &ids[0], 1);
    assert_eq!(pair.client_conn, conn, "connection kept");
    assert!(disconnects(&pair).is_empty());
}

#[test]
fn rule2_forged_unsigned_or_foreign_rejected_fail_handler_never_called() {
    let mut pair = Pair::connected();
    let forger = app_signer();
    let now = pair.now;
    let forged_key = pair
        .server
        .push_forged(APP, API, r#"{"evil":1}"#, Some(&forger), now)
        .unwrap();
    let forged_content = pair
        .server
        .push_forged(APP, API, r#"{"evil":2}"#, None, now)
        .unwrap();
    pair.drive();
    for id in [&forged_key, &forged_content] {
        let record = pair.msg(id.as_str());
        assert!(record.handled.is_empty(), "{id}");
        assert_eq!(record.acks.len(), 1);
        assert_eq!(record.acks[0].status, AckStatus::Fail);
        assert_eq!(
            pair.server.message_state(id.as_str()),
            Some(MessageState::ForgedDiscarded {
                status: Some(AckStatus::Fail)
            })
        );
    }
    assert_eq!(pair.server.counts().forged_accepted, 0);

    // Unsigned, for another app, without an app id: refused before anything else.
    let platform = platform_signer();
    let unsigned = consume_text(&pair, "90000000000000000001", Some(APP), None);
    let foreign = consume_text(
        &pair,
        "90000000000000000002",
        Some(OTHER_APP),
        Some(&platform),
    );
    let no_app = consume_text(&pair, "90000000000000000003", None, Some(&platform));
    pair.inject(unsigned);
    pair.inject(foreign);
    pair.inject(no_app);
    // A genuine message whose signature the platform corrupted: FAIL, then redelivered.
    pair.server.faults_mut().corrupt_consumes = 1;
    let genuine = pair.push(1);

    let reasons: HashMap<String, RejectReason> = rejections(&pair)
        .into_iter()
        .map(|(_, id, r)| (id.expect("addressable"), r))
        .collect();
    assert_eq!(reasons.len(), 6);
    assert!(matches!(
        reasons[forged_key.as_str()],
        RejectReason::BadSignature(_)
    ));
    assert!(matches!(
        reasons[forged_content.as_str()],
        RejectReason::BadSignature(_)
    ));
    assert_eq!(reasons["90000000000000000001"], RejectReason::Unsigned);
    assert_eq!(
        reasons["90000000000000000002"],
        RejectReason::ForeignAppId {
            app_id: Some(OTHER_APP.to_owned())
        }
    );
    assert_eq!(
        reasons["90000000000000000003"],
        RejectReason::ForeignAppId { app_id: None }
    );
    assert!(matches!(
        reasons[genuine[0].as_str()],
        RejectReason::BadSignature(_)
    ));
    for id in [
        "90000000000000000001",
        "90000000000000000002",
        "90000000000000000003",
    ] {
        let record = pair.msg(id);
        assert!(record.handled.is_empty());
        assert_eq!(
            record.acks.iter().map(|a| a.status).collect::<Vec<_>>(),
            [AckStatus::Fail]
        );
    }
    // Only Message events are for the genuine message, once it came intact.
    assert_eq!(pair.count_events(|e| matches!(e, Event::Message(_))), 0);
    pair.advance(secs(2));
    let record = pair.msg(genuine[0].as_str());
    assert_eq!(record.handled.len(), 1);
    assert_eq!(
        record.acks.iter().map(|a| a.status).collect::<Vec<_>>(),
        [AckStatus::Fail, AckStatus::Success]
    );
    assert_eq!(
        deliveries_of(&pair, genuine[0].as_str())
            .iter()
            .map(|(_, a, k)| (*a, *k))
            .collect::<Vec<_>>(),
        [
            (1, DeliveryKind::CorruptedSignature),
            (2, DeliveryKind::Genuine)
        ]
    );
    assert_eq!(pair.count_events(|e| matches!(e, Event::Message(_))), 1);

    // A forgery reusing the id of a message already handled is refused (rule 2 comes
    // before rule 4): FAIL, not the remembered SUCCESS.
    let forged_copy = consume_text(&pair, genuine[0].as_str(), Some(APP), Some(&forger));
    pair.inject(forged_copy);
    let record = pair.msg(genuine[0].as_str());
    assert_eq!(record.handled.len(), 1);
    assert!(record.duplicates.is_empty());
    assert_eq!(record.rejected.len(), 2);
    assert_eq!(record.acks.last().unwrap().status, AckStatus::Fail);
}

#[test]
fn rule3_timestamp_outside_window_rejected_fail() {
    let mut pair = Pair::connected();
    let platform_ms = |pair: &Pair| pair.server.unix_ms(pair.now);

    // The client's clock is 25 h + 1 ms ahead: the message is too old.
    skew_client_clock(&mut pair, ms_i64(25 * HOUR) + 1);
    let a = pair.push(1).remove(0);
    let sent_ms = platform_ms(&pair);
    // 10 min + 1 ms behind: the redelivery (1 s later) is too far in the future.
    skew_client_clock(&mut pair, -(ms_i64(10 * MINUTE) + 1));
    pair.advance(SEC);
    // Exactly 10 min behind: accepted (the bound is inclusive); redelivery after 2 s.
    skew_client_clock(&mut pair, -ms_i64(10 * MINUTE));
    pair.advance(secs(2));

    let reasons: Vec<RejectReason> = rejections(&pair).into_iter().map(|(_, _, r)| r).collect();
    assert_eq!(
        reasons,
        vec![
            RejectReason::Timestamp {
                timestamp_ms: sent_ms,
                direction: "older than"
            },
            RejectReason::Timestamp {
                timestamp_ms: sent_ms + 1000,
                direction: "ahead of"
            },
        ]
    );
    let record = pair.msg(a.as_str());
    assert_eq!(record.handled.len(), 1);
    assert_eq!(
        record.acks.iter().map(|a| a.status).collect::<Vec<_>>(),
        [AckStatus::Fail, AckStatus::Fail, AckStatus::Success]
    );
    assert_eq!(record.handled[0].at, pair.t0 + secs(3));
    assert_acked(&pair, &a, 3);

    // Exactly 25 h old: accepted.
    skew_client_clock(&mut pair, ms_i64(25 * HOUR));
    let b = pair.push(1).remove(0);
    assert_eq!(pair.msg(b.as_str()).handled.len(), 1);
    assert_acked(&pair, &b, 1);
}

#[test]
fn rule3_window_bounds_configurable_and_off() {
    let mut pair = Pair::builder()
        .client(|c| {
            c.max_clock_skew = Some(20 * MINUTE);
            c.max_message_age = Some(HOUR);
        })
        .server(|s| s.ack_timeout = HOUR)
        .build();
    pair.connect();
    let mut verdicts = Vec::new();
    for offset in [
        -ms_i64(19 * MINUTE),
        -ms_i64(21 * MINUTE),
        ms_i64(59 * MINUTE),
        ms_i64(61 * MINUTE),
    ] {
        skew_client_clock(&mut pair, offset);
        let id = pair.push(1).remove(0);
        verdicts.push(pair.msg(id.as_str()).handled.len() == 1);
        // Leave the redelivery of rejected ones aside.
        pair.advance(MS);
    }
    assert_eq!(verdicts, [true, false, true, false]);
    let directions: Vec<&str> = rejections(&pair)
        .iter()
        .map(|(_, _, r)| match r {
            RejectReason::Timestamp { direction, .. } => *direction,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(directions, ["ahead of", "older than"]);

    // Both checks off: any timestamp is accepted.
    let mut pair = Pair::builder()
        .client(|c| {
            c.max_clock_skew = None;
            c.max_message_age = None;
        })
        .build();
    pair.connect();
    for offset in [-ms_i64(100 * 24 * HOUR), ms_i64(100 * 24 * HOUR)] {
        skew_client_clock(&mut pair, offset);
        let id = pair.push(1).remove(0);
        assert_eq!(pair.msg(id.as_str()).handled.len(), 1, "offset {offset}");
    }
    assert!(rejections(&pair).is_empty());
}

#[test]
fn rule4_duplicate_already_handled_acked_success_without_handler() {
    // (a) The platform sends the same CONSUME twice.
    let mut pair = Pair::connected();
    pair.server.faults_mut().duplicate_consumes = 1;
    let id = pair.push(1).remove(0);
    let record = pair.msg(id.as_str());
    assert_eq!(record.handled.len(), 1);
    assert_eq!(
        record.duplicates.iter().map(|d| d.1).collect::<Vec<_>>(),
        [false]
    );
    assert_eq!(
        record.acks.iter().map(|a| a.status).collect::<Vec<_>>(),
        [AckStatus::Success, AckStatus::Success]
    );
    assert!(record.no_success_ack_before_success());
    assert_acked(&pair, &id, 1);
    assert_eq!(
        pair.count_server_events(|e| matches!(
            e,
            ServerEvent::UnexpectedAck {
                reason: UnexpectedAck::NotInFlight,
                status: AckStatus::Success,
                ..
            }
        )),
        1
    );

    // (b) The SUCCESS ack is lost with the link; the message comes again on the next
    // connection and is answered from memory.
    let mut pair = Pair::connected();
    pair.half_open(true, false);
    let id = pair.push(1).remove(0);
    let record = pair.msg(id.as_str());
    assert_eq!(record.acks.len(), 1);
    assert!(record.acks[0].dropped);
    pair.drop_connection();
    assert!(pair.client.is_connected(), "reconnected");
    pair.advance(secs(2));
    let record = pair.msg(id.as_str());
    assert_eq!(record.handled.len(), 1, "handler not called again");
    assert_eq!(
        record.duplicates.iter().map(|d| d.1).collect::<Vec<_>>(),
        [false]
    );
    assert_eq!(record.acks.len(), 2);
    assert_eq!(record.acks[1].status, AckStatus::Success);
    assert!(!record.acks[1].dropped);
    assert_eq!(record.acks[1].conn, pair.client_conn);
    assert_acked(&pair, &id, 2);
    assert!(pair.server.is_settled());
}

#[test]
fn rule5_duplicate_in_flight_not_delivered_twice_acked_on_completion() {
    let mut pair = Pair::builder().server(|s| s.ack_timeout = HOUR).build();
    pair.handler.policy = Policy::Hold;
    pair.connect();
    pair.server.faults_mut().duplicate_consumes = 1;
    let id = pair.push(1).remove(0);
    let record = pair.msg(id.as_str());
    assert_eq!(record.handled.len(), 1);
    assert_eq!(
        record.duplicates.iter().map(|d| d.1).collect::<Vec<_>>(),
        [true]
    );
    assert!(record.acks.is_empty(), "no ack while being handled");
    assert_eq!(pair.client.in_flight(), 1);

    pair.advance(secs(3));
    assert!(pair.msg(id.as_str()).acks.is_empty());
    let before = pair.mark();
    pair.complete(id.as_str(), Outcome::Success);
    let record = pair.msg(id.as_str());
    assert_eq!(record.handled.len(), 1);
    // Both copies are answered, when the first delivery completes.
    assert_eq!(record.acks.len(), 2);
    assert!(record
        .acks
        .iter()
        .all(|a| a.status == AckStatus::Success && a.stamp > before));
    assert_acked(&pair, &id, 1);

    // The platform redelivers (ack timeout) while the handler still runs: the copy
    // waits for the same completion, and a FAIL goes to both.
    let mut pair = Pair::default();
    pair.handler.policy = Policy::Hold;
    pair.connect();
    let id = pair.push(1).remove(0);
    pair.advance(secs(12)); // 10 s ack timeout, then 1 s wait
    let record = pair.msg(id.as_str());
    assert_eq!(record.handled.len(), 1);
    assert_eq!(
        record.duplicates.iter().map(|d| d.1).collect::<Vec<_>>(),
        [true]
    );
    assert!(record.acks.is_empty());
    pair.complete(id.as_str(), Outcome::Failure("busy".into()));
    let record = pair.msg(id.as_str());
    assert_eq!(
        record.acks.iter().map(|a| a.status).collect::<Vec<_>>(),
        [AckStatus::Fail, AckStatus::Fail]
    );
    // After a FAIL the message is handled again when it comes back.
    pair.advance(secs(5));
    assert_eq!(pair.msg(id.as_str()).handled.len(), 2);
    pair.complete(id.as_str(), Outcome::Success);
    assert_acked(&pair, &id, 3);

    // Redelivered on a new connection while the first delivery is still being handled:
    // the ack goes to the new connection only, when the handler finishes.
    let mut pair = Pair::default();
    pair.handler.policy = Policy::Hold;
    pair.connect();
    let first = pair.client_conn.unwrap();
    let id = pair.push(1).remove(0);
    pair.drop_connection();
    pair.advance(secs(2));
    let second = pair.client_conn.unwrap();
    assert_ne!(first, second);
    let record = pair.msg(id.as_str());
    assert_eq!(
        record.duplicates.iter().map(|d| d.1).collect::<Vec<_>>(),
        [true]
    );
    assert!(record.acks.is_empty());
    pair.complete(id.as_str(), Outcome::Success);
    let record = pair.msg(id.as_str());
    assert_eq!(record.handled.len(), 1);
    assert_eq!(record.acks.len(), 1);
    assert_eq!(record.acks[0].conn, Some(second));
    assert_acked(&pair, &id, 2);
}

#[test]
fn rule6_normal_message_acked_only_at_complete() {
    let mut pair = Pair::default();
    pair.handler.policy = Policy::Hold;
    pair.connect();
    let id = pair.push(1).remove(0);
    let delivery = pair.held[0].clone();
    assert_eq!(delivery.msg_id(), id.as_str());
    assert_eq!(delivery.msg_api(), API);
    assert_eq!(delivery.biz_content(), r#"{"n":0}"#);
    pair.advance(secs(3));
    assert!(
        pair.msg(id.as_str()).acks.is_empty(),
        "no ack before complete"
    );

    let before = pair.mark();
    pair.complete(id.as_str(), Outcome::Success);
    let record = pair.msg(id.as_str());
    assert_eq!(record.acks.len(), 1);
    let ack = &record.acks[0];
    assert_eq!(ack.status, AckStatus::Success);
    assert!(ack.stamp > before && ack.stamp.at == pair.t0 + secs(3));
    assert!(record.no_success_ack_before_success());
    assert_acked(&pair, &id, 1);
    assert_eq!(pair.client.remembered_handled(), 1);
    // A second completion of the same delivery is a caller error.
    assert!(pair
        .client
        .complete(delivery.id, Outcome::Success, pair.now)
        .is_err());

    // Failure: ack FAIL, the platform redelivers, the handler runs again.
    let id = pair.push(1).remove(0);
    pair.complete(id.as_str(), Outcome::Failure("db down".into()));
    assert_eq!(
        pair.msg(id.as_str())
            .acks
            .iter()
            .map(|a| a.status)
            .collect::<Vec<_>>(),
        [AckStatus::Fail]
    );
    assert!(pair.count_server_events(|e| matches!(
        e,
        ServerEvent::RedeliveryScheduled { msg_id, reason: RedeliveryReason::Fail, attempts: 1, .. }
            if *msg_id == id
    )) == 1);
    pair.advance(SEC);
    assert_eq!(pair.msg(id.as_str()).handled.len(), 2);
    let second = pair
        .held
        .iter()
        .find(|d| d.msg_id() == id.as_str())
        .unwrap();
    assert_ne!(second.id, delivery.id);
    pair.complete(id.as_str(), Outcome::Success);
    assert_acked(&pair, &id, 2);
}

#[test]
fn completion_after_connection_died_is_remembered() {
    let mut pair = Pair::default();
    pair.handler.policy = Policy::Hold;
    pair.connect();
    let first = pair.client_conn.unwrap();
    let id = pair.push(1).remove(0);
    // The connection dies and the network stays down.
    pair.net.register = RegisterMode::NetworkError;
    pair.drop_connection();
    pair.advance(secs(3));
    assert!(!pair.client.is_connected());

    let texts_before = texts_sent(&pair);
    pair.complete(id.as_str(), Outcome::Success);
    assert_eq!(texts_sent(&pair), texts_before, "nowhere to send the ack");
    assert_eq!(pair.client.in_flight(), 0);
    assert_eq!(pair.client.remembered_handled(), 1);

    pair.net.register = RegisterMode::Answer;
    pair.advance(secs(15));
    assert!(pair.client.is_connected());
    assert_ne!(pair.client_conn, Some(first));
    let record = pair.msg(id.as_str());
    assert_eq!(record.handled.len(), 1, "handler not called again");
    assert_eq!(
        record.duplicates.iter().map(|d| d.1).collect::<Vec<_>>(),
        [false]
    );
    assert_eq!(record.acks.len(), 1);
    assert_eq!(record.acks[0].status, AckStatus::Success);
    assert_eq!(record.acks[0].conn, pair.client_conn);
    assert_acked(&pair, &id, 2);

    // Reconnected before the completion: the old delivery's ack does not go to the new
    // connection; the redelivery is answered from memory.
    let mut pair = Pair::default();
    pair.handler.policy = Policy::Hold;
    pair.connect();
    let id = pair.push(1).remove(0);
    pair.drop_connection();
    assert!(pair.client.is_connected());
    pair.advance(MS * 500);
    pair.complete(id.as_str(), Outcome::Success);
    assert!(pair.msg(id.as_str()).acks.is_empty());
    pair.advance(SEC);
    let record = pair.msg(id.as_str());
    assert_eq!(record.handled.len(), 1);
    assert_eq!(record.acks.len(), 1);
    assert_eq!(record.acks[0].stamp.at, pair.t0 + SEC);
    assert_acked(&pair, &id, 2);
}

// ===== backpressure =====================================================================

#[test]
fn backpressure_stops_reading_at_max_in_flight() {
    let mut pair = Pair::builder()
        .client(|c| c.max_in_flight = 4)
        .server(|s| s.ack_timeout = HOUR)
        .build();
    pair.handler.policy = Policy::Hold;
    pair.connect();
    let ids = pair.push(6);
    let handled = |pair: &Pair| {
        ids.iter()
            .filter(|id| !pair.msg(id.as_str()).handled.is_empty())
            .count()
    };
    assert_eq!(handled(&pair), 4);
    assert!(!pair.client.wants_read());
    assert_eq!(pair.client.in_flight(), 4);
    assert_eq!(
        pair.count_server_events(|e| matches!(e, ServerEvent::Delivered { .. })),
        6,
        "the platform sent all six; two wait unread"
    );

    // A minute paused: no fifth delivery, and no dead-connection verdict.
    pair.advance(MINUTE);
    assert_eq!(handled(&pair), 4);
    assert!(disconnects(&pair).is_empty());
    assert!(pair.client.is_connected());
    assert_eq!(pair.ping_times().len(), 12, "heartbeats go on");

    let at = pair.now;
    pair.complete(ids[0].as_str(), Outcome::Success);
    assert_eq!(handled(&pair), 5);
    assert_eq!(
        pair.msg(ids[4].as_str()).handled[0].at,
        at,
        "resumes at once"
    );
    assert!(!pair.client.wants_read());
    for id in &ids[1..] {
        pair.advance(SEC);
        pair.complete(id.as_str(), Outcome::Success);
    }
    assert_eq!(handled(&pair), 6);
    assert!(pair.client.wants_read());
    pair.advance(MINUTE);
    assert!(disconnects(&pair).is_empty());
    for id in &ids {
        assert_acked(&pair, id, 1);
    }
    assert!(pair.server.is_settled());
}

// ===== producing ========================================================================

#[test]
fn produce_success_10000() {
    let mut pair = Pair::connected();
    let stream_id = pair.client.send(API, r#"{"k":"v"}"#, pair.now).unwrap();
    assert_eq!(pair.client.pending_sends(), 1);
    pair.drive();
    let (_, result) = produce_answer(&pair, &stream_id);
    let ack = result.unwrap();
    assert!(ack.is_success() && !ack.is_retryable());
    assert_eq!(ack.result(), ProduceCode::Accepted);
    assert_eq!(ack.code.as_deref(), Some("10000"));
    assert_eq!(ack.status, AckStatus::Success);
    assert_eq!(pair.client.pending_sends(), 0);
    let produced: Vec<_> = pair
        .server_events
        .iter()
        .filter_map(|(_, e)| match e {
            ServerEvent::Produced {
                stream_id: sid,
                msg_api,
                verdict,
                msg_id,
                biz_content,
                answer,
                ..
            } => Some((
                sid.clone(),
                msg_api.clone(),
                verdict.code,
                msg_id.clone(),
                biz_content.clone(),
                *answer,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(produced.len(), 1);
    let (sid, msg_api, code, msg_id, biz, answer) = produced[0].clone();
    assert_eq!(sid.as_deref(), Some(stream_id.as_str()));
    assert_eq!(msg_api.as_deref(), Some(API));
    assert_eq!(code, "10000");
    assert_eq!(biz.as_deref(), Some(r#"{"k":"v"}"#));
    assert_eq!(answer, ProduceAnswer::Sent);
    assert_eq!(ack.msg_id, msg_id.map(|m| m.as_str().to_owned()));
}

#[test]
fn produce_code_classes() {
    const RESTRICTED: &str = "alipay.open.restricted.send";
    const BUSY: &str = "alipay.open.busy.send";
    const NOBODY: &str = "alipay.open.nobody.send";
    const ABORT: &str = "alipay.open.abort.send";
    let mut pair = Pair::builder()
        .server(|s| {
            let verifier = s.apps.remove(APP).unwrap().verifier;
            s.apps.insert(
                APP.to_owned(),
                AppRegistration::new(verifier).with_allowed_msg_apis([API, BUSY, NOBODY, ABORT]),
            );
        })
        .build();
    pair.connect();
    pair.server
        .set_produce_failure(BUSY, Some(ProduceFailure::ServiceUnavailable));
    pair.server
        .set_produce_failure(NOBODY, Some(ProduceFailure::ConsumerNotExist));
    pair.server
        .set_produce_failure(ABORT, Some(ProduceFailure::SysAbort));

    let mut answer = |api: &str, biz: &str| {
        let stream_id = pair.client.send(api, biz, pair.now).unwrap();
        pair.drive();
        produce_answer(&pair, &stream_id).1.unwrap()
    };
    let cases = [
        (
            BUSY,
            r#"{"a":1}"#,
            ProduceCode::ServiceUnavailable,
            "20000",
            "msg.unknow-error",
        ),
        (
            RESTRICTED,
            r#"{"a":1}"#,
            ProduceCode::NoPermission,
            "20001",
            "msg.no-permission",
        ),
        (
            "not-a-msg-api",
            r#"{"a":1}"#,
            ProduceCode::InvalidRequest,
            "30000",
            "msg.invalid-msg-api",
        ),
        (
            API,
            "{}",
            ProduceCode::InvalidRequest,
            "30000",
            "msg.empty-content",
        ),
        (
            NOBODY,
            r#"{"a":1}"#,
            ProduceCode::Abandoned,
            "40000",
            "msg.consumer-not-exist",
        ),
        (
            ABORT,
            r#"{"a":1}"#,
            ProduceCode::Abandoned,
            "40000",
            "msg.sys-abort",
        ),
    ];
    for (api, biz, class, code, error) in cases {
        let ack = answer(api, biz);
        assert_eq!(ack.result(), class, "{api}");
        assert_eq!(ack.code.as_deref(), Some(code), "{api}");
        assert_eq!(ack.error.as_deref(), Some(error), "{api}");
        assert_eq!(ack.status, AckStatus::Fail, "{api}");
        assert!(!ack.is_success());
        assert_eq!(ack.is_retryable(), code == "20000", "{api}");
        assert_eq!(ack.msg_id, None);
    }
    assert!(answer(API, r#"{"a":1}"#).is_success());

    // Bad business content never leaves the client.
    let sent = texts_sent(&pair);
    for bad in ["[1,2]", "not json", r#""text""#, ""] {
        let err = pair.client.send(API, bad, pair.now).unwrap_err();
        assert!(
            matches!(err, SendError::Invalid(ProduceError::BizContent(_))),
            "{bad:?}: {err:?}"
        );
    }
    assert_eq!(
        pair.client.send("", "{}", pair.now).unwrap_err(),
        SendError::Invalid(ProduceError::EmptyMsgApi)
    );
    pair.drive();
    assert_eq!(texts_sent(&pair), sent);
    assert_eq!(pair.client.pending_sends(), 0);
}

#[test]
fn produce_timeout_after_10s() {
    let mut pair = Pair::connected();
    pair.server.faults_mut().withhold_produce_acks = 1;
    let sent_at = pair.now;
    let stream_id = pair.client.send(API, r#"{"a":1}"#, pair.now).unwrap();
    pair.drive();
    assert_eq!(
        pair.count_server_events(|e| matches!(
            e,
            ServerEvent::Produced {
                answer: ProduceAnswer::Withheld,
                ..
            }
        )),
        1
    );
    pair.advance(secs(10) - MS);
    assert!(produce_acks(&pair).is_empty());
    pair.advance(MS);
    let (stamp, result) = produce_answer(&pair, &stream_id);
    assert_eq!(result, Err(SendError::Timeout));
    assert_eq!(stamp.at, sent_at + secs(10));
    assert_eq!(pair.client.pending_sends(), 0);
    assert!(
        pair.client.is_connected(),
        "a timeout does not drop the connection"
    );

    // An answer after the timeout is not a second answer.
    pair.server.faults_mut().delay_produce_acks = Some(secs(11));
    let sent_at = pair.now;
    let late = pair.client.send(API, r#"{"a":2}"#, pair.now).unwrap();
    pair.advance(secs(12));
    let (stamp, result) = produce_answer(&pair, &late);
    assert_eq!(
        (stamp.at, result),
        (sent_at + secs(10), Err(SendError::Timeout))
    );
    let rejected = rejections(&pair);
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].0.at, sent_at + secs(11));
    assert!(matches!(
        rejected[0].2,
        RejectReason::Unexpected {
            cmd: alipay_msg_core::frame::Command::ProduceAck
        }
    ));
}

#[test]
fn produce_connection_lost_before_ack() {
    let mut pair = Pair::connected();
    pair.server.faults_mut().withhold_produce_acks = 2;
    let a = pair.client.send(API, r#"{"a":1}"#, pair.now).unwrap();
    let b = pair.client.send(API, r#"{"a":2}"#, pair.now).unwrap();
    pair.advance(secs(2));
    pair.drop_connection();
    for id in [&a, &b] {
        let (stamp, result) = produce_answer(&pair, id);
        assert_eq!(result, Err(SendError::ConnectionLost));
        assert_eq!(stamp.at, pair.t0 + secs(2));
    }
    assert_eq!(pair.client.pending_sends(), 0);
    // Later, no timeout for them.
    pair.advance(secs(20));
    assert_eq!(produce_acks(&pair).len(), 2);
}

#[test]
fn produce_pending_cap() {
    let mut pair = Pair::builder().client(|c| c.max_pending_sends = 3).build();
    pair.connect();
    pair.server.faults_mut().withhold_produce_acks = 10;
    for i in 0..3 {
        pair.client
            .send(API, &format!("{{\"i\":{i}}}"), pair.now)
            .unwrap();
    }
    assert_eq!(
        pair.client.send(API, r#"{"i":3}"#, pair.now),
        Err(SendError::TooManyPending { limit: 3 })
    );
    pair.drive();
    assert_eq!(pair.client.pending_sends(), 3);
    pair.advance(secs(10));
    assert_eq!(
        produce_acks(&pair)
            .iter()
            .filter(|(_, _, r)| *r == Err(SendError::Timeout))
            .count(),
        3
    );
    assert!(pair.client.send(API, r#"{"i":4}"#, pair.now).is_ok());
}

#[test]
fn produce_while_disconnected_not_connected() {
    let mut pair = Pair::default();
    // Registering: not connected yet.
    assert_eq!(
        pair.client.send(API, r#"{"a":1}"#, pair.now),
        Err(SendError::NotConnected)
    );
    pair.net.register = RegisterMode::NetworkError;
    pair.drive();
    assert!(!pair.client.is_connected());
    assert_eq!(
        pair.client.send(API, r#"{"a":1}"#, pair.now),
        Err(SendError::NotConnected)
    );
    assert_eq!(pair.client.pending_sends(), 0);
}

// ===== shutdown =========================================================================

#[test]
fn shutdown_drains_held_deliveries_then_closes() {
    let mut pair = Pair::builder().server(|s| s.ack_timeout = HOUR).build();
    pair.handler.policy = Policy::Hold;
    pair.connect();
    let ids = pair.push(2);
    assert_eq!(pair.held.len(), 2);

    pair.client.shutdown(pair.now);
    pair.drive();
    assert!(!pair.client_done && pair.client.is_connected());
    assert!(closes_at(&pair).is_empty());
    assert_eq!(
        pair.client.send(API, r#"{"a":1}"#, pair.now),
        Err(SendError::ShuttingDown)
    );

    // New messages are refused while draining.
    let late = pair.push(1).remove(0);
    let record = pair.msg(late.as_str());
    assert!(record.handled.is_empty());
    assert_eq!(
        record.acks.iter().map(|a| a.status).collect::<Vec<_>>(),
        [AckStatus::Fail]
    );
    assert!(rejections(&pair).iter().any(|(_, id, r)| {
        id.as_deref() == Some(late.as_str()) && *r == RejectReason::ShuttingDown
    }));

    pair.advance(SEC);
    pair.complete(ids[0].as_str(), Outcome::Success);
    assert!(!pair.client_done && closes_at(&pair).is_empty());
    pair.advance(SEC);
    pair.complete(ids[1].as_str(), Outcome::Success);

    let last_ack = pair.msg(ids[1].as_str()).acks[0].clone();
    assert_eq!(last_ack.status, AckStatus::Success);
    let close = closes_at(&pair);
    assert_eq!(close.len(), 1);
    let complete: Vec<Stamp> = pair
        .client_events
        .iter()
        .filter(|(_, e)| matches!(e, Event::ShutdownComplete))
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(complete.len(), 1);
    assert!(last_ack.stamp < close[0] && close[0] < complete[0]);
    assert!(pair.client_done);
    assert!(matches!(pair.client.poll_output(), Output::Done));
    for id in &ids {
        assert_acked(&pair, id, 1);
    }
    assert!(!matches!(
        pair.server.message_state(late.as_str()),
        Some(MessageState::Acked { .. })
    ));
    assert!(
        pair.count_server_events(|e| matches!(
            e,
            ServerEvent::Disconnected {
                by_server: false,
                unacked: 0,
                ..
            }
        )) == 1
    );
}

#[test]
fn shutdown_timeout_closes_anyway() {
    let mut pair = Pair::default();
    pair.handler.policy = Policy::Hold;
    pair.connect();
    let id = pair.push(1).remove(0);
    pair.advance(SEC);
    let started = pair.now;
    pair.client.shutdown(pair.now);
    pair.advance(secs(30) - MS);
    assert!(!pair.client_done && closes_at(&pair).is_empty());
    pair.advance(MS);
    assert!(pair.client_done);
    let close = closes_at(&pair);
    assert_eq!(close.len(), 1);
    assert_eq!(close[0].at, started + secs(30));
    assert_eq!(
        pair.count_events(|e| matches!(e, Event::ShutdownComplete)),
        1
    );
    assert!(matches!(pair.client.poll_output(), Output::Done));
    assert_eq!(pair.msg(id.as_str()).acks_with(AckStatus::Success), 0);
}

// ===== random fault schedules ===========================================================

#[derive(Debug, Clone)]
enum Step {
    /// Push this many messages.
    Push(usize),
    /// The link under the connection breaks.
    DropLink,
    /// The platform closes the connection after this many more frames.
    ServerClose(u32),
    /// The connection turns half-open (0 both ways, 1 client → server, 2 server →
    /// client) for this many seconds, then the link heals.
    HalfOpen(u8, u64),
    /// The next N CONSUMEs are sent twice.
    Duplicate(u32),
    /// The next N CONSUMEs carry a corrupted signature.
    Corrupt(u32),
    /// The next N CONSUMEs are preceded by garbage.
    Garbage(u32),
    /// Time passes (ms).
    Advance(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1usize..=6).prop_map(Step::Push),
        1 => Just(Step::DropLink),
        1 => (1u32..=3).prop_map(Step::ServerClose),
        1 => (0u8..3, 0u64..=30).prop_map(|(d, s)| Step::HalfOpen(d, s)),
        1 => (1u32..=3).prop_map(Step::Duplicate),
        1 => (1u32..=3).prop_map(Step::Corrupt),
        1 => (1u32..=2).prop_map(Step::Garbage),
        3 => (0u64..=20_000).prop_map(Step::Advance),
    ]
}

const MAX_MESSAGES: usize = 30;

fn run_schedule(
    seed: u64,
    delay_ms: u64,
    latency_ms: u64,
    max_in_flight: usize,
    steps: &[Step],
) -> Result<(), TestCaseError> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut pair = Pair::builder()
        .seed(seed)
        .client(|c| c.max_in_flight = max_in_flight)
        .build();
    pair.handler.latency = Duration::from_millis(latency_ms);
    pair.net.delay_c2s = Duration::from_millis(delay_ms);
    pair.net.delay_s2c = Duration::from_millis(delay_ms / 2);
    pair.drive();

    let mut accepted: Vec<(MsgId, u32)> = Vec::new();
    for step in steps {
        match *step {
            Step::Push(n) => {
                for _ in 0..n.min(MAX_MESSAGES - accepted.len()) {
                    let i = accepted.len();
                    let pushed = pair
                        .server
                        .push(APP, API, &format!("{{\"i\":{i}}}"), pair.now);
                    if let Ok(id) = pushed {
                        let fails = rng.next_u32() % 4;
                        pair.handler.fail_plan.insert(id.as_str().to_owned(), fails);
                        accepted.push((id, fails));
                    }
                }
                pair.drive();
            }
            Step::DropLink => pair.drop_connection(),
            Step::ServerClose(frames) => {
                pair.server.faults_mut().close_after_frames =
                    Some(CloseAfterFrames { conn: None, frames });
            }
            Step::HalfOpen(direction, secs) => {
                pair.drive();
                if pair.client_conn.is_some() {
                    pair.half_open(direction != 2, direction != 1);
                }
                pair.advance(Duration::from_secs(secs));
                pair.heal();
            }
            Step::Duplicate(n) => pair.server.faults_mut().duplicate_consumes = n,
            Step::Corrupt(n) => pair.server.faults_mut().corrupt_consumes = n,
            Step::Garbage(n) => pair.server.faults_mut().garbage_before_consumes = n,
            Step::Advance(ms) => pair.advance(Duration::from_millis(ms)),
        }
    }
    pair.heal();
    // Ten minutes for every redelivery; a slow handler behind max_in_flight = 1 may
    // need longer (its unread messages time out on the platform and come again), so go
    // on, a minute at a time, up to three hours.
    pair.advance(10 * MINUTE);
    while !pair.server.is_settled() && pair.elapsed() < 3 * HOUR {
        pair.advance(MINUTE);
    }

    let genuine: HashSet<&str> = accepted.iter().map(|(id, _)| id.as_str()).collect();
    for (id, fails) in &accepted {
        let record = pair.msg(id.as_str());
        prop_assert_eq!(record.successes(), 1, "handler successes of {}", id);
        prop_assert_eq!(
            record.handled.len(),
            *fails as usize + 1,
            "handler calls of {}",
            id
        );
        prop_assert!(
            matches!(
                pair.server.message_state(id.as_str()),
                Some(MessageState::Acked { .. })
            ),
            "{} is {:?}",
            id,
            pair.server.message_state(id.as_str())
        );
    }
    for (id, record) in &pair.msgs {
        prop_assert!(
            record.no_success_ack_before_success(),
            "SUCCESS ack of {} before the handler succeeded: {:?}",
            id,
            record
        );
        prop_assert!(
            record.handled.is_empty() || genuine.contains(id.as_str()),
            "handler saw {}, never pushed",
            id
        );
    }
    prop_assert!(pair.server.is_settled(), "{:?}", pair.server.counts());
    prop_assert!(pair.client.is_connected());
    prop_assert_eq!(pair.client.in_flight(), 0);
    if std::env::var_os("SESSIONS_STATS").is_some() {
        eprintln!(
            "msgs {} handled {} reconnects {} rejected {} dups {} elapsed {:?}",
            accepted.len(),
            pair.count_events(|e| matches!(e, Event::Message(_))),
            connected_at(&pair).len(),
            rejections(&pair).len(),
            pair.count_events(|e| matches!(e, Event::Duplicate { .. })),
            pair.elapsed()
        );
    }
    Ok(())
}

proptest! {
    // 48 cases by default; SESSIONS_CASES=N for a longer hunt.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("SESSIONS_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        // Shrunk failures are printed; no regression file is written beside the tests.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn prop_random_faults_every_message_handled_exactly_once(
        seed in any::<u64>(),
        delay_ms in prop_oneof![Just(0u64), 1u64..=400],
        latency_ms in prop_oneof![Just(0u64), 1u64..=15_000],
        max_in_flight in prop_oneof![Just(64usize), 1usize..=4],
        steps in proptest::collection::vec(step(), 1..24),
    ) {
        run_schedule(seed, delay_ms, latency_ms, max_in_flight, &steps)?;
    }
}

// ===== regressions of library bugs this suite found =======================================

/// Only client → platform packets are lost (pings, acks); the platform keeps sending.
/// Every ack is lost, so every message comes again and again, and that traffic alone
/// keeps the connection "alive": no pong ever comes back, yet the connection is never
/// declared dead and no message is ever settled.
#[test]
fn half_open_towards_platform_detected_while_platform_sends() {
    let mut pair = Pair::connected();
    pair.half_open(true, false);
    let broke_at = pair.now;
    for _ in 0..6 {
        pair.push(1);
        pair.advance(secs(10));
    }
    let dead = disconnects(&pair)
        .into_iter()
        .find(|(_, r, _)| matches!(r, DisconnectReason::Dead { .. }));
    assert!(
        dead.is_some_and(|(s, _, _)| s.at - broke_at <= secs(15) + secs(5)),
        "no pong for a minute, connection still considered alive; disconnects {:?}",
        disconnects(&pair)
    );
}

/// The wall clock is off by more than the platform's 10 minutes when a routine
/// reconnect happens (e.g. a VM resumed before NTP stepped the clock back). The
/// platform refuses with `isv.invalid-timestamp`, which `RegisterError::is_retryable`
/// treats as a configuration error: the session ends with `Fatal`, and the adapter's
/// later `update_wall_clock` cannot bring it back.
#[test]
fn register_refused_for_clock_skew_is_retried() {
    let mut pair = Pair::connected();
    skew_client_clock(&mut pair, ms_i64(11 * MINUTE));
    pair.drop_connection();
    // The adapter follows the clock correction a second later.
    pair.advance(SEC);
    skew_client_clock(&mut pair, 0);
    pair.advance(MINUTE);
    assert_eq!(
        pair.count_events(|e| matches!(e, Event::Fatal(_))),
        0,
        "{:?}",
        pair.client_events.last()
    );
    assert!(pair.client.is_connected());
}

#[test]
fn a_frame_checked_for_another_session_is_ignored() {
    let vectors: serde_json::Value =
        serde_json::from_str(&support::vector("frame_vectors.json")).unwrap();
    let text = vectors["consume"]["frame"].as_str().unwrap();
    let a = Pair::connected();
    let mut b = Pair::connected();
    b.client.set_check_offload(2);
    let job = CheckJob {
        seq: 0,
        conn: b.client_ws.unwrap(),
        payload: text.as_bytes().to_vec(),
    };
    let checked = a.client.frame_checker().run(job.clone());
    assert!(checked.is_verified_consume());
    b.client.handle_input(Input::Checked(checked), b.now);
    // Nothing was decided: no delivery, no rejection, no ack.
    match b.client.poll_output() {
        Output::Timeout(_) | Output::Done => {}
        other => panic!("unexpected {other:?}"),
    }
    // Its own checker's result for a job it never handed out is ignored as well.
    let checked = b.client.frame_checker().run(job);
    b.client.handle_input(Input::Checked(checked), b.now);
    match b.client.poll_output() {
        Output::Timeout(_) | Output::Done => {}
        other => panic!("unexpected {other:?}"),
    }
}
