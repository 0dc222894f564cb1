//! [`TokioRuntime`]: the [`Runtime`] of the tokio client — tasks on the runtime the
//! client was started in, tokio's timer and TCP — and [`TokioTcp`], a tokio TCP stream
//! as the `futures-io` byte stream the client's connections (and TLS) work over.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use alipay_msg_async::runtime::{AsyncRead, AsyncWrite, Runtime};
use tokio::io::{AsyncRead as _, AsyncWrite as _, ReadBuf};

/// The tokio runtime the client was started in (a handle on it: the client's tasks
/// run there even when a method is called from elsewhere).
#[derive(Debug, Clone)]
pub struct TokioRuntime(tokio::runtime::Handle);

impl Runtime for TokioRuntime {
    type Tcp = TokioTcp;
    type Timer = Pin<Box<tokio::time::Sleep>>;

    /// The runtime of the calling context; an error outside one.
    fn current() -> io::Result<Self> {
        tokio::runtime::Handle::try_current()
            .map(TokioRuntime)
            .map_err(|e| io::Error::other(format!("not within a tokio runtime: {e}")))
    }

    fn spawn<F>(&self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        // Dropping the join handle detaches the task.
        drop(self.0.spawn(future));
    }

    fn timer(&self, at: Instant) -> Self::Timer {
        Box::pin(tokio::time::sleep_until(at.into()))
    }

    fn reset_timer(&self, timer: &mut Self::Timer, at: Instant) {
        timer.as_mut().reset(at.into());
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> io::Result<TokioTcp> {
        let tcp = tokio::net::TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        Ok(TokioTcp(tcp))
    }

    /// The runtime's worker threads (1 on a current-thread runtime).
    fn worker_threads(&self) -> usize {
        self.0.metrics().num_workers()
    }
}

/// A tokio TCP stream as a `futures-io` byte stream: reads and writes as tokio's,
/// `poll_close` is tokio's `poll_shutdown` (the writing side ends with a FIN).
#[derive(Debug)]
pub struct TokioTcp(tokio::net::TcpStream);

impl AsyncRead for TokioTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let mut buf = ReadBuf::new(buf);
        ready!(Pin::new(&mut self.0).poll_read(cx, &mut buf))?;
        Poll::Ready(Ok(buf.filled().len()))
    }
}

impl AsyncWrite for TokioTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use alipay_msg_simulator::test_keys;

    use crate::{Client, ClientConfig, Credentials, Error};

    /// Started outside a tokio runtime, the client says so (rather than panicking).
    #[test]
    fn start_outside_a_runtime_fails() {
        let credentials =
            Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
                .expect("the test keys load");
        let config = ClientConfig::new(test_keys::APP_ID, credentials);
        match Client::start(config) {
            Err(Error::Io(reason)) => assert!(reason.contains("tokio runtime"), "{reason}"),
            Err(other) => panic!("expected Io, got {other}"),
            Ok(_) => panic!("started without a runtime"),
        }
    }
}
