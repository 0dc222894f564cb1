//! Every bound on memory the client keeps, in one place: each limit is reached and the
//! typed error or the backpressure follows, nothing grows past it.

mod support;

use std::time::Duration;

use alipay_msg_core::client::{DisconnectReason, Event, SendError};
use alipay_msg_core::frame::{Frame, FrameError, FrameLimits};
use alipay_msg_core::http::{parse_response, HttpError};
use alipay_msg_core::notify::{self, FormLimits, NotifyError};
use alipay_msg_core::register::RegisterError;
use support::{Pair, Policy};

const ACK: &str =
    r#"{"protocol":{"x-type":"message","x-cmd":"CONSUME_ACK","x-msgId":"m","x-status":"SUCCESS"}}"#;

#[test]
fn frame_size_header_lines_and_json_depth() {
    let limits = FrameLimits::default();
    let big = format!("\r\n\r\n{}", " ".repeat(limits.max_frame_bytes));
    assert!(matches!(
        Frame::parse(&big, &limits),
        Err(FrameError::TooLarge { .. })
    ));
    let many = format!("{}\r\n{ACK}", "x:1\r\n".repeat(limits.max_header_lines + 1));
    assert!(matches!(
        Frame::parse(&many, &limits),
        Err(FrameError::TooManyHeaderLines { .. })
    ));
    let long = format!(
        "x:{}\r\n\r\n{ACK}",
        "a".repeat(limits.max_header_line_bytes)
    );
    assert!(matches!(
        Frame::parse(&long, &limits),
        Err(FrameError::HeaderLineTooLong { .. })
    ));
    let deep = format!(
        "\r\n\r\n{{\"protocol\":{{\"x-type\":\"message\",\"x-cmd\":\"CONSUME\"}},\"data\":{{\"content\":{}{}}}}}",
        "[".repeat(limits.max_json_depth),
        "]".repeat(limits.max_json_depth)
    );
    assert!(matches!(
        Frame::parse(&deep, &limits),
        Err(FrameError::TooDeep { .. })
    ));
}

#[test]
fn register_answer_size() {
    assert_eq!(
        parse_response(&[b'x'; 65], false, 64),
        Err(HttpError::TooLarge { limit: 64 })
    );
    // A client whose limit is smaller than the answer gives up on the attempt and
    // retries instead of buffering without bound.
    let mut pair = Pair::builder()
        .client(|c| c.max_register_response_bytes = 64)
        .build();
    pair.drive();
    assert!(!pair.client.is_connected());
    assert!(
        pair.count_events(|e| matches!(
            e,
            Event::Disconnected {
                reason: DisconnectReason::Register(RegisterError::Http(HttpError::TooLarge {
                    limit: 64
                })),
                retry_in: Some(_)
            }
        )) >= 1
    );
}

#[test]
fn notification_body_and_parameter_count() {
    let limits = FormLimits::default();
    let body = vec![b'a'; limits.max_body_len + 1];
    assert!(matches!(
        notify::parse_form(&body),
        Err(NotifyError::BodyTooLarge { .. })
    ));
    let many: String = (0..=limits.max_params)
        .map(|i| format!("k{i}=v&"))
        .collect();
    assert!(matches!(
        notify::parse_form(many.as_bytes()),
        Err(NotifyError::TooManyParams { .. })
    ));
}

#[test]
fn deliveries_in_flight_stop_reading() {
    let mut pair = Pair::builder().client(|c| c.max_in_flight = 3).build();
    pair.connect();
    pair.handler.policy = Policy::Hold;
    pair.push(10);
    pair.advance(Duration::from_secs(1));
    assert_eq!(pair.client.in_flight(), 3);
    assert!(!pair.client.wants_read());
    assert_eq!(
        pair.held.len(),
        3,
        "no fourth delivery while three await completion"
    );
}

#[test]
fn pending_sends() {
    let mut pair = Pair::builder().client(|c| c.max_pending_sends = 2).build();
    pair.connect();
    pair.server.faults_mut().withhold_produce_acks = 10;
    let now = pair.now;
    for _ in 0..2 {
        pair.client
            .send("alipay.open.app.openbizmock.message.send", "{}", now)
            .unwrap();
    }
    assert_eq!(
        pair.client
            .send("alipay.open.app.openbizmock.message.send", "{}", now),
        Err(SendError::TooManyPending { limit: 2 })
    );
    assert_eq!(pair.client.pending_sends(), 2);
}

#[test]
fn duplicate_window_memory() {
    let mut pair = Pair::builder().client(|c| c.duplicate_capacity = 5).build();
    pair.connect();
    pair.push(12);
    pair.advance(Duration::from_secs(5));
    assert_eq!(pair.client.remembered_handled(), 5, "bounded by count");
    let mut pair = Pair::builder()
        .client(|c| c.duplicate_max_age = Duration::from_secs(60))
        .build();
    pair.connect();
    pair.push(4);
    pair.advance(Duration::from_secs(5));
    assert_eq!(pair.client.remembered_handled(), 4);
    pair.advance(Duration::from_secs(61));
    assert_eq!(pair.client.remembered_handled(), 0, "bounded by age");
}
