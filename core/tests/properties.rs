//! Property tests (PROTOCOL §2, §4, §5, §9, §10):
//!
//! 1. frames written by the crate read back to the same fields, and their signatures
//!    verify (PRODUCE, CONSUME, CONSUME_ACK, PRODUCE_ACK);
//! 2. sign → verify for both sign types and charsets on every compiled backend;
//! 3. one changed byte inside the signed `data` span breaks the signature, while the
//!    unsigned parts (`x-msgId`, header lines) can change without affecting it;
//! 4. no parser panics, whatever the input;
//! 5. [`FrameLimits`] are honoured exactly.
//!
//! RSA signing is slow in debug builds (the pure-Rust backend much more so), so keys,
//! signers and verifiers are built once and the signing properties run few cases.

use std::borrow::Cow;
use std::sync::LazyLock;

use alipay_msg_core::cert::{self, Certificate};
use alipay_msg_core::charset::Charset;
use alipay_msg_core::consume::{AckStatus, ConsumeAck, ConsumeFrame, ConsumeOut};
use alipay_msg_core::crypto::Backend;
use alipay_msg_core::frame::{
    Command, DataHeader, Frame, FrameError, FrameHeaders, FrameLimits, SignatureStatus,
};
use alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_core::notify::{self, FormLimits};
use alipay_msg_core::produce::{ProduceFrame, ProduceRequest};
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_core::sign_content::Rule;
use alipay_msg_core::signature::{SignType, SignatureError, Signer, Verifier};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use serde::Serialize as _;
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

// ---------------------------------------------------------------------------------------
// Fixture: keys, signers, verifiers and seed inputs, built once.

struct Fixture {
    /// App-key signers on the default backend, one per sign type.
    app_signers: Vec<Signer>,
    /// Platform-key signers on the default backend, one per sign type.
    platform_signers: Vec<Signer>,
    app_verifier: Verifier,
    platform_verifier: Verifier,
    /// App-key signers for every (backend, sign type) this build can sign, after the
    /// ring → rust-crypto fallback, without duplicates.
    all_signers: Vec<Signer>,
    /// App-key verifiers on every backend.
    all_verifiers: Vec<Verifier>,
    /// Valid frames of each command, to mutate.
    seed_frames: Vec<String>,
    /// Key and certificate files (PEM), to mutate.
    seed_pems: Vec<String>,
    /// DER of the keys and certificates, to mutate.
    seed_ders: Vec<Vec<u8>>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{VECTORS}/{path}"))
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The DER inside every PEM block of `text`.
fn pem_ders(text: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN ") {
            body = Some(String::new());
        } else if line.starts_with("-----END ") {
            if let Some(b) = body.take() {
                out.push(STANDARD.decode(b).expect("test PEM is base64"));
            }
        } else if let Some(b) = body.as_mut() {
            b.push_str(line);
        }
    }
    out
}

/// Signers of both sign types on `backend` (every build signs both).
fn signers(key: &PrivateKey, backend: Backend) -> Vec<Signer> {
    [SignType::Rsa2, SignType::Rsa]
        .into_iter()
        .map(|t| {
            Signer::with_backend(key, t, backend)
                .unwrap_or_else(|e| panic!("every build signs {t} on {backend:?}: {e}"))
        })
        .collect()
}

impl Fixture {
    fn load() -> Self {
        let app_private = PrivateKey::from_pem_or_base64(&read("keys/app_private_pkcs1.pem"))
            .expect("app private key");
        let platform_private =
            PrivateKey::from_pem_or_base64(&read("keys/alipay_private_pkcs1.pem"))
                .expect("platform private key");
        let app_public =
            PublicKey::from_pem_or_base64(&read("keys/app_public.pem")).expect("app public key");
        let platform_public = PublicKey::from_pem_or_base64(&read("keys/alipay_public.pem"))
            .expect("platform public key");
        assert_eq!(app_private.public_key(), &app_public);
        assert_eq!(platform_private.public_key(), &platform_public);

        let default = Backend::default();
        let app_signers = signers(&app_private, default);
        let platform_signers = signers(&platform_private, default);
        assert!(!app_signers.is_empty() && !platform_signers.is_empty());

        let mut all_signers: Vec<Signer> = Vec::new();
        for &backend in Backend::ALL {
            for s in signers(&app_private, backend) {
                let dup = all_signers
                    .iter()
                    .any(|o| o.backend() == s.backend() && o.sign_type() == s.sign_type());
                if !dup {
                    all_signers.push(s);
                }
            }
        }
        let all_verifiers = Backend::ALL
            .iter()
            .map(|&b| Verifier::with_backend(&app_public, b).expect("verifier"))
            .collect();

        let headers = FrameHeaders {
            from_sys: Some("sys".to_owned()),
            from_sys_ip: Some("10.0.0.1".to_owned()),
            stream_id: Some("s1".to_owned()),
        };
        let data_header = DataHeader {
            app_id: Some("2021000000000001".to_owned()),
            msg_api: Some("alipay.open.mini.version.audit.rejected".to_owned()),
            app_cert_sn: Some("a1".to_owned()),
            alipay_root_cert_sn: Some("r1_r2".to_owned()),
        };
        let biz = r#"{"k":"v\"}{","n":[1,2.5,{"x":null}],"u":"测试"}"#;
        let consume = ConsumeOut {
            headers: &headers,
            msg_id: "m1",
            timestamp_ms: 1_700_000_000_000,
            data_header: &data_header,
            biz_content: biz,
            charset: Charset::Utf8,
        }
        .sign_and_encode(&platform_signers[0])
        .expect("sign consume");
        let produce = ProduceRequest {
            app_id: "2021000000000001",
            msg_api: "alipay.open.app.openbizmock.message.send",
            biz_content: biz,
            cert_sns: Some(("a1", "r1")),
            stream_id: "c1",
            timestamp_ms: 1_700_000_000_000,
            charset: Charset::Gbk,
        }
        .sign_and_encode(&app_signers[0], &FrameLimits::default())
        .expect("sign produce");
        let consume_ack = ConsumeAck {
            headers: headers.clone(),
            msg_id: "m1".to_owned(),
            status: AckStatus::Success,
        }
        .encode();
        let produce_ack = ProduceAck {
            stream_id: "c1".to_owned(),
            msg_id: Some("m2".to_owned()),
            status: AckStatus::Fail,
            code: Some("20000".to_owned()),
            error: Some("msg.unknow-error".to_owned()),
        }
        .encode();

        let seed_pems: Vec<String> = [
            "keys/app_private_pkcs1.pem",
            "keys/app_private_pkcs8.pem",
            "keys/app_public.pem",
            "keys/alipay_public.pem",
            "certs/app_cert.crt",
            "certs/alipay_cert.crt",
            "certs/root_ca.pem",
            "certs/root_bundle_simple.crt",
        ]
        .into_iter()
        .map(read)
        .collect();
        let seed_ders = seed_pems.iter().flat_map(|p| pem_ders(p)).collect();

        Fixture {
            app_signers,
            platform_signers,
            app_verifier: Verifier::new(&app_public).expect("verifier"),
            platform_verifier: Verifier::new(&platform_public).expect("verifier"),
            all_signers,
            all_verifiers,
            seed_frames: vec![consume, produce, consume_ack, produce_ack],
            seed_pems,
            seed_ders,
        }
    }
}

static FX: LazyLock<Fixture> = LazyLock::new(Fixture::load);

/// `cases` cases, times the `ALIPAY_PROPTEST_SCALE` environment variable when set (for
/// a longer search: `ALIPAY_PROPTEST_SCALE=20 cargo test --test properties`).
fn config(cases: u32) -> ProptestConfig {
    let scale = std::env::var("ALIPAY_PROPTEST_SCALE")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(1)
        .max(1);
    ProptestConfig {
        cases: cases.saturating_mul(scale),
        // Failures are reported in the test output; do not write regression files.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Generators.

/// Pieces that stress JSON escaping and the textual `data` span rule.
const TRICKY: &[&str] = &[
    "\"",
    "\\",
    "\\\"",
    "\\\\",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"data\"",
    "\"data\":{",
    "\"data\" : {",
    "x\"data",
    "\\u0000",
    "\\ud800",
    "\u{0}",
    "\u{1f}",
    "\u{7f}",
    "é",
    "测试",
    "€",
    "😀",
    "\u{2028}",
    "\u{feff}",
    "\u{fffd}",
    "\r\n",
    "\r\n\r\n",
    "\t",
    " ",
    "a",
    "0",
    "?",
    "&",
    "=",
    "%",
];

/// Arbitrary unicode, or a concatenation of tricky pieces.
fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "(?s).{0,24}",
        "[ -~]{0,16}",
        prop::collection::vec(select(TRICKY), 0..8).prop_map(|v| v.concat()),
    ]
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// A header value as the reader returns it: no CR/LF, trimmed, may contain ':'.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![tricky_string(), "[a-z0-9:.\\- ]{1,30}"]
        .prop_map(|s| s.replace(['\r', '\n'], "").trim().to_owned())
}

/// An optional header value; an empty value is not written, so it reads as absent.
fn opt_header() -> impl Strategy<Value = Option<String>> {
    prop::option::of(header_value()).prop_map(|o| o.filter(|s| !s.is_empty()))
}

fn frame_headers() -> impl Strategy<Value = FrameHeaders> {
    (opt_header(), opt_header(), opt_header()).prop_map(|(from_sys, from_sys_ip, stream_id)| {
        FrameHeaders {
            from_sys,
            from_sys_ip,
            stream_id,
        }
    })
}

/// A `data.header`; empty fields are not written, so they read as absent.
fn data_header() -> impl Strategy<Value = DataHeader> {
    let field = || prop::option::of(tricky_string()).prop_map(|o| o.filter(|s| !s.is_empty()));
    (field(), field(), field(), field()).prop_map(|(app_id, msg_api, a, r)| DataHeader {
        app_id,
        msg_api,
        app_cert_sn: a,
        alipay_root_cert_sn: r,
    })
}

fn charset() -> impl Strategy<Value = Charset> {
    prop_oneof![Just(Charset::Utf8), Just(Charset::Gbk)]
}

fn ack_status() -> impl Strategy<Value = AckStatus> {
    prop_oneof![Just(AckStatus::Success), Just(AckStatus::Fail)]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        tricky_string().prop_map(Value::String),
    ]
}

/// A JSON object, nested up to four levels.
fn biz_value() -> impl Strategy<Value = Value> {
    let nested = json_leaf().prop_recursive(3, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((tricky_string(), inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    });
    prop::collection::vec((tricky_string(), nested), 0..6)
        .prop_map(|kv| Value::Object(kv.into_iter().collect()))
}

/// JSON whitespace used as indentation or padding; includes the frame separator.
const JSON_WS: &[&str] = &["", " ", "\t", "\n", "\r\n", "\r\n\r\n", "  \t"];

/// A business-content object and its text: compact or indented with any JSON
/// whitespace, maybe padded on both sides.
fn biz_text() -> impl Strategy<Value = (Value, String)> {
    (
        biz_value(),
        prop::option::of(select(JSON_WS)),
        select(JSON_WS),
        select(JSON_WS),
    )
        .prop_map(|(value, indent, before, after)| {
            let body = match indent {
                None => serde_json::to_string(&value).expect("serialise"),
                Some(indent) => {
                    let mut buf = Vec::new();
                    let fmt = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
                    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
                    value.serialize(&mut ser).expect("serialise");
                    String::from_utf8(buf).expect("JSON is UTF-8")
                }
            };
            (value, format!("{before}{body}{after}"))
        })
}

fn json_trim(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\r', '\n'])
}

/// Text to sign: arbitrary unicode, tricky pieces, or text mixing characters GBK has
/// and has not.
fn sign_text() -> impl Strategy<Value = String> {
    const GBK_MIX: &[&str] = &[
        "测试",
        "订单",
        "a",
        "=",
        "&",
        "😀",
        "€",
        "한",
        "ÿ",
        "\u{e000}",
        "\u{0}",
        "?",
        "ß",
        "ā",
        "\u{10ffff}",
        "\u{fffd}",
        "¥",
        "·",
        "—",
        "\u{3000}",
    ];
    prop_oneof![
        "(?s).{0,64}",
        tricky_string(),
        prop::collection::vec(select(GBK_MIX), 0..16).prop_map(|v| v.concat()),
    ]
}

/// `text` with every character GBK cannot represent replaced by `?` (what Java's
/// `getBytes("GBK")` does), computed char by char with encoding_rs.
fn gbk_replaced(text: &str) -> String {
    text.chars()
        .map(|c| {
            let mut buf = [0u8; 4];
            let (_, _, unmappable) = encoding_rs::GBK.encode(c.encode_utf8(&mut buf));
            if unmappable {
                '?'
            } else {
                c
            }
        })
        .collect()
}

// Mutations, applied to a seed to reach deep into a parser.

#[derive(Debug, Clone)]
enum Edit {
    Insert(Index, &'static str),
    Replace(Index, &'static str),
    Delete(Index, usize),
    Duplicate(Index, usize),
    Truncate(Index),
}

fn edit(fragments: &'static [&'static str]) -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), select(fragments)).prop_map(|(i, f)| Edit::Insert(i, f)),
        (any::<Index>(), select(fragments)).prop_map(|(i, f)| Edit::Replace(i, f)),
        (any::<Index>(), 1usize..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<Index>(), 1usize..32).prop_map(|(i, n)| Edit::Duplicate(i, n)),
        any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply_edits(seed: &str, edits: &[Edit]) -> String {
    let mut s = seed.to_owned();
    for e in edits {
        let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
        let last = bounds.len() - 1;
        let span = |i: &Index, n: usize| {
            let k = i.index(bounds.len());
            bounds[k]..bounds[(k + n).min(last)]
        };
        match e {
            Edit::Insert(i, f) => s.insert_str(*i.get(&bounds), f),
            Edit::Replace(i, f) => s.replace_range(span(i, 1), f),
            Edit::Delete(i, n) => s.replace_range(span(i, *n), ""),
            Edit::Duplicate(i, n) => {
                let r = span(i, *n);
                let piece = s[r.clone()].to_owned();
                s.insert_str(r.end, &piece);
            }
            Edit::Truncate(i) => s.truncate(*i.get(&bounds)),
        }
    }
    s
}

#[derive(Debug, Clone)]
enum ByteEdit {
    Xor(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(i, b)| ByteEdit::Xor(i, b)),
        (
            any::<Index>(),
            prop_oneof![
                Just(0u8),
                Just(0x80),
                Just(0x81),
                Just(0x82),
                Just(0xff),
                any::<u8>()
            ]
        )
            .prop_map(|(i, b)| ByteEdit::Set(i, b)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(i, v)| ByteEdit::Insert(i, v)),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| ByteEdit::Delete(i, n)),
        any::<Index>().prop_map(ByteEdit::Truncate),
    ]
}

fn apply_byte_edits(seed: &[u8], edits: &[ByteEdit]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for e in edits {
        if v.is_empty() {
            break;
        }
        let len = v.len();
        match e {
            ByteEdit::Xor(i, b) => v[i.index(len)] ^= b,
            ByteEdit::Set(i, b) => v[i.index(len)] = *b,
            ByteEdit::Insert(i, bytes) => {
                let at = i.index(len + 1);
                v.splice(at..at, bytes.iter().copied());
            }
            ByteEdit::Delete(i, n) => {
                let at = i.index(len);
                v.drain(at..(at + n).min(len));
            }
            ByteEdit::Truncate(i) => v.truncate(i.index(len)),
        }
    }
    v
}

const FRAME_FRAGMENTS: &[&str] = &[
    "\r\n",
    "\r\n\r\n",
    "\r",
    "\n",
    ":",
    " ",
    "stream-id:",
    "from-sys: x ",
    "from-sys-ip:",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    "\\\"",
    "\\u",
    "\\ud83d",
    "\\ud83d\\ude00",
    ",",
    "{\"protocol\":",
    "{\"protocol\":{\"x-type\":\"message\",\"x-cmd\":\"CONSUME\",\"x-msgId\":\"m\"}",
    "\"data\":{",
    "\"data\" : {",
    ",\"data\":",
    "\"header\":",
    "\"header\":{}",
    "\"content\":",
    "\"content\":{}",
    "\"content\":\"x\"",
    "{\"x-type\":\"message\"",
    "\"x-type\":\"message\",",
    "\"x-cmd\":\"CONSUME\"",
    "\"x-cmd\":\"CONSUME_ACK\"",
    "\"x-cmd\":\"PRODUCE\"",
    "\"x-cmd\":\"PRODUCE_ACK\"",
    "\"x-msgId\":\"m\"",
    "\"x-status\":\"SUCCESS\"",
    "\"x-status\":\"FAIL\"",
    "\"x-timestamp\":\"12\"",
    "\"x-timestamp\":\"-9223372036854775809\"",
    "\"x-timestamp\":1",
    "\"x-sign\":\"AAAA\"",
    "\"x-sign\":\"\"",
    "\"x-signType\":\"RSA2\"",
    "\"x-signType\":\"RSA\"",
    "\"x-charset\":\"GBK\"",
    "\"x-charset\":\"utf-8\"",
    "\"appId\":\"1\"",
    "\"msgApi\":null",
    "1",
    "-",
    "1e999",
    "null",
    "true",
    "é",
    "测",
    "😀",
    "\u{0}",
    "\u{feff}",
];

/// Frame-like text: arbitrary unicode, a concatenation of fragments, or a valid frame
/// after a few edits.
fn frame_like() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => "(?s).{0,64}",
        2 => prop::collection::vec(select(FRAME_FRAGMENTS), 0..24).prop_map(|v| v.concat()),
        4 => (any::<Index>(), prop::collection::vec(edit(FRAME_FRAGMENTS), 1..5))
            .prop_map(|(seed, edits)| apply_edits(seed.get::<String>(&FX.seed_frames), &edits)),
    ]
}

fn small_limits() -> impl Strategy<Value = FrameLimits> {
    (0usize..400, 0usize..5, 0usize..64, 0usize..6).prop_map(
        |(max_frame_bytes, max_header_lines, max_header_line_bytes, max_json_depth)| FrameLimits {
            max_frame_bytes,
            max_header_lines,
            max_header_line_bytes,
            max_json_depth,
        },
    )
}

const PEM_FRAGMENTS: &[&str] = &[
    "-----BEGIN ",
    "-----END ",
    "-----",
    "RSA PRIVATE KEY-----\n",
    "PRIVATE KEY-----\n",
    "ENCRYPTED PRIVATE KEY-----\n",
    "PUBLIC KEY-----\n",
    "RSA PUBLIC KEY-----\n",
    "CERTIFICATE-----\n",
    "X-----\n",
    "\n",
    "\r\n",
    " ",
    "\t",
    "=",
    "==",
    "A",
    "/",
    "+",
    "-",
    "_",
    "MII",
    "MIIBCgKCAQEA",
    "Proc-Type: 4,ENCRYPTED\n",
    "\u{0}",
    "é",
];

/// Key/certificate text: arbitrary, fragments, an edited PEM file, or the bare base64 or
/// PEM of edited DER.
fn key_text() -> impl Strategy<Value = String> {
    const LABELS: &[&str] = &[
        "RSA PRIVATE KEY",
        "PRIVATE KEY",
        "PUBLIC KEY",
        "RSA PUBLIC KEY",
        "CERTIFICATE",
    ];
    prop_oneof![
        "(?s).{0,64}",
        "[A-Za-z0-9+/=\n ]{0,200}",
        prop::collection::vec(select(PEM_FRAGMENTS), 0..16).prop_map(|v| v.concat()),
        (
            any::<Index>(),
            prop::collection::vec(edit(PEM_FRAGMENTS), 1..5)
        )
            .prop_map(|(seed, edits)| apply_edits(seed.get::<String>(&FX.seed_pems), &edits)),
        (key_der(), prop::option::of(select(LABELS))).prop_map(|(der, label)| {
            let b64 = STANDARD.encode(der);
            match label {
                None => b64,
                Some(l) => format!("-----BEGIN {l}-----\n{b64}\n-----END {l}-----\n"),
            }
        }),
    ]
}

/// DER-like bytes: arbitrary, ASN.1-shaped fragments, or an edited key/certificate.
fn key_der() -> impl Strategy<Value = Vec<u8>> {
    const ASN1: &[&[u8]] = &[
        &[0x30, 0x82, 0x01, 0x0a],
        &[0x30, 0x80],
        &[0x30, 0x00],
        &[0x02, 0x01, 0x00],
        &[0x02, 0x82, 0x01, 0x01, 0x00],
        &[0x02, 0x00],
        &[0x03, 0x82, 0x01, 0x0f, 0x00],
        &[0x04, 0x82, 0x01, 0x00],
        &[0x05, 0x00],
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
        ],
        &[0x06, 0x00],
        &[0x06, 0x01, 0x80],
        &[0xa0, 0x03, 0x02, 0x01, 0x02],
        &[0x17, 0x0d],
        &[0x18, 0x0f],
        &[0x31, 0x00],
        &[0x0c, 0x01, 0xff],
        &[0x13, 0x02, b'C', b'N'],
        &[0x84, 0xff, 0xff, 0xff, 0xff],
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(select(ASN1), 0..12).prop_map(|v| v.concat()),
        (any::<Index>(), prop::collection::vec(byte_edit(), 1..4))
            .prop_map(|(seed, edits)| apply_byte_edits(seed.get::<Vec<u8>>(&FX.seed_ders), &edits)),
    ]
}

const FORM_FRAGMENTS: &[&str] = &[
    "&",
    "=",
    "%",
    "%2",
    "%zz",
    "%E6%B5%8B",
    "%B2%E2",
    "%FF",
    "%00",
    "+",
    "charset=GBK",
    "charset=utf-8",
    "charset=%FF",
    "charset=latin1",
    "charset=",
    "sign=",
    "sign=AAAA",
    "sign_type=RSA2",
    "sign_type=SM2",
    "notify_type=trade_status_sync",
    "msg_method=alipay.x",
    "biz_content=%7B%22a%22%3A1%7D",
    "biz_content=%7B",
    "trade_status=TRADE_SUCCESS",
    "total_amount=88.88",
    "notify_id=n",
    "app_id=1",
    "a",
    "é",
    "\u{0}",
];

fn form_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(select(FORM_FRAGMENTS), 0..24).prop_map(|v| v.concat().into_bytes()),
    ]
}

// ---------------------------------------------------------------------------------------
// 1. Round trips of signed frames (slow: one RSA signature per case).

proptest! {
    #![proptest_config(config(128))]

    /// ProduceRequest::sign_and_encode → ProduceFrame::parse gives back every field and
    /// the exact signed text, and the app key verifies it.
    #[test]
    fn produce_round_trip(
        app_id in tricky_string(),
        msg_api in tricky_string().prop_filter("msg_api is required", |s| !s.is_empty()),
        cert_sns in prop::option::of((tricky_string(), tricky_string())),
        stream_id in header_value(),
        timestamp_ms in any::<i64>(),
        charset in charset(),
        signer in any::<Index>(),
        (value, text) in biz_text(),
    ) {
        let fx = &*FX;
        let signer = signer.get(&fx.app_signers);
        let limits = FrameLimits::default();
        let request = ProduceRequest {
            app_id: &app_id,
            msg_api: &msg_api,
            biz_content: &text,
            cert_sns: cert_sns.as_ref().map(|(a, r)| (a.as_str(), r.as_str())),
            stream_id: &stream_id,
            timestamp_ms,
            charset,
        };
        let data = request.data_text(&limits).expect("data text");
        let wire = request.sign_and_encode(signer, &limits).expect("sign and encode");

        let frame = ProduceFrame::parse(&wire, &limits)
            .map_err(|e| TestCaseError::fail(format!("{e}: {wire:?}")))?;
        prop_assert_eq!(&frame.headers, &FrameHeaders {
            stream_id: non_empty(&stream_id),
            ..FrameHeaders::default()
        });
        prop_assert_eq!(&frame.data_header, &DataHeader {
            app_id: non_empty(&app_id),
            msg_api: Some(msg_api.clone()),
            app_cert_sn: cert_sns.as_ref().and_then(|(a, _)| non_empty(a)),
            alipay_root_cert_sn: cert_sns.as_ref().and_then(|(_, r)| non_empty(r)),
        });
        prop_assert_eq!(frame.timestamp_ms, Some(timestamp_ms));
        prop_assert_eq!(frame.protocol.msg_id.as_deref(), None);
        prop_assert_eq!(frame.protocol.charset.as_deref(), Some(charset.as_str()));
        prop_assert_eq!(frame.protocol.sign_type.as_deref(), Some(signer.sign_type().as_str()));
        prop_assert_eq!(&frame.data, &data);
        prop_assert_eq!(frame.biz_content.as_deref(), Some(json_trim(&text)));
        let reparsed: Value = serde_json::from_str(frame.biz_content.as_deref().unwrap())?;
        let original: Value = serde_json::from_str(&text)?;
        prop_assert_eq!(&reparsed, &original);
        prop_assert!(value.is_object());

        prop_assert_eq!(frame.verify(&fx.app_verifier), SignatureStatus::Valid);
        prop_assert!(!frame.verify(&fx.platform_verifier).is_valid());

        // The generic reader agrees.
        let generic = Frame::parse(&wire, &limits)?;
        prop_assert_eq!(generic.command, Command::Produce);
        prop_assert_eq!(generic.data.map(|d| d.text), Some(data.as_str()));
    }

    /// ConsumeOut::sign_and_encode (platform key) → ConsumeFrame::parse gives back every
    /// field; the signature verifies; biz_content() is the same JSON; the ack for it
    /// reads back equal.
    #[test]
    fn consume_round_trip(
        headers in frame_headers(),
        msg_id in tricky_string().prop_filter("x-msgId is required", |s| !s.is_empty()),
        timestamp_ms in any::<i64>(),
        data_header in data_header(),
        charset in charset(),
        signer in any::<Index>(),
        (value, text) in biz_text(),
    ) {
        let fx = &*FX;
        let signer = signer.get(&fx.platform_signers);
        let limits = FrameLimits::default();
        let out = ConsumeOut {
            headers: &headers,
            msg_id: &msg_id,
            timestamp_ms,
            data_header: &data_header,
            // Padding around the object is part of the signed `data` text.
            biz_content: &text,
            charset,
        };
        let wire = out.sign_and_encode(signer).expect("sign and encode");

        let frame = ConsumeFrame::parse(&wire, &limits)
            .map_err(|e| TestCaseError::fail(format!("{e}: {wire:?}")))?;
        prop_assert_eq!(&frame.headers, &headers);
        prop_assert_eq!(&frame.msg_id, &msg_id);
        prop_assert_eq!(frame.timestamp_ms, Some(timestamp_ms));
        prop_assert_eq!(frame.charset.as_deref(), Some(charset.as_str()));
        prop_assert_eq!(frame.sign_type.as_deref(), Some(signer.sign_type().as_str()));
        prop_assert_eq!(&frame.data_header, &data_header);
        prop_assert_eq!(frame.app_id(), data_header.app_id.as_deref());
        prop_assert_eq!(frame.msg_api(), data_header.msg_api.as_deref());
        prop_assert_eq!(frame.signed_content(), out.data_text());
        prop_assert_eq!(frame.biz_content(), json_trim(&text));
        let reparsed: Value = serde_json::from_str(frame.biz_content())?;
        let original: Value = serde_json::from_str(&text)?;
        prop_assert_eq!(&reparsed, &original);
        prop_assert!(value.is_object());

        prop_assert_eq!(frame.verify(&fx.platform_verifier), SignatureStatus::Valid);
        prop_assert!(!frame.verify(&fx.app_verifier).is_valid());

        for status in [AckStatus::Success, AckStatus::Fail] {
            let ack = frame.ack(status);
            prop_assert_eq!(&ack.headers, &headers);
            prop_assert_eq!(&ack.msg_id, &msg_id);
            prop_assert_eq!(ConsumeAck::parse(&ack.encode(), &limits)?, ack);
        }
    }
}

// 1b. Round trips of acks (no signature: many cases).

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn consume_ack_round_trip(
        headers in frame_headers(),
        msg_id in tricky_string().prop_filter("x-msgId is required", |s| !s.is_empty()),
        status in ack_status(),
    ) {
        let ack = ConsumeAck { headers, msg_id, status };
        let wire = ack.encode();
        let frame = Frame::parse(&wire, &FrameLimits::default())?;
        prop_assert_eq!(frame.command, Command::ConsumeAck);
        prop_assert!(frame.data.is_none());
        prop_assert_eq!(ConsumeAck::parse(&wire, &FrameLimits::default())?, ack);
    }

    #[test]
    fn produce_ack_round_trip(
        stream_id in header_value().prop_filter("stream-id is required", |s| !s.is_empty()),
        msg_id in prop::option::of(tricky_string()),
        status in ack_status(),
        code in prop::option::of(prop_oneof![
            Just("10000".to_owned()), Just("20000".to_owned()), Just("30001".to_owned()),
            tricky_string(),
        ]),
        error in prop::option::of(tricky_string()),
    ) {
        let ack = ProduceAck {
            stream_id,
            msg_id: msg_id.filter(|s| !s.is_empty()),
            status,
            code: code.filter(|s| !s.is_empty()),
            error: error.filter(|s| !s.is_empty()),
        };
        let wire = ack.encode();
        let back = ProduceAck::parse(&wire, &FrameLimits::default())?;
        prop_assert_eq!(back.result(), ack.result());
        prop_assert_eq!(back, ack);
    }

    /// Form bodies written with form-urlencoding read back to the same parameters
    /// (PROTOCOL §10).
    #[test]
    fn form_round_trip(
        pairs in prop::collection::vec(
            (tricky_string().prop_filter("keys are not empty", |k| !k.is_empty() && k != "charset"),
             tricky_string()),
            0..8,
        ),
    ) {
        let mut seen = std::collections::HashSet::new();
        let pairs: Vec<(String, String)> =
            pairs.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        let params = notify::parse_form(body.as_bytes())
            .map_err(|e| TestCaseError::fail(format!("{e}: {body:?}")))?;
        prop_assert_eq!(params.charset(), notify::NotifyCharset::Utf8);
        prop_assert_eq!(params.into_pairs(), pairs);
    }
}

// ---------------------------------------------------------------------------------------
// 2. sign → verify on every backend.

proptest! {
    #![proptest_config(config(64))]

    /// Every (backend, sign type) signer makes a signature every backend verifies; the
    /// same key and text give the same signature on every backend (PKCS#1 v1.5 is
    /// deterministic); other sign types, other text do not verify; in GBK, characters
    /// GBK lacks are signed as `?`, like Java.
    #[test]
    fn sign_verify_all_backends(text in sign_text(), charset in charset()) {
        let fx = &*FX;
        let gbk_text = gbk_replaced(&text);
        let mut by_type: Vec<(SignType, String)> = Vec::new();
        for signer in &fx.all_signers {
            let t = signer.sign_type();
            let sign = signer.sign_text(&text, charset)?;
            if let Some((_, other)) = by_type.iter().find(|(ot, _)| *ot == t) {
                prop_assert_eq!(other, &sign, "{:?} signs differently", signer.backend());
            } else {
                by_type.push((t, sign.clone()));
            }
            let other_type = if t == SignType::Rsa2 { SignType::Rsa } else { SignType::Rsa2 };
            let changed = format!("{text}!");
            for v in &fx.all_verifiers {
                prop_assert_eq!(v.verify_text(t, charset, &text, &sign), Ok(()));
                prop_assert_eq!(
                    v.verify_text(other_type, charset, &text, &sign),
                    Err(SignatureError::Mismatch)
                );
                prop_assert_eq!(
                    v.verify_text(t, charset, &changed, &sign),
                    Err(SignatureError::Mismatch)
                );
                if charset == Charset::Gbk {
                    prop_assert_eq!(v.verify_text(t, charset, &gbk_text, &sign), Ok(()));
                }
            }
        }
        if charset == Charset::Gbk {
            prop_assert_eq!(Charset::Gbk.encode(&text), Charset::Gbk.encode(&gbk_text));
        }
    }
}

// ---------------------------------------------------------------------------------------
// 3. Tampering.

/// ASCII bytes that keep a frame valid UTF-8 when swapped in.
fn ascii_replacements(old: u8) -> Vec<u8> {
    (0x20u8..0x7f)
        .chain([b'\t', b'\n', b'\r'])
        .filter(|&b| b != old)
        .collect()
}

fn alnum_replacements(old: u8) -> Vec<u8> {
    (b'0'..=b'9')
        .chain(b'A'..=b'Z')
        .chain(b'a'..=b'z')
        .filter(|&b| b != old)
        .collect()
}

fn replace_byte(text: &str, at: usize, new: u8) -> String {
    assert!(text.as_bytes()[at].is_ascii() && new.is_ascii());
    let mut bytes = text.as_bytes().to_vec();
    bytes[at] = new;
    String::from_utf8(bytes).expect("an ASCII byte swapped for an ASCII byte")
}

proptest! {
    #![proptest_config(config(128))]

    /// One ASCII byte changed inside the signed `data` span: the frame no longer parses,
    /// or its signature is not valid. One byte changed in `x-msgId` or a header value, or
    /// an extra header line: still valid (PROTOCOL §5).
    #[test]
    fn tampering(
        msg_id in "[A-Za-z0-9]{1,16}",
        from_sys in "[A-Za-z0-9]{1,16}",
        stream_id in opt_header(),
        data_header in data_header(),
        (_value, text) in biz_text(),
        charset in charset(),
        signer in any::<Index>(),
        (data_pos, data_rep) in (any::<Index>(), any::<Index>()),
        (id_pos, id_rep) in (any::<Index>(), any::<Index>()),
        (hdr_pos, hdr_rep) in (any::<Index>(), any::<Index>()),
    ) {
        let fx = &*FX;
        let limits = FrameLimits::default();
        let signer = signer.get(&fx.platform_signers);
        let headers = FrameHeaders { from_sys: Some(from_sys.clone()), from_sys_ip: None, stream_id };
        let out = ConsumeOut {
            headers: &headers,
            msg_id: &msg_id,
            timestamp_ms: 1_700_000_000_000,
            data_header: &data_header,
            biz_content: &text,
            charset,
        };
        let data = out.data_text();
        let wire = out.sign_and_encode(signer)?;
        let verify = |t: &str| ConsumeFrame::parse(t, &limits).map(|f| f.verify(&fx.platform_verifier));
        prop_assert_eq!(verify(&wire), Ok(SignatureStatus::Valid));

        // The data object is the last thing in the frame: `…,"data":<data>}`.
        let start = wire.len() - 1 - data.len();
        prop_assert_eq!(&wire[start..wire.len() - 1], data.as_str());

        // (a) Inside the span: not valid.
        let ascii: Vec<usize> =
            (start..start + data.len()).filter(|&i| wire.as_bytes()[i].is_ascii()).collect();
        let at = *data_pos.get(&ascii);
        let new = *data_rep.get(&ascii_replacements(wire.as_bytes()[at]));
        let tampered = replace_byte(&wire, at, new);
        match verify(&tampered) {
            Err(_) => {}
            Ok(status) => prop_assert!(
                !status.is_valid(),
                "byte {} of the data span changed to {:?} and the signature still verifies",
                at - start,
                new as char
            ),
        }

        // (b) x-msgId: outside the signature.
        let body = wire.find("\r\n\r\n").expect("header end");
        let id_at = body
            + wire[body..].find("\"x-msgId\":\"").expect("x-msgId")
            + 11
            + id_pos.index(msg_id.len());
        let new = *id_rep.get(&alnum_replacements(wire.as_bytes()[id_at]));
        let tampered = replace_byte(&wire, id_at, new);
        let frame = ConsumeFrame::parse(&tampered, &limits)?;
        prop_assert_ne!(&frame.msg_id, &msg_id);
        prop_assert_eq!(frame.verify(&fx.platform_verifier), SignatureStatus::Valid);

        // (c) A header value: outside the signature.
        prop_assert!(wire.starts_with("from-sys:"));
        let hdr_at = 9 + hdr_pos.index(from_sys.len());
        let new = *hdr_rep.get(&alnum_replacements(wire.as_bytes()[hdr_at]));
        let tampered = replace_byte(&wire, hdr_at, new);
        let frame = ConsumeFrame::parse(&tampered, &limits)?;
        prop_assert_ne!(frame.headers.from_sys.as_deref(), Some(from_sys.as_str()));
        prop_assert_eq!(frame.verify(&fx.platform_verifier), SignatureStatus::Valid);

        // (d) An extra, unknown header line: outside the signature.
        let tampered = format!("x-extra: {msg_id}\r\n{wire}");
        prop_assert_eq!(verify(&tampered), Ok(SignatureStatus::Valid));
    }
}

// ---------------------------------------------------------------------------------------
// 4. Parsers never panic.

fn exercise_frame_parsers(text: &str, limits: &FrameLimits) -> Result<(), TestCaseError> {
    let fx = &*FX;
    let _ = Frame::parse(text, limits);
    if let Ok(c) = ConsumeFrame::parse(text, limits) {
        let _ = c.verify(&fx.platform_verifier);
        let _ = (c.biz_content(), c.signed_content(), c.app_id(), c.msg_api());
        // The ack copies headers and x-msgId, and reads back equal.
        let ack = c.ack(AckStatus::Fail);
        let back = ConsumeAck::parse(&ack.encode(), &FrameLimits::default())?;
        prop_assert_eq!(back, ack);
    }
    if let Ok(p) = ProduceFrame::parse(text, limits) {
        let _ = p.verify(&fx.app_verifier);
    }
    if let Ok(a) = ProduceAck::parse(text, limits) {
        let _ = (a.to_string(), a.is_success(), a.is_retryable());
        // What was read writes back to the same ack.
        prop_assert_eq!(ProduceAck::parse(&a.encode(), &FrameLimits::default())?, a);
    }
    if let Ok(a) = ConsumeAck::parse(text, limits) {
        let back = ConsumeAck::parse(&a.encode(), &FrameLimits::default())?;
        prop_assert_eq!(back, a);
    }
    Ok(())
}

const HEADER_KEYS: &[&str] = &["from-sys", "from-sys-ip", "stream-id", "x-other"];

proptest! {
    #![proptest_config(config(256))]

    /// An ack read from the wire and written again (as a client does when it copies a
    /// CONSUME's header lines into its CONSUME_ACK, PROTOCOL §6) reads back equal.
    ///
    /// Found by this property: an empty header value (`from-sys:`) used to read as
    /// `Some("")` and be dropped on write. Empty values now read as absent.
    #[test]
    fn ack_read_then_written_reads_back_equal(
        lines in prop::collection::vec(
            (select(HEADER_KEYS), prop_oneof![Just(String::new()), header_value()], " {0,2}"),
            0..5,
        ),
        msg_id in tricky_string().prop_filter("x-msgId is required", |s| !s.is_empty()),
        status in ack_status(),
    ) {
        let mut text: String = lines
            .iter()
            .map(|(k, v, pad)| format!("{k}:{pad}{v}{pad}\r\n"))
            .collect();
        if text.is_empty() {
            text.push_str("\r\n");
        }
        text.push_str(&format!(
            "\r\n{{\"protocol\":{{\"x-type\":\"message\",\"x-cmd\":\"CONSUME_ACK\",\"x-msgId\":{},\"x-status\":\"{}\"}}}}",
            serde_json::to_string(&msg_id)?,
            status.as_str(),
        ));
        let ack = ConsumeAck::parse(&text, &FrameLimits::default())?;
        prop_assert_eq!(ConsumeAck::parse(&ack.encode(), &FrameLimits::default())?, ack);
    }
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn frame_parsers_never_panic(text in frame_like(), limits in small_limits()) {
        exercise_frame_parsers(&text, &FrameLimits::default())?;
        exercise_frame_parsers(&text, &limits)?;
    }

    #[test]
    fn key_and_cert_text_parsers_never_panic(text in key_text()) {
        let _ = PrivateKey::from_pem_or_base64(&text);
        let _ = PublicKey::from_pem_or_base64(&text);
        if let Ok(c) = Certificate::from_pem(&text) {
            let _ = (c.sn(), c.issuer_name(), c.subject_name(), c.public_key());
        }
        if let Ok(certs) = Certificate::all_from_pem(&text) {
            let _ = cert::root_cert_sn(&certs);
            let _ = cert::platform_cert_sn(&certs);
        }
    }

    #[test]
    fn key_and_cert_der_parsers_never_panic(der in key_der()) {
        let _ = PublicKey::from_der(&der);
        let _ = PublicKey::from_spki_der(&der);
        let _ = PublicKey::from_pkcs1_der(&der);
        let _ = PrivateKey::from_der(&der);
        let _ = PrivateKey::from_pkcs8_der(&der);
        let _ = PrivateKey::from_pkcs1_der(&der);
        if let Ok(c) = Certificate::from_der(&der) {
            let _ = (c.sn(), c.issuer_name(), c.subject_name(), c.serial_decimal());
            let _ = (c.is_rsa_signed(), c.check_validity(0), c.public_key());
            let _ = cert::root_cert_sn(std::slice::from_ref(&c));
        }
    }

    #[test]
    fn notify_parsers_never_panic(body in form_body(), max_body_len in 0usize..80, max_params in 0usize..6) {
        let fx = &*FX;
        if let Ok(params) = notify::parse_form(&body) {
            let _ = (params.sign_content(Rule::V1), params.sign_content(Rule::V2));
        }
        let _ = notify::parse_form_with(&body, &FormLimits::new(max_body_len, max_params));
        let _ = notify::verify(&body, &fx.platform_verifier, Rule::V1);
        let _ = notify::verify(&body, &fx.platform_verifier, Rule::V2);
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// A key the parser accepts (possibly a corrupted one) never makes building a signer
    /// or verifier, or verifying, panic.
    #[test]
    fn corrupted_keys_never_panic_the_backends(der in key_der()) {
        let mut publics = Vec::new();
        if let Ok(k) = PrivateKey::from_der(&der) {
            for &b in Backend::ALL {
                let _ = Signer::with_backend(&k, SignType::Rsa2, b);
            }
            publics.push(k.public_key().clone());
        }
        if let Ok(k) = PublicKey::from_der(&der) {
            publics.push(k);
        }
        for k in &publics {
            let _ = k.warnings();
            for &b in Backend::ALL {
                if let Ok(v) = Verifier::with_backend(k, b) {
                    let _ = v.verify_text(SignType::Rsa2, Charset::Utf8, "a=1", &STANDARD.encode([1u8; 256]));
                    let _ = v.verify_text(SignType::Rsa, Charset::Gbk, "a=1", "AAAA");
                }
            }
        }
    }

    /// Signed notifications with arbitrary values verify and classify without panics
    /// (the classification is only reached after a valid signature).
    #[test]
    fn signed_notifications_never_panic(
        kind in prop_oneof![Just("trade_status_sync"), Just("other"), Just("")],
        msg_method in prop::option::of(tricky_string()),
        values in prop::collection::vec(
            (select(NOTIFY_KEYS),
             prop_oneof![tricky_string(), Just("TRADE_SUCCESS".to_owned()),
                         Just("{\"a\":[1]}".to_owned())]),
            0..10,
        ),
        charset in charset(),
        rule in prop_oneof![Just(Rule::V1), Just(Rule::V2)],
    ) {
        let fx = &*FX;
        let signer = &fx.platform_signers[0];
        let mut pairs: Vec<(String, String)> = vec![
            ("notify_type".to_owned(), kind.to_owned()),
            ("charset".to_owned(), charset.as_str().to_owned()),
            ("sign_type".to_owned(), signer.sign_type().as_str().to_owned()),
        ];
        if let Some(m) = msg_method {
            pairs.push(("msg_method".to_owned(), m));
        }
        for (k, v) in values {
            if !pairs.iter().any(|(pk, _)| pk == k) {
                pairs.push((k.to_owned(), v));
            }
        }
        // The platform signs the values the body carries: in GBK a character GBK lacks
        // is sent as '?', so sign that. (Signing the value before encoding differs when
        // the sign-content rule treats the two differently: U+2028 alone is Java
        // whitespace, left out; '?' is not.)
        for (_, v) in &mut pairs {
            *v = charset.decode(&charset.encode(v)).into_owned();
        }
        let content = alipay_msg_core::sign_content::sign_content(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            rule,
        );
        let sign = signer.sign_text(&content, charset)?;
        pairs.push(("sign".to_owned(), sign));
        // Values in the body's charset; characters GBK lacks become '?', in the body
        // as in the signed bytes, so the signature still verifies.
        let encode: fn(&str) -> Cow<'_, [u8]> = match charset {
            Charset::Utf8 => encode_utf8,
            Charset::Gbk => encode_gbk,
        };
        let body = form_urlencoded::Serializer::new(String::new())
            .encoding_override(Some(&encode))
            .extend_pairs(&pairs)
            .finish();
        match notify::verify(body.as_bytes(), &fx.platform_verifier, rule) {
            Ok(n) => {
                let _ = (n.notify_id(), n.app_id(), n.params().len());
            }
            Err(e) => prop_assert!(
                !e.is_signature_failure(),
                "a correctly signed body failed: {}: {:?}", e, body
            ),
        }
    }
}

const NOTIFY_KEYS: &[&str] = &[
    "notify_id",
    "notify_time",
    "app_id",
    "trade_no",
    "out_trade_no",
    "trade_status",
    "total_amount",
    "biz_content",
    "utc_timestamp",
    "version",
    "x",
    "gmt_close",
];

fn encode_utf8(s: &str) -> Cow<'_, [u8]> {
    Charset::Utf8.encode(s)
}

fn encode_gbk(s: &str) -> Cow<'_, [u8]> {
    Charset::Gbk.encode(s)
}

// ---------------------------------------------------------------------------------------
// 5. FrameLimits.

proptest! {
    #![proptest_config(config(512))]

    /// Any text longer than `max_frame_bytes` is `TooLarge`, whatever it holds.
    #[test]
    fn longer_than_max_frame_bytes_is_too_large(text in frame_like(), cut in any::<Index>()) {
        prop_assume!(!text.is_empty());
        let limit = cut.index(text.len());
        let limits = FrameLimits { max_frame_bytes: limit, ..FrameLimits::default() };
        let expected = FrameError::TooLarge { size: text.len(), limit };
        prop_assert_eq!(Frame::parse(&text, &limits).err(), Some(expected.clone()));
        prop_assert_eq!(ConsumeFrame::parse(&text, &limits).err(), Some(expected.clone()));
        prop_assert_eq!(ProduceFrame::parse(&text, &limits).err(), Some(expected.clone()));
        prop_assert_eq!(ProduceAck::parse(&text, &limits).err(), Some(expected.clone()));
        prop_assert_eq!(ConsumeAck::parse(&text, &limits).err(), Some(expected));
    }

    /// Each limit is exact on a written frame: at the frame's own size it parses, one
    /// below it is refused with that limit's error.
    #[test]
    fn limits_are_exact(
        headers in frame_headers(),
        msg_id in tricky_string().prop_filter("x-msgId is required", |s| !s.is_empty()),
        status in ack_status(),
    ) {
        let ack = ConsumeAck { headers, msg_id, status };
        let wire = ack.encode();
        let d = FrameLimits::default();
        let parse = |limits: FrameLimits| ConsumeAck::parse(&wire, &limits);

        let size = wire.len();
        prop_assert_eq!(parse(FrameLimits { max_frame_bytes: size, ..d } ), Ok(ack.clone()));
        prop_assert_eq!(
            parse(FrameLimits { max_frame_bytes: size - 1, ..d }),
            Err(FrameError::TooLarge { size, limit: size - 1 })
        );

        let block = &wire[..wire.find("\r\n\r\n").expect("header end")];
        let lines: Vec<&str> = if block.is_empty() { vec![] } else { block.split("\r\n").collect() };
        if !lines.is_empty() {
            let n = lines.len();
            prop_assert_eq!(parse(FrameLimits { max_header_lines: n, ..d } ), Ok(ack.clone()));
            prop_assert_eq!(
                parse(FrameLimits { max_header_lines: n - 1, ..d }),
                Err(FrameError::TooManyHeaderLines { limit: n - 1 })
            );
            let longest = lines.iter().map(|l| l.len()).max().unwrap_or(0);
            let first_long = lines.iter().position(|l| l.len() == longest).unwrap_or(0) + 1;
            prop_assert_eq!(parse(FrameLimits { max_header_line_bytes: longest, ..d } ), Ok(ack.clone()));
            prop_assert_eq!(
                parse(FrameLimits { max_header_line_bytes: longest - 1, ..d }),
                Err(FrameError::HeaderLineTooLong { line: first_long, limit: longest - 1 })
            );
        }

        // An ack nests two levels: {"protocol":{…}}.
        prop_assert_eq!(parse(FrameLimits { max_json_depth: 2, ..d } ), Ok(ack.clone()));
        prop_assert_eq!(
            parse(FrameLimits { max_json_depth: 1, ..d }),
            Err(FrameError::TooDeep { limit: 1 })
        );
    }
}
