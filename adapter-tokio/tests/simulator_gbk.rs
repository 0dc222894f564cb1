//! The simulator's websocket in each app's charset (PROTOCOL §4), seen by a websocket
//! client built from the core's sans-IO `ws` module over a plain TCP stream: a GBK app's
//! text frames carry GBK bytes both ways, its CONSUMEs are signed over those bytes, and
//! bytes that do not decode close the connection with 1007. A UTF-8 app is unchanged.

use std::time::Duration;

use alipay_msg_core::charset::Charset;
use alipay_msg_core::consume::{AckStatus, ConsumeFrame};
use alipay_msg_core::frame::{FrameLimits, SignatureStatus};
use alipay_msg_core::http::parse_response;
use alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_core::produce::ProduceRequest;
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_core::register::{
    parse_register_answer, register_request, RegisterParams, UpgradeParams,
};
use alipay_msg_core::server::{ProduceAnswer, ServerEvent};
use alipay_msg_core::signature::{SignType, Signer, Verifier};
use alipay_msg_core::ws::handshake::ClientHandshake;
use alipay_msg_core::ws::{CloseCode, Role, WsConnection, WsEvent, WsLimits};
use alipay_msg_simulator::{test_keys, Simulator, SimulatorEvent, SimulatorOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio::time::timeout;

const API: &str = "alipay.open.mini.version.audit.passed";
const LIMIT: Duration = Duration::from_secs(20);
/// Business content with Chinese text, whose bytes differ in GBK and UTF-8.
const CHINESE_BIZ: &str = r#"{"title":"小程序审核通过","memo":"你好，世界"}"#;

fn key_file(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/keys");
    std::fs::read_to_string(format!("{dir}/{name}")).unwrap()
}

fn app_signer() -> Signer {
    let key = PrivateKey::from_pem_or_base64(&key_file("app_private_pkcs1.pem")).unwrap();
    Signer::new(&key, SignType::Rsa2).unwrap()
}

fn platform_verifier() -> Verifier {
    Verifier::new(&PublicKey::from_pem_or_base64(&key_file("alipay_public.pem")).unwrap()).unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A websocket client from the core's `ws` module: the app's side of one connection.
struct WsClient {
    stream: TcpStream,
    ws: WsConnection,
    /// Bytes read and not yet given to `ws`.
    unread: Vec<u8>,
    charset: Charset,
    /// Masks: distinct per frame (a test needs no randomness).
    masks: u32,
}

impl WsClient {
    /// register.do then the upgrade, as the test app in `charset`.
    async fn connect(sim: &Simulator, charset: Charset) -> WsClient {
        let signer = app_signer();
        let params = RegisterParams {
            app_id: test_keys::APP_ID,
            charset,
            timestamp_ms: now_ms(),
            nonce: "0123456789abcdef0123456789abcdef",
            cert_sns: None,
        }
        .sign(&signer)
        .unwrap();
        let mut stream = TcpStream::connect(sim.local_addr()).await.unwrap();
        let request = register_request(&sim.endpoint(), &params, charset);
        stream.write_all(&request).await.unwrap();
        let mut bytes = Vec::new();
        timeout(LIMIT, stream.read_to_end(&mut bytes))
            .await
            .unwrap()
            .unwrap();
        let response = parse_response(&bytes, true, 1 << 20).unwrap().unwrap();
        let answer = parse_register_answer(
            &response,
            charset,
            &platform_verifier(),
            SignType::Rsa2,
            None,
        )
        .unwrap();

        let params = UpgradeParams {
            app_id: test_keys::APP_ID,
            charset,
            link_token: &answer.link_token,
            timestamp_ms: now_ms(),
            cert_sns: None,
        }
        .sign(&signer)
        .unwrap();
        let target = format!("/websocket?{}", params.query(charset));
        let cookie = answer.zone.map(|zone| format!("zone={zone};"));
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("cookie", c.as_str())).collect();
        let authority = sim.endpoint().authority();
        let (mut handshake, request) =
            ClientHandshake::start(&authority, &target, &headers, *b"0123456789abcdef").unwrap();
        let mut stream = TcpStream::connect(sim.local_addr()).await.unwrap();
        stream.write_all(&request).await.unwrap();
        let mut chunk = [0u8; 4096];
        let unread = loop {
            let n = timeout(LIMIT, stream.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed during the handshake");
            if let Some(upgraded) = handshake.read(&chunk[..n]).unwrap() {
                break chunk[upgraded.consumed..n].to_vec();
            }
        };
        WsClient {
            stream,
            ws: WsConnection::new(Role::Client, WsLimits::default()),
            unread,
            charset,
            masks: 0x1234_5678,
        }
    }

    fn mask(&mut self) -> [u8; 4] {
        self.masks = self.masks.wrapping_mul(747_796_405).wrapping_add(1);
        self.masks.to_be_bytes()
    }

    /// The next event; writes what the websocket wants written (pongs, close echo).
    /// `None`: the server closed the stream.
    async fn next_event(&mut self) -> Option<WsEvent> {
        let mut chunk = [0u8; 4096];
        loop {
            let (used, event) = self.ws.read(&self.unread).unwrap();
            self.unread.drain(..used);
            loop {
                let mask = self.mask();
                let Some(bytes) = self.ws.poll_transmit(mask) else {
                    break;
                };
                let _ = self.stream.write_all(&bytes).await;
            }
            if event.is_some() {
                return event;
            }
            let n = timeout(LIMIT, self.stream.read(&mut chunk))
                .await
                .expect("the simulator sends something in time")
                .unwrap();
            if n == 0 {
                return None;
            }
            self.unread.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next text message's payload (bytes as received), skipping pongs.
    async fn next_text(&mut self) -> Vec<u8> {
        loop {
            match self.next_event().await {
                Some(WsEvent::Text(payload)) => return payload,
                Some(WsEvent::Pong(_)) => {}
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Sends `payload` as one text frame, as is.
    async fn send_bytes(&mut self, payload: &[u8]) {
        let mask = self.mask();
        let frame = self.ws.encode_text(payload, mask).unwrap();
        self.stream.write_all(&frame).await.unwrap();
    }

    /// Sends `text` encoded in the app's charset.
    async fn send_text(&mut self, text: &str) {
        let bytes = self.charset.encode(text).into_owned();
        self.send_bytes(&bytes).await;
    }
}

/// Waits for the first event matching `f`.
async fn wait_event(
    events: &mut broadcast::Receiver<SimulatorEvent>,
    f: impl Fn(&SimulatorEvent) -> bool,
) -> SimulatorEvent {
    timeout(LIMIT, async {
        loop {
            let event = events.recv().await.unwrap();
            if f(&event) {
                return event;
            }
        }
    })
    .await
    .expect("the event in time")
}

/// A pushed CONSUME arrives in `charset`, verifies over those bytes and is acked; a
/// PRODUCE in `charset` is accepted. Returns the client for more.
async fn consume_and_produce(sim: &Simulator, charset: Charset) -> WsClient {
    let mut events = sim.events();
    let mut client = WsClient::connect(sim, charset).await;
    sim.wait_connections(1).await.unwrap();

    let msg_id = sim.push(API, CHINESE_BIZ).await.unwrap();
    let payload = client.next_text().await;
    assert_eq!(
        Charset::Utf8.decode_strict(&payload).is_ok(),
        charset == Charset::Utf8,
        "a {charset} frame is UTF-8 only for a UTF-8 app"
    );
    let text = charset.decode_strict(&payload).unwrap();
    let consume = ConsumeFrame::parse(&text, &FrameLimits::default()).unwrap();
    assert_eq!(consume.msg_id, msg_id.as_str());
    assert_eq!(consume.biz_content(), CHINESE_BIZ);
    assert_eq!(consume.charset.as_deref(), Some(charset.as_str()));
    assert_eq!(consume.verify(&platform_verifier()), SignatureStatus::Valid);
    // The signature covers the data's bytes in the app's charset and no other.
    let other = match charset {
        Charset::Utf8 => Charset::Gbk,
        Charset::Gbk => Charset::Utf8,
    };
    let sign = consume.sign.as_deref().unwrap();
    let verifier = platform_verifier();
    assert!(verifier
        .verify_text(SignType::Rsa2, charset, consume.signed_content(), sign)
        .is_ok());
    assert!(verifier
        .verify_text(SignType::Rsa2, other, consume.signed_content(), sign)
        .is_err());

    client
        .send_text(&consume.ack(AckStatus::Success).encode())
        .await;
    timeout(LIMIT, sim.wait_settled()).await.unwrap().unwrap();
    assert_eq!(sim.acked_messages().await.unwrap(), [(msg_id, 1)]);

    let produce = ProduceRequest {
        app_id: test_keys::APP_ID,
        msg_api: API,
        biz_content: CHINESE_BIZ,
        cert_sns: None,
        stream_id: "c0123456789ab",
        timestamp_ms: now_ms(),
        charset,
    }
    .sign_and_encode(&app_signer(), &FrameLimits::default())
    .unwrap();
    client.send_text(&produce).await;
    let payload = client.next_text().await;
    let ack = ProduceAck::parse(
        &charset.decode_strict(&payload).unwrap(),
        &FrameLimits::default(),
    )
    .unwrap();
    assert_eq!(ack.stream_id, "c0123456789ab");
    assert_eq!(ack.code.as_deref(), Some("10000"), "{ack:?}");
    let produced = wait_event(&mut events, |e| {
        matches!(e, SimulatorEvent::Server(ServerEvent::Produced { .. }))
    })
    .await;
    let SimulatorEvent::Server(ServerEvent::Produced {
        biz_content,
        answer,
        ..
    }) = produced
    else {
        unreachable!()
    };
    assert_eq!(biz_content.as_deref(), Some(CHINESE_BIZ));
    assert_eq!(answer, ProduceAnswer::Sent);
    client
}

/// Bytes that do not decode in the app's charset close the connection with 1007, and
/// the simulator reports it.
async fn undecodable_text_closes_with_1007(sim: &Simulator, mut client: WsClient, bad: &[u8]) {
    let mut events = sim.events();
    assert!(client.charset.decode_strict(bad).is_err());
    client.send_bytes(bad).await;
    loop {
        match client.next_event().await {
            Some(WsEvent::Closed { code, by_peer, .. }) => {
                assert_eq!(code, Some(CloseCode::INVALID_PAYLOAD));
                assert!(by_peer);
                break;
            }
            Some(WsEvent::Pong(_)) => {}
            other => panic!("expected the close, got {other:?}"),
        }
    }
    // The echo went out in next_event; the simulator then closes the stream.
    assert!(client.next_event().await.is_none());
    let event = wait_event(&mut events, |e| {
        matches!(e, SimulatorEvent::UndecodableText { .. })
    })
    .await;
    let SimulatorEvent::UndecodableText { error, .. } = &event else {
        unreachable!()
    };
    assert_eq!(error.charset, client.charset);
    assert!(event.to_string().contains("1007"), "{event}");
    timeout(LIMIT, sim.wait_disconnected())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn gbk_app_frames_are_gbk_bytes_both_ways() {
    let sim = Simulator::start(SimulatorOptions::with_test_keys())
        .await
        .unwrap();
    let client = consume_and_produce(&sim, Charset::Gbk).await;
    // 0xFF never starts a GBK character.
    let bad = b"\r\n\r\n{\"protocol\":{\"x-type\":\"message\",\"x-cmd\":\"\xff\xff\"}}";
    undecodable_text_closes_with_1007(&sim, client, bad).await;
    sim.shutdown().await;
}

#[tokio::test]
async fn utf8_app_frames_are_utf8() {
    let sim = Simulator::start(SimulatorOptions::with_test_keys())
        .await
        .unwrap();
    let client = consume_and_produce(&sim, Charset::Utf8).await;
    // "你好" in GBK: valid GBK, not UTF-8.
    let bad = b"\r\n\r\n{\"x\":\"\xc4\xe3\xba\xc3\"}";
    undecodable_text_closes_with_1007(&sim, client, bad).await;
    sim.shutdown().await;
}
