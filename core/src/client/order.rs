//! Read order for frames checked away from the session (DESIGN: "results come back in
//! any order and the session restores read order").
//!
//! Every text frame read on the open connection gets the next sequence number and goes
//! out as a [`super::CheckJob`]. Results may come back in any order; one that arrives
//! before its predecessors waits here until they have come, so the ack decision sees
//! frames exactly as they were read. When the connection is lost, everything
//! outstanding is abandoned: results for it are dropped when they come.

use std::collections::BTreeMap;

use super::check::CheckedFrame;
use super::link::ConnId;

/// The jobs handed out on the current connection and the results waiting for their
/// predecessors. Bounded: at most `next_seq - next_deliver` jobs are outstanding, which
/// the session keeps at or under its `max_outstanding`, and only results for those are
/// kept.
#[derive(Debug, Default)]
pub(crate) struct ReadOrder {
    /// The connection the outstanding jobs were read on.
    conn: Option<ConnId>,
    /// The number the next job gets.
    next_seq: u64,
    /// The number of the next result to hand to the ack decision.
    next_deliver: u64,
    /// Results that came before their predecessors, by number.
    early: BTreeMap<u64, CheckedFrame>,
}

impl ReadOrder {
    /// Numbers a new job read on `conn`. A new connection abandons the old one's jobs.
    pub(crate) fn next_job(&mut self, conn: ConnId) -> u64 {
        if self.conn != Some(conn) {
            self.abandon();
            self.conn = Some(conn);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// Jobs handed out and not yet passed on in order.
    pub(crate) fn outstanding(&self) -> usize {
        usize::try_from(self.next_seq - self.next_deliver).unwrap_or(usize::MAX)
    }

    /// Forgets every outstanding job: their results will be dropped.
    pub(crate) fn abandon(&mut self) {
        self.next_deliver = self.next_seq;
        self.early.clear();
        self.conn = None;
    }

    /// Takes the result of job `seq` read on `conn`. `false` (and the result dropped)
    /// when it is not an outstanding job: abandoned, from another connection, or
    /// already returned.
    pub(crate) fn accept(&mut self, seq: u64, conn: ConnId, frame: CheckedFrame) -> bool {
        let outstanding = self.conn == Some(conn)
            && (self.next_deliver..self.next_seq).contains(&seq)
            && !self.early.contains_key(&seq);
        if outstanding {
            self.early.insert(seq, frame);
        }
        outstanding
    }

    /// The next result in read order, once it has come.
    pub(crate) fn pop_ready(&mut self) -> Option<CheckedFrame> {
        let frame = self.early.remove(&self.next_deliver)?;
        self.next_deliver += 1;
        Some(frame)
    }
}
