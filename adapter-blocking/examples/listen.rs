//! Connects and prints every message, until killed.
//!
//! ```text
//! cargo run -p alipay-msg-blocking --example listen-blocking -- \
//!     APP_ID app_private_key.pem alipay_public_key.pem [ENDPOINT]
//! ```
//!
//! `ENDPOINT` defaults to the production host; give `127.0.0.1:7001` for a local
//! simulator (`alipay-msg simulate`).

use std::process::ExitCode;

use alipay_msg_blocking::core::endpoint::Endpoint;
use alipay_msg_blocking::{Client, ClientConfig, Credentials};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [app_id, private_key, public_key, rest @ ..] = args.as_slice() else {
        eprintln!("usage: listen APP_ID APP_PRIVATE_KEY_FILE ALIPAY_PUBLIC_KEY_FILE [ENDPOINT]");
        return ExitCode::from(2);
    };
    match listen(app_id, private_key, public_key, rest.first()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn listen(
    app_id: &str,
    private_key: &str,
    public_key: &str,
    endpoint: Option<&String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let credentials = Credentials::public_key(
        &std::fs::read_to_string(private_key)?,
        &std::fs::read_to_string(public_key)?,
    )?;
    let mut config = ClientConfig::new(app_id, credentials);
    if let Some(endpoint) = endpoint {
        config.endpoint = Endpoint::parse(endpoint)?;
    }
    let client = Client::connect(config)?;
    eprintln!("connected");
    // Connection changes and rejections, on a thread of their own.
    let events = client.events();
    std::thread::spawn(move || {
        for event in events {
            eprintln!("event: {event}");
        }
    });
    client.run(|msg| {
        println!("{} {} {}", msg.msg_id(), msg.msg_api(), msg.biz_content());
        Ok::<(), std::convert::Infallible>(())
    })?;
    Ok(())
}
