//! The platform's checks of `register.do` and of the websocket upgrade (PROTOCOL §2–3),
//! the register answer it writes, and its table of single-use link tokens.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::charset::Charset;
use crate::sign_content::{sign_content, Rule};
use crate::signature::{SignType, Signer};

use super::config::ServerConfig;

/// Longest request target (path and query) looked at; longer ones are refused.
const MAX_TARGET_BYTES: usize = 16 * 1024;

/// Most query parameters looked at; longer queries are refused.
const MAX_PARAMS: usize = 64;

/// The parameters of a request, decoded: `application/x-www-form-urlencoded` with every
/// value in the charset named by the request's own `charset` parameter (PROTOCOL §2).
/// A repeated key keeps its first value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Splits `target` (`/path?query`) into its path and decoded parameters. `None`
    /// when the target is too long or has too many parameters.
    pub(crate) fn from_target(target: &str) -> Option<(&str, Params)> {
        if target.len() > MAX_TARGET_BYTES {
            return None;
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let raw: Vec<(String, Vec<u8>)> = query
            .split('&')
            .filter(|part| !part.is_empty())
            .map(|part| {
                let (k, v) = part.split_once('=').unwrap_or((part, ""));
                (
                    String::from_utf8_lossy(&form_decode(k)).into_owned(),
                    form_decode(v),
                )
            })
            .collect();
        if raw.len() > MAX_PARAMS {
            return None;
        }
        let charset = raw
            .iter()
            .find(|(k, _)| k == "charset")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<Charset>().ok())
            .unwrap_or_default();
        let mut pairs: Vec<(String, String)> = Vec::with_capacity(raw.len());
        for (k, v) in raw {
            if pairs.iter().all(|(seen, _)| *seen != k) {
                pairs.push((k, charset.decode(&v).into_owned()));
            }
        }
        Some((path, Params { pairs }))
    }

    /// A parameter's value, when present and not empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The V2 sign content: every parameter but `sign`, sorted, empty values skipped.
    fn sign_content(&self) -> String {
        sign_content(
            self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            Rule::V2,
        )
    }
}

/// `+` is a space; `%XX` is a byte.
fn form_decode(s: &str) -> Vec<u8> {
    let plus_free = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_free).collect()
}

/// What was wrong with a signed parameter set; mapped to a register sub-code or an
/// [`UpgradeRefusal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamProblem {
    TooLong,
    Missing(&'static str),
    UnknownApp,
    InvalidCharset,
    InvalidSignType,
    InvalidTimestamp,
    InvalidSignature,
    MissingAppCertSn,
    AppCertSnMismatch,
    MissingRootCertSn,
    RootCertSnMismatch,
}

/// A parameter set that passed every check.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) app_id: String,
    pub(crate) charset: Charset,
    pub(crate) sign_type: SignType,
}

/// The checks shared by register.do and the upgrade, in order: required parameters,
/// known app id, charset, sign type, timestamp window, V2 signature with the app key,
/// certificate-mode SNs (PROTOCOL §2, §9).
pub(crate) fn check_params(
    params: &Params,
    required: &[&'static str],
    config: &ServerConfig,
    now_ms: i64,
) -> Result<Checked, ParamProblem> {
    if let Some(missing) = required.iter().find(|k| params.get(k).is_none()) {
        return Err(ParamProblem::Missing(missing));
    }
    let get = |k: &'static str| params.get(k).ok_or(ParamProblem::Missing(k));
    let app_id = get("app_id")?;
    let app = config.apps.get(app_id).ok_or(ParamProblem::UnknownApp)?;
    let charset: Charset = get("charset")?
        .parse()
        .map_err(|_| ParamProblem::InvalidCharset)?;
    let sign_type: SignType = get("sign_type")?
        .parse()
        .map_err(|_| ParamProblem::InvalidSignType)?;
    let timestamp: i64 = get("timestamp")?
        .trim()
        .parse()
        .map_err(|_| ParamProblem::InvalidTimestamp)?;
    if !within_window(timestamp, now_ms, config) {
        return Err(ParamProblem::InvalidTimestamp);
    }
    app.verifier
        .verify_text(sign_type, charset, &params.sign_content(), get("sign")?)
        .map_err(|_| ParamProblem::InvalidSignature)?;
    if let Some(expected) = &app.app_cert_sn {
        match params.get("app_cert_sn") {
            None => return Err(ParamProblem::MissingAppCertSn),
            Some(sn) if sn != expected => return Err(ParamProblem::AppCertSnMismatch),
            Some(_) => {}
        }
        match (params.get("alipay_root_cert_sn"), &app.root_cert_sn) {
            (None, _) => return Err(ParamProblem::MissingRootCertSn),
            (Some(sn), Some(expected)) if sn != expected => {
                return Err(ParamProblem::RootCertSnMismatch)
            }
            _ => {}
        }
    }
    Ok(Checked {
        app_id: app_id.to_owned(),
        charset,
        sign_type,
    })
}

/// `timestamp_ms` is within the configured window of `now_ms`, either way.
pub(crate) fn within_window(timestamp_ms: i64, now_ms: i64, config: &ServerConfig) -> bool {
    let window = i64::try_from(config.timestamp_window.as_millis()).unwrap_or(i64::MAX);
    timestamp_ms.abs_diff(now_ms) <= window.unsigned_abs()
}

/// Why register.do was refused: the fields of the failure answer (PROTOCOL §3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("register.do refused: {code} {msg}, {sub_code} ({sub_msg})")]
pub struct RegisterRefusal {
    /// `code`: `40001` (missing parameter) or `40004` (business failed).
    pub code: &'static str,
    /// `msg`.
    pub msg: &'static str,
    /// `sub_code`, e.g. `isv.invalid-signature`.
    pub sub_code: &'static str,
    /// `sub_msg`.
    pub sub_msg: &'static str,
}

impl RegisterRefusal {
    pub(crate) fn from_problem(problem: ParamProblem) -> Self {
        let (sub_code, sub_msg) = match problem {
            ParamProblem::TooLong => ("isv.invalid-parameter", "request too long"),
            ParamProblem::Missing("app_id") => ("isv.missing-app-id", "missing app_id"),
            ParamProblem::Missing("charset") => ("isv.missing-charset", "missing charset"),
            ParamProblem::Missing("sign_type") => {
                ("isv.missing-signature-type", "missing sign_type")
            }
            ParamProblem::Missing("timestamp") => ("isv.missing-timestamp", "missing timestamp"),
            ParamProblem::Missing("link_token") => ("isv.missing-link-token", "missing link_token"),
            ParamProblem::Missing(_) => ("isv.missing-signature", "missing sign"),
            ParamProblem::UnknownApp => ("isv.invalid-app-id", "unknown app_id"),
            ParamProblem::InvalidCharset => ("isv.invalid-charset", "charset must be UTF-8 or GBK"),
            ParamProblem::InvalidSignType => (
                "isv.invalid-signature-type",
                "sign_type must be RSA2 or RSA",
            ),
            ParamProblem::InvalidTimestamp => (
                "isv.invalid-timestamp",
                "timestamp is not a number or more than the allowed window off",
            ),
            ParamProblem::InvalidSignature => ("isv.invalid-signature", "invalid signature"),
            ParamProblem::MissingAppCertSn => ("isv.missing-app-cert-sn", "missing app_cert_sn"),
            ParamProblem::AppCertSnMismatch => (
                "isv.app-cert-sn-mismatch",
                "app_cert_sn is not the registered app certificate",
            ),
            ParamProblem::MissingRootCertSn => (
                "isv.missing-alipay-root-cert-sn",
                "missing alipay_root_cert_sn",
            ),
            ParamProblem::RootCertSnMismatch => (
                "isv.alipay-root-cert-sn-mismatch",
                "alipay_root_cert_sn is not the platform root certificate",
            ),
        };
        let missing = matches!(
            problem,
            ParamProblem::Missing(_)
                | ParamProblem::MissingAppCertSn
                | ParamProblem::MissingRootCertSn
        );
        RegisterRefusal {
            code: if missing { "40001" } else { "40004" },
            msg: if missing {
                "Missing Required Arguments"
            } else {
                "Business Failed"
            },
            sub_code,
            sub_msg,
        }
    }
}

/// The platform's answer to `register.do` (PROTOCOL §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterReply {
    /// HTTP status: 200 for every platform answer (success or refusal), 404 for a path
    /// other than `/websocket/register.do`.
    pub status: u16,
    /// Header fields other than `Content-Length` and `Connection` (written by
    /// [`RegisterReply::to_http_bytes`]): `Content-Type` and, on success,
    /// `Set-Cookie: zone=Z; Path=/; HttpOnly`.
    pub headers: Vec<(String, String)>,
    /// The JSON body: `{"response":{…},"sign":"…"[,"alipay_cert_sn":"…"]}`.
    pub body: String,
    /// The link token issued, or why the request was refused.
    pub result: Result<String, RegisterRefusal>,
}

impl RegisterReply {
    /// The whole HTTP/1.1 response: status line, headers, `Content-Length`,
    /// `Connection: close`, body.
    pub fn to_http_bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            _ => "Error",
        };
        let mut out = format!("HTTP/1.1 {} {reason}\r\n", self.status);
        for (name, value) in &self.headers {
            out.push_str(name);
            out.push_str(": ");
            out.push_str(value);
            out.push_str("\r\n");
        }
        out.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        ));
        out.push_str(&self.body);
        out.into_bytes()
    }

    pub(crate) fn not_found() -> Self {
        RegisterReply {
            status: 404,
            headers: vec![content_type()],
            body: "{}".to_owned(),
            result: Err(RegisterRefusal {
                code: "40004",
                msg: "Business Failed",
                sub_code: "isv.invalid-method",
                sub_msg: "unknown path",
            }),
        }
    }

    /// A signed answer: `response_text` is written verbatim and signed exactly as
    /// written (the client verifies the text as received, PROTOCOL §3).
    pub(crate) fn signed(
        response_text: String,
        signer: &Signer,
        charset: Charset,
        cert_sn: Option<&str>,
        zone: Option<&str>,
        result: Result<String, RegisterRefusal>,
    ) -> Self {
        let mut body = format!("{{\"response\":{response_text}");
        // Signing with a validated key does not fail in practice; if it did, the answer
        // goes out unsigned and the client refuses it.
        if let Ok(sign) = signer.sign_text(&response_text, charset) {
            body.push_str(",\"sign\":");
            body.push_str(&json_string(&sign));
        }
        if let Some(sn) = cert_sn {
            body.push_str(",\"alipay_cert_sn\":");
            body.push_str(&json_string(sn));
        }
        body.push('}');
        let mut headers = vec![content_type()];
        if let (Some(zone), Ok(_)) = (zone, &result) {
            headers.push((
                "Set-Cookie".to_owned(),
                format!("zone={zone}; Path=/; HttpOnly"),
            ));
        }
        RegisterReply {
            status: 200,
            headers,
            body,
            result,
        }
    }
}

fn content_type() -> (String, String) {
    (
        "Content-Type".to_owned(),
        "application/json;charset=UTF-8".to_owned(),
    )
}

/// `s` as a JSON string literal.
pub(crate) fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The `response` object of a success answer, fields in a fixed order.
pub(crate) fn success_text(link_token: &str) -> String {
    format!(
        "{{\"code\":\"10000\",\"msg\":\"Success\",\"link_token\":{}}}",
        json_string(link_token)
    )
}

/// The `response` object of a failure answer, fields in a fixed order.
pub(crate) fn failure_text(refusal: &RegisterRefusal) -> String {
    format!(
        "{{\"code\":{},\"msg\":{},\"sub_code\":{},\"sub_msg\":{}}}",
        json_string(refusal.code),
        json_string(refusal.msg),
        json_string(refusal.sub_code),
        json_string(refusal.sub_msg)
    )
}

/// Why a websocket upgrade was refused; [`UpgradeRefusal::http_status`] is the status
/// to answer instead of `101` (PROTOCOL §2, §8).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpgradeRefusal {
    /// The path is not `/websocket`.
    #[error("not the websocket path")]
    NotFound,
    /// The target is too long or has too many parameters.
    #[error("request target too long")]
    TooLong,
    /// A required parameter is missing or empty.
    #[error("missing parameter `{name}`")]
    MissingParameter {
        /// The parameter.
        name: &'static str,
    },
    /// `app_id` is not registered.
    #[error("unknown app_id")]
    UnknownApp,
    /// `charset` is not UTF-8 or GBK.
    #[error("charset must be UTF-8 or GBK")]
    InvalidCharset,
    /// `sign_type` is not RSA2 or RSA.
    #[error("sign_type must be RSA2 or RSA")]
    InvalidSignType,
    /// `timestamp` is not a number or outside the window.
    #[error("timestamp is not a number or outside the allowed window")]
    InvalidTimestamp,
    /// The V2 signature does not verify with the app key.
    #[error("invalid signature")]
    InvalidSignature,
    /// Certificate mode: `app_cert_sn` / `alipay_root_cert_sn` missing or not the
    /// registered ones.
    #[error("certificate SN missing or not the registered one")]
    CertSn,
    /// The link token was never issued (or has been forgotten).
    #[error("unknown link_token")]
    UnknownLinkToken,
    /// The link token was already used for an upgrade (tokens are single use).
    #[error("link_token already used")]
    LinkTokenUsed,
    /// The link token's time to live has passed.
    #[error("link_token expired")]
    LinkTokenExpired,
    /// The link token was issued to another app.
    #[error("link_token belongs to another app")]
    LinkTokenOtherApp,
    /// [`ServerConfig::require_zone_cookie`] is set and the cookie does not carry the
    /// zone.
    #[error("zone cookie missing or wrong")]
    ZoneMismatch,
    /// The app already has [`ServerConfig::max_connections_per_app`] open connections.
    #[error("too many connections for this app (limit {limit})")]
    TooManyConnections {
        /// The limit.
        limit: usize,
    },
}

impl UpgradeRefusal {
    /// The whole HTTP answer refusing the upgrade: [`UpgradeRefusal::http_status`], a
    /// plain-text body naming the refusal, `Connection: close` (write it, then close).
    pub fn http_answer(&self) -> Vec<u8> {
        let status = self.http_status();
        let reason = match status {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            429 => "Too Many Requests",
            _ => "Error",
        };
        let body = format!("websocket upgrade refused: {self}\n");
        format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// The HTTP status to answer: 404 wrong path, 400 malformed parameters, 401 bad
    /// signature or link token, 403 unknown app or wrong zone, 429 too many connections.
    pub fn http_status(&self) -> u16 {
        match self {
            UpgradeRefusal::NotFound => 404,
            UpgradeRefusal::TooLong
            | UpgradeRefusal::MissingParameter { .. }
            | UpgradeRefusal::InvalidCharset
            | UpgradeRefusal::InvalidSignType
            | UpgradeRefusal::InvalidTimestamp => 400,
            UpgradeRefusal::InvalidSignature
            | UpgradeRefusal::CertSn
            | UpgradeRefusal::UnknownLinkToken
            | UpgradeRefusal::LinkTokenUsed
            | UpgradeRefusal::LinkTokenExpired
            | UpgradeRefusal::LinkTokenOtherApp => 401,
            UpgradeRefusal::UnknownApp | UpgradeRefusal::ZoneMismatch => 403,
            UpgradeRefusal::TooManyConnections { .. } => 429,
        }
    }

    pub(crate) fn from_problem(problem: ParamProblem) -> Self {
        match problem {
            ParamProblem::TooLong => UpgradeRefusal::TooLong,
            ParamProblem::Missing(name) => UpgradeRefusal::MissingParameter { name },
            ParamProblem::UnknownApp => UpgradeRefusal::UnknownApp,
            ParamProblem::InvalidCharset => UpgradeRefusal::InvalidCharset,
            ParamProblem::InvalidSignType => UpgradeRefusal::InvalidSignType,
            ParamProblem::InvalidTimestamp => UpgradeRefusal::InvalidTimestamp,
            ParamProblem::InvalidSignature => UpgradeRefusal::InvalidSignature,
            ParamProblem::MissingAppCertSn
            | ParamProblem::AppCertSnMismatch
            | ParamProblem::MissingRootCertSn
            | ParamProblem::RootCertSnMismatch => UpgradeRefusal::CertSn,
        }
    }
}

/// `zone=Z` in a `cookie` header value.
pub(crate) fn zone_in_cookie(cookie: &str) -> Option<&str> {
    cookie.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == "zone").then(|| v.trim())
    })
}

#[derive(Debug)]
struct TokenEntry {
    app_id: String,
    expires: Instant,
    used: bool,
}

/// Issued link tokens: single use, expiring after the configured time to live, at
/// most `cap` remembered (oldest forgotten first). Used tokens are remembered until
/// they expire so a second use is reported as such.
#[derive(Debug, Default)]
pub(crate) struct LinkTokens {
    map: HashMap<String, TokenEntry>,
    /// Issue order, which is also expiry order (the time to live is fixed).
    order: VecDeque<String>,
}

impl LinkTokens {
    /// Remembers `token` for `app_id` until `now + ttl`, first forgetting expired tokens
    /// and, at `cap`, the oldest ones.
    pub(crate) fn issue(
        &mut self,
        token: String,
        app_id: &str,
        now: Instant,
        ttl: Duration,
        cap: usize,
    ) {
        while let Some(front) = self.order.front() {
            let expired = self.map.get(front).is_none_or(|e| e.expires <= now);
            if !expired && self.map.len() < cap.max(1) {
                break;
            }
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        self.order.push_back(token.clone());
        self.map.insert(
            token,
            TokenEntry {
                app_id: app_id.to_owned(),
                expires: now.checked_add(ttl).unwrap_or(now),
                used: false,
            },
        );
    }

    /// Uses `token` for `app_id` at `now`: known, unused, unexpired, same app. A
    /// token that passes is marked used.
    pub(crate) fn redeem(
        &mut self,
        token: &str,
        app_id: &str,
        now: Instant,
    ) -> Result<(), UpgradeRefusal> {
        let entry = self
            .map
            .get_mut(token)
            .ok_or(UpgradeRefusal::UnknownLinkToken)?;
        if entry.used {
            return Err(UpgradeRefusal::LinkTokenUsed);
        }
        if now >= entry.expires {
            return Err(UpgradeRefusal::LinkTokenExpired);
        }
        if entry.app_id != app_id {
            return Err(UpgradeRefusal::LinkTokenOtherApp);
        }
        entry.used = true;
        Ok(())
    }

    /// How many tokens are remembered.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}
