//! HTTP notifications: the platform POSTs an `application/x-www-form-urlencoded` body to
//! a URL of the app, and the app answers `success` or `fail` (PROTOCOL §10).
//!
//! This module is sans-IO: give it the raw request body and the platform's
//! [`Verifier`]; it returns a typed, verified [`Notification`] or a [`NotifyError`]
//! that says whether the input was malformed or the signature was bad. Answer with
//! [`NotifyResponse`].
//!
//! - [`parse_form`] decodes a body into [`FormParams`] (see [`FormParams`] for the
//!   decoding rule: charset from the body's own `charset` parameter, UTF-8 when
//!   absent; strict percent escapes; no duplicate keys; size limits).
//! - [`verify`] also checks the signature and classifies the notification.
//! - [`diagnose`] explains a failure: the rule, charset, sign type and exact sign
//!   content used, the key's fingerprint, and [`Hint`]s at the usual mistakes.
//! - [`NotifyGate`] is the whole endpoint decision, runtime-neutral: raw request in,
//!   [`Verdict`] out (handle this typed notification / answer `success` at once as a
//!   duplicate / answer `fail` for a [`RefuseReason`]), with duplicate suppression by
//!   `notify_id`. The axum integration (`alipay-msg-axum`) and the Python binding use it.

mod charset;
mod diagnosis;
mod form;
mod gate;
mod gateway;
mod trade;

use crate::sign_content::Rule;
use crate::signature::{SignType, SignatureError, UnknownSignType, Verifier};

pub use charset::{NotifyCharset, UnknownNotifyCharset};
pub use diagnosis::{Diagnosis, Hint};
pub use form::{FormLimits, FormParams, Iter};
pub use gate::{
    is_form_content_type, Claim, NotifyGate, RefuseReason, Verdict, DEFAULT_CLAIM_TIMEOUT,
    DEFAULT_DUPLICATE_CAPACITY, DEFAULT_DUPLICATE_MAX_AGE, DEFAULT_MAX_IN_PROGRESS,
    FORM_CONTENT_TYPE,
};
pub use gateway::GatewayMessage;
pub use trade::{TradeNotification, TradeStatus};

/// Why a notification was not accepted (PROTOCOL §10).
///
/// Two kinds, told apart by [`is_signature_failure`](Self::is_signature_failure):
/// [`BadSignature`](Self::BadSignature) (the body is well formed but not signed by the
/// platform key) and everything else (the body is malformed: it is not a notification
/// this crate can check). No variant carries key material; quoted input is truncated to
/// 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The body is larger than [`FormLimits::max_body_len`].
    #[error("notification body of {len} bytes exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// Size of the body.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The body has more than [`FormLimits::max_params`] parameters.
    #[error("notification body has more than {limit} parameters")]
    TooManyParams {
        /// The limit.
        limit: usize,
    },
    /// A `%` not followed by two hex digits.
    #[error("invalid percent escape at byte {offset} of the notification body")]
    BadPercentEncoding {
        /// Offset of the `%` in the body.
        offset: usize,
    },
    /// A parameter with an empty name (`=value`).
    #[error("parameter with an empty name at byte {offset} of the notification body")]
    EmptyKey {
        /// Offset of the parameter in the body.
        offset: usize,
    },
    /// A parameter name occurs more than once.
    #[error("parameter {key:?} occurs more than once in the notification body")]
    DuplicateParam {
        /// The name (truncated to 64 characters).
        key: String,
    },
    /// The body's `charset` parameter is not a label [`NotifyCharset`] knows (UTF-8,
    /// GBK, GB2312, GB18030, any letter case).
    #[error(transparent)]
    UnknownCharset(#[from] UnknownNotifyCharset),
    /// A required parameter is absent or empty (`sign`, `sign_type`, or a field the
    /// notification's type requires).
    #[error("required notification parameter {name:?} is missing or empty")]
    MissingParam {
        /// The parameter name.
        name: &'static str,
    },
    /// The `sign_type` parameter is neither `RSA2` nor `RSA`.
    #[error(transparent)]
    UnknownSignType(#[from] UnknownSignType),
    /// The `biz_content` of a gateway message is not JSON.
    #[error("biz_content is not valid JSON (line {line}, column {column})")]
    BizContentNotJson {
        /// Line of the error in `biz_content`, from 1.
        line: usize,
        /// Column of the error in `biz_content`, from 1.
        column: usize,
    },
    /// The signature does not verify with the platform key (or is not base64).
    #[error("notification signature rejected: {0}")]
    BadSignature(#[source] SignatureError),
}

impl NotifyError {
    /// Whether the notification was well formed but its signature failed: it was not
    /// sent (or was altered after being sent) by the holder of the platform key.
    pub fn is_signature_failure(&self) -> bool {
        matches!(self, NotifyError::BadSignature(_))
    }

    /// Whether the body was malformed (everything but a signature failure).
    pub fn is_malformed(&self) -> bool {
        !self.is_signature_failure()
    }
}

/// A verified notification, by type (PROTOCOL §10). Every variant keeps all the
/// parameters ([`params`](Self::params)).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Notification {
    /// A payment notification: `notify_type=trade_status_sync`.
    Trade(Box<TradeNotification>),
    /// A gateway message: has a `msg_method` (and is not a payment notification).
    GatewayMessage(GatewayMessage),
    /// Any other verified notification.
    Other(OtherNotification),
}

impl Notification {
    /// The `notify_id` (always present for [`Trade`](Self::Trade) and
    /// [`GatewayMessage`](Self::GatewayMessage)).
    pub fn notify_id(&self) -> Option<&str> {
        match self {
            Notification::Trade(t) => Some(&t.notify_id),
            Notification::GatewayMessage(m) => Some(&m.notify_id),
            Notification::Other(o) => o.params.get_non_empty("notify_id"),
        }
    }

    /// The `app_id` (always present for [`Trade`](Self::Trade) and
    /// [`GatewayMessage`](Self::GatewayMessage)).
    pub fn app_id(&self) -> Option<&str> {
        match self {
            Notification::Trade(t) => Some(&t.app_id),
            Notification::GatewayMessage(m) => Some(&m.app_id),
            Notification::Other(o) => o.params.get_non_empty("app_id"),
        }
    }

    /// Every parameter, in body order.
    pub fn params(&self) -> &FormParams {
        match self {
            Notification::Trade(t) => &t.params,
            Notification::GatewayMessage(m) => &m.params,
            Notification::Other(o) => &o.params,
        }
    }

    /// Every parameter, owned.
    pub fn into_params(self) -> FormParams {
        match self {
            Notification::Trade(t) => t.params,
            Notification::GatewayMessage(m) => m.params,
            Notification::Other(o) => o.params,
        }
    }

    /// Classifies verified parameters.
    fn from_verified(params: FormParams) -> Result<Self, NotifyError> {
        if params.get("notify_type") == Some("trade_status_sync") {
            TradeNotification::from_params(params).map(|t| Notification::Trade(Box::new(t)))
        } else if params.get_non_empty("msg_method").is_some() {
            GatewayMessage::from_params(params).map(Notification::GatewayMessage)
        } else {
            Ok(Notification::Other(OtherNotification { params }))
        }
    }
}

/// A verified notification that is neither a payment notification nor a gateway
/// message. Its parameters are all there.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OtherNotification {
    /// Every parameter.
    pub params: FormParams,
}

impl OtherNotification {
    /// The `notify_type`, if present and not empty.
    pub fn notify_type(&self) -> Option<&str> {
        self.params.get_non_empty("notify_type")
    }
}

/// Decodes a notification body with the default [`FormLimits`], without checking the
/// signature. See [`FormParams`] for the rule (PROTOCOL §10).
///
/// The parameters are **not authenticated**: use [`verify`] before acting on them.
///
/// ```
/// use alipay_msg_core::notify::{self, NotifyCharset};
/// let form = notify::parse_form(b"subject=%B2%E2%CA%D4&charset=gbk&a=x+y").unwrap();
/// assert_eq!(form.charset(), NotifyCharset::Gbk);
/// assert_eq!(form.charset_label(), "gbk");
/// assert_eq!(form.get("subject"), Some("测试"));
/// assert_eq!(form.get("a"), Some("x y"));
/// ```
pub fn parse_form(body: &[u8]) -> Result<FormParams, NotifyError> {
    parse_form_with(body, &FormLimits::default())
}

/// [`parse_form`] with explicit limits.
pub fn parse_form_with(body: &[u8], limits: &FormLimits) -> Result<FormParams, NotifyError> {
    form::parse(body, limits)
}

/// Decodes, verifies and classifies a notification body (PROTOCOL §10), with the
/// default [`FormLimits`].
///
/// The rule: decode the body ([`parse_form`]); `sign` and `sign_type` must be present
/// and not empty, and `sign_type` must be `RSA2` or `RSA`; the signed content is every
/// decoded parameter except `sign` (and `sign_type` under [`Rule::V1`], which payment
/// notifications use), empty values skipped, sorted by key, joined as `k=v` with `&`,
/// encoded in the body's charset as Java's `String.getBytes(charset)` does (the Java
/// SDK's `AlipaySignature.rsaCheckV1/V2`; see [`NotifyCharset::encode`]); `sign` must
/// verify over it with `verifier` (the platform key) and the digest of `sign_type`. Only then is the notification
/// classified: `notify_type=trade_status_sync` is a [`Notification::Trade`], one with a
/// `msg_method` a [`Notification::GatewayMessage`], anything else
/// [`Notification::Other`].
///
/// A verified notification is authentic, not necessarily new or meant for this app:
/// check `app_id`, match the order and amount, and handle a repeated `notify_id`
/// idempotently before answering [`NotifyResponse::Success`].
///
/// ```
/// use alipay_msg_core::key::PublicKey;
/// use alipay_msg_core::notify::{self, Notification, NotifyResponse, TradeStatus};
/// use alipay_msg_core::sign_content::Rule;
/// use alipay_msg_core::signature::Verifier;
/// # use alipay_msg_core::{charset::Charset, key::PrivateKey, signature::{SignType, Signer}};
/// # let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/keys");
/// # // The platform's side, for the example: sign a notification body.
/// # let platform_private = std::fs::read_to_string(format!("{keys}/alipay_private_pkcs1.pem"))?;
/// # let signer = Signer::new(&PrivateKey::from_pem_or_base64(&platform_private)?, SignType::Rsa2)?;
/// # let unsigned = "notify_type=trade_status_sync&notify_id=n1&notify_time=2026-11-20+10%3A21%3A35\
/// #     &app_id=2021000000000001&trade_no=t1&out_trade_no=o1&trade_status=TRADE_SUCCESS\
/// #     &total_amount=88.88&charset=utf-8&sign_type=RSA2";
/// # let sign = signer.sign_text(&notify::parse_form(unsigned.as_bytes())?.sign_content(Rule::V1), Charset::Utf8)?;
/// # let body = format!("{unsigned}&sign={}", form_urlencoded::byte_serialize(sign.as_bytes()).collect::<String>());
/// let platform_public = std::fs::read_to_string(format!("{keys}/alipay_public.pem"))?;
/// let verifier = Verifier::new(&PublicKey::from_pem_or_base64(&platform_public)?)?;
///
/// let response = match notify::verify(body.as_bytes(), &verifier, Rule::V1) {
///     Ok(Notification::Trade(trade)) => {
///         assert_eq!(trade.trade_status, TradeStatus::Success);
///         assert_eq!(trade.total_amount.as_deref(), Some("88.88"));
///         // Check app_id, out_trade_no and the amount, record the payment durably, then:
///         NotifyResponse::Success
///     }
///     Ok(_other) => NotifyResponse::Success,
///     Err(e) if e.is_signature_failure() => NotifyResponse::Fail, // not from the platform
///     Err(_malformed) => NotifyResponse::Fail,
/// };
/// assert_eq!(response.body(), "success");
///
/// // One changed byte and the signature no longer verifies.
/// let tampered = body.replace("total_amount=88.88", "total_amount=0.01");
/// let err = notify::verify(tampered.as_bytes(), &verifier, Rule::V1).unwrap_err();
/// assert!(err.is_signature_failure());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify(body: &[u8], verifier: &Verifier, rule: Rule) -> Result<Notification, NotifyError> {
    verify_with(body, verifier, rule, &FormLimits::default())
}

/// [`verify`] with explicit limits.
pub fn verify_with(
    body: &[u8],
    verifier: &Verifier,
    rule: Rule,
    limits: &FormLimits,
) -> Result<Notification, NotifyError> {
    verify_params(parse_form_with(body, limits)?, verifier, rule)
}

/// [`verify`] for a body already decoded with [`parse_form`].
pub fn verify_params(
    params: FormParams,
    verifier: &Verifier,
    rule: Rule,
) -> Result<Notification, NotifyError> {
    check_signature(&params, verifier, rule)?;
    Notification::from_verified(params)
}

/// Checks the `sign` of decoded parameters (the signature part of [`verify`]) and
/// returns the sign type used. Does not classify the notification.
pub fn check_signature(
    params: &FormParams,
    verifier: &Verifier,
    rule: Rule,
) -> Result<SignType, NotifyError> {
    let sign = params
        .get_non_empty("sign")
        .ok_or(NotifyError::MissingParam { name: "sign" })?;
    let sign_type: SignType = params
        .get_non_empty("sign_type")
        .ok_or(NotifyError::MissingParam { name: "sign_type" })?
        .parse()?;
    let content = params.sign_content(rule);
    verifier
        .verify_base64(sign_type, &params.charset().encode(&content), sign)
        .map_err(NotifyError::BadSignature)?;
    Ok(sign_type)
}

/// Explains the verdict of [`verify`] on a body under `rule`, for logs (with the
/// default [`FormLimits`]): the charset label, the body's `sign_type`, the exact sign
/// content (before charset encoding), the [`Verifier::key_fingerprint`], the error, and
/// on failure [`Hint`]s:
///
/// - [`Hint::EmptyInput`]: the body is empty or whitespace;
/// - [`Hint::LooksLikeJson`]: it starts (after whitespace) with `{` or `[`;
/// - [`Hint::LooksUrlDecoded`]: it has a byte the platform's form encoder always
///   escapes (space, `:`, `/`, `{`, `"`, non-ASCII …; trailing whitespace aside), or its
///   `sign` decodes with a space (a raw base64 `+`);
/// - [`Hint::VerifiesUnderV2`] / [`Hint::VerifiesUnderV1`]: none of the above, and the
///   signature verifies under the other rule.
///
/// At most one hint is given today. Only the signature is checked: a body that
/// verifies here can still be refused by [`verify`] when it lacks a field its type
/// requires. Costs one or two signature checks.
///
/// ```
/// use alipay_msg_core::key::PublicKey;
/// use alipay_msg_core::notify::{self, Hint};
/// use alipay_msg_core::sign_content::Rule;
/// use alipay_msg_core::signature::Verifier;
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");
/// let pem = std::fs::read_to_string(format!("{dir}/vectors/keys/alipay_public.pem"))?;
/// let verifier = Verifier::new(&PublicKey::from_pem_or_base64(&pem)?)?;
/// // A gateway message (signed under V2) checked under V1:
/// let body = std::fs::read(format!("{dir}/notify/gateway_message_rsa2_v2.txt"))?;
/// if let Err(e) = notify::verify(&body, &verifier, Rule::V1) {
///     let diagnosis = notify::diagnose(&body, &verifier, Rule::V1);
///     assert_eq!(diagnosis.hints, [Hint::VerifiesUnderV2]);
///     assert_eq!(diagnosis.key_fingerprint, "d0de861be430270f");
///     eprintln!("notification refused: {e}; {diagnosis}");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn diagnose(body: &[u8], verifier: &Verifier, rule: Rule) -> Diagnosis {
    diagnose_with(body, verifier, rule, &FormLimits::default())
}

/// [`diagnose`] with explicit limits.
pub fn diagnose_with(
    body: &[u8],
    verifier: &Verifier,
    rule: Rule,
    limits: &FormLimits,
) -> Diagnosis {
    diagnosis::diagnose(body, verifier, rule, limits)
}

/// The app's answer to a notification: the literal HTTP response body `success` or
/// `fail` (PROTOCOL §10), sent with status 200 and [`CONTENT_TYPE`](Self::CONTENT_TYPE).
///
/// Anything but `success` (including `fail`, an error status or a timeout) makes the
/// platform re-send the notification, with growing intervals, for about 25 hours. So
/// answer `success` only after the notification has been durably handled (stored or
/// acted on), and `fail` when it was rejected or could not be handled yet.
///
/// ```
/// use alipay_msg_core::notify::NotifyResponse;
/// assert_eq!(NotifyResponse::from_accepted(true).body(), "success");
/// assert_eq!(NotifyResponse::from_accepted(false).body(), "fail");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyResponse {
    /// `success`: accepted and durably handled; the platform stops re-sending.
    Success,
    /// `fail`: not accepted; the platform re-sends later.
    Fail,
}

impl NotifyResponse {
    /// The `Content-Type` to send with the body.
    pub const CONTENT_TYPE: &'static str = "text/plain; charset=utf-8";

    /// [`Success`](Self::Success) when `accepted`, else [`Fail`](Self::Fail).
    pub const fn from_accepted(accepted: bool) -> Self {
        if accepted {
            NotifyResponse::Success
        } else {
            NotifyResponse::Fail
        }
    }

    /// The response body: `success` or `fail`.
    pub const fn body(self) -> &'static str {
        match self {
            NotifyResponse::Success => "success",
            NotifyResponse::Fail => "fail",
        }
    }

    /// The response body as bytes.
    pub const fn as_bytes(self) -> &'static [u8] {
        self.body().as_bytes()
    }

    /// Whether this is [`Success`](Self::Success).
    pub const fn is_success(self) -> bool {
        matches!(self, NotifyResponse::Success)
    }
}

impl std::fmt::Display for NotifyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{PrivateKey, PublicKey};
    use crate::signature::Signer;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/keys");

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

    /// Signs `unsigned` (a form body) under `rule` and appends `&sign=`.
    fn signed(unsigned: &str, rule: Rule) -> String {
        let form = parse_form(unsigned.as_bytes()).unwrap();
        let content = form.charset().encode(&form.sign_content(rule)).into_owned();
        let sign = STANDARD.encode(platform_signer().sign(&content).unwrap());
        let sign: String = form_urlencoded::byte_serialize(sign.as_bytes()).collect();
        format!("{unsigned}&sign={sign}")
    }

    const TRADE: &str =
        "notify_type=trade_status_sync&notify_id=n1&notify_time=2026-11-20+10%3A21%3A35\
                         &app_id=2021000000000001&trade_no=t1&out_trade_no=o1\
                         &trade_status=TRADE_FINISHED&total_amount=1.00&sign_type=RSA2";

    #[test]
    fn trade_round_trip() {
        let body = signed(TRADE, Rule::V1);
        let n = verify(body.as_bytes(), &platform_verifier(), Rule::V1).unwrap();
        assert_eq!(n.notify_id(), Some("n1"));
        assert_eq!(n.app_id(), Some("2021000000000001"));
        assert_eq!(n.params().get("notify_time"), Some("2026-11-20 10:21:35"));
        match n {
            Notification::Trade(t) => {
                assert_eq!(t.trade_status, TradeStatus::Finished);
                assert_eq!(t.total_amount.as_deref(), Some("1.00"));
            }
            other => panic!("{other:?}"),
        }
        // Signed under V1, checked under V2: sign_type is then part of the content.
        let e = verify(body.as_bytes(), &platform_verifier(), Rule::V2).unwrap_err();
        assert!(e.is_signature_failure(), "{e}");
    }

    #[test]
    fn missing_sign_and_sign_type() {
        let v = platform_verifier();
        assert_eq!(
            verify(TRADE.as_bytes(), &v, Rule::V1).unwrap_err(),
            NotifyError::MissingParam { name: "sign" }
        );
        let e = verify(format!("{TRADE}&sign=").as_bytes(), &v, Rule::V1).unwrap_err();
        assert_eq!(e, NotifyError::MissingParam { name: "sign" });
        assert!(e.is_malformed());
        let body = signed(TRADE, Rule::V1).replace("&sign_type=RSA2", "");
        assert_eq!(
            verify(body.as_bytes(), &v, Rule::V1).unwrap_err(),
            NotifyError::MissingParam { name: "sign_type" }
        );
    }

    #[test]
    fn unknown_sign_type() {
        let body = signed(TRADE, Rule::V1).replace("sign_type=RSA2", "sign_type=SM2");
        let e = verify(body.as_bytes(), &platform_verifier(), Rule::V1).unwrap_err();
        assert!(matches!(e, NotifyError::UnknownSignType(_)), "{e:?}");
        assert!(e.is_malformed());
        // Names are case-sensitive.
        let body = signed(TRADE, Rule::V1).replace("sign_type=RSA2", "sign_type=rsa2");
        assert!(matches!(
            verify(body.as_bytes(), &platform_verifier(), Rule::V1),
            Err(NotifyError::UnknownSignType(_))
        ));
    }

    #[test]
    fn wrong_digest_and_not_base64() {
        let v = platform_verifier();
        // V1 leaves sign_type out of the content, so only the digest changes.
        let body = signed(TRADE, Rule::V1).replace("sign_type=RSA2", "sign_type=RSA");
        assert_eq!(
            verify(body.as_bytes(), &v, Rule::V1).unwrap_err(),
            NotifyError::BadSignature(SignatureError::Mismatch)
        );
        let e = verify(format!("{TRADE}&sign=%21%21").as_bytes(), &v, Rule::V1).unwrap_err();
        assert_eq!(e, NotifyError::BadSignature(SignatureError::NotBase64));
        assert!(e.is_signature_failure());
    }

    #[test]
    fn tampering_is_a_signature_failure() {
        let v = platform_verifier();
        let body = signed(TRADE, Rule::V1);
        for (from, to) in [
            ("total_amount=1.00", "total_amount=1.01"),
            ("&total_amount=1.00", ""),
            ("notify_id=n1", "notify_id=n1&extra=x"),
        ] {
            let e = verify(body.replace(from, to).as_bytes(), &v, Rule::V1).unwrap_err();
            assert!(e.is_signature_failure(), "{from} -> {to}: {e}");
        }
        // An added empty parameter is not part of the signed content.
        assert!(verify(format!("{body}&extra=").as_bytes(), &v, Rule::V1).is_ok());
    }

    #[test]
    fn gateway_and_other() {
        let v = platform_verifier();
        let body = signed(
            "msg_method=alipay.test&notify_id=g1&app_id=a&utc_timestamp=1&version=1.1\
             &biz_content=%7B%22x%22%3A1%7D&charset=UTF-8&sign_type=RSA2",
            Rule::V2,
        );
        match verify(body.as_bytes(), &v, Rule::V2).unwrap() {
            Notification::GatewayMessage(m) => {
                assert_eq!(m.msg_method, "alipay.test");
                assert_eq!(m.biz_content, serde_json::json!({"x": 1}));
                assert_eq!(m.utc_timestamp.as_deref(), Some("1"));
            }
            other => panic!("{other:?}"),
        }

        let body = signed(
            "msg_method=m&notify_id=g2&app_id=a&biz_content=nope&sign_type=RSA2",
            Rule::V1,
        );
        let e = verify(body.as_bytes(), &v, Rule::V1).unwrap_err();
        assert!(matches!(e, NotifyError::BizContentNotJson { .. }), "{e:?}");

        let body = signed(
            "notify_type=some_other_sync&notify_id=x1&sign_type=RSA2",
            Rule::V1,
        );
        let n = verify(body.as_bytes(), &v, Rule::V1).unwrap();
        assert_eq!(n.notify_id(), Some("x1"));
        assert_eq!(n.app_id(), None);
        match &n {
            Notification::Other(o) => assert_eq!(o.notify_type(), Some("some_other_sync")),
            other => panic!("{other:?}"),
        }
        assert_eq!(n.into_params().len(), 4);
    }

    #[test]
    fn trade_with_missing_field_is_malformed_after_verification() {
        let body = signed(&TRADE.replace("&trade_no=t1", ""), Rule::V1);
        let e = verify(body.as_bytes(), &platform_verifier(), Rule::V1).unwrap_err();
        assert_eq!(e, NotifyError::MissingParam { name: "trade_no" });
    }

    #[test]
    fn gbk_body_verifies_in_gbk() {
        let v = platform_verifier();
        let unsigned = "notify_type=trade_status_sync&notify_id=n1&notify_time=t&app_id=a\
                        &trade_no=t1&out_trade_no=o1&trade_status=TRADE_SUCCESS\
                        &subject=%B2%E2%CA%D4&charset=GBK&sign_type=RSA2";
        let form = parse_form(unsigned.as_bytes()).unwrap();
        assert_eq!(form.charset(), NotifyCharset::Gbk);
        let body = signed(unsigned, Rule::V1);
        match verify(body.as_bytes(), &v, Rule::V1).unwrap() {
            Notification::Trade(t) => assert_eq!(t.subject.as_deref(), Some("测试")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_do_not_leak_and_classify() {
        let e = NotifyError::BadSignature(SignatureError::Mismatch);
        assert!(e.to_string().contains("signature"));
        let e = NotifyError::DuplicateParam { key: "a".into() };
        assert!(e.is_malformed() && !e.is_signature_failure());
    }

    #[test]
    fn response_bodies() {
        assert_eq!(NotifyResponse::Success.to_string(), "success");
        assert_eq!(NotifyResponse::Fail.as_bytes(), b"fail");
        assert!(NotifyResponse::from_accepted(true).is_success());
        assert!(!NotifyResponse::Fail.is_success());
    }
}
