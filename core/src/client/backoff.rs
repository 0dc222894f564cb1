//! Reconnect backoff (PROTOCOL §8).
//!
//! The platform's Java client waits 0 s, 5 s, 10 s, 0 s, … between attempts; many
//! clients restarting together then hammer the platform in step. This client retries
//! the first time immediately, then waits a random time ("full jitter") drawn uniformly
//! from `[0, min(cap, base · 2^(n-1))]` for the n-th retry, and starts over once a
//! connection has stayed up for `reset_after`.

use std::time::Duration;

use rand_core::RngCore;

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Upper bound of the first jittered wait (default 1 s).
    pub base: Duration,
    /// No wait is longer than this (default 10 s).
    pub cap: Duration,
    /// A connection that stayed up this long resets the schedule (default 30 s).
    pub reset_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(10),
            reset_after: Duration::from_secs(30),
        }
    }
}

/// Where in the schedule the client is.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    config: BackoffConfig,
    /// Failed attempts since the last reset.
    failures: u32,
}

impl Backoff {
    pub(crate) fn new(config: BackoffConfig) -> Self {
        Backoff {
            config,
            failures: 0,
        }
    }

    /// Starts the schedule over.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    pub(crate) fn reset_after(&self) -> Duration {
        self.config.reset_after
    }

    /// The wait before the next attempt, after one more failure.
    pub(crate) fn next_delay(&mut self, rng: &mut dyn RngCore) -> Duration {
        let n = self.failures;
        self.failures = self.failures.saturating_add(1);
        if n == 0 {
            return Duration::ZERO;
        }
        let ceiling = self
            .config
            .base
            .checked_mul(1u32 << (n - 1).min(20))
            .map_or(self.config.cap, |d| d.min(self.config.cap));
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rng.next_u64() % (ceiling_ms + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_xoshiro::rand_core::SeedableRng;
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn first_retry_immediate_then_bounded_and_growing() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let mut b = Backoff::new(BackoffConfig::default());
        assert_eq!(b.next_delay(&mut rng), Duration::ZERO);
        let mut max_seen = Duration::ZERO;
        for n in 1..200u32 {
            let d = b.next_delay(&mut rng);
            let bound = Duration::from_secs(1u64 << (n - 1).min(10)).min(Duration::from_secs(10));
            assert!(d <= bound, "retry {n}: {d:?} > {bound:?}");
            max_seen = max_seen.max(d);
        }
        assert!(
            max_seen > Duration::from_secs(8),
            "full jitter reaches near the cap"
        );
        b.reset();
        assert_eq!(b.next_delay(&mut rng), Duration::ZERO);
    }
}
