//! `alipay-msg inspect-frame`: one frame on stdin, one JSON line out.

use alipay_msg_core::frame::{Frame, FrameLimits, SignatureStatus};
use clap::Args;
use serde_json::{json, Value};

use crate::{read_stdin, Failure, PlatformKeyArgs};

#[derive(Args)]
pub(crate) struct InspectFrameArgs {
    #[command(flatten)]
    key: PlatformKeyArgs,
}

pub(crate) fn run(args: InspectFrameArgs) -> Result<u8, Failure> {
    let verifier = args.key.verifier()?;
    let input = read_stdin()?;
    let text = std::str::from_utf8(&input)
        .map_err(|_| Failure::malformed("the frame is not UTF-8 text"))?;
    // A frame read from a file or `echo` usually ends with a newline that is not part
    // of the websocket message.
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    let frame = Frame::parse(text, &FrameLimits::default())
        .map_err(|e| Failure::malformed(format!("malformed frame: {e}")))?;
    let status = frame.verify(&verifier);
    let header = frame.data.as_ref().map(|d| &d.header);
    let biz_content = match frame.data.as_ref().and_then(|d| d.content) {
        // The content was parsed as a JSON object already; re-reading it cannot fail.
        Some(content) => serde_json::from_str(content).unwrap_or(Value::Null),
        None => Value::Null,
    };
    let mut line = json!({
        "cmd": frame.command.as_str(),
        "msg_id": frame.protocol.msg_id,
        "msg_api": header.and_then(|h| h.msg_api.as_deref()),
        "app_id": header.and_then(|h| h.app_id.as_deref()),
        "stream_id": frame.headers.stream_id,
        "timestamp_ms": frame.protocol.timestamp_ms().ok().flatten(),
        "signature": status.as_str(),
        "biz_content": biz_content,
    });
    if let SignatureStatus::Invalid(reason) = &status {
        line["signature_error"] = Value::String(reason.to_string());
    }
    println!("{line}");
    Ok(0)
}
