//! `alipay-msg send --config FILE --msg-api NAME --biz-content JSON`.

use std::path::PathBuf;

use alipay_msg_tokio::Client;

use crate::config_file;
use clap::Args;
use serde_json::{json, Value};

use crate::listen::EventFormat;
use crate::Failure;

#[derive(Args)]
pub(crate) struct SendArgs {
    /// Client configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The message API, e.g. alipay.open.app.openbizmock.message.send.
    #[arg(long, value_name = "NAME")]
    msg_api: String,
    /// The business content: one JSON object.
    #[arg(long, value_name = "JSON")]
    biz_content: String,
    /// How the client's events are printed on stderr: `human` or `json` (one JSON
    /// object per line).
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = EventFormat::Human)]
    events: EventFormat,
}

pub(crate) fn run(args: SendArgs) -> Result<u8, Failure> {
    let (mut config, network) = config_file::load_with_network(&args.config)
        .map_err(|e| Failure::malformed(e.to_string()))?;
    // One message does not wait for ever: give up after the connect timeout, naming
    // the last attempt's failure (exit status 3).
    config.first_connect_timeout = Some(config.connect_timeout);
    let biz: Value = serde_json::from_str(&args.biz_content)
        .map_err(|e| Failure::malformed(format!("--biz-content is not JSON: {e}")))?;
    if !biz.is_object() {
        return Err(Failure::malformed("--biz-content must be a JSON object"));
    }
    crate::runtime()?.block_on(async move {
        let connecting = Client::start_with_network(config, network)
            .map_err(|e| Failure::malformed(e.to_string()))?;
        crate::listen::print_events(connecting.events(), args.events);
        let client = connecting
            .connected()
            .await
            .map_err(crate::listen::connect_failure)?;
        let result = client.send(&args.msg_api, &biz).await;
        client.shutdown().await;
        let ack = result.map_err(|e| Failure {
            code: 1,
            message: e.to_string(),
        })?;
        println!(
            "{}",
            json!({
                "success": ack.is_success(),
                "status": ack.status.as_str(),
                "code": ack.code,
                "error": ack.error,
                "msg_id": ack.msg_id,
                "retryable": ack.is_retryable(),
                "meaning": ack.result().advice(),
            })
        );
        Ok(if ack.is_success() { 0 } else { 1 })
    })
}
