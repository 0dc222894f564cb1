//! The one port: accepts TCP connections, reads each request head and routes it: the
//! admin endpoints (push, notify, status) here, everything else (`register.do`, the websocket upgrade, unknown
//! paths) to the platform session as bytes ([`super::connection`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use super::http;
use super::notifier::Notifier;
use super::platform::Request;
use super::{admin, admin_bulk, admin_faults, admin_spread, connection};

/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long connections get to finish when the simulator stops.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// What every connection task needs.
#[derive(Clone)]
pub(super) struct Shared {
    pub(super) requests: mpsc::Sender<Request>,
    pub(super) max_queued_frames: usize,
    pub(super) stop: watch::Receiver<bool>,
    /// Sends the HTTP notifications of `POST /admin/notify`.
    pub(super) notifier: Arc<Notifier>,
}

/// Accepts connections until `stop`, then gives the open ones [`STOP_GRACE`] to end
/// (the platform task closes websockets when it stops) and aborts the rest.
pub(super) async fn accept_loop(listener: TcpListener, shared: Shared, max_connections: usize) {
    let stop = shared.stop.clone();
    serve_until_stopped(
        listener,
        stop,
        max_connections,
        "connections",
        STOP_GRACE,
        move |stream, peer| serve(stream, peer, shared.clone()),
    )
    .await;
    tracing::debug!("simulator listener ended");
}

/// The accept loop of every listener of the simulator: runs `serve` on a task of its
/// own for each connection, at most `max_connections` at once (further ones, `what`
/// in the log, are closed at once), until `stop`; then gives the tasks `grace` to end
/// and aborts the rest. A failed accept (out of file descriptors and the like) waits
/// 50 ms and goes on.
pub(super) async fn serve_until_stopped<F, Fut>(
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    max_connections: usize,
    what: &'static str,
    grace: Duration,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            () = stop_requested(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = limit.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, max_connections, "too many {what}; closing");
                        continue;
                    };
                    let served = serve(stream, peer);
                    tasks.spawn(async move {
                        served.await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    tasks.shutdown().await;
}

/// One TCP connection: read the head, route it.
async fn serve(mut stream: TcpStream, peer: SocketAddr, shared: Shared) {
    let _ = stream.set_nodelay(true);
    let head = match tokio::time::timeout(HEAD_TIMEOUT, http::read_head(&mut stream)).await {
        Ok(Ok(head)) => head,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "no request head");
            if let Some(status) = e.status() {
                http::answer(&mut stream, &http::text_response(status, &e.to_string())).await;
            }
            return;
        }
        Err(_) => {
            http::answer(
                &mut stream,
                &http::text_response(408, "request head timed out"),
            )
            .await;
            return;
        }
    };
    tracing::debug!(%peer, method = %head.method, target = %head.target, "request");
    match (head.method.as_str(), head.path()) {
        ("POST", admin::PUSH_PATH) => admin::push(stream, head, &shared).await,
        ("GET", admin::STATUS_PATH) => admin::status(stream, &shared).await,
        ("POST", admin::NOTIFY_PATH) => admin::notify(stream, head, &shared).await,
        ("POST", admin_faults::FAULTS_PATH) => admin_faults::faults(stream, head, &shared).await,
        ("POST", admin_faults::PRODUCE_FAILURE_PATH) => {
            admin_faults::produce_failure(stream, head, &shared).await
        }
        ("POST", admin_bulk::PUSH_BULK_PATH) => admin_bulk::push_bulk(stream, head, &shared).await,
        ("POST", admin_spread::REDELIVER_ELSEWHERE_PATH) => {
            admin_spread::redeliver_elsewhere(stream, head, &shared).await
        }
        (
            _,
            admin::PUSH_PATH
            | admin::STATUS_PATH
            | admin::NOTIFY_PATH
            | admin_faults::FAULTS_PATH
            | admin_faults::PRODUCE_FAILURE_PATH
            | admin_bulk::PUSH_BULK_PATH
            | admin_spread::REDELIVER_ELSEWHERE_PATH,
        ) => {
            http::answer(&mut stream, &http::text_response(405, "method not allowed")).await;
        }
        // register.do, the upgrade and anything else: the session's, from the first
        // byte (it hands back paths that are not the platform's).
        _ => connection::pump(stream, head, shared).await,
    }
}

/// The answer when the platform task has stopped.
pub(super) fn stopped() -> Vec<u8> {
    http::text_response(503, "the simulator is stopping")
}

/// Resolves once the stop flag is set or its sender is gone.
pub(super) async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
