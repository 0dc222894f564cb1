//! A duplicate window shared by every instance of a service (PROTOCOL §6, §10): the
//! questions a session or a notification gate asks a shared store, and the answers it
//! takes back. No store is here: the core decides, an adapter asks the store (the crate
//! `alipay-msg-redis` answers on Redis) and feeds the answer back.
//!
//! Delivery is at least once, and a redelivery may reach another instance of the same
//! service (another connection of the app id, another HTTP endpoint behind the load
//! balancer). A local window ([`crate::client::ClientConfig::duplicate_capacity`])
//! suppresses the duplicates one process sees; a shared window suppresses them across
//! the service. Per message or notification id, the store holds one value under a key
//! namespaced by app id and [`WindowKind`]:
//!
//! - a **claim** (a token unique to one delivery attempt), for at most the lease: taken
//!   before the handler runs, only when nobody holds the id ([`WindowOp::Claim`]);
//! - **handled** (the text [`HANDLED`]), for the window (default 25 h, the platform's
//!   retry span): written after the handler succeeded and before the success answer
//!   ([`WindowOp::Record`]);
//! - nothing: a failed handler's claim is deleted, only if it is still ours
//!   ([`WindowOp::Release`]).
//!
//! The answers and what the core makes of them:
//!
//! | query | answer | the session | the notification gate |
//! | --- | --- | --- | --- |
//! | claim | [`WindowAnswer::Claimed`] | delivers | `Handle` |
//! | claim | [`WindowAnswer::Handled`] | acks SUCCESS, no handler | `Duplicate` |
//! | claim | [`WindowAnswer::Held`] | acks FAIL | refuses (`fail`) |
//! | record | [`WindowAnswer::Recorded`] | acks SUCCESS | `success` |
//! | release | [`WindowAnswer::Released`] | nothing | nothing |
//! | any | `Err(`[`WindowError`]`)` | [`StoreFailure`] decides | [`StoreFailure`] decides |

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The value a key holds once its id was handled successfully.
pub const HANDLED: &str = "handled";

/// Default lease of a claim: 60 s. The clients have no handler timeout of their own; a
/// handler still running when its lease ends may run alongside another instance's
/// delivery of the same message, so set the lease above the longest handler run.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Default time a handled id is remembered: 25 hours, the span over which the platform
/// redelivers (PROTOCOL §6, §10).
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(25 * 3600);

/// Longest lease or window accepted: 365 days (as every duration setting of the core).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Which delivery path an id belongs to; part of the key, so one store serves both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WindowKind {
    /// A websocket CONSUME, by `x-msgId` (PROTOCOL §6): `msg`.
    Msg,
    /// An HTTP notification, by `notify_id` (PROTOCOL §10): `notify`.
    Notify,
}

impl WindowKind {
    /// `msg` or `notify`, as it appears in keys.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Msg => "msg",
            WindowKind::Notify => "notify",
        }
    }
}

impl fmt::Display for WindowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one id lives in the store: app id, kind and the id itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowKey {
    /// The app id the message or notification is for (digits).
    pub app_id: String,
    /// Websocket message or HTTP notification.
    pub kind: WindowKind,
    /// `x-msgId` or `notify_id`, as received (at most the frame or form limit long).
    pub id: String,
}

impl WindowKey {
    /// The key's text under `prefix`: `{prefix}:{app_id}:{kind}:{id}`, e.g.
    /// `alipay-msg:2021000000000001:msg:0a1b2c`. App ids are digits and the kind has no
    /// `:`, so two different keys never give the same text.
    pub fn render(&self, prefix: &str) -> String {
        format!("{prefix}:{}:{}:{}", self.app_id, self.kind, self.id)
    }
}

/// Numbers a query; its answer comes back with the same number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub(crate) u64);

impl QueryId {
    /// A query id from its number: for stores' own tests and tools (a session numbers
    /// its queries itself).
    pub fn new(n: u64) -> Self {
        QueryId(n)
    }

    /// The number, for logs.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for QueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query-{}", self.0)
    }
}

/// What to do with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowOp {
    /// Atomically: if the key is absent, set it to `token` for `lease` and answer
    /// [`WindowAnswer::Claimed`]; else answer [`WindowAnswer::Handled`] when it holds
    /// [`HANDLED`], [`WindowAnswer::Held`] otherwise. (Redis: `SET key token NX PX
    /// lease`, then `GET key` in the same script.)
    Claim {
        /// Unique to this delivery attempt (ASCII, at most 40 bytes).
        token: String,
        /// How long the claim lives unless recorded or released.
        lease: Duration,
    },
    /// Set the key to [`HANDLED`] for `window`, whatever it held; answer
    /// [`WindowAnswer::Recorded`].
    Record {
        /// How long the id stays handled.
        window: Duration,
    },
    /// Delete the key only if it still holds `token` (a claim that expired and was
    /// taken by another instance, or recorded, is left alone); answer
    /// [`WindowAnswer::Released`] either way.
    Release {
        /// The token of the claim to release.
        token: String,
    },
}

impl WindowOp {
    /// `claim`, `record` or `release`, for logs and events.
    pub fn name(&self) -> &'static str {
        match self {
            WindowOp::Claim { .. } => "claim",
            WindowOp::Record { .. } => "record",
            WindowOp::Release { .. } => "release",
        }
    }
}

/// One question for the shared store, from
/// [`Output::Window`](crate::client::Output::Window) or the notification gate. Answer it
/// exactly once, with the same `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowQuery {
    /// Give it back with the answer.
    pub id: QueryId,
    /// The key.
    pub key: WindowKey,
    /// What to do.
    pub op: WindowOp,
}

/// The store's answer to a [`WindowQuery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowAnswer {
    /// Claim: nobody held the id; it is ours for the lease.
    Claimed,
    /// Claim: the id was handled successfully within the window.
    Handled,
    /// Claim: another live claim holds the id.
    Held,
    /// Record: the id is handled for the window.
    Recorded,
    /// Release: our claim is gone (or was not ours any more).
    Released,
}

/// The store could not answer (unreachable, timed out, refused the command). The text
/// is the store client's, for logs; it carries no credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shared duplicate window unavailable: {0}")]
pub struct WindowError(pub String);

/// What to do when the store cannot answer a claim or a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreFailure {
    /// Answer FAIL (`fail` for a notification) and report it: nothing is lost (the
    /// platform redelivers) and nothing is handled twice. The default.
    #[default]
    Fail,
    /// Go on with the local window alone: the message is delivered (or its success
    /// acked) and reported; another instance may handle it too while the store is away.
    /// One difference from having no shared window: a success whose record failed is
    /// recorded again in the background, and until that lands a redelivery of it to
    /// this instance is answered FAIL (`RejectReason::NotRecorded`), so that it is not
    /// handled twice here either.
    LocalWindow,
}

/// The shared window's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedWindowConfig {
    /// How long a claim lives before another instance may take the id (default
    /// [`DEFAULT_LEASE`]; more than zero, at most 365 days).
    pub lease: Duration,
    /// How long a handled id stays handled (default [`DEFAULT_WINDOW`]; more than zero,
    /// at most 365 days).
    pub window: Duration,
    /// When the store cannot answer (default [`StoreFailure::Fail`]).
    pub on_store_failure: StoreFailure,
    /// How often a success whose record failed is recorded again, in the background,
    /// until it is (default 1 s; more than zero).
    pub record_retry: Duration,
}

impl Default for SharedWindowConfig {
    fn default() -> Self {
        SharedWindowConfig {
            lease: DEFAULT_LEASE,
            window: DEFAULT_WINDOW,
            on_store_failure: StoreFailure::Fail,
            record_retry: Duration::from_secs(1),
        }
    }
}

impl SharedWindowConfig {
    /// The defaults: a 60 s lease, a 25 h window, FAIL when the store is away.
    pub fn new() -> Self {
        SharedWindowConfig::default()
    }

    /// Sets the lease.
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets the window.
    pub fn with_window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sets what happens when the store cannot answer.
    pub fn with_store_failure(mut self, on_store_failure: StoreFailure) -> Self {
        self.on_store_failure = on_store_failure;
        self
    }

    /// Sets the record retry interval.
    pub fn with_record_retry(mut self, every: Duration) -> Self {
        self.record_retry = every;
        self
    }

    /// Checks the settings: each duration more than zero and at most 365 days.
    ///
    /// Errors: the first setting out of range ([`InvalidWindowSetting`]).
    pub fn check(&self) -> Result<(), InvalidWindowSetting> {
        for (name, d) in [
            ("shared_window.lease", self.lease),
            ("shared_window.window", self.window),
            ("shared_window.record_retry", self.record_retry),
        ] {
            let reason = if d.is_zero() {
                "must be more than zero"
            } else if d > MAX_DURATION {
                "must be at most 365 days"
            } else {
                continue;
            };
            return Err(InvalidWindowSetting { name, reason });
        }
        Ok(())
    }
}

/// A [`SharedWindowConfig`] setting out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {name}: {reason}")]
pub struct InvalidWindowSetting {
    /// The setting: `shared_window.lease`, `shared_window.window` or
    /// `shared_window.record_retry`.
    pub name: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

/// A shared store that answers [`WindowQuery`]s by blocking the calling thread (the
/// blocking client calls it from threads of its own, never from its I/O thread). Every
/// call must end within the store's own timeout: an answer or a [`WindowError`].
/// `alipay-msg-redis` implements it on Redis.
pub trait WindowStore: Send + Sync {
    /// Answers one query (see [`WindowOp`] for what each must do).
    fn answer(&self, query: &WindowQuery) -> Result<WindowAnswer, WindowError>;
}

/// The answer of an [`AsyncWindowStore`]: a boxed future, so that the trait is usable as
/// `Arc<dyn AsyncWindowStore>` on any runtime.
pub type WindowFuture<'a> =
    Pin<Box<dyn Future<Output = Result<WindowAnswer, WindowError>> + Send + 'a>>;

/// A shared store that answers [`WindowQuery`]s asynchronously (the notification
/// endpoint, the async clients). Every answer must come within the store's own
/// timeout: an answer or a [`WindowError`]. `alipay-msg-redis` implements it on Redis
/// for tokio and for async-std / smol.
pub trait AsyncWindowStore: Send + Sync {
    /// Answers one query (see [`WindowOp`] for what each must do).
    fn answer<'a>(&'a self, query: &'a WindowQuery) -> WindowFuture<'a>;
}

/// Makes claim tokens unique to one process and attempt: a random tag from the
/// caller's seed and a counter.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    tag: u64,
    next: u64,
}

impl Tokens {
    pub(crate) fn new(tag: u64) -> Self {
        Tokens { tag, next: 0 }
    }

    pub(crate) fn next(&mut self) -> String {
        self.next = self.next.wrapping_add(1);
        format!("{:016x}-{}", self.tag, self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_by_app_and_kind() {
        let key = |app: &str, kind, id: &str| WindowKey {
            app_id: app.into(),
            kind,
            id: id.into(),
        };
        assert_eq!(
            key("2021000000000001", WindowKind::Msg, "m1").render("alipay-msg"),
            "alipay-msg:2021000000000001:msg:m1"
        );
        assert_ne!(
            key("2021000000000001", WindowKind::Msg, "m1").render("p"),
            key("2021000000000001", WindowKind::Notify, "m1").render("p")
        );
        assert_ne!(
            key("2021000000000001", WindowKind::Msg, "m1").render("p"),
            key("2021000000000002", WindowKind::Msg, "m1").render("p")
        );
    }

    #[test]
    fn settings_are_checked() {
        assert!(SharedWindowConfig::new().check().is_ok());
        assert_eq!(
            SharedWindowConfig::new()
                .with_lease(Duration::ZERO)
                .check()
                .unwrap_err()
                .name,
            "shared_window.lease"
        );
        assert_eq!(
            SharedWindowConfig::new()
                .with_window(MAX_DURATION + Duration::from_secs(1))
                .check()
                .unwrap_err()
                .name,
            "shared_window.window"
        );
    }

    #[test]
    fn tokens_are_unique() {
        let mut t = Tokens::new(7);
        let (a, b) = (t.next(), t.next());
        assert_ne!(a, b);
        assert!(a.len() <= 40 && a.is_ascii());
    }
}
