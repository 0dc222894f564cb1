//! What the client needs from an async runtime: [`Runtime`] — spawn a task, a timer,
//! TCP connect — in the manner of quinn's `runtime` module. Everything else (TLS with
//! `futures-rustls`, the HTTP CONNECT tunnel, channels, locks) is runtime-neutral and
//! written once in this crate over the `futures-io` traits, re-exported here as
//! [`AsyncRead`] and [`AsyncWrite`] for implementations.
//!
//! Every task of a client is spawned through its runtime and counted until it ends (the
//! count is what `Client::live_tasks` reports).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_channel::oneshot;
pub use futures_lite::io::{AsyncRead, AsyncWrite};

/// An async runtime the client runs on: the few things that differ between runtimes.
///
/// Implemented by `alipay_msg_tokio::TokioRuntime` (tokio) and
/// `alipay_msg_async_std::AsyncStdRuntime` (async-std's executor, async-io's reactor:
/// also under smol). A value is cheap to clone: each task and connection of a client
/// holds one.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// A connected TCP stream of this runtime, as a `futures-io` byte stream.
    /// `poll_close` shuts the writing side down (a FIN; reading goes on).
    type Tcp: AsyncRead + AsyncWrite + Send + Unpin + 'static;

    /// A timer: a future that completes at the instant it was set to (its output is
    /// not used), and again after each [`Runtime::reset_timer`].
    type Timer: Future + Send + Unpin + 'static;

    /// The runtime of the calling context. An error when there is none (tokio: called
    /// outside a tokio runtime); the client's `start` returns it as
    /// [`ClientError::Io`](crate::ClientError::Io).
    fn current() -> io::Result<Self>;

    /// Runs `future` to completion in the background, on the runtime's worker threads
    /// (detached: nothing waits for it here; the client's own bookkeeping does).
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// A timer that fires at `at`.
    fn timer(&self, at: Instant) -> Self::Timer;

    /// Moves `timer` to fire at `at` (also once it has fired). The driver keeps one
    /// timer for its whole run and moves it only when the session's deadline moves.
    fn reset_timer(&self, timer: &mut Self::Timer, at: Instant);

    /// Opens TCP to `host:port` (`host`: a name, resolved the runtime's way, or an IP
    /// address, an IPv6 one without brackets), with `TCP_NODELAY` set: the session's
    /// writes are whole frames, an ack must not wait for more.
    fn connect_tcp(
        &self,
        host: &str,
        port: u16,
    ) -> impl Future<Output = io::Result<Self::Tcp>> + Send;

    /// The worker threads the runtime runs tasks on: how many checking tasks the
    /// client starts by default (`ClientConfig::check_parallelism_for`).
    fn worker_threads(&self) -> usize;
}

/// Spawns the tasks of one client on its runtime and counts those that have not ended.
pub(crate) struct Tasks<R> {
    runtime: R,
    live: Arc<AtomicUsize>,
}

impl<R: Clone> Clone for Tasks<R> {
    fn clone(&self) -> Self {
        Tasks {
            runtime: self.runtime.clone(),
            live: self.live.clone(),
        }
    }
}

impl<R: Runtime> Tasks<R> {
    /// No task yet, on `runtime`.
    pub(crate) fn new(runtime: R) -> Self {
        Tasks {
            runtime,
            live: Arc::default(),
        }
    }

    /// The runtime the tasks run on.
    pub(crate) fn runtime(&self) -> &R {
        &self.runtime
    }

    /// Runs `future` on a task of its own; the [`Task`] gives its output (once the task
    /// no longer counts as live).
    pub(crate) fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (output, receiver) = oneshot::channel();
        let mut running = Running::new(self.live.clone(), output);
        let finished = running.finished.clone();
        self.runtime.spawn(async move {
            let out = future.await;
            if let Some(output) = running.end() {
                // Nobody waiting for the output is fine.
                let _ = output.send(out);
            }
        });
        Task { receiver, finished }
    }

    /// Runs `future` on a task of its own, with no handle on it. `done` is dropped when
    /// the task has ended, after it no longer counts as live: whoever waits for it (a
    /// channel closing, a semaphore permit coming back) sees the task gone.
    pub(crate) fn detach<F, D>(&self, future: F, done: D)
    where
        F: Future<Output = ()> + Send + 'static,
        D: Send + 'static,
    {
        let running = Running::new(self.live.clone(), done);
        self.runtime.spawn(async move {
            future.await;
            drop(running);
        });
    }

    /// Tasks spawned here that have not ended.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

/// Counts a task as live from its spawn until it ends or its future is dropped (the
/// runtime shutting down); then, and only then, lets `done` go.
struct Running<D> {
    live: Arc<AtomicUsize>,
    finished: Arc<AtomicBool>,
    /// `None` once ended.
    done: Option<D>,
}

impl<D> Running<D> {
    fn new(live: Arc<AtomicUsize>, done: D) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Running {
            live,
            finished: Arc::default(),
            done: Some(done),
        }
    }

    /// Counts the task as ended; gives `done` back (once).
    fn end(&mut self) -> Option<D> {
        let done = self.done.take();
        if done.is_some() {
            self.finished.store(true, Ordering::SeqCst);
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
        done
    }
}

impl<D> Drop for Running<D> {
    fn drop(&mut self) {
        // `done` is dropped after the count.
        let _done = self.end();
    }
}

/// A task of [`Tasks::spawn`]. Awaiting it gives its output (`None`: the runtime
/// dropped the task before it finished); dropping it lets the task run on.
pub(crate) struct Task<T> {
    receiver: oneshot::Receiver<T>,
    finished: Arc<AtomicBool>,
}

impl<T> Task<T> {
    /// The task has ended (its future was dropped).
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }
}

impl<T> Future for Task<T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        Pin::new(&mut self.receiver).poll(cx).map(Result::ok)
    }
}

/// A runtime for this crate's unit tests: a thread per task (`block_on`), `async-io`
/// timers and `async-net` TCP.
#[cfg(test)]
pub(crate) mod thread_per_task {
    use super::*;

    #[derive(Debug, Clone, Copy)]
    pub(crate) struct ThreadPerTask;

    impl Runtime for ThreadPerTask {
        type Tcp = async_net::TcpStream;
        type Timer = async_io::Timer;

        fn current() -> io::Result<Self> {
            Ok(ThreadPerTask)
        }

        fn spawn<F>(&self, future: F)
        where
            F: Future<Output = ()> + Send + 'static,
        {
            std::thread::spawn(move || futures_lite::future::block_on(future));
        }

        fn timer(&self, at: Instant) -> Self::Timer {
            async_io::Timer::at(at)
        }

        fn reset_timer(&self, timer: &mut Self::Timer, at: Instant) {
            timer.set_at(at);
        }

        async fn connect_tcp(&self, host: &str, port: u16) -> io::Result<Self::Tcp> {
            async_net::TcpStream::connect((host, port)).await
        }

        fn worker_threads(&self) -> usize {
            2
        }
    }
}
