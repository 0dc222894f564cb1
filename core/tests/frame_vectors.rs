//! Every case of `testdata/vectors/frame_vectors.json`: frames, signatures and
//! register/upgrade values must match byte for byte, on every crypto backend.

use alipay_msg_core::charset::Charset;
use alipay_msg_core::consume::{AckStatus, ConsumeFrame};
use alipay_msg_core::crypto::Backend;
use alipay_msg_core::endpoint::Endpoint;
use alipay_msg_core::frame::{FrameLimits, InvalidSignature, SignatureStatus};
use alipay_msg_core::http::HttpResponse;
use alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_core::produce::{ProduceFrame, ProduceRequest};
use alipay_msg_core::produce_ack::{ProduceAck, ProduceCode};
use alipay_msg_core::register::{
    parse_register_answer, RegisterError, RegisterParams, SignedParams, UpgradeParams, WsConnect,
    SDK_VERSION,
};
use alipay_msg_core::signature::{SignType, SignatureError, Signer, Verifier};
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

fn vectors() -> Value {
    let text = std::fs::read_to_string(format!("{DIR}/frame_vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    path.split('.')
        .fold(v, |v, k| &v[k])
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

fn key(name: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/keys/{name}")).unwrap()
}

fn app_signer(backend: Backend) -> Signer {
    let key = PrivateKey::from_pem_or_base64(&key("app_private_pkcs1.pem")).unwrap();
    Signer::with_backend(&key, SignType::Rsa2, backend).unwrap()
}

fn platform_verifier(backend: Backend) -> Verifier {
    let key = PublicKey::from_pem_or_base64(&key("alipay_public.pem")).unwrap();
    Verifier::with_backend(&key, backend).unwrap()
}

fn limits() -> FrameLimits {
    FrameLimits::default()
}

#[test]
fn sdk_version_matches_the_vectors() {
    assert_eq!(
        SDK_VERSION,
        s(&vectors(), "register_request.params.sdk_version")
    );
}

#[test]
fn consume_parses_verifies_and_acks() {
    let v = vectors();
    let frame = ConsumeFrame::parse(s(&v, "consume.frame"), &limits()).unwrap();
    assert_eq!(frame.signed_content(), s(&v, "consume.signed_content"));
    assert_eq!(frame.msg_id, s(&v, "consume.expect.msg_id"));
    assert_eq!(frame.msg_api(), Some(s(&v, "consume.expect.msg_api")));
    assert_eq!(frame.app_id(), Some(s(&v, "consume.expect.app_id")));
    assert_eq!(
        frame.timestamp_ms,
        v["consume"]["expect"]["timestamp_ms"].as_i64()
    );
    let biz: Value = serde_json::from_str(frame.biz_content()).unwrap();
    assert_eq!(biz, v["consume"]["expect"]["biz_content_json"]);
    for &backend in Backend::ALL {
        assert_eq!(
            frame.verify(&platform_verifier(backend)),
            SignatureStatus::Valid
        );
    }
    assert_eq!(
        frame.ack(AckStatus::Success).encode(),
        s(&v, "consume.ack_success")
    );
    assert_eq!(
        frame.ack(AckStatus::Fail).encode(),
        s(&v, "consume.ack_fail")
    );
}

#[test]
fn consume_tampered_does_not_verify() {
    let v = vectors();
    let frame = ConsumeFrame::parse(s(&v, "consume_tampered.frame"), &limits()).unwrap();
    assert_eq!(v["consume_tampered"]["expect"]["signature_valid"], false);
    for &backend in Backend::ALL {
        assert_eq!(
            frame.verify(&platform_verifier(backend)),
            SignatureStatus::Invalid(InvalidSignature::Signature(SignatureError::Mismatch))
        );
    }
}

#[test]
fn consume_with_tricky_strings() {
    let v = vectors();
    let frame = ConsumeFrame::parse(s(&v, "consume_tricky_strings.frame"), &limits()).unwrap();
    assert_eq!(
        frame.signed_content(),
        s(&v, "consume_tricky_strings.signed_content")
    );
    assert_eq!(frame.msg_id, s(&v, "consume_tricky_strings.expect.msg_id"));
    for &backend in Backend::ALL {
        assert!(frame.verify(&platform_verifier(backend)).is_valid());
    }
}

#[test]
fn produce_is_byte_identical() {
    let v = vectors();
    let inputs = &v["produce"]["inputs"];
    for &backend in Backend::ALL {
        let request = ProduceRequest {
            app_id: s(inputs, "app_id"),
            msg_api: s(inputs, "msg_api"),
            biz_content: s(inputs, "biz_content"),
            cert_sns: None,
            stream_id: s(inputs, "stream_id"),
            timestamp_ms: inputs["timestamp_ms"].as_i64().unwrap(),
            charset: s(inputs, "charset").parse().unwrap(),
        };
        assert_eq!(
            request.data_text(&limits()).unwrap(),
            s(&v, "produce.signed_content")
        );
        let frame = request
            .sign_and_encode(&app_signer(backend), &limits())
            .unwrap();
        assert_eq!(frame, s(&v, "produce.frame"), "backend {backend}");

        // The platform side reads it back and verifies it with the app public key.
        let parsed = ProduceFrame::parse(&frame, &limits()).unwrap();
        let app_public = PublicKey::from_pem_or_base64(&key("app_public.pem")).unwrap();
        assert!(parsed
            .verify(&Verifier::with_backend(&app_public, backend).unwrap())
            .is_valid());
        assert_eq!(
            parsed.headers.stream_id.as_deref(),
            Some(s(inputs, "stream_id"))
        );

        let cert_mode = ProduceRequest {
            cert_sns: Some((
                "2a82c79ac8cfebc5e6099dfafccafbc8",
                "c3a7e357dda709b9b2b67043797ca41a",
            )),
            ..request
        };
        let data = cert_mode.data_text(&limits()).unwrap();
        assert_eq!(data, s(&v, "produce_cert_mode.signed_content"));
        assert_eq!(
            app_signer(backend).sign_text(&data, Charset::Utf8).unwrap(),
            s(&v, "produce_cert_mode.x_sign")
        );
    }
}

#[test]
fn produce_acks_are_typed() {
    let v = vectors();
    for (case, code, retryable, success) in [
        ("produce_ack_success", ProduceCode::Accepted, false, true),
        (
            "produce_ack_invalid_sign",
            ProduceCode::InvalidRequest,
            false,
            false,
        ),
        (
            "produce_ack_busy",
            ProduceCode::ServiceUnavailable,
            true,
            false,
        ),
    ] {
        let text = s(&v[case], "frame");
        let ack = ProduceAck::parse(text, &limits()).unwrap();
        let expect = &v[case]["expect"];
        assert_eq!(ack.stream_id, s(expect, "stream_id"));
        assert_eq!(ack.status.as_str(), s(expect, "status"));
        assert_eq!(ack.code.as_deref(), Some(s(expect, "code")));
        if let Some(error) = expect["error"].as_str() {
            assert_eq!(ack.error.as_deref(), Some(error));
        }
        assert_eq!(ack.msg_id.as_deref(), expect["message_id"].as_str());
        if let Some(r) = expect["retryable"].as_bool() {
            assert_eq!(ack.is_retryable(), r);
        }
        assert_eq!(
            (ack.result(), ack.is_retryable(), ack.is_success()),
            (code, retryable, success)
        );
        assert_eq!(ack.encode(), text, "{case} writes back byte for byte");
    }
}

#[test]
fn register_request_signature() {
    let v = vectors();
    let p = &v["register_request"]["params"];
    for &backend in Backend::ALL {
        let signed = RegisterParams {
            app_id: s(p, "app_id"),
            charset: s(p, "charset").parse().unwrap(),
            timestamp_ms: s(p, "timestamp").parse().unwrap(),
            nonce: s(p, "nonce"),
            cert_sns: None,
        }
        .sign(&app_signer(backend))
        .unwrap();
        assert_eq!(
            signed.sign_content(),
            s(&v, "register_request.sign_content")
        );
        assert_eq!(signed.sign_value(), s(&v, "register_request.sign"));
        // The query carries the same values, URL-encoded, and the sign.
        let query = signed.query(Charset::Utf8);
        let decoded: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            decoded.last().unwrap(),
            &("sign".into(), s(&v, "register_request.sign").into())
        );
        for (k, val) in p.as_object().unwrap() {
            assert!(
                decoded.contains(&(k.clone(), val.as_str().unwrap().to_owned())),
                "{k}"
            );
        }
    }
}

#[test]
fn register_answer_success_and_failure() {
    let v = vectors();
    let ok = HttpResponse {
        status: 200,
        headers: vec![(
            "Set-Cookie".into(),
            s(&v, "register_response.set_cookie").into(),
        )],
        body: s(&v, "register_response.body").as_bytes().to_vec(),
    };
    for &backend in Backend::ALL {
        let verifier = platform_verifier(backend);
        let answer =
            parse_register_answer(&ok, Charset::Utf8, &verifier, SignType::Rsa2, None).unwrap();
        assert_eq!(
            answer.link_token,
            s(&v, "register_response.expect.link_token")
        );
        assert_eq!(
            answer.zone.as_deref(),
            Some(s(&v, "register_response.expect.zone"))
        );

        // A success whose response text was altered is refused.
        let mut forged = ok.clone();
        forged.body = s(&v, "register_response.body")
            .replace("lt_9f1c2e7a", "lt_attacker")
            .into_bytes();
        assert!(matches!(
            parse_register_answer(&forged, Charset::Utf8, &verifier, SignType::Rsa2, None),
            Err(RegisterError::BadSignature(_))
        ));
        // A success without a signature is refused.
        let mut unsigned = ok.clone();
        unsigned.body =
            br#"{"response":{"code":"10000","msg":"Success","link_token":"x"}}"#.to_vec();
        assert_eq!(
            parse_register_answer(&unsigned, Charset::Utf8, &verifier, SignType::Rsa2, None),
            Err(RegisterError::Unsigned)
        );

        let fail = HttpResponse {
            status: 200,
            headers: vec![],
            body: s(&v, "register_response_failure.body").as_bytes().to_vec(),
        };
        match parse_register_answer(&fail, Charset::Utf8, &verifier, SignType::Rsa2, None) {
            Err(e @ RegisterError::Refused { .. }) => {
                let RegisterError::Refused {
                    code,
                    sub_code,
                    signature_verified,
                    ..
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!(code, s(&v, "register_response_failure.expect.error_code"));
                assert_eq!(
                    sub_code.as_deref(),
                    Some(s(&v, "register_response_failure.expect.sub_code"))
                );
                assert!(signature_verified);
                assert!(!e.is_retryable());
                assert!(e.to_string().contains("isv.invalid-signature"), "{e}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

#[test]
fn register_answer_cert_sn_is_checked() {
    let v = vectors();
    let body = s(&v, "register_response.body");
    let with_sn = format!("{},\"alipay_cert_sn\":\"0123\"}}", &body[..body.len() - 1]);
    let response = HttpResponse {
        status: 200,
        headers: vec![],
        body: with_sn.into_bytes(),
    };
    let verifier = platform_verifier(Backend::default());
    let sn = "7107d7d8dc6fc5ce914a4560bcd5096a";
    assert_eq!(
        parse_register_answer(
            &response,
            Charset::Utf8,
            &verifier,
            SignType::Rsa2,
            Some(sn)
        ),
        Err(RegisterError::CertSnMismatch {
            expected: sn.into(),
            received: "0123".into()
        })
    );
    assert!(parse_register_answer(
        &response,
        Charset::Utf8,
        &verifier,
        SignType::Rsa2,
        Some("0123")
    )
    .is_ok());
}

#[test]
fn websocket_upgrade_url_and_cookie() {
    let v = vectors();
    let p = &v["websocket_upgrade"]["params"];
    for &backend in Backend::ALL {
        let signed = UpgradeParams {
            app_id: s(p, "app_id"),
            charset: Charset::Utf8,
            link_token: s(p, "link_token"),
            timestamp_ms: s(p, "timestamp").parse().unwrap(),
            cert_sns: None,
        }
        .sign(&app_signer(backend))
        .unwrap();
        assert_eq!(
            signed.sign_content(),
            s(&v, "websocket_upgrade.sign_content")
        );
        assert_eq!(signed.sign_value(), s(&v, "websocket_upgrade.sign"));
        let connect = WsConnect::new(
            &Endpoint::production(),
            &signed,
            Charset::Utf8,
            Some("GZ00B"),
        );
        assert!(connect
            .url
            .starts_with("wss://openchannel.alipay.com/websocket?app_id=2021000000000001&"));
        assert!(connect.url.contains("&link_token=lt_9f1c2e7a&"));
        let encoded_sign: String =
            form_urlencoded::byte_serialize(s(&v, "websocket_upgrade.sign").as_bytes()).collect();
        assert!(connect.url.ends_with(&format!("&sign={encoded_sign}")));
        assert_eq!(
            connect.headers,
            vec![("cookie".to_owned(), "zone=GZ00B;".to_owned())]
        );
    }
}

#[test]
fn params_sign_in_gbk() {
    // A GBK app signs the GBK bytes of the sign content; the value is URL-encoded in GBK.
    let signer = app_signer(Backend::default());
    let signed = SignedParams::sign(
        vec![("app_id", "1".into()), ("note", "测试".into())],
        Charset::Gbk,
        &signer,
    )
    .unwrap();
    let app_public = PublicKey::from_pem_or_base64(&key("app_public.pem")).unwrap();
    let verifier = Verifier::new(&app_public).unwrap();
    verifier
        .verify_text(
            SignType::Rsa2,
            Charset::Gbk,
            "app_id=1&note=测试",
            signed.sign_value(),
        )
        .unwrap();
    assert!(signed.query(Charset::Gbk).contains("note=%B2%E2%CA%D4"));
}
