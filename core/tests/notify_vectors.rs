//! HTTP notifications (PROTOCOL §10) against testdata/vectors/notify_vectors.json.

use alipay_msg_core::charset::Charset;
use alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_core::notify::{self, Notification, NotifyCharset, NotifyError, TradeStatus};
use alipay_msg_core::sign_content::Rule;
use alipay_msg_core::signature::{SignType, SignatureError, Signer, Verifier};
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{VECTORS}/{path}"))
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn platform_verifier() -> Verifier {
    Verifier::new(&PublicKey::from_pem_or_base64(&read("keys/alipay_public.pem")).unwrap()).unwrap()
}

fn platform_signer() -> Signer {
    let key = PrivateKey::from_pem_or_base64(&read("keys/alipay_private_pkcs1.pem")).unwrap();
    Signer::new(&key, SignType::Rsa2).unwrap()
}

fn vectors() -> Vec<Value> {
    let v: Value = serde_json::from_str(&read("notify_vectors.json")).unwrap();
    v.as_array().expect("an array of cases").clone()
}

fn rule_of(case: &Value) -> Rule {
    let mode = case["verify_mode"].as_str().expect("verify_mode");
    if mode.starts_with("V1") {
        Rule::V1
    } else if mode.starts_with("V2") {
        Rule::V2
    } else {
        panic!("unknown verify_mode {mode:?}")
    }
}

/// The form body of a case's params, UTF-8. serde_json's map is sorted by key; the body
/// lists the parameters in reverse so that the sign content has to sort them.
fn body_of(case: &Value) -> String {
    let params = case["params"].as_object().expect("params");
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.iter().rev() {
        ser.append_pair(k, v.as_str().expect("string param"));
    }
    ser.finish()
}

#[test]
fn every_vector_gives_the_expected_verdict() {
    let verifier = platform_verifier();
    let cases = vectors();
    assert!(cases.len() >= 5);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let rule = rule_of(case);
        let body = body_of(case);

        let form = notify::parse_form(body.as_bytes()).unwrap();
        assert_eq!(
            form.len(),
            case["params"].as_object().unwrap().len(),
            "{name}"
        );
        for (k, v) in case["params"].as_object().unwrap() {
            assert_eq!(form.get(k), v.as_str(), "{name}: {k}");
        }
        if let Some(expected) = case.get("sign_content").and_then(Value::as_str) {
            assert_eq!(form.sign_content(rule), expected, "{name}: sign content");
        }
        assert_eq!(
            form.get("sign_type"),
            case["sign_type"].as_str(),
            "{name}: sign_type"
        );

        let expect_valid = case["expect_valid"].as_bool().unwrap();
        let result = notify::verify(body.as_bytes(), &verifier, rule);
        match (&result, expect_valid) {
            (Ok(_), true) => {}
            (Err(e), false) => assert!(e.is_signature_failure(), "{name}: {e}"),
            _ => panic!("{name}: expected valid={expect_valid}, got {result:?}"),
        }
    }
}

#[test]
fn vectors_fail_under_the_other_rule() {
    let verifier = platform_verifier();
    for case in vectors()
        .iter()
        .filter(|c| c["expect_valid"] == Value::Bool(true))
    {
        let other = match rule_of(case) {
            Rule::V1 => Rule::V2,
            Rule::V2 => Rule::V1,
        };
        let e = notify::verify(body_of(case).as_bytes(), &verifier, other).unwrap_err();
        assert_eq!(
            e,
            NotifyError::BadSignature(SignatureError::Mismatch),
            "{}",
            case["name"]
        );
    }
}

fn case(name: &str) -> Value {
    vectors()
        .into_iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))
}

#[test]
fn trade_vector_typed_fields() {
    let c = case("trade_notify_rsa2_v1");
    let n = notify::verify(body_of(&c).as_bytes(), &platform_verifier(), Rule::V1).unwrap();
    assert_eq!(n.notify_id(), Some("2026112000222102134003881455041399"));
    assert_eq!(n.params().len(), c["params"].as_object().unwrap().len());
    let Notification::Trade(t) = n else {
        panic!("not a trade notification: {n:?}")
    };
    assert_eq!(t.trade_status, TradeStatus::Success);
    assert!(t.trade_status.is_paid());
    assert_eq!(t.notify_type, "trade_status_sync");
    assert_eq!(t.notify_time, "2026-11-20 10:21:35");
    assert_eq!(t.app_id, "2021000000000001");
    assert_eq!(t.trade_no, "2026112022001446881439488519");
    assert_eq!(t.out_trade_no, "20261120102126001");
    assert_eq!(t.total_amount.as_deref(), Some("88.88"));
    assert_eq!(t.receipt_amount.as_deref(), Some("88.88"));
    assert_eq!(t.buyer_pay_amount.as_deref(), Some("88.88"));
    assert_eq!(t.invoice_amount.as_deref(), Some("88.88"));
    assert_eq!(t.point_amount.as_deref(), Some("0.00"));
    assert_eq!(t.refund_fee, None);
    assert_eq!(t.buyer_id.as_deref(), Some("2088102177846880"));
    assert_eq!(t.seller_id.as_deref(), Some("2088102177296610"));
    assert_eq!(t.subject.as_deref(), Some("测试订单 Test Order"));
    assert_eq!(t.gmt_create.as_deref(), Some("2026-11-20 10:21:33"));
    assert_eq!(t.gmt_payment.as_deref(), Some("2026-11-20 10:21:34"));
    // Nothing is lost: unnamed parameters are in params.
    assert_eq!(
        t.params.get("fund_bill_list"),
        Some(r#"[{"amount":"88.88","fundChannel":"ALIPAYACCOUNT"}]"#)
    );
}

#[test]
fn legacy_rsa_vector_verifies() {
    let c = case("trade_notify_rsa_sha1_v1");
    let form = notify::parse_form(body_of(&c).as_bytes()).unwrap();
    let sign_type = notify::check_signature(&form, &platform_verifier(), Rule::V1).unwrap();
    assert_eq!(sign_type, SignType::Rsa);
}

#[test]
fn gateway_vectors_typed_fields() {
    for (name, rule, notify_id) in [
        (
            "gateway_message_rsa2_v1",
            Rule::V1,
            "d275fec564e62af6bedbcee73f3f05fi5x",
        ),
        (
            "gateway_message_rsa2_v2",
            Rule::V2,
            "d275fec564e62af6bedbcee73f3f05fi5y",
        ),
    ] {
        let c = case(name);
        let n = notify::verify(body_of(&c).as_bytes(), &platform_verifier(), rule).unwrap();
        assert_eq!(n.notify_id(), Some(notify_id));
        let Notification::GatewayMessage(m) = n else {
            panic!("{name}: not a gateway message: {n:?}")
        };
        assert_eq!(m.msg_method, "alipay.open.mini.merchant.confirmed");
        assert_eq!(m.app_id, "2013121700999429");
        assert_eq!(m.utc_timestamp.as_deref(), Some("1516797622752"));
        assert_eq!(m.version.as_deref(), Some("1.1"));
        assert_eq!(
            m.biz_content,
            serde_json::json!({
                "order_no": "2394834823942343",
                "out_order_no": "23948392483253534535",
                "min_app_id": "20218324729872",
                "status": "PROCESS",
                "pid": "2088002306330746"
            })
        );
        assert_eq!(m.biz_content["status"], "PROCESS");
    }
}

/// A GBK notification (`charset=GBK`, the subject percent-encoded in GBK) signed with
/// the platform key verifies; the same bytes and signature fail when the body says
/// UTF-8.
#[test]
fn gbk_round_trip() {
    let subject = "测试订单 Test Order";
    let subject_gbk: String =
        form_urlencoded::byte_serialize(&Charset::Gbk.encode(subject)).collect();
    assert!(subject_gbk.starts_with("%B2%E2%CA%D4"), "{subject_gbk}");
    let unsigned = format!(
        "notify_type=trade_status_sync&notify_id=gbk1&notify_time=2026-11-20+10%3A21%3A35\
         &app_id=2021000000000001&trade_no=t1&out_trade_no=o1&trade_status=TRADE_SUCCESS\
         &total_amount=88.88&subject={subject_gbk}&charset=GBK&sign_type=RSA2"
    );
    let content = format!(
        "app_id=2021000000000001&charset=GBK&notify_id=gbk1&notify_time=2026-11-20 10:21:35\
         &notify_type=trade_status_sync&out_trade_no=o1&subject={subject}&total_amount=88.88\
         &trade_no=t1&trade_status=TRADE_SUCCESS"
    );
    let form = notify::parse_form(unsigned.as_bytes()).unwrap();
    assert_eq!(form.charset(), NotifyCharset::Gbk);
    assert_eq!(form.sign_content(Rule::V1), content);

    let sign = platform_signer().sign_text(&content, Charset::Gbk).unwrap();
    let sign_enc: String = form_urlencoded::byte_serialize(sign.as_bytes()).collect();
    let body = format!("{unsigned}&sign={sign_enc}");

    let verifier = platform_verifier();
    match notify::verify(body.as_bytes(), &verifier, Rule::V1).unwrap() {
        Notification::Trade(t) => assert_eq!(t.subject.as_deref(), Some(subject)),
        other => panic!("{other:?}"),
    }

    // Same bytes, same signature, but the body says UTF-8.
    let utf8_body = body.replace("charset=GBK", "charset=UTF-8");
    let e = notify::verify(utf8_body.as_bytes(), &verifier, Rule::V1).unwrap_err();
    assert_eq!(e, NotifyError::BadSignature(SignatureError::Mismatch));

    // Isolating the charset: signed without a charset parameter, in GBK. A body without
    // `charset` is read as UTF-8, so the GBK signature does not verify...
    let no_charset = unsigned.replace("&charset=GBK", "");
    let content = content.replace("&charset=GBK", "");
    let sign = platform_signer().sign_text(&content, Charset::Gbk).unwrap();
    let sign_enc: String = form_urlencoded::byte_serialize(sign.as_bytes()).collect();
    let e = notify::verify(
        format!("{no_charset}&sign={sign_enc}").as_bytes(),
        &verifier,
        Rule::V1,
    )
    .unwrap_err();
    assert!(e.is_signature_failure());
    // ...while the same content signed in UTF-8 does.
    let sign = platform_signer()
        .sign_text(&content, Charset::Utf8)
        .unwrap();
    let subject_utf8: String = form_urlencoded::byte_serialize(subject.as_bytes()).collect();
    let body = format!(
        "{}&sign={}",
        no_charset.replace(&subject_gbk, &subject_utf8),
        form_urlencoded::byte_serialize(sign.as_bytes()).collect::<String>()
    );
    notify::verify(body.as_bytes(), &verifier, Rule::V1).unwrap();
}

#[test]
fn malformed_vector_bodies_are_not_signature_failures() {
    let verifier = platform_verifier();
    let body = body_of(&case("trade_notify_rsa2_v1"));
    for (bad, what) in [
        (format!("{body}&total_amount=0.01"), "duplicate key"),
        (format!("{body}&x=%G1"), "bad escape"),
        (body.replace("charset=utf-8", "charset=latin1"), "charset"),
        (
            body.replace("sign_type=RSA2", "sign_type=SHA256"),
            "sign type",
        ),
    ] {
        let e = notify::verify(bad.as_bytes(), &verifier, Rule::V1).unwrap_err();
        assert!(e.is_malformed(), "{what}: {e}");
    }
}
