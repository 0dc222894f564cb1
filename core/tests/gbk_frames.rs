//! `testdata/vectors/gbk_frames.json`: an app whose charset is GBK (PROTOCOL §4). Its
//! websocket text frames carry GBK bytes, which the `ws` module hands over as bytes and
//! `Charset::decode_strict` decodes; signatures hold over the bytes as received. Runs on
//! every crypto backend compiled in.

use alipay_msg_core::charset::Charset;
use alipay_msg_core::consume::{AckStatus, ConsumeFrame};
use alipay_msg_core::crypto::Backend;
use alipay_msg_core::frame::{FrameLimits, SignatureStatus};
use alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_core::produce::ProduceRequest;
use alipay_msg_core::signature::{SignType, Signer, Verifier};
use alipay_msg_core::ws::{Role, WsConnection, WsEvent, WsLimits};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

fn vectors() -> Value {
    let text = std::fs::read_to_string(format!("{DIR}/gbk_frames.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    path.split('.')
        .fold(v, |v, k| &v[k])
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

fn b64(v: &Value, path: &str) -> Vec<u8> {
    STANDARD.decode(s(v, path)).unwrap()
}

fn key(name: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/keys/{name}")).unwrap()
}

fn platform_verifiers() -> Vec<(Backend, Verifier)> {
    let key = PublicKey::from_pem_or_base64(&key("alipay_public.pem")).unwrap();
    Backend::ALL
        .iter()
        .map(|&backend| (backend, Verifier::with_backend(&key, backend).unwrap()))
        .collect()
}

/// The one text message a client reads from `bytes` (all of them consumed).
fn read_text(bytes: &[u8]) -> Vec<u8> {
    let mut ws = WsConnection::new(Role::Client, WsLimits::default());
    match ws.read(bytes).unwrap() {
        (used, Some(WsEvent::Text(payload))) if used == bytes.len() => payload,
        other => panic!("expected one text message, got {other:?}"),
    }
}

#[test]
fn consume_gbk_is_read_verified_and_acknowledged() {
    let v = vectors();
    let payload = read_text(&b64(&v, "consume_gbk.websocket_frame_base64"));
    assert_eq!(payload, b64(&v, "consume_gbk.frame_gbk_base64"));

    // Not UTF-8 (consume_gbk_read_as_utf8): a strict UTF-8 reading refuses it.
    assert_eq!(v["consume_gbk_read_as_utf8"]["utf8_valid"], false);
    assert!(Charset::Utf8.decode_strict(&payload).is_err());
    let text = Charset::Gbk.decode_strict(&payload).unwrap();
    assert_eq!(text, s(&v, "consume_gbk.frame_text"));

    let consume = ConsumeFrame::parse(&text, &FrameLimits::default()).unwrap();
    assert_eq!(consume.msg_id, s(&v, "consume_gbk.expect.msg_id"));
    assert_eq!(consume.msg_api(), Some(s(&v, "consume_gbk.expect.msg_api")));
    assert_eq!(
        consume.biz_content(),
        s(&v, "consume_gbk.expect.biz_content")
    );
    assert_eq!(consume.charset.as_deref(), Some("GBK"));
    for (backend, verifier) in platform_verifiers() {
        assert_eq!(
            consume.verify(&verifier),
            SignatureStatus::Valid,
            "backend {backend}"
        );
    }
    let ack = consume.ack(AckStatus::Success).encode();
    assert_eq!(ack, s(&v, "consume_gbk.expect.ack_frame_text"));

    // The ack goes back as a masked client text frame in GBK, and reads back equal.
    let mut client = WsConnection::new(Role::Client, WsLimits::default());
    let frame = client
        .encode_text(&Charset::Gbk.encode(&ack), [0xde, 0xad, 0xbe, 0xef])
        .unwrap();
    let mut server = WsConnection::new(Role::Server, WsLimits::default());
    let (_, event) = server.read(&frame).unwrap();
    let Some(WsEvent::Text(bytes)) = event else {
        panic!("{event:?}")
    };
    assert_eq!(Charset::Gbk.decode_strict(&bytes).unwrap(), ack);
}

#[test]
fn tampered_consume_gbk_fails_verification() {
    let v = vectors();
    assert_eq!(s(&v, "consume_gbk_tampered.expect.signature"), "invalid");
    let bytes = b64(&v, "consume_gbk_tampered.frame_gbk_base64");
    assert_ne!(bytes, b64(&v, "consume_gbk.frame_gbk_base64"));
    // Still valid GBK (one character changed into another): only the signature catches it.
    let text = Charset::Gbk.decode_strict(&bytes).unwrap();
    let consume = ConsumeFrame::parse(&text, &FrameLimits::default()).unwrap();
    for (backend, verifier) in platform_verifiers() {
        assert!(
            matches!(consume.verify(&verifier), SignatureStatus::Invalid(_)),
            "backend {backend}"
        );
    }
    assert!(consume
        .ack(AckStatus::Fail)
        .encode()
        .contains("\"x-status\":\"FAIL\""));
}

#[test]
fn produce_gbk_frame_is_reproduced_byte_for_byte() {
    let v = vectors();
    let inputs = &v["produce_gbk"]["inputs"];
    let charset: Charset = s(inputs, "charset").parse().unwrap();
    assert_eq!(charset, Charset::Gbk);
    assert_eq!(s(inputs, "sign_type"), "RSA2");
    let request = ProduceRequest {
        app_id: s(inputs, "app_id"),
        msg_api: s(inputs, "msg_api"),
        biz_content: s(inputs, "biz_content"),
        cert_sns: None,
        stream_id: s(inputs, "stream_id"),
        timestamp_ms: inputs["timestamp_ms"].as_i64().unwrap(),
        charset,
    };
    let app_key = PrivateKey::from_pem_or_base64(&key("app_private_pkcs1.pem")).unwrap();
    for &backend in Backend::ALL {
        let signer = Signer::with_backend(&app_key, SignType::Rsa2, backend).unwrap();
        let text = request
            .sign_and_encode(&signer, &FrameLimits::default())
            .unwrap();
        assert_eq!(text, s(&v, "produce_gbk.frame_text"), "backend {backend}");
        assert!(text.contains(&format!("\"x-sign\":\"{}\"", s(&v, "produce_gbk.x_sign"))));
    }

    let gbk = Charset::Gbk.encode(s(&v, "produce_gbk.frame_text"));
    assert_eq!(*gbk, b64(&v, "produce_gbk.frame_gbk_base64"));
    let mask_hex = s(&v, "produce_gbk.mask_hex");
    let mask: Vec<u8> = (0..4)
        .map(|i| u8::from_str_radix(&mask_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let mask: [u8; 4] = mask.try_into().unwrap();
    let mut client = WsConnection::new(Role::Client, WsLimits::default());
    let frame = client.encode_text(&gbk, mask).unwrap();
    assert_eq!(frame, b64(&v, "produce_gbk.websocket_frame_masked_base64"));

    // The platform side reads it back to the same GBK bytes.
    let mut server = WsConnection::new(Role::Server, WsLimits::default());
    assert_eq!(
        server.read(&frame).unwrap(),
        (frame.len(), Some(WsEvent::Text(gbk.into_owned())))
    );
}
