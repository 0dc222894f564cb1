//! The shared window on Redis for async code (features `tokio`, `async-std`): one
//! multiplexed connection, reconnected in the background by redis'
//! `ConnectionManager` after a failure, every call bounded by the timeout.

use std::time::Duration;

use futures_lite::FutureExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{
    claim_answer, window_error, Command, RedisWindowConfig, RedisWindowError, CLAIM, HANDLED,
    RELEASE,
};
use alipay_msg_core::window::{
    AsyncWindowStore, WindowAnswer, WindowError, WindowFuture, WindowQuery,
};

/// The shared window on Redis, async: `Send + Sync`, cheap to clone (clones share the
/// connection). Runs on tokio (feature `tokio`, inside a tokio runtime) and on
/// async-std / smol (feature `async-std`); with both features, the runtime of the
/// caller's thread is used when it is tokio's, else smol's.
///
/// What the async clients' driver does with it, for each
/// `Output::Window(query)` of its session: spawn a task that awaits
/// [`AsyncRedisWindow::answer`] (or [`AsyncWindowStore::answer`] on an
/// `Arc<dyn AsyncWindowStore>`) and sends `Input::WindowAnswered { id: query.id, answer }`
/// back to the task that owns the session, which feeds it with `handle_input` and polls
/// the session's outputs again. Never await it on the session's task: a slow Redis would
/// stall every connection.
#[derive(Clone)]
pub struct AsyncRedisWindow {
    manager: ConnectionManager,
    prefix: String,
    timeout: Duration,
    claim: std::sync::Arc<(redis::Script, redis::Script)>,
}

impl std::fmt::Debug for AsyncRedisWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncRedisWindow")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl AsyncRedisWindow {
    /// A window on the Redis at `config.url`. Connects lazily (Redis may be down now);
    /// call it inside the runtime (it starts the connection manager's task there).
    ///
    /// Errors: an invalid URL, a zero timeout, an empty prefix or one with `:`.
    ///
    /// # Panics
    ///
    /// With only the `tokio` feature, when called outside a tokio runtime (the
    /// connection manager's task is spawned on the caller's runtime).
    pub fn new(config: RedisWindowConfig) -> Result<Self, RedisWindowError> {
        let client = config.client()?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            // One quick retry per failure: the core retries at its own pace.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(config.timeout);
        let manager = ConnectionManager::new_lazy_with_config(client, manager_config)
            .map_err(|e| RedisWindowError::Url(super::describe(&e)))?;
        Ok(AsyncRedisWindow {
            manager,
            prefix: config.prefix,
            timeout: config.timeout,
            claim: std::sync::Arc::new((redis::Script::new(CLAIM), redis::Script::new(RELEASE))),
        })
    }

    /// `PING`: whether Redis answers within the timeout (a start-up check).
    pub async fn ping(&self) -> Result<(), WindowError> {
        let mut con = self.manager.clone();
        self.bounded(async move {
            redis::cmd("PING")
                .query_async::<String>(&mut con)
                .await
                .map(drop)
        })
        .await
    }

    /// Answers one query (see [`alipay_msg_core::window::WindowOp`]); an error when
    /// Redis is unreachable, too slow (the timeout) or refuses the command.
    pub async fn answer(&self, query: &WindowQuery) -> Result<WindowAnswer, WindowError> {
        let mut con = self.manager.clone();
        let scripts = self.claim.clone();
        match Command::of(query, &self.prefix) {
            Command::Claim {
                key,
                token,
                lease_ms,
            } => {
                let code: i64 = self
                    .bounded(async move {
                        scripts
                            .0
                            .key(&key)
                            .arg(&token)
                            .arg(lease_ms)
                            .arg(HANDLED)
                            .invoke_async(&mut con)
                            .await
                    })
                    .await?;
                claim_answer(code)
            }
            Command::Record { key, window_ms } => {
                self.bounded(async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(HANDLED)
                        .arg("PX")
                        .arg(window_ms)
                        .query_async::<()>(&mut con)
                        .await
                })
                .await?;
                Ok(WindowAnswer::Recorded)
            }
            Command::Release { key, token } => {
                let _: i64 = self
                    .bounded(
                        async move { scripts.1.key(&key).arg(&token).invoke_async(&mut con).await },
                    )
                    .await?;
                Ok(WindowAnswer::Released)
            }
        }
    }

    /// `call`, or a timeout error after the configured time (a reconnect under way
    /// included).
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, WindowError> {
        let timeout = self.timeout;
        async move { call.await.map_err(|e| window_error(&e)) }
            .or(async move {
                async_io::Timer::after(timeout).await;
                Err(WindowError(format!(
                    "Redis: no answer within {} ms",
                    timeout.as_millis()
                )))
            })
            .await
    }
}

impl AsyncWindowStore for AsyncRedisWindow {
    fn answer<'a>(&'a self, query: &'a WindowQuery) -> WindowFuture<'a> {
        Box::pin(AsyncRedisWindow::answer(self, query))
    }
}
