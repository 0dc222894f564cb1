//! Time as the sessions see it (DESIGN: `now` is passed into every input, never read).
//!
//! Timers run on [`std::time::Instant`]; protocol timestamps (`timestamp`,
//! `x-timestamp`) are wall-clock milliseconds since the Unix epoch. A [`WallClock`] ties
//! the two together from one reading the caller supplies, so a session never reads a
//! clock itself and simulated-time tests are exact.

use std::time::Instant;

/// Wall-clock milliseconds derived from an anchor reading and monotonic time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    anchor: Instant,
    unix_ms: i64,
}

impl WallClock {
    /// At monotonic time `anchor` the wall clock read `unix_ms`.
    pub fn new(anchor: Instant, unix_ms: i64) -> Self {
        WallClock { anchor, unix_ms }
    }

    /// Wall-clock milliseconds at monotonic time `now` (earlier instants count back).
    pub fn unix_ms(&self, now: Instant) -> i64 {
        match now.checked_duration_since(self.anchor) {
            Some(ahead) => self.unix_ms.saturating_add(millis(ahead)),
            None => self
                .unix_ms
                .saturating_sub(millis(self.anchor.duration_since(now))),
        }
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn follows_monotonic_time() {
        let t0 = Instant::now();
        let clock = WallClock::new(t0 + Duration::from_secs(10), 1_000_000);
        assert_eq!(clock.unix_ms(t0 + Duration::from_millis(10_250)), 1_000_250);
        assert_eq!(clock.unix_ms(t0), 990_000);
    }
}
