//! [`AsyncStdRuntime`]: the [`Runtime`] of the async-std client — tasks on async-std's
//! global executor, timers from `async-io` and TCP from `async-net` (the reactor
//! async-std and smol share), so the client runs under either.

use std::io;
use std::time::Instant;

use alipay_msg_async::Runtime;
use async_io::Timer;
use async_net::TcpStream;

/// async-std's global executor (it starts its own threads on first use, so the caller
/// may be inside smol, `futures::executor` or async-std itself), with `async-io`
/// timers and `async-net` TCP.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStdRuntime;

impl Runtime for AsyncStdRuntime {
    type Tcp = TcpStream;
    type Timer = Timer;

    /// Always there: the global executor starts on first use.
    fn current() -> io::Result<Self> {
        Ok(AsyncStdRuntime)
    }

    fn spawn<F>(&self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        // Dropping an async-std join handle detaches its task.
        drop(async_std::task::spawn(future));
    }

    fn timer(&self, at: Instant) -> Timer {
        Timer::at(at)
    }

    fn reset_timer(&self, timer: &mut Timer, at: Instant) {
        timer.set_at(at);
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> io::Result<TcpStream> {
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }

    /// `ASYNC_STD_THREAD_COUNT` when set, else one per available core: the threads of
    /// async-std's global executor.
    fn worker_threads(&self) -> usize {
        std::env::var("ASYNC_STD_THREAD_COUNT")
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
            .unwrap_or(1)
    }
}
