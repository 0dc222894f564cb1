//! `alipay-msg listen --config FILE [--exec CMD]`: connect and print (or hand to a
//! command) every verified message.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use alipay_msg_tokio::{Client, ClientConfig, ClientError, ClientEvent, Message, Network};
use clap::Args;
use serde_json::{json, Value};

use crate::config_file;
use crate::exec_command::ExecCommand;
use crate::json_lines::JsonLines;
use crate::stop_signals::StopSignals;
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
    /// How the client's events are printed on stderr: `human` (one line each) or
    /// `json` (one JSON object per line, tagged by "event").
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = EventFormat::Human)]
    events: EventFormat,
}

/// How [`print_events`] prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum EventFormat {
    /// `alipay-msg: connected`, … (attempt starts are not shown).
    Human,
    /// `{"event":"connected"}`, … every event, one per line.
    Json,
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
/// attempt with its cause and next delay, every connection, the first included): as
/// human lines (but the attempts' starts), or as JSON lines (every event).
pub(crate) fn print_events(mut events: alipay_msg_tokio::Events, format: EventFormat) {
    tokio::spawn(async move {
        let mut missed = 0;
        while let Some(event) = events.recv().await {
            let n = events.missed() - std::mem::replace(&mut missed, events.missed());
            if n > 0 {
                match format {
                    EventFormat::Json => eprintln!("{}", json!({"event": "lagged", "lost": n})),
                    EventFormat::Human => eprintln!("alipay-msg: ({n} events not shown)"),
                }
            }
            match event {
                event if format == EventFormat::Json => match serde_json::to_string(&event) {
                    Ok(line) => eprintln!("{line}"),
                    Err(e) => eprintln!("alipay-msg: event not serialisable ({e}): {event}"),
                },
                ClientEvent::Connecting { .. } => {}
                event => {
                    if matches!(event, ClientEvent::KeyWarning { .. }) {
                        tracing::warn!(%event);
                    }
                    eprintln!("alipay-msg: {event}");
                }
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
        // `ClientError::Refused` reads "the platform refused"; when this client refused
        // the platform's answer (a key mix-up), say only that.
        message: match &error {
            ClientError::Refused(e) if !e.is_platform_refusal() => e.to_string(),
            _ => error.to_string(),
        },
    }
}

pub(crate) fn run(args: ListenArgs) -> Result<u8, Failure> {
    let (mut config, network) = config_file::load_with_network(&args.config)
        .map_err(|e| Failure::malformed(e.to_string()))?;
    let dedup =
        config_file::load_dedup(&args.config).map_err(|e| Failure::malformed(e.to_string()))?;
    // Before connecting: a program that does not exist is a start-up error, not a FAIL
    // per message.
    let exec = args.exec.map(ExecCommand::new).transpose()?;
    // A listener waits for the platform for as long as it takes, reporting each failed
    // attempt; a stop signal ends it.
    config.first_connect_timeout = None;
    // After a second signal, handlers may still be running: dropping the runtime drops
    // them, and with them their `--exec` children.
    crate::runtime()?.block_on(listen(config, network, dedup, exec, args.events))
}

async fn listen(
    config: ClientConfig,
    network: Network,
    dedup: Option<config_file::Dedup>,
    exec: Option<ExecCommand>,
    format: EventFormat,
) -> Result<u8, Failure> {
    let max_in_flight = config.max_in_flight;
    // Installed before the first attempt.
    let mut signals = StopSignals::install()?;
    let connecting = match &dedup {
        Some(dedup) => {
            Client::start_with_window(config, network, crate::dedup::window_store(dedup)?)
        }
        None => Client::start_with_network(config, network),
    }
    .map_err(|e| Failure::malformed(e.to_string()))?;
    print_events(connecting.events(), format);
    let client = tokio::select! {
        signal = signals.recv() => {
            eprintln!(
                "alipay-msg: {}: interrupted before the first connection; stopped",
                signal.name()
            );
            return Ok(0);
        }
        connected = connecting.connected() => connected.map_err(connect_failure)?,
    };
    // At most `max_in_flight` handlers run, each with one line at a time: the lines'
    // queue never makes one wait for room.
    let lines = Arc::new(JsonLines::stdout(max_in_flight).map_err(|e| Failure {
        code: 2,
        message: format!("cannot start the thread that writes to the terminal: {e}"),
    })?);
    let exec = exec.map(Arc::new);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let client = Arc::new(client);
    // The first failed write to stdout (its reader gone): every line after it would fail
    // too (JsonLines' error sticks), so `listen` stops instead of FAILing each message.
    let (stdout_failed, mut stdout_gone) = tokio::sync::mpsc::channel::<String>(1);
    let (runner, counter) = (client.clone(), in_flight.clone());
    let mut run = tokio::spawn(async move {
        runner
            .run(move |message| {
                let (exec, lines, failed) = (exec.clone(), lines.clone(), stdout_failed.clone());
                let running = InFlight::enter(&counter);
                async move {
                    let _running = running;
                    let result = handle(&message, exec.as_deref(), &lines).await;
                    if let Err(HandleError::Stdout(e)) = &result {
                        let _ = failed.try_send(e.clone());
                    }
                    result.map_err(|e| e.to_string())
                }
            })
            .await
    });
    let first = tokio::select! {
        signal = signals.recv() => signal,
        Some(error) = stdout_gone.recv() => {
            eprintln!(
                "alipay-msg: stdout: {error}; stopping (the platform redelivers what was not acked)"
            );
            client.shutdown().await;
            let _ = run.await;
            return Err(Failure { code: 2, message: format!("stdout: {error}") });
        }
        ended = &mut run => return match ended {
            Ok(Err(e)) => Err(Failure { code: 2, message: e.to_string() }),
            _ => Ok(0),
        },
    };
    eprintln!(
        "alipay-msg: {}: shutting down (waiting for {} in flight; a second signal stops at once)",
        first.name(),
        count(in_flight.load(Ordering::SeqCst), "handler", "handlers"),
    );
    let drain = async {
        client.shutdown().await;
        let _ = run.await;
    };
    tokio::select! {
        () = drain => Ok(0),
        second = signals.recv() => {
            let left = in_flight.load(Ordering::SeqCst);
            let redelivered = match left {
                0 => "",
                1 => " (the platform redelivers it)",
                _ => " (the platform redelivers them)",
            };
            eprintln!(
                "alipay-msg: second signal ({}): stopping now; {} left unacked{redelivered}",
                second.name(),
                count(left, "delivery", "deliveries"),
            );
            Ok(second.exit_status())
        }
    }
}

/// `n` things, in words.
fn count(n: usize, one: &str, many: &str) -> String {
    match n {
        0 => format!("no {many}"),
        1 => format!("1 {one}"),
        _ => format!("{n} {many}"),
    }
}

/// One handler running, counted from its start until it returns or is dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Hands the message's JSON line to `--exec`, or writes it on stdout: `Ok` (SUCCESS)
/// only once the line reached stdout, so a crash after the ack loses no line.
async fn handle(
    message: &Message,
    exec: Option<&ExecCommand>,
    lines: &JsonLines<std::io::Stdout>,
) -> Result<(), HandleError> {
    let line = message_json(message).to_string();
    match exec {
        Some(command) => command.run(&line).await.map_err(HandleError::Exec),
        None => lines
            .write_line(&line)
            .await
            .map_err(|e| HandleError::Stdout(e.to_string())),
    }
}

/// Why a message was not handled (its ack is FAIL).
#[derive(Debug)]
enum HandleError {
    /// `--exec`'s program failed or exited non-zero.
    Exec(String),
    /// The line could not be written to stdout.
    Stdout(String),
}

impl std::fmt::Display for HandleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandleError::Exec(e) => f.write_str(e),
            HandleError::Stdout(e) => write!(f, "stdout: {e}"),
        }
    }
}
