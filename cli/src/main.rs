//! `alipay-msg`: command-line tools for the payment open platform's message channel.
//!
//! Exit status: 0 success (and `listen` stopped by Ctrl-C, SIGINT or SIGTERM once its
//! handlers in flight have finished); 1 a signature did not verify (`verify-notify`) or
//! a message was not accepted (`send`); 2 the input, a key or a certificate is malformed
//! or unreadable, the `--exec` program does not exist, the platform refused the
//! configuration, or `listen`'s stdout was closed (message on stderr); 3 the platform could not be reached within the
//! connect timeout (`send`; the message names the last attempt's failure); 130 or 143
//! (128 + the signal's number, as a shell reports a process that signal ended) `listen`
//! stopped at once by a second SIGINT or SIGTERM during its drain, with deliveries left
//! unacked (the message says how many; the platform redelivers them).

mod keys;

mod bench;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod cert_sn;
mod config_file;
mod dedup;
mod demo;
mod demo_notify;
mod exec_command;
mod inspect_frame;
mod json_lines;
mod listen;
mod send;
mod serve_notify;
mod simulate;
mod stop_signals;
mod verify_notify;

#[derive(Parser)]
#[command(
    name = "alipay-msg",
    version,
    about = "Client tools for the payment open platform's message channel"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the SN of a certificate (app or platform public-key certificate), or with
    /// --root the root cert SN of a root bundle.
    CertSn(cert_sn::CertSnArgs),
    /// Verify an HTTP notification: reads the raw form body on stdin, prints one JSON
    /// line; exit 0 valid, 1 signature does not verify, 2 malformed input or key.
    VerifyNotify(verify_notify::VerifyNotifyArgs),
    /// Parse one websocket frame from stdin and check its signature; prints one JSON
    /// line; exit 0 when it parsed (whatever the signature), 2 when malformed.
    InspectFrame(inspect_frame::InspectFrameArgs),
    /// Run the whole channel locally: a simulated platform, a client, the platform's
    /// message kinds, a handler failure, a duplicate, a forgery and a PRODUCE, then an
    /// HTTP notification failed once, retried and answered `success`, and a forged one
    /// refused; ends with a summary line (no account, no network beyond 127.0.0.1).
    Demo(demo::DemoArgs),
    /// Connect with a configuration file and print every verified message as a JSON
    /// line (or run a command per message with --exec). Retries until connected,
    /// reporting each failure on stderr; Ctrl-C or SIGTERM drains (handlers in flight
    /// finish and are acked), a second one stops at once (exit 130 / 143).
    Listen(listen::ListenArgs),
    /// Send one message (PRODUCE) and print its PRODUCE_ACK; exit 0 when accepted, 3
    /// when the platform cannot be reached within the configuration's connect timeout.
    /// It consumes nothing: a message the platform pushes to its connection meanwhile
    /// is answered FAIL at once (after `consumer_grace_ms`, 500 ms), for the platform to
    /// redeliver to a listener.
    Send(send::SendArgs),
    /// Run the local platform simulator (register.do, websocket, pushes, redelivery,
    /// HTTP notifications with retries) until Ctrl-C, printing one line per event.
    Simulate(simulate::SimulateArgs),
    /// Serve the HTTP notification endpoint with a configuration file's app id and
    /// platform key: print each verified notification as a JSON line (or run a command
    /// per notification with --exec; exit 0 answers `success`). Ctrl-C or SIGTERM
    /// drains, a second one stops at once (exit 130 / 143).
    ServeNotify(serve_notify::ServeNotifyArgs),
    /// Measure: the crypto bound of each backend on one core, then each client end to
    /// end against the simulator over 127.0.0.1 (throughput, latency, peak RSS).
    Bench(bench::BenchArgs),
    /// The client half of `bench`, run by it in a child process.
    #[command(hide = true)]
    BenchClient(bench::BenchClientArgs),
}

/// The platform key, given directly or through its public-key certificate.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub(crate) struct PlatformKeyArgs {
    /// Platform public key file (PEM or bare base64).
    #[arg(long, value_name = "FILE")]
    alipay_public_key: Option<PathBuf>,
    /// Platform public-key certificate file (certificate mode).
    #[arg(long, value_name = "FILE")]
    alipay_cert: Option<PathBuf>,
}

/// A failure with its exit status.
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

impl Failure {
    /// Malformed input, key or certificate: exit status 2.
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

pub(crate) fn read_stdin() -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| Failure::malformed(format!("cannot read stdin: {e}")))?;
    Ok(buf)
}

pub(crate) fn read_file(path: &std::path::Path) -> Result<String, Failure> {
    std::fs::read_to_string(path)
        .map_err(|e| Failure::malformed(format!("cannot read {}: {e}", path.display())))
}

/// The tokio runtime for the networked commands.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            code: 2,
            message: format!("cannot start the runtime: {e}"),
        })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::CertSn(args) => cert_sn::run(args),
        Command::VerifyNotify(args) => verify_notify::run(args),
        Command::InspectFrame(args) => inspect_frame::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Listen(args) => listen::run(args),
        Command::Send(args) => send::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::ServeNotify(args) => serve_notify::run(args),
        Command::Bench(args) => bench::run(args),
        Command::BenchClient(args) => bench::run_client(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("alipay-msg: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}
