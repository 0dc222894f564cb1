//! Connects with keys read from files, prints every message (acking SUCCESS) and sends
//! one message back; Ctrl-C shuts down gracefully.
//!
//! ```text
//! cargo run -p alipay-msg-tokio --example listen-tokio -- \
//!     APP_ID app_private_key.pem alipay_public_key.pem [ENDPOINT]
//! ```
//!
//! ENDPOINT defaults to the production platform; `127.0.0.1:7001` reaches a local
//! simulator (`alipay-msg simulate`, whose test keys are in `testdata/vectors/keys`).

use std::sync::Arc;

use alipay_msg_tokio::core::endpoint::Endpoint;
use alipay_msg_tokio::{Client, ClientConfig, Credentials};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [app_id, private_key, public_key, rest @ ..] = args.as_slice() else {
        eprintln!(
            "usage: listen-tokio APP_ID APP_PRIVATE_KEY_FILE ALIPAY_PUBLIC_KEY_FILE [ENDPOINT]"
        );
        std::process::exit(2);
    };
    let credentials = Credentials::public_key(
        &std::fs::read_to_string(private_key)?,
        &std::fs::read_to_string(public_key)?,
    )?;
    let mut config = ClientConfig::new(app_id.as_str(), credentials);
    if let Some(endpoint) = rest.first() {
        config.endpoint = Endpoint::parse(endpoint)?;
    }
    eprintln!("connecting to {}", config.endpoint);
    let client = Arc::new(Client::connect(config).await?);
    let mut events = client.events();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            eprintln!("event: {event}");
        }
    });
    let ack = client
        .send(
            "alipay.open.app.openbizmock.message.send",
            &serde_json::json!({"shop_id": "1001"}),
        )
        .await?;
    eprintln!("PRODUCE_ACK: {ack}");

    let runner = client.clone();
    let run = tokio::spawn(async move {
        runner
            .run(|msg| async move {
                println!("{} {} {}", msg.msg_id(), msg.msg_api(), msg.biz_content());
                Ok::<(), std::convert::Infallible>(())
            })
            .await
    });
    tokio::signal::ctrl_c().await?;
    client.shutdown().await;
    run.await??;
    Ok(())
}
