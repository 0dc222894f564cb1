//! Connects with keys read from files and prints every message (acking SUCCESS).
//!
//! ```text
//! cargo run -p alipay-msg-async-std --example listen-async-std -- \
//!     APP_ID app_private_key.pem alipay_public_key.pem [ENDPOINT]
//! ```
//!
//! ENDPOINT defaults to the production platform; `127.0.0.1:7001` reaches a local
//! simulator (`alipay-msg simulate`, from alipay-msg-tokio, with its test keys in
//! `testdata/vectors/keys`). Ctrl-C stops it.

use alipay_msg_async_std::core::endpoint::Endpoint;
use alipay_msg_async_std::{Client, ClientConfig, Credentials};

#[async_std::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [app_id, private_key, public_key, rest @ ..] = args.as_slice() else {
        eprintln!(
            "usage: listen-async-std APP_ID APP_PRIVATE_KEY_FILE ALIPAY_PUBLIC_KEY_FILE [ENDPOINT]"
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
    let client = Client::connect(config).await?;
    let mut events = client.events();
    async_std::task::spawn(async move {
        while let Some(event) = events.recv().await {
            eprintln!("event: {event}");
        }
    });
    client
        .run(|msg| async move {
            println!("{} {} {}", msg.msg_id(), msg.msg_api(), msg.biz_content());
            Ok::<(), std::convert::Infallible>(())
        })
        .await?;
    Ok(())
}
