//! The sign-content rule's notion of "empty" and its key order, against the Java SDK
//! (PROTOCOL §2, §10).
//!
//! What the reference does (alipay-sdk-java-all, `com.alipay.api.internal.util`):
//!
//! - `AlipaySignature.getSignContent`, `getSignCheckContentV1` and `getSignCheckContentV2`
//!   all copy the keys, `Collections.sort(keys)` (Java `String.compareTo`: UTF-16 code
//!   units), and append `key=value` only `if (StringUtils.areNotEmpty(key, value))` —
//!   the KEY is tested as well as the value.
//! - `StringUtils.isEmpty(value)` is true for null, length 0, or when
//!   `Character.isWhitespace(value.charAt(i))` holds for every `i`. Nothing is trimmed.
//! - `Character.isWhitespace` is true for U+0009–U+000D, U+001C–U+001F and the Unicode
//!   categories Zs/Zl/Zp except the no-break spaces U+00A0, U+2007, U+202F.

use alipay_msg_core::charset::Charset;
use alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_core::notify::{self, NotifyError};
use alipay_msg_core::sign_content::{sign_content, Rule};
use alipay_msg_core::signature::{SignType, SignatureError, Signer, Verifier};

const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/keys");

/// Every character Java's `Character.isWhitespace` accepts, by class.
const JAVA_WHITESPACE: &[(char, &str)] = &[
    ('\u{9}', "tab"),
    ('\u{a}', "line feed"),
    ('\u{b}', "vertical tab"),
    ('\u{c}', "form feed"),
    ('\u{d}', "carriage return"),
    ('\u{1c}', "file separator"),
    ('\u{1d}', "group separator"),
    ('\u{1e}', "record separator"),
    ('\u{1f}', "unit separator"),
    ('\u{20}', "space (Zs)"),
    ('\u{1680}', "ogham space mark (Zs)"),
    ('\u{2000}', "en quad (Zs)"),
    ('\u{2001}', "em quad (Zs)"),
    ('\u{2002}', "en space (Zs)"),
    ('\u{2003}', "em space (Zs)"),
    ('\u{2004}', "three-per-em space (Zs)"),
    ('\u{2005}', "four-per-em space (Zs)"),
    ('\u{2006}', "six-per-em space (Zs)"),
    ('\u{2008}', "punctuation space (Zs)"),
    ('\u{2009}', "thin space (Zs)"),
    ('\u{200a}', "hair space (Zs)"),
    ('\u{2028}', "line separator (Zl)"),
    ('\u{2029}', "paragraph separator (Zp)"),
    ('\u{205f}', "medium mathematical space (Zs)"),
    ('\u{3000}', "ideographic space (Zs)"),
];

/// Characters Java does NOT call whitespace although they look like it; several of
/// them are whitespace to Rust's `char::is_whitespace`.
const NOT_JAVA_WHITESPACE: &[(char, &str)] = &[
    ('\u{a0}', "no-break space"),
    ('\u{2007}', "figure space (no-break)"),
    ('\u{202f}', "narrow no-break space"),
    ('\u{85}', "next line (Rust whitespace, not Java)"),
    ('\u{200b}', "zero width space (Cf)"),
    ('\u{feff}', "byte order mark (Cf)"),
    (
        '\u{180e}',
        "mongolian vowel separator (Cf since Unicode 6.3)",
    ),
    ('\u{0}', "NUL"),
];

#[test]
fn a_value_of_java_whitespace_alone_is_left_out() {
    for &(c, name) in JAVA_WHITESPACE {
        for value in [c.to_string(), format!("{c}{c}"), format!("{c} \t{c}")] {
            assert_eq!(
                sign_content([("a", "1"), ("b", value.as_str())], Rule::V2),
                "a=1",
                "{name} (U+{:04X}) alone: Java's isEmpty is true",
                c as u32
            );
        }
    }
}

#[test]
fn java_whitespace_inside_other_text_is_kept_untrimmed() {
    for &(c, name) in JAVA_WHITESPACE.iter().chain(NOT_JAVA_WHITESPACE) {
        for value in [
            format!("x{c}"),
            format!("{c}x"),
            format!("{c}x{c}"),
            format!("订{c}单"),
        ] {
            assert_eq!(
                sign_content([("a", "1"), ("b", value.as_str())], Rule::V2),
                format!("a=1&b={value}"),
                "{name} (U+{:04X}) inside text",
                c as u32
            );
        }
    }
}

#[test]
fn no_break_spaces_and_other_non_whitespace_alone_are_kept() {
    for &(c, name) in NOT_JAVA_WHITESPACE {
        let value = c.to_string();
        assert_eq!(
            sign_content([("a", "1"), ("b", value.as_str())], Rule::V2),
            format!("a=1&b={value}"),
            "{name} (U+{:04X}) alone: Java's isEmpty is false",
            c as u32
        );
    }
}

#[test]
fn the_key_is_tested_for_emptiness_too() {
    // `StringUtils.areNotEmpty(key, value)`.
    for &(c, name) in JAVA_WHITESPACE {
        let key = c.to_string();
        assert_eq!(
            sign_content([("a", "1"), (key.as_str(), "2")], Rule::V1),
            "a=1",
            "key of {name}"
        );
    }
    assert_eq!(sign_content([("", "2"), ("a", "1")], Rule::V2), "a=1");
    assert_eq!(
        sign_content([("\u{a0}", "2"), ("a", "1")], Rule::V2),
        "a=1&\u{a0}=2"
    );
}

#[test]
fn keys_sort_in_java_string_order() {
    // U+FF21 is EF BC A1 in UTF-8 and FF21 in UTF-16; U+1F600 is F0 9F 98 80 in UTF-8 and
    // D83D DE00 in UTF-16. Byte order puts U+FF21 first, Java's compareTo U+1F600.
    assert_eq!(
        sign_content(
            [("\u{ff21}", "1"), ("\u{1f600}", "2"), ("a", "3")],
            Rule::V2
        ),
        "a=3&\u{1f600}=2&\u{ff21}=1"
    );
}

fn platform_signer() -> Signer {
    let pem = std::fs::read_to_string(format!("{KEYS}/alipay_private_pkcs1.pem")).unwrap();
    Signer::new(
        &PrivateKey::from_pem_or_base64(&pem).unwrap(),
        SignType::Rsa2,
    )
    .unwrap()
}

fn platform_verifier() -> Verifier {
    let pem = std::fs::read_to_string(format!("{KEYS}/alipay_public.pem")).unwrap();
    Verifier::new(&PublicKey::from_pem_or_base64(&pem).unwrap()).unwrap()
}

const UNSIGNED: &str = "notify_type=trade_status_sync&notify_id=n1\
                        &notify_time=2026-11-20+10%3A21%3A35&app_id=2021000000000001\
                        &trade_no=t1&out_trade_no=o1&trade_status=TRADE_SUCCESS\
                        &total_amount=1.00&body=+&subject=%E3%80%80&sign_type=RSA2";

/// `body=+` is one space once form-decoded and `subject=%E3%80%80` one U+3000: the
/// Java SDK leaves both out of the content it signs (written out here by hand, V1).
const JAVA_CONTENT: &str = "app_id=2021000000000001&notify_id=n1\
                            &notify_time=2026-11-20 10:21:35&notify_type=trade_status_sync\
                            &out_trade_no=o1&total_amount=1.00&trade_no=t1\
                            &trade_status=TRADE_SUCCESS";

fn with_sign(content: &str) -> String {
    let sign = platform_signer().sign_text(content, Charset::Utf8).unwrap();
    let sign: String = form_urlencoded::byte_serialize(sign.as_bytes()).collect();
    format!("{UNSIGNED}&sign={sign}")
}

#[test]
fn a_notification_with_a_blank_body_signed_by_the_java_rule_verifies() {
    let body = with_sign(JAVA_CONTENT);
    let n = notify::verify(body.as_bytes(), &platform_verifier(), Rule::V1)
        .expect("signed over the Java SDK's content");
    assert_eq!(n.params().get("body"), Some(" "));
    assert_eq!(n.params().get("subject"), Some("\u{3000}"));
}

#[test]
fn a_notification_signed_with_the_blank_entries_is_refused() {
    let content = JAVA_CONTENT.replace("&total_amount", "&subject=\u{3000}&total_amount");
    let body = with_sign(&format!(
        "app_id=2021000000000001&body= &{}",
        &content[24..]
    ));
    let e = notify::verify(body.as_bytes(), &platform_verifier(), Rule::V1).unwrap_err();
    assert_eq!(
        e,
        NotifyError::BadSignature(SignatureError::Mismatch),
        "not the Java SDK's content"
    );
}
