//! The one task that owns the [`ServerSession`]: connections and the handle talk to it
//! through a bounded channel; it feeds every input to the session, drains every output
//! (frames to connection writers, closes, events to subscribers) and sleeps until the
//! session's next deadline.

use std::collections::HashMap;
use std::time::Instant;

use alipay_msg_core::charset::{Charset, MalformedText};
use alipay_msg_core::server::{ConnectionId, ServerOutput, ServerSession, UpgradeRefusal};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::event::SimulatorEvent;
use super::listener::stop_requested;

/// Work run on the session by the handle ([`super::Simulator::with_session`] and every
/// typed method built on it).
pub(super) type Job = Box<dyn FnOnce(&mut Platform, Instant) + Send>;

/// An input for the platform task.
pub(super) enum Request {
    /// `GET /websocket/register.do?…`: answer with the HTTP bytes.
    Register {
        target: String,
        reply: oneshot::Sender<Vec<u8>>,
    },
    /// `GET /websocket?…` with valid websocket headers: accept or refuse. On success
    /// the frames for the connection go to `writer`, and the answer carries the
    /// connection's charset (its frames' bytes, both ways, PROTOCOL §4).
    Upgrade {
        target: String,
        cookie: Option<String>,
        writer: mpsc::Sender<String>,
        reply: oneshot::Sender<Result<(ConnectionId, Charset), UpgradeRefusal>>,
    },
    /// A text frame from a client, decoded in the connection's charset.
    Text { conn: ConnectionId, text: String },
    /// A client sent a text frame that is not valid in the connection's charset; the
    /// connection task closed the websocket with 1007, as the platform's Java client
    /// does (PROTOCOL §4).
    Undecodable {
        conn: ConnectionId,
        error: MalformedText,
    },
    /// A client connection ended.
    Closed { conn: ConnectionId },
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
    /// The writer of each open connection; dropping one closes the connection.
    writers: HashMap<ConnectionId, mpsc::Sender<String>>,
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
            Request::Register { target, reply } => {
                let answer = self.session.handle_register(&target, now);
                let _ = reply.send(answer.to_http_bytes());
            }
            Request::Upgrade {
                target,
                cookie,
                writer,
                reply,
            } => {
                let result = self.session.accept_upgrade(&target, cookie.as_deref(), now);
                if let Ok(conn) = &result {
                    // Registered before draining: queued messages may go out at once.
                    self.writers.insert(*conn, writer);
                }
                let answer = result.clone().map(|conn| {
                    let charset = self.session.connection_charset(conn);
                    // An accepted connection is open until the next input.
                    (conn, charset.unwrap_or_default())
                });
                if reply.send(answer).is_err() {
                    // The connection task is gone before the handshake finished.
                    if let Ok(conn) = result {
                        self.writers.remove(&conn);
                        self.session.handle_closed(conn, now);
                    }
                }
            }
            Request::Text { conn, text } => self.session.handle_text(conn, &text, now),
            Request::Undecodable { conn, error } => {
                let _ = self
                    .events
                    .send(SimulatorEvent::UndecodableText { conn, error });
                // Closed by the platform side: its messages in flight are redelivered.
                self.writers.remove(&conn);
                self.session.disconnect(conn, now);
            }
            Request::Closed { conn } => {
                self.writers.remove(&conn);
                self.session.handle_closed(conn, now);
            }
            Request::Run(job) => job(self, now),
        }
    }

    /// Carries out every output of the session (call after every input).
    pub(super) fn drain(&mut self) {
        while let Some(output) = self.session.poll_output() {
            match output {
                ServerOutput::Send { conn, text } => self.send(conn, text),
                ServerOutput::Close { conn } => {
                    // The writer sends what is queued, then the close frame.
                    self.writers.remove(&conn);
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
            connections: self.writers.len(),
        };
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }

    fn send(&mut self, conn: ConnectionId, text: String) {
        let Some(writer) = self.writers.get(&conn) else {
            return;
        };
        match writer.try_send(text) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                // Never block the platform on one slow client: drop it, as a real
                // server would, and redeliver its messages elsewhere.
                tracing::warn!(%conn, "client is not reading; closing the connection");
                self.writers.remove(&conn);
                self.session.disconnect(conn, Instant::now());
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.writers.remove(&conn);
                self.session.handle_closed(conn, Instant::now());
            }
        }
    }
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
        self.writers.len()
    }
}
