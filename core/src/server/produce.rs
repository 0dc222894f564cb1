//! The platform's checks of a PRODUCE and the `x-code` / `x-error` it answers
//! (PROTOCOL §5, §7).

use crate::charset::Charset;
use crate::frame::Frame;
use crate::produce_ack::ProduceCode;
use crate::signature::SignType;

use super::config::{AppRegistration, ServerConfig};
use super::register::within_window;

/// The answer decided for one PRODUCE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProduceVerdict {
    /// `x-code`: `10000`, `20000`, `20001`, `30000`, `30001` or `40000`.
    pub code: &'static str,
    /// `x-error`, e.g. `msg.invalid-sign`; `None` on success.
    pub error: Option<&'static str>,
}

impl ProduceVerdict {
    const ACCEPTED: ProduceVerdict = ProduceVerdict {
        code: "10000",
        error: None,
    };

    fn missing(error: &'static str) -> Self {
        ProduceVerdict {
            code: "30001",
            error: Some(error),
        }
    }

    fn invalid(error: &'static str) -> Self {
        ProduceVerdict {
            code: "30000",
            error: Some(error),
        }
    }

    /// The code's class.
    pub fn class(&self) -> ProduceCode {
        ProduceCode::from_code(self.code)
    }

    /// `x-code` is `10000`.
    pub fn is_accepted(&self) -> bool {
        self.code == "10000"
    }
}

/// Checks a PRODUCE received on a connection of `conn_app_id` (PROTOCOL §7), in order:
///
/// 1. `30001` missing: `msg.missing-sign`, `msg.missing-charset`,
///    `msg.missing-sign-type`, `msg.missing-timestamp`, `msg.missing-app-id`,
///    `msg.missing-msg-api`, `msg.missing-content` (empty values count as missing);
/// 2. `30000` invalid: `msg.invalid-charset` (UTF-8/GBK), `msg.invalid-sign-type`
///    (RSA2/RSA), `msg.invalid-timestamp` (not a number, or outside the window),
///    `msg.invalid-app-id` (not the connection's app), `msg.invalid-msg-api` (not a
///    dotted name of letters, digits and `_`), `msg.empty-content` (`{}`),
///    `msg.invalid-parameter` (certificate mode: `data.header.app_cert_sn` not the
///    registered SN), `msg.invalid-sign` (the signature over the exact `data` text does
///    not verify with the app key);
/// 3. `20001 msg.no-permission`: the message API is not in the app's allowed set;
/// 4. the configured [`super::ProduceFailure`] for the message API (`20000`/`40000`);
/// 5. `10000`.
///
/// Works on the generic [`Frame`] rather than `ProduceFrame`, because a timestamp that
/// is not a number must be answered `msg.invalid-timestamp`, and only after the
/// missing-field checks.
pub(crate) fn check_produce(
    frame: &Frame<'_>,
    conn_app_id: &str,
    app: &AppRegistration,
    config: &ServerConfig,
    now_ms: i64,
) -> ProduceVerdict {
    let p = &frame.protocol;
    let present = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).is_some();
    let header = frame.data.as_ref().map(|d| &d.header);
    let app_id = header
        .and_then(|h| h.app_id.as_deref())
        .filter(|s| !s.is_empty());
    let msg_api = header
        .and_then(|h| h.msg_api.as_deref())
        .filter(|s| !s.is_empty());
    let content = frame.data.as_ref().and_then(|d| d.content);
    let missing = [
        (present(&p.sign), "msg.missing-sign"),
        (present(&p.charset), "msg.missing-charset"),
        (present(&p.sign_type), "msg.missing-sign-type"),
        (present(&p.timestamp), "msg.missing-timestamp"),
        (app_id.is_some(), "msg.missing-app-id"),
        (msg_api.is_some(), "msg.missing-msg-api"),
        (content.is_some(), "msg.missing-content"),
    ];
    if let Some((_, error)) = missing.iter().find(|(ok, _)| !ok) {
        return ProduceVerdict::missing(error);
    }
    let (Some(app_id), Some(msg_api), Some(content)) = (app_id, msg_api, content) else {
        // Checked just above; kept as a non-panicking fallback.
        return ProduceVerdict::missing("msg.missing-content");
    };
    let charset_ok = p
        .charset
        .as_deref()
        .is_some_and(|c| c.parse::<Charset>().is_ok());
    if !charset_ok {
        return ProduceVerdict::invalid("msg.invalid-charset");
    }
    if p.sign_type
        .as_deref()
        .is_none_or(|t| t.parse::<SignType>().is_err())
    {
        return ProduceVerdict::invalid("msg.invalid-sign-type");
    }
    let timestamp_ok = match p.timestamp_ms() {
        Ok(Some(ts)) => within_window(ts, now_ms, config),
        _ => false,
    };
    if !timestamp_ok {
        return ProduceVerdict::invalid("msg.invalid-timestamp");
    }
    if app_id != conn_app_id {
        return ProduceVerdict::invalid("msg.invalid-app-id");
    }
    if !is_msg_api_name(msg_api) {
        return ProduceVerdict::invalid("msg.invalid-msg-api");
    }
    if content.bytes().all(|b| b"{} \t\r\n".contains(&b)) {
        return ProduceVerdict::invalid("msg.empty-content");
    }
    if let Some(expected) = &app.app_cert_sn {
        let received = header.and_then(|h| h.app_cert_sn.as_deref());
        if received != Some(expected.as_str()) {
            return ProduceVerdict::invalid("msg.invalid-parameter");
        }
    }
    if !frame.verify(&app.verifier).is_valid() {
        return ProduceVerdict::invalid("msg.invalid-sign");
    }
    if let Some(allowed) = &app.allowed_msg_apis {
        if !allowed.contains(msg_api) {
            return ProduceVerdict {
                code: "20001",
                error: Some("msg.no-permission"),
            };
        }
    }
    if let Some(failure) = config.produce_failures.get(msg_api) {
        let (code, error) = failure.code_and_error();
        return ProduceVerdict {
            code,
            error: Some(error),
        };
    }
    ProduceVerdict::ACCEPTED
}

/// A message API name: at most 128 bytes of ASCII letters, digits and `_`, in at least
/// two non-empty parts joined by `.` (e.g. `alipay.open.app.openbizmock.message.send`).
fn is_msg_api_name(name: &str) -> bool {
    name.len() <= 128
        && name.contains('.')
        && name.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msg_api_names() {
        assert!(is_msg_api_name("alipay.open.app.openbizmock.message.send"));
        assert!(is_msg_api_name("a_b.c1"));
        for bad in ["", "nodot", "a..b", ".a", "a.", "a.b c", "a.b-c"] {
            assert!(!is_msg_api_name(bad), "{bad}");
        }
        assert!(!is_msg_api_name(&format!("a.{}", "b".repeat(200))));
    }
}
