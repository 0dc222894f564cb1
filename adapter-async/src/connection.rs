//! The session's connections, as sockets. Each `Transmit::Connect` starts a task that
//! opens TCP (+TLS, [`crate::transport::open`]) and hands the open stream back to the
//! driver ([`Io::Connected`]); from then on the driver's own task reads and writes it
//! ([`Conn::poll_io`]) — a frame read, checked, delivered and acked costs no hop to
//! another task and back, which at a trickle is most of a message's cost (issue 17:
//! each hop was a thread wake-up, 10–20 µs here, against a 21 µs verify).
//!
//! - **Reading** follows the session: the driver reads a connection (one read of at
//!   most [`READ_BUFFER_BYTES`] per round) only while the session wants bytes — always
//!   while registering and upgrading; on the open websocket while
//!   `ClientSession::wants_read`. So under backpressure nothing more is read, and the
//!   platform's messages wait in the socket; the session holds at most the rest of one
//!   read beyond the frame it stopped at, within the 64 KiB it keeps for that.
//! - **Writing**: the session's writes are queued in the connection's outbox, bounded by
//!   [`WRITE_QUEUE_BYTES`], and written at the end of the round: a burst of acks leaves
//!   in one write, a lone ack at once. A full outbox never makes the driver wait: the
//!   write is refused ([`WouldBlock`]) and the driver fails the connection.
//! - **Closing** ([`Conn::close`]): a task of its own writes what is queued, ends our
//!   side of the stream (TLS `close_notify`, then FIN), and reads on, discarding, until
//!   the peer's end of stream — all within [`CLOSE_GRACE`] — before it drops the
//!   socket. Dropping a socket with unread bytes resets the connection on Linux, and a
//!   reset throws away what we wrote last if the peer has not read it yet (our ack, our
//!   close frame). Closing a connection still being opened abandons the attempt.
//!
//! The adapter numbers nothing: input for a connection the session has let go is
//! handed in anyway, and the session ignores it.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use alipay_msg_core::client::ConnId;
use async_channel::{Receiver, Sender};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, FutureExt};

use crate::network::{self, Connector};
use crate::runtime::{Runtime, Task, Tasks};
use crate::transport::{self, BoxStream};

/// Bytes read from a socket at most at once (one read per connection and round).
pub(crate) const READ_BUFFER_BYTES: usize = 32 * 1024;

/// Bytes queued for one connection at most; more means the peer has long stopped
/// reading (what it has not read fills the sockets' buffers first, some MB), and the
/// driver fails the connection. An empty queue takes a write of any size (a frame is
/// at most `frame_limits.max_frame_bytes`).
pub(crate) const WRITE_QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// How long a closed connection may take to write what was queued, end its side and
/// read up to the peer's end of stream before its socket is dropped (the core has no
/// close timeout of its own; the simulator gives clients the same second).
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a connection's opening task reports to the driver.
pub(crate) enum Io {
    /// TCP connected (and the TLS handshake done): the stream, for the driver.
    Connected(ConnId, BoxStream),
    /// The connection could not be opened (name resolution, TCP, proxy, TLS).
    ConnectFailed(ConnId, network::ConnectError),
}

/// What [`Conn::poll_io`] found on an open connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// `len` bytes were read: [`Conn::read_bytes`] has them until the next read.
    Read(usize),
    /// The stream ended: `None` at the peer's end of stream, else the read or write
    /// error. Nothing more is read or written.
    Ended(Option<io::ErrorKind>),
}

/// The outbox would exceed [`WRITE_QUEUE_BYTES`]: the peer does not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WouldBlock;

/// Where to connect.
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
}

/// The driver's side of one connection: opening on a task, then open on the driver's.
/// Dropping it abandons an opening and drops an open stream; [`Conn::close`] closes
/// politely.
pub(crate) struct Conn {
    state: State,
    /// The waker the stream is polled with: it notes that the socket woke the driver.
    socket: Arc<SocketWaker>,
    waker: Waker,
    /// The stream may have bytes to read: never polled yet, the last read returned
    /// some, or the socket woke the driver since it last said it had none. A runtime
    /// such as async-io makes a system call (and re-registers with its reactor) for
    /// every read polled, so a driver woken by something else does not poll it.
    may_read: bool,
    /// The stream may take bytes: as `may_read`, for writing.
    may_write: bool,
    /// Bytes were handed to the stream but not flushed yet (TLS: rustls takes the
    /// bytes, the socket does not): flushed when the socket wakes the driver, even with
    /// nothing more queued.
    unflushed: bool,
    /// The peer's end of stream was read (and reported): nothing more is read, what is
    /// queued is still written, and the close ends our side.
    read_ended: bool,
    /// Bytes the session wrote that are not written yet (from the start).
    outbox: Vec<u8>,
    /// Where reads go; its first `read_len` bytes are the last read's.
    buffer: Vec<u8>,
    read_len: usize,
}

enum State {
    Opening {
        /// Never sent on: dropping it abandons the opening.
        _stop: Sender<()>,
        task: Task<()>,
    },
    Open(BoxStream),
    /// The stream failed (reported once as [`Event::Ended`]) and was dropped; what is
    /// left waits for the session's `Transmit::Close`.
    Failed,
}

impl Conn {
    /// Starts opening `target` with `connector` on a task of its own, which reports on
    /// `io` ([`Io::Connected`] with the stream, or [`Io::ConnectFailed`]).
    pub(crate) fn open<R: Runtime>(
        tasks: &Tasks<R>,
        conn: ConnId,
        target: Target,
        connector: Arc<Connector>,
        io: Sender<Io>,
    ) -> Conn {
        let (stop, stop_rx) = async_channel::bounded(1);
        let runtime = tasks.runtime().clone();
        let task = tasks.spawn(opening(conn, target, connector, runtime, io, stop_rx));
        let socket = Arc::new(SocketWaker::default());
        Conn {
            state: State::Opening { _stop: stop, task },
            waker: Waker::from(socket.clone()),
            socket,
            may_read: true,
            may_write: true,
            unflushed: false,
            read_ended: false,
            outbox: Vec::new(),
            buffer: Vec::new(),
            read_len: 0,
        }
    }

    /// The opening task's stream: the connection is open. (A stream for a connection
    /// already open or failed is dropped.)
    pub(crate) fn opened(&mut self, stream: BoxStream) {
        if matches!(self.state, State::Opening { .. }) {
            self.state = State::Open(stream);
            self.buffer = vec![0; READ_BUFFER_BYTES];
        }
    }

    /// Queues `bytes`, written by the next [`Conn::poll_io`]. [`WouldBlock`] when the
    /// outbox would exceed [`WRITE_QUEUE_BYTES`].
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), WouldBlock> {
        let queued = self.outbox.len();
        if queued > 0 && queued.saturating_add(bytes.len()) > WRITE_QUEUE_BYTES {
            return Err(WouldBlock);
        }
        self.outbox.extend_from_slice(bytes);
        Ok(())
    }

    /// The bytes of the last [`Event::Read`].
    pub(crate) fn read_bytes(&self) -> &[u8] {
        self.buffer.get(..self.read_len).unwrap_or_default()
    }

    /// Writes what is queued (as much as the socket takes) and flushes it, then, when
    /// `read` (the session wants bytes), reads once. `Pending` when there is nothing to
    /// report (`cx` is woken when the socket can go on); an [`Event`] otherwise. After
    /// the peer's end of stream, only writes; after a failure, always `Pending`.
    pub(crate) fn poll_io(&mut self, cx: &mut Context<'_>, read: bool) -> Poll<Event> {
        let State::Open(stream) = &mut self.state else {
            return Poll::Pending;
        };
        if self.socket.register(cx.waker()) {
            self.may_read = true;
            self.may_write = true;
        }
        let mut socket_cx = Context::from_waker(&self.waker);
        if (!self.outbox.is_empty() || self.unflushed) && self.may_write {
            match poll_write_all(stream, &mut socket_cx, &mut self.outbox) {
                Ok(done) => {
                    self.may_write = done;
                    self.unflushed = !done;
                }
                Err(error) => {
                    tracing::debug!(%error, "write failed");
                    self.state = State::Failed;
                    if self.read_ended {
                        // The end of the stream was reported already.
                        return Poll::Pending;
                    }
                    return Poll::Ready(Event::Ended(Some(error.kind())));
                }
            }
        }
        if !read || !self.may_read || self.read_ended {
            return Poll::Pending;
        }
        let event = match Pin::new(stream).poll_read(&mut socket_cx, &mut self.buffer) {
            Poll::Pending => {
                self.may_read = false;
                return Poll::Pending;
            }
            Poll::Ready(Ok(0)) => {
                // What is queued (our close frame) is still written, and the close
                // ends our side politely.
                self.read_ended = true;
                return Poll::Ready(Event::Ended(None));
            }
            Poll::Ready(Ok(len)) => {
                self.read_len = len;
                return Poll::Ready(Event::Read(len));
            }
            Poll::Ready(Err(error)) => {
                tracing::debug!(%error, "read failed");
                Event::Ended(Some(error.kind()))
            }
        };
        self.state = State::Failed;
        Poll::Ready(event)
    }

    /// Closes the connection; the [`Task`] to wait for. Open: a task writes what is
    /// queued, ends our side and reads to the peer's end of stream, within
    /// [`CLOSE_GRACE`]. Opening: the attempt is abandoned, and its task ends at once.
    /// `None` after a failure (nothing left to do).
    pub(crate) fn close<R: Runtime>(self, tasks: &Tasks<R>) -> Option<Task<()>> {
        match self.state {
            State::Open(stream) => {
                let runtime = tasks.runtime().clone();
                Some(tasks.spawn(closing(stream, self.outbox, runtime)))
            }
            // `_stop` is dropped here: the task stops opening.
            State::Opening { task, .. } => Some(task),
            State::Failed => None,
        }
    }
}

/// Writes `outbox` to `stream` as far as it takes, removing what was written, then
/// flushes once everything is written. `Ok(true)`: all written and flushed;
/// `Ok(false)`: the socket is full (`cx` is woken when it takes more).
fn poll_write_all(
    stream: &mut BoxStream,
    cx: &mut Context<'_>,
    outbox: &mut Vec<u8>,
) -> io::Result<bool> {
    let mut written = 0;
    let result = loop {
        let Some(rest) = outbox.get(written..).filter(|rest| !rest.is_empty()) else {
            break match Pin::new(&mut *stream).poll_flush(cx) {
                Poll::Ready(result) => result.map(|()| true),
                Poll::Pending => Ok(false),
            };
        };
        match Pin::new(&mut *stream).poll_write(cx, rest) {
            Poll::Ready(Ok(0)) => break Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => written += n,
            Poll::Ready(Err(error)) => break Err(error),
            Poll::Pending => break Ok(false),
        }
    };
    outbox.drain(..written.min(outbox.len()));
    result
}

/// The waker a connection's stream is polled with: it notes that the socket woke the
/// driver, then wakes the driver's task.
#[derive(Default)]
struct SocketWaker {
    woken: AtomicBool,
    driver: Mutex<Option<Waker>>,
}

impl SocketWaker {
    /// Keeps `driver` as the waker to wake (unless it is the one kept already);
    /// whether the socket woke the driver since the last call.
    fn register(&self, driver: &Waker) -> bool {
        let mut kept = self.driver.lock().unwrap_or_else(PoisonError::into_inner);
        if !kept.as_ref().is_some_and(|kept| kept.will_wake(driver)) {
            *kept = Some(driver.clone());
        }
        drop(kept);
        self.woken.swap(false, Ordering::AcqRel)
    }
}

impl Wake for SocketWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        let driver = self.driver.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(driver) = driver.as_ref() {
            driver.wake_by_ref();
        }
    }
}

/// The opening task: opens `target` and hands the stream to the driver, unless the
/// driver lets the connection go first (the session's connect timeout, or shutdown).
async fn opening<R: Runtime>(
    conn: ConnId,
    target: Target,
    connector: Arc<Connector>,
    runtime: R,
    io: Sender<Io>,
    stop: Receiver<()>,
) {
    let connecting = async {
        let opened = transport::open(&runtime, &target.host, target.port, target.tls, &connector);
        Some(opened.await)
    };
    // Nothing is ever sent: this returns when the driver drops its end.
    let stopped = async {
        let _ = stop.recv().await;
        None
    };
    let report = match connecting.or(stopped).await {
        None => return,
        Some(Err(error)) => {
            network::log_connect_failure(conn, &target.host, target.port, &error);
            Io::ConnectFailed(conn, network::connect_error(&error))
        }
        Some(Ok(stream)) => Io::Connected(conn, stream),
    };
    // The driver has ended: the stream, if any, is dropped.
    let _ = io.send(report).await;
}

/// A closed connection's task: writes `outbox`, ends our side, reads what the peer
/// still sends up to its end of stream — within [`CLOSE_GRACE`].
async fn closing<R: Runtime>(mut stream: BoxStream, outbox: Vec<u8>, runtime: R) {
    let polite = async {
        let written = async {
            stream.write_all(&outbox).await?;
            stream.flush().await?;
            // TLS `close_notify`, then FIN.
            stream.close().await
        };
        if let Err(error) = written.await {
            tracing::debug!(%error, "closing: the last writes failed");
            return;
        }
        let mut discard = [0u8; 4096];
        while matches!(stream.read(&mut discard).await, Ok(n) if n > 0) {}
    };
    let grace = async {
        runtime.timer(Instant::now() + CLOSE_GRACE).await;
        tracing::debug!("not closed within the grace: dropped");
    };
    polite.or(grace).await;
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::Mutex;

    use alipay_msg_core::client::{ClientConfig, ClientSession, Credentials, Output, Transmit};
    use alipay_msg_simulator::test_keys;
    use futures_lite::future::block_on;

    use super::*;
    use crate::runtime::thread_per_task::ThreadPerTask;

    const LIMIT: Duration = Duration::from_secs(10);

    /// A connection id as the session hands them out (ids are the session's to make).
    fn conn_id() -> ConnId {
        let credentials =
            Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
                .expect("the test keys load");
        let config = ClientConfig::new(test_keys::APP_ID, credentials);
        let mut session =
            ClientSession::new(config, [7; 32], Instant::now(), 1_795_430_400_000).expect("valid");
        loop {
            match session.poll_output() {
                Output::Transmit(Transmit::Connect { conn, .. }) => return conn,
                Output::Timeout(_) | Output::Done => panic!("no connect"),
                _ => {}
            }
        }
    }

    /// `future`'s output, or `None` when it takes longer than `within`.
    fn within<T>(within: Duration, future: impl std::future::Future<Output = T>) -> Option<T> {
        block_on(async { Some(future.await) }.or(async {
            async_io::Timer::after(within).await;
            None
        }))
    }

    fn open(port: u16, tls: bool, host: &str) -> (Tasks<ThreadPerTask>, Conn, Receiver<Io>) {
        let tasks = Tasks::new(ThreadPerTask);
        let (io_tx, io) = async_channel::bounded(8);
        let target = Target {
            host: host.to_owned(),
            port,
            tls,
        };
        let conn = Conn::open(&tasks, conn_id(), target, Arc::default(), io_tx);
        (tasks, conn, io)
    }

    /// A connection to a server thread that runs `serve` on the accepted socket and
    /// returns what it read: open, its stream handed over.
    fn connected(
        serve: impl FnOnce(std::net::TcpStream) -> Vec<u8> + Send + 'static,
    ) -> (Tasks<ThreadPerTask>, Conn, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("bound").port();
        let server = std::thread::spawn(move || serve(listener.accept().expect("accept").0));
        let (tasks, mut c, io) = open(port, false, "127.0.0.1");
        match within(LIMIT, io.recv()) {
            Some(Ok(Io::Connected(_, stream))) => c.opened(stream),
            _ => panic!("not connected"),
        }
        (tasks, c, server)
    }

    /// The next event of `c`, reading when `read`; `None`: none within `quiet`.
    fn next(c: &mut Conn, read: bool, quiet: Duration) -> Option<Event> {
        within(quiet, poll_fn(|cx| c.poll_io(cx, read)))
    }

    /// Nothing is read while the session wants no bytes, though they wait in the
    /// socket; then one read of at most [`READ_BUFFER_BYTES`] per poll. Writes queued
    /// before the close go out, then the end of the stream.
    #[test]
    fn reads_follow_the_session_and_close_writes_what_is_queued() {
        let (tasks, mut c, server) = connected(|mut socket| {
            socket
                .write_all(&[1; 3 * READ_BUFFER_BYTES])
                .expect("write");
            let mut rest = Vec::new();
            socket.read_to_end(&mut rest).expect("read");
            rest
        });
        let quiet = next(&mut c, false, Duration::from_millis(200));
        assert_eq!(quiet, None, "read while no bytes were wanted");
        let mut read = 0;
        while read < 3 * READ_BUFFER_BYTES {
            match next(&mut c, true, LIMIT) {
                Some(Event::Read(len)) => {
                    assert!(len <= READ_BUFFER_BYTES);
                    assert_eq!(c.read_bytes().len(), len);
                    read += len;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        c.write(b"ack-1 ").expect("room");
        c.write(b"ack-2 ").expect("room");
        // One poll writes the queue (the peer reads it all at its end).
        assert_eq!(next(&mut c, false, Duration::from_millis(50)), None);
        c.write(b"ack-3").expect("room");
        let task = c
            .close(&tasks)
            .expect("an open connection closes on a task");
        // The peer ends its side once it has read ours: the close ends then.
        assert_eq!(within(LIMIT, task), Some(Some(())));
        assert_eq!(server.join().expect("no panic"), b"ack-1 ack-2 ack-3");
    }

    /// The peer's end of stream (here it half-closes) is reported once; what is queued
    /// after it (our close frame) is still written, and the close ends our side.
    #[test]
    fn after_the_end_of_stream_what_is_queued_is_written() {
        let (tasks, mut c, server) = connected(|mut socket| {
            socket
                .shutdown(std::net::Shutdown::Write)
                .expect("half-close");
            let mut rest = Vec::new();
            socket.read_to_end(&mut rest).expect("read");
            rest
        });
        assert_eq!(next(&mut c, true, LIMIT), Some(Event::Ended(None)));
        c.write(b"bye").expect("room");
        assert_eq!(next(&mut c, true, Duration::from_millis(100)), None);
        let task = c.close(&tasks).expect("the stream is closed on a task");
        assert_eq!(within(LIMIT, task), Some(Some(())));
        assert_eq!(server.join().expect("no panic"), b"bye");
    }

    /// A stream that takes bytes but cannot flush them yet (TLS: rustls holds the
    /// records while the socket is full).
    #[derive(Clone, Default)]
    struct SlowFlush {
        taken: Arc<Mutex<Vec<u8>>>,
        flushed: Arc<AtomicBool>,
        blocked: Arc<AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl AsyncRead for SlowFlush {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
    }

    impl AsyncWrite for SlowFlush {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.taken.lock().expect("lock").extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            if self.blocked.load(Ordering::SeqCst) {
                *self.waker.lock().expect("lock") = Some(cx.waker().clone());
                return Poll::Pending;
            }
            self.flushed.store(true, Ordering::SeqCst);
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Bytes the stream took but could not flush are flushed once the socket can go on,
    /// though nothing more was queued.
    #[test]
    fn what_the_stream_took_is_flushed_when_the_socket_can_go_on() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("bound").port();
        let (_tasks, mut c, _io) = open(port, false, "127.0.0.1");
        let stream = SlowFlush::default();
        stream.blocked.store(true, Ordering::SeqCst);
        c.opened(Box::new(stream.clone()));
        c.write(b"ack").expect("room");
        assert_eq!(next(&mut c, false, Duration::from_millis(50)), None);
        assert_eq!(*stream.taken.lock().expect("lock"), b"ack");
        assert!(!stream.flushed.load(Ordering::SeqCst));
        // The socket takes more: its waker fires.
        stream.blocked.store(false, Ordering::SeqCst);
        let waker = stream.waker.lock().expect("lock").take();
        waker.expect("the flush waits for the socket").wake();
        assert_eq!(next(&mut c, false, Duration::from_millis(50)), None);
        assert!(
            stream.flushed.load(Ordering::SeqCst),
            "flushed once the socket went on"
        );
    }

    /// Closing before the connection is open (here: a TLS handshake the peer never
    /// answers) abandons the attempt, reporting nothing; its task ends.
    #[test]
    fn close_abandons_an_opening() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("bound").port();
        let silent = std::thread::spawn(move || listener.accept().map(|(socket, _)| socket));
        let (tasks, c, io) = open(port, true, "localhost");
        let socket = silent.join().expect("no panic").expect("accepted");
        let task = c.close(&tasks).expect("the opening task, to wait for");
        assert_eq!(within(LIMIT, task), Some(Some(())));
        let started = Instant::now();
        while tasks.live() > 0 {
            assert!(started.elapsed() < LIMIT, "the opening task did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(io.try_recv().is_err(), "nothing to report");
        drop(socket);
    }

    /// The outbox takes at most [`WRITE_QUEUE_BYTES`] (an empty one, a write of any
    /// size); past that a write is refused, never waited for.
    #[test]
    fn a_full_outbox_refuses_writes() {
        // A TLS handshake the peer never answers: nothing is ever written.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("bound").port();
        let (_tasks, mut c, _io) = open(port, true, "localhost");
        let (socket, _) = listener.accept().expect("accept");
        let big = vec![b'x'; WRITE_QUEUE_BYTES + 1];
        assert_eq!(c.write(&big), Ok(()), "an empty outbox takes any size");
        assert_eq!(c.write(b"a"), Err(WouldBlock));
        let (_tasks, mut c, _io) = open(port, true, "localhost");
        let (other, _) = listener.accept().expect("accept");
        assert_eq!(c.write(&big[..WRITE_QUEUE_BYTES]), Ok(()));
        assert_eq!(c.write(b"a"), Err(WouldBlock));
        drop((socket, other));
    }
}
