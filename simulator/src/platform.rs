//! The one task that owns the [`ServerSession`]: connections and the handle talk to it
//! through a bounded channel; it feeds every input to the session (bytes as read),
//! drains every output (bytes to connection writers, closes, events to subscribers) and
//! sleeps until the session's next deadline.

use std::collections::HashMap;
use std::io;
use std::time::Instant;

use alipay_msg_core::server::{
    ConnectionId, ServerEvent, ServerInput, ServerOutput, ServerSession,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::event::SimulatorEvent;
use super::http;
use super::listener::stop_requested;

/// Work run on the session by the handle ([`super::Simulator::with_session`] and every
/// typed method built on it).
pub(super) type Job = Box<dyn FnOnce(&mut Platform, Instant) + Send>;

/// An input for the platform task.
pub(super) enum Request {
    /// A connection for the session, with its first bytes (the request head the
    /// listener read, and what followed): the session's writes for it go to `writer`.
    /// The answer is its id, `None` when the session refuses more connections.
    Accept {
        writer: mpsc::Sender<Vec<u8>>,
        first: Vec<u8>,
        reply: oneshot::Sender<Option<ConnectionId>>,
    },
    /// Bytes read from a connection.
    Bytes { conn: ConnectionId, bytes: Vec<u8> },
    /// A connection ended (`error`: how, when not a clean end of stream).
    Closed {
        conn: ConnectionId,
        error: Option<io::ErrorKind>,
    },
    /// Work from the handle.
    Run(Job),
}

/// What the handle can see without asking the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Status {
    /// No genuine message is queued, waiting or in flight.
    pub(super) settled: bool,
    /// Open websocket connections.
    pub(super) connections: usize,
}

/// The platform task's state.
pub(super) struct Platform {
    pub(super) session: ServerSession,
    /// The writer of each connection the session knows; dropping one closes the
    /// connection once what it queued is written.
    writers: HashMap<ConnectionId, mpsc::Sender<Vec<u8>>>,
    pub(super) events: broadcast::Sender<SimulatorEvent>,
    status: watch::Sender<Status>,
    /// The app pushed to by default.
    pub(super) app_id: String,
}

impl Platform {
    pub(super) fn new(
        session: ServerSession,
        events: broadcast::Sender<SimulatorEvent>,
        status: watch::Sender<Status>,
        app_id: String,
    ) -> Self {
        Platform {
            session,
            writers: HashMap::new(),
            events,
            status,
            app_id,
        }
    }

    /// Serves requests until `stop` is set (or its sender dropped), then closes every
    /// connection.
    pub(super) async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            self.drain();
            let deadline = self.session.poll_timeout();
            tokio::select! {
                biased;
                () = stop_requested(&mut stop) => break,
                request = requests.recv() => match request {
                    Some(request) => self.handle(request, Instant::now()),
                    None => break,
                },
                () = sleep_until(deadline) => self.session.handle_timeout(Instant::now()),
            }
        }
        let now = Instant::now();
        let open: Vec<ConnectionId> = self.writers.keys().copied().collect();
        for conn in open {
            self.session.disconnect(conn, now);
        }
        self.drain();
        self.writers.clear();
        tracing::debug!("simulator platform task ended");
    }

    fn handle(&mut self, request: Request, now: Instant) {
        match request {
            Request::Accept {
                writer,
                first,
                reply,
            } => {
                let Ok(conn) = self.session.accept(now) else {
                    let _ = reply.send(None);
                    return;
                };
                // Registered before the first bytes: the answer may go out at once.
                self.writers.insert(conn, writer);
                if reply.send(Some(conn)).is_err() {
                    // The connection task is gone already.
                    self.lost(conn, now);
                    return;
                }
                let input = ServerInput::Bytes {
                    conn,
                    bytes: &first,
                };
                self.session.handle_input(input, now);
            }
            Request::Bytes { conn, bytes } => {
                let input = ServerInput::Bytes {
                    conn,
                    bytes: &bytes,
                };
                self.session.handle_input(input, now);
            }
            Request::Closed { conn, error } => {
                self.writers.remove(&conn);
                self.session
                    .handle_input(ServerInput::Closed { conn, error }, now);
            }
            Request::Run(job) => job(self, now),
        }
    }

    /// Carries out every output of the session (call after every input).
    pub(super) fn drain(&mut self) {
        while let Some(output) = self.session.poll_output() {
            match output {
                ServerOutput::Write { conn, bytes } => self.write(conn, bytes),
                ServerOutput::Close { conn } => {
                    // The connection writes what is queued, then closes.
                    self.writers.remove(&conn);
                }
                ServerOutput::Foreign { conn, request } => {
                    // The listener routes the admin endpoints itself: nothing else
                    // is served here.
                    tracing::debug!(%conn, target = %request.target, "no such path");
                    self.write(conn, http::text_response(404, "not found"));
                    self.writers.remove(&conn);
                }
                ServerOutput::Event(ServerEvent::UndecodableText { conn, error }) => {
                    let _ = self
                        .events
                        .send(SimulatorEvent::UndecodableText { conn, error });
                }
                ServerOutput::Event(event) => {
                    // No subscriber is fine.
                    let _ = self.events.send(SimulatorEvent::Server(event));
                }
                _ => {}
            }
        }
        let status = Status {
            settled: self.session.is_settled(),
            connections: self.session.connection_count(),
        };
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }

    fn write(&mut self, conn: ConnectionId, bytes: Vec<u8>) {
        let Some(writer) = self.writers.get(&conn) else {
            return;
        };
        match writer.try_send(bytes) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Never block the platform on one slow client: drop it, as a real
                // server would, and redeliver its messages elsewhere.
                tracing::warn!(%conn, "client is not reading; closing the connection");
                self.writers.remove(&conn);
                let now = Instant::now();
                self.session.disconnect(conn, now);
                self.lost(conn, now);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => self.lost(conn, Instant::now()),
        }
    }

    /// The connection task is gone: the session forgets the connection.
    fn lost(&mut self, conn: ConnectionId, now: Instant) {
        self.writers.remove(&conn);
        let input = ServerInput::Closed {
            conn,
            error: Some(io::ErrorKind::BrokenPipe),
        };
        self.session.handle_input(input, now);
    }
}

/// Runs `job` on the platform task (with the current time) and returns its result;
/// `None` when the task has stopped.
pub(super) async fn call<T: Send + 'static>(
    requests: &mpsc::Sender<Request>,
    job: impl FnOnce(&mut Platform, Instant) -> T + Send + 'static,
) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    let request = Request::Run(Box::new(move |platform, now| {
        let _ = reply.send(job(platform, now));
    }));
    requests.send(request).await.ok()?;
    answer.await.ok()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl Platform {
    /// Queues a message for `app_id` (default: the simulator's app) and reports it.
    /// `forged`: `Some(forger)` pushes a forgery signed by `forger`, or with `None`
    /// signed by the platform over other content.
    pub(super) fn push(
        &mut self,
        app_id: Option<&str>,
        msg_api: &str,
        biz_content: &str,
        forged: Option<Option<&alipay_msg_core::signature::Signer>>,
        now: Instant,
    ) -> Result<alipay_msg_core::server::MsgId, alipay_msg_core::server::PushError> {
        let app_id = app_id.unwrap_or(&self.app_id).to_owned();
        let msg_id = match forged {
            None => self.session.push(&app_id, msg_api, biz_content, now)?,
            Some(forger) => self
                .session
                .push_forged(&app_id, msg_api, biz_content, forger, now)?,
        };
        // Sent before the session's own events of this push (drained afterwards).
        let _ = self.events.send(SimulatorEvent::Pushed {
            msg_id: msg_id.clone(),
            app_id,
            msg_api: msg_api.to_owned(),
            forged: forged.is_some(),
        });
        Ok(msg_id)
    }

    /// Open websocket connections.
    pub(super) fn connection_count(&self) -> usize {
        self.session.connection_count()
    }
}
