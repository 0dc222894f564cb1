//! The websocket message layer (`ws::WsConnection`) over bytes, both roles: reassembly,
//! control frames, limits, the close handshake, split reads, and a proptest round trip.

use alipay_msg_core::ws::frame::{encode_frame, OpCode};
use alipay_msg_core::ws::{
    CloseCode, ProtocolViolation, Role, WriteError, WsConnection, WsEvent, WsLimits,
};
use proptest::prelude::*;

const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

fn conn(role: Role) -> WsConnection {
    WsConnection::new(role, WsLimits::default())
}

/// The frame as the peer of `reader` writes it: masked when the peer is a client.
fn peer_frame(reader: Role, fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mask = (reader == Role::Server).then_some(MASK);
    encode_frame(fin, opcode, payload, mask)
}

/// Reads all of `input`, collecting events.
fn read_all(c: &mut WsConnection, mut input: &[u8]) -> Result<Vec<WsEvent>, ProtocolViolation> {
    let mut events = Vec::new();
    loop {
        let (used, event) = c.read(input)?;
        input = &input[used..];
        match event {
            Some(e) => events.push(e),
            None => {
                assert!(input.is_empty(), "no event, yet bytes left unconsumed");
                return Ok(events);
            }
        }
    }
}

/// Reads `input` one piece at a time, split at `cut`.
fn read_split(c: &mut WsConnection, input: &[u8], cut: usize) -> Vec<WsEvent> {
    let mut events = read_all(c, &input[..cut]).unwrap();
    events.extend(read_all(c, &input[cut..]).unwrap());
    events
}

fn transmits(c: &mut WsConnection) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| c.poll_transmit(MASK)).collect()
}

#[test]
fn fragmented_message_with_interleaved_ping() {
    for role in [Role::Client, Role::Server] {
        let mut c = conn(role);
        let mut bytes = peer_frame(role, false, OpCode::Text, b"from-sys:");
        bytes.extend(peer_frame(role, true, OpCode::Ping, b"hb"));
        bytes.extend(peer_frame(role, false, OpCode::Continuation, b""));
        bytes.extend(peer_frame(role, true, OpCode::Continuation, b"openchannel"));
        let events = read_all(&mut c, &bytes).unwrap();
        assert_eq!(events, [WsEvent::Text(b"from-sys:openchannel".to_vec())]);
        // The ping inside the fragments is answered with a pong carrying its payload.
        let mask = (role == Role::Client).then_some(MASK);
        assert_eq!(
            transmits(&mut c),
            [encode_frame(true, OpCode::Pong, b"hb", mask)]
        );
    }
}

#[test]
fn binary_and_pong_are_reported() {
    let mut c = conn(Role::Client);
    let mut bytes = peer_frame(Role::Client, true, OpCode::Binary, &[0, 255]);
    bytes.extend(peer_frame(Role::Client, true, OpCode::Pong, b"42"));
    assert_eq!(
        read_all(&mut c, &bytes).unwrap(),
        [WsEvent::Binary(vec![0, 255]), WsEvent::Pong(b"42".to_vec())]
    );
    assert!(transmits(&mut c).is_empty());
}

#[test]
fn only_the_latest_ping_is_answered() {
    let mut c = conn(Role::Server);
    let mut bytes = Vec::new();
    for i in 0..100u8 {
        bytes.extend(peer_frame(Role::Server, true, OpCode::Ping, &[i]));
    }
    assert!(read_all(&mut c, &bytes).unwrap().is_empty());
    assert_eq!(
        transmits(&mut c),
        [encode_frame(true, OpCode::Pong, &[99], None)]
    );
}

#[test]
fn text_is_not_checked_as_utf8() {
    // GBK bytes of "订单": not UTF-8, handed over as they are.
    let gbk = [0xb6, 0xa9, 0xb5, 0xa5];
    let mut c = conn(Role::Client);
    let events = read_all(&mut c, &peer_frame(Role::Client, true, OpCode::Text, &gbk)).unwrap();
    assert_eq!(events, [WsEvent::Text(gbk.to_vec())]);
}

#[test]
fn fragment_errors_are_protocol_errors() {
    for role in [Role::Client, Role::Server] {
        let mut c = conn(role);
        let bytes = peer_frame(role, true, OpCode::Continuation, b"x");
        assert_eq!(
            read_all(&mut c, &bytes),
            Err(ProtocolViolation::UnexpectedContinuation)
        );

        let mut c = conn(role);
        let mut bytes = peer_frame(role, false, OpCode::Text, b"a");
        bytes.extend(peer_frame(role, true, OpCode::Binary, b"b"));
        let err = read_all(&mut c, &bytes).unwrap_err();
        assert_eq!(err, ProtocolViolation::UnfinishedMessage);
        assert_eq!(err.close_code(), CloseCode::PROTOCOL_ERROR);
        // Sticky, and the failing close (1002) is queued.
        assert_eq!(
            c.read(b"anything"),
            Err(ProtocolViolation::UnfinishedMessage)
        );
        let mask = (role == Role::Client).then_some(MASK);
        assert_eq!(
            transmits(&mut c),
            [encode_frame(
                true,
                OpCode::Close,
                &1002u16.to_be_bytes(),
                mask
            )]
        );
        assert!(c.is_closed());
        assert_eq!(c.encode_text(b"x", MASK), Err(WriteError::Closing));
    }
}

#[test]
fn masking_direction_is_enforced() {
    let mut server = conn(Role::Server);
    let unmasked = encode_frame(true, OpCode::Text, b"x", None);
    assert_eq!(
        read_all(&mut server, &unmasked),
        Err(ProtocolViolation::UnmaskedClientFrame)
    );
    let mut client = conn(Role::Client);
    let masked = encode_frame(true, OpCode::Text, b"x", Some(MASK));
    assert_eq!(
        read_all(&mut client, &masked),
        Err(ProtocolViolation::MaskedServerFrame)
    );
}

#[test]
fn oversized_frame_refused_on_its_header() {
    // A header claiming 2^62 bytes: refused with 1009 from its 10 bytes, nothing reserved.
    let mut c = WsConnection::new(
        Role::Client,
        WsLimits {
            max_message_bytes: 1000,
        },
    );
    let head = [0x81, 0x7F, 0x40, 0, 0, 0, 0, 0, 0, 0];
    let err = c.read(&head).unwrap_err();
    assert_eq!(
        err,
        ProtocolViolation::FrameTooLarge {
            declared: 1 << 62,
            limit: 1000
        }
    );
    assert_eq!(err.close_code(), CloseCode::MESSAGE_TOO_BIG);
    assert_eq!(
        transmits(&mut c),
        [encode_frame(
            true,
            OpCode::Close,
            &1009u16.to_be_bytes(),
            Some(MASK)
        )]
    );

    // Exactly the limit passes; one byte over across fragments does not.
    let mut c = WsConnection::new(
        Role::Client,
        WsLimits {
            max_message_bytes: 10,
        },
    );
    let ok = peer_frame(Role::Client, true, OpCode::Text, &[b'a'; 10]);
    assert_eq!(
        read_all(&mut c, &ok).unwrap(),
        [WsEvent::Text(vec![b'a'; 10])]
    );
    let mut bytes = peer_frame(Role::Client, false, OpCode::Text, &[b'a'; 6]);
    bytes.extend(peer_frame(
        Role::Client,
        true,
        OpCode::Continuation,
        &[b'b'; 5],
    ));
    assert_eq!(
        read_all(&mut c, &bytes),
        Err(ProtocolViolation::MessageTooLarge {
            total: 11,
            limit: 10
        })
    );
}

#[test]
fn control_frame_rules() {
    let mut c = conn(Role::Client);
    assert_eq!(
        c.ping(&[0; 126], MASK),
        Err(WriteError::ControlTooLong { len: 126 })
    );
    assert_eq!(
        c.close(CloseCode(1005), "", MASK),
        Err(WriteError::CloseCodeNotSendable(1005))
    );
    assert_eq!(
        c.close(CloseCode::NORMAL, &"x".repeat(124), MASK),
        Err(WriteError::ControlTooLong { len: 126 })
    );
    assert!(c.is_open());
    // A 1-byte close payload and an unsendable code are protocol errors.
    let mut c = conn(Role::Client);
    let bytes = peer_frame(Role::Client, true, OpCode::Close, &[3]);
    assert_eq!(
        read_all(&mut c, &bytes),
        Err(ProtocolViolation::CloseTooShort)
    );
    let mut c = conn(Role::Client);
    let bytes = peer_frame(Role::Client, true, OpCode::Close, &1006u16.to_be_bytes());
    assert_eq!(
        read_all(&mut c, &bytes),
        Err(ProtocolViolation::BadCloseCode(1006))
    );
}

/// RFC 6455 §5.5.1 and §8.1: a close reason is UTF-8, and an endpoint that finds it is
/// not fails the connection with 1007 (it was replaced with U+FFFD and accepted).
#[test]
fn a_close_reason_that_is_not_utf8_fails_with_1007() {
    for role in [Role::Client, Role::Server] {
        let mut c = conn(role);
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye \xff\xfe");
        let bytes = peer_frame(role, true, OpCode::Close, &payload);
        assert_eq!(
            read_all(&mut c, &bytes),
            Err(ProtocolViolation::CloseReasonNotUtf8)
        );
        assert_eq!(
            ProtocolViolation::CloseReasonNotUtf8.close_code(),
            CloseCode::INVALID_PAYLOAD
        );
        assert!(!c.is_open());
    }
}

#[test]
fn close_started_by_peer_is_echoed() {
    for role in [Role::Client, Role::Server] {
        let mut c = conn(role);
        let mut payload = 1001u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"going away");
        let mut bytes = peer_frame(role, true, OpCode::Close, &payload);
        // Bytes after the close are ignored.
        bytes.extend(peer_frame(role, true, OpCode::Text, b"late"));
        let events = read_all(&mut c, &bytes).unwrap();
        assert_eq!(
            events,
            [WsEvent::Closed {
                code: Some(CloseCode::GOING_AWAY),
                reason: "going away".into(),
                by_peer: true
            }]
        );
        let mask = (role == Role::Client).then_some(MASK);
        assert_eq!(
            transmits(&mut c),
            [encode_frame(
                true,
                OpCode::Close,
                &1001u16.to_be_bytes(),
                mask
            )]
        );
        assert!(c.is_closed());
        assert_eq!(c.ping(b"", MASK), Err(WriteError::Closing));
        assert_eq!(
            c.close(CloseCode::NORMAL, "", MASK),
            Err(WriteError::Closing)
        );
    }
    // An empty close is echoed empty.
    let mut c = conn(Role::Client);
    let events = read_all(&mut c, &peer_frame(Role::Client, true, OpCode::Close, b"")).unwrap();
    assert_eq!(
        events,
        [WsEvent::Closed {
            code: None,
            reason: String::new(),
            by_peer: true
        }]
    );
    assert_eq!(
        transmits(&mut c),
        [encode_frame(true, OpCode::Close, b"", Some(MASK))]
    );
}

#[test]
fn close_started_by_us_waits_for_the_answer() {
    for role in [Role::Client, Role::Server] {
        let mut c = conn(role);
        let ours = c.close(CloseCode::NORMAL, "bye", MASK).unwrap();
        let mask = (role == Role::Client).then_some(MASK);
        assert_eq!(
            ours,
            encode_frame(true, OpCode::Close, b"\x03\xe8bye", mask)
        );
        assert!(!c.is_open() && !c.is_closed());
        assert_eq!(c.encode_text(b"x", MASK), Err(WriteError::Closing));
        // Messages still arriving are delivered; pings are not answered any more.
        let mut bytes = peer_frame(role, true, OpCode::Text, b"in flight");
        bytes.extend(peer_frame(role, true, OpCode::Ping, b""));
        bytes.extend(peer_frame(
            role,
            true,
            OpCode::Close,
            &1000u16.to_be_bytes(),
        ));
        let events = read_all(&mut c, &bytes).unwrap();
        assert_eq!(
            events,
            [
                WsEvent::Text(b"in flight".to_vec()),
                WsEvent::Closed {
                    code: Some(CloseCode::NORMAL),
                    reason: String::new(),
                    by_peer: false
                }
            ]
        );
        assert!(transmits(&mut c).is_empty());
        assert!(c.is_closed());
    }
}

#[test]
fn client_and_server_talk() {
    let mut client = conn(Role::Client);
    let mut server = conn(Role::Server);
    let text = client.encode_text("订单".as_bytes(), [1, 2, 3, 4]).unwrap();
    assert_eq!(
        read_all(&mut server, &text).unwrap(),
        [WsEvent::Text("订单".as_bytes().to_vec())]
    );
    let ping = client.ping(b"hb", [5, 6, 7, 8]).unwrap();
    assert!(read_all(&mut server, &ping).unwrap().is_empty());
    let pong = server.poll_transmit([0; 4]).unwrap();
    assert_eq!(
        read_all(&mut client, &pong).unwrap(),
        [WsEvent::Pong(b"hb".to_vec())]
    );
    let close = server
        .close(CloseCode::GOING_AWAY, "restart", [0; 4])
        .unwrap();
    let events = read_all(&mut client, &close).unwrap();
    assert!(matches!(
        &events[..],
        [WsEvent::Closed { by_peer: true, .. }]
    ));
    let echo = client.poll_transmit([9; 4]).unwrap();
    let events = read_all(&mut server, &echo).unwrap();
    assert_eq!(
        events,
        [WsEvent::Closed {
            code: Some(CloseCode::GOING_AWAY),
            reason: String::new(),
            by_peer: false
        }]
    );
    assert!(client.is_closed() && server.is_closed());
}

#[test]
fn split_at_every_byte_boundary() {
    for role in [Role::Client, Role::Server] {
        // A 16-bit-length frame with a ping between two fragments.
        let mut bytes = peer_frame(role, false, OpCode::Text, &[b'x'; 200]);
        bytes.extend(peer_frame(role, true, OpCode::Ping, b"p"));
        bytes.extend(peer_frame(role, true, OpCode::Continuation, b"end"));
        let mut expected = vec![b'x'; 200];
        expected.extend_from_slice(b"end");
        for cut in 0..=bytes.len() {
            let mut c = conn(role);
            assert_eq!(
                read_split(&mut c, &bytes, cut),
                [WsEvent::Text(expected.clone())],
                "cut {cut}"
            );
            assert_eq!(transmits(&mut c).len(), 1);
        }
        // And byte by byte.
        let mut c = conn(role);
        let mut events = Vec::new();
        for b in &bytes {
            events.extend(read_all(&mut c, std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(events, [WsEvent::Text(expected)]);
    }
}

#[test]
fn read_stops_after_each_event() {
    let mut c = conn(Role::Client);
    let first = peer_frame(Role::Client, true, OpCode::Text, b"one");
    let mut bytes = first.clone();
    bytes.extend(peer_frame(Role::Client, true, OpCode::Text, b"two"));
    let (used, event) = c.read(&bytes).unwrap();
    assert_eq!(
        (used, event),
        (first.len(), Some(WsEvent::Text(b"one".to_vec())))
    );
}

fn arb_role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Client), Just(Role::Server)]
}

proptest! {
    /// What one end encodes, the other decodes, however the bytes are cut.
    #[test]
    fn round_trip(
        sender in arb_role(),
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..5),
        masks in prop::collection::vec(any::<[u8; 4]>(), 5),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let receiver = match sender { Role::Client => Role::Server, Role::Server => Role::Client };
        let mut tx = conn(sender);
        let mut rx = conn(receiver);
        let mut wire = Vec::new();
        for (message, mask) in messages.iter().zip(&masks) {
            wire.extend(tx.encode_text(message, *mask).unwrap());
        }
        wire.extend(tx.ping(b"hb", masks[4]).unwrap());
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(0);
        points.push(wire.len());
        points.sort_unstable();
        let mut events = Vec::new();
        for pair in points.windows(2) {
            events.extend(read_all(&mut rx, &wire[pair[0]..pair[1]]).unwrap());
        }
        let expected: Vec<WsEvent> = messages.iter().cloned().map(WsEvent::Text).collect();
        prop_assert_eq!(events, expected);
        let pong = rx.poll_transmit(masks[0]).unwrap();
        prop_assert_eq!(read_all(&mut tx, &pong).unwrap(), vec![WsEvent::Pong(b"hb".to_vec())]);
    }

    /// Arbitrary bytes never panic, and an error is sticky.
    #[test]
    fn garbage_is_an_error_not_a_panic(role in arb_role(), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut c = WsConnection::new(role, WsLimits { max_message_bytes: 64 });
        if let Err(e) = read_all(&mut c, &bytes) {
            prop_assert_eq!(c.read(b"more"), Err(e));
        }
    }
}
