//! Time from Python: `time.monotonic()` seconds (float) ↔ the core's [`Instant`], and
//! the wall clock in milliseconds since the Unix epoch. The core reads no clock; the
//! session and the notification gate take `now` from Python (or read it here).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// How far a `now` may lie after the anchor: 100 years, in seconds (deadlines are `now`
/// plus at most 365 days, which must not overflow the clock).
const MAX_ELAPSED_SECS: f64 = 100.0 * 365.0 * 24.0 * 3600.0;

/// Seconds on the `time.monotonic()` clock ↔ the core's [`Instant`]: one fixed anchor,
/// taken when the session (or gate) is made.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    anchor: Instant,
    anchor_secs: f64,
}

impl Clock {
    /// A clock whose anchor is now, which is `anchor_secs` on the `time.monotonic()`
    /// clock.
    pub(crate) fn new(anchor_secs: f64) -> Self {
        Clock {
            anchor: Instant::now(),
            anchor_secs,
        }
    }

    /// The instant of `now` (seconds on the same clock as the anchor). A time before
    /// the anchor is the anchor.
    ///
    /// Raises ValueError for a `now` that is not finite or lies more than 100 years
    /// after the anchor.
    pub(crate) fn instant(&self, now: f64) -> PyResult<Instant> {
        if !now.is_finite() {
            return Err(PyValueError::new_err(format!(
                "now must be a finite number of seconds (time.monotonic()), not {now}"
            )));
        }
        let elapsed = now - self.anchor_secs;
        if elapsed <= 0.0 {
            return Ok(self.anchor);
        }
        if elapsed > MAX_ELAPSED_SECS {
            return Err(PyValueError::new_err(format!(
                "now = {now} is more than 100 years after the start (at {}): pass \
                 time.monotonic()",
                self.anchor_secs
            )));
        }
        // Finite, positive and bounded: both conversions succeed.
        Ok(self.anchor + Duration::from_secs_f64(elapsed))
    }

    /// The instant of `now`, or of `time.monotonic()` read here when `now` is `None`.
    ///
    /// Raises as [`instant`](Self::instant).
    pub(crate) fn instant_or_now(&self, py: Python<'_>, now: Option<f64>) -> PyResult<Instant> {
        let now = match now {
            Some(now) => now,
            None => monotonic(py)?,
        };
        self.instant(now)
    }

    /// The `time.monotonic()` seconds of `at`.
    pub(crate) fn seconds(&self, at: Instant) -> f64 {
        self.anchor_secs + at.saturating_duration_since(self.anchor).as_secs_f64()
    }
}

/// The wall clock: milliseconds since the Unix epoch (0 for a clock set before 1970).
pub(crate) fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `time.monotonic()`, in seconds.
pub(crate) fn monotonic(py: Python<'_>) -> PyResult<f64> {
    py.import("time")?.call_method0("monotonic")?.extract()
}
