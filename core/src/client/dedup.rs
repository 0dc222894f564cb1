//! Duplicate suppression: message ids already handled successfully (PROTOCOL §6).
//!
//! Delivery is at least once; the same `x-msgId` can come again, also on another
//! connection, for as long as the platform keeps retrying (about 25 hours for HTTP
//! notifications). The window remembers successfully handled ids, bounded both by count
//! and by age; the oldest are forgotten first.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct DuplicateWindow {
    capacity: usize,
    max_age: Duration,
    ids: HashSet<String>,
    order: VecDeque<(Instant, String)>,
}

impl DuplicateWindow {
    pub(crate) fn new(capacity: usize, max_age: Duration) -> Self {
        DuplicateWindow {
            capacity,
            max_age,
            ids: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    pub(crate) fn contains(&self, msg_id: &str) -> bool {
        self.ids.contains(msg_id)
    }

    /// Remembers `msg_id` as handled at `now`, forgetting the oldest past the bounds.
    pub(crate) fn insert(&mut self, msg_id: &str, now: Instant) {
        self.expire(now);
        if self.capacity == 0 || !self.ids.insert(msg_id.to_owned()) {
            return;
        }
        self.order.push_back((now, msg_id.to_owned()));
        while self.order.len() > self.capacity {
            self.pop_oldest();
        }
    }

    /// Forgets ids older than the maximum age.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.max_age {
                break;
            }
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((_, id)) = self.order.pop_front() {
            self.ids.remove(&id);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_count_and_age() {
        let t0 = Instant::now();
        let mut w = DuplicateWindow::new(2, Duration::from_secs(10));
        w.insert("a", t0);
        w.insert("b", t0);
        w.insert("a", t0);
        assert_eq!(w.len(), 2);
        w.insert("c", t0 + Duration::from_secs(1));
        assert!(!w.contains("a") && w.contains("b") && w.contains("c"));
        w.expire(t0 + Duration::from_secs(10));
        assert!(!w.contains("b") && w.contains("c"));
        w.expire(t0 + Duration::from_secs(11));
        assert_eq!(w.len(), 0);
    }
}
