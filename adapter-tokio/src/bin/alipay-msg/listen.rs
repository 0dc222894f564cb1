//! `alipay-msg listen --config FILE [--exec CMD]`: connect and print (or hand to a
//! command) every verified message.

use std::path::PathBuf;

use alipay_msg_tokio::{config_file, Client, ClientError, ClientEvent, Message};
use clap::Args;
use serde_json::{json, Value};

use crate::exec_command::ExecCommand;
use crate::Failure;

#[derive(Args)]
pub(crate) struct ListenArgs {
    /// Client configuration file (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Run this shell command per message, with the message JSON on stdin: exit status
    /// 0 acks SUCCESS, anything else FAIL (the platform redelivers). It runs in a
    /// process group of its own (a terminal's Ctrl-C does not reach it). A simple
    /// command's program must exist at start-up; one with shell syntax is not checked.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
}

/// The JSON line printed (and given to `--exec`) for a message.
pub(crate) fn message_json(message: &Message) -> Value {
    json!({
        "msg_id": message.msg_id(),
        "msg_api": message.msg_api(),
        "app_id": message.app_id(),
        "timestamp_ms": message.timestamp_ms(),
        // Verified JSON object text; parsing it again cannot fail.
        "biz_content": serde_json::from_str::<Value>(message.biz_content()).unwrap_or(Value::Null),
    })
}

/// Prints the client's events on stderr from start-up on (key warnings, every failed
/// attempt with its cause and next delay, reconnections), but the attempts' starts.
pub(crate) fn print_events(mut events: tokio::sync::broadcast::Receiver<ClientEvent>) {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(ClientEvent::Connecting { .. }) => {}
                Ok(event) => {
                    if matches!(event, ClientEvent::KeyWarning { .. }) {
                        tracing::warn!(%event);
                    }
                    eprintln!("alipay-msg: {event}");
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("alipay-msg: ({n} events not shown)");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// The failure of a first connection: exit status 3 when the platform could not be
/// reached in time (the message names the last attempt's failure), 2 when it refused
/// the configuration.
pub(crate) fn connect_failure(error: ClientError) -> Failure {
    Failure {
        code: if matches!(error, ClientError::ConnectTimeout { .. }) {
            3
        } else {
            2
        },
        message: error.to_string(),
    }
}

pub(crate) fn run(args: ListenArgs) -> Result<u8, Failure> {
    let mut config =
        config_file::load(&args.config).map_err(|e| Failure::malformed(e.to_string()))?;
    // Before connecting: a program that does not exist is a start-up error, not a FAIL
    // per message.
    let exec = args.exec.map(ExecCommand::new).transpose()?;
    // A listener waits for the platform for as long as it takes, reporting each failed
    // attempt; Ctrl-C stops it.
    config.first_connect_timeout = None;
    crate::runtime()?.block_on(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        // Poll once: the handler is installed from here on, before the first attempt.
        tokio::select! {
            biased;
            _ = &mut ctrl_c => return Ok(0),
            () = std::future::ready(()) => {}
        }
        let connecting = Client::start(config).map_err(|e| Failure::malformed(e.to_string()))?;
        print_events(connecting.events());
        let client = tokio::select! {
            _ = &mut ctrl_c => {
                eprintln!("alipay-msg: interrupted before the first connection; stopped");
                return Ok(0);
            }
            connected = connecting.connected() => connected.map_err(connect_failure)?,
        };
        let exec = exec.map(std::sync::Arc::new);
        let client = std::sync::Arc::new(client);
        let runner = client.clone();
        let mut run = tokio::spawn(async move {
            runner
                .run(move |message| {
                    let exec = exec.clone();
                    async move { handle(&message, exec.as_deref()).await }
                })
                .await
        });
        tokio::select! {
            _ = &mut ctrl_c => {
                eprintln!("alipay-msg: shutting down (waiting for handlers in flight)");
                client.shutdown().await;
                let _ = run.await;
                Ok(0)
            }
            ended = &mut run => match ended {
                Ok(Err(e)) => Err(Failure { code: 2, message: e.to_string() }),
                _ => Ok(0),
            },
        }
    })
}

async fn handle(message: &Message, exec: Option<&ExecCommand>) -> Result<(), String> {
    let line = message_json(message).to_string();
    match exec {
        Some(command) => command.run(&line).await,
        None => {
            println!("{line}");
            Ok(())
        }
    }
}
