//! `[dedup]` in the configuration of `listen`: the duplicate window shared by every
//! instance of the service, on Redis (`alipay-msg-redis`, docs/clusters.md). Each
//! message is claimed there before `listen` prints it (or runs `--exec`) and recorded
//! there before its SUCCESS ack; one another instance holds, or met while Redis is
//! away, is answered FAIL and redelivered by the platform.

use std::sync::Arc;

use alipay_msg_core::window::AsyncWindowStore;
use alipay_msg_redis::{AsyncRedisWindow, RedisWindowConfig};

use crate::config_file::Dedup;
use crate::Failure;

/// The store of `[dedup]`, made on the current tokio runtime (its connections are that
/// runtime's). A `redis_url` that is not a Redis URL is a start-up error (exit 2);
/// an unreachable Redis is not (each claim is then answered FAIL until it is back).
pub(crate) fn window_store(dedup: &Dedup) -> Result<Arc<dyn AsyncWindowStore>, Failure> {
    let window = AsyncRedisWindow::new(RedisWindowConfig::new(dedup.redis_url.clone()))
        .map_err(|e| Failure::malformed(format!("[dedup] redis_url: {e}")))?;
    Ok(Arc::new(window))
}
