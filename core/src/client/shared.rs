//! The session's side of a shared duplicate window (module [`crate::window`]): the
//! queries out and what each is for, and the successes not yet recorded.

use std::collections::HashMap;
use std::time::Instant;

use crate::window::{QueryId, SharedWindowConfig, Tokens};

use super::output::DeliveryId;

/// Successes whose record failed, retried in the background: at most this many (past it
/// a success is acked as its policy says but not retried; its claim ends with the
/// lease).
pub(crate) const MAX_UNRECORDED: usize = 10_000;

/// What a query out is for.
#[derive(Debug)]
pub(crate) enum Purpose {
    /// The claim before `delivery` is handed out.
    Claim { delivery: DeliveryId },
    /// The record of a success: of `delivery`'s completion (its ack waits), or a
    /// background retry (`None`).
    Record {
        delivery: Option<DeliveryId>,
        msg_id: String,
    },
    /// The release of a failed delivery's claim: the answer changes nothing.
    Release,
}

/// A success to record again.
#[derive(Debug)]
pub(crate) struct Unrecorded {
    /// When to try again.
    pub(crate) retry_at: Instant,
    /// A record query for it is out.
    pub(crate) querying: bool,
}

#[derive(Debug)]
pub(crate) struct SharedWindow {
    pub(crate) config: SharedWindowConfig,
    pub(crate) tokens: Tokens,
    next_query: u64,
    pub(crate) queries: HashMap<QueryId, Purpose>,
    /// Queries out that belong to no delivery (releases, background records): they
    /// count toward `max_in_flight` too.
    pub(crate) detached: usize,
    pub(crate) unrecorded: HashMap<String, Unrecorded>,
    /// Failed queries since the last answer.
    pub(crate) failures: u64,
}

impl SharedWindow {
    pub(crate) fn new(config: SharedWindowConfig, tag: u64) -> Self {
        SharedWindow {
            config,
            tokens: Tokens::new(tag),
            next_query: 0,
            queries: HashMap::new(),
            detached: 0,
            unrecorded: HashMap::new(),
            failures: 0,
        }
    }

    /// Numbers a query and remembers what it is for.
    pub(crate) fn register(&mut self, purpose: Purpose) -> QueryId {
        self.next_query += 1;
        let id = QueryId(self.next_query);
        if is_detached(&purpose) {
            self.detached += 1;
        }
        self.queries.insert(id, purpose);
        id
    }

    /// Takes back what a query was for, once.
    pub(crate) fn take(&mut self, id: QueryId) -> Option<Purpose> {
        let purpose = self.queries.remove(&id)?;
        if is_detached(&purpose) {
            self.detached = self.detached.saturating_sub(1);
        }
        Some(purpose)
    }

    /// Remembers a success to record again from `retry_at`; `false` when too many wait.
    pub(crate) fn add_unrecorded(&mut self, msg_id: &str, retry_at: Instant) -> bool {
        if let Some(entry) = self.unrecorded.get_mut(msg_id) {
            entry.retry_at = retry_at;
            entry.querying = false;
            return true;
        }
        if self.unrecorded.len() >= MAX_UNRECORDED {
            return false;
        }
        self.unrecorded.insert(
            msg_id.to_owned(),
            Unrecorded {
                retry_at,
                querying: false,
            },
        );
        true
    }

    pub(crate) fn remove_unrecorded(&mut self, msg_id: &str) {
        self.unrecorded.remove(msg_id);
    }

    /// Background records that may be out at once: a quarter of `max_in_flight`, at
    /// least 1, less the releases and records already out.
    pub(crate) fn retry_budget(&self, max_in_flight: usize) -> usize {
        (max_in_flight / 4).max(1).saturating_sub(self.detached)
    }

    /// The earliest retry of a success not being recorded right now; `None` while no
    /// more may go out (an answer makes room, and the session looks again then).
    pub(crate) fn next_retry(&self, max_in_flight: usize) -> Option<Instant> {
        if self.retry_budget(max_in_flight) == 0 {
            return None;
        }
        self.unrecorded
            .values()
            .filter(|u| !u.querying)
            .map(|u| u.retry_at)
            .min()
    }

    /// Successes due for another record, at most `budget`, marked as being recorded.
    pub(crate) fn due(&mut self, now: Instant, budget: usize) -> Vec<String> {
        let mut due = Vec::new();
        for (msg_id, entry) in &mut self.unrecorded {
            if due.len() >= budget {
                break;
            }
            if !entry.querying && entry.retry_at <= now {
                entry.querying = true;
                due.push(msg_id.clone());
            }
        }
        due
    }
}

fn is_detached(purpose: &Purpose) -> bool {
    matches!(
        purpose,
        Purpose::Release | Purpose::Record { delivery: None, .. }
    )
}
