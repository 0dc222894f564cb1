//! Where the client's tasks run — the one piece of this crate tied to async-std.
//!
//! Sockets and timers come from `async-net` and `async-io`, the reactor async-std and
//! smol share, so they work under any executor; only spawning needs one. Every task
//! of a client goes through [`Tasks::spawn`], which runs it on async-std's global
//! executor (it starts its own threads on first use, so the caller may be inside
//! smol, `futures::executor` or async-std itself) and counts it until it ends.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Spawns the tasks of one client and counts those still running.
#[derive(Clone, Default)]
pub(crate) struct Tasks {
    live: Arc<AtomicUsize>,
}

impl Tasks {
    /// Runs `future` on its own task.
    pub(crate) fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let guard = Running::new(self.live.clone());
        let finished = guard.finished.clone();
        let handle = async_std::task::spawn(async move {
            // Dropped when the task ends, by completion or cancellation.
            let _running = guard;
            future.await
        });
        Task { handle, finished }
    }

    /// Tasks spawned here that have not ended yet.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

/// Counts a task as running from its spawn until its future is dropped.
struct Running {
    live: Arc<AtomicUsize>,
    finished: Arc<AtomicBool>,
}

impl Running {
    fn new(live: Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Running {
            live,
            finished: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.finished.store(true, Ordering::SeqCst);
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A spawned task. Awaiting it waits for its output; dropping it lets it run on
/// (detached).
pub(crate) struct Task<T> {
    handle: async_std::task::JoinHandle<T>,
    finished: Arc<AtomicBool>,
}

impl<T> Task<T> {
    /// Lets the task run on by itself.
    pub(crate) fn detach(self) {
        // Dropping an async-std join handle detaches its task.
        drop(self.handle);
    }

    /// The task has ended (its future was dropped).
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.handle).poll(cx)
    }
}

/// Threads of async-std's global executor: `ASYNC_STD_THREAD_COUNT` when set, else one
/// per available core.
pub(crate) fn threads() -> usize {
    std::env::var("ASYNC_STD_THREAD_COUNT")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1)
}
