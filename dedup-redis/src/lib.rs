//! A duplicate window shared by every instance of a service, on Redis: the store that
//! answers the claim / record / release queries of `alipay-msg-core`'s shared window
//! (module [`alipay_msg_core::window`]) for the websocket clients (`x-msgId`) and the
//! HTTP notification endpoint (`notify_id`).
//!
//! One key per id, `{prefix}:{app_id}:{msg|notify}:{id}` (prefix `alipay-msg` by
//! default), always with a TTL:
//!
//! | query | Redis | answer |
//! | --- | --- | --- |
//! | claim | `SET key token NX PX lease`, else `GET key` (one Lua script: atomic) | `Claimed` / `Handled` / `Held` |
//! | record | `SET key handled PX window` | `Recorded` |
//! | release | `GET key` = token → `DEL key` (one Lua script: only our own claim) | `Released` |
//!
//! Every call has a timeout ([`RedisWindowConfig::timeout`], default 500 ms): past it
//! (or when Redis is unreachable) the answer is a [`WindowError`], which the core turns
//! into a FAIL ack and an event (or the local-window fallback). Connections are made
//! again after a failure, so a Redis that restarts is used again without a restart of
//! the client.
//!
//! - [`RedisWindow`] blocks the calling thread ([`WindowStore`]): the blocking client
//!   (`alipay-msg-blocking`, `Client::connect_with_window`) calls it from threads of its
//!   own.
//! - `AsyncRedisWindow` (features `tokio`, `async-std`) awaits ([`AsyncWindowStore`]):
//!   the notification endpoint (`alipay-msg-axum`) and the async clients' driver.
//!
//! Redis should keep its data across a restart (AOF or RDB): a Redis that comes back
//! empty forgets which ids were handled, and a redelivery reaching another instance
//! after that is handled again (each instance's local window still suppresses the
//! duplicates it sees itself). See `docs/clusters.md`.
//!
//! ```no_run
//! use alipay_msg_core::window::{QueryId, WindowAnswer, WindowStore};
//! use alipay_msg_redis::{RedisWindow, RedisWindowConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let window = RedisWindow::new(RedisWindowConfig::new("redis://127.0.0.1:6379/0"))?;
//! window.ping()?; // at start-up: is Redis there?
//! // The client calls `window.answer(&query)` for each `Output::Window(query)`.
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

pub use alipay_msg_core::window::{
    AsyncWindowStore, WindowAnswer, WindowError, WindowFuture, WindowOp, WindowQuery, WindowStore,
    HANDLED,
};

#[cfg(any(feature = "tokio", feature = "async-std"))]
mod nonblocking;
#[cfg(any(feature = "tokio", feature = "async-std"))]
pub use nonblocking::AsyncRedisWindow;

/// Default key prefix: `alipay-msg`.
pub const DEFAULT_PREFIX: &str = "alipay-msg";

/// Default time limit of one call (connecting included): 500 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

/// Idle connections kept by a [`RedisWindow`] for the next calls (one per calling
/// thread at most is in use at once; more are closed after use).
const MAX_IDLE: usize = 16;

/// The claim (PROTOCOL §6, §10 through `alipay_msg_core::window`): set the key to our
/// token only if it is absent, with the lease; else tell handled (1) from held (2).
/// `KEYS[1]` key, `ARGV[1]` token, `ARGV[2]` lease in ms, `ARGV[3]` [`HANDLED`].
const CLAIM: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
if redis.call('GET', KEYS[1]) == ARGV[3] then return 1 end
return 2
";

/// The release: delete the key only while it holds our token. `KEYS[1]` key,
/// `ARGV[1]` token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The environment variable that names the Redis of the tests (`.ci/run` starts one and
/// sets it): `ALIPAY_MSG_REDIS_URL`.
pub const REDIS_URL_ENV: &str = "ALIPAY_MSG_REDIS_URL";

/// For a test that needs a real Redis: `Ok(Some(url))` from [`REDIS_URL_ENV`];
/// `Ok(None)` when it is unset (the test then returns: skipped, said loudly on stderr
/// naming `test`); `Err` when it is unset but `CI` is set (CI must start a Redis).
pub fn redis_url_from_env(test: &str) -> Result<Option<String>, RedisUrlMissing> {
    match std::env::var(REDIS_URL_ENV) {
        Ok(url) if !url.is_empty() => Ok(Some(url)),
        _ if std::env::var_os("CI").is_some() => Err(RedisUrlMissing),
        _ => {
            eprintln!(
                "SKIPPED {test}: {REDIS_URL_ENV} is not set (start redis-server and set it, \
                 as .ci/run does, to run it)"
            );
            Ok(None)
        }
    }
}

/// [`redis_url_from_env`] under `CI` without [`REDIS_URL_ENV`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CI is set but ALIPAY_MSG_REDIS_URL is not: CI must start a Redis for these tests")]
pub struct RedisUrlMissing;

/// Where Redis is and how long a call may take.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisWindowConfig {
    /// `redis://[user:password@]host[:port][/db]` (or `rediss://` where the redis crate
    /// has TLS; this crate enables none), `redis+unix:///path`. It may hold a password:
    /// it is never logged or put into errors by this crate.
    pub url: String,
    /// Keys start with `{prefix}:` (default [`DEFAULT_PREFIX`]); one Redis can serve
    /// several services with different prefixes.
    pub prefix: String,
    /// Time limit of one call, connecting included (default [`DEFAULT_TIMEOUT`]; more
    /// than zero).
    pub timeout: Duration,
}

impl RedisWindowConfig {
    /// `url`, the default prefix and timeout.
    pub fn new(url: impl Into<String>) -> Self {
        RedisWindowConfig {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets the time limit of one call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn client(&self) -> Result<redis::Client, RedisWindowError> {
        if self.timeout.is_zero() {
            return Err(RedisWindowError::ZeroTimeout);
        }
        if self.prefix.is_empty() || self.prefix.contains(':') {
            return Err(RedisWindowError::Prefix);
        }
        redis::Client::open(self.url.as_str()).map_err(|e| RedisWindowError::Url(describe(&e)))
    }
}

/// A configuration that cannot work; reported when the window is made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedisWindowError {
    /// The URL is not a Redis URL (the text says why, without the URL).
    #[error("invalid Redis URL: {0}")]
    Url(String),
    /// The timeout is zero.
    #[error("the Redis call timeout must be more than zero")]
    ZeroTimeout,
    /// The prefix is empty or has a `:`.
    #[error("the Redis key prefix must be non-empty and have no ':'")]
    Prefix,
}

/// What one query is in Redis terms.
enum Command {
    Claim {
        key: String,
        token: String,
        lease_ms: u64,
    },
    Record {
        key: String,
        window_ms: u64,
    },
    Release {
        key: String,
        token: String,
    },
}

impl Command {
    fn of(query: &WindowQuery, prefix: &str) -> Command {
        let key = query.key.render(prefix);
        match &query.op {
            WindowOp::Claim { token, lease } => Command::Claim {
                key,
                token: token.clone(),
                lease_ms: millis(*lease),
            },
            WindowOp::Record { window } => Command::Record {
                key,
                window_ms: millis(*window),
            },
            WindowOp::Release { token } => Command::Release {
                key,
                token: token.clone(),
            },
        }
    }
}

/// The answer to a claim script's result.
fn claim_answer(code: i64) -> Result<WindowAnswer, WindowError> {
    match code {
        0 => Ok(WindowAnswer::Claimed),
        1 => Ok(WindowAnswer::Handled),
        2 => Ok(WindowAnswer::Held),
        other => Err(WindowError(format!("unexpected claim result {other}"))),
    }
}

/// Whole milliseconds, at least 1 (Redis refuses `PX 0`).
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The redis crate's error as text for [`WindowError`]: its kind and detail, never the
/// URL.
fn describe(e: &redis::RedisError) -> String {
    e.to_string()
}

fn window_error(e: &redis::RedisError) -> WindowError {
    WindowError(format!("Redis: {}", describe(e)))
}

/// The shared window on Redis, blocking: each call takes an idle connection (or opens
/// one within the timeout), runs one command or script with read and write timeouts,
/// and keeps the connection for the next call unless it failed. `Send + Sync`: share it
/// between threads in an `Arc`.
pub struct RedisWindow {
    client: redis::Client,
    config: RedisWindowConfig,
    idle: Mutex<Vec<redis::Connection>>,
    claim: redis::Script,
    release: redis::Script,
}

impl std::fmt::Debug for RedisWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("RedisWindow")
            .field("prefix", &self.config.prefix)
            .field("timeout", &self.config.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisWindow {
    /// A window on the Redis at `config.url`. Connects lazily: Redis may be down now.
    ///
    /// Errors: an invalid URL, a zero timeout, an empty prefix or one with `:`.
    pub fn new(config: RedisWindowConfig) -> Result<Self, RedisWindowError> {
        Ok(RedisWindow {
            client: config.client()?,
            config,
            idle: Mutex::new(Vec::new()),
            claim: redis::Script::new(CLAIM),
            release: redis::Script::new(RELEASE),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RedisWindowConfig {
        &self.config
    }

    /// `PING`: whether Redis answers within the timeout (a start-up check).
    pub fn ping(&self) -> Result<(), WindowError> {
        self.with_connection(|con| redis::cmd("PING").query::<String>(con).map(drop))
    }

    /// Answers one query (see [`WindowOp`]); an error when Redis is unreachable, too
    /// slow (the timeout) or refuses the command.
    pub fn answer(&self, query: &WindowQuery) -> Result<WindowAnswer, WindowError> {
        match Command::of(query, &self.config.prefix) {
            Command::Claim {
                key,
                token,
                lease_ms,
            } => {
                let code: i64 = self.with_connection(|con| {
                    self.claim
                        .key(&key)
                        .arg(&token)
                        .arg(lease_ms)
                        .arg(HANDLED)
                        .invoke(con)
                })?;
                claim_answer(code)
            }
            Command::Record { key, window_ms } => {
                self.with_connection(|con| {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(HANDLED)
                        .arg("PX")
                        .arg(window_ms)
                        .query::<()>(con)
                })?;
                Ok(WindowAnswer::Recorded)
            }
            Command::Release { key, token } => {
                let _: i64 =
                    self.with_connection(|con| self.release.key(&key).arg(&token).invoke(con))?;
                Ok(WindowAnswer::Released)
            }
        }
    }

    /// Runs `f` on a connection with the timeouts set; a connection that failed is
    /// dropped (the next call connects again).
    fn with_connection<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, WindowError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut con = match idle {
            Some(con) => con,
            None => self.connect().map_err(|e| window_error(&e))?,
        };
        match f(&mut con) {
            Ok(value) => {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                if idle.len() < MAX_IDLE {
                    idle.push(con);
                }
                Ok(value)
            }
            // A command Redis refused leaves the connection usable; anything else
            // (I/O, timeout, a dropped connection) does not.
            Err(e) if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                Err(window_error(&e))
            }
            Err(e) => {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                if idle.len() < MAX_IDLE {
                    idle.push(con);
                }
                Err(window_error(&e))
            }
        }
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let timeout = self.config.timeout;
        let con = self.client.get_connection_with_timeout(timeout)?;
        con.set_read_timeout(Some(timeout))?;
        con.set_write_timeout(Some(timeout))?;
        Ok(con)
    }
}

impl WindowStore for RedisWindow {
    fn answer(&self, query: &WindowQuery) -> Result<WindowAnswer, WindowError> {
        RedisWindow::answer(self, query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors() {
        assert!(matches!(
            RedisWindow::new(RedisWindowConfig::new("http://example.invalid/")),
            Err(RedisWindowError::Url(_))
        ));
        assert_eq!(
            RedisWindow::new(
                RedisWindowConfig::new("redis://127.0.0.1/").with_timeout(Duration::ZERO)
            )
            .unwrap_err(),
            RedisWindowError::ZeroTimeout
        );
        assert_eq!(
            RedisWindow::new(RedisWindowConfig::new("redis://127.0.0.1/").with_prefix("a:b"))
                .unwrap_err(),
            RedisWindowError::Prefix
        );
    }

    #[test]
    fn claim_codes_and_millis() {
        assert_eq!(claim_answer(0), Ok(WindowAnswer::Claimed));
        assert_eq!(claim_answer(1), Ok(WindowAnswer::Handled));
        assert_eq!(claim_answer(2), Ok(WindowAnswer::Held));
        assert!(claim_answer(3).is_err());
        assert_eq!(millis(Duration::from_micros(10)), 1);
        assert_eq!(millis(Duration::from_secs(2)), 2_000);
    }

    #[test]
    fn unreachable_redis_is_an_error_within_the_timeout() {
        // Port 1 on loopback: nothing listens there.
        let window = RedisWindow::new(
            RedisWindowConfig::new("redis://127.0.0.1:1/").with_timeout(Duration::from_millis(200)),
        )
        .unwrap();
        let error = window.ping().unwrap_err();
        assert!(error.0.starts_with("Redis: "), "{error}");
        assert!(
            !error.0.contains("127.0.0.1:1"),
            "no URL in errors: {error}"
        );
    }
}
