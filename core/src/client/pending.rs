//! PRODUCEs waiting for their PRODUCE_ACK, by stream id (PROTOCOL §7).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

/// Sent PRODUCEs and their deadlines; capacity-bounded.
#[derive(Debug, Default)]
pub(crate) struct PendingSends {
    deadlines: HashMap<String, (Instant, u64)>,
    by_deadline: BTreeMap<(Instant, u64), String>,
    seq: u64,
}

impl PendingSends {
    pub(crate) fn len(&self) -> usize {
        self.deadlines.len()
    }

    pub(crate) fn insert(&mut self, stream_id: String, deadline: Instant) {
        self.seq += 1;
        self.by_deadline
            .insert((deadline, self.seq), stream_id.clone());
        self.deadlines.insert(stream_id, (deadline, self.seq));
    }

    /// Removes a stream id; `false` when it was not pending.
    pub(crate) fn remove(&mut self, stream_id: &str) -> bool {
        match self.deadlines.remove(stream_id) {
            Some(key) => self.by_deadline.remove(&key).is_some(),
            None => false,
        }
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.keys().next().map(|(d, _)| *d)
    }

    /// Removes and returns every stream id whose deadline has passed.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Vec<String> {
        let mut expired = Vec::new();
        while let Some(entry) = self.by_deadline.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            self.deadlines.remove(&id);
            expired.push(id);
        }
        expired
    }

    /// Removes and returns everything (the connection is gone).
    pub(crate) fn take_all(&mut self) -> Vec<String> {
        self.deadlines.clear();
        std::mem::take(&mut self.by_deadline)
            .into_values()
            .collect()
    }
}
