//! An axum endpoint for the payment open platform's HTTP notifications (PROTOCOL §10).
//!
//! [`Notifications`] answers the platform's POSTs: it reads the raw body (never a
//! framework-parsed form) up to the gate's limit, and lets a [`NotifyGate`] from
//! `alipay-msg-core` decide (content type, size, signature in public-key or certificate
//! mode under rule V1 or V2, our `app_id`, an optional freshness window, duplicates by
//! `notify_id`). A verified notification for us that was not handled before goes to the
//! application's handler as a typed [`Notification`]; the answer is `success` only when
//! the handler returned `Ok`, otherwise `fail` (the platform retries for about 25 h).
//! A `notify_id` already handled successfully is answered `success` without running the
//! handler again; one being handled right now is answered `fail`. Every outcome is also
//! a [`NotifyEvent`] for the application's logs (by default logged with `tracing`).
//!
//! This crate adds only axum's router and handler types (no server features) to the
//! application's tree; the application serves the router as it likes.
//!
//! ```no_run
//! use alipay_msg_axum::{Notification, Notifications, NotifyGate};
//! use alipay_msg_core::{key::PublicKey, signature::Verifier};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let key = PublicKey::from_pem_or_base64(&std::fs::read_to_string("alipay_public.pem")?)?;
//!     let gate = NotifyGate::new(Verifier::new(&key)?, "2021000000000001");
//!     let notifications = Notifications::new(gate, |n: Notification| async move {
//!         if let Notification::Trade(trade) = n {
//!             println!("{} is {}", trade.out_trade_no, trade.trade_status.as_str());
//!         }
//!         Ok::<(), std::io::Error>(()) // Ok answers `success`; Err answers `fail`
//!     });
//!     let app = axum::Router::new().route("/alipay/notify", notifications.into_method_router());
//!     axum::serve(tokio::net::TcpListener::bind("0.0.0.0:8080").await?, app).await?;
//!     Ok(())
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Router;
use http_body_util::{BodyExt, LengthLimitError, Limited};

pub use alipay_msg_core;
pub use alipay_msg_core::notify::{
    Claim, Notification, NotifyGate, NotifyResponse, RefuseReason, Verdict,
};
pub use alipay_msg_core::window::{AsyncWindowStore, SharedWindowConfig, WindowError};

type HandlerFn<E> =
    dyn Fn(Notification) -> Pin<Box<dyn Future<Output = Result<(), E>> + Send>> + Send + Sync;
type EventFn<E> = dyn Fn(&NotifyEvent<E>) + Send + Sync;

/// What happened to one notification request, for the application's logs.
#[derive(Debug)]
#[non_exhaustive]
pub enum NotifyEvent<E> {
    /// The handler returned `Ok`: answered `success`; the `notify_id` is remembered.
    Handled {
        /// The `notify_id`.
        notify_id: String,
    },
    /// The `notify_id` was handled successfully before: answered `success` without
    /// running the handler.
    Duplicate {
        /// The `notify_id`.
        notify_id: String,
    },
    /// Refused before the handler (too large, wrong content type, malformed, bad
    /// signature, another app, stale, being handled already, busy): answered `fail`.
    Refused(RefuseReason),
    /// The handler returned an error: answered `fail`; the platform's retry is handled
    /// again.
    HandlerFailed {
        /// The `notify_id`.
        notify_id: String,
        /// The handler's error.
        error: E,
    },
    /// The request body could not be read (the connection failed): answered `fail`.
    BodyUnreadable {
        /// Why.
        error: String,
    },
    /// The handler succeeded but the shared duplicate window could not record it:
    /// answered `fail` (unless the gate falls back to its local window); the platform's
    /// retry reaching this instance records it first, and answers `success` without
    /// the handler.
    SharedWindowFailed {
        /// The `notify_id`.
        notify_id: String,
        /// The store's error.
        error: WindowError,
    },
}

/// The notification endpoint: a [`NotifyGate`], the application's handler and an event
/// sink. Cheap to clone (shared state); use it as an axum route with
/// [`into_method_router`](Self::into_method_router) or [`into_router`](Self::into_router),
/// or call [`answer`](Self::answer) from a handler of your own.
pub struct Notifications<E> {
    gate: Arc<RwLock<NotifyGate>>,
    handler: Arc<HandlerFn<E>>,
    events: Arc<EventFn<E>>,
    /// The store of the shared duplicate window, when there is one.
    window: Option<Arc<dyn AsyncWindowStore>>,
}

impl<E> Clone for Notifications<E> {
    fn clone(&self) -> Self {
        Notifications {
            gate: Arc::clone(&self.gate),
            handler: Arc::clone(&self.handler),
            events: Arc::clone(&self.events),
            window: self.window.clone(),
        }
    }
}

impl<E> fmt::Debug for Notifications<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifications")
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl<E: fmt::Display + Send + 'static> Notifications<E> {
    /// An endpoint deciding with `gate` and handling notifications with `handler`: its
    /// `Ok` answers `success`, its `Err` answers `fail` (and is a
    /// [`NotifyEvent::HandlerFailed`]). Answer `Ok` only once the notification is
    /// durably handled. Events are logged with `tracing` until
    /// [`on_event`](Self::on_event) replaces that.
    pub fn new<H, F>(gate: NotifyGate, handler: H) -> Self
    where
        H: Fn(Notification) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        Notifications {
            gate: Arc::new(RwLock::new(gate)),
            handler: Arc::new(move |n| Box::pin(handler(n))),
            events: Arc::new(log_event::<E>),
            window: None,
        }
    }

    /// Shares the duplicate window with the other instances of the endpoint through
    /// `store` (e.g. `alipay_msg_redis::AsyncRedisWindow`): each `notify_id` is claimed
    /// there before the handler runs (one another instance holds is answered `fail`,
    /// one it handled `success` without the handler), and a success is recorded there
    /// before `success` is answered (module `alipay_msg_core::window`). The gate must
    /// have a shared window ([`NotifyGate::with_shared_window`], which sets the lease,
    /// the window and what happens when the store is away); without one the store is
    /// not asked. A store error is a [`RefuseReason::SharedWindow`] refusal (claim) or a
    /// [`NotifyEvent::SharedWindowFailed`] (record). A request dropped while the store
    /// is asked leaves its claim in the store until the lease ends.
    pub fn with_shared_window(mut self, store: Arc<dyn AsyncWindowStore>) -> Self {
        self.window = Some(store);
        self
    }

    /// Sends every [`NotifyEvent`] to `sink` instead of the `tracing` log.
    pub fn on_event(mut self, sink: impl Fn(&NotifyEvent<E>) + Send + Sync + 'static) -> Self {
        self.events = Arc::new(sink);
        self
    }

    /// A `POST` route answering notifications, for `Router::route(path, …)`.
    pub fn into_method_router<S>(self) -> MethodRouter<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        post(move |request: Request| {
            let this = self.clone();
            async move { this.answer(request).await }
        })
    }

    /// A router with this endpoint at `path` (`POST`), to merge or nest into the
    /// application's router.
    pub fn into_router<S>(self, path: &str) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new().route(path, self.into_method_router())
    }

    /// Answers one notification request: `200`, `text/plain`, `success` or `fail`.
    pub async fn answer(&self, request: Request) -> Response {
        respond(self.decide_and_handle(request).await)
    }

    async fn decide_and_handle(&self, request: Request) -> NotifyResponse {
        let (parts, body) = request.into_parts();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let limit = self.read_gate().limits().max_body_len;
        let body = match read_body(body, limit).await {
            Ok(body) => body,
            Err(ReadError::TooLarge) => {
                return self.refuse(RefuseReason::TooLarge { limit });
            }
            Err(ReadError::Other(error)) => {
                (self.events)(&NotifyEvent::BodyUnreadable { error });
                return NotifyResponse::Fail;
            }
        };
        // The signature check under the read lock: requests verify in parallel.
        let checked = self
            .read_gate()
            .check(content_type.as_deref(), &body, unix_ms());
        let notification = match checked {
            Ok(notification) => notification,
            Err(reason) => return self.refuse(reason),
        };
        let verdict = self
            .gate
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(notification, Instant::now());
        let verdict = match verdict {
            Verdict::Handle {
                notification,
                claim,
            } => self.claim_shared(notification, claim).await,
            other => other,
        };
        match verdict {
            Verdict::Handle {
                notification,
                claim,
            } => self.handle(notification, claim).await,
            Verdict::Duplicate { notify_id } => {
                (self.events)(&NotifyEvent::Duplicate { notify_id });
                NotifyResponse::Success
            }
            Verdict::Refuse(reason) => self.refuse(reason),
        }
    }

    /// With a shared window: the claim in the store decides the verdict.
    async fn claim_shared(&self, notification: Notification, mut claim: Claim) -> Verdict {
        let query = match &self.window {
            Some(_) => self.write_gate().claim_query(&mut claim),
            None => None,
        };
        let (Some(store), Some(query)) = (&self.window, query) else {
            return Verdict::Handle {
                notification,
                claim,
            };
        };
        let notify_id = claim.notify_id().to_owned();
        // Gives the local claim back if this future is dropped while the store is asked.
        let mut held = HeldClaim {
            gate: &self.gate,
            claim: Some(claim),
        };
        let answer = store.answer(&query).await;
        match held.claim.take() {
            Some(claim) => self
                .write_gate()
                .claimed(notification, claim, answer, Instant::now()),
            // Not reached: only this function takes the claim out of the guard.
            None => Verdict::Refuse(RefuseReason::SharedWindow {
                notify_id,
                error: WindowError("the claim was given back while the store was asked".into()),
            }),
        }
    }

    async fn handle(&self, notification: Notification, claim: Claim) -> NotifyResponse {
        let notify_id = claim.notify_id().to_owned();
        // Gives the claim back as failed if this future is dropped (the platform hung up)
        // before the handler finished, so the retry is handled again.
        let mut held = HeldClaim {
            gate: &self.gate,
            claim: Some(claim),
        };
        let outcome = (self.handler)(notification).await;
        let answer = match &self.window {
            Some(store) => {
                self.complete_shared(&mut held, store, outcome.is_ok())
                    .await
            }
            None => held.complete(outcome.is_ok()),
        };
        match outcome {
            Ok(()) => (self.events)(&NotifyEvent::Handled { notify_id }),
            Err(error) => (self.events)(&NotifyEvent::HandlerFailed { notify_id, error }),
        }
        answer
    }

    /// With a shared window: records a success (or releases a failure's claim) in the
    /// store, then gives the claim back; `success` only once recorded.
    async fn complete_shared(
        &self,
        held: &mut HeldClaim<'_>,
        store: &Arc<dyn AsyncWindowStore>,
        ok: bool,
    ) -> NotifyResponse {
        let query = match held.claim.as_ref() {
            Some(claim) => self.write_gate().completion_query(claim, ok),
            None => None,
        };
        let answer = match &query {
            Some(query) => Some(store.answer(query).await),
            None => None,
        };
        let Some(claim) = held.claim.take() else {
            return NotifyResponse::Fail;
        };
        let notify_id = claim.notify_id().to_owned();
        let (response, error) =
            self.write_gate()
                .complete_shared(claim, ok, answer, Instant::now());
        if let Some(error) = error {
            (self.events)(&NotifyEvent::SharedWindowFailed { notify_id, error });
        }
        response
    }

    fn write_gate(&self) -> std::sync::RwLockWriteGuard<'_, NotifyGate> {
        self.gate.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn refuse(&self, reason: RefuseReason) -> NotifyResponse {
        (self.events)(&NotifyEvent::Refused(reason));
        NotifyResponse::Fail
    }

    fn read_gate(&self) -> std::sync::RwLockReadGuard<'_, NotifyGate> {
        self.gate.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A claim being handled; completed as failed when dropped unfinished.
struct HeldClaim<'a> {
    gate: &'a RwLock<NotifyGate>,
    claim: Option<Claim>,
}

impl HeldClaim<'_> {
    fn complete(&mut self, ok: bool) -> NotifyResponse {
        match self.claim.take() {
            Some(claim) => self
                .gate
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .complete(claim, ok, Instant::now()),
            None => NotifyResponse::Fail,
        }
    }
}

impl Drop for HeldClaim<'_> {
    fn drop(&mut self) {
        if self.claim.is_some() {
            let _ = self.complete(false);
        }
    }
}

enum ReadError {
    TooLarge,
    Other(String),
}

async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, ReadError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(e) if e.is::<LengthLimitError>() => Err(ReadError::TooLarge),
        Err(e) => Err(ReadError::Other(e.to_string())),
    }
}

fn respond(answer: NotifyResponse) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, NotifyResponse::CONTENT_TYPE)],
        answer.body(),
    )
        .into_response()
}

fn unix_ms() -> i64 {
    // A clock before 1970 reads as 0: only the optional freshness window uses it.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The default event sink: refusals and handler failures at `warn` (a bad signature or
/// another app's notification deserves a look), the rest at `debug`/`info`.
fn log_event<E: fmt::Display>(event: &NotifyEvent<E>) {
    match event {
        NotifyEvent::Handled { notify_id } => {
            tracing::debug!(notify_id, "notification handled: success")
        }
        NotifyEvent::Duplicate { notify_id } => {
            tracing::debug!(notify_id, "notification already handled: success")
        }
        NotifyEvent::Refused(reason @ RefuseReason::InProgress { .. }) => {
            tracing::info!(%reason, "notification refused: fail")
        }
        NotifyEvent::Refused(reason) => tracing::warn!(%reason, "notification refused: fail"),
        NotifyEvent::HandlerFailed { notify_id, error } => {
            tracing::warn!(notify_id, %error, "notification handler failed: fail")
        }
        NotifyEvent::BodyUnreadable { error } => {
            tracing::info!(%error, "notification body unreadable: fail")
        }
        NotifyEvent::SharedWindowFailed { notify_id, error } => {
            tracing::warn!(notify_id, %error, "notification handled but not recorded")
        }
    }
}
