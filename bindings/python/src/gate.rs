//! The notification endpoint decision (PROTOCOL §10) for Python: the core's
//! [`NotifyGate`](CoreGate) behind a lock, shared by a web server's worker threads — the
//! native half of `alipay_msg.NotifyGate` (`python/alipay_msg/_gate.py`, which builds
//! the typed verdicts).
//!
//! `check` runs the core's stateless [`check`](CoreGate::check) (content type, size,
//! signature, `app_id`, freshness) under a read lock, so that threads verify signatures
//! side by side, then its stateful [`admit`](CoreGate::admit) (duplicate window, claims)
//! under the write lock; both without the GIL. No lock is ever taken while the GIL is
//! held, and none is held while Python code runs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use alipay_msg_core::notify::{
    Claim, NotifyGate as CoreGate, RefuseReason, Verdict, DEFAULT_CLAIM_TIMEOUT,
    DEFAULT_DUPLICATE_CAPACITY, DEFAULT_DUPLICATE_MAX_AGE, DEFAULT_MAX_IN_PROGRESS,
};
use alipay_msg_core::sign_content::Rule;
use alipay_msg_core::signature::Verifier;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::clock::{monotonic, unix_ms_now, Clock};
use crate::errors::InvalidKeyError;
use crate::keys::PublicKey;
use crate::notification::{notification_dict, rule_named};

/// The longest duration a gate setting may have: 365 days, in seconds.
const MAX_SETTING_SECS: f64 = 365.0 * 24.0 * 3600.0;

/// The identity of the next gate made, so that a claim is only given back to its own.
static NEXT_GATE_ID: AtomicU64 = AtomicU64::new(0);

/// _NotifyGate(key: PublicKey, app_id: str, rule: str, duplicate_capacity: int,
/// duplicate_max_age: float, freshness: float | None, max_in_progress: int,
/// claim_timeout: float, *, now: float | None = None)
///
/// The core's NotifyGate, thread-safe. Durations are seconds. Use alipay_msg.NotifyGate.
#[pyclass(frozen, module = "alipay_msg", name = "_NotifyGate")]
pub struct NotifyGate {
    id: u64,
    gate: RwLock<CoreGate>,
    clock: Clock,
}

/// The claim on a notification's `notify_id` while its handler runs, from a
/// HandleVerdict (`verdict.claim`): give it back with NotifyGate.complete(verdict,
/// success). While it is held, the same `notify_id` is refused ("in_progress"); one
/// never given back is forgotten after the gate's claim_timeout.
#[pyclass(frozen, module = "alipay_msg", name = "NotifyClaim")]
pub struct NotifyClaim {
    gate_id: u64,
    notify_id: String,
    /// `None` once given back.
    claim: Mutex<Option<Claim>>,
}

#[pymethods]
impl NotifyClaim {
    /// The `notify_id` claimed (str).
    #[getter]
    fn notify_id(&self) -> &str {
        &self.notify_id
    }

    /// Whether the claim was given back already (bool).
    #[getter]
    fn completed(&self) -> bool {
        lock(&self.claim).is_none()
    }

    fn __repr__(&self) -> String {
        format!(
            "<alipay_msg.NotifyClaim notify_id={:?}{}>",
            self.notify_id,
            if self.completed() { " completed" } else { "" }
        )
    }
}

/// A duration setting in seconds: finite, more than 0, at most 365 days.
fn setting_secs(name: &str, value: f64) -> PyResult<Duration> {
    if value.is_finite() && value > 0.0 && value <= MAX_SETTING_SECS {
        // Finite, positive and bounded: the conversion succeeds.
        return Ok(Duration::from_secs_f64(value));
    }
    Err(PyValueError::new_err(format!(
        "{name} must be a number of seconds more than 0 and at most 365 days, not {value}"
    )))
}

/// A count setting: at least `min`.
fn setting_count(name: &str, value: i64, min: usize) -> PyResult<usize> {
    usize::try_from(value)
        .ok()
        .filter(|v| *v >= min)
        .ok_or_else(|| PyValueError::new_err(format!("{name} must be at least {min}, not {value}")))
}

fn read(gate: &RwLock<CoreGate>) -> RwLockReadGuard<'_, CoreGate> {
    gate.read().unwrap_or_else(PoisonError::into_inner)
}

fn write(gate: &RwLock<CoreGate>) -> RwLockWriteGuard<'_, CoreGate> {
    gate.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The snake_case name of a refusal, for `RefusedVerdict.kind`.
fn refuse_kind(reason: &RefuseReason) -> &'static str {
    match reason {
        RefuseReason::TooLarge { .. } => "too_large",
        RefuseReason::ContentType { .. } => "content_type",
        RefuseReason::Malformed(_) => "malformed",
        RefuseReason::BadSignature(_) => "bad_signature",
        RefuseReason::ForeignAppId { .. } => "foreign_app_id",
        RefuseReason::Stale { .. } => "stale",
        RefuseReason::NoTime { .. } => "no_time",
        RefuseReason::InProgress { .. } => "in_progress",
        RefuseReason::ClaimedElsewhere { .. } => "claimed_elsewhere",
        RefuseReason::SharedWindow { .. } => "shared_window",
        RefuseReason::Busy { .. } => "busy",
        _ => "other",
    }
}

#[pymethods]
impl NotifyGate {
    #[new]
    #[pyo3(signature = (
        key, app_id, rule, duplicate_capacity, duplicate_max_age, freshness,
        max_in_progress, claim_timeout, *, now = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        key: &Bound<'_, PublicKey>,
        app_id: String,
        rule: &str,
        duplicate_capacity: i64,
        duplicate_max_age: f64,
        freshness: Option<f64>,
        max_in_progress: i64,
        claim_timeout: f64,
        now: Option<f64>,
    ) -> PyResult<Self> {
        if app_id.is_empty() {
            return Err(PyValueError::new_err("app_id must not be empty"));
        }
        let rule = rule_named(rule)?;
        let capacity = setting_count("duplicate_capacity", duplicate_capacity, 0)?;
        let max_age = setting_secs("duplicate_max_age", duplicate_max_age)?;
        let freshness = freshness
            .map(|f| setting_secs("freshness", f))
            .transpose()?;
        let max_in_progress = setting_count("max_in_progress", max_in_progress, 1)?;
        let claim_timeout = setting_secs("claim_timeout", claim_timeout)?;
        let verifier =
            Verifier::new(key.get().core()).map_err(|e| InvalidKeyError::new_err(e.to_string()))?;
        let mut gate = CoreGate::new(verifier, app_id)
            .with_rule(rule)
            .with_duplicate_window(capacity, max_age)
            .with_max_in_progress(max_in_progress)
            .with_claim_timeout(claim_timeout);
        if let Some(window) = freshness {
            gate = gate.with_freshness(window);
        }
        let now = match now {
            Some(now) => now,
            None => monotonic(py)?,
        };
        Ok(NotifyGate {
            id: NEXT_GATE_ID.fetch_add(1, Ordering::Relaxed),
            gate: RwLock::new(gate),
            clock: Clock::new(now),
        })
    }

    /// check(body: bytes, content_type: str | None, *, now: float | None = None,
    /// unix_ms: int | None = None) -> tuple
    ///
    /// The core's decision for one request (NotifyGate::decide): `body` the raw request
    /// body, `content_type` its Content-Type header (None when absent), `now`
    /// time.monotonic() seconds (default: read now), `unix_ms` the wall clock in
    /// milliseconds since the Unix epoch (default: read now; used only by the
    /// freshness window). Runs without the GIL. Returns ("handle", notification dict as
    /// verify returns it, NotifyClaim), ("duplicate", notify_id, None) or ("refused",
    /// kind, message).
    ///
    /// Raises ValueError for a `now` that is not finite.
    #[pyo3(signature = (body, content_type, *, now = None, unix_ms = None))]
    fn check<'py>(
        &self,
        py: Python<'py>,
        body: &[u8],
        content_type: Option<&str>,
        now: Option<f64>,
        unix_ms: Option<i64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let at = self.clock.instant_or_now(py, now)?;
        let unix_ms = unix_ms.unwrap_or_else(unix_ms_now);
        let verdict = py.detach(|| {
            // Stateless (the signature) under the read lock, so that threads verify side
            // by side; the duplicate window and the claims under the write lock.
            let checked = read(&self.gate).check(content_type, body, unix_ms);
            match checked {
                Ok(notification) => write(&self.gate).admit(notification, at),
                Err(reason) => Verdict::Refuse(reason),
            }
        });
        match verdict {
            Verdict::Handle {
                notification,
                claim,
            } => {
                let dict = match notification_dict(py, &notification) {
                    Ok(dict) => dict,
                    Err(e) => {
                        // Nothing to hand to Python: release the claim at once.
                        let _ = py.detach(|| write(&self.gate).complete(claim, false, at));
                        return Err(e);
                    }
                };
                let claim = NotifyClaim {
                    gate_id: self.id,
                    notify_id: claim.notify_id().to_owned(),
                    claim: Mutex::new(Some(claim)),
                };
                ("handle", dict, Bound::new(py, claim)?).into_pyobject(py)
            }
            Verdict::Duplicate { notify_id } => {
                ("duplicate", notify_id, py.None()).into_pyobject(py)
            }
            Verdict::Refuse(reason) => {
                ("refused", refuse_kind(&reason), reason.to_string()).into_pyobject(py)
            }
        }
    }

    /// complete(claim: NotifyClaim, success: bool, *, now: float | None = None) -> str
    ///
    /// Gives a claim back with the handler's outcome (NotifyGate::complete) and returns
    /// the answer: "success" when `success` (the notify_id is remembered: later
    /// deliveries are duplicates), else "fail" (the claim is released: the platform's
    /// retry is handled again). Runs without the GIL.
    ///
    /// Raises RuntimeError for a claim already given back, ValueError for one from
    /// another gate or a `now` that is not finite.
    #[pyo3(signature = (claim, success, *, now = None))]
    fn complete(
        &self,
        py: Python<'_>,
        claim: &Bound<'_, NotifyClaim>,
        success: bool,
        now: Option<f64>,
    ) -> PyResult<&'static str> {
        let claim = claim.get();
        if claim.gate_id != self.id {
            return Err(PyValueError::new_err(format!(
                "the claim on {:?} is from another NotifyGate",
                claim.notify_id
            )));
        }
        let at = self.clock.instant_or_now(py, now)?;
        let Some(taken) = lock(&claim.claim).take() else {
            return Err(PyRuntimeError::new_err(format!(
                "the claim on {:?} was completed already",
                claim.notify_id
            )));
        };
        let response = py.detach(|| write(&self.gate).complete(taken, success, at));
        Ok(response.body())
    }

    /// Our app_id (str).
    #[getter]
    fn app_id(&self, py: Python<'_>) -> String {
        py.detach(|| read(&self.gate).app_id().to_owned())
    }

    /// The sign-content rule: "v1" or "v2" (str).
    #[getter]
    fn rule(&self, py: Python<'_>) -> &'static str {
        match py.detach(|| read(&self.gate).rule()) {
            Rule::V1 => "v1",
            Rule::V2 => "v2",
        }
    }

    /// How many notify_ids are remembered as handled (int).
    #[getter]
    fn handled_len(&self, py: Python<'_>) -> usize {
        py.detach(|| read(&self.gate).handled_len())
    }

    /// How many notifications are being handled: claims not given back yet (int).
    #[getter]
    fn in_progress_len(&self, py: Python<'_>) -> usize {
        py.detach(|| read(&self.gate).in_progress_len())
    }
}

/// _gate_defaults() -> dict[str, object]
///
/// The core's NotifyGate defaults by the names of alipay_msg.NotifyGate, durations in
/// seconds: the tests check that NotifyGate's defaults are these.
#[pyfunction]
pub fn _gate_defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("duplicate_capacity", DEFAULT_DUPLICATE_CAPACITY)?;
    out.set_item("duplicate_max_age", DEFAULT_DUPLICATE_MAX_AGE.as_secs_f64())?;
    out.set_item("max_in_progress", DEFAULT_MAX_IN_PROGRESS)?;
    out.set_item("claim_timeout", DEFAULT_CLAIM_TIMEOUT.as_secs_f64())?;
    out.set_item("freshness", py.None())?;
    Ok(out)
}
