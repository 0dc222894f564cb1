//! Checking lanes: `alipay-msg-check` threads that run the session's check jobs —
//! decoding a text frame, parsing it and checking a CONSUME's signature, nearly all of
//! a message's cost — so that checking runs on every core while the I/O thread reads,
//! decides and writes.
//!
//! The I/O thread deals the jobs of [`alipay_msg_core::client::Output::Check`] to the
//! lanes in turn, [`CHUNK`] jobs to a lane (a lane that gets several at once sleeps and
//! wakes less); each lane runs its jobs and hands every result straight back to the I/O
//! thread (its input channel), whatever the other lanes are doing. Results come back in
//! any order: the session restores read order itself.
//!
//! Queues are bounded: the session has at most `max_outstanding` jobs out
//! ([`alipay_msg_core::client::ClientSession::set_check_offload`]) and each lane's queue
//! holds that many, so dealing never blocks and never finds a queue full.

use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Consecutive jobs dealt to one lane.
pub(crate) const CHUNK: u64 = 4;

/// Check jobs the session may have out per lane (its `max_outstanding` is this many
/// times the number of lanes).
pub(crate) const JOBS_PER_LANE: usize = 4;

/// What a lane does with a job: runs it and hands the result on; `false` when nobody
/// takes results any more (the lane then ends).
pub(crate) type Work<J> = Arc<dyn Fn(J) -> bool + Send + Sync>;

/// The lanes of one client; their threads end when it is dropped.
pub(crate) struct Lanes<J> {
    lanes: Vec<SyncSender<J>>,
    threads: Vec<JoinHandle<()>>,
    /// Jobs dealt, ever; job `n` goes to lane `(n / CHUNK) % lanes`.
    dealt: u64,
}

/// Why a job was not dealt: it comes back, to be run elsewhere.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NotDealt<J> {
    /// The lane's queue is full (more jobs out than the session allows: not expected).
    Full(J),
    /// The lane's thread is gone (it cannot end on any input: only if it could not be
    /// kept running).
    Gone(J),
}

impl<J: Send + 'static> Lanes<J> {
    /// `count` lanes, each queueing up to `capacity` jobs, running `work`; `None` for
    /// fewer than two (the I/O thread then checks frames itself), or when a thread
    /// cannot be started.
    pub(crate) fn start(count: usize, capacity: usize, work: Work<J>) -> Option<Lanes<J>> {
        if count < 2 {
            return None;
        }
        let mut lanes = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for _ in 0..count {
            let (jobs, job_rx) = mpsc::sync_channel::<J>(capacity.max(1));
            let work = work.clone();
            let spawned = std::thread::Builder::new()
                .name("alipay-msg-check".to_owned())
                .spawn(move || {
                    while let Ok(job) = job_rx.recv() {
                        if !work(job) {
                            return;
                        }
                    }
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(error) => {
                    tracing::warn!(%error, "no checking lanes: frames are checked on the I/O thread");
                    // Dropping what was built ends and joins the lanes started so far.
                    drop(Lanes {
                        lanes,
                        threads,
                        dealt: 0,
                    });
                    return None;
                }
            }
            lanes.push(jobs);
        }
        Some(Lanes {
            lanes,
            threads,
            dealt: 0,
        })
    }

    /// Lanes running.
    pub(crate) fn count(&self) -> usize {
        self.lanes.len()
    }

    /// Hands `job` to the next lane in turn; never blocks.
    pub(crate) fn deal(&mut self, job: J) -> Result<(), NotDealt<J>> {
        // The index is below the number of lanes, a usize.
        let lane = ((self.dealt / CHUNK) % self.lanes.len() as u64) as usize;
        match self.lanes[lane].try_send(job) {
            Ok(()) => {
                self.dealt += 1;
                Ok(())
            }
            Err(TrySendError::Full(job)) => Err(NotDealt::Full(job)),
            Err(TrySendError::Disconnected(job)) => Err(NotDealt::Gone(job)),
        }
    }
}

impl<J> Drop for Lanes<J> {
    fn drop(&mut self) {
        // Closing the job channels ends the threads after their current job.
        self.lanes.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::time::Duration;

    /// Lanes that send `job * 10` back, sleeping first for odd jobs (so lanes finish
    /// out of turn).
    fn lanes(count: usize) -> (Lanes<u64>, mpsc::Receiver<u64>) {
        let (tx, rx) = mpsc::channel();
        let work: Work<u64> = Arc::new(move |job: u64| {
            if job % 2 == 1 {
                std::thread::sleep(Duration::from_millis(1));
            }
            tx.send(job * 10).is_ok()
        });
        (Lanes::start(count, 64, work).unwrap(), rx)
    }

    #[test]
    fn every_job_comes_back_once() {
        for count in [2, 3, 4] {
            let (mut lanes, results) = lanes(count);
            assert_eq!(lanes.count(), count);
            for job in 0..60 {
                lanes.deal(job).unwrap();
            }
            let mut seen = HashSet::new();
            for _ in 0..60 {
                let result = results.recv_timeout(Duration::from_secs(10)).unwrap();
                assert!(seen.insert(result), "{result} twice");
            }
            assert_eq!(seen, (0..60).map(|j| j * 10).collect());
        }
    }

    #[test]
    fn jobs_are_dealt_in_chunks() {
        let (tx, rx) = mpsc::channel();
        let work: Work<u64> = Arc::new(move |job: u64| {
            let name = std::thread::current().id();
            tx.send((job, name)).is_ok()
        });
        let mut lanes = Lanes::start(2, 64, work).unwrap();
        for job in 0..16 {
            lanes.deal(job).unwrap();
        }
        let mut by_job = std::collections::HashMap::new();
        for _ in 0..16 {
            let (job, thread) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            by_job.insert(job, thread);
        }
        for job in 0..16 {
            assert_eq!(by_job[&job], by_job[&(job / CHUNK * CHUNK)], "job {job}");
        }
        assert_ne!(by_job[&0], by_job[&CHUNK]);
        assert_eq!(by_job[&0], by_job[&(2 * CHUNK)]);
    }

    #[test]
    fn a_full_lane_gives_the_job_back() {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let work: Work<u64> = Arc::new(move |_| release_rx.lock().unwrap().recv().is_ok());
        let mut lanes = Lanes::start(2, 1, work).unwrap();
        // Lane 0 takes one job to run and queues one more; the next in its chunk
        // finds the queue full (or, if the lane has not taken its first yet, the one
        // after).
        let mut given_back = None;
        for job in 0..CHUNK {
            if let Err(e) = lanes.deal(job) {
                given_back = Some(e);
                break;
            }
        }
        assert!(
            matches!(given_back, Some(NotDealt::Full(_))),
            "{given_back:?}"
        );
        drop(release_tx);
    }

    #[test]
    fn one_lane_is_no_lanes() {
        let work: Work<u64> = Arc::new(|_| true);
        assert!(Lanes::start(1, 4, work).is_none());
    }

    #[test]
    fn dropping_the_lanes_ends_their_threads() {
        let (mut lanes, results) = lanes(2);
        for job in 0..16 {
            lanes.deal(job).unwrap();
        }
        // Joins the threads, with jobs still queued: returns.
        drop(lanes);
        drop(results);
    }
}
