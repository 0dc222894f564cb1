//! The handler pool of [`crate::Client::run`]: threads named `alipay-msg-handler-N`,
//! started on demand, with a bounded queue.
//!
//! Sizing follows the platform's Java client (5 core threads, 10 at most, 15 s
//! keep-alive), with one difference that matters: its queue drops messages when full,
//! this one cannot overflow. The queue holds deliveries the session counts as in flight,
//! and the session stops reading the socket once `max_in_flight` deliveries await
//! completion — so a busy pool slows the platform down instead of losing messages
//! (PROTOCOL §6).
//!
//! The rules:
//!
//! - a job that finds fewer than `core_threads` threads starts a new one;
//! - a job that finds no idle thread starts a new one while fewer than `max_threads`
//!   run; otherwise it waits in the queue;
//! - a thread beyond `core_threads` that stays idle for `keep_alive` ends;
//! - [`Pool::join`] takes no new jobs, discards queued ones (their messages can no
//!   longer be acknowledged and are redelivered), lets running ones finish, and joins
//!   every thread.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::lock;

/// Size of the handler pool of [`crate::Client::run`] (see
/// [`crate::Client::connect_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// Threads kept when idle (default 5).
    pub core_threads: usize,
    /// Threads at most, i.e. handlers running at once (default 10).
    pub max_threads: usize,
    /// A thread beyond `core_threads` ends after this long without work (default
    /// 15 s).
    pub keep_alive: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            core_threads: 5,
            max_threads: 10,
            keep_alive: Duration::from_secs(15),
        }
    }
}

impl PoolConfig {
    /// `max_threads` at least 1, `core_threads` at most `max_threads`.
    fn normalized(self) -> Self {
        let max_threads = self.max_threads.max(1);
        PoolConfig {
            core_threads: self.core_threads.min(max_threads),
            max_threads,
            keep_alive: self.keep_alive,
        }
    }
}

/// One handler call.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// A pool of handler threads. Cheap to share: clone the `Arc`.
pub(crate) struct Pool {
    state: Mutex<State>,
    /// Signalled when a job is queued or the pool closes.
    work: Condvar,
    /// Signalled when a joiner has joined a thread.
    joined: Condvar,
    config: PoolConfig,
    /// Marks the threads as this client's (see [`crate::on_handler_thread_of`]).
    client_id: u64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Worker loops running.
    threads: usize,
    /// Workers waiting for a job.
    idle: usize,
    /// Idle workers woken for a job and not yet running: while one is on its way, no
    /// other is woken ([`Pool::wake_one`]).
    waking: usize,
    /// Most workers ever running at once.
    peak: usize,
    /// Names the next thread.
    started: usize,
    closed: bool,
    /// Threads not joined yet (finished ones are joined when the next job comes).
    handles: Vec<JoinHandle<()>>,
    /// Joins in progress by [`Pool::join`] callers.
    joining: usize,
}

impl Pool {
    pub(crate) fn new(config: PoolConfig, client_id: u64) -> Arc<Pool> {
        Arc::new(Pool {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            joined: Condvar::new(),
            config: config.normalized(),
            client_id,
        })
    }

    /// Queues `job`, starting a thread when the rules say so. Gives the job back when
    /// the pool is closed or no thread could run it.
    pub(crate) fn execute(self: &Arc<Self>, job: Job) -> Result<(), Job> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(job);
        }
        // Threads that ended after their keep-alive: join them now (they are done).
        let finished: Vec<JoinHandle<()>> = if state.handles.iter().any(JoinHandle::is_finished) {
            let (finished, running) = std::mem::take(&mut state.handles)
                .into_iter()
                .partition(JoinHandle::is_finished);
            state.handles = running;
            finished
        } else {
            Vec::new()
        };
        state.queue.push_back(job);
        let grow = state.threads < self.config.core_threads
            || (state.queue.len() > state.idle && state.threads < self.config.max_threads);
        if grow {
            if let Err(e) = self.spawn(&mut state) {
                tracing::warn!(error = %e, "could not start a handler thread");
                if state.threads == 0 {
                    // Nobody would ever run it: the queue held only this job.
                    if let Some(job) = state.queue.pop_back() {
                        return Err(job);
                    }
                }
            }
        }
        self.wake_one(&mut state);
        drop(state);
        for handle in finished {
            let _ = handle.join();
        }
        Ok(())
    }

    /// Wakes one idle worker for the queued jobs, unless one is already on its way.
    ///
    /// A woken worker that finds more jobs queued wakes the next before it runs its own
    /// ([`Pool::work_loop`]): slow jobs still spread over every thread, one wake-up
    /// after the other, while a burst of quick jobs costs a wake-up or two instead of
    /// one each (each is a system call and a context switch, more than a quick
    /// handler's whole run).
    fn wake_one(&self, state: &mut State) {
        if state.waking == 0 && state.idle > 0 && !state.queue.is_empty() {
            state.waking += 1;
            self.work.notify_one();
        }
    }

    fn spawn(self: &Arc<Self>, state: &mut State) -> std::io::Result<()> {
        state.started += 1;
        let pool = self.clone();
        let handle = std::thread::Builder::new()
            .name(format!("alipay-msg-handler-{}", state.started))
            .spawn(move || pool.work_loop())?;
        state.threads += 1;
        state.peak = state.peak.max(state.threads);
        state.handles.push(handle);
        Ok(())
    }

    fn work_loop(&self) {
        crate::mark_handler_thread(self.client_id);
        let mut state = lock(&self.state);
        loop {
            if let Some(job) = state.queue.pop_front() {
                self.wake_one(&mut state);
                drop(state);
                // Jobs catch their handler's panic themselves; this guards the
                // accounting below against a bug in a job.
                let _ = catch_unwind(AssertUnwindSafe(job));
                state = lock(&self.state);
                continue;
            }
            if state.closed {
                break;
            }
            state.idle += 1;
            if state.threads > self.config.core_threads {
                let (guard, wait) = self
                    .work
                    .wait_timeout(state, self.config.keep_alive)
                    .unwrap_or_else(PoisonError::into_inner);
                state = guard;
                state.idle -= 1;
                state.waking = state.waking.saturating_sub(1);
                if wait.timed_out()
                    && state.queue.is_empty()
                    && state.threads > self.config.core_threads
                {
                    break;
                }
            } else {
                state = self.wait(state);
                state.idle -= 1;
                state.waking = state.waking.saturating_sub(1);
            }
        }
        state.threads -= 1;
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.work
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Handler threads running now.
    pub(crate) fn threads(&self) -> usize {
        lock(&self.state).threads
    }

    /// Most handler threads that ran at once.
    pub(crate) fn peak_threads(&self) -> usize {
        lock(&self.state).peak
    }

    /// Closes the pool (queued jobs are discarded, running ones finish) and joins every
    /// thread. Callable from several threads at once: each returns only when every
    /// thread has been joined.
    pub(crate) fn join(&self) {
        let mut state = lock(&self.state);
        state.closed = true;
        let discarded = std::mem::take(&mut state.queue);
        self.work.notify_all();
        loop {
            if let Some(handle) = state.handles.pop() {
                state.joining += 1;
                drop(state);
                let _ = handle.join();
                state = lock(&self.state);
                state.joining -= 1;
                self.joined.notify_all();
                continue;
            }
            if state.joining == 0 {
                break;
            }
            state = self
                .joined
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(state);
        drop(discarded);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Instant;

    fn config(core: usize, max: usize, keep_alive_ms: u64) -> PoolConfig {
        PoolConfig {
            core_threads: core,
            max_threads: max,
            keep_alive: Duration::from_millis(keep_alive_ms),
        }
    }

    #[test]
    fn grows_to_max_under_load_and_never_beyond() {
        let pool = Pool::new(config(2, 4, 60_000), 0);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        let running = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..10 {
            let (rx, running, done) = (release_rx.clone(), running.clone(), done.clone());
            let job: Job = Box::new(move || {
                running.fetch_add(1, Ordering::SeqCst);
                let _ = lock(&rx).recv();
                done.fetch_add(1, Ordering::SeqCst);
            });
            assert!(pool.execute(job).is_ok());
        }
        let started = Instant::now();
        while running.load(Ordering::SeqCst) < 4 && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Each blocked job holds one thread: 4 run, 6 wait in the queue.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(running.load(Ordering::SeqCst), 4);
        assert_eq!(pool.threads(), 4);
        for _ in 0..10 {
            release_tx.send(()).unwrap();
        }
        while done.load(Ordering::SeqCst) < 10 && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(done.load(Ordering::SeqCst), 10);
        assert_eq!(pool.peak_threads(), 4);
        pool.join();
        assert_eq!(pool.threads(), 0);
    }

    #[test]
    fn threads_beyond_core_end_after_keep_alive() {
        let pool = Pool::new(config(1, 3, 50), 0);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        for _ in 0..3 {
            let rx = release_rx.clone();
            assert!(pool
                .execute(Box::new(move || {
                    let _ = lock(&rx).recv();
                }))
                .is_ok());
        }
        assert_eq!(pool.threads(), 3);
        for _ in 0..3 {
            release_tx.send(()).unwrap();
        }
        let started = Instant::now();
        while pool.threads() > 1 && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(pool.threads(), 1, "back to core");
        pool.join();
    }

    #[test]
    fn join_waits_for_running_jobs_and_refuses_new_ones() {
        let pool = Pool::new(PoolConfig::default(), 0);
        let started = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let (started, finished) = (started.clone(), finished.clone());
            assert!(pool
                .execute(Box::new(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    finished.fetch_add(1, Ordering::SeqCst);
                }))
                .is_ok());
        }
        let since = Instant::now();
        while started.load(Ordering::SeqCst) < 3 && since.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let other = {
            let pool = pool.clone();
            std::thread::spawn(move || pool.join())
        };
        pool.join();
        assert_eq!(finished.load(Ordering::SeqCst), 3);
        other.join().unwrap();
        assert!(pool.execute(Box::new(|| {})).is_err());
        assert_eq!(pool.threads(), 0);
    }

    #[test]
    fn join_discards_jobs_not_started() {
        let pool = Pool::new(config(1, 1, 1000), 0);
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let ran = Arc::new(AtomicUsize::new(0));
        let (entered_tx, entered_rx) = mpsc::channel::<()>();
        assert!(pool
            .execute(Box::new(move || {
                entered_tx.send(()).unwrap();
                let _ = release_rx.recv();
            }))
            .is_ok());
        entered_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let r = ran.clone();
        assert!(pool
            .execute(Box::new(move || {
                r.fetch_add(1, Ordering::SeqCst);
            }))
            .is_ok());
        let joiner = {
            let pool = pool.clone();
            std::thread::spawn(move || pool.join())
        };
        while !lock(&pool.state).closed {
            std::thread::sleep(Duration::from_millis(5));
        }
        release_tx.send(()).unwrap();
        joiner.join().unwrap();
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "the queued job was discarded"
        );
    }

    #[test]
    fn a_panicking_job_does_not_kill_the_accounting() {
        let pool = Pool::new(config(1, 1, 1000), 0);
        assert!(pool.execute(Box::new(|| panic!("bug in a job"))).is_ok());
        let (tx, rx) = mpsc::channel();
        assert!(pool.execute(Box::new(move || tx.send(()).unwrap())).is_ok());
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        pool.join();
        assert_eq!(pool.threads(), 0);
    }

    #[test]
    fn config_is_normalized() {
        let c = config(8, 0, 1).normalized();
        assert_eq!((c.core_threads, c.max_threads), (1, 1));
    }
}
