//! `alipay-msg verify-notify`: a raw notification body on stdin, one JSON line out
//! (exit 0 valid, 1 signature does not verify, 2 malformed input or key).

use alipay_msg_core::notify::{self, FormParams, Notification};
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
}

/// Prints the JSON line whatever happens: on exit 2 (malformed input or key) it is
/// `{"valid":false,"error":…}`, the message also going to stderr.
pub(crate) fn run(args: VerifyNotifyArgs) -> Result<u8, Failure> {
    verify(args).inspect_err(|failure| {
        println!("{}", json!({ "valid": false, "error": failure.message }));
    })
}

fn verify(args: VerifyNotifyArgs) -> Result<u8, Failure> {
    let verifier = args.key.verifier()?;
    let body = read_stdin()?;
    // Tolerate the newline a shell adds after a pasted body.
    let body = body.strip_suffix(b"\n").unwrap_or(&body);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    let rule = if args.v2 { Rule::V2 } else { Rule::V1 };
    let params = notify::parse_form(body)
        .map_err(|e| Failure::malformed(format!("malformed notification: {e}")))?;
    match notify::verify(body, &verifier, rule) {
        Ok(notification) => {
            println!(
                "{}",
                describe(true, notification.params(), Some(&notification))
            );
            Ok(0)
        }
        Err(e) if e.is_signature_failure() => {
            let mut line = describe(false, &params, None);
            line["error"] = Value::String(e.to_string());
            println!("{line}");
            Ok(1)
        }
        Err(e) => Err(Failure::malformed(format!("malformed notification: {e}"))),
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
