//! Checking lanes: `alipay-msg-check` threads that parse frames and check CONSUME
//! signatures for the I/O thread — nearly all of a message's cost — so that checking
//! runs on every core while the I/O thread reads, decides and writes.
//!
//! The I/O thread deals the text frames it reads to the lanes in turn, [`CHUNK`]
//! frames to a lane (a lane that gets several at once sleeps and wakes less), and takes
//! the checked frames back in the same turn ([`Lanes::try_take`], [`Lanes::take`]): the
//! session sees frames in the order they were read, whatever lane finished first.
//! Every lane holds at most [`AHEAD`] frames, so a stalled session stops the reading
//! (backpressure) instead of growing a queue, and dealing never blocks.
//!
//! When a connection ends, [`Lanes::reset`] drops its frames still being checked
//! (waiting for the lanes to finish them, well under a millisecond each): the platform
//! delivers them again, since none was acknowledged.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::Instant;

use alipay_msg_core::client::{CheckedFrame, ClientConfig, FrameChecker};
use tungstenite::Utf8Bytes;

/// Frames one lane may hold (dealt and not yet taken): a multiple of [`CHUNK`].
pub(crate) const AHEAD: usize = 8;

/// Consecutive frames dealt to one lane.
const CHUNK: u64 = 4;

struct Lane {
    jobs: SyncSender<Utf8Bytes>,
    results: Receiver<CheckedFrame>,
}

/// The lanes of one client; their threads end when it is dropped.
pub(crate) struct Lanes {
    lanes: Vec<Lane>,
    threads: Vec<JoinHandle<()>>,
    /// Frames dealt, ever; frame `n` goes to lane `(n / CHUNK) % lanes`.
    dealt: u64,
    /// Frames taken (or dropped by a reset), ever.
    taken: u64,
}

/// Why no checked frame was taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NotTaken {
    /// Nothing is being checked.
    Empty,
    /// The due frame is still being checked (or the deadline came first).
    NotYet,
    /// A lane's thread is gone (it cannot panic on any input: only if it could not be
    /// kept running).
    Gone,
}

impl Lanes {
    /// `ClientConfig::check_parallelism` lanes for the available cores; `None` for one,
    /// where the I/O thread checks frames itself, or when no thread can be started.
    pub(crate) fn start(checker: &FrameChecker, config: &ClientConfig) -> Option<Lanes> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Lanes::with_lanes(checker, config.check_parallelism_for(cores))
    }

    fn with_lanes(checker: &FrameChecker, count: usize) -> Option<Lanes> {
        if count < 2 {
            return None;
        }
        let mut lanes = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for _ in 0..count {
            // A lane holds at most AHEAD frames: neither side ever blocks on a full
            // channel.
            let (jobs, job_rx) = mpsc::sync_channel::<Utf8Bytes>(AHEAD);
            let (result_tx, results) = mpsc::sync_channel(AHEAD);
            let checker = checker.clone();
            let spawned = std::thread::Builder::new()
                .name("alipay-msg-check".to_owned())
                .spawn(move || {
                    while let Ok(text) = job_rx.recv() {
                        if result_tx.send(checker.check(text.as_str())).is_err() {
                            return;
                        }
                    }
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(error) => {
                    tracing::warn!(%error, "no checking lanes: frames are checked on the I/O thread");
                    return None;
                }
            }
            lanes.push(Lane { jobs, results });
        }
        Some(Lanes {
            lanes,
            threads,
            dealt: 0,
            taken: 0,
        })
    }

    fn lane(&self, frame: u64) -> &Lane {
        // The index is below the number of lanes, a usize.
        &self.lanes[((frame / CHUNK) % self.lanes.len() as u64) as usize]
    }

    /// Frames dealt and not yet taken.
    pub(crate) fn pending(&self) -> usize {
        // At most lanes × AHEAD.
        (self.dealt - self.taken) as usize
    }

    /// The lanes hold all they may: take a frame before dealing another. (Any
    /// `lanes × AHEAD` consecutive frames give each lane `AHEAD`.)
    pub(crate) fn is_full(&self) -> bool {
        self.pending() >= self.lanes.len() * AHEAD
    }

    /// Hands `text` to the next lane in turn. `false` if the lane's thread is gone.
    /// Must not be called when [`Lanes::is_full`]; then it never blocks.
    pub(crate) fn deal(&mut self, text: Utf8Bytes) -> bool {
        debug_assert!(!self.is_full());
        if self.lane(self.dealt).jobs.try_send(text).is_err() {
            return false;
        }
        self.dealt += 1;
        true
    }

    /// The next checked frame in read order, if it is ready.
    pub(crate) fn try_take(&mut self) -> Result<CheckedFrame, NotTaken> {
        self.take_with(|results| match results.try_recv() {
            Ok(checked) => Ok(checked),
            Err(mpsc::TryRecvError::Empty) => Err(NotTaken::NotYet),
            Err(mpsc::TryRecvError::Disconnected) => Err(NotTaken::Gone),
        })
    }

    /// The next checked frame in read order, waiting for it until `deadline`.
    pub(crate) fn take(&mut self, deadline: Instant) -> Result<CheckedFrame, NotTaken> {
        self.take_with(|results| {
            let wait = deadline.saturating_duration_since(Instant::now());
            match results.recv_timeout(wait) {
                Ok(checked) => Ok(checked),
                Err(RecvTimeoutError::Timeout) => Err(NotTaken::NotYet),
                Err(RecvTimeoutError::Disconnected) => Err(NotTaken::Gone),
            }
        })
    }

    fn take_with(
        &mut self,
        next: impl FnOnce(&Receiver<CheckedFrame>) -> Result<CheckedFrame, NotTaken>,
    ) -> Result<CheckedFrame, NotTaken> {
        if self.taken == self.dealt {
            return Err(NotTaken::Empty);
        }
        let frame = next(&self.lane(self.taken).results)?;
        self.taken += 1;
        Ok(frame)
    }

    /// Drops the frames being checked (their connection ended), once their lanes have
    /// finished them. `false` if a lane's thread is gone.
    pub(crate) fn reset(&mut self) -> bool {
        while self.taken < self.dealt {
            if self.lane(self.taken).results.recv().is_err() {
                self.taken = self.dealt;
                return false;
            }
            self.taken += 1;
        }
        true
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        // Closing the job channels ends the threads after their current frame.
        self.lanes.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alipay_msg_core::client::{ClientSession, Credentials};
    use rand_core::SeedableRng;
    use std::time::Duration;

    const CONSUME: &str = include_str!("../../testdata/frames/consume.txt");

    fn checker() -> FrameChecker {
        let credentials = Credentials::public_key(
            include_str!("../../testdata/vectors/keys/app_private_pkcs1.pem"),
            include_str!("../../testdata/vectors/keys/alipay_public.pem"),
        )
        .unwrap();
        let config = ClientConfig::new("2021000000000001", credentials);
        let rng = Box::new(rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(7));
        ClientSession::new(config, rng, Instant::now(), 0)
            .unwrap()
            .frame_checker()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// A valid CONSUME, or a malformed frame (checked at once, so lanes finish out of
    /// turn).
    fn text(valid: bool) -> Utf8Bytes {
        Utf8Bytes::from(if valid { CONSUME } else { "not a frame" })
    }

    #[test]
    fn frames_come_back_in_the_order_they_were_dealt() {
        for count in [2, 3, 4] {
            let mut lanes = Lanes::with_lanes(&checker(), count).unwrap();
            let pattern = |i: usize| i.is_multiple_of(3) || i % 7 == 1;
            let (mut dealt, mut taken) = (0, 0);
            while taken < 200 {
                while dealt < 200 && !lanes.is_full() {
                    assert!(lanes.deal(text(pattern(dealt))));
                    dealt += 1;
                }
                let frame = lanes.take(soon()).unwrap();
                assert_eq!(frame.is_verified_consume(), pattern(taken), "frame {taken}");
                taken += 1;
            }
            assert_eq!(lanes.pending(), 0);
            assert_eq!(lanes.try_take().unwrap_err(), NotTaken::Empty);
        }
    }

    #[test]
    fn holds_at_most_ahead_per_lane() {
        let mut lanes = Lanes::with_lanes(&checker(), 2).unwrap();
        for _ in 0..2 * AHEAD {
            assert!(!lanes.is_full());
            assert!(lanes.deal(text(true)));
        }
        assert!(lanes.is_full());
        assert_eq!(lanes.pending(), 2 * AHEAD);
        lanes.take(soon()).unwrap();
        assert!(!lanes.is_full());
    }

    #[test]
    fn a_reset_drops_the_frames_of_the_connection_let_go() {
        let mut lanes = Lanes::with_lanes(&checker(), 3).unwrap();
        // Five valid frames of the old connection, some still being checked.
        for _ in 0..5 {
            assert!(lanes.deal(text(true)));
        }
        lanes.reset();
        assert_eq!(lanes.pending(), 0);
        assert_eq!(lanes.try_take().unwrap_err(), NotTaken::Empty);
        // The new connection's frames alone come back, in order.
        let pattern = [false, false, true, false, true, true, false];
        for valid in pattern {
            assert!(lanes.deal(text(valid)));
        }
        for (i, valid) in pattern.into_iter().enumerate() {
            let frame = lanes.take(soon()).unwrap();
            assert_eq!(frame.is_verified_consume(), valid, "frame {i}");
        }
    }

    #[test]
    fn try_take_does_not_wait_and_take_waits_until_the_deadline() {
        let mut lanes = Lanes::with_lanes(&checker(), 2).unwrap();
        assert!(lanes.deal(text(true)));
        let frame = loop {
            match lanes.try_take() {
                Ok(frame) => break frame,
                Err(NotTaken::NotYet) => std::thread::yield_now(),
                Err(other) => panic!("{other:?}"),
            }
        };
        assert!(frame.is_verified_consume());
        // Nothing dealt: nothing to wait for.
        assert_eq!(lanes.take(soon()).unwrap_err(), NotTaken::Empty);
    }

    #[test]
    fn one_core_checks_on_the_io_thread() {
        assert!(Lanes::with_lanes(&checker(), 1).is_none());
    }

    #[test]
    fn dropping_the_lanes_ends_their_threads() {
        let mut lanes = Lanes::with_lanes(&checker(), 2).unwrap();
        for _ in 0..2 * AHEAD {
            assert!(lanes.deal(text(true)));
        }
        // Joins the threads, with frames still queued: returns.
        drop(lanes);
    }
}
