//! `register.do` and the websocket upgrade: the signed parameter sets, the request, and
//! the platform's signed answer (PROTOCOL §1–3).

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::charset::Charset;
use crate::endpoint::Endpoint;
use crate::http::{self, HttpResponse};
use crate::sign_content::{sign_content, Rule};
use crate::signature::{SignatureError, Signer, Verifier};

/// `sdk_version` this library sends.
pub const SDK_VERSION: &str = concat!("alipay-msg-rust-", env!("CARGO_PKG_VERSION"));

/// The two SNs sent in certificate mode (PROTOCOL §9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSns {
    /// SN of the app public-key certificate.
    pub app_cert_sn: String,
    /// SN of the platform root certificate bundle.
    pub alipay_root_cert_sn: String,
}

/// A parameter set signed with the app key under the V2 rule (PROTOCOL §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedParams {
    params: Vec<(&'static str, String)>,
    sign: String,
}

impl SignedParams {
    /// Signs `params`: sign content by [`Rule::V2`], encoded in `charset`.
    pub fn sign(
        params: Vec<(&'static str, String)>,
        charset: Charset,
        signer: &Signer,
    ) -> Result<Self, SignatureError> {
        let sign = signer.sign_text(&Self::content_of(&params), charset)?;
        Ok(SignedParams { params, sign })
    }

    fn content_of(params: &[(&'static str, String)]) -> String {
        sign_content(params.iter().map(|(k, v)| (*k, v.as_str())), Rule::V2)
    }

    /// The signed content: `k=v` pairs, sorted, empty values skipped, joined by `&`.
    pub fn sign_content(&self) -> String {
        Self::content_of(&self.params)
    }

    /// The `sign` value (standard base64).
    pub fn sign_value(&self) -> &str {
        &self.sign
    }

    /// A parameter's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The query string: every parameter and then `sign`, values URL-encoded in
    /// `charset` (`application/x-www-form-urlencoded` rules, as Java's `URLEncoder`).
    pub fn query(&self, charset: Charset) -> String {
        let mut out = String::with_capacity(self.sign.len() * 2 + 256);
        let pairs = self
            .params
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .filter(|(_, v)| !v.is_empty())
            .chain(std::iter::once(("sign", self.sign.as_str())));
        for (i, (k, v)) in pairs.enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(k);
            out.push('=');
            out.extend(form_urlencoded::byte_serialize(&charset.encode(v)));
        }
        out
    }
}

/// The parameters of one `register.do` call (PROTOCOL §2).
#[derive(Debug, Clone)]
pub struct RegisterParams<'a> {
    /// The app id.
    pub app_id: &'a str,
    /// Charset of signed content and the query.
    pub charset: Charset,
    /// Milliseconds since the epoch; the platform rejects more than 10 minutes off.
    pub timestamp_ms: i64,
    /// 32 random hex characters.
    pub nonce: &'a str,
    /// Certificate mode SNs.
    pub cert_sns: Option<&'a CertSns>,
}

impl RegisterParams<'_> {
    /// Signs the parameters with the app key (its sign type becomes `sign_type`).
    pub fn sign(&self, signer: &Signer) -> Result<SignedParams, SignatureError> {
        let mut params = vec![
            ("app_id", self.app_id.to_owned()),
            ("charset", self.charset.as_str().to_owned()),
            ("sign_type", signer.sign_type().as_str().to_owned()),
            ("timestamp", self.timestamp_ms.to_string()),
            ("sdk_version", SDK_VERSION.to_owned()),
            ("nonce", self.nonce.to_owned()),
        ];
        push_cert_sns(&mut params, self.cert_sns);
        SignedParams::sign(params, self.charset, signer)
    }
}

/// The parameters of the websocket upgrade (PROTOCOL §2).
#[derive(Debug, Clone)]
pub struct UpgradeParams<'a> {
    /// The app id.
    pub app_id: &'a str,
    /// Charset of signed content and the query.
    pub charset: Charset,
    /// `link_token` from the register answer.
    pub link_token: &'a str,
    /// Milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// Certificate mode SNs.
    pub cert_sns: Option<&'a CertSns>,
}

impl UpgradeParams<'_> {
    /// Signs the parameters with the app key.
    pub fn sign(&self, signer: &Signer) -> Result<SignedParams, SignatureError> {
        let mut params = vec![
            ("app_id", self.app_id.to_owned()),
            ("charset", self.charset.as_str().to_owned()),
            ("link_token", self.link_token.to_owned()),
            ("timestamp", self.timestamp_ms.to_string()),
            ("sign_type", signer.sign_type().as_str().to_owned()),
            ("sdk_version", SDK_VERSION.to_owned()),
        ];
        push_cert_sns(&mut params, self.cert_sns);
        SignedParams::sign(params, self.charset, signer)
    }
}

fn push_cert_sns(params: &mut Vec<(&'static str, String)>, sns: Option<&CertSns>) {
    if let Some(sns) = sns {
        params.push(("app_cert_sn", sns.app_cert_sn.clone()));
        params.push(("alipay_root_cert_sn", sns.alipay_root_cert_sn.clone()));
    }
}

/// The HTTP/1.1 bytes of `GET /websocket/register.do?<query>`, with
/// `Content-Type: application/x-www-form-urlencoded;charset=<charset>` as the platform's
/// Java client sends it (PROTOCOL §1–2).
pub fn register_request(endpoint: &Endpoint, params: &SignedParams, charset: Charset) -> Vec<u8> {
    let content_type = form_content_type(charset);
    http::get_request(
        &endpoint.authority(),
        &format!("/websocket/register.do?{}", params.query(charset)),
        SDK_VERSION,
        &[("Content-Type", &content_type)],
    )
}

/// `application/x-www-form-urlencoded;charset=<charset>`: the `Content-Type` the
/// platform's Java client sends on `register.do` and on the websocket upgrade.
pub fn form_content_type(charset: Charset) -> String {
    format!(
        "application/x-www-form-urlencoded;charset={}",
        charset.as_str()
    )
}

/// What the adapter needs to open the websocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsConnect {
    /// `ws(s)://HOST/websocket?<signed params>`.
    pub url: String,
    /// Extra request headers: `cookie: zone=Z;` when the register answer set a zone.
    pub headers: Vec<(String, String)>,
}

impl WsConnect {
    /// The upgrade request for `params`, with the zone cookie when there is one
    /// (PROTOCOL §1, §3).
    pub fn new(
        endpoint: &Endpoint,
        params: &SignedParams,
        charset: Charset,
        zone: Option<&str>,
    ) -> Self {
        let mut headers = Vec::new();
        if let Some(zone) = zone.filter(|z| !z.is_empty()) {
            headers.push(("cookie".to_owned(), format!("zone={zone};")));
        }
        WsConnect {
            url: format!("{}?{}", endpoint.websocket_url(), params.query(charset)),
            headers,
        }
    }
}

/// A successful register answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterAnswer {
    /// The single-use token for the websocket upgrade.
    pub link_token: String,
    /// `zone` from a `Set-Cookie` header, to send back on the upgrade.
    pub zone: Option<String>,
}

/// Why registration did not give a link token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The HTTP answer could not be read.
    #[error("register.do: {0}")]
    Http(#[from] http::HttpError),
    /// A non-200 status without a platform answer in the body.
    #[error("register.do answered HTTP {status}")]
    Status {
        /// The status code.
        status: u16,
    },
    /// The body is not the expected JSON.
    #[error("register.do answer is not valid: {reason}")]
    Malformed {
        /// What was wrong.
        reason: String,
    },
    /// The platform refused the registration (code not 10000 / 100000000). For
    /// `isv.invalid-signature` (the platform could not verify this client's request)
    /// the message asks whether the app public key uploaded in the console is the pair
    /// of the configured app private key.
    #[error("register.do refused: code {code} {msg}{}{}{}", sub_code.as_deref().map(|s| format!(", sub_code {s}")).unwrap_or_default(), sub_msg.as_deref().map(|s| format!(" ({s})")).unwrap_or_default(), refusal_hint(sub_code.as_deref()))]
    Refused {
        /// `code`.
        code: String,
        /// `msg`.
        msg: String,
        /// `sub_code`, e.g. `isv.invalid-signature`.
        sub_code: Option<String>,
        /// `sub_msg`.
        sub_msg: Option<String>,
        /// Whether the refusal itself carried a valid platform signature.
        signature_verified: bool,
    },
    /// A success answer without a signature.
    #[error("register.do answered success without a signature; refusing it")]
    Unsigned,
    /// The answer's signature does not verify with the configured platform public key:
    /// this client refused the platform's answer (the platform did not refuse anything).
    /// The usual cause is the app public key configured where the platform public key
    /// belongs; the message says so, naming the setting.
    #[error("this client refused the platform's register.do answer: its signature does not verify with the configured platform public key ({0}); is alipay_public_key / alipay_public_key_file the platform public key from the console, not the app public key?")]
    BadSignature(SignatureError),
    /// `alipay_cert_sn` is not the SN of the configured platform certificate.
    #[error("register.do answer names platform certificate {received:?}, but the configured one is {expected:?}")]
    CertSnMismatch {
        /// The configured SN.
        expected: String,
        /// The SN in the answer.
        received: String,
    },
}

/// The likely cause of a refusal, for its message: `isv.invalid-signature` means the
/// platform could not verify the request with the app public key it has.
fn refusal_hint(sub_code: Option<&str>) -> &'static str {
    match sub_code {
        Some("isv.invalid-signature") => "; the platform could not verify this client's signature: is the app public key uploaded in the console the pair of app_private_key_file / app_private_key (in certificate mode, the app certificate's key)?",
        _ => "",
    }
}

impl RegisterError {
    /// Whether the platform refused the registration ([`Refused`](Self::Refused)).
    /// `false` when this client refused the platform's answer
    /// ([`Unsigned`](Self::Unsigned), [`BadSignature`](Self::BadSignature),
    /// [`CertSnMismatch`](Self::CertSnMismatch), [`Malformed`](Self::Malformed)) or the
    /// exchange failed ([`Http`](Self::Http), [`Status`](Self::Status)).
    pub fn is_platform_refusal(&self) -> bool {
        matches!(self, RegisterError::Refused { .. })
    }

    /// Retrying later may help: network-level and 5xx problems, the platform's
    /// "service unavailable" (`20000`), and a refused timestamp (`isv.invalid-timestamp`:
    /// the local clock is off, which is fixed by the clock, not by the configuration).
    /// Everything else is a configuration problem (bad key, app id, certificate) that
    /// retrying does not fix.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegisterError::Http(_) => true,
            RegisterError::Status { status } => *status >= 500 || matches!(status, 408 | 429),
            RegisterError::Refused { code, sub_code, .. } => {
                code == "20000" || sub_code.as_deref() == Some("isv.invalid-timestamp")
            }
            _ => false,
        }
    }
}

#[derive(Deserialize)]
struct AnswerJson<'a> {
    #[serde(borrow)]
    response: Option<&'a RawValue>,
    sign: Option<String>,
    alipay_cert_sn: Option<String>,
}

#[derive(Deserialize)]
struct ResponseJson {
    code: Option<String>,
    msg: Option<String>,
    sub_code: Option<String>,
    sub_msg: Option<String>,
    link_token: Option<String>,
}

/// Reads the register answer: status, body, signature and zone cookie (PROTOCOL §3).
///
/// The body is decoded in `charset`; the signature covers the exact text of the
/// `response` object and is checked with `platform` and the app's sign type. In
/// certificate mode `expected_cert_sn` is the SN of the configured platform
/// certificate, which `alipay_cert_sn`, when present, must equal.
pub fn parse_register_answer(
    response: &HttpResponse,
    charset: Charset,
    platform: &Verifier,
    sign_type: crate::signature::SignType,
    expected_cert_sn: Option<&str>,
) -> Result<RegisterAnswer, RegisterError> {
    let body = charset.decode(&response.body);
    let link_token =
        match parse_register_body(&body, charset, platform, sign_type, expected_cert_sn) {
            // A non-200 status whose body is not a platform answer is an HTTP error.
            Err(RegisterError::Malformed { .. }) if response.status != 200 => {
                return Err(RegisterError::Status {
                    status: response.status,
                })
            }
            other => other?,
        };
    Ok(RegisterAnswer {
        link_token,
        zone: response.header_values("set-cookie").find_map(zone_of),
    })
}

/// Reads a register answer body and returns the link token.
pub fn parse_register_body(
    body: &str,
    charset: Charset,
    platform: &Verifier,
    sign_type: crate::signature::SignType,
    expected_cert_sn: Option<&str>,
) -> Result<String, RegisterError> {
    let malformed = |reason: String| RegisterError::Malformed { reason };
    let answer: AnswerJson<'_> =
        serde_json::from_str(body.trim()).map_err(|e| malformed(e.to_string()))?;
    let raw = answer
        .response
        .ok_or_else(|| malformed("no `response` object".into()))?;
    let fields: ResponseJson =
        serde_json::from_str(raw.get()).map_err(|e| malformed(format!("`response`: {e}")))?;
    let verified = answer
        .sign
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|sign| platform.verify_text(sign_type, charset, raw.get(), sign));
    let code = fields.code.unwrap_or_default();
    if code != "10000" && code != "100000000" {
        return Err(RegisterError::Refused {
            code,
            msg: fields.msg.unwrap_or_default(),
            sub_code: fields.sub_code,
            sub_msg: fields.sub_msg,
            signature_verified: matches!(verified, Some(Ok(()))),
        });
    }
    match verified {
        None => return Err(RegisterError::Unsigned),
        Some(Err(e)) => return Err(RegisterError::BadSignature(e)),
        Some(Ok(())) => {}
    }
    if let (Some(expected), Some(received)) = (expected_cert_sn, answer.alipay_cert_sn) {
        if expected != received {
            return Err(RegisterError::CertSnMismatch {
                expected: expected.to_owned(),
                received,
            });
        }
    }
    fields
        .link_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| malformed("success without `link_token`".into()))
}

/// `zone=Z` from one `Set-Cookie` value.
fn zone_of(set_cookie: &str) -> Option<String> {
    set_cookie.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == "zone").then(|| v.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_cookie() {
        assert_eq!(
            zone_of("zone=GZ00B; Path=/; HttpOnly"),
            Some("GZ00B".into())
        );
        assert_eq!(zone_of("a=1; zone = X "), Some("X".into()));
        assert_eq!(zone_of("subzone=1"), None);
    }

    const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/keys");

    fn verifier(file: &str) -> Verifier {
        let pem = std::fs::read_to_string(format!("{KEYS}/{file}")).unwrap();
        Verifier::new(&crate::key::PublicKey::from_pem_or_base64(&pem).unwrap()).unwrap()
    }

    /// A register answer signed with the platform key.
    fn signed_answer(response: &str) -> String {
        let pem = std::fs::read_to_string(format!("{KEYS}/alipay_private_pkcs1.pem")).unwrap();
        let key = crate::key::PrivateKey::from_pem_or_base64(&pem).unwrap();
        let signer = Signer::new(&key, crate::signature::SignType::Rsa2).unwrap();
        let sign = signer.sign_text(response, Charset::Utf8).unwrap();
        format!(r#"{{"response":{response},"sign":"{sign}"}}"#)
    }

    /// The app public key configured as the platform key: this client refuses the
    /// platform's answer, and says which setting to check.
    #[test]
    fn answer_that_does_not_verify_names_the_platform_key_setting() {
        let body = signed_answer(r#"{"code":"10000","msg":"Success","link_token":"T"}"#);
        let rsa2 = crate::signature::SignType::Rsa2;
        let platform = verifier("alipay_public.pem");
        assert_eq!(
            parse_register_body(&body, Charset::Utf8, &platform, rsa2, None).unwrap(),
            "T"
        );
        let app_key = verifier("app_public.pem");
        let err = parse_register_body(&body, Charset::Utf8, &app_key, rsa2, None).unwrap_err();
        assert!(matches!(err, RegisterError::BadSignature(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("refused the platform's register.do answer"),
            "{text}"
        );
        assert!(!text.contains("platform refused"), "{text}");
        assert!(text.contains("alipay_public_key_file"), "{text}");
        assert!(
            text.contains("the platform public key from the console, not the app public key"),
            "{text}"
        );
        assert!(!err.is_platform_refusal());
    }

    /// `isv.invalid-signature`: the platform could not verify this client's request.
    #[test]
    fn invalid_signature_refusal_names_the_app_key_pair() {
        let body = signed_answer(
            r#"{"code":"40004","msg":"Business Failed","sub_code":"isv.invalid-signature","sub_msg":"invalid signature"}"#,
        );
        let err = parse_register_body(
            &body,
            Charset::Utf8,
            &verifier("alipay_public.pem"),
            crate::signature::SignType::Rsa2,
            None,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("register.do refused: code 40004 Business Failed, sub_code isv.invalid-signature (invalid signature)"),
            "{text}"
        );
        assert!(
            text.contains(
                "is the app public key uploaded in the console the pair of app_private_key_file"
            ),
            "{text}"
        );
        assert!(err.is_platform_refusal());
        // Other refusals carry no such hint.
        let other = RegisterError::Refused {
            code: "40004".into(),
            msg: "Business Failed".into(),
            sub_code: Some("isv.invalid-app-id".into()),
            sub_msg: None,
            signature_verified: true,
        };
        assert!(!other.to_string().contains("app_private_key"), "{other}");
    }
}
