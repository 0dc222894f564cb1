//! Messages pushed to the application gateway over HTTP: the `msg_method` form
//! (PROTOCOL §10).

use super::form::FormParams;
use super::NotifyError;

/// A verified gateway message (a notification with a `msg_method`, PROTOCOL §10).
///
/// `msg_method`, `notify_id`, `app_id` and `biz_content` are required (present and not
/// empty); `biz_content` must be JSON. Every parameter is kept in
/// [`params`](Self::params), including `biz_content` as the exact text that was signed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GatewayMessage {
    /// `msg_method`: the message type, e.g. `alipay.open.mini.merchant.confirmed`.
    pub msg_method: String,
    /// `notify_id`: identifies this message (repeated on re-sends).
    pub notify_id: String,
    /// `app_id`: the app the message is for.
    pub app_id: String,
    /// `utc_timestamp`: sending time, milliseconds since the Unix epoch, as sent.
    pub utc_timestamp: Option<String>,
    /// `version`: the message format version, e.g. `1.1`.
    pub version: Option<String>,
    /// `biz_content`, parsed as JSON.
    pub biz_content: serde_json::Value,
    /// Every parameter of the message.
    pub params: FormParams,
}

impl GatewayMessage {
    pub(super) fn from_params(params: FormParams) -> Result<Self, NotifyError> {
        let req = |name: &'static str| -> Result<String, NotifyError> {
            params
                .get_non_empty(name)
                .map(str::to_owned)
                .ok_or(NotifyError::MissingParam { name })
        };
        let opt = |name: &str| params.get_non_empty(name).map(str::to_owned);
        let biz_content = params
            .get_non_empty("biz_content")
            .ok_or(NotifyError::MissingParam {
                name: "biz_content",
            })?;
        let biz_content = serde_json::from_str(biz_content).map_err(|e| {
            // Only the position: serde_json's message can quote the input.
            NotifyError::BizContentNotJson {
                line: e.line(),
                column: e.column(),
            }
        })?;
        Ok(GatewayMessage {
            msg_method: req("msg_method")?,
            notify_id: req("notify_id")?,
            app_id: req("app_id")?,
            utc_timestamp: opt("utc_timestamp"),
            version: opt("version"),
            biz_content,
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::FormLimits;

    fn form(body: &str) -> FormParams {
        super::super::form::parse(body.as_bytes(), &FormLimits::default()).unwrap()
    }

    #[test]
    fn parses_biz_content() {
        let m = GatewayMessage::from_params(form(
            "msg_method=m&notify_id=n&app_id=a&biz_content=%7B%22k%22%3A%5B1%5D%7D",
        ))
        .unwrap();
        assert_eq!(m.biz_content["k"][0], 1);
        assert_eq!(m.utc_timestamp, None);
        assert_eq!(m.params.get("biz_content"), Some(r#"{"k":[1]}"#));
    }

    #[test]
    fn non_json_biz_content() {
        let e = GatewayMessage::from_params(form(
            "msg_method=m&notify_id=n&app_id=a&biz_content=%7Bnot+json",
        ))
        .unwrap_err();
        assert!(matches!(e, NotifyError::BizContentNotJson { line: 1, .. }));
        assert!(!e.is_signature_failure());
    }

    #[test]
    fn missing_biz_content() {
        assert_eq!(
            GatewayMessage::from_params(form("msg_method=m&notify_id=n&app_id=a")).unwrap_err(),
            NotifyError::MissingParam {
                name: "biz_content"
            }
        );
    }
}
