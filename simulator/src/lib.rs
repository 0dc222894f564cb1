//! A local platform simulator: the platform side of the message channel
//! ([`alipay_msg_core::server::ServerSession`]) served over real sockets, for tests,
//! demos and `alipay-msg simulate`.
//!
//! One port serves everything, plain HTTP/1.1 (no TLS): each connection's request head
//! is read (bounded, with `httparse`) and routed by method and path. `POST /admin/push`,
//! `POST /admin/notify` and `GET /admin/status` are
//! [admin endpoints](self#admin-endpoints), served here;
//! every other connection is handed to the state machine as bytes, from its first
//! byte: it answers `GET /websocket/register.do?…` and closes, checks `GET
//! /websocket?…` and, when accepted, answers `101` and speaks the websocket (framing,
//! the connection's charset, 1007 on undecodable text); anything else is `404`.
//!
//! One task owns the state machine; connections and the [`Simulator`] handle talk to it
//! through bounded channels (the sans-IO habit: the session decides, each connection
//! task only moves bytes).
//!
//! The simulator also plays the platform's other delivery path, HTTP notifications
//! (PROTOCOL §10): [`Simulator::notify`] (or `POST /admin/notify`) signs a payment
//! notification or a gateway message with the platform key (rule V1 or V2, any
//! notification charset, public-key or certificate mode), POSTs it to an `http://` URL
//! and POSTs it again on the platform's schedule ([`NOTIFY_RETRY_SCHEDULE`], scaled by
//! [`NotifyOptions::time_scale`]) until the answer is exactly `success`
//! ([`SUCCESS_ANSWER`]). Each attempt is a [`SimulatorEvent::NotificationAttempt`].
//!
//! ```no_run
//! use alipay_msg_simulator::{Simulator, SimulatorOptions};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let sim = Simulator::start(SimulatorOptions::with_test_keys()).await?;
//! // A client with the test keys (`test_keys::APP_PRIVATE_KEY`, `PLATFORM_PUBLIC_KEY`)
//! // and `sim.endpoint()` as its endpoint receives this message:
//! sim.push("alipay.open.mini.version.audit.passed", r#"{"mini_app_id":"2014072300007148"}"#).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Admin endpoints
//!
//! - `POST /admin/push`, body `{"msg_api": "…", "biz_content": {…}}` (optional
//!   `"app_id"`; `"forged": true` pushes a forgery the client must refuse) →
//!   `200 {"msg_id": "…"}` or `400 {"error": "…"}`.
//! - `POST /admin/notify`, body a notification as [`PlatformNotification::from_json`]
//!   reads it (`{"url": "http://…", "payment": {…}}` or `{"url": …, "gateway_message":
//!   {"msg_method": "…", "biz_content": {…}}}`, with optional `rule`, `charset`,
//!   `sign_type`, `certificate`, `app_id`, `notify_id`, `forged`) → `200 {"notify_id":
//!   "…"}` once signed and queued, or `400 {"error": "…"}`.
//! - `GET /admin/status` → `200 {"connections": n, "settled": bool, "queued": n,
//!   "waiting_retry": n, "in_flight": n, "acked": n, "abandoned": n,
//!   "forged_discarded": n, "forged_accepted": n, "notifications": {"posted": n,
//!   "attempts": n, "answered_success": n, "failed": n, "given_up": n, "pending": n,
//!   "forged": n, "forged_refused": n, "forged_accepted": n}}` (see
//!   [`NotificationCounts`]).
//! - `POST /admin/faults`, body `{"duplicate_consumes": n, "corrupt_consumes": n,
//!   "garbage_before_consumes": n, "withhold_produce_acks": n, "delay_produce_acks_ms":
//!   ms, "close_after_frames": n}` (all optional; replaces the armed [`FaultPlan`]) →
//!   `200` with the plan armed.
//! - `POST /admin/produce-failure`, body `{"msg_api": "…", "failure":
//!   "service_unavailable" | "consumer_not_exist" | "sys_abort" | null}` → `200`: PRODUCEs
//!   of that message API are answered `20000`/`40000` ([`ProduceFailure`]).
//! - `POST /admin/push-bulk`, body `{"msg_api": "…", "biz_content": {…}, "count": n}` →
//!   `200 {"count": n, "first_msg_id": "…", "last_msg_id": "…"}`: n copies signed once
//!   (for throughput measurements).
//! - `POST /admin/redeliver-elsewhere`, body `{"on": true}` → redeliveries go to
//!   another connection of the app than the last attempt's (several instances of a
//!   service: the redelivery reaches another instance) → `200 {"redeliver_elsewhere":
//!   bool}`.

mod admin;
mod admin_bulk;
mod admin_faults;
mod admin_spread;
mod blocking;
mod connection;
mod event;
mod http;
mod listener;
mod notification;
mod notifier;
mod options;
mod platform;
mod push_file;
mod tls;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use alipay_msg_core::endpoint::Endpoint;
use alipay_msg_core::server::{
    FaultPlan, MessageCounts, MessageState, MsgId, ProduceFailure, PushError, ServerSession,
};
use alipay_msg_core::signature::Signer;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use blocking::SimulatorHandle;
pub use event::SimulatorEvent;
pub use notification::{NotificationContent, NotificationError, PlatformNotification};
pub use notifier::{
    NextAttempt, NotificationCounts, NotifyAnswer, NotifyOptions, MAX_ANSWER_BYTES,
    NOTIFY_RETRY_SCHEDULE, SUCCESS_ANSWER,
};
pub use options::{test_keys, AppKey, SimulatorOptions};
pub use push_file::{PlatformMessage, PLATFORM_MESSAGE_EXAMPLES};

use listener::Shared;
use notifier::{Notifier, SubmitError};
use platform::{Platform, Request, Status};

/// Capacity of the platform task's input channel.
const REQUEST_QUEUE: usize = 1024;

/// Why a simulator call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimulatorError {
    /// The platform refused to queue the message.
    #[error(transparent)]
    Push(#[from] PushError),
    /// A push file could not be read or has a bad line (`line` 0: the file itself).
    #[error("{}: line {line}: {reason}", path.display())]
    PushFile {
        /// The file.
        path: PathBuf,
        /// The line, from 1 (0 when the file could not be read).
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// An HTTP notification could not be sent.
    #[error(transparent)]
    Notification(#[from] NotificationError),
    /// The simulator has stopped.
    #[error("the simulator has stopped")]
    Stopped,
}

/// A running simulator. Cheap to clone; every clone drives the same simulator, which
/// stops on [`Simulator::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    requests: mpsc::Sender<Request>,
    events: broadcast::Sender<SimulatorEvent>,
    status: watch::Receiver<Status>,
    /// Set to stop; dropping it stops too.
    stop: watch::Sender<bool>,
    local_addr: SocketAddr,
    /// Serving TLS ([`SimulatorOptions::tls`]).
    tls: bool,
    app_id: String,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Sends HTTP notifications.
    notifier: Arc<Notifier>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("local_addr", &self.inner.local_addr)
            .field("app_id", &self.inner.app_id)
            .finish_non_exhaustive()
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Simulator {
    /// Binds `options.listen`, starts serving, and pushes `options.push_file` (an
    /// unreadable or bad file is an `InvalidData` error, and nothing keeps running).
    /// [`SimulatorOptions::notify`] out of range is an `InvalidInput` error.
    pub async fn start(options: SimulatorOptions) -> io::Result<Simulator> {
        options
            .notify
            .check()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let listener = TcpListener::bind(options.listen).await?;
        let local_addr = listener.local_addr()?;
        // With TLS, `listener` is the public one, in front of a plain one on loopback.
        let (listener, tls_front) = match options.tls.clone() {
            None => (listener, None),
            Some(config) => {
                let plain = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
                (plain, Some((listener, config)))
            }
        };
        let seed = options.seed.unwrap_or_else(|| {
            <rand_core::OsRng as rand_core::RngCore>::next_u64(&mut rand_core::OsRng)
        });
        let rng = Box::new(
            <rand_xoshiro::Xoshiro256PlusPlus as rand_core::SeedableRng>::seed_from_u64(seed),
        );
        let session = ServerSession::new(options.server, rng, Instant::now(), unix_ms());
        let (requests, request_rx) = mpsc::channel(REQUEST_QUEUE);
        let (events, _) = broadcast::channel(options.event_queue.max(1));
        let (status_tx, status) = watch::channel(Status {
            settled: true,
            connections: 0,
        });
        let (stop, stop_rx) = watch::channel(false);
        let platform = Platform::new(session, events.clone(), status_tx, options.app_id.clone());
        let notifier = Arc::new(Notifier::new(
            options.notify.clone(),
            requests.clone(),
            events.clone(),
            stop_rx.clone(),
            options.app_id.clone(),
            seed,
        ));
        let shared = Shared {
            requests: requests.clone(),
            max_queued_frames: options.max_queued_frames,
            stop: stop_rx.clone(),
            notifier: Arc::clone(&notifier),
        };
        let tls = tls_front.is_some();
        let mut tasks = Vec::new();
        if let Some((public, config)) = tls_front {
            tasks.push(tokio::spawn(tls::front(
                public,
                config,
                listener.local_addr()?,
                options.max_connections,
                stop_rx.clone(),
            )));
        }
        tasks.extend([
            tokio::spawn(platform.run(request_rx, stop_rx)),
            tokio::spawn(listener::accept_loop(
                listener,
                shared,
                options.max_connections,
            )),
        ]);
        tracing::info!(%local_addr, app_id = %options.app_id, "simulator listening");
        let simulator = Simulator {
            inner: Arc::new(Inner {
                requests,
                events,
                status,
                stop,
                local_addr,
                tls,
                app_id: options.app_id,
                tasks: Mutex::new(tasks),
                notifier,
            }),
        };
        if let Some(path) = options.push_file {
            if let Err(e) = simulator.push_jsonl(&path).await {
                simulator.shutdown().await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
            }
        }
        Ok(simulator)
    }

    /// Starts a simulator on its own tokio runtime on a background thread, for tests of
    /// clients that do not run on tokio; see [`SimulatorHandle`].
    pub fn start_on_thread(options: SimulatorOptions) -> io::Result<SimulatorHandle> {
        SimulatorHandle::start(options)
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// The endpoint a client connects to: plain, or `https` when serving TLS
    /// ([`SimulatorOptions::tls`]; the certificate must name this host, an IP address).
    /// An unspecified listen address (`0.0.0.0`, `::`) becomes the loopback address.
    pub fn endpoint(&self) -> Endpoint {
        let addr = self.inner.local_addr;
        let host = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let mut endpoint = Endpoint::plain(host.to_string(), addr.port());
        endpoint.tls = self.inner.tls;
        endpoint
    }

    /// The app pushed to by default.
    pub fn app_id(&self) -> &str {
        &self.inner.app_id
    }

    /// Runs `f` on the platform state machine, inside the task that owns it (with the
    /// current time), then carries out what it output. For anything the typed methods
    /// do not cover: [`ServerSession::faults_mut`], [`ServerSession::disconnect`],
    /// [`ServerSession::message_state`], …
    pub async fn with_session<T, F>(&self, f: F) -> Result<T, SimulatorError>
    where
        T: Send + 'static,
        F: FnOnce(&mut ServerSession, Instant) -> T + Send + 'static,
    {
        self.call(move |platform, now| f(&mut platform.session, now))
            .await
    }

    async fn call<T, F>(&self, f: F) -> Result<T, SimulatorError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Platform, Instant) -> T + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(move |platform: &mut Platform, now| {
            let _ = reply.send(f(platform, now));
        });
        self.inner
            .requests
            .send(Request::Run(job))
            .await
            .map_err(|_| SimulatorError::Stopped)?;
        answer.await.map_err(|_| SimulatorError::Stopped)
    }

    /// Queues a message for the app: `biz_content` is the text of one JSON object. It
    /// is delivered, signed by the platform, as soon as a connection of the app is
    /// open, and redelivered until acknowledged SUCCESS.
    pub async fn push(&self, msg_api: &str, biz_content: &str) -> Result<MsgId, SimulatorError> {
        self.push_message(PlatformMessage {
            msg_api: msg_api.to_owned(),
            biz_content: biz_content.to_owned(),
            app_id: None,
            forged: false,
        })
        .await
    }

    /// Queues a message as described by `message` (its app, or a forgery).
    pub async fn push_message(&self, message: PlatformMessage) -> Result<MsgId, SimulatorError> {
        self.call(move |platform, now| {
            let forged = message.forged.then_some(None);
            platform.push(
                message.app_id.as_deref(),
                &message.msg_api,
                &message.biz_content,
                forged,
                now,
            )
        })
        .await?
        .map_err(SimulatorError::from)
    }

    /// Queues a forged message the client must refuse: signed with `forger` (a key
    /// that is not the platform's), or with `None` signed by the platform key over
    /// other content. It gets one attempt ([`ServerSession::push_forged`]).
    pub async fn push_forged(
        &self,
        msg_api: &str,
        biz_content: &str,
        forger: Option<Signer>,
    ) -> Result<MsgId, SimulatorError> {
        let (msg_api, biz_content) = (msg_api.to_owned(), biz_content.to_owned());
        self.call(move |platform, now| {
            platform.push(None, &msg_api, &biz_content, Some(forger.as_ref()), now)
        })
        .await?
        .map_err(SimulatorError::from)
    }

    /// Pushes every message of a JSON-lines file (see [`PlatformMessage`]), in order.
    /// A bad line stops before anything is pushed.
    pub async fn push_jsonl(&self, path: impl AsRef<Path>) -> Result<Vec<MsgId>, SimulatorError> {
        let path = path.as_ref().to_owned();
        let text = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || std::fs::read_to_string(path))
                .await
                .map_err(|e| io::Error::other(e.to_string()))
                .and_then(|r| r)
        };
        let text = text.map_err(|e| SimulatorError::PushFile {
            path: path.clone(),
            line: 0,
            reason: e.to_string(),
        })?;
        let messages = PlatformMessage::from_json_lines(&text).map_err(|(line, e)| {
            SimulatorError::PushFile {
                path: path.clone(),
                line,
                reason: e.to_string(),
            }
        })?;
        let mut ids = Vec::with_capacity(messages.len());
        for (i, message) in messages.into_iter().enumerate() {
            match self.push_message(message).await {
                Ok(id) => ids.push(id),
                Err(SimulatorError::Push(e)) => {
                    return Err(SimulatorError::PushFile {
                        path,
                        line: i + 1,
                        reason: e.to_string(),
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Ok(ids)
    }

    /// Signs `notification` with the platform key and POSTs it to its URL, again on
    /// [`NOTIFY_RETRY_SCHEDULE`] (scaled by [`NotifyOptions::time_scale`]) until the
    /// answer is exactly `success` ([`SUCCESS_ANSWER`]), at most 8 attempts; a forgery
    /// gets one. Returns its `notify_id` once it is queued; the attempts are
    /// [`SimulatorEvent::NotificationAttempt`]s and [`Simulator::notification_counts`].
    ///
    /// Fails with [`SimulatorError::Notification`] for a bad request (URL not
    /// `http://`, unknown charset, certificate mode without a platform certificate SN,
    /// too many pending, …).
    ///
    /// ```no_run
    /// use alipay_msg_simulator::{PlatformNotification, Simulator, SimulatorOptions};
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// let sim = Simulator::start(SimulatorOptions::with_test_keys().notify_time_scale(0.001)).await?;
    /// let notification = PlatformNotification::payment("http://127.0.0.1:8080/alipay/notify")
    ///     .with_field("out_trade_no", "20261120102126001")
    ///     .with_field("total_amount", "88.88");
    /// let notify_id = sim.notify(notification).await?;
    /// sim.wait_notifications_settled().await?;
    /// println!("{notify_id}: {:?}", sim.notification_counts());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn notify(
        &self,
        notification: PlatformNotification,
    ) -> Result<String, SimulatorError> {
        self.inner
            .notifier
            .submit(notification)
            .await
            .map_err(|e| match e {
                SubmitError::Notification(e) => SimulatorError::Notification(e),
                SubmitError::Stopped => SimulatorError::Stopped,
            })
    }

    /// Counts of the HTTP notifications sent so far.
    pub fn notification_counts(&self) -> NotificationCounts {
        self.inner.notifier.counts()
    }

    /// Waits until no HTTP notification is pending: each was answered `success`, given
    /// up, or (a forgery) had its one attempt. With the real schedule that can take 25
    /// hours: wrap it in `tokio::time::timeout`.
    pub async fn wait_notifications_settled(&self) -> Result<(), SimulatorError> {
        if self.inner.notifier.wait_settled().await {
            Ok(())
        } else {
            Err(SimulatorError::Stopped)
        }
    }

    /// Replaces the armed faults ([`FaultPlan`]).
    pub async fn set_faults(&self, plan: FaultPlan) -> Result<(), SimulatorError> {
        self.with_session(move |session, _| session.set_faults(plan))
            .await
    }

    /// Makes PRODUCEs of `msg_api` fail with `failure` (`None` removes it).
    pub async fn set_produce_failure(
        &self,
        msg_api: &str,
        failure: Option<ProduceFailure>,
    ) -> Result<(), SimulatorError> {
        let msg_api = msg_api.to_owned();
        self.with_session(move |session, _| session.set_produce_failure(&msg_api, failure))
            .await
    }

    /// Message counts by state, and totals.
    pub async fn counts(&self) -> Result<MessageCounts, SimulatorError> {
        self.with_session(|session, _| session.counts()).await
    }

    /// No genuine message is queued, waiting for redelivery or in flight.
    pub async fn is_settled(&self) -> Result<bool, SimulatorError> {
        self.with_session(|session, _| session.is_settled()).await
    }

    /// Messages acknowledged SUCCESS, in ack order, with the attempts each took.
    pub async fn acked_messages(&self) -> Result<Vec<(MsgId, u32)>, SimulatorError> {
        self.with_session(|session, _| session.acked_messages())
            .await
    }

    /// Where a message stands.
    pub async fn message_state(
        &self,
        msg_id: &MsgId,
    ) -> Result<Option<MessageState>, SimulatorError> {
        let msg_id = msg_id.clone();
        self.with_session(move |session, _| session.message_state(msg_id.as_str()))
            .await
    }

    /// Waits until no genuine message is queued, waiting or in flight (wrap it in
    /// `tokio::time::timeout`).
    pub async fn wait_settled(&self) -> Result<(), SimulatorError> {
        let mut status = self.inner.status.clone();
        status
            .wait_for(|s| s.settled)
            .await
            .map(|_| ())
            .map_err(|_| SimulatorError::Stopped)
    }

    /// Open websocket connections (as of the last input the platform handled).
    pub fn connection_count(&self) -> usize {
        self.inner.status.borrow().connections
    }

    /// Waits until at least `n` websocket connections are open.
    pub async fn wait_connections(&self, n: usize) -> Result<(), SimulatorError> {
        let mut status = self.inner.status.clone();
        status
            .wait_for(|s| s.connections >= n)
            .await
            .map(|_| ())
            .map_err(|_| SimulatorError::Stopped)
    }

    /// Waits until no websocket connection is open.
    pub async fn wait_disconnected(&self) -> Result<(), SimulatorError> {
        let mut status = self.inner.status.clone();
        status
            .wait_for(|s| s.connections == 0)
            .await
            .map(|_| ())
            .map_err(|_| SimulatorError::Stopped)
    }

    /// What happens, from now on: registers, connections, pushes, deliveries, acks,
    /// redeliveries, PRODUCEs. Each event prints as one line.
    pub fn events(&self) -> broadcast::Receiver<SimulatorEvent> {
        self.inner.events.subscribe()
    }

    /// Closes every websocket connection from the platform side (a platform restart, a
    /// network blip): their unacknowledged messages are redelivered. Returns how many
    /// were open.
    pub async fn disconnect_all(&self) -> Result<usize, SimulatorError> {
        self.with_session(|session, now| {
            let mut apps: Vec<String> = session.config().apps.keys().cloned().collect();
            apps.sort();
            let mut closed = 0;
            for app in apps {
                for conn in session.connections_of(&app) {
                    session.disconnect(conn, now);
                    closed += 1;
                }
            }
            closed
        })
        .await
    }

    /// Stops accepting, closes every connection (websockets get a close frame), stops
    /// sending notifications and waits for the simulator's tasks to end (a few seconds
    /// at most).
    pub async fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        // A poisoned lock means a panic while taking the handles, which cannot happen.
        let tasks = std::mem::take(&mut *self.inner.tasks.lock().expect("lock not poisoned"));
        for task in tasks {
            let _ = task.await;
        }
        self.inner.notifier.shutdown().await;
    }
}
