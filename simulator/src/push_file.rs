//! Messages to push, as JSON: one object `{"msg_api": "…", "biz_content": {…}}` per
//! line of a file (the format of `testdata/examples/platform_messages.jsonl`; other
//! fields such as `description` are ignored) or per `POST /admin/push` body.

use serde::Deserialize;
use serde_json::value::RawValue;

/// One message for the platform to push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformMessage {
    /// The message API, e.g. `alipay.open.mini.version.audit.passed`.
    pub msg_api: String,
    /// The business content: the exact text of one JSON object.
    pub biz_content: String,
    /// The app to push to; `None`: the simulator's app.
    pub app_id: Option<String>,
    /// Push it as a forgery the client must refuse
    /// ([`super::Simulator::push_forged`]).
    pub forged: bool,
}

#[derive(Deserialize)]
struct Json<'a> {
    msg_api: String,
    #[serde(borrow)]
    biz_content: &'a RawValue,
    #[serde(default)]
    app_id: Option<String>,
    #[serde(default)]
    forged: bool,
}

impl PlatformMessage {
    /// Reads one JSON object. `biz_content` is kept as written (it must be an object;
    /// the platform checks that when pushing).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        let json: Json<'_> = serde_json::from_str(text)?;
        Ok(PlatformMessage {
            msg_api: json.msg_api,
            biz_content: json.biz_content.get().to_owned(),
            app_id: json.app_id,
            forged: json.forged,
        })
    }

    /// Reads JSON lines: one message per non-blank line. The error names the line
    /// (from 1).
    pub fn from_json_lines(text: &str) -> Result<Vec<Self>, (usize, serde_json::Error)> {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| PlatformMessage::from_json(line).map_err(|e| (i + 1, e)))
            .collect()
    }
}

/// The platform's message kinds with their documented example contents, one JSON
/// object per line in the [`PlatformMessage::from_json_lines`] format (a copy of the
/// repository's `testdata/examples/platform_messages.jsonl`, checked equal by the
/// conformance tests): what `alipay-msg demo` pushes.
pub const PLATFORM_MESSAGE_EXAMPLES: &str = include_str!("../data/platform_messages.jsonl");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_example_file() {
        let messages = PlatformMessage::from_json_lines(PLATFORM_MESSAGE_EXAMPLES).unwrap();
        assert!(!messages.is_empty());
        for m in &messages {
            assert!(m.msg_api.contains('.'));
            assert!(m.biz_content.starts_with('{'), "{}", m.biz_content);
            assert_eq!(m.app_id, None);
            assert!(!m.forged);
        }
    }

    #[test]
    fn keeps_the_content_text_and_names_bad_lines() {
        let m = PlatformMessage::from_json(
            r#"{"msg_api":"a.b","biz_content":{"z":1, "a":"x"},"app_id":"9"}"#,
        )
        .unwrap();
        assert_eq!(m.biz_content, r#"{"z":1, "a":"x"}"#);
        assert_eq!(m.app_id.as_deref(), Some("9"));
        let err = PlatformMessage::from_json_lines(
            "{\"msg_api\":\"a.b\",\"biz_content\":{}}\n\nnot json\n",
        )
        .unwrap_err();
        assert_eq!(err.0, 3);
    }
}
