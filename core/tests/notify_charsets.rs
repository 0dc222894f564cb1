//! Charset labels on HTTP notifications (PROTOCOL §10): `gb2312` and `gb18030`, in any
//! letter case, next to `utf-8` and `gbk`. The signed bytes are what the platform's Java
//! SDK checks (`AlipaySignature.rsaCheckV1/V2` → `content.getBytes(charset)`, `charset`
//! being the notification's own parameter): GB2312 is Java's EUC-CN (GBK bytes when both
//! bytes lie in 0xA1–0xFE, `?` for any other non-ASCII character), GB18030 maps every
//! code point.

use alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_core::notify::{self, Notification, NotifyCharset, NotifyError};
use alipay_msg_core::sign_content::{sign_content, Rule};
use alipay_msg_core::signature::{SignType, Signer, Verifier};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");

fn read(path: &str) -> Vec<u8> {
    std::fs::read(format!("{TESTDATA}/{path}")).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn platform_verifier() -> Verifier {
    let pem = String::from_utf8(read("vectors/keys/alipay_public.pem")).unwrap();
    Verifier::new(&PublicKey::from_pem_or_base64(&pem).unwrap()).unwrap()
}

fn platform_signer() -> Signer {
    let pem = String::from_utf8(read("vectors/keys/alipay_private_pkcs8.pem")).unwrap();
    Signer::new(
        &PrivateKey::from_pem_or_base64(&pem).unwrap(),
        SignType::Rsa2,
    )
    .unwrap()
}

/// Text to bytes, as one charset of the test does it.
type Encode = fn(&str) -> Vec<u8>;

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable, "{text:?} is not all GBK");
    bytes.into_owned()
}

fn gb18030(text: &str) -> Vec<u8> {
    encoding_rs::GB18030.encode(text).0.into_owned()
}

/// Java's `getBytes("GB2312")` for text whose characters all lie in GB2312: the GBK bytes,
/// every non-ASCII byte in 0xA1–0xFE (checked).
fn gb2312(text: &str) -> Vec<u8> {
    let bytes = gbk(text);
    assert!(
        bytes
            .iter()
            .all(|&b| b < 0x80 || (0xA1..=0xFE).contains(&b)),
        "{text:?} is not all GB2312"
    );
    bytes
}

/// A payment notification with `subject` and `body`, labelled `label`.
fn trade(label: &str, subject: &str, body: &str) -> Vec<(String, String)> {
    [
        ("notify_type", "trade_status_sync"),
        ("notify_id", "cs1"),
        ("notify_time", "2026-11-20 10:21:35"),
        ("app_id", "2021000000000001"),
        ("trade_no", "t1"),
        ("out_trade_no", "o1"),
        ("trade_status", "TRADE_SUCCESS"),
        ("total_amount", "66.60"),
        ("subject", subject),
        ("body", body),
        ("charset", label),
        ("sign_type", "RSA2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The raw form body: `pairs` percent-encoded in `body_encoding`, then `sign`: the V1 sign
/// content encoded with `signed_encoding`, signed with the platform key.
fn signed_body(
    pairs: &[(String, String)],
    body_encoding: Encode,
    signed_encoding: Encode,
) -> Vec<u8> {
    let content = sign_content(
        pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        Rule::V1,
    );
    let sign = STANDARD.encode(platform_signer().sign(&signed_encoding(&content)).unwrap());
    let mut out = String::new();
    for (k, v) in pairs.iter().chain([&("sign".to_owned(), sign)]) {
        if !out.is_empty() {
            out.push('&');
        }
        out.extend(form_urlencoded::byte_serialize(&body_encoding(k)));
        out.push('=');
        out.extend(form_urlencoded::byte_serialize(&body_encoding(v)));
    }
    out.into_bytes()
}

fn verify(body: &[u8]) -> Result<Notification, NotifyError> {
    notify::verify(body, &platform_verifier(), Rule::V1)
}

fn subject_of(n: &Notification) -> Option<&str> {
    n.params().get("subject")
}

#[test]
fn gb2312_with_chinese_text_verifies() {
    let pairs = trade("gb2312", "测试订单 Test Order", "中文商品描述：两件");
    // The anchor: Java's GB2312 bytes of 测试 (EUC-CN B2E2 CAD4).
    assert_eq!(gb2312("测试"), [0xB2, 0xE2, 0xCA, 0xD4]);
    let body = signed_body(&pairs, gb2312, gb2312);
    let n = verify(&body).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(n, Notification::Trade(_)), "{n:?}");
    assert_eq!(subject_of(&n), Some("测试订单 Test Order"));
    assert_eq!(n.params().get("body"), Some("中文商品描述：两件"));
    // Signed over the UTF-8 bytes instead: not what Java checks under gb2312.
    let e = verify(&signed_body(&pairs, gb2312, |s| s.as_bytes().to_vec())).unwrap_err();
    assert!(e.is_signature_failure(), "{e}");
}

#[test]
fn gb18030_upper_case_with_characters_outside_gbk_verifies() {
    // U+1F600 and U+20000 have no GBK mapping; GB18030 gives each four bytes.
    assert_eq!(gb18030("😀"), [0x94, 0x39, 0xFC, 0x36]);
    assert_eq!(gb18030("\u{20000}"), [0x95, 0x32, 0x82, 0x36]);
    let pairs = trade("GB18030", "测试订单 😀", "罕见字\u{20000}与表情");
    let body = signed_body(&pairs, gb18030, gb18030);
    let n = verify(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(subject_of(&n), Some("测试订单 😀"));
    assert_eq!(n.params().get("body"), Some("罕见字\u{20000}与表情"));
    // The GBK bytes (`?` for both) are not what Java signs under GB18030.
    let gbk_lossy: Encode = |s| encoding_rs::GBK.encode(s).0.into_owned();
    let e = verify(&signed_body(&pairs, gb18030, gbk_lossy)).unwrap_err();
    assert!(e.is_signature_failure(), "{e}");
}

#[test]
fn gbk_only_character_is_signed_as_question_mark_under_gb2312() {
    // U+4E02 丂 is GBK 0x8140: lead byte below 0xA1, so not in GB2312; Java's
    // getBytes("GB2312") writes `?` for it. The body carries its GBK bytes (%81%40),
    // which decode to 丂 (GB2312 bodies are decoded as GBK, their superset).
    assert_eq!(gbk("丂"), [0x81, 0x40]);
    let pairs = trade("gb2312", "订单丂号", "x");
    let java_gb2312: Encode = |s| gbk(&s.replace('丂', "?"));
    let body = signed_body(&pairs, gbk, java_gb2312);
    assert!(
        std::str::from_utf8(&body).unwrap().contains("%81%40"),
        "the body carries the GBK bytes"
    );
    let n = verify(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(subject_of(&n), Some("订单丂号"));

    // Signed over the GBK bytes 0x8140: not the bytes Java checks.
    let e = verify(&signed_body(&pairs, gbk, gbk)).unwrap_err();
    assert!(e.is_signature_failure(), "{e}");
}

#[test]
fn labels_are_case_insensitive() {
    for (label, encode, charset) in [
        ("GB2312", gb2312 as Encode, NotifyCharset::Gb2312),
        ("Gb2312", gb2312, NotifyCharset::Gb2312),
        ("gb18030", gb18030, NotifyCharset::Gb18030),
        ("gB18030", gb18030, NotifyCharset::Gb18030),
        ("utf8", |s: &str| s.as_bytes().to_vec(), NotifyCharset::Utf8),
        ("GbK", gbk, NotifyCharset::Gbk),
    ] {
        let pairs = trade(label, "测试", "y");
        let body = signed_body(&pairs, encode, encode);
        let n = verify(&body).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(subject_of(&n), Some("测试"), "{label}");
        assert_eq!(n.params().charset(), charset, "{label}");
    }
}

#[test]
fn the_label_is_reported_as_received() {
    for (label, encode, canonical) in [
        ("gb2312", gb2312 as Encode, "GB2312"),
        ("GB18030", gb18030, "GB18030"),
        ("Gb18030", gb18030, "GB18030"),
        ("utf-8", |s: &str| s.as_bytes().to_vec(), "UTF-8"),
    ] {
        let body = signed_body(&trade(label, "测试", "y"), encode, encode);
        let n = verify(&body).unwrap_or_else(|e| panic!("{label}: {e}"));
        let params = n.params();
        assert!(params.charset_declared(), "{label}");
        assert_eq!(params.charset_label(), label);
        assert_eq!(params.charset().as_str(), canonical);
    }
    // No charset parameter: UTF-8, not declared.
    let mut pairs = trade("x", "测试", "y");
    pairs.retain(|(k, _)| k != "charset");
    let utf8: Encode = |s| s.as_bytes().to_vec();
    let n = verify(&signed_body(&pairs, utf8, utf8)).unwrap();
    assert!(!n.params().charset_declared());
    assert_eq!(n.params().charset_label(), "UTF-8");
    assert_eq!(n.params().charset(), NotifyCharset::Utf8);
}

#[test]
fn unknown_label_is_a_typed_malformed_error_naming_it() {
    let pairs = trade("latin1", "x", "y");
    let body = signed_body(&pairs, gbk, gbk);
    match verify(&body) {
        Err(e @ NotifyError::UnknownCharset(_)) => {
            assert!(e.is_malformed());
            let message = e.to_string();
            assert!(message.contains("\"latin1\""), "{message}");
            // The message lists what notifications accept, not the message channel's pair.
            for accepted in ["UTF-8", "GBK", "GB2312", "GB18030"] {
                assert!(message.contains(accepted), "{message}");
            }
        }
        other => panic!("{other:?}"),
    }
    match &verify(&body).unwrap_err() {
        NotifyError::UnknownCharset(e) => assert_eq!(e.name, "latin1"),
        other => panic!("{other:?}"),
    }
}

/// The raw bodies in testdata/notify/*.form were made outside this crate: Python's
/// `gb2312`/`gb18030` codecs for the body and the signed bytes, `openssl dgst -sha256
/// -sign` for the signature (see testdata/README.md).
#[test]
fn raw_body_files_verify() {
    for (file, subject, label) in [
        (
            "notify/trade_notify_gb2312_v1.form",
            "测试订单 Test Order",
            "gb2312",
        ),
        (
            "notify/trade_notify_gb18030_v1.form",
            "测试订单 😀",
            "GB18030",
        ),
    ] {
        let body = read(file);
        let n = verify(&body).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(subject_of(&n), Some(subject), "{file}");
        assert_eq!(n.params().charset_label(), label, "{file}");
        let tampered = String::from_utf8(body).unwrap().replace("66.60", "66.61");
        let e = verify(tampered.as_bytes()).unwrap_err();
        assert!(e.is_signature_failure(), "{file}: {e}");
    }
}
