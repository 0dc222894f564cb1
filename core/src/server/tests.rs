//! Simulated-time tests of the platform side, driven with the core's own client-side
//! builders (no sockets, no sleeps).

use std::time::{Duration, Instant};

use rand_core::SeedableRng;

use super::*;
use crate::charset::Charset;
use crate::consume::ConsumeFrame;
use crate::frame::{FrameLimits, SignatureStatus};
use crate::http::parse_response;
use crate::key::{PrivateKey, PublicKey};
use crate::produce::ProduceRequest;
use crate::produce_ack::ProduceCode;
use crate::register::{parse_register_answer, RegisterError, RegisterParams, UpgradeParams};
use crate::signature::{Signer, Verifier};

const APP: &str = "2021000000000001";
const OTHER_APP: &str = "2021000000000002";
const UNIX0: i64 = 1_795_430_400_000;
const API: &str = "alipay.open.app.openbizmock.message.send";

fn key_text(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/keys");
    std::fs::read_to_string(format!("{dir}/{name}")).unwrap()
}

fn app_signer() -> Signer {
    let key = PrivateKey::from_pem_or_base64(&key_text("app_private_pkcs1.pem")).unwrap();
    Signer::new(&key, SignType::Rsa2).unwrap()
}

fn platform_key() -> PrivateKey {
    PrivateKey::from_pem_or_base64(&key_text("alipay_private_pkcs1.pem")).unwrap()
}

fn platform_verifier() -> Verifier {
    Verifier::new(&PublicKey::from_pem_or_base64(&key_text("alipay_public.pem")).unwrap()).unwrap()
}

fn app_verifier() -> Verifier {
    Verifier::new(&PublicKey::from_pem_or_base64(&key_text("app_public.pem")).unwrap()).unwrap()
}

fn config() -> ServerConfig {
    ServerConfig::from_platform_key(&platform_key())
        .unwrap()
        .with_app(APP, AppRegistration::new(app_verifier()))
        .with_app(OTHER_APP, AppRegistration::new(app_verifier()))
}

fn server_with(config: ServerConfig, t0: Instant) -> ServerSession {
    let rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7);
    ServerSession::new(config, Box::new(rng), t0, UNIX0)
}

fn ms(t0: Instant, now: Instant) -> i64 {
    UNIX0 + i64::try_from((now - t0).as_millis()).unwrap()
}

fn drain(s: &mut ServerSession) -> Vec<ServerOutput> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

/// Text-level hooks over the byte-level session, for the tests of the platform's rules
/// (the byte level has its own tests at the end of this file).
impl ServerSession {
    /// The upgrade checks for `target`, on a connection made for it (its websocket has
    /// no socket behind it: frames to it come back as [`ServerOutput::Write`]s).
    fn accept_upgrade(
        &mut self,
        target: &str,
        cookie: Option<&str>,
        now: Instant,
    ) -> Result<ConnectionId, UpgradeRefusal> {
        let conn = self.accept(now).expect("below max_links");
        self.links.remove(&conn);
        let result = self.upgrade(conn, target, cookie, now).map(|()| conn);
        self.finish(now);
        result
    }

    /// A text frame from the client on `conn`, as decoded from its websocket.
    fn handle_text(&mut self, conn: ConnectionId, text: &str, now: Instant) {
        self.on_text(conn, text, now);
        self.finish(now);
    }

    /// The client's connection ended.
    fn handle_closed(&mut self, conn: ConnectionId, now: Instant) {
        self.handle_input(ServerInput::Closed { conn, error: None }, now);
    }
}

/// The text frames in websocket bytes the server wrote, decoded as UTF-8 or, failing
/// that, GBK (the tests' texts in GBK are Chinese, never valid UTF-8).
fn texts_in(bytes: &[u8]) -> Vec<String> {
    let mut ws = WsConnection::new(crate::ws::Role::Client, WsLimits::default());
    let mut texts = Vec::new();
    let mut input = bytes;
    while !input.is_empty() {
        let Ok((used, event)) = ws.read(input) else {
            break;
        };
        input = &input[used..];
        if let Some(crate::ws::WsEvent::Text(payload)) = event {
            let text = Charset::Utf8
                .decode_strict(&payload)
                .or_else(|_| Charset::Gbk.decode_strict(&payload))
                .expect("text in UTF-8 or GBK")
                .into_owned();
            texts.push(text);
        }
    }
    texts
}

fn sends(outs: &[ServerOutput]) -> Vec<(ConnectionId, String)> {
    outs.iter()
        .flat_map(|o| match o {
            ServerOutput::Write { conn, bytes } => {
                texts_in(bytes).into_iter().map(|t| (*conn, t)).collect()
            }
            _ => Vec::new(),
        })
        .collect()
}

fn events(outs: &[ServerOutput]) -> Vec<ServerEvent> {
    outs.iter()
        .filter_map(|o| match o {
            ServerOutput::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn register_target(app_id: &str, timestamp_ms: i64, signer: &Signer, charset: Charset) -> String {
    let params = RegisterParams {
        app_id,
        charset,
        timestamp_ms,
        nonce: "0f8e3d1c2b4a59687766554433221100",
        cert_sns: None,
    }
    .sign(signer)
    .unwrap();
    format!("{REGISTER_PATH}?{}", params.query(charset))
}

fn upgrade_target(app_id: &str, token: &str, timestamp_ms: i64, signer: &Signer) -> String {
    upgrade_target_in(app_id, token, timestamp_ms, signer, Charset::Utf8)
}

fn upgrade_target_in(
    app_id: &str,
    token: &str,
    timestamp_ms: i64,
    signer: &Signer,
    charset: Charset,
) -> String {
    let params = UpgradeParams {
        app_id,
        charset,
        link_token: token,
        timestamp_ms,
        cert_sns: None,
    }
    .sign(signer)
    .unwrap();
    format!("{WEBSOCKET_PATH}?{}", params.query(charset))
}

/// register.do then the upgrade, for `app_id`; outputs are drained.
fn connect(s: &mut ServerSession, app_id: &str, t0: Instant, now: Instant) -> ConnectionId {
    connect_keep(s, app_id, t0, now).0
}

/// register.do then the upgrade; returns the outputs after the upgrade.
fn connect_keep(
    s: &mut ServerSession,
    app_id: &str,
    t0: Instant,
    now: Instant,
) -> (ConnectionId, Vec<ServerOutput>) {
    let signer = app_signer();
    let reply = s.handle_register(
        &register_target(app_id, ms(t0, now), &signer, Charset::Utf8),
        now,
    );
    let token = reply.result.unwrap();
    let conn = s
        .accept_upgrade(
            &upgrade_target(app_id, &token, ms(t0, now), &signer),
            Some("zone=SIM01;"),
            now,
        )
        .unwrap();
    (conn, drain(s))
}

fn consume(text: &str) -> ConsumeFrame {
    ConsumeFrame::parse(text, &FrameLimits::default()).unwrap()
}

fn ack(text: &str, status: AckStatus) -> String {
    consume(text).ack(status).encode()
}

fn produce(stream_id: &str, msg_api: &str, timestamp_ms: i64, signer: &Signer) -> String {
    ProduceRequest {
        app_id: APP,
        msg_api,
        biz_content: r#"{"shop_id":"1001"}"#,
        cert_sns: None,
        stream_id,
        timestamp_ms,
        charset: Charset::Utf8,
    }
    .sign_and_encode(signer, &FrameLimits::default())
    .unwrap()
}

/// The single PRODUCE_ACK among `outs`.
fn produce_ack(outs: &[ServerOutput]) -> ProduceAck {
    let sent = sends(outs);
    assert_eq!(sent.len(), 1, "{outs:?}");
    ProduceAck::parse(&sent[0].1, &FrameLimits::default()).unwrap()
}

/// Removes `,"key":"value"` from a frame.
fn strip_field(text: &str, key: &str) -> String {
    let start = text.find(&format!(",\"{key}\":\"")).unwrap();
    let value_start = start + key.len() + 5;
    let end = value_start + text[value_start..].find('"').unwrap() + 1;
    format!("{}{}", &text[..start], &text[end..])
}

#[test]
fn session_is_send() {
    fn is_send<T: Send>() {}
    is_send::<ServerSession>();
}

#[test]
fn register_success_is_accepted_by_the_client_parser() {
    let t0 = Instant::now();
    let mut config = config();
    config.platform_cert_sn = Some("platform-sn".into());
    let mut s = server_with(config, t0);
    let reply = s.handle_register(
        &register_target(APP, UNIX0, &app_signer(), Charset::Utf8),
        t0,
    );
    let token = reply.result.clone().unwrap();
    assert_eq!(token.len(), 32);
    let bytes = reply.to_http_bytes();
    let head = String::from_utf8_lossy(&bytes);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: application/json;charset=UTF-8\r\n"));
    assert!(head.contains("Connection: close\r\n"));
    assert!(head.contains("Set-Cookie: zone=SIM01; Path=/; HttpOnly\r\n"));
    let response = parse_response(&bytes, false, 64 * 1024).unwrap().unwrap();
    let answer = parse_register_answer(
        &response,
        Charset::Utf8,
        &platform_verifier(),
        SignType::Rsa2,
        Some("platform-sn"),
    )
    .unwrap();
    assert_eq!(answer.link_token, token);
    assert_eq!(answer.zone.as_deref(), Some("SIM01"));
    assert_eq!(
        events(&drain(&mut s)),
        [ServerEvent::Registered { app_id: APP.into() }]
    );
    // A second register gives another token; GBK requests work too.
    let reply = s.handle_register(
        &register_target(APP, UNIX0, &app_signer(), Charset::Gbk),
        t0,
    );
    let response = parse_response(&reply.to_http_bytes(), false, 64 * 1024)
        .unwrap()
        .unwrap();
    let answer = parse_register_answer(
        &response,
        Charset::Gbk,
        &platform_verifier(),
        SignType::Rsa2,
        None,
    )
    .unwrap();
    assert_ne!(answer.link_token, token);
}

#[test]
fn register_refusals_are_signed_platform_answers() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let app = app_signer();
    let platform_as_app = Signer::new(&platform_key(), SignType::Rsa2).unwrap();
    let bad_charset = {
        let params = crate::register::SignedParams::sign(
            vec![
                ("app_id", APP.to_owned()),
                ("charset", "ISO-8859-1".to_owned()),
                ("sign_type", "RSA2".to_owned()),
                ("timestamp", UNIX0.to_string()),
            ],
            Charset::Utf8,
            &app,
        )
        .unwrap();
        format!("{REGISTER_PATH}?{}", params.query(Charset::Utf8))
    };
    let good = register_target(APP, UNIX0, &app, Charset::Utf8);
    let no_sign = good[..good.find("&sign=").unwrap()].to_owned();
    let cases = [
        (
            register_target(APP, UNIX0, &platform_as_app, Charset::Utf8),
            "40004",
            "isv.invalid-signature",
        ),
        (
            register_target("2099000000000000", UNIX0, &app, Charset::Utf8),
            "40004",
            "isv.invalid-app-id",
        ),
        (
            register_target(APP, UNIX0 - 11 * 60_000, &app, Charset::Utf8),
            "40004",
            "isv.invalid-timestamp",
        ),
        (
            register_target(APP, UNIX0 + 11 * 60_000, &app, Charset::Utf8),
            "40004",
            "isv.invalid-timestamp",
        ),
        (bad_charset, "40004", "isv.invalid-charset"),
        (
            good.replace("sign_type=RSA2", "sign_type=MD5"),
            "40004",
            "isv.invalid-signature-type",
        ),
        (no_sign, "40001", "isv.missing-signature"),
        (
            good.replace("app_id=", "x_app_id="),
            "40001",
            "isv.missing-app-id",
        ),
    ];
    for (target, code, sub_code) in cases {
        let reply = s.handle_register(&target, t0);
        assert_eq!(reply.status, 200);
        let refusal = reply.result.clone().unwrap_err();
        assert_eq!(
            (refusal.code, refusal.sub_code),
            (code, sub_code),
            "{target}"
        );
        assert!(!reply.headers.iter().any(|(k, _)| k == "Set-Cookie"));
        let response = parse_response(&reply.to_http_bytes(), false, 64 * 1024)
            .unwrap()
            .unwrap();
        match parse_register_answer(
            &response,
            Charset::Utf8,
            &platform_verifier(),
            SignType::Rsa2,
            None,
        ) {
            Err(RegisterError::Refused {
                code: c,
                sub_code: Some(sc),
                signature_verified: true,
                ..
            }) => assert_eq!((c.as_str(), sc.as_str()), (code, sub_code)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            &events(&drain(&mut s))[..],
            [ServerEvent::RegisterRefused { sub_code: sc, .. }] if *sc == sub_code
        ));
    }
    // The failure vector's shape: the response object first, then the signature.
    let reply = s.handle_register(
        &register_target(APP, UNIX0, &platform_as_app, Charset::Utf8),
        t0,
    );
    assert!(reply.body.starts_with(
        r#"{"response":{"code":"40004","msg":"Business Failed","sub_code":"isv.invalid-signature","sub_msg":"invalid signature"},"sign":""#
    ));
    assert_eq!(s.handle_register("/other?a=1", t0).status, 404);
    assert_eq!(s.link_token_count(), 0);
}

#[test]
fn upgrade_link_token_rules() {
    let t0 = Instant::now();
    let mut config = config();
    config.max_connections_per_app = 1;
    let mut s = server_with(config, t0);
    let app = app_signer();
    let token = |s: &mut ServerSession, app_id: &str, now: Instant| {
        s.handle_register(
            &register_target(app_id, ms(t0, now), &app, Charset::Utf8),
            now,
        )
        .result
        .unwrap()
    };
    let t1 = token(&mut s, APP, t0);
    let conn = s
        .accept_upgrade(&upgrade_target(APP, &t1, UNIX0, &app), None, t0)
        .unwrap();
    assert!(matches!(
        &events(&drain(&mut s))[..],
        [ServerEvent::Registered { .. }, ServerEvent::Connected { conn: c, zone: None, .. }] if *c == conn
    ));
    let refuse = |s: &mut ServerSession, target: String, now| {
        let refusal = s.accept_upgrade(&target, None, now).unwrap_err();
        assert!(matches!(
            &events(&drain(s))[..],
            [ServerEvent::UpgradeRefused { refusal: r, .. }] if *r == refusal
        ));
        refusal
    };
    // Used.
    let r = refuse(&mut s, upgrade_target(APP, &t1, UNIX0, &app), t0);
    assert_eq!(
        (r.clone(), r.http_status()),
        (UpgradeRefusal::LinkTokenUsed, 401)
    );
    // Unknown.
    let r = refuse(&mut s, upgrade_target(APP, "nope", UNIX0, &app), t0);
    assert_eq!(r, UpgradeRefusal::UnknownLinkToken);
    // Expired (time to live 60 s).
    let t2 = token(&mut s, APP, t0);
    drain(&mut s);
    let later = t0 + Duration::from_secs(60);
    let r = refuse(&mut s, upgrade_target(APP, &t2, ms(t0, later), &app), later);
    assert_eq!(r, UpgradeRefusal::LinkTokenExpired);
    // Issued to another app.
    let t3 = token(&mut s, OTHER_APP, t0);
    drain(&mut s);
    let r = refuse(&mut s, upgrade_target(APP, &t3, UNIX0, &app), t0);
    assert_eq!(r, UpgradeRefusal::LinkTokenOtherApp);
    // Bad signature does not burn the token; the connection limit refuses with 429.
    let t4 = token(&mut s, APP, t0);
    drain(&mut s);
    let forger = Signer::new(&platform_key(), SignType::Rsa2).unwrap();
    let r = refuse(&mut s, upgrade_target(APP, &t4, UNIX0, &forger), t0);
    assert_eq!(
        (r.clone(), r.http_status()),
        (UpgradeRefusal::InvalidSignature, 401)
    );
    let r = refuse(&mut s, upgrade_target(APP, &t4, UNIX0, &app), t0);
    assert_eq!(
        (r.clone(), r.http_status()),
        (UpgradeRefusal::TooManyConnections { limit: 1 }, 429)
    );
    let r = refuse(
        &mut s,
        upgrade_target(APP, "x", UNIX0 - 3_600_000, &app),
        t0,
    );
    assert_eq!(r, UpgradeRefusal::InvalidTimestamp);
    let r = refuse(&mut s, "/ws?app_id=1".to_owned(), t0);
    assert_eq!(r.http_status(), 404);
    // After the connection closes another one is accepted.
    s.handle_closed(conn, t0);
    let t5 = token(&mut s, APP, t0);
    assert!(s
        .accept_upgrade(&upgrade_target(APP, &t5, UNIX0, &app), None, t0)
        .is_ok());
}

#[test]
fn zone_cookie_can_be_required_and_link_tokens_are_capped() {
    let t0 = Instant::now();
    let mut config = config();
    config.require_zone_cookie = true;
    config.max_link_tokens = 2;
    let mut s = server_with(config, t0);
    let app = app_signer();
    let tokens: Vec<String> = (0..3)
        .map(|_| {
            s.handle_register(&register_target(APP, UNIX0, &app, Charset::Utf8), t0)
                .result
                .unwrap()
        })
        .collect();
    assert_eq!(s.link_token_count(), 2);
    assert_eq!(
        s.accept_upgrade(
            &upgrade_target(APP, &tokens[0], UNIX0, &app),
            Some("zone=SIM01"),
            t0
        ),
        Err(UpgradeRefusal::UnknownLinkToken)
    );
    assert_eq!(
        s.accept_upgrade(
            &upgrade_target(APP, &tokens[1], UNIX0, &app),
            Some("zone=OTHER"),
            t0
        ),
        Err(UpgradeRefusal::ZoneMismatch)
    );
    let conn = s
        .accept_upgrade(
            &upgrade_target(APP, &tokens[1], UNIX0, &app),
            Some("a=b; zone=SIM01;"),
            t0,
        )
        .unwrap();
    assert!(events(&drain(&mut s)).contains(&ServerEvent::Connected {
        conn,
        app_id: APP.into(),
        zone: Some("SIM01".into())
    }));
}

#[test]
fn push_delivers_a_verifiable_consume_and_success_settles() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let id = s.push(APP, API, r#"{"k":"v","n":1}"#, t0).unwrap();
    assert_eq!(id.as_str().len(), 20);
    assert!(drain(&mut s).is_empty());
    assert_eq!(
        s.message_state(id.as_str()),
        Some(MessageState::Queued { attempts: 0 })
    );
    assert!(!s.is_settled());

    // The queued message goes out as soon as a connection is accepted.
    let t1 = t0 + Duration::from_millis(1500);
    let app = app_signer();
    let token = s
        .handle_register(&register_target(APP, ms(t0, t1), &app, Charset::Utf8), t1)
        .result
        .unwrap();
    drain(&mut s);
    let conn = s
        .accept_upgrade(&upgrade_target(APP, &token, ms(t0, t1), &app), None, t1)
        .unwrap();
    let outs = drain(&mut s);
    assert_eq!(
        events(&outs),
        [
            ServerEvent::Connected {
                conn,
                app_id: APP.into(),
                zone: None
            },
            ServerEvent::Delivered {
                msg_id: id.clone(),
                conn,
                attempt: 1,
                kind: DeliveryKind::Genuine
            }
        ]
    );
    assert_eq!(
        s.message_state(id.as_str()),
        Some(MessageState::InFlight { conn, attempt: 1 })
    );
    let sent = sends(&outs);
    assert_eq!(sent.len(), 1);
    let text = &sent[0].1;
    let frame = consume(text);
    assert_eq!(frame.verify(&platform_verifier()), SignatureStatus::Valid);
    assert_eq!(frame.msg_id, id.as_str());
    assert_eq!(frame.app_id(), Some(APP));
    assert_eq!(frame.msg_api(), Some(API));
    assert_eq!(frame.biz_content(), r#"{"k":"v","n":1}"#);
    assert_eq!(frame.timestamp_ms, Some(ms(t0, t1)));
    assert_eq!(frame.headers.from_sys.as_deref(), Some("openchannel"));
    assert_eq!(frame.headers.from_sys_ip.as_deref(), Some("127.0.0.1"));
    assert!(frame.headers.stream_id.is_some());
    assert_eq!(frame.charset.as_deref(), Some("UTF-8"));
    assert_eq!(s.poll_timeout(), Some(t1 + Duration::from_secs(10)));

    let t2 = t1 + Duration::from_millis(10);
    s.handle_text(conn, &ack(text, AckStatus::Success), t2);
    assert_eq!(
        events(&drain(&mut s)),
        [ServerEvent::Acked {
            msg_id: id.clone(),
            conn,
            status: AckStatus::Success,
            attempt: 1,
            latency: Duration::from_millis(10),
        }]
    );
    assert!(s.is_settled());
    assert_eq!(s.acked_messages(), [(id.clone(), 1)]);
    assert_eq!(
        s.message_state(id.as_str()),
        Some(MessageState::Acked { attempts: 1 })
    );
    assert_eq!(s.poll_timeout(), None);
    let counts = s.counts();
    assert_eq!((counts.acked, counts.queued, counts.in_flight), (1, 0, 0));
}

/// PROTOCOL §4: each connection's frames are in the charset of its upgrade; a CONSUME
/// carries it as `x-charset` and its signature holds over the text's bytes in it,
/// also when a message written for one charset is redelivered on the other.
#[test]
fn consumes_are_signed_in_each_connections_charset() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let app = app_signer();
    let connect_in = |s: &mut ServerSession, charset| {
        let token = s
            .handle_register(&register_target(APP, ms(t0, t0), &app, charset), t0)
            .result
            .unwrap();
        let target = upgrade_target_in(APP, &token, ms(t0, t0), &app, charset);
        let conn = s.accept_upgrade(&target, None, t0).unwrap();
        drain(s);
        conn
    };
    let gbk = connect_in(&mut s, Charset::Gbk);
    let utf8 = connect_in(&mut s, Charset::Utf8);
    assert_eq!(s.connection_charset(gbk), Some(Charset::Gbk));
    assert_eq!(s.connection_charset(utf8), Some(Charset::Utf8));
    assert_eq!(s.connection_charset(ConnectionId(99)), None);

    let biz = r#"{"title":"订单已支付"}"#;
    let m1 = s.push(APP, API, biz, t0).unwrap();
    let m2 = s.push(APP, API, biz, t0).unwrap();
    let sent = sends(&drain(&mut s));
    assert_eq!(
        sent.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        [gbk, utf8]
    );
    for ((conn, text), charset) in sent.iter().zip(["GBK", "UTF-8"]) {
        let frame = consume(text);
        assert_eq!(frame.charset.as_deref(), Some(charset), "{conn}");
        assert_eq!(frame.biz_content(), biz);
        assert_eq!(frame.verify(&platform_verifier()), SignatureStatus::Valid);
    }
    // The two signatures differ: they cover different bytes.
    assert_ne!(consume(&sent[0].1).sign, consume(&sent[1].1).sign);

    // m1, written for the GBK connection, is redelivered on the UTF-8 one in UTF-8.
    s.handle_text(utf8, &ack(&sent[1].1, AckStatus::Success), t0);
    s.handle_closed(gbk, t0);
    drain(&mut s);
    s.handle_timeout(t0 + Duration::from_secs(1));
    let again = sends(&drain(&mut s));
    assert_eq!(again.len(), 1);
    let frame = consume(&again[0].1);
    assert_eq!((frame.msg_id.as_str(), again[0].0), (m1.as_str(), utf8));
    assert_eq!(frame.charset.as_deref(), Some("UTF-8"));
    assert_eq!(frame.verify(&platform_verifier()), SignatureStatus::Valid);
    assert_ne!(m1, m2);
}

/// Pushes one message on a fresh connection; returns the session, connection, id and
/// the CONSUME text.
fn one_message(config: ServerConfig, t0: Instant) -> (ServerSession, ConnectionId, MsgId, String) {
    let mut s = server_with(config, t0);
    let conn = connect(&mut s, APP, t0, t0);
    let id = s.push(APP, API, r#"{"k":"v"}"#, t0).unwrap();
    let sent = sends(&drain(&mut s));
    assert_eq!(sent.len(), 1);
    (s, conn, id, sent[0].1.clone())
}

#[test]
fn fail_redelivers_on_the_schedule() {
    let t0 = Instant::now();
    let (mut s, conn, id, text) = one_message(config(), t0);
    s.handle_text(conn, &ack(&text, AckStatus::Fail), t0);
    let outs = drain(&mut s);
    assert_eq!(
        events(&outs)[1],
        ServerEvent::RedeliveryScheduled {
            msg_id: id.clone(),
            attempts: 1,
            at: t0 + Duration::from_secs(1),
            reason: RedeliveryReason::Fail
        }
    );
    assert!(sends(&outs).is_empty());
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    let mut now = t0;
    // Waits 1 s, 2 s, 4 s between attempts.
    for (attempt, wait) in [(2, 1), (3, 2), (4, 4)] {
        s.handle_timeout(now + Duration::from_millis(wait * 1000 - 1));
        assert!(sends(&drain(&mut s)).is_empty());
        now += Duration::from_secs(wait);
        s.handle_timeout(now);
        let outs = drain(&mut s);
        let sent = sends(&outs);
        assert_eq!(sent.len(), 1);
        assert!(events(&outs).contains(&ServerEvent::Delivered {
            msg_id: id.clone(),
            conn,
            attempt,
            kind: DeliveryKind::Genuine
        }));
        let status = if attempt == 4 {
            AckStatus::Success
        } else {
            AckStatus::Fail
        };
        s.handle_text(conn, &ack(&sent[0].1, status), now);
        drain(&mut s);
    }
    assert!(s.is_settled());
    assert_eq!(s.acked_messages(), [(id, 4)]);
}

#[test]
fn ack_timeout_redelivers() {
    let t0 = Instant::now();
    let (mut s, conn, id, _) = one_message(config(), t0);
    let deadline = t0 + Duration::from_secs(10);
    assert_eq!(s.poll_timeout(), Some(deadline));
    s.handle_timeout(deadline);
    assert_eq!(
        events(&drain(&mut s)),
        [ServerEvent::RedeliveryScheduled {
            msg_id: id.clone(),
            attempts: 1,
            at: deadline + Duration::from_secs(1),
            reason: RedeliveryReason::AckTimeout
        }]
    );
    s.handle_timeout(deadline + Duration::from_secs(1));
    let sent = sends(&drain(&mut s));
    assert_eq!(sent.len(), 1);
    assert_eq!(consume(&sent[0].1).msg_id, id.as_str());
    s.handle_text(
        conn,
        &ack(&sent[0].1, AckStatus::Success),
        deadline + Duration::from_secs(2),
    );
    assert_eq!(s.acked_messages(), [(id, 2)]);
}

#[test]
fn disconnect_redelivers_on_another_connection() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let c1 = connect(&mut s, APP, t0, t0);
    let c2 = connect(&mut s, APP, t0, t0);
    let m1 = s.push(APP, API, "{}", t0).unwrap();
    let m2 = s.push(APP, API, "{}", t0).unwrap();
    // Round robin.
    assert_eq!(
        sends(&drain(&mut s))
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>(),
        [c1, c2]
    );
    s.handle_closed(c1, t0);
    let ev = events(&drain(&mut s));
    assert_eq!(
        ev,
        [
            ServerEvent::Disconnected {
                conn: c1,
                by_server: false,
                unacked: 1
            },
            ServerEvent::RedeliveryScheduled {
                msg_id: m1.clone(),
                attempts: 1,
                at: t0 + Duration::from_secs(1),
                reason: RedeliveryReason::Disconnected
            }
        ]
    );
    assert_eq!(s.connections_of(APP), [c2]);
    s.handle_timeout(t0 + Duration::from_secs(1));
    let sent = sends(&drain(&mut s));
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, c2);
    assert_eq!(consume(&sent[0].1).msg_id, m1.as_str());
    assert_eq!(
        s.message_state(m2.as_str()),
        Some(MessageState::InFlight {
            conn: c2,
            attempt: 1
        })
    );
    // Text on the closed connection is reported, not processed.
    s.handle_text(c1, "x", t0);
    assert_eq!(
        events(&drain(&mut s)),
        [ServerEvent::TextOnUnknownConnection { conn: c1 }]
    );
}

#[test]
fn max_attempts_abandons() {
    let t0 = Instant::now();
    let mut config = config();
    config.max_attempts = Some(2);
    config.redelivery = vec![];
    let (mut s, conn, id, text) = one_message(config, t0);
    s.handle_text(conn, &ack(&text, AckStatus::Fail), t0);
    drain(&mut s);
    // Empty schedule: ready again at once.
    assert_eq!(s.poll_timeout(), Some(t0));
    s.handle_timeout(t0);
    let sent = sends(&drain(&mut s));
    s.handle_text(conn, &ack(&sent[0].1, AckStatus::Fail), t0);
    let ev = events(&drain(&mut s));
    assert_eq!(
        ev.last(),
        Some(&ServerEvent::Abandoned {
            msg_id: id.clone(),
            attempts: 2
        })
    );
    assert!(s.is_settled());
    assert_eq!(
        s.message_state(id.as_str()),
        Some(MessageState::Abandoned { attempts: 2 })
    );
    assert_eq!(s.counts().abandoned, 1);
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn window_queue_bound_and_push_errors() {
    let t0 = Instant::now();
    let mut config = config();
    config.max_in_flight_per_connection = 2;
    config.max_queued = 3;
    let mut s = server_with(config, t0);
    let conn = connect(&mut s, APP, t0, t0);
    for _ in 0..3 {
        s.push(APP, API, "{}", t0).unwrap();
    }
    assert_eq!(
        s.push(APP, API, "{}", t0),
        Err(PushError::QueueFull { limit: 3 })
    );
    let sent = sends(&drain(&mut s));
    assert_eq!(sent.len(), 2);
    let counts = s.counts();
    assert_eq!((counts.in_flight, counts.queued), (2, 1));
    s.handle_text(conn, &ack(&sent[0].1, AckStatus::Success), t0);
    assert_eq!(sends(&drain(&mut s)).len(), 1);
    assert!(matches!(
        s.push("nope", API, "{}", t0),
        Err(PushError::UnknownApp { .. })
    ));
    assert_eq!(s.push(APP, "", "{}", t0), Err(PushError::EmptyMsgApi));
    assert!(matches!(
        s.push(APP, API, "[1]", t0),
        Err(PushError::BizContent(_))
    ));
}

#[test]
fn unexpected_acks_and_malformed_text_are_events() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let c1 = connect(&mut s, APP, t0, t0);
    let c2 = connect(&mut s, APP, t0, t0);
    let id = s.push(APP, API, "{}", t0).unwrap();
    let sent = sends(&drain(&mut s));
    assert_eq!(sent[0].0, c1);
    let text = &sent[0].1;
    s.handle_text(c2, &ack(text, AckStatus::Success), t0);
    s.handle_text(
        c1,
        &ack(text, AckStatus::Success).replace(id.as_str(), "999"),
        t0,
    );
    s.handle_text(c1, "garbage", t0);
    s.handle_text(c1, text, t0); // a CONSUME from a client
    let ev = events(&drain(&mut s));
    assert!(
        matches!(
            &ev[..],
            [
                ServerEvent::UnexpectedAck { reason: UnexpectedAck::WrongConnection, conn: a, .. },
                ServerEvent::UnexpectedAck { reason: UnexpectedAck::UnknownMsgId, .. },
                ServerEvent::MalformedFromClient { error: FrameError::NoHeaderEnd, .. },
                ServerEvent::MalformedFromClient { error: FrameError::UnexpectedCommand { cmd: Command::Consume }, .. },
            ] if *a == c2
        ),
        "{ev:?}"
    );
    // Nothing changed; the connection is kept.
    assert_eq!(
        s.message_state(id.as_str()),
        Some(MessageState::InFlight {
            conn: c1,
            attempt: 1
        })
    );
    assert_eq!(s.connections_of(APP), [c1, c2]);
    s.handle_text(c1, &ack(text, AckStatus::Success), t0);
    s.handle_text(c1, &ack(text, AckStatus::Success), t0);
    assert!(matches!(
        &events(&drain(&mut s))[..],
        [
            ServerEvent::Acked { .. },
            ServerEvent::UnexpectedAck {
                reason: UnexpectedAck::NotInFlight,
                ..
            }
        ]
    ));
}

#[test]
fn produce_ack_codes() {
    let t0 = Instant::now();
    let mut config = config();
    config.apps.insert(
        APP.into(),
        AppRegistration::new(app_verifier()).with_allowed_msg_apis([API, "a.busy", "a.gone"]),
    );
    let mut s = server_with(config, t0);
    s.set_produce_failure("a.busy", Some(ProduceFailure::ServiceUnavailable));
    s.set_produce_failure("a.gone", Some(ProduceFailure::ConsumerNotExist));
    let conn = connect(&mut s, APP, t0, t0);
    let app = app_signer();
    let mut answer = |text: String| {
        s.handle_text(conn, &text, t0);
        produce_ack(&drain(&mut s))
    };

    let ok = answer(produce("c1", API, UNIX0, &app));
    assert!(ok.is_success(), "{ok}");
    assert_eq!(ok.stream_id, "c1");
    assert_eq!(ok.msg_id.as_ref().map(String::len), Some(20));

    let valid = produce("c2", API, UNIX0, &app);
    let platform = Signer::new(&platform_key(), SignType::Rsa2).unwrap();
    let cases: Vec<(String, &str, &str)> = vec![
        (strip_field(&valid, "x-sign"), "30001", "msg.missing-sign"),
        (
            strip_field(&valid, "x-charset"),
            "30001",
            "msg.missing-charset",
        ),
        (
            strip_field(&valid, "x-signType"),
            "30001",
            "msg.missing-sign-type",
        ),
        (
            strip_field(&valid, "x-timestamp"),
            "30001",
            "msg.missing-timestamp",
        ),
        (
            valid.replace("\"appId\":\"2021000000000001\",", ""),
            "30001",
            "msg.missing-app-id",
        ),
        (
            valid.replace(&format!(",\"msgApi\":\"{API}\""), ""),
            "30001",
            "msg.missing-msg-api",
        ),
        (
            valid.replace(",\"content\":{\"shop_id\":\"1001\"}", ""),
            "30001",
            "msg.missing-content",
        ),
        (
            valid.replace("\"x-charset\":\"UTF-8\"", "\"x-charset\":\"latin1\""),
            "30000",
            "msg.invalid-charset",
        ),
        (
            valid.replace("\"x-signType\":\"RSA2\"", "\"x-signType\":\"MD5\""),
            "30000",
            "msg.invalid-sign-type",
        ),
        (
            valid.replace(&UNIX0.to_string(), "soon"),
            "30000",
            "msg.invalid-timestamp",
        ),
        (
            produce("c2", API, UNIX0 - 601_000, &app),
            "30000",
            "msg.invalid-timestamp",
        ),
        (
            valid.replace("2021000000000001", OTHER_APP),
            "30000",
            "msg.invalid-app-id",
        ),
        (
            produce("c2", "no-dots", UNIX0, &app),
            "30000",
            "msg.invalid-msg-api",
        ),
        (
            valid.replace("{\"shop_id\":\"1001\"}", "{ }"),
            "30000",
            "msg.empty-content",
        ),
        (
            produce("c2", API, UNIX0, &platform),
            "30000",
            "msg.invalid-sign",
        ),
        (valid.replace("1001", "1002"), "30000", "msg.invalid-sign"),
        (
            produce("c2", "a.not.allowed", UNIX0, &app),
            "20001",
            "msg.no-permission",
        ),
        (
            produce("c2", "a.busy", UNIX0, &app),
            "20000",
            "msg.unknow-error",
        ),
        (
            produce("c2", "a.gone", UNIX0, &app),
            "40000",
            "msg.consumer-not-exist",
        ),
    ];
    for (text, code, error) in cases {
        let ack = answer(text);
        assert_eq!(ack.stream_id, "c2");
        assert_eq!(ack.status, AckStatus::Fail);
        assert_eq!(
            (ack.code.as_deref(), ack.error.as_deref()),
            (Some(code), Some(error))
        );
        assert_eq!(ack.msg_id, None);
    }
    assert_eq!(
        answer(produce("c3", "a.busy", UNIX0, &app)).result(),
        ProduceCode::ServiceUnavailable
    );

    // No stream id: nothing can be answered; reported instead.
    let no_stream =
        produce("c4", API, UNIX0, &app).replacen("stream-id:c4\r\n", "from-sys:x\r\n", 1);
    s.handle_text(conn, &no_stream, t0);
    let outs = drain(&mut s);
    assert!(sends(&outs).is_empty());
    assert!(matches!(
        &events(&outs)[..],
        [ServerEvent::Produced { stream_id: None, answer: ProduceAnswer::NoStreamId, verdict, .. }] if verdict.is_accepted()
    ));
}

#[test]
fn produce_success_event_carries_the_content() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let conn = connect(&mut s, APP, t0, t0);
    s.handle_text(conn, &produce("c1", API, UNIX0, &app_signer()), t0);
    let outs = drain(&mut s);
    let ack = produce_ack(&outs);
    match &events(&outs)[..] {
        [ServerEvent::Produced {
            stream_id: Some(sid),
            msg_api: Some(api),
            msg_id: Some(id),
            biz_content: Some(content),
            answer: ProduceAnswer::Sent,
            ..
        }] => {
            assert_eq!((sid.as_str(), api.as_str()), ("c1", API));
            assert_eq!(Some(id.as_str()), ack.msg_id.as_deref());
            assert_eq!(content, r#"{"shop_id":"1001"}"#);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fault_close_after_frames() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let conn = connect(&mut s, APP, t0, t0);
    s.set_faults(FaultPlan {
        close_after_frames: Some(CloseAfterFrames {
            conn: Some(conn),
            frames: 2,
        }),
        ..FaultPlan::default()
    });
    let ids: Vec<MsgId> = (0..3)
        .map(|_| s.push(APP, API, "{}", t0).unwrap())
        .collect();
    let outs = drain(&mut s);
    let kinds: Vec<&str> = outs
        .iter()
        .filter_map(|o| match o {
            ServerOutput::Write { bytes, .. } if bytes[0] == 0x81 => Some("send"),
            ServerOutput::Write { bytes, .. } if bytes[0] == 0x88 => Some("close frame"),
            ServerOutput::Close { .. } => Some("close"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["send", "send", "close frame", "close"]);
    assert!(events(&outs).contains(&ServerEvent::Disconnected {
        conn,
        by_server: true,
        unacked: 2
    }));
    assert_eq!(s.faults().close_after_frames, None);
    assert!(s.connections_of(APP).is_empty());
    // The adapter reporting the close afterwards changes nothing.
    s.handle_closed(conn, t0);
    assert!(drain(&mut s).is_empty());
    // Everything arrives on the next connection.
    let t1 = t0 + Duration::from_secs(1);
    let (c2, outs) = connect_keep(&mut s, APP, t0, t1);
    let mut sent = sends(&outs);
    assert_eq!(sent.len(), 1, "the message never sent goes out at once");
    s.handle_timeout(t1);
    sent.extend(sends(&drain(&mut s)));
    assert_eq!(sent.len(), 3);
    for (c, text) in &sent {
        s.handle_text(*c, &ack(text, AckStatus::Success), t1);
    }
    assert_eq!(sent[0].0, c2);
    assert!(s.is_settled());
    let mut acked: Vec<MsgId> = s.acked_messages().into_iter().map(|(id, _)| id).collect();
    acked.sort();
    assert_eq!(acked, ids);
}

#[test]
fn fault_withhold_and_delay_produce_acks() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let conn = connect(&mut s, APP, t0, t0);
    let app = app_signer();
    s.faults_mut().withhold_produce_acks = 1;
    s.handle_text(conn, &produce("c1", API, UNIX0, &app), t0);
    let outs = drain(&mut s);
    assert!(sends(&outs).is_empty());
    assert!(matches!(
        &events(&outs)[..],
        [ServerEvent::Produced {
            answer: ProduceAnswer::Withheld,
            ..
        }]
    ));
    s.handle_text(conn, &produce("c2", API, UNIX0, &app), t0);
    assert_eq!(produce_ack(&drain(&mut s)).stream_id, "c2");

    s.faults_mut().delay_produce_acks = Some(Duration::from_secs(3));
    s.handle_text(conn, &produce("c3", API, UNIX0, &app), t0);
    let at = t0 + Duration::from_secs(3);
    let outs = drain(&mut s);
    assert!(sends(&outs).is_empty());
    assert!(matches!(
        &events(&outs)[..],
        [ServerEvent::Produced { answer: ProduceAnswer::Delayed { at: a }, .. }] if *a == at
    ));
    assert_eq!(s.poll_timeout(), Some(at));
    s.handle_timeout(at);
    assert_eq!(produce_ack(&drain(&mut s)).stream_id, "c3");
}

#[test]
fn fault_corrupt_consume_then_intact_redelivery() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let conn = connect(&mut s, APP, t0, t0);
    s.faults_mut().corrupt_consumes = 1;
    let id = s.push(APP, API, r#"{"k":"v"}"#, t0).unwrap();
    let outs = drain(&mut s);
    assert!(events(&outs).contains(&ServerEvent::Delivered {
        msg_id: id.clone(),
        conn,
        attempt: 1,
        kind: DeliveryKind::CorruptedSignature
    }));
    let text = &sends(&outs)[0].1;
    let frame = consume(text);
    assert!(matches!(
        frame.verify(&platform_verifier()),
        SignatureStatus::Invalid(_)
    ));
    s.handle_text(conn, &ack(text, AckStatus::Fail), t0);
    s.handle_timeout(t0 + Duration::from_secs(1));
    let sent = sends(&drain(&mut s));
    let again = consume(&sent[0].1);
    assert_eq!(again.verify(&platform_verifier()), SignatureStatus::Valid);
    assert_eq!(again.msg_id, id.as_str());
    s.handle_text(
        conn,
        &ack(&sent[0].1, AckStatus::Success),
        t0 + Duration::from_secs(1),
    );
    assert_eq!(s.acked_messages(), [(id, 2)]);
}

#[test]
fn fault_duplicate_consume_on_another_connection() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let c1 = connect(&mut s, APP, t0, t0);
    let c2 = connect(&mut s, APP, t0, t0);
    s.faults_mut().duplicate_consumes = 1;
    let id = s.push(APP, API, "{}", t0).unwrap();
    let outs = drain(&mut s);
    let sent = sends(&outs);
    assert_eq!(sent.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [c1, c2]);
    assert_eq!(consume(&sent[0].1).msg_id, consume(&sent[1].1).msg_id);
    assert!(events(&outs).contains(&ServerEvent::Delivered {
        msg_id: id.clone(),
        conn: c2,
        attempt: 1,
        kind: DeliveryKind::Duplicate
    }));
    // Either copy's ack settles; the other is then unexpected.
    s.handle_text(c2, &ack(&sent[1].1, AckStatus::Success), t0);
    s.handle_text(c1, &ack(&sent[0].1, AckStatus::Success), t0);
    assert!(matches!(
        &events(&drain(&mut s))[..],
        [ServerEvent::Acked { conn, .. }, ServerEvent::UnexpectedAck { reason: UnexpectedAck::NotInFlight, .. }] if *conn == c2
    ));
    assert_eq!(s.acked_messages(), [(id, 1)]);
    // With one connection the copy goes on the same one.
    s.faults_mut().duplicate_consumes = 1;
    s.handle_closed(c2, t0);
    s.push(APP, API, "{}", t0).unwrap();
    let sent = sends(&drain(&mut s));
    assert_eq!(sent.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [c1, c1]);
}

#[test]
fn fault_garbage_before_consume() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let conn = connect(&mut s, APP, t0, t0);
    s.faults_mut().garbage_before_consumes = 1;
    s.push(APP, API, "{}", t0).unwrap();
    s.push(APP, API, "{}", t0).unwrap();
    let outs = drain(&mut s);
    let sent = sends(&outs);
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0].1, GARBAGE_FRAME);
    assert!(Frame::parse(&sent[0].1, &FrameLimits::default()).is_err());
    assert!(ConsumeFrame::parse(&sent[1].1, &FrameLimits::default()).is_ok());
    assert!(ConsumeFrame::parse(&sent[2].1, &FrameLimits::default()).is_ok());
    assert!(events(&outs).contains(&ServerEvent::GarbageSent { conn }));
}

#[test]
fn fault_forged_messages_are_not_pending_after_fail() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let conn = connect(&mut s, APP, t0, t0);
    let app = app_signer();
    let forged = s
        .push_forged(APP, API, r#"{"evil":1}"#, Some(&app), t0)
        .unwrap();
    let forged2 = s.push_forged(APP, API, r#"{"evil":2}"#, None, t0).unwrap();
    assert!(s.is_settled());
    let outs = drain(&mut s);
    let sent = sends(&outs);
    assert_eq!(sent.len(), 2);
    for (_, text) in &sent {
        assert!(matches!(
            consume(text).verify(&platform_verifier()),
            SignatureStatus::Invalid(_)
        ));
    }
    assert!(matches!(
        &events(&outs)[..],
        [
            ServerEvent::Delivered {
                kind: DeliveryKind::Forged,
                ..
            },
            ServerEvent::Delivered {
                kind: DeliveryKind::Forged,
                ..
            }
        ]
    ));
    s.handle_text(conn, &ack(&sent[0].1, AckStatus::Fail), t0);
    assert_eq!(
        events(&drain(&mut s)),
        [ServerEvent::ForgedDiscarded {
            msg_id: forged.clone(),
            status: Some(AckStatus::Fail)
        }]
    );
    // The second one is never answered: dropped at the ack timeout, not redelivered.
    s.handle_timeout(t0 + Duration::from_secs(10));
    assert_eq!(
        events(&drain(&mut s)),
        [ServerEvent::ForgedDiscarded {
            msg_id: forged2.clone(),
            status: None
        }]
    );
    assert_eq!(s.poll_timeout(), None);
    assert!(s.is_settled());
    assert_eq!(
        s.message_state(forged.as_str()),
        Some(MessageState::ForgedDiscarded {
            status: Some(AckStatus::Fail)
        })
    );
    let counts = s.counts();
    assert_eq!(
        (
            counts.forged_discarded,
            counts.forged_accepted,
            counts.acked
        ),
        (2, 0, 0)
    );
}

#[test]
fn presigned_pushes_share_one_signature() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let content = s.presign(APP, API, r#"{"bench":true}"#).unwrap();
    assert_eq!((content.app_id(), content.msg_api()), (APP, API));
    let a = s.push_presigned(&content, t0).unwrap();
    let b = s.push_presigned(&content, t0).unwrap();
    assert_ne!(a, b);
    connect(&mut s, APP, t0, t0);
    s.handle_timeout(t0);
    // `connect` drained the two sends; re-push to look at one.
    let c = s.push_presigned(&content, t0).unwrap();
    let sent = sends(&drain(&mut s));
    let frame = consume(&sent[0].1);
    assert_eq!(frame.msg_id, c.as_str());
    assert_eq!(frame.verify(&platform_verifier()), SignatureStatus::Valid);
    assert_eq!(s.counts().in_flight, 3);
}

#[test]
fn events_are_bounded() {
    let t0 = Instant::now();
    let mut config = config();
    config.max_pending_events = 1;
    let mut s = server_with(config, t0);
    for _ in 0..3 {
        let _ = s.handle_register("/other", t0);
    }
    assert_eq!(drain(&mut s).len(), 1);
    assert_eq!(s.events_dropped(), 2);
    let _ = s.handle_register("/other", t0);
    assert_eq!(drain(&mut s).len(), 1);
}

#[test]
fn certificate_mode_checks_the_sns() {
    let t0 = Instant::now();
    let mut config = config();
    config.apps.insert(
        APP.into(),
        AppRegistration::new(app_verifier()).with_cert_sns("app-sn", Some("root-sn")),
    );
    let mut s = server_with(config, t0);
    let app = app_signer();
    let sns = |app_sn: &str, root_sn: &str| crate::register::CertSns {
        app_cert_sn: app_sn.into(),
        alipay_root_cert_sn: root_sn.into(),
    };
    let register = |s: &mut ServerSession, sns: Option<&crate::register::CertSns>| {
        let params = RegisterParams {
            app_id: APP,
            charset: Charset::Utf8,
            timestamp_ms: UNIX0,
            nonce: "n",
            cert_sns: sns,
        }
        .sign(&app)
        .unwrap();
        s.handle_register(
            &format!("{REGISTER_PATH}?{}", params.query(Charset::Utf8)),
            t0,
        )
        .result
    };
    let sub_code = |r: Result<String, RegisterRefusal>| r.unwrap_err().sub_code;
    assert_eq!(sub_code(register(&mut s, None)), "isv.missing-app-cert-sn");
    assert_eq!(
        sub_code(register(&mut s, Some(&sns("other", "root-sn")))),
        "isv.app-cert-sn-mismatch"
    );
    assert_eq!(
        sub_code(register(&mut s, Some(&sns("app-sn", "other")))),
        "isv.alipay-root-cert-sn-mismatch"
    );
    let good = sns("app-sn", "root-sn");
    let token = register(&mut s, Some(&good)).unwrap();
    let upgrade = |sns: Option<&crate::register::CertSns>| {
        let params = UpgradeParams {
            app_id: APP,
            charset: Charset::Utf8,
            link_token: &token,
            timestamp_ms: UNIX0,
            cert_sns: sns,
        }
        .sign(&app)
        .unwrap();
        format!("{WEBSOCKET_PATH}?{}", params.query(Charset::Utf8))
    };
    assert_eq!(
        s.accept_upgrade(&upgrade(Some(&sns("x", "root-sn"))), None, t0),
        Err(UpgradeRefusal::CertSn)
    );
    let conn = s.accept_upgrade(&upgrade(Some(&good)), None, t0).unwrap();
    drain(&mut s);
    let produce = |cert_sns| {
        ProduceRequest {
            app_id: APP,
            msg_api: API,
            biz_content: "{\"a\":1}",
            cert_sns,
            stream_id: "c1",
            timestamp_ms: UNIX0,
            charset: Charset::Utf8,
        }
        .sign_and_encode(&app, &FrameLimits::default())
        .unwrap()
    };
    s.handle_text(conn, &produce(Some(("app-sn", "root-sn"))), t0);
    assert!(produce_ack(&drain(&mut s)).is_success());
    s.handle_text(conn, &produce(None), t0);
    assert_eq!(
        produce_ack(&drain(&mut s)).error.as_deref(),
        Some("msg.invalid-parameter")
    );
}

#[test]
fn server_side_disconnect_outputs_close_and_redelivers() {
    let t0 = Instant::now();
    let (mut s, conn, id, _) = one_message(config(), t0);
    s.disconnect(conn, t0);
    let outs = drain(&mut s);
    // A close frame (1000), then the close.
    assert!(
        matches!(&outs[0], ServerOutput::Write { bytes, .. } if bytes[..4] == [0x88, 2, 0x03, 0xe8])
    );
    assert_eq!(outs[1], ServerOutput::Close { conn });
    assert!(events(&outs).contains(&ServerEvent::Disconnected {
        conn,
        by_server: true,
        unacked: 1
    }));
    assert_eq!(
        s.message_state(id.as_str()),
        Some(MessageState::WaitingRetry {
            attempts: 1,
            at: t0 + Duration::from_secs(1)
        })
    );
    // Without a connection the message waits in the queue after its retry time.
    s.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(
        s.message_state(id.as_str()),
        Some(MessageState::Queued { attempts: 1 })
    );
    assert_eq!(s.poll_timeout(), None);
}

/// Register answers go out in the request's sign type, whatever the build: an app
/// whose sign type is `RSA` verifies the answer with SHA1withRSA (PROTOCOL §3), and one
/// signed SHA256withRSA fails that check.
#[test]
fn rsa_sign_type_apps_get_sha1_answers() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let key = PrivateKey::from_pem_or_base64(&key_text("app_private_pkcs1.pem")).unwrap();
    let rsa = Signer::new(&key, SignType::Rsa).unwrap();
    for target in [
        register_target(APP, UNIX0, &rsa, Charset::Utf8),
        // A refusal (unknown app) is signed in the request's sign type too.
        register_target("2021000000009999", UNIX0, &rsa, Charset::Utf8),
    ] {
        let reply = s.handle_register(&target, t0);
        let response = parse_response(&reply.to_http_bytes(), false, 64 * 1024)
            .unwrap()
            .unwrap();
        let as_rsa = parse_register_answer(
            &response,
            Charset::Utf8,
            &platform_verifier(),
            SignType::Rsa,
            None,
        );
        match &reply.result {
            Ok(token) => assert_eq!(as_rsa.unwrap().link_token, *token),
            Err(_) => assert!(
                matches!(
                    as_rsa,
                    Err(RegisterError::Refused {
                        signature_verified: true,
                        ..
                    })
                ),
                "{as_rsa:?}"
            ),
        }
        let as_rsa2 = parse_register_answer(
            &response,
            Charset::Utf8,
            &platform_verifier(),
            SignType::Rsa2,
            None,
        );
        assert!(
            matches!(
                as_rsa2,
                Err(RegisterError::BadSignature(_)
                    | RegisterError::Refused {
                        signature_verified: false,
                        ..
                    })
            ),
            "{as_rsa2:?}"
        );
    }
}

/// CONSUMEs to an app whose sign type is `RSA` are signed SHA1withRSA and say so in
/// `x-signType` (PROTOCOL §5); other apps still get `RSA2`.
#[test]
fn consumes_are_signed_in_the_apps_sign_type() {
    let t0 = Instant::now();
    let rsa_app = config().with_app(
        APP,
        AppRegistration::new(app_verifier()).with_sign_type(SignType::Rsa),
    );
    let (_, _, _, text) = one_message(rsa_app, t0);
    let frame = consume(&text);
    assert_eq!(frame.sign_type.as_deref(), Some("RSA"));
    // Verified with the frame's `x-signType`, i.e. as SHA1withRSA.
    assert_eq!(frame.verify(&platform_verifier()), SignatureStatus::Valid);

    let (_, _, _, text) = one_message(config(), t0);
    assert_eq!(consume(&text).sign_type.as_deref(), Some("RSA2"));
}

// ----- the byte level: HTTP requests, the upgrade, websocket framing -----

use crate::ws::frame::{encode_frame, OpCode};
use crate::ws::handshake::ClientHandshake;
use crate::ws::{CloseCode, ProtocolViolation, WsConnection, WsLimits};

/// A client frame, masked (RFC 6455 §5.1).
const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

/// Feeds `bytes` to `conn` and drains.
fn feed(
    s: &mut ServerSession,
    conn: ConnectionId,
    bytes: &[u8],
    now: Instant,
) -> Vec<ServerOutput> {
    s.handle_input(ServerInput::Bytes { conn, bytes }, now);
    drain(s)
}

/// Everything written, concatenated, and whether a close followed.
fn written(outs: &[ServerOutput]) -> (Vec<u8>, bool) {
    let mut all = Vec::new();
    let mut closed = false;
    for out in outs {
        match out {
            ServerOutput::Write { bytes, .. } => {
                assert!(!closed, "a write after the close");
                all.extend_from_slice(bytes);
            }
            ServerOutput::Close { .. } => closed = true,
            _ => {}
        }
    }
    (all, closed)
}

fn register_request(app_id: &str, now_ms: i64, charset: Charset) -> Vec<u8> {
    let target = register_target(app_id, now_ms, &app_signer(), charset);
    format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n").into_bytes()
}

/// register.do and the upgrade over bytes, in `charset`: the websocket's id, the
/// client handshake's answer already checked.
fn connect_bytes(s: &mut ServerSession, charset: Charset, t0: Instant) -> ConnectionId {
    let conn = s.accept(t0).unwrap();
    let (answer, closed) = written(&feed(s, conn, &register_request(APP, UNIX0, charset), t0));
    assert!(closed);
    let response = parse_response(&answer, true, 1 << 16).unwrap().unwrap();
    let token = parse_register_answer(
        &response,
        charset,
        &platform_verifier(),
        SignType::Rsa2,
        None,
    )
    .unwrap()
    .link_token;
    let target = upgrade_target_in(APP, &token, UNIX0, &app_signer(), charset);
    let (mut handshake, request) =
        ClientHandshake::start("127.0.0.1", &target, &[("cookie", "zone=SIM01;")], [9; 16])
            .unwrap();
    let conn = s.accept(t0).unwrap();
    let outs = feed(s, conn, &request, t0);
    let (answer, closed) = written(&outs);
    assert!(!closed, "{}", String::from_utf8_lossy(&answer));
    let upgraded = handshake.read(&answer).unwrap().expect("a 101 answer");
    assert_eq!(upgraded.consumed, answer.len());
    assert_eq!(s.connection_charset(conn), Some(charset));
    conn
}

#[test]
fn register_over_bytes_split_at_every_byte() {
    let t0 = Instant::now();
    let request = register_request(APP, UNIX0, Charset::Utf8);
    for split in 0..=request.len() {
        let mut s = server_with(config(), t0);
        let conn = s.accept(t0).unwrap();
        let mut outs = feed(&mut s, conn, &request[..split], t0);
        if split < request.len() {
            assert!(outs.is_empty(), "answered after {split} bytes");
            outs = feed(&mut s, conn, &request[split..], t0);
        }
        let (answer, closed) = written(&outs);
        assert!(closed, "split {split}");
        let response = parse_response(&answer, true, 1 << 16).unwrap().unwrap();
        let parsed = parse_register_answer(
            &response,
            Charset::Utf8,
            &platform_verifier(),
            SignType::Rsa2,
            None,
        );
        assert_eq!(parsed.unwrap().link_token.len(), 32, "split {split}");
        assert!(events(&outs).contains(&ServerEvent::Registered { app_id: APP.into() }));
        // The connection is forgotten: more bytes and its end change nothing.
        assert!(feed(&mut s, conn, b"GET / HTTP/1.1\r\n\r\n", t0).is_empty());
        s.handle_input(ServerInput::Closed { conn, error: None }, t0);
        assert!(drain(&mut s).is_empty());
    }
}

#[test]
fn upgrade_with_a_bad_key_is_refused() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let conn = s.accept(t0).unwrap();
    let request = "GET /websocket?app_id=x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dG9vIHNob3J0\r\n\r\n";
    let outs = feed(&mut s, conn, request.as_bytes(), t0);
    let (answer, closed) = written(&outs);
    assert!(closed);
    assert!(
        answer.starts_with(b"HTTP/1.1 400 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(events(&outs).contains(&ServerEvent::RequestRefused {
        conn,
        error: HandshakeError::BadKey
    }));
    assert_eq!(s.connection_count(), 0);
}

#[test]
fn upgrade_refusals_are_http_answers_and_other_paths_are_foreign() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    // A valid handshake whose parameters the platform refuses: 400, closed.
    let (_, request) = ClientHandshake::start("h", "/websocket?app_id=x", &[], [1; 16]).unwrap();
    let conn = s.accept(t0).unwrap();
    let (answer, closed) = written(&feed(&mut s, conn, &request, t0));
    assert!(closed && answer.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    // Another path goes to the embedder, with what followed the head.
    let conn = s.accept(t0).unwrap();
    let outs = feed(
        &mut s,
        conn,
        b"POST /admin/push HTTP/1.1\r\nContent-Length: 4\r\n\r\n{}",
        t0,
    );
    let [ServerOutput::Foreign { conn: c, request }] = &outs[..] else {
        panic!("{outs:?}")
    };
    assert_eq!(
        (*c, request.path(), &request.rest[..]),
        (conn, "/admin/push", &b"{}"[..])
    );
    assert!(feed(&mut s, conn, b"..", t0).is_empty());
}

#[test]
fn accept_is_bounded() {
    let t0 = Instant::now();
    let mut config = config();
    config.max_links = 2;
    let mut s = server_with(config, t0);
    let a = s.accept(t0).unwrap();
    s.accept(t0).unwrap();
    assert_eq!(
        s.accept(t0),
        Err(AcceptError::TooManyConnections { limit: 2 })
    );
    s.handle_input(
        ServerInput::Closed {
            conn: a,
            error: None,
        },
        t0,
    );
    assert!(s.accept(t0).is_ok());
}

#[test]
fn a_gbk_connections_frames_are_gbk_on_the_wire() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let conn = connect_bytes(&mut s, Charset::Gbk, t0);
    drain(&mut s);
    let biz = r#"{"title":"订单已支付"}"#;
    let id = s.push(APP, API, biz, t0).unwrap();
    let (bytes, _) = written(&drain(&mut s));
    let mut ws = WsConnection::new(crate::ws::Role::Client, WsLimits::default());
    let (_, event) = ws.read(&bytes).unwrap();
    let Some(crate::ws::WsEvent::Text(payload)) = event else {
        panic!("{event:?}")
    };
    assert!(
        std::str::from_utf8(&payload).is_err(),
        "GBK bytes, not UTF-8"
    );
    let text = Charset::Gbk.decode_strict(&payload).unwrap().into_owned();
    let frame = consume(&text);
    assert_eq!(
        (frame.biz_content(), frame.charset.as_deref()),
        (biz, Some("GBK"))
    );
    assert_eq!(frame.verify(&platform_verifier()), SignatureStatus::Valid);
    // The ack comes back in GBK, masked, split in two.
    let ack = Charset::Gbk
        .encode(&ack(&text, AckStatus::Success))
        .into_owned();
    let frame = encode_frame(true, OpCode::Text, &ack, Some(MASK));
    let (a, b) = frame.split_at(5);
    feed(&mut s, conn, a, t0);
    let outs = feed(&mut s, conn, b, t0);
    assert!(events(&outs)
        .iter()
        .any(|e| matches!(e, ServerEvent::Acked { msg_id, .. } if *msg_id == id)));
    assert!(s.is_settled());
}

#[test]
fn undecodable_text_is_closed_with_1007() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let conn = connect_bytes(&mut s, Charset::Utf8, t0);
    drain(&mut s);
    let id = s.push(APP, API, "{}", t0).unwrap();
    drain(&mut s);
    let outs = feed(
        &mut s,
        conn,
        &encode_frame(true, OpCode::Text, &[0xff, 0xfe], Some(MASK)),
        t0,
    );
    let (bytes, closed) = written(&outs);
    assert!(closed);
    let mut ws = WsConnection::new(crate::ws::Role::Client, WsLimits::default());
    let (_, event) = ws.read(&bytes).unwrap();
    assert!(matches!(
        event,
        Some(crate::ws::WsEvent::Closed { code: Some(CloseCode::INVALID_PAYLOAD), ref reason, .. }) if reason == "not valid UTF-8"
    ));
    let events = events(&outs);
    assert!(events
        .iter()
        .any(|e| matches!(e, ServerEvent::UndecodableText { conn: c, .. } if *c == conn)));
    assert!(events.contains(&ServerEvent::Disconnected {
        conn,
        by_server: true,
        unacked: 1
    }));
    assert!(matches!(
        s.message_state(id.as_str()),
        Some(MessageState::WaitingRetry { .. })
    ));
    // The client's close echo, after ours, changes nothing.
    assert!(feed(
        &mut s,
        conn,
        &encode_frame(true, OpCode::Close, &[3, 0xef], Some(MASK)),
        t0
    )
    .is_empty());
}

#[test]
fn an_unmasked_client_frame_fails_the_connection_with_1002() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let conn = connect_bytes(&mut s, Charset::Utf8, t0);
    drain(&mut s);
    let outs = feed(
        &mut s,
        conn,
        &encode_frame(true, OpCode::Text, b"{}", None),
        t0,
    );
    let (bytes, closed) = written(&outs);
    assert!(closed);
    assert_eq!(bytes, [0x88, 2, 0x03, 0xea], "close 1002");
    assert!(events(&outs).contains(&ServerEvent::ProtocolViolation {
        conn,
        violation: ProtocolViolation::UnmaskedClientFrame
    }));
    assert_eq!(s.connection_count(), 0);
}

#[test]
fn a_fragmented_produce_is_reassembled_and_pings_are_answered() {
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let conn = connect_bytes(&mut s, Charset::Utf8, t0);
    drain(&mut s);
    let text = produce("s-1", API, UNIX0, &app_signer());
    let (a, b) = text.as_bytes().split_at(text.len() / 2);
    let mut bytes = encode_frame(false, OpCode::Text, a, Some(MASK));
    // A ping between the fragments (RFC 6455 §5.4 allows control frames there).
    bytes.extend(encode_frame(true, OpCode::Ping, b"hb", Some(MASK)));
    bytes.extend(encode_frame(true, OpCode::Continuation, b, Some(MASK)));
    let outs = feed(&mut s, conn, &bytes, t0);
    let (pong, closed) = written(&outs);
    assert!(!closed);
    assert!(pong.starts_with(&[0x8a, 2, b'h', b'b']), "the pong first");
    let ack = produce_ack(&outs);
    assert_eq!(
        (ack.stream_id.as_str(), ack.code.as_deref()),
        ("s-1", Some("10000"))
    );
    // The client's close: echoed, then closed, not by the server.
    let outs = feed(
        &mut s,
        conn,
        &encode_frame(true, OpCode::Close, &[3, 0xe8], Some(MASK)),
        t0,
    );
    let (echo, closed) = written(&outs);
    assert!(closed && echo == [0x88, 2, 3, 0xe8]);
    assert!(events(&outs).contains(&ServerEvent::Disconnected {
        conn,
        by_server: false,
        unacked: 0
    }));
}

#[test]
fn redeliveries_go_to_another_connection_when_told() {
    // Three connections; every message FAILed on the connection that had it: with the
    // switch on, each redelivery goes to another connection; off, round robin may pick
    // the same one.
    let t0 = Instant::now();
    let mut s = server_with(config(), t0);
    let conns = [0; 3].map(|_| connect(&mut s, APP, t0, t0));
    assert!(!s.redeliver_elsewhere());
    s.set_redeliver_elsewhere(true);
    let mut now = t0;
    let mut last = std::collections::HashMap::new();
    for _ in 0..6 {
        s.push(APP, API, "{}", now).unwrap();
    }
    let mut moved = 0;
    for _round in 0..4 {
        let sent = sends(&drain(&mut s));
        assert!(!sent.is_empty());
        for (conn, text) in sent {
            assert!(conns.contains(&conn));
            let msg_id = consume(&text).msg_id;
            if let Some(previous) = last.insert(msg_id, conn) {
                assert_ne!(previous, conn, "a redelivery on the same connection");
                moved += 1;
            }
            s.handle_text(conn, &ack(&text, AckStatus::Fail), now);
        }
        drain(&mut s);
        now += Duration::from_secs(20);
        s.handle_timeout(now);
    }
    assert_eq!(moved, 18, "6 messages, 3 redeliveries each");

    // With one connection left, the redelivery goes to it.
    let mut s = server_with(config(), t0);
    let only = connect(&mut s, APP, t0, t0);
    s.set_redeliver_elsewhere(true);
    s.push(APP, API, "{}", t0).unwrap();
    let sent = sends(&drain(&mut s));
    s.handle_text(only, &ack(&sent[0].1, AckStatus::Fail), t0);
    drain(&mut s);
    s.handle_timeout(t0 + Duration::from_secs(1));
    assert_eq!(sends(&drain(&mut s))[0].0, only);
}
