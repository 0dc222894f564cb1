//! The HTTP notifications the simulated platform sends (PROTOCOL §10): what to send
//! ([`PlatformNotification`], also the JSON body of `POST /admin/notify`) and the signed
//! form body built from it, exactly as the platform posts it.
//!
//! The body: every parameter `key=value`, joined with `&`, each value encoded in the
//! notification's charset and then form-encoded as Java's `URLEncoder` does
//! (`A–Z a–z 0–9 . - * _` kept, a space as `+`, every other byte as `%XY`; the
//! encoding of `testdata/notify/`), `sign` last. The signature is the platform key's,
//! with the notification's `sign_type`, over the sign content of the parameters under the
//! notification's rule ([`alipay_msg_core::sign_content`]: V1 leaves out `sign` and
//! `sign_type`, V2 only `sign`) encoded in the charset as Java's `String.getBytes` does
//! ([`NotifyCharset::encode`]), standard base64 — what the Java SDK's
//! `AlipaySignature.rsaCheckV1/V2` verifies.

use alipay_msg_core::notify::{NotifyCharset, UnknownNotifyCharset};
use alipay_msg_core::sign_content::{sign_content, Rule};
use alipay_msg_core::signature::{SignType, SignatureError, Signer, UnknownSignType};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// Parameters of a payment notification the request may not set in `payment`: each has
/// a field of its own in [`PlatformNotification`], or is the signature.
const RESERVED_PAYMENT_FIELDS: &[&str] = &[
    "notify_id",
    "notify_type",
    "app_id",
    "charset",
    "sign",
    "sign_type",
    "alipay_cert_sn",
];

/// What a notification carries (PROTOCOL §10).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotificationContent {
    /// A payment notification, `notify_type=trade_status_sync`. The pairs are
    /// parameters that replace the simulator's defaults or add to them (`out_trade_no`,
    /// `trade_no`, `trade_status`, `total_amount`, `subject`, `buyer_id`, …); the
    /// defaults: `out_trade_no` and `trade_no` generated, `trade_status=TRADE_SUCCESS`,
    /// `total_amount=88.88`, `notify_time`/`gmt_create` now (China Standard Time),
    /// `gmt_payment` now for a paid status, `version=1.0`.
    Payment(Vec<(String, String)>),
    /// A gateway message: `msg_method` and `biz_content` (the exact text of a JSON
    /// object), with `utc_timestamp` now and `version=1.1`.
    GatewayMessage {
        /// The message type, e.g. `alipay.open.mini.merchant.confirmed`.
        msg_method: String,
        /// The business content: the exact text of one JSON object.
        biz_content: String,
    },
}

/// One HTTP notification for the simulated platform to sign and send to `url`, and to
/// send again until it is answered `success` ([`crate::Simulator::notify`], `POST
/// /admin/notify`).
///
/// ```
/// use alipay_msg_simulator::PlatformNotification;
/// let n = PlatformNotification::from_json(
///     r#"{"url":"http://127.0.0.1:8080/notify","payment":{"out_trade_no":"o1","total_amount":"9.99"},"charset":"GBK"}"#,
/// ).unwrap();
/// assert_eq!(n.charset.as_deref(), Some("GBK"));
/// let n = PlatformNotification::payment("http://127.0.0.1:8080/notify")
///     .with_field("out_trade_no", "o1");
/// assert!(!n.forged);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlatformNotification {
    /// Where to POST it: `http://host[:port][/path][?query]` (plain HTTP only; the
    /// simulator has no TLS client).
    pub url: String,
    /// Payment notification or gateway message.
    pub content: NotificationContent,
    /// The sign-content rule (default [`Rule::V1`], the rule of payment notifications).
    pub rule: Rule,
    /// The `charset` parameter, as written in the body (`UTF-8`, `gbk`, `GB2312`,
    /// `gb18030`, any letter case; see [`NotifyCharset`]). `None`: `utf-8` for a payment
    /// notification, `UTF-8` for a gateway message (as in `testdata/notify/`).
    pub charset: Option<String>,
    /// The `sign_type`: `RSA2` (default, SHA256withRSA) or `RSA` (SHA1withRSA).
    pub sign_type: SignType,
    /// Certificate mode: the body carries `alipay_cert_sn`, the SN of the simulator's
    /// platform certificate ([`crate::SimulatorOptions::platform_cert_sn`]), covered by
    /// the signature.
    pub certificate: bool,
    /// The `app_id`; `None`: the simulator's app.
    pub app_id: Option<String>,
    /// The `notify_id`; `None`: a new one, unique to this simulator run (34 digits, the
    /// date first, like the platform's). Retries keep it, as the platform's do.
    pub notify_id: Option<String>,
    /// A forgery: signed by the platform key over other content (the parameters plus
    /// `forged=1`), so its signature is well formed and does not verify. Sent once, not
    /// retried (a forger does not follow the platform's schedule).
    pub forged: bool,
}

impl PlatformNotification {
    /// A payment notification to `url` with the defaults of
    /// [`NotificationContent::Payment`], rule V1, `sign_type=RSA2`, public-key mode.
    pub fn payment(url: impl Into<String>) -> Self {
        Self::new(url.into(), NotificationContent::Payment(Vec::new()))
    }

    /// A gateway message to `url`: `biz_content` is the text of one JSON object.
    pub fn gateway_message(
        url: impl Into<String>,
        msg_method: impl Into<String>,
        biz_content: impl Into<String>,
    ) -> Self {
        Self::new(
            url.into(),
            NotificationContent::GatewayMessage {
                msg_method: msg_method.into(),
                biz_content: biz_content.into(),
            },
        )
    }

    fn new(url: String, content: NotificationContent) -> Self {
        PlatformNotification {
            url,
            content,
            rule: Rule::V1,
            charset: None,
            sign_type: SignType::Rsa2,
            certificate: false,
            app_id: None,
            notify_id: None,
            forged: false,
        }
    }

    /// A payment notification with parameter `key` set to `value` (replacing the
    /// default or a value set before); no effect on a gateway message.
    pub fn with_field(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        if let NotificationContent::Payment(fields) = &mut self.content {
            let (key, value) = (key.into(), value.into());
            match fields.iter_mut().find(|(k, _)| *k == key) {
                Some(field) => field.1 = value,
                None => fields.push((key, value)),
            }
        }
        self
    }

    /// Reads the JSON body of `POST /admin/notify`:
    ///
    /// ```json
    /// {"url": "http://127.0.0.1:8080/notify",
    ///  "payment": {"out_trade_no": "…", "trade_status": "TRADE_SUCCESS", "total_amount": "88.88", …},
    ///  "rule": "V1", "charset": "UTF-8", "sign_type": "RSA2", "certificate": false,
    ///  "app_id": "…", "notify_id": "…", "forged": false}
    /// ```
    ///
    /// with exactly one of `payment` (an object of string values: parameters, see
    /// [`NotificationContent::Payment`]) and `gateway_message`
    /// (`{"msg_method": "…", "biz_content": {…}}`); every other field is optional, with
    /// the defaults of [`PlatformNotification`]. Unknown fields are refused.
    pub fn from_json(text: &str) -> Result<Self, NotificationError> {
        let json: Json<'_> = serde_json::from_str(text).map_err(NotificationError::Json)?;
        let content = match (json.payment, json.gateway_message) {
            (Some(fields), None) => {
                let mut pairs = Vec::with_capacity(fields.len());
                for (key, value) in fields {
                    match value {
                        Value::String(value) => pairs.push((key, value)),
                        _ => return Err(NotificationError::NotAString { field: key }),
                    }
                }
                NotificationContent::Payment(pairs)
            }
            (None, Some(message)) => NotificationContent::GatewayMessage {
                msg_method: message.msg_method,
                biz_content: message.biz_content.get().to_owned(),
            },
            _ => return Err(NotificationError::Content),
        };
        let rule = match json.rule.as_deref() {
            None => Rule::V1,
            Some(r) if r.eq_ignore_ascii_case("V1") => Rule::V1,
            Some(r) if r.eq_ignore_ascii_case("V2") => Rule::V2,
            Some(other) => {
                return Err(NotificationError::UnknownRule {
                    name: other.chars().take(64).collect(),
                })
            }
        };
        let sign_type = match json.sign_type.as_deref() {
            None => SignType::Rsa2,
            Some(name) => name.parse()?,
        };
        let notification = PlatformNotification {
            url: json.url,
            content,
            rule,
            charset: json.charset,
            sign_type,
            certificate: json.certificate,
            app_id: json.app_id,
            notify_id: json.notify_id,
            forged: json.forged,
        };
        notification.check()?;
        Ok(notification)
    }

    /// What can be checked before signing: the charset label, the payment fields, the
    /// gateway message's `biz_content`.
    pub(crate) fn check(&self) -> Result<(), NotificationError> {
        self.notify_charset()?;
        match &self.content {
            NotificationContent::Payment(fields) => {
                if let Some((key, _)) = fields
                    .iter()
                    .find(|(k, _)| RESERVED_PAYMENT_FIELDS.contains(&k.as_str()))
                {
                    return Err(NotificationError::ReservedField { field: key.clone() });
                }
                if fields.iter().any(|(k, _)| k.is_empty()) {
                    return Err(NotificationError::EmptyFieldName);
                }
            }
            NotificationContent::GatewayMessage { biz_content, .. } => {
                let object =
                    serde_json::from_str::<Value>(biz_content).is_ok_and(|value| value.is_object());
                if !object {
                    return Err(NotificationError::BizContentNotObject);
                }
            }
        }
        Ok(())
    }

    fn notify_charset(&self) -> Result<NotifyCharset, NotificationError> {
        match &self.charset {
            None => Ok(NotifyCharset::Utf8),
            Some(label) => Ok(label.parse()?),
        }
    }

    /// The `charset` label written in the body.
    fn charset_label(&self) -> &str {
        match (&self.charset, &self.content) {
            (Some(label), _) => label,
            (None, NotificationContent::Payment(_)) => "utf-8",
            (None, NotificationContent::GatewayMessage { .. }) => "UTF-8",
        }
    }

    /// The parameters in body order, `sign` not yet added.
    fn params(&self, defaults: &Defaults<'_>, cert_sn: Option<&str>) -> Vec<(String, String)> {
        let mut params: Vec<(String, String)> = Vec::new();
        let mut set = |key: &str, value: &str| match params.iter_mut().find(|(k, _)| k == key) {
            Some(param) => param.1 = value.to_owned(),
            None => params.push((key.to_owned(), value.to_owned())),
        };
        let app_id = self.app_id.as_deref().unwrap_or(defaults.app_id);
        let sign_type = self.sign_type.to_string();
        match &self.content {
            NotificationContent::Payment(fields) => {
                let given = |key: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, v)| v.as_str())
                };
                let time = defaults.china_time.as_str();
                set("gmt_create", time);
                set("charset", self.charset_label());
                set("notify_id", defaults.notify_id);
                set("notify_type", "trade_status_sync");
                let status = given("trade_status").unwrap_or("TRADE_SUCCESS");
                set("trade_status", status);
                set("app_id", app_id);
                set("sign_type", &sign_type);
                set("notify_time", time);
                set("version", "1.0");
                set("out_trade_no", defaults.out_trade_no);
                set("total_amount", "88.88");
                set("trade_no", defaults.trade_no);
                if matches!(status, "TRADE_SUCCESS" | "TRADE_FINISHED") {
                    set("gmt_payment", time);
                }
                for (key, value) in fields {
                    set(key, value);
                }
            }
            NotificationContent::GatewayMessage {
                msg_method,
                biz_content,
            } => {
                set("charset", self.charset_label());
                set("biz_content", biz_content);
                set("msg_method", msg_method);
                set("utc_timestamp", &defaults.unix_ms.to_string());
                set("version", "1.1");
                set("sign_type", &sign_type);
                set("notify_id", defaults.notify_id);
                set("app_id", app_id);
            }
        }
        if let Some(sn) = cert_sn {
            set("alipay_cert_sn", sn);
        }
        params
    }

    /// Signs the notification with `signer` (the platform key, for
    /// [`sign_type`](Self::sign_type)) and writes the body. `cert_sn`: the platform
    /// certificate's SN, required in certificate mode.
    pub(crate) fn build(
        &self,
        signer: &Signer,
        cert_sn: Option<&str>,
        defaults: &Defaults<'_>,
    ) -> Result<BuiltNotification, NotificationError> {
        self.check()?;
        let charset = self.notify_charset()?;
        let cert_sn = match (self.certificate, cert_sn) {
            (false, _) => None,
            (true, Some(sn)) => Some(sn),
            (true, None) => return Err(NotificationError::NoPlatformCertificate),
        };
        let mut params = self.params(defaults, cert_sn);
        let signed_params = || params.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let content = if self.forged {
            sign_content(signed_params().chain([("forged", "1")]), self.rule)
        } else {
            sign_content(signed_params(), self.rule)
        };
        let sign = STANDARD.encode(signer.sign(&charset.encode(&content))?);
        params.push(("sign".to_owned(), sign));
        let mut body = Vec::new();
        for (i, (key, value)) in params.iter().enumerate() {
            if i > 0 {
                body.push(b'&');
            }
            body.extend(form_urlencoded::byte_serialize(&charset.encode(key)).flat_map(str::bytes));
            body.push(b'=');
            body.extend(
                form_urlencoded::byte_serialize(&charset.encode(value)).flat_map(str::bytes),
            );
        }
        let notify_id = defaults.notify_id.to_owned();
        Ok(BuiltNotification {
            summary: self.summary(&params),
            content_type: format!(
                "application/x-www-form-urlencoded; charset={}",
                self.charset_label()
            ),
            notify_id,
            body,
        })
    }

    /// One line saying what it is: `payment TRADE_SUCCESS out_trade_no=… total_amount=…`
    /// or `gateway message <msg_method>`, with the rule, charset and sign type.
    fn summary(&self, params: &[(String, String)]) -> String {
        let get = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map_or("", |(_, v)| v.as_str())
        };
        let what = match &self.content {
            NotificationContent::Payment(_) => format!(
                "payment {} out_trade_no={} total_amount={}",
                get("trade_status"),
                get("out_trade_no"),
                get("total_amount")
            ),
            NotificationContent::GatewayMessage { msg_method, .. } => {
                format!("gateway message {msg_method}")
            }
        };
        let mode = if self.certificate {
            ", certificate mode"
        } else {
            ""
        };
        format!(
            "{what} ({}, {}, {}{mode})",
            self.rule,
            self.charset_label(),
            self.sign_type
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Json<'a> {
    url: String,
    #[serde(default)]
    payment: Option<serde_json::Map<String, Value>>,
    #[serde(default, borrow)]
    gateway_message: Option<GatewayJson<'a>>,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    charset: Option<String>,
    #[serde(default)]
    sign_type: Option<String>,
    #[serde(default)]
    certificate: bool,
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    notify_id: Option<String>,
    #[serde(default)]
    forged: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GatewayJson<'a> {
    msg_method: String,
    #[serde(borrow)]
    biz_content: &'a RawValue,
}

/// What the simulator fills in when the notification does not say.
pub(crate) struct Defaults<'a> {
    /// The simulator's app.
    pub(crate) app_id: &'a str,
    /// The notification's `notify_id` (its own, or a new one).
    pub(crate) notify_id: &'a str,
    pub(crate) out_trade_no: &'a str,
    pub(crate) trade_no: &'a str,
    /// Now, milliseconds since the Unix epoch (`utc_timestamp`).
    pub(crate) unix_ms: i64,
    /// Now as `yyyy-MM-dd HH:mm:ss`, China Standard Time (`notify_time`).
    pub(crate) china_time: String,
}

/// A signed notification, ready to POST.
#[derive(Debug, Clone)]
pub(crate) struct BuiltNotification {
    pub(crate) notify_id: String,
    /// The raw form body.
    pub(crate) body: Vec<u8>,
    /// `application/x-www-form-urlencoded; charset=<label>`.
    pub(crate) content_type: String,
    /// What it is, for the simulator's events.
    pub(crate) summary: String,
}

/// Why a notification could not be sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotificationError {
    /// The `POST /admin/notify` body is not JSON of the expected shape.
    #[error("expected {{\"url\": \"http://…\", \"payment\": {{…}} or \"gateway_message\": {{\"msg_method\": \"…\", \"biz_content\": {{…}}}}, …}}: {0}")]
    Json(#[source] serde_json::Error),
    /// Neither or both of `payment` and `gateway_message`.
    #[error("give exactly one of \"payment\" and \"gateway_message\"")]
    Content,
    /// A `payment` field is not a JSON string.
    #[error("payment field {field:?} must be a string")]
    NotAString {
        /// The field.
        field: String,
    },
    /// A `payment` field that has a setting of its own (`notify_id`, `app_id`,
    /// `charset`, `sign_type`, …) or is the signature.
    #[error("payment field {field:?} cannot be set there: use the notification's own setting (notify_id, app_id, charset, sign_type, certificate)")]
    ReservedField {
        /// The field.
        field: String,
    },
    /// A `payment` field with an empty name.
    #[error("payment field with an empty name")]
    EmptyFieldName,
    /// The gateway message's `biz_content` is not a JSON object.
    #[error("biz_content must be a JSON object")]
    BizContentNotObject,
    /// `rule` is neither `V1` nor `V2`.
    #[error("unknown rule {name:?}: V1 or V2")]
    UnknownRule {
        /// The value given (at most 64 characters).
        name: String,
    },
    /// `charset` is not UTF-8, GBK, GB2312 or GB18030.
    #[error(transparent)]
    UnknownCharset(#[from] UnknownNotifyCharset),
    /// `sign_type` is neither `RSA2` nor `RSA`.
    #[error(transparent)]
    UnknownSignType(#[from] UnknownSignType),
    /// The URL is not `http://host[:port]/…`.
    #[error("url {url:?}: {reason}")]
    Url {
        /// The URL (at most 200 characters).
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Certificate mode, but the simulator has no platform certificate SN
    /// ([`crate::SimulatorOptions::platform_cert_sn`], `simulate --platform-cert`).
    #[error("certificate mode needs the platform certificate: start the simulator with its SN (simulate --platform-cert FILE)")]
    NoPlatformCertificate,
    /// The platform key could not sign.
    #[error("signing failed: {0}")]
    Sign(#[from] SignatureError),
    /// As many notifications as allowed are being sent already
    /// ([`crate::NotifyOptions::max_pending`]).
    #[error("{limit} notifications are pending already")]
    TooManyPending {
        /// The limit.
        limit: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use alipay_msg_core::cert::{platform_cert, platform_cert_sn, Certificate};
    use alipay_msg_core::key::{PrivateKey, PublicKey};
    use alipay_msg_core::notify::{self, Notification, NotifyError};
    use alipay_msg_core::signature::Verifier;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

    fn signer(sign_type: SignType) -> Signer {
        let key = PrivateKey::from_pem_or_base64(crate::test_keys::PLATFORM_PRIVATE_KEY);
        Signer::new(&key.unwrap(), sign_type).unwrap()
    }

    fn verifier() -> Verifier {
        let key = PublicKey::from_pem_or_base64(crate::test_keys::PLATFORM_PUBLIC_KEY);
        Verifier::new(&key.unwrap()).unwrap()
    }

    fn defaults() -> Defaults<'static> {
        Defaults {
            app_id: "2021000000000001",
            notify_id: "2026112000000000000000000000000001",
            out_trade_no: "SIM20261120000001",
            trade_no: "2026112022000000000000000001",
            unix_ms: 1_795_400_000_000,
            china_time: "2026-11-20 10:21:35".to_owned(),
        }
    }

    fn build(n: &PlatformNotification) -> BuiltNotification {
        n.build(&signer(n.sign_type), None, &defaults()).unwrap()
    }

    #[test]
    fn payment_defaults_verify_under_v1_only() {
        let n = PlatformNotification::payment("http://x/notify");
        let built = build(&n);
        let text = String::from_utf8(built.body.clone()).unwrap();
        assert!(
            text.starts_with("gmt_create=2026-11-20+10%3A21%3A35&charset=utf-8&notify_id=2026112000000000000000000000000001&notify_type=trade_status_sync&trade_status=TRADE_SUCCESS&app_id=2021000000000001&sign_type=RSA2&"),
            "{text}"
        );
        assert!(text.contains("&sign="), "{text}");
        assert_eq!(
            built.content_type,
            "application/x-www-form-urlencoded; charset=utf-8"
        );
        match notify::verify(&built.body, &verifier(), Rule::V1).unwrap() {
            Notification::Trade(trade) => {
                assert_eq!(trade.out_trade_no, "SIM20261120000001");
                assert_eq!(trade.total_amount.as_deref(), Some("88.88"));
                assert_eq!(trade.gmt_payment.as_deref(), Some("2026-11-20 10:21:35"));
            }
            other => panic!("{other:?}"),
        }
        let e = notify::verify(&built.body, &verifier(), Rule::V2).unwrap_err();
        assert!(e.is_signature_failure(), "{e}");
        assert_eq!(
            built.summary,
            "payment TRADE_SUCCESS out_trade_no=SIM20261120000001 total_amount=88.88 (V1, utf-8, RSA2)"
        );
    }

    #[test]
    fn fields_replace_defaults_and_add_parameters() {
        let n = PlatformNotification::payment("http://x/")
            .with_field("trade_status", "WAIT_BUYER_PAY")
            .with_field("total_amount", "1.00")
            .with_field("subject", "a b+c/测试")
            .with_field("total_amount", "2.00");
        let built = build(&n);
        let form = notify::parse_form(&built.body).unwrap();
        assert_eq!(form.get("total_amount"), Some("2.00"));
        assert_eq!(form.get("subject"), Some("a b+c/测试"));
        assert_eq!(form.get("gmt_payment"), None);
        let text = String::from_utf8(built.body).unwrap();
        assert!(
            text.contains("subject=a+b%2Bc%2F%E6%B5%8B%E8%AF%95"),
            "{text}"
        );
    }

    #[test]
    fn gbk_v2_rsa_gateway_message() {
        let mut n = PlatformNotification::gateway_message(
            "http://x/",
            "alipay.open.mini.merchant.confirmed",
            r#"{"name":"测试"}"#,
        );
        n.rule = Rule::V2;
        n.charset = Some("gbk".to_owned());
        n.sign_type = SignType::Rsa;
        let built = build(&n);
        let text = String::from_utf8(built.body.clone()).unwrap();
        // GBK bytes of 测试, percent-encoded.
        assert!(text.contains("%B2%E2%CA%D4"), "{text}");
        assert!(text.contains("&sign_type=RSA&"), "{text}");
        match notify::verify(&built.body, &verifier(), Rule::V2).unwrap() {
            Notification::GatewayMessage(m) => {
                assert_eq!(m.biz_content["name"], "测试");
                assert_eq!(m.utc_timestamp.as_deref(), Some("1795400000000"));
                assert_eq!(m.version.as_deref(), Some("1.1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(notify::verify(&built.body, &verifier(), Rule::V1).is_err());
        assert_eq!(
            built.content_type,
            "application/x-www-form-urlencoded; charset=gbk"
        );
    }

    #[test]
    fn every_charset_label_round_trips() {
        for label in ["UTF-8", "utf-8", "GBK", "gb2312", "GB18030"] {
            let mut n =
                PlatformNotification::payment("http://x/").with_field("subject", "测试订单");
            n.charset = Some(label.to_owned());
            let built = build(&n);
            let form = notify::parse_form(&built.body).unwrap();
            assert_eq!(form.charset_label(), label);
            assert_eq!(form.get("subject"), Some("测试订单"), "{label}");
            notify::verify(&built.body, &verifier(), Rule::V1).unwrap();
        }
    }

    #[test]
    fn certificate_mode_carries_the_platform_cert_sn() {
        let pem = std::fs::read_to_string(format!("{DIR}/certs/alipay_cert.crt")).unwrap();
        let chain = Certificate::all_from_pem(&pem).unwrap();
        let sn = platform_cert_sn(&chain).unwrap();
        let key = platform_cert(&chain)
            .and_then(Certificate::public_key)
            .unwrap();
        let mut n = PlatformNotification::payment("http://x/");
        n.certificate = true;
        assert!(matches!(
            n.build(&signer(SignType::Rsa2), None, &defaults()),
            Err(NotificationError::NoPlatformCertificate)
        ));
        let built = n
            .build(&signer(SignType::Rsa2), Some(&sn), &defaults())
            .unwrap();
        let verified = notify::verify(&built.body, &Verifier::new(&key).unwrap(), Rule::V1);
        assert_eq!(verified.unwrap().params().get("alipay_cert_sn"), Some(&*sn));
        assert!(
            built.summary.ends_with("certificate mode)"),
            "{}",
            built.summary
        );
    }

    #[test]
    fn a_forgery_is_well_formed_and_does_not_verify() {
        let mut n = PlatformNotification::payment("http://x/");
        n.forged = true;
        let built = build(&n);
        assert!(matches!(
            notify::verify(&built.body, &verifier(), Rule::V1),
            Err(NotifyError::BadSignature(_))
        ));
    }

    #[test]
    fn json_requests() {
        let n = PlatformNotification::from_json(
            r#"{"url":"http://127.0.0.1:1/n","gateway_message":{"msg_method":"a.b","biz_content":{"z": 1,"a":"x"}},"rule":"v2","sign_type":"RSA","certificate":true,"app_id":"9","notify_id":"n1","forged":true}"#,
        )
        .unwrap();
        assert_eq!(
            n.content,
            NotificationContent::GatewayMessage {
                msg_method: "a.b".into(),
                biz_content: r#"{"z": 1,"a":"x"}"#.into()
            }
        );
        assert_eq!(
            (n.rule, n.sign_type, n.certificate, n.forged),
            (Rule::V2, SignType::Rsa, true, true)
        );
        assert_eq!(
            (n.app_id.as_deref(), n.notify_id.as_deref()),
            (Some("9"), Some("n1"))
        );

        for (body, expected) in [
            (r#"{"url":"u"}"#, "exactly one"),
            (
                r#"{"url":"u","payment":{},"gateway_message":{"msg_method":"m","biz_content":{}}}"#,
                "exactly one",
            ),
            (
                r#"{"url":"u","payment":{"total_amount":1}}"#,
                "must be a string",
            ),
            (
                r#"{"url":"u","payment":{"notify_id":"x"}}"#,
                "cannot be set",
            ),
            (r#"{"url":"u","payment":{"":"x"}}"#, "empty name"),
            (r#"{"url":"u","payment":{},"rule":"V3"}"#, "unknown rule"),
            (r#"{"url":"u","payment":{},"charset":"latin1"}"#, "latin1"),
            (r#"{"url":"u","payment":{},"sign_type":"rsa2"}"#, "rsa2"),
            (r#"{"url":"u","payment":{},"bogus":1}"#, "bogus"),
            (
                r#"{"url":"u","gateway_message":{"msg_method":"m","biz_content":[1]}}"#,
                "JSON object",
            ),
        ] {
            let e = PlatformNotification::from_json(body)
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "{body}: {e}");
        }
    }
}
