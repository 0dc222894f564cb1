//! Why a notification does not verify: the rule, charset, sign type and exact sign
//! content used, which key checked it, and hints at the usual mistakes (PROTOCOL §10).
//! For logs of web frameworks and the CLI's `verify-notify --explain`.

use std::fmt;

use crate::sign_content::Rule;
use crate::signature::Verifier;

use super::{check_signature, parse_form_with, FormLimits, NotifyError};

/// What [`diagnose`](super::diagnose) found out about a notification body.
///
/// Contains the sign content, which is the notification's data (amounts, buyer ids):
/// log it where the notifications themselves may be logged. It never contains key
/// material: the key is named by its [`fingerprint`](crate::key::PublicKey::fingerprint).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Diagnosis {
    /// The rule the body was checked under.
    pub rule: Rule,
    /// The charset label the sign content was encoded in
    /// ([`FormParams::charset_label`](super::FormParams::charset_label)); `None` when
    /// the body could not be decoded.
    pub charset: Option<String>,
    /// The body's `sign_type` as given (truncated to 64 characters), `None` when absent,
    /// empty or the body could not be decoded.
    pub sign_type: Option<String>,
    /// The exact signed text under [`rule`](Self::rule), before charset encoding;
    /// `None` when the body could not be decoded.
    pub sign_content: Option<String>,
    /// [`Verifier::key_fingerprint`]: which key checked the signature.
    pub key_fingerprint: String,
    /// `None` when the signature verifies under [`rule`](Self::rule), else why not
    /// (malformed body or bad signature).
    pub error: Option<NotifyError>,
    /// Likely causes of the failure, most specific first; empty when the signature
    /// verifies (hints explain failures only).
    pub hints: Vec<Hint>,
}

impl Diagnosis {
    /// Whether the signature verifies under [`rule`](Self::rule).
    pub fn verified(&self) -> bool {
        self.error.is_none()
    }
}

impl fmt::Display for Diagnosis {
    /// One line: verdict, rule, charset, sign type, key fingerprint, hints, and the sign
    /// content last (quoted with `{:?}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            None => f.write_str("verified")?,
            Some(e) => write!(f, "not verified ({e})")?,
        }
        write!(
            f,
            "; rule {}, charset {}, sign_type {}, key {}",
            self.rule,
            self.charset.as_deref().unwrap_or("-"),
            self.sign_type.as_deref().unwrap_or("-"),
            self.key_fingerprint
        )?;
        for hint in &self.hints {
            write!(f, "; hint: {hint}")?;
        }
        if let Some(content) = &self.sign_content {
            write!(f, "; sign content {content:?}")?;
        }
        Ok(())
    }
}

/// A likely cause of a notification that does not verify (see
/// [`diagnose`](super::diagnose) for when each is given).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Hint {
    /// The body verifies under [`Rule::V2`] (`sign_type` is part of the signed
    /// content): it was checked under V1, the rule of payment notifications, but it is
    /// signed as gateway messages usually are.
    VerifiesUnderV2,
    /// The body verifies under [`Rule::V1`] (`sign_type` left out): it was checked under
    /// V2, but it is signed as payment notifications are.
    VerifiesUnderV1,
    /// The body looks already URL-decoded (e.g. by a web framework, or copied from a
    /// log of the decoded parameters): pass the raw request body.
    LooksUrlDecoded,
    /// The body is JSON (it starts with `{` or `[`), not an
    /// `application/x-www-form-urlencoded` body.
    LooksLikeJson,
    /// The body is empty (or only whitespace).
    EmptyInput,
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hint::VerifiesUnderV2 => {
                "verifies under the V2 rule (sign_type is part of the signed content)"
            }
            Hint::VerifiesUnderV1 => {
                "verifies under the V1 rule (sign_type is left out of the signed content)"
            }
            Hint::LooksUrlDecoded => {
                "the body looks already URL-decoded: pass the raw request body, as received"
            }
            Hint::LooksLikeJson => "this is JSON, not a form body",
            Hint::EmptyInput => "empty input",
        })
    }
}

/// Bytes an `application/x-www-form-urlencoded` encoder leaves as they are (Java's
/// `URLEncoder`, which the platform uses): `A–Z a–z 0–9 . - * _`, plus the separators
/// `& =`, `+` (an encoded space) and `%` (an escape).
fn form_encoder_keeps(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'*' | b'_' | b'&' | b'=' | b'+' | b'%')
}

/// Whether the body looks already URL-decoded. Two signs, either suffices:
///
/// - a byte the platform's form encoder always escapes appears raw: a space, `:` (as
///   in `notify_time=2026-11-20 10:21:35`), `/`, `@`, `{`, `"`, `,`, any other ASCII
///   punctuation, a control character or a non-ASCII byte (trailing whitespace, such as
///   the newline of a pasted body, is not counted);
/// - the decoded `sign` contains a space: its base64 `+`, which the platform sends as
///   `%2B`, arrived raw and was read as a form-encoded space.
fn looks_url_decoded(trimmed: &[u8], sign: Option<&str>) -> bool {
    trimmed.iter().any(|&b| !form_encoder_keeps(b)) || sign.is_some_and(|s| s.contains(' '))
}

pub(super) fn diagnose(
    body: &[u8],
    verifier: &Verifier,
    rule: Rule,
    limits: &FormLimits,
) -> Diagnosis {
    let trimmed = body.trim_ascii();
    let parsed = parse_form_with(body, limits);
    let mut diagnosis = Diagnosis {
        rule,
        charset: None,
        sign_type: None,
        sign_content: None,
        key_fingerprint: verifier.key_fingerprint().to_owned(),
        error: None,
        hints: Vec::new(),
    };
    let params = match parsed {
        Ok(params) => params,
        Err(e) => {
            diagnosis.error = Some(e);
            diagnosis.hints = shape_hints(trimmed, None);
            return diagnosis;
        }
    };
    diagnosis.charset = Some(params.charset_label().to_owned());
    diagnosis.sign_type = params
        .get_non_empty("sign_type")
        .map(|s| s.chars().take(64).collect());
    diagnosis.sign_content = Some(params.sign_content(rule));
    if let Err(e) = check_signature(&params, verifier, rule) {
        diagnosis.error = Some(e);
        diagnosis.hints = shape_hints(trimmed, params.get("sign"));
        if diagnosis.hints.is_empty() && check_signature(&params, verifier, rule.other()).is_ok() {
            diagnosis.hints.push(match rule {
                Rule::V1 => Hint::VerifiesUnderV2,
                Rule::V2 => Hint::VerifiesUnderV1,
            });
        }
    }
    diagnosis
}

/// The hints about the body's shape, of which at most one applies: empty, JSON, or
/// URL-decoded, in that order.
fn shape_hints(trimmed: &[u8], sign: Option<&str>) -> Vec<Hint> {
    if trimmed.is_empty() {
        vec![Hint::EmptyInput]
    } else if matches!(trimmed.first(), Some(b'{' | b'[')) {
        vec![Hint::LooksLikeJson]
    } else if looks_url_decoded(trimmed, sign) {
        vec![Hint::LooksUrlDecoded]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::PublicKey;
    use crate::notify::diagnose;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");

    fn platform_verifier() -> Verifier {
        let pem = std::fs::read_to_string(format!("{DIR}/vectors/keys/alipay_public.pem")).unwrap();
        Verifier::new(&PublicKey::from_pem_or_base64(&pem).unwrap()).unwrap()
    }

    fn body(name: &str) -> Vec<u8> {
        std::fs::read(format!("{DIR}/notify/{name}")).unwrap()
    }

    #[test]
    fn a_verified_body_has_no_hints() {
        let d = diagnose(
            &body("trade_notify_rsa2_v1.txt"),
            &platform_verifier(),
            Rule::V1,
        );
        assert!(d.verified(), "{d}");
        assert!(d.hints.is_empty());
        assert_eq!(d.rule, Rule::V1);
        assert_eq!(d.charset.as_deref(), Some("utf-8"));
        assert_eq!(d.sign_type.as_deref(), Some("RSA2"));
        assert_eq!(d.key_fingerprint, "d0de861be430270f");
        let content = d.sign_content.as_deref().unwrap();
        assert!(
            content.starts_with("app_id=2021000000000001&auth_app_id="),
            "{content}"
        );
        assert!(
            content.contains("&subject=测试订单 Test Order&"),
            "{content}"
        );
        assert!(!content.contains("sign_type"), "{content}");
    }

    #[test]
    fn hint_verifies_under_v2() {
        let d = diagnose(
            &body("gateway_message_rsa2_v2.txt"),
            &platform_verifier(),
            Rule::V1,
        );
        assert!(d.error.as_ref().unwrap().is_signature_failure(), "{d}");
        assert_eq!(d.hints, [Hint::VerifiesUnderV2]);
        assert!(
            d.to_string().contains("hint: verifies under the V2 rule"),
            "{d}"
        );
    }

    #[test]
    fn hint_verifies_under_v1() {
        let d = diagnose(
            &body("trade_notify_rsa2_v1.txt"),
            &platform_verifier(),
            Rule::V2,
        );
        assert!(!d.verified());
        assert_eq!(d.hints, [Hint::VerifiesUnderV1]);
        assert!(d.sign_content.unwrap().contains("&sign_type=RSA2&"));
    }

    #[test]
    fn hint_looks_url_decoded() {
        let v = platform_verifier();
        let d = diagnose(&body("trade_notify_rsa2_v1_url_decoded.form"), &v, Rule::V1);
        assert!(!d.verified());
        assert_eq!(d.hints, [Hint::LooksUrlDecoded]);
        // Only the sign's `+` left raw: read as a space.
        let raw = String::from_utf8(body("trade_notify_rsa2_v1.txt")).unwrap();
        let d = diagnose(raw.replace("%2B", "+").as_bytes(), &v, Rule::V1);
        assert_eq!(d.hints, [Hint::LooksUrlDecoded], "{d}");
        // A tampered but properly encoded body: no shape hint.
        let d = diagnose(&body("trade_notify_tampered_amount.txt"), &v, Rule::V1);
        assert!(!d.verified());
        assert!(d.hints.is_empty(), "{d}");
    }

    #[test]
    fn hint_looks_like_json() {
        let v = platform_verifier();
        let d = diagnose(&body("gateway_message_rsa2_v1_as_json.json"), &v, Rule::V1);
        assert_eq!(d.hints, [Hint::LooksLikeJson]);
        assert!(d.error.unwrap().is_malformed());
        let d = diagnose(b" [1, 2]", &v, Rule::V2);
        assert_eq!(d.hints, [Hint::LooksLikeJson]);
    }

    #[test]
    fn hint_empty_input() {
        for input in [&b""[..], b"\r\n", b" \t "] {
            let d = diagnose(input, &platform_verifier(), Rule::V1);
            assert_eq!(d.hints, [Hint::EmptyInput], "{input:?}");
            assert_eq!(d.error, Some(NotifyError::MissingParam { name: "sign" }));
        }
        // A body that does not decode has no charset or content, but still hints.
        let d = diagnose(b"{%zz", &platform_verifier(), Rule::V1);
        assert!(matches!(
            d.error,
            Some(NotifyError::BadPercentEncoding { .. })
        ));
        assert_eq!((d.charset, d.sign_content), (None, None));
        assert_eq!(d.hints, [Hint::LooksLikeJson]);
    }
}
