//! `alipay-msg verify-notify`: a raw notification body on stdin, one JSON line out
//! (exit 0 valid, 1 signature does not verify, 2 malformed input or key). When the
//! notification is refused (exit 1, or 2 for a malformed body), and always with
//! `--explain`, the line carries `explain`: the diagnosis of
//! [`notify::diagnose`].

use alipay_msg_core::notify::{self, Diagnosis, FormParams, Hint, Notification};
use alipay_msg_core::sign_content::Rule;
use clap::Args;
use serde_json::{json, Value};

use crate::{read_stdin, Failure, PlatformKeyArgs};

#[derive(Args)]
pub(crate) struct VerifyNotifyArgs {
    #[command(flatten)]
    key: PlatformKeyArgs,
    /// Verify by the V2 rule (`sign_type` is part of the signed content); the default is
    /// V1, the rule of payment notifications.
    #[arg(long)]
    v2: bool,
    /// Add `explain` to the line even when the notification verifies: the rule, charset
    /// and sign type used, the exact sign content, the key's fingerprint and hints
    /// (always there when it does not verify).
    #[arg(long)]
    explain: bool,
}

/// Prints the JSON line whatever happens: on exit 2 (malformed input or key) it is
/// `{"valid":false,"error":…}` (with `explain` for a malformed body), the message also
/// going to stderr.
pub(crate) fn run(args: VerifyNotifyArgs) -> Result<u8, Failure> {
    verify(args).map_err(|(failure, explain)| {
        let mut line = json!({ "valid": false, "error": failure.message });
        if let Some(explain) = explain {
            line["explain"] = explain;
        }
        println!("{line}");
        failure
    })
}

/// The exit status, or the failure with the `explain` object of its line (when the
/// body could be diagnosed).
fn verify(args: VerifyNotifyArgs) -> Result<u8, (Failure, Option<Value>)> {
    let verifier = args.key.verifier().map_err(|f| (f, None))?;
    let body = read_stdin().map_err(|f| (f, None))?;
    // Tolerate the newline a shell adds after a pasted body.
    let body = body.strip_suffix(b"\n").unwrap_or(&body);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let rule = if args.v2 { Rule::V2 } else { Rule::V1 };
    let explain = |force: bool| {
        (force || args.explain).then(|| explain_json(&notify::diagnose(body, &verifier, rule)))
    };
    match notify::verify(body, &verifier, rule) {
        Ok(notification) => {
            let mut line = describe(true, notification.params(), Some(&notification));
            if let Some(explain) = explain(false) {
                line["explain"] = explain;
            }
            println!("{line}");
            Ok(0)
        }
        Err(e) => {
            let failure = Failure::malformed(format!("malformed notification: {e}"));
            // A signature failure comes after a successful decoding.
            let params = match notify::parse_form(body) {
                Ok(params) if e.is_signature_failure() => params,
                _ => return Err((failure, explain(true))),
            };
            let mut line = describe(false, &params, None);
            line["error"] = Value::String(e.to_string());
            line["explain"] = explain(true).unwrap_or_default();
            println!("{line}");
            Ok(1)
        }
    }
}

/// The `explain` object: a [`Diagnosis`], hints in the CLI's words.
fn explain_json(diagnosis: &Diagnosis) -> Value {
    json!({
        "rule": diagnosis.rule.as_str(),
        "charset": diagnosis.charset,
        "sign_type": diagnosis.sign_type,
        "sign_content": diagnosis.sign_content,
        "key_fingerprint": diagnosis.key_fingerprint,
        "hints": diagnosis.hints.iter().map(hint_text).collect::<Vec<_>>(),
    })
}

fn hint_text(hint: &Hint) -> String {
    match hint {
        Hint::VerifiesUnderV2 => "verifies under the V2 rule: use --v2".to_owned(),
        Hint::VerifiesUnderV1 => "verifies under the V1 rule: leave out --v2".to_owned(),
        Hint::LooksUrlDecoded => "the body looks already URL-decoded".to_owned(),
        Hint::LooksLikeJson => "this is JSON, not a form body".to_owned(),
        Hint::EmptyInput => "empty input".to_owned(),
        other => other.to_string(),
    }
}

/// The JSON line: verdict, type, id, and the status or method.
fn describe(valid: bool, params: &FormParams, notification: Option<&Notification>) -> Value {
    let kind = match notification {
        Some(Notification::Trade(_)) => "trade_status_sync".to_owned(),
        Some(Notification::GatewayMessage(_)) => "gateway_message".to_owned(),
        _ => match (
            params.get_non_empty("notify_type"),
            params.get_non_empty("msg_method"),
        ) {
            (Some(t), _) => t.to_owned(),
            (None, Some(_)) => "gateway_message".to_owned(),
            (None, None) => "unknown".to_owned(),
        },
    };
    let mut line = json!({
        "valid": valid,
        "type": kind,
        "notify_id": params.get_non_empty("notify_id"),
    });
    if let Some(status) = params.get_non_empty("trade_status") {
        line["trade_status"] = json!(status);
    }
    if let Some(method) = params.get_non_empty("msg_method") {
        line["msg_method"] = json!(method);
    }
    line
}
