//! `alipay-msg serve-notify --config FILE --listen ADDR [--path /notify] [--exec CMD]
//! [--v2]`: the HTTP notification endpoint of `alipay-msg-axum` (PROTOCOL §10), with the
//! app id and platform key of a configuration file. Each verified notification is a
//! JSON line on stdout, or the stdin of `--exec CMD` (exit 0 answers `success`); every
//! outcome (handled, duplicate, refused and why, handler failed) is a line on stderr.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config_file;
use alipay_msg_axum::{Notification, Notifications, NotifyEvent, NotifyGate};
use alipay_msg_core::cert::{platform_cert, Certificate};
use alipay_msg_core::client::Credentials;
use alipay_msg_core::sign_content::Rule;
use alipay_msg_core::signature::Verifier;
use clap::Args;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::exec_command::ExecCommand;
use crate::json_lines::JsonLines;
use crate::stop_signals::StopSignals;
use crate::Failure;

#[derive(Args)]
pub(crate) struct ServeNotifyArgs {
    /// Client configuration file (TOML): its `app_id` (notifications for another app
    /// are refused) and platform key (`alipay_public_key`, or in certificate mode the
    /// key of `alipay_cert_file`).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Address to listen on (port 0 picks a free port); the URL served is printed on
    /// stderr.
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// The path notifications are POSTed to: `/` and then letters, digits, `-`, `.`,
    /// `_`, `~` and `/`.
    #[arg(long, value_name = "PATH", default_value = "/notify")]
    path: String,
    /// Run this shell command per verified notification, with its JSON line on stdin:
    /// exit status 0 answers `success`, anything else `fail` (the platform retries). It
    /// runs in a process group of its own. A simple command's program must exist at
    /// start-up; one with shell syntax is not checked.
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// Verify by the V2 rule (`sign_type` is part of the signed content); the default is
    /// V1, the rule of payment notifications.
    #[arg(long)]
    v2: bool,
}

/// Notification lines queued or being written on stdout at once; a notification
/// beyond waits for room (the endpoint itself does not bound its requests in progress).
const MAX_LINES_QUEUED: usize = 256;

pub(crate) fn run(args: ServeNotifyArgs) -> Result<u8, Failure> {
    check_path(&args.path)?;
    let (config, _network) = config_file::load_with_network(&args.config)
        .map_err(|e| Failure::malformed(e.to_string()))?;
    let verifier = platform_verifier(&config.credentials)?;
    let rule = if args.v2 { Rule::V2 } else { Rule::V1 };
    let gate = NotifyGate::new(verifier, config.app_id.clone()).with_rule(rule);
    let exec = args.exec.map(ExecCommand::new).transpose()?.map(Arc::new);
    // After a second signal, handlers may still be running: dropping the runtime drops
    // them, and with them their `--exec` children.
    crate::runtime()?.block_on(serve(args.listen, args.path, gate, exec))
}

async fn serve(
    listen: SocketAddr,
    path: String,
    gate: NotifyGate,
    exec: Option<Arc<ExecCommand>>,
) -> Result<u8, Failure> {
    let mut signals = StopSignals::install()?;
    let app_id = gate.app_id().to_owned();
    let rule = gate.rule();
    let lines = Arc::new(JsonLines::stdout(MAX_LINES_QUEUED).map_err(|e| Failure {
        code: 2,
        message: format!("cannot start the thread that writes to the terminal: {e}"),
    })?);
    let notifications = Notifications::new(gate, move |notification: Notification| {
        let (exec, lines) = (exec.clone(), lines.clone());
        async move {
            let line = notification_json(&notification).to_string();
            match exec {
                Some(command) => command.run(&line).await,
                // `success` only once the line reached stdout.
                None => lines.write_line(&line).await.map_err(|e| e.to_string()),
            }
        }
    })
    .on_event(print_event);
    let mut server = NotifyServer::start(listen, &path, notifications)
        .await
        .map_err(|e| Failure {
            code: 2,
            message: format!("cannot listen on {listen}: {e}"),
        })?;
    eprintln!(
        "alipay-msg: serving notifications on {} (app {app_id}, rule {rule}); Ctrl-C stops",
        server.url()
    );
    let first = tokio::select! {
        signal = signals.recv() => signal,
        ended = &mut server.task => return match ended {
            Ok(Ok(())) => Ok(0),
            Ok(Err(e)) => Err(Failure { code: 2, message: format!("serving: {e}") }),
            Err(e) => Err(Failure { code: 2, message: format!("serving: {e}") }),
        },
    };
    eprintln!(
        "alipay-msg: {}: shutting down (answering the notifications in progress; a second signal stops at once)",
        first.name()
    );
    tokio::select! {
        () = server.stop() => Ok(0),
        second = signals.recv() => {
            eprintln!(
                "alipay-msg: second signal ({}): stopping now; notifications in progress are left unanswered (the platform retries them)",
                second.name()
            );
            Ok(second.exit_status())
        }
    }
}

/// An endpoint served on its own task until [`stop`](Self::stop): `serve-notify` and
/// the demo's.
pub(crate) struct NotifyServer {
    local_addr: SocketAddr,
    path: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl NotifyServer {
    /// Binds `listen` and serves `notifications` at `path` (checked by [`check_path`]).
    pub(crate) async fn start<E: std::fmt::Display + Send + 'static>(
        listen: SocketAddr,
        path: &str,
        notifications: Notifications<E>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let router = notifications.into_router(path);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stopped.await;
        });
        Ok(NotifyServer {
            local_addr,
            path: path.to_owned(),
            stop: Some(stop),
            task: tokio::spawn(server.into_future()),
        })
    }

    /// The URL notifications are POSTed to; an unspecified address (`0.0.0.0`) reads as
    /// the loopback address.
    pub(crate) fn url(&self) -> String {
        let mut addr = self.local_addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        format!("http://{addr}{}", self.path)
    }

    /// Stops accepting, lets the requests in progress be answered, then returns.
    pub(crate) async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// A path axum can route as written: `/` then letters, digits, `-`, `.`, `_`, `~`, `/`
/// (no `{capture}`, no `:`), so that building the route cannot fail.
pub(crate) fn check_path(path: &str) -> Result<(), Failure> {
    let plain = path.starts_with('/')
        && path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/'));
    if plain {
        Ok(())
    } else {
        Err(Failure::malformed(format!(
            "--path {path:?}: expected / followed by letters, digits, -, ., _, ~ and /"
        )))
    }
}

/// The platform key that signs notifications: the public key, or in certificate mode
/// the key of the platform certificate (PROTOCOL §9, §10).
fn platform_verifier(credentials: &Credentials) -> Result<Verifier, Failure> {
    let key = match credentials {
        Credentials::PublicKey {
            alipay_public_key, ..
        } => alipay_public_key.clone(),
        Credentials::Certificate {
            alipay_cert_chain, ..
        } => platform_cert(alipay_cert_chain)
            .and_then(Certificate::public_key)
            .map_err(|e| Failure::malformed(format!("platform certificate: {e}")))?,
    };
    Verifier::new(&key).map_err(|e| Failure::malformed(format!("platform key: {e}")))
}

/// The JSON line of a verified notification: `type` (`trade_status_sync`,
/// `gateway_message`, or the `notify_type`), `notify_id`, `app_id`, the main fields of
/// its type, and `params`, every parameter but `sign`, as decoded.
pub(crate) fn notification_json(notification: &Notification) -> Value {
    let params: Map<String, Value> = notification
        .params()
        .iter()
        .filter(|(key, _)| *key != "sign")
        .map(|(key, value)| (key.to_owned(), Value::String(value.to_owned())))
        .collect();
    let mut line = json!({
        "notify_id": notification.notify_id(),
        "app_id": notification.app_id(),
    });
    match notification {
        Notification::Trade(trade) => {
            line["type"] = json!("trade_status_sync");
            line["trade_status"] = json!(trade.trade_status.as_str());
            line["out_trade_no"] = json!(trade.out_trade_no);
            line["trade_no"] = json!(trade.trade_no);
            line["total_amount"] = json!(trade.total_amount);
        }
        Notification::GatewayMessage(message) => {
            line["type"] = json!("gateway_message");
            line["msg_method"] = json!(message.msg_method);
            line["biz_content"] = message.biz_content.clone();
        }
        other => {
            line["type"] = json!(other.params().get_non_empty("notify_type"));
        }
    }
    line["params"] = Value::Object(params);
    line
}

/// One stderr line per outcome.
fn print_event(event: &NotifyEvent<String>) {
    match event {
        NotifyEvent::Handled { notify_id } => {
            eprintln!("alipay-msg: notification {notify_id} handled: success")
        }
        NotifyEvent::Duplicate { notify_id } => eprintln!(
            "alipay-msg: notification {notify_id} handled before: success (not handled again)"
        ),
        NotifyEvent::Refused(reason) => eprintln!("alipay-msg: {reason}: fail"),
        NotifyEvent::HandlerFailed { notify_id, error } => {
            eprintln!("alipay-msg: notification {notify_id}: {error}: fail")
        }
        NotifyEvent::BodyUnreadable { error } => {
            eprintln!("alipay-msg: notification body unreadable ({error}): fail")
        }
        other => eprintln!("alipay-msg: {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for good in ["/", "/notify", "/alipay/notify-v1.2_x~"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in ["notify", "", "/{id}", "/:id", "/a b", "/a?b", "/*x"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }
}
