//! The endpoint decision for HTTP notifications (PROTOCOL §10): raw request in,
//! [`Verdict`] out, with duplicate suppression by `notify_id`.
//!
//! The rule is on [`NotifyGate`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use super::{FormLimits, Notification, NotifyError, NotifyResponse};
use crate::client::dedup::DuplicateWindow;
use crate::sign_content::Rule;
use crate::signature::Verifier;
use crate::window::{
    InvalidWindowSetting, QueryId, SharedWindowConfig, StoreFailure, Tokens, WindowAnswer,
    WindowError, WindowKey, WindowKind, WindowOp, WindowQuery,
};

/// The content type the platform posts notifications with (PROTOCOL §10).
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Default number of handled `notify_id`s remembered: 65 536.
pub const DEFAULT_DUPLICATE_CAPACITY: usize = 65_536;

/// Default time a handled `notify_id` is remembered: 25 hours, the span over which the
/// platform retries a notification not answered `success` (PROTOCOL §10).
pub const DEFAULT_DUPLICATE_MAX_AGE: Duration = Duration::from_secs(25 * 3600);

/// Default number of notifications handled at once: 1024.
pub const DEFAULT_MAX_IN_PROGRESS: usize = 1024;

/// Default time after which a claim never completed is forgotten: 10 minutes.
pub const DEFAULT_CLAIM_TIMEOUT: Duration = Duration::from_secs(600);

/// Quoted input in a [`RefuseReason`] is cut to this many characters.
const QUOTE_MAX: usize = 64;

/// What to do with one notification request: the outcome of [`NotifyGate::decide`].
#[derive(Debug)]
#[must_use]
pub enum Verdict {
    /// A verified notification for us, not handled before and not being handled: run
    /// the handler, then pass the claim to [`NotifyGate::complete`] with its outcome and
    /// answer what that returns (`success` only when the handler succeeded).
    Handle {
        /// The verified, typed notification.
        notification: Notification,
        /// The claim on its `notify_id`; give it back to [`NotifyGate::complete`].
        claim: Claim,
    },
    /// A verified notification whose `notify_id` was already handled successfully:
    /// answer `success` at once, without running the handler again.
    Duplicate {
        /// The `notify_id`.
        notify_id: String,
    },
    /// Not accepted: answer `fail` (the platform retries). Log the reason.
    Refuse(RefuseReason),
}

impl Verdict {
    /// The answer when it can be given without running the handler: `success` for a
    /// duplicate, `fail` for a refusal, `None` for [`Handle`](Self::Handle).
    pub fn immediate_response(&self) -> Option<NotifyResponse> {
        match self {
            Verdict::Handle { .. } => None,
            Verdict::Duplicate { .. } => Some(NotifyResponse::Success),
            Verdict::Refuse(_) => Some(NotifyResponse::Fail),
        }
    }
}

/// A claim on a `notify_id` being handled, from [`Verdict::Handle`]. While it is held,
/// the same `notify_id` is refused with [`RefuseReason::InProgress`]. Give it back to
/// [`NotifyGate::complete`]; a claim that is dropped instead is forgotten after the
/// [claim timeout](NotifyGate::with_claim_timeout).
#[derive(Debug, PartialEq, Eq)]
#[must_use = "give the claim back to NotifyGate::complete"]
pub struct Claim {
    notify_id: String,
    serial: u64,
    /// Shared window: the token of the claim asked for ([`NotifyGate::claim_query`]).
    token: Option<String>,
}

impl Claim {
    /// The `notify_id` claimed.
    pub fn notify_id(&self) -> &str {
        &self.notify_id
    }
}

/// Why a notification request was refused (answered `fail`). Quoted input is cut to 64
/// characters; no variant carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefuseReason {
    /// The body is larger than the limit.
    #[error("notification body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The `Content-Type` is absent or not `application/x-www-form-urlencoded`.
    #[error("notification content type {got:?} is not application/x-www-form-urlencoded")]
    ContentType {
        /// The content type received (cut to 64 characters), `None` when absent.
        got: Option<String>,
    },
    /// The body is not a notification this crate can check (see
    /// [`NotifyError::is_malformed`]), or lacks `notify_id` or `app_id`.
    #[error("malformed notification: {0}")]
    Malformed(#[source] NotifyError),
    /// The body is well formed but its signature does not verify with the platform key.
    #[error("notification refused: {0}")]
    BadSignature(#[source] NotifyError),
    /// The verified notification is for another app.
    #[error("notification is for app_id {app_id:?}, not ours")]
    ForeignAppId {
        /// The notification's `app_id` (cut to 64 characters).
        app_id: String,
    },
    /// The notification's time is outside the freshness window.
    #[error("notification {field} is {age_ms} ms from now, outside the window of {window:?}")]
    Stale {
        /// `notify_time` or `utc_timestamp`.
        field: &'static str,
        /// Now minus the notification's time, in milliseconds (negative: in the future).
        age_ms: i64,
        /// The window.
        window: Duration,
    },
    /// A freshness window is set but the notification's time is absent or unreadable.
    #[error("notification time {field} is absent or unreadable")]
    NoTime {
        /// `notify_time` or `utc_timestamp`.
        field: &'static str,
    },
    /// The same `notify_id` is being handled right now: the platform retries later.
    #[error("notification {notify_id:?} is being handled already")]
    InProgress {
        /// The `notify_id` (cut to 64 characters).
        notify_id: String,
    },
    /// Another endpoint instance holds a live claim on the `notify_id` in the shared
    /// duplicate window (it is handling it): the platform retries later.
    #[error("notification {notify_id:?} is being handled by another instance")]
    ClaimedElsewhere {
        /// The `notify_id` (cut to 64 characters).
        notify_id: String,
    },
    /// The shared duplicate window could not answer (and the gate answers `fail` then,
    /// [`StoreFailure::Fail`]), or the success could not be recorded there yet.
    #[error("notification {notify_id:?}: {error}")]
    SharedWindow {
        /// The `notify_id` (cut to 64 characters).
        notify_id: String,
        /// The store's error.
        error: WindowError,
    },
    /// As many notifications as allowed are being handled already.
    #[error("{limit} notifications are being handled already")]
    Busy {
        /// The limit ([`NotifyGate::with_max_in_progress`]).
        limit: usize,
    },
}

impl RefuseReason {
    /// Whether the request was not shown to come from the platform (a bad signature).
    pub fn is_signature_failure(&self) -> bool {
        matches!(self, RefuseReason::BadSignature(_))
    }

    fn from_notify_error(e: NotifyError) -> Self {
        match e {
            NotifyError::BodyTooLarge { limit, .. } => RefuseReason::TooLarge { limit },
            e if e.is_signature_failure() => RefuseReason::BadSignature(e),
            e => RefuseReason::Malformed(e),
        }
    }
}

/// The runtime-neutral notification endpoint: configuration (platform key, our
/// `app_id`, [`Rule`], limits, optional freshness window) and state (a bounded window
/// of handled `notify_id`s and a bounded set of those being handled).
///
/// The rule, in order (the first that fails decides):
///
/// 1. the `Content-Type` is `application/x-www-form-urlencoded` (parameters such as
///    `charset` allowed and ignored: the body's own `charset` parameter decides);
/// 2. the body is at most [`FormLimits::max_body_len`] bytes;
/// 3. the body decodes and its signature verifies with the platform key under the
///    configured [`Rule`] ([`verify_with`](super::verify_with)), and it has a `notify_id`
///    and an `app_id`;
/// 4. the `app_id` is ours;
/// 5. when a freshness window is set (off by default), `notify_time` (payment
///    notifications) or `utc_timestamp` (gateway messages) is within it;
/// 6. a `notify_id` already handled successfully is a [`Verdict::Duplicate`]: answer
///    `success` without handling it again; one being handled right now is refused
///    ([`RefuseReason::InProgress`]: answer `fail`, the platform retries later);
/// 7. anything else is [`Verdict::Handle`]: run the handler, then
///    [`NotifyGate::complete`] with its outcome. Success remembers the `notify_id` (for
///    [`DEFAULT_DUPLICATE_MAX_AGE`], the platform's retry span); failure forgets the
///    claim, so the platform's retry is handled again.
///
/// Signature first: a body that does not verify never reaches the duplicate check, so it
/// can never be answered `success`.
///
/// ```
/// use std::time::Instant;
/// use alipay_msg_core::key::PublicKey;
/// use alipay_msg_core::notify::{NotifyGate, NotifyResponse, Verdict};
/// use alipay_msg_core::signature::Verifier;
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");
/// let pem = std::fs::read_to_string(format!("{dir}/vectors/keys/alipay_public.pem"))?;
/// let verifier = Verifier::new(&PublicKey::from_pem_or_base64(&pem)?)?;
/// let mut gate = NotifyGate::new(verifier, "2021000000000001");
///
/// let body = std::fs::read(format!("{dir}/notify/trade_notify_rsa2_v1.txt"))?;
/// let body = body.trim_ascii_end();
/// let form = Some("application/x-www-form-urlencoded; charset=utf-8");
/// let answer = match gate.decide(form, body, Instant::now(), 1_795_430_400_000) {
///     Verdict::Handle { notification, claim } => {
///         let handled: Result<(), ()> = Ok(()); // handle(notification) in the application
///         gate.complete(claim, handled.is_ok(), Instant::now())
///     }
///     Verdict::Duplicate { .. } => NotifyResponse::Success,
///     Verdict::Refuse(reason) => {
///         eprintln!("notification refused: {reason}");
///         NotifyResponse::Fail
///     }
/// };
/// assert_eq!(answer.body(), "success");
/// // The platform's retry of the same notify_id: success, without handling it again.
/// let again = gate.decide(form, body, Instant::now(), 1_795_430_400_000);
/// assert!(matches!(again, Verdict::Duplicate { .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct NotifyGate {
    verifier: Verifier,
    app_id: String,
    rule: Rule,
    limits: FormLimits,
    freshness: Option<Duration>,
    max_in_progress: usize,
    claim_timeout: Duration,
    handled: DuplicateWindow,
    /// `notify_id` → (claim serial, claimed at).
    in_progress: HashMap<String, (u64, Instant)>,
    next_serial: u64,
    /// The shared duplicate window, when configured.
    shared: Option<SharedNotify>,
}

/// The gate's side of a shared duplicate window.
#[derive(Debug)]
struct SharedNotify {
    config: SharedWindowConfig,
    tokens: Tokens,
    next_query: u64,
    /// Handled here but not recorded in the shared window (at most
    /// [`DEFAULT_MAX_IN_PROGRESS`] × 8): the next delivery records it before `success`.
    unrecorded: HashSet<String>,
}

/// Most successes remembered as not recorded in the shared window.
const MAX_UNRECORDED: usize = DEFAULT_MAX_IN_PROGRESS * 8;

impl fmt::Debug for NotifyGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyGate")
            .field("key_fingerprint", &self.verifier.key_fingerprint())
            .field("app_id", &self.app_id)
            .field("rule", &self.rule)
            .field("limits", &self.limits)
            .field("freshness", &self.freshness)
            .field("handled", &self.handled.len())
            .field("in_progress", &self.in_progress.len())
            .finish_non_exhaustive()
    }
}

impl NotifyGate {
    /// A gate for notifications to `app_id`, verified with the platform key (public-key
    /// mode: the platform public key; certificate mode: the key of the platform
    /// certificate, [`Certificate::public_key`](crate::cert::Certificate::public_key)).
    /// [`Rule::V1`] (payment notifications), the default [`FormLimits`], no freshness
    /// window, [`DEFAULT_DUPLICATE_CAPACITY`] ids remembered for
    /// [`DEFAULT_DUPLICATE_MAX_AGE`], [`DEFAULT_MAX_IN_PROGRESS`],
    /// [`DEFAULT_CLAIM_TIMEOUT`].
    pub fn new(verifier: Verifier, app_id: impl Into<String>) -> Self {
        NotifyGate {
            verifier,
            app_id: app_id.into(),
            rule: Rule::V1,
            limits: FormLimits::DEFAULT,
            freshness: None,
            max_in_progress: DEFAULT_MAX_IN_PROGRESS,
            claim_timeout: DEFAULT_CLAIM_TIMEOUT,
            handled: DuplicateWindow::new(DEFAULT_DUPLICATE_CAPACITY, DEFAULT_DUPLICATE_MAX_AGE),
            in_progress: HashMap::new(),
            next_serial: 0,
            shared: None,
        }
    }

    /// Shares the duplicate window with the other instances of the endpoint (module
    /// [`crate::window`]): after [`admit`](Self::admit) gives
    /// [`Verdict::Handle`], ask the store [`claim_query`](Self::claim_query) and pass
    /// the answer to [`claimed`](Self::claimed), which gives the final verdict; after
    /// the handler, ask [`completion_query`](Self::completion_query) and pass its answer
    /// to [`complete_shared`](Self::complete_shared). `token_seed` makes this gate's
    /// claim tokens unique among the instances: take it from the operating system's
    /// random source. Off by default (the local window alone).
    ///
    /// Errors: a setting out of range ([`SharedWindowConfig::check`]).
    pub fn with_shared_window(
        mut self,
        config: SharedWindowConfig,
        token_seed: u64,
    ) -> Result<Self, InvalidWindowSetting> {
        config.check()?;
        self.shared = Some(SharedNotify {
            config,
            tokens: Tokens::new(token_seed),
            next_query: 0,
            unrecorded: HashSet::new(),
        });
        Ok(self)
    }

    /// Whether a shared window is configured.
    pub fn has_shared_window(&self) -> bool {
        self.shared.is_some()
    }

    fn window_query(&mut self, notify_id: &str, op: WindowOp) -> Option<WindowQuery> {
        let shared = self.shared.as_mut()?;
        shared.next_query += 1;
        Some(WindowQuery {
            id: QueryId(shared.next_query),
            key: WindowKey {
                app_id: self.app_id.clone(),
                kind: WindowKind::Notify,
                id: notify_id.to_owned(),
            },
            op,
        })
    }

    /// The shared-window question for a claim from [`Verdict::Handle`]: `None` without
    /// a shared window (run the handler); else a [`WindowOp::Claim`] with the lease (or,
    /// for a `notify_id` handled here whose record failed, a [`WindowOp::Record`]) whose
    /// answer goes to [`claimed`](Self::claimed).
    pub fn claim_query(&mut self, claim: &mut Claim) -> Option<WindowQuery> {
        let shared = self.shared.as_mut()?;
        if shared.unrecorded.contains(&claim.notify_id) {
            let window = shared.config.window;
            return self.window_query(&claim.notify_id, WindowOp::Record { window });
        }
        let lease = shared.config.lease;
        let token = shared.tokens.next();
        claim.token = Some(token.clone());
        self.window_query(&claim.notify_id, WindowOp::Claim { token, lease })
    }

    /// The store's answer to [`claim_query`](Self::claim_query): [`Verdict::Handle`]
    /// when claimed (run the handler), [`Verdict::Duplicate`] when handled elsewhere
    /// (or here, now recorded), a refusal when another instance holds it
    /// ([`RefuseReason::ClaimedElsewhere`]) or the store could not answer
    /// ([`RefuseReason::SharedWindow`]; with [`StoreFailure::LocalWindow`] the
    /// notification is handled on the local window instead).
    pub fn claimed(
        &mut self,
        notification: Notification,
        mut claim: Claim,
        answer: Result<WindowAnswer, WindowError>,
        now: Instant,
    ) -> Verdict {
        let policy = self
            .shared
            .as_ref()
            .map_or(StoreFailure::Fail, |s| s.config.on_store_failure);
        let notify_id = claim.notify_id.clone();
        match answer {
            Ok(WindowAnswer::Claimed) => Verdict::Handle {
                notification,
                claim,
            },
            Ok(WindowAnswer::Handled | WindowAnswer::Recorded) => {
                if let Some(shared) = self.shared.as_mut() {
                    shared.unrecorded.remove(&notify_id);
                }
                claim.token = None;
                let _ = self.complete(claim, true, now);
                Verdict::Duplicate { notify_id }
            }
            Ok(WindowAnswer::Held) => {
                claim.token = None;
                let _ = self.complete(claim, false, now);
                Verdict::Refuse(RefuseReason::ClaimedElsewhere {
                    notify_id: quote(&notify_id),
                })
            }
            Err(error) if policy == StoreFailure::LocalWindow && claim.token.is_some() => {
                let _ = error;
                Verdict::Handle {
                    notification,
                    claim,
                }
            }
            other => {
                let error = match other {
                    Err(e) => e,
                    Ok(answer) => WindowError(format!("unexpected answer {answer:?}")),
                };
                let _ = self.complete(claim, false, now);
                Verdict::Refuse(RefuseReason::SharedWindow {
                    notify_id: quote(&notify_id),
                    error,
                })
            }
        }
    }

    /// The shared-window question after the handler ran: `None` without a shared window
    /// (or for a claim that is not ours); else [`WindowOp::Record`] when it succeeded
    /// (the answer `success` waits for it) or [`WindowOp::Release`] when it failed. Pass
    /// its answer to [`complete_shared`](Self::complete_shared).
    pub fn completion_query(&mut self, claim: &Claim, handled_ok: bool) -> Option<WindowQuery> {
        let shared = self.shared.as_ref()?;
        let window = shared.config.window;
        if handled_ok {
            return self.window_query(&claim.notify_id, WindowOp::Record { window });
        }
        let token = claim.token.clone()?;
        self.window_query(&claim.notify_id, WindowOp::Release { token })
    }

    /// [`complete`](Self::complete) with the answer to
    /// [`completion_query`](Self::completion_query) (`None` when it gave none): a
    /// success whose record failed is answered `fail` (the claim stays in the store
    /// until its lease ends, the next delivery here records it first) unless the policy
    /// is [`StoreFailure::LocalWindow`]; the error is returned for the caller's logs.
    pub fn complete_shared(
        &mut self,
        claim: Claim,
        handled_ok: bool,
        answer: Option<Result<WindowAnswer, WindowError>>,
        now: Instant,
    ) -> (NotifyResponse, Option<WindowError>) {
        let policy = self
            .shared
            .as_ref()
            .map_or(StoreFailure::Fail, |s| s.config.on_store_failure);
        let error = match answer {
            Some(Err(e)) => Some(e),
            _ => None,
        };
        match (&error, handled_ok, self.shared.as_mut()) {
            (Some(_), true, Some(shared)) => {
                if shared.unrecorded.len() < MAX_UNRECORDED {
                    shared.unrecorded.insert(claim.notify_id.clone());
                }
                let response = self.complete(claim, true, now);
                if policy == StoreFailure::LocalWindow {
                    (response, error)
                } else {
                    (NotifyResponse::Fail, error)
                }
            }
            (_, true, Some(shared)) => {
                shared.unrecorded.remove(&claim.notify_id);
                (self.complete(claim, true, now), error)
            }
            _ => (self.complete(claim, handled_ok, now), error),
        }
    }

    /// The sign-content rule: [`Rule::V1`] (the default; payment notifications) or
    /// [`Rule::V2`] (gateway messages that keep `sign_type` in the content).
    pub fn with_rule(mut self, rule: Rule) -> Self {
        self.rule = rule;
        self
    }

    /// Body size and parameter count limits.
    pub fn with_limits(mut self, limits: FormLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Refuses notifications whose `notify_time` (payment notifications: `yyyy-MM-dd
    /// HH:mm:ss`, read as China Standard Time, UTC+8) or `utc_timestamp` (gateway
    /// messages: milliseconds since the Unix epoch) is more than `window` away from
    /// now, either way. Off by default.
    ///
    /// The platform does not publish whether its retries keep the first notification's
    /// time or carry a new one; if they keep it, a window shorter than the retry span
    /// (about 25 hours) refuses the late retries of a notification that failed at
    /// first. Signatures already prove the origin; use this only if replays of old
    /// notifications matter beyond the duplicate window.
    pub fn with_freshness(mut self, window: Duration) -> Self {
        self.freshness = Some(window);
        self
    }

    /// How many handled `notify_id`s are remembered, and for how long (defaults
    /// [`DEFAULT_DUPLICATE_CAPACITY`], [`DEFAULT_DUPLICATE_MAX_AGE`]). The oldest are
    /// forgotten first; a forgotten id that comes again is handled again.
    pub fn with_duplicate_window(mut self, capacity: usize, max_age: Duration) -> Self {
        self.handled = DuplicateWindow::new(capacity, max_age);
        self
    }

    /// How many notifications may be handled at once (default
    /// [`DEFAULT_MAX_IN_PROGRESS`]); more are refused with [`RefuseReason::Busy`].
    pub fn with_max_in_progress(mut self, max: usize) -> Self {
        self.max_in_progress = max;
        self
    }

    /// After how long a claim never given back to [`complete`](Self::complete) is
    /// forgotten (default [`DEFAULT_CLAIM_TIMEOUT`]), so that a lost claim cannot block
    /// a `notify_id` for good. A handler still running after that may run alongside a
    /// retry of the same notification.
    pub fn with_claim_timeout(mut self, timeout: Duration) -> Self {
        self.claim_timeout = timeout;
        self
    }

    /// Our `app_id`.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The sign-content rule.
    pub fn rule(&self) -> Rule {
        self.rule
    }

    /// The limits.
    pub fn limits(&self) -> &FormLimits {
        &self.limits
    }

    /// The platform verifier.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Decides what to do with one request: `content_type` is the request's
    /// `Content-Type` header (`None` when absent), `body` the raw body exactly as
    /// received (never a framework-parsed form), `now` a monotonic instant and
    /// `unix_ms` the wall clock (used only by the freshness window). Steps 1–7 of the
    /// [rule](NotifyGate): [`check`](Self::check), then [`admit`](Self::admit).
    pub fn decide(
        &mut self,
        content_type: Option<&str>,
        body: &[u8],
        now: Instant,
        unix_ms: i64,
    ) -> Verdict {
        match self.check(content_type, body, unix_ms) {
            Ok(notification) => self.admit(notification, now),
            Err(reason) => Verdict::Refuse(reason),
        }
    }

    /// The stateless part of [`decide`](Self::decide) (steps 1–5): content type, size,
    /// signature, `notify_id` and `app_id` present, `app_id` ours, freshness. Needs only
    /// `&self`, so callers sharing a gate can verify without holding a write lock.
    pub fn check(
        &self,
        content_type: Option<&str>,
        body: &[u8],
        unix_ms: i64,
    ) -> Result<Notification, RefuseReason> {
        if !content_type.is_some_and(is_form_content_type) {
            return Err(RefuseReason::ContentType {
                got: content_type.map(quote),
            });
        }
        if body.len() > self.limits.max_body_len {
            return Err(RefuseReason::TooLarge {
                limit: self.limits.max_body_len,
            });
        }
        let notification = super::verify_with(body, &self.verifier, self.rule, &self.limits)
            .map_err(RefuseReason::from_notify_error)?;
        if notification.notify_id().is_none() {
            return Err(RefuseReason::Malformed(NotifyError::MissingParam {
                name: "notify_id",
            }));
        }
        match notification.app_id() {
            None => {
                return Err(RefuseReason::Malformed(NotifyError::MissingParam {
                    name: "app_id",
                }))
            }
            Some(app_id) if app_id != self.app_id => {
                return Err(RefuseReason::ForeignAppId {
                    app_id: quote(app_id),
                })
            }
            Some(_) => {}
        }
        if let Some(window) = self.freshness {
            check_freshness(&notification, window, unix_ms)?;
        }
        Ok(notification)
    }

    /// The stateful part of [`decide`](Self::decide) (steps 6–7) for a notification
    /// that passed [`check`](Self::check): [`Verdict::Duplicate`] for a `notify_id`
    /// handled successfully, a refusal for one being handled or when too many are,
    /// else [`Verdict::Handle`] with a claim on the `notify_id`.
    pub fn admit(&mut self, notification: Notification, now: Instant) -> Verdict {
        let Some(notify_id) = notification.notify_id().map(str::to_owned) else {
            return Verdict::Refuse(RefuseReason::Malformed(NotifyError::MissingParam {
                name: "notify_id",
            }));
        };
        self.handled.expire(now);
        let unrecorded = self
            .shared
            .as_ref()
            .is_some_and(|s| s.unrecorded.contains(&notify_id));
        if self.handled.contains(&notify_id) && !unrecorded {
            return Verdict::Duplicate { notify_id };
        }
        if let Some((_, at)) = self.in_progress.get(&notify_id) {
            if now.saturating_duration_since(*at) < self.claim_timeout {
                return Verdict::Refuse(RefuseReason::InProgress {
                    notify_id: quote(&notify_id),
                });
            }
            self.in_progress.remove(&notify_id);
        }
        if self.in_progress.len() >= self.max_in_progress {
            let timeout = self.claim_timeout;
            self.in_progress
                .retain(|_, (_, at)| now.saturating_duration_since(*at) < timeout);
            if self.in_progress.len() >= self.max_in_progress {
                return Verdict::Refuse(RefuseReason::Busy {
                    limit: self.max_in_progress,
                });
            }
        }
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        self.in_progress.insert(notify_id.clone(), (serial, now));
        Verdict::Handle {
            notification,
            claim: Claim {
                notify_id,
                serial,
                token: None,
            },
        }
    }

    /// Gives back a claim with the handler's outcome and returns the answer:
    /// `success` when `handled_ok` (the `notify_id` is remembered, so later deliveries
    /// are [duplicates](Verdict::Duplicate)), else `fail` (the claim is released, so the
    /// platform's retry is handled again).
    pub fn complete(&mut self, claim: Claim, handled_ok: bool, now: Instant) -> NotifyResponse {
        if let Some((serial, _)) = self.in_progress.get(&claim.notify_id) {
            // A claim that timed out may have been replaced by a newer one: leave that.
            if *serial == claim.serial {
                self.in_progress.remove(&claim.notify_id);
            }
        }
        if handled_ok {
            self.handled.insert(&claim.notify_id, now);
        }
        NotifyResponse::from_accepted(handled_ok)
    }

    /// How many `notify_id`s are remembered as handled.
    pub fn handled_len(&self) -> usize {
        self.handled.len()
    }

    /// How many notifications are being handled (claims not yet given back).
    pub fn in_progress_len(&self) -> usize {
        self.in_progress.len()
    }
}

/// Whether `value` (a `Content-Type` header) is `application/x-www-form-urlencoded`,
/// any letter case, parameters allowed.
pub fn is_form_content_type(value: &str) -> bool {
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case(FORM_CONTENT_TYPE)
}

fn quote(s: &str) -> String {
    s.chars().take(QUOTE_MAX).collect()
}

fn check_freshness(
    notification: &Notification,
    window: Duration,
    unix_ms: i64,
) -> Result<(), RefuseReason> {
    let params = notification.params();
    let (field, at_ms) = if let Some(ms) = params.get_non_empty("utc_timestamp") {
        ("utc_timestamp", ms.parse::<i64>().ok())
    } else if let Some(text) = params.get_non_empty("notify_time") {
        ("notify_time", parse_china_time_ms(text))
    } else {
        let field = match notification {
            Notification::GatewayMessage(_) => "utc_timestamp",
            _ => "notify_time",
        };
        return Err(RefuseReason::NoTime { field });
    };
    let at_ms = at_ms.ok_or(RefuseReason::NoTime { field })?;
    let age_ms = unix_ms.saturating_sub(at_ms);
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    if age_ms.unsigned_abs() > window_ms.unsigned_abs() {
        return Err(RefuseReason::Stale {
            field,
            age_ms,
            window,
        });
    }
    Ok(())
}

/// `yyyy-MM-dd HH:mm:ss` in China Standard Time (UTC+8) as milliseconds since the Unix
/// epoch; `None` when not of that shape or out of range.
fn parse_china_time_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - 8 * 3600;
    Some(secs * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{PrivateKey, PublicKey};
    use crate::signature::{SignType, Signer};
    use crate::window::DEFAULT_WINDOW;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");
    const APP: &str = "2021000000000001";
    const FORM: Option<&str> = Some("application/x-www-form-urlencoded; charset=utf-8");
    /// 2026-11-20 10:21:35 UTC+8, the `notify_time` of the test bodies.
    const NOTIFY_TIME_MS: i64 = 1_795_141_295_000;

    fn verifier() -> Verifier {
        let pem = std::fs::read_to_string(format!("{DIR}/vectors/keys/alipay_public.pem")).unwrap();
        Verifier::new(&PublicKey::from_pem_or_base64(&pem).unwrap()).unwrap()
    }

    fn gate() -> NotifyGate {
        NotifyGate::new(verifier(), APP)
    }

    fn signed(unsigned: &str, rule: Rule) -> Vec<u8> {
        let pem = std::fs::read_to_string(format!("{DIR}/vectors/keys/alipay_private_pkcs8.pem"))
            .unwrap();
        let signer = Signer::new(
            &PrivateKey::from_pem_or_base64(&pem).unwrap(),
            SignType::Rsa2,
        )
        .unwrap();
        let form = super::super::parse_form(unsigned.as_bytes()).unwrap();
        let content = form.charset().encode(&form.sign_content(rule)).into_owned();
        let sign = STANDARD.encode(signer.sign(&content).unwrap());
        let sign: String = form_urlencoded::byte_serialize(sign.as_bytes()).collect();
        format!("{unsigned}&sign={sign}").into_bytes()
    }

    fn trade(notify_id: &str, app_id: &str) -> Vec<u8> {
        signed(
            &format!(
                "notify_type=trade_status_sync&notify_id={notify_id}\
                 &notify_time=2026-11-20+10%3A21%3A35&app_id={app_id}&trade_no=t1\
                 &out_trade_no=o1&trade_status=TRADE_SUCCESS&total_amount=1.00&sign_type=RSA2"
            ),
            Rule::V1,
        )
    }

    fn handle(verdict: Verdict) -> (Notification, Claim) {
        match verdict {
            Verdict::Handle {
                notification,
                claim,
            } => (notification, claim),
            other => panic!("expected Handle, got {other:?}"),
        }
    }

    fn refused(verdict: Verdict) -> RefuseReason {
        match verdict {
            Verdict::Refuse(reason) => reason,
            other => panic!("expected Refuse, got {other:?}"),
        }
    }

    /// A gate with a shared window of a 30 s lease, FAIL on store failures.
    fn shared_gate(policy: StoreFailure) -> NotifyGate {
        gate()
            .with_shared_window(
                SharedWindowConfig::new()
                    .with_lease(Duration::from_secs(30))
                    .with_store_failure(policy),
                7,
            )
            .unwrap()
    }

    /// Admits `body` and asks the claim query: (notification, claim, query).
    fn admit_shared(
        g: &mut NotifyGate,
        body: &[u8],
        t: Instant,
    ) -> (Notification, Claim, WindowQuery) {
        let (n, mut claim) = handle(g.decide(FORM, body, t, 0));
        let query = g
            .claim_query(&mut claim)
            .expect("a query with a shared window");
        (n, claim, query)
    }

    #[test]
    fn shared_window_claim_record_and_release() {
        let mut g = shared_gate(StoreFailure::Fail);
        let t0 = Instant::now();
        let body = trade("n1", APP);
        // Claimed: handled, then recorded before `success`.
        let (n, claim, query) = admit_shared(&mut g, &body, t0);
        assert_eq!(query.key.kind, WindowKind::Notify);
        assert_eq!(query.key.render("p"), format!("p:{APP}:notify:n1"));
        assert!(
            matches!(&query.op, WindowOp::Claim { lease, .. } if *lease == Duration::from_secs(30))
        );
        let (_, claim) = handle(g.claimed(n, claim, Ok(WindowAnswer::Claimed), t0));
        let record = g.completion_query(&claim, true).unwrap();
        assert!(matches!(record.op, WindowOp::Record { window } if window == DEFAULT_WINDOW));
        let (response, error) =
            g.complete_shared(claim, true, Some(Ok(WindowAnswer::Recorded)), t0);
        assert_eq!((response, error), (NotifyResponse::Success, None));

        // A failure releases our own claim (its token).
        let (n, claim, query) = admit_shared(&mut g, &trade("n2", APP), t0);
        let (_, claim) = handle(g.claimed(n, claim, Ok(WindowAnswer::Claimed), t0));
        let release = g.completion_query(&claim, false).unwrap();
        match (&query.op, &release.op) {
            (WindowOp::Claim { token: a, .. }, WindowOp::Release { token: b }) => assert_eq!(a, b),
            other => panic!("{other:?}"),
        }
        let (response, _) = g.complete_shared(claim, false, Some(Ok(WindowAnswer::Released)), t0);
        assert_eq!(response, NotifyResponse::Fail);
        assert_eq!(g.in_progress_len(), 0);
    }

    #[test]
    fn shared_window_handled_held_and_unreachable() {
        let mut g = shared_gate(StoreFailure::Fail);
        let t0 = Instant::now();
        // Handled by another instance: success without the handler.
        let (n, claim, _) = admit_shared(&mut g, &trade("n1", APP), t0);
        let v = g.claimed(n, claim, Ok(WindowAnswer::Handled), t0);
        assert!(matches!(v, Verdict::Duplicate { ref notify_id } if notify_id == "n1"));
        assert_eq!(g.in_progress_len(), 0);
        // Held by another instance: fail, nothing released.
        let (n, claim, _) = admit_shared(&mut g, &trade("n2", APP), t0);
        let reason = refused(g.claimed(n, claim, Ok(WindowAnswer::Held), t0));
        assert_eq!(
            reason,
            RefuseReason::ClaimedElsewhere {
                notify_id: "n2".into()
            }
        );
        assert_eq!(g.in_progress_len(), 0);
        // The store is away: fail, with its error.
        let (n, claim, _) = admit_shared(&mut g, &trade("n3", APP), t0);
        let down = WindowError("connection refused".into());
        let reason = refused(g.claimed(n, claim, Err(down.clone()), t0));
        assert_eq!(
            reason,
            RefuseReason::SharedWindow {
                notify_id: "n3".into(),
                error: down.clone()
            }
        );
        // With the local-window fallback it is handled.
        let mut g = shared_gate(StoreFailure::LocalWindow);
        let (n, claim, _) = admit_shared(&mut g, &trade("n3", APP), t0);
        let (_, claim) = handle(g.claimed(n, claim, Err(down), t0));
        let _ = g.complete(claim, true, t0);
    }

    #[test]
    fn shared_window_record_failure_is_fail_then_recorded_on_the_retry() {
        let mut g = shared_gate(StoreFailure::Fail);
        let t0 = Instant::now();
        let body = trade("n1", APP);
        let (n, claim, _) = admit_shared(&mut g, &body, t0);
        let (_, claim) = handle(g.claimed(n, claim, Ok(WindowAnswer::Claimed), t0));
        let down = WindowError("timed out".into());
        let (response, error) = g.complete_shared(claim, true, Some(Err(down.clone())), t0);
        assert_eq!((response, error), (NotifyResponse::Fail, Some(down)));
        // The platform's retry here: recorded first (no handler), then `success`.
        let (n, claim, query) = admit_shared(&mut g, &body, t0);
        assert!(matches!(query.op, WindowOp::Record { .. }));
        let v = g.claimed(n, claim, Ok(WindowAnswer::Recorded), t0);
        assert!(matches!(v, Verdict::Duplicate { .. }));
        // And from then on, from the local window.
        assert!(matches!(
            g.decide(FORM, &body, t0, 0),
            Verdict::Duplicate { .. }
        ));
    }

    #[test]
    fn without_a_shared_window_there_are_no_queries() {
        let mut g = gate();
        let t0 = Instant::now();
        let (_, mut claim) = handle(g.decide(FORM, &trade("n1", APP), t0, 0));
        assert!(g.claim_query(&mut claim).is_none());
        assert!(g.completion_query(&claim, true).is_none());
        let _ = g.complete(claim, true, t0);
    }

    #[test]
    fn handle_then_duplicate() {
        let mut g = gate();
        let t0 = Instant::now();
        let body = trade("n1", APP);
        let (n, claim) = handle(g.decide(FORM, &body, t0, 0));
        assert_eq!(n.notify_id(), Some("n1"));
        assert_eq!(claim.notify_id(), "n1");
        assert_eq!(g.in_progress_len(), 1);
        // While it is being handled: fail.
        let reason = refused(g.decide(FORM, &body, t0, 0));
        assert_eq!(
            reason,
            RefuseReason::InProgress {
                notify_id: "n1".into()
            }
        );
        assert_eq!(g.complete(claim, true, t0), NotifyResponse::Success);
        assert_eq!((g.in_progress_len(), g.handled_len()), (0, 1));
        let v = g.decide(FORM, &body, t0, 0);
        assert_eq!(v.immediate_response(), Some(NotifyResponse::Success));
        assert!(matches!(v, Verdict::Duplicate { notify_id } if notify_id == "n1"));
        // Another notify_id is handled.
        let (_, c2) = handle(g.decide(FORM, &trade("n2", APP), t0, 0));
        let _ = g.complete(c2, true, t0);
        // Forgotten after the window's age: handled again.
        let later = t0 + DEFAULT_DUPLICATE_MAX_AGE;
        let _ = handle(g.decide(FORM, &body, later, 0));
    }

    #[test]
    fn failure_releases_the_claim() {
        let mut g = gate();
        let t0 = Instant::now();
        let body = trade("n1", APP);
        let (_, claim) = handle(g.decide(FORM, &body, t0, 0));
        assert_eq!(g.complete(claim, false, t0), NotifyResponse::Fail);
        let (_, claim) = handle(g.decide(FORM, &body, t0, 0));
        let _ = g.complete(claim, true, t0);
        assert!(matches!(
            g.decide(FORM, &body, t0, 0),
            Verdict::Duplicate { .. }
        ));
    }

    #[test]
    fn lost_claims_time_out_and_in_progress_is_bounded() {
        let mut g = gate()
            .with_max_in_progress(1)
            .with_claim_timeout(Duration::from_secs(5));
        let t0 = Instant::now();
        let (_, lost) = handle(g.decide(FORM, &trade("n1", APP), t0, 0));
        assert_eq!(
            refused(g.decide(FORM, &trade("n2", APP), t0, 0)),
            RefuseReason::Busy { limit: 1 }
        );
        let t1 = t0 + Duration::from_secs(5);
        let (_, fresh) = handle(g.decide(FORM, &trade("n1", APP), t1, 0));
        // The old claim's completion leaves the new claim in place.
        let _ = g.complete(lost, false, t1);
        assert_eq!(g.in_progress_len(), 1);
        assert!(matches!(
            g.decide(FORM, &trade("n1", APP), t1, 0),
            Verdict::Refuse(RefuseReason::InProgress { .. })
        ));
        let _ = g.complete(fresh, true, t1);
        assert_eq!(g.in_progress_len(), 0);
    }

    #[test]
    fn refusals() {
        let mut g = gate().with_limits(FormLimits::DEFAULT.with_max_body_len(2048));
        let t0 = Instant::now();
        let body = trade("n1", APP);
        for ct in [None, Some("text/plain"), Some("application/json")] {
            let r = refused(g.decide(ct, &body, t0, 0));
            assert!(matches!(r, RefuseReason::ContentType { .. }), "{r}");
        }
        let _ = handle(g.decide(Some("Application/X-WWW-Form-URLEncoded"), &body, t0, 0));

        let big = [b'a'; 2049];
        assert_eq!(
            refused(g.decide(FORM, &big, t0, 0)),
            RefuseReason::TooLarge { limit: 2048 }
        );

        let forged = String::from_utf8(trade("n9", APP))
            .unwrap()
            .replace("total_amount=1.00", "total_amount=0.01");
        let r = refused(g.decide(FORM, forged.as_bytes(), t0, 0));
        assert!(r.is_signature_failure(), "{r}");
        assert!(r.to_string().contains("signature"), "{r}");

        let r = refused(g.decide(FORM, b"a=%zz", t0, 0));
        assert!(matches!(r, RefuseReason::Malformed(_)) && !r.is_signature_failure());

        let r = refused(g.decide(FORM, &trade("n3", "2021999999999999"), t0, 0));
        assert_eq!(
            r,
            RefuseReason::ForeignAppId {
                app_id: "2021999999999999".into()
            }
        );

        let no_app = signed("notify_type=x&notify_id=n4&sign_type=RSA2", Rule::V1);
        assert_eq!(
            refused(g.decide(FORM, &no_app, t0, 0)),
            RefuseReason::Malformed(NotifyError::MissingParam { name: "app_id" })
        );
        let no_id = signed(
            &format!("notify_type=x&app_id={APP}&sign_type=RSA2"),
            Rule::V1,
        );
        assert_eq!(
            refused(g.decide(FORM, &no_id, t0, 0)),
            RefuseReason::Malformed(NotifyError::MissingParam { name: "notify_id" })
        );
        // Nothing was remembered for the refused ones.
        assert_eq!((g.handled_len(), g.in_progress_len()), (0, 1));
    }

    #[test]
    fn v2_gateway_message_and_rule() {
        let body = std::fs::read(format!("{DIR}/notify/gateway_message_rsa2_v2.txt")).unwrap();
        let body = body.trim_ascii_end();
        let t0 = Instant::now();
        let mut g = NotifyGate::new(verifier(), "2013121700999429").with_rule(Rule::V2);
        let (n, _) = handle(g.decide(FORM, body, t0, 0));
        assert!(matches!(n, Notification::GatewayMessage(_)));
        let mut v1 = NotifyGate::new(verifier(), "2013121700999429");
        assert!(refused(v1.decide(FORM, body, t0, 0)).is_signature_failure());
    }

    #[test]
    fn gbk_and_gb18030_bodies() {
        let mut g = gate();
        let t0 = Instant::now();
        for name in [
            "trade_notify_gb18030_v1.form",
            "trade_notify_gb2312_v1.form",
        ] {
            let body = std::fs::read(format!("{DIR}/notify/{name}")).unwrap();
            // Both files carry the same notify_id: a fresh gate for each.
            let (n, _) = handle(gate().decide(FORM, body.trim_ascii_end(), t0, 0));
            assert!(matches!(n, Notification::Trade(_)), "{name}");
        }
        let gbk = signed(
            &format!(
                "notify_type=trade_status_sync&notify_id=g1&notify_time=t&app_id={APP}\
                 &trade_no=t1&out_trade_no=o1&trade_status=TRADE_SUCCESS\
                 &subject=%B2%E2%CA%D4&charset=gbk&sign_type=RSA2"
            ),
            Rule::V1,
        );
        match handle(g.decide(FORM, &gbk, t0, 0)).0 {
            Notification::Trade(t) => assert_eq!(t.subject.as_deref(), Some("测试")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn freshness_window() {
        let window = Duration::from_secs(600);
        let mut g = gate().with_freshness(window);
        let t0 = Instant::now();
        let body = trade("n1", APP);
        let _ = handle(g.decide(FORM, &body, t0, NOTIFY_TIME_MS + 600_000));
        let r = refused(g.decide(FORM, &trade("n2", APP), t0, NOTIFY_TIME_MS + 600_001));
        assert_eq!(
            r,
            RefuseReason::Stale {
                field: "notify_time",
                age_ms: 600_001,
                window
            }
        );
        let r = refused(g.decide(FORM, &trade("n2", APP), t0, NOTIFY_TIME_MS - 700_000));
        assert!(
            matches!(
                r,
                RefuseReason::Stale {
                    age_ms: -700_000,
                    ..
                }
            ),
            "{r}"
        );
        // Off by default.
        let _ = handle(gate().decide(FORM, &body, t0, 0));

        let gw = std::fs::read(format!("{DIR}/notify/gateway_message_rsa2_v2.txt")).unwrap();
        let mut g = NotifyGate::new(verifier(), "2013121700999429")
            .with_rule(Rule::V2)
            .with_freshness(window);
        let _ = handle(g.decide(FORM, gw.trim_ascii_end(), t0, 1_516_797_622_752 + 1));
        let r = refused(g.decide(FORM, gw.trim_ascii_end(), t0, 1_516_797_622_752 + 600_001));
        assert!(
            matches!(
                r,
                RefuseReason::Stale {
                    field: "utc_timestamp",
                    ..
                }
            ),
            "{r}"
        );

        let odd = signed(
            &format!(
                "notify_type=trade_status_sync&notify_id=o1&notify_time=yesterday&app_id={APP}\
                 &trade_no=t1&out_trade_no=o1&trade_status=TRADE_SUCCESS&sign_type=RSA2"
            ),
            Rule::V1,
        );
        let mut g = gate().with_freshness(window);
        assert_eq!(
            refused(g.decide(FORM, &odd, t0, 0)),
            RefuseReason::NoTime {
                field: "notify_time"
            }
        );
    }

    #[test]
    fn china_time() {
        assert_eq!(
            parse_china_time_ms("1970-01-01 08:00:00"),
            Some(0),
            "the epoch in UTC+8"
        );
        assert_eq!(
            parse_china_time_ms("2026-11-20 10:21:35"),
            Some(NOTIFY_TIME_MS)
        );
        assert_eq!(
            parse_china_time_ms("2024-02-29 23:59:59"),
            Some(1_709_222_399_000)
        );
        for bad in [
            "",
            "2026-11-20T10:21:35",
            "2026-13-20 10:21:35",
            "2026-11-20 1:21:35x",
            "+026-11-20 10:21:35",
        ] {
            assert_eq!(parse_china_time_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn certificate_mode_key() {
        let pem = std::fs::read_to_string(format!("{DIR}/vectors/certs/alipay_cert.crt")).unwrap();
        let chain = crate::cert::Certificate::all_from_pem(&pem).unwrap();
        let key = crate::cert::platform_cert(&chain)
            .and_then(crate::cert::Certificate::public_key)
            .unwrap();
        let mut g = NotifyGate::new(Verifier::new(&key).unwrap(), APP);
        let (_, claim) = handle(g.decide(FORM, &trade("c1", APP), Instant::now(), 0));
        assert_eq!(claim.notify_id(), "c1");
    }
}
