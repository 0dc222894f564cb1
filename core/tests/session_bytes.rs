//! The session over bytes (simulated time, `support::Pair`): stale connections, check
//! jobs returned out of order, websocket pings, fragmentation, the size limit, charset
//! errors, the close handshake.

mod support;

use std::time::Duration;

use alipay_msg_core::client::{DisconnectReason, Event, Input, Output, RejectReason};
use alipay_msg_core::ws::frame::{encode_frame, OpCode};
use alipay_msg_core::ws::ProtocolViolation;
use support::{C2s, Pair, Policy};

fn consume_frame() -> String {
    let v: serde_json::Value =
        serde_json::from_str(&support::vector("frame_vectors.json")).unwrap();
    v["consume"]["frame"].as_str().unwrap().to_owned()
}

#[test]
fn stale_input_for_an_old_connection_is_ignored() {
    let mut pair = Pair::connected();
    let old = pair.client_ws.unwrap();
    pair.drop_connection();
    assert!(pair.client.is_connected());
    assert_ne!(pair.client_ws, Some(old));
    let mark = pair.mark();
    let now = pair.now;
    pair.client.handle_input(
        Input::Bytes {
            conn: old,
            bytes: b"garbage",
        },
        now,
    );
    pair.client.handle_input(
        Input::Closed {
            conn: old,
            error: None,
        },
        now,
    );
    pair.drive();
    assert_eq!(pair.events_after(mark).count(), 0);
    assert!(pair.client.is_connected());
}

#[test]
fn checked_frames_returned_out_of_order_are_delivered_in_read_order() {
    let mut pair = Pair::connected();
    pair.client.set_check_offload(8);
    // A burst: the six frames arrive in one read, so they go out as jobs.
    pair.coalesce_reads = true;
    let ids = pair.push(6);
    assert_eq!(pair.jobs_handed_out, 6);
    pair.advance(Duration::from_secs(1));
    let handled: Vec<String> = pair
        .client_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Message(d) => Some(d.msg_id().to_owned()),
            _ => None,
        })
        .collect();
    let expected: Vec<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
    assert_eq!(handled, expected);
    assert!(pair.server.is_settled());
}

/// Issue 17: with checking offloaded, a frame that arrives alone (nothing after it in
/// the read, no job out) is checked inline — a hand-off to another thread and back
/// costs more than it saves on the quiet path — while frames read together go out as
/// jobs; the messages are the same either way.
#[test]
fn a_lone_frame_is_checked_inline_and_a_burst_goes_out_as_jobs() {
    let mut pair = Pair::connected();
    pair.client.set_check_offload(4);
    let mut ids = pair.push(1);
    pair.advance(Duration::from_millis(100));
    assert_eq!(pair.jobs_handed_out, 0, "a lone frame is checked inline");
    ids.extend(pair.push(1));
    pair.advance(Duration::from_millis(100));
    assert_eq!(pair.jobs_handed_out, 0);

    pair.coalesce_reads = true;
    ids.extend(pair.push(3));
    pair.advance(Duration::from_millis(100));
    assert_eq!(
        pair.jobs_handed_out, 3,
        "frames read together go out as jobs"
    );

    let handled: Vec<String> = pair
        .client_events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Message(d) => Some(d.msg_id().to_owned()),
            _ => None,
        })
        .collect();
    let expected: Vec<String> = ids.iter().map(|id| id.as_str().to_owned()).collect();
    assert_eq!(handled, expected);
    assert!(pair.server.is_settled());
}

/// A connection whose reading paused while check jobs were out (the platform's pongs
/// wait unread behind the frames) is not declared dead the moment the jobs come back:
/// the time spent paused was not silence.
#[test]
fn a_pause_for_check_jobs_is_not_silence() {
    let mut pair = Pair::connected();
    let dead_after = pair.client.config().dead_after;
    let conn = pair.client_ws.unwrap();
    pair.client.set_check_offload(2);
    let frame = consume_frame();
    let mut ws = Pair::server_ws();
    let mut burst = Vec::new();
    for _ in 0..3 {
        burst.extend(ws.encode_text(frame.as_bytes(), [0; 4]).unwrap());
    }
    // Two jobs out (the offload's bound) and a frame kept: reading pauses. The jobs
    // stay out past `dead_after`.
    let mut now = pair.now;
    pair.client.handle_input(
        Input::Bytes {
            conn,
            bytes: &burst,
        },
        now,
    );
    let mut jobs = Vec::new();
    loop {
        match pair.client.poll_output() {
            Output::Check(job) => jobs.push(job),
            Output::Timeout(_) | Output::Done => break,
            _ => {}
        }
    }
    assert_eq!(jobs.len(), 2);
    assert!(!pair.client.wants_read());
    now += dead_after + Duration::from_secs(1);
    pair.client.handle_timeout(now);
    let checker = pair.client.frame_checker();
    for job in jobs {
        pair.client
            .handle_input(Input::Checked(checker.run(job)), now);
    }
    pair.client.handle_timeout(now);
    let mut dead = false;
    loop {
        match pair.client.poll_output() {
            Output::Event(Event::Disconnected {
                reason: DisconnectReason::Dead { .. },
                ..
            }) => dead = true,
            Output::Timeout(_) | Output::Done => break,
            _ => {}
        }
    }
    assert!(!dead, "declared dead right after a pause for check jobs");
    assert!(pair.client.is_connected());
}

#[test]
fn a_ping_from_the_platform_is_answered() {
    let mut pair = Pair::connected();
    let mark = pair.mark();
    pair.inject_bytes(encode_frame(true, OpCode::Ping, b"hi", None));
    // The client answers with a pong carrying the ping's payload (RFC 6455 §5.5.3).
    let pongs: Vec<_> = pair
        .transmits_after(mark)
        .filter(|(_, t)| matches!(t, C2s::Pong(_)))
        .collect();
    assert_eq!(pongs.len(), 1);
    assert_eq!(pongs[0].1, C2s::Pong(b"hi".to_vec()));
    assert!(pair.client.is_connected());
    assert_eq!(pair.events_after(mark).count(), 0);
}

#[test]
fn a_fragmented_consume_is_reassembled() {
    let mut pair = Pair::connected();
    pair.handler.policy = Policy::Hold;
    let text = consume_frame();
    let (a, b) = text.as_bytes().split_at(40);
    let mut bytes = encode_frame(false, OpCode::Text, a, None);
    bytes.extend(encode_frame(true, OpCode::Continuation, b, None));
    pair.inject_bytes(bytes);
    assert_eq!(pair.held.len(), 1, "{:?}", pair.client_events);
}

#[test]
fn an_oversized_frame_is_refused_without_reading_it() {
    let mut pair = Pair::builder()
        .client(|c| c.frame_limits.max_frame_bytes = 1024)
        .build();
    pair.connect();
    // A header claiming 1 GiB; no payload follows.
    let mut head = vec![0x81, 127];
    head.extend_from_slice(&(1u64 << 30).to_be_bytes());
    pair.inject_bytes(head);
    let lost = pair.count_events(|e| {
        matches!(
            e,
            Event::Disconnected {
                reason: DisconnectReason::Protocol(ProtocolViolation::FrameTooLarge { .. }),
                ..
            }
        )
    });
    assert_eq!(lost, 1, "{:?}", pair.client_events);
}

#[test]
fn undecodable_text_is_a_typed_rejection_and_the_connection_stays() {
    let mut pair = Pair::connected();
    let conn = pair.client_ws;
    pair.inject_bytes(encode_frame(
        true,
        OpCode::Text,
        b"\xff\xfe\r\n\r\n{}",
        None,
    ));
    let rejected = pair.count_events(|e| {
        matches!(
            e,
            Event::Rejected {
                reason: RejectReason::Undecodable(_),
                msg_id: None
            }
        )
    });
    assert_eq!(rejected, 1, "{:?}", pair.client_events);
    assert_eq!(pair.client_ws, conn);
    assert!(pair.client.is_connected());
    assert!(!pair
        .transmits
        .iter()
        .any(|(_, t)| matches!(t, C2s::Text(_))));
}

#[test]
fn shutdown_sends_a_close_frame_then_closes() {
    let mut pair = Pair::connected();
    pair.client.shutdown(pair.now);
    pair.drive();
    assert!(pair.client_done);
    let closes = pair
        .transmits
        .iter()
        .filter(|(_, t)| matches!(t, C2s::Close))
        .count();
    assert_eq!(closes, 1);
    assert!(pair.server.connections_of(support::APP).is_empty());
}

/// Drives a session whose every connection is refused until it stops: the events it
/// emitted, and the instant it reported done.
fn run_refused(
    mut config: alipay_msg_core::client::ClientConfig,
) -> (Vec<Event>, std::time::Duration) {
    use alipay_msg_core::client::{ClientSession, Output, Transmit};
    use std::time::Instant;
    config.first_connect_timeout = Some(Duration::from_secs(20));
    let start = Instant::now();
    let mut now = start;
    let mut session =
        ClientSession::new(config, support::seed_bytes(3), now, support::UNIX0).unwrap();
    let mut events = Vec::new();
    for _ in 0..10_000 {
        match session.poll_output() {
            Output::Transmit(Transmit::Connect { conn, .. }) => session.handle_input(
                Input::ConnectFailed {
                    conn,
                    error: std::io::ErrorKind::ConnectionRefused.into(),
                },
                now,
            ),
            Output::Event(event) => events.push(event),
            Output::Timeout(at) => {
                now = at;
                session.handle_timeout(now);
            }
            Output::Done => return (events, now - start),
            _ => {}
        }
    }
    panic!("the session never stopped: {events:?}");
}

#[test]
fn the_first_connection_gives_up_after_first_connect_timeout_naming_the_last_cause() {
    let config = support::client_config(support::app_credentials());
    let (events, stopped_after) = run_refused(config);
    assert_eq!(stopped_after, Duration::from_secs(20));
    let attempts = events
        .iter()
        .filter(|e| matches!(e, Event::Disconnected { .. }))
        .count();
    assert!(attempts >= 3, "{events:?}");
    match events.last() {
        Some(Event::GaveUp { waited, last }) => {
            assert_eq!(*waited, Duration::from_secs(20));
            assert_eq!(
                *last,
                Some(DisconnectReason::Network(
                    std::io::ErrorKind::ConnectionRefused
                ))
            );
        }
        other => panic!("last event {other:?}"),
    }
}

#[test]
fn key_warnings_come_first() {
    let small = support::vector("../keys/small_1024_public.pem");
    let credentials = alipay_msg_core::client::Credentials::public_key(
        &support::vector("keys/app_private_pkcs1.pem"),
        &small,
    )
    .unwrap();
    let (events, _) = run_refused(support::client_config(credentials));
    match events.first() {
        Some(Event::KeyWarning { which, warning }) => {
            assert_eq!(*which, "platform public key");
            assert!(warning.to_string().contains("1024"), "{warning}");
        }
        other => panic!("first event {other:?}"),
    }
}
