//! The session's connections, as sockets: each `Transmit::Connect` starts a task that
//! opens TCP (+TLS, [`crate::transport::open`]) and then pumps bytes both ways until
//! `Transmit::Close`; [`Conn`] is the driver's side of it.
//!
//! - **Reading** follows the session: the task reads into [`READ_BUFFERS`] buffers of
//!   [`READ_BUFFER_BYTES`], handing each read to the driver ([`Io::Bytes`]), and reads
//!   again only with a buffer back. The driver gives the buffers back once the session
//!   has taken their bytes and wants more (always while registering and upgrading; on
//!   the open websocket while `ClientSession::wants_read`). So under backpressure
//!   nothing more is read, and the platform's messages wait in the socket; what the
//!   session holds beyond the frame it stopped at is at most the rest of one read plus
//!   one more read, 2 × 32 KiB, within the 64 KiB it keeps for that.
//! - **Writing**: the driver queues the session's writes in the connection's outbox,
//!   bounded by [`WRITE_QUEUE_BYTES`], and rings the writer once per round: a burst of
//!   acks leaves in one write. A full outbox never makes the driver wait: the write is
//!   refused ([`WouldBlock`]) and the driver fails the connection.
//! - **Closing** ([`Conn::close`]): the task writes what is queued, ends its side of
//!   the stream (TLS `close_notify`, then FIN), and reads on, discarding, until the
//!   peer's end of stream — all within [`CLOSE_GRACE`] of the close — before it drops
//!   the socket. Dropping a socket with unread bytes resets the connection on Linux,
//!   and a reset throws away what we wrote last if the peer has not read it yet (our
//!   ack, our close frame).
//!
//! The adapter numbers nothing: input for a connection the session has let go is
//! handed in anyway, and the session ignores it.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use alipay_msg_core::client::ConnId;
use async_channel::{Receiver, Sender};
use futures_lite::io::{ReadHalf, WriteHalf};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt, FutureExt};

use crate::network::{self, Connector};
use crate::runtime::{Runtime, Task, Tasks};
use crate::transport::{self, BoxStream};

/// Bytes read from a socket at most at once (one read, one [`Io::Bytes`]).
pub(crate) const READ_BUFFER_BYTES: usize = 32 * 1024;

/// Read buffers per connection: one with the session, one being read into.
pub(crate) const READ_BUFFERS: usize = 2;

/// Bytes queued for one connection's writer at most; more means the peer has long
/// stopped reading (what it has not read fills the sockets' buffers first, some MB),
/// and the driver fails the connection. An empty queue takes a write of any size (a
/// frame is at most `frame_limits.max_frame_bytes`).
pub(crate) const WRITE_QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// How long a closed connection may take to write what was queued, end its side and
/// read up to the peer's end of stream before its socket is dropped (the core has no
/// close timeout of its own; the simulator gives clients the same second).
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a connection's task reports to the driver, for `ClientSession::handle_input`.
#[derive(Debug)]
pub(crate) enum Io {
    /// TCP connected (and the TLS handshake done).
    Connected(ConnId),
    /// The connection could not be opened (name resolution, TCP, proxy, TLS).
    ConnectFailed(ConnId, network::ConnectError),
    /// `len` bytes read (after TLS) at the start of `buffer`, which goes back to the
    /// connection ([`Conn::taken`]) once the session has them.
    Bytes {
        conn: ConnId,
        buffer: Vec<u8>,
        len: usize,
    },
    /// The socket ended: `None` at end of stream, else the read or write error.
    Closed(ConnId, Option<io::ErrorKind>),
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

/// The driver's side of one connection. Dropping it (or [`Conn::close`]) closes it.
pub(crate) struct Conn {
    /// Bytes written and not yet taken by the writer.
    outbox: Arc<Mutex<Vec<u8>>>,
    /// Wakes the writer (capacity 1: one ring waiting is enough); dropped on close.
    bell: Sender<()>,
    /// Bytes were queued since the last ring.
    unrung: bool,
    /// Read buffers going back to the reader; dropped on close, which stops it.
    buffers: Sender<Vec<u8>>,
    /// Read buffers the session has taken the bytes of, kept while it wants no more.
    owed: Vec<Vec<u8>>,
    /// Never sent on: dropped on close, which abandons a connect under way and starts
    /// the [`CLOSE_GRACE`].
    _stop: Sender<()>,
    task: Task<()>,
}

impl Conn {
    /// Starts the connection's task: open `target` with `connector`, report on `io`.
    pub(crate) fn open<R: Runtime>(
        tasks: &Tasks<R>,
        conn: ConnId,
        target: Target,
        connector: Arc<Connector>,
        io: Sender<Io>,
    ) -> Conn {
        let outbox = Arc::new(Mutex::new(Vec::new()));
        let (bell, bell_rx) = async_channel::bounded(1);
        let (buffers, buffers_rx) = async_channel::bounded(READ_BUFFERS);
        let (stop, stop_rx) = async_channel::bounded(1);
        let ends = TaskEnds {
            outbox: outbox.clone(),
            bell: bell_rx,
            buffers: buffers_rx,
            stop: stop_rx,
        };
        let runtime = tasks.runtime().clone();
        let task = tasks.spawn(run(conn, target, connector, runtime, io, ends));
        Conn {
            outbox,
            bell,
            unrung: false,
            buffers,
            owed: Vec::new(),
            _stop: stop,
            task,
        }
    }

    /// Queues `bytes` for the writer (rung at the end of the round, [`Conn::ring`]).
    /// [`WouldBlock`] when the outbox would exceed [`WRITE_QUEUE_BYTES`].
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), WouldBlock> {
        let mut outbox = lock(&self.outbox);
        if !outbox.is_empty() && outbox.len().saturating_add(bytes.len()) > WRITE_QUEUE_BYTES {
            return Err(WouldBlock);
        }
        outbox.extend_from_slice(bytes);
        self.unrung = true;
        Ok(())
    }

    /// Wakes the writer when bytes were queued since the last ring.
    pub(crate) fn ring(&mut self) {
        if std::mem::take(&mut self.unrung) {
            // `Full`: a ring is waiting already; `Closed`: the writer has ended (after a
            // write error, which it reported).
            let _ = self.bell.try_send(());
        }
    }

    /// The session has taken the bytes of `buffer`: it goes back to the reader with
    /// the next [`Conn::hand_back`].
    pub(crate) fn taken(&mut self, buffer: Vec<u8>) {
        self.owed.push(buffer);
    }

    /// Gives the reader its buffers back: it reads on.
    pub(crate) fn hand_back(&mut self) {
        for buffer in self.owed.drain(..) {
            // The channel has room for every buffer of the connection; `Closed`: the
            // reader has ended.
            let _ = self.buffers.try_send(buffer);
        }
    }

    /// Closes the connection: its task writes what is queued, ends its side and reads
    /// to the peer's end of stream, within [`CLOSE_GRACE`]; its [`Task`] ends then.
    pub(crate) fn close(mut self) -> Task<()> {
        self.ring();
        self.task
    }
}

fn lock(outbox: &Mutex<Vec<u8>>) -> MutexGuard<'_, Vec<u8>> {
    // Nothing panics while holding the lock (an append, a swap): a poisoned lock still
    // holds whole bytes.
    outbox.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The task's ends of a connection's channels.
struct TaskEnds {
    outbox: Arc<Mutex<Vec<u8>>>,
    bell: Receiver<()>,
    buffers: Receiver<Vec<u8>>,
    stop: Receiver<()>,
}

/// One connection's task: open, then read and write until closed, then close politely
/// (bounded by [`CLOSE_GRACE`]).
async fn run<R: Runtime>(
    conn: ConnId,
    target: Target,
    connector: Arc<Connector>,
    runtime: R,
    io: Sender<Io>,
    ends: TaskEnds,
) {
    let TaskEnds {
        outbox,
        bell,
        buffers,
        stop,
    } = ends;
    let connecting = async {
        let opened = transport::open(&runtime, &target.host, target.port, target.tls, &connector);
        Some(opened.await)
    };
    // Nothing is ever sent: this returns when the driver lets the connection go (the
    // session's connect timeout, or shutdown).
    let stopped = async {
        let _ = stop.recv().await;
        None
    };
    let stream = match connecting.or(stopped).await {
        None => return,
        Some(Err(error)) => {
            network::log_connect_failure(conn, &target.host, target.port, &error);
            let _ = io
                .send(Io::ConnectFailed(conn, network::connect_error(&error)))
                .await;
            return;
        }
        Some(Ok(stream)) => stream,
    };
    if io.send(Io::Connected(conn)).await.is_err() {
        return;
    }
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let pump = async {
        // Reading ends at the end of the stream or an error (reported) or when the
        // driver stops handing buffers back; writing goes on until the driver closes.
        let reading = async {
            read(conn, &mut reader, &io, &buffers).await;
            future::pending::<Result<(), ()>>().await
        };
        let written = write(conn, &mut writer, &outbox, &bell, &io)
            .or(reading)
            .await;
        if written.is_ok() {
            // Everything queued is written: end our side, then read what is left.
            if let Err(error) = writer.close().await {
                tracing::debug!(%conn, %error, "ending the stream failed");
            }
            drain(&mut reader).await;
        }
    };
    let grace = async {
        let _ = stop.recv().await;
        runtime.timer(Instant::now() + CLOSE_GRACE).await;
        tracing::debug!(%conn, "not closed within the grace: dropped");
    };
    pump.or(grace).await;
}

/// Reads one buffer at a time while the driver hands buffers back, and hands each
/// read to the driver; reports the end of the stream or an error and returns.
/// Returns quietly once the driver stops handing buffers back (the close).
async fn read(
    conn: ConnId,
    reader: &mut ReadHalf<BoxStream>,
    io: &Sender<Io>,
    returned: &Receiver<Vec<u8>>,
) {
    let mut spare: Vec<Vec<u8>> = (0..READ_BUFFERS)
        .map(|_| vec![0; READ_BUFFER_BYTES])
        .collect();
    loop {
        let mut buffer = match spare.pop() {
            Some(buffer) => buffer,
            None => match returned.recv().await {
                Ok(buffer) => buffer,
                Err(_) => return,
            },
        };
        // Buffers keep their length: only the first `len` bytes are new.
        buffer.resize(READ_BUFFER_BYTES, 0);
        let report = match reader.read(&mut buffer).await {
            Ok(0) => Io::Closed(conn, None),
            Ok(len) => Io::Bytes { conn, buffer, len },
            Err(error) => {
                tracing::debug!(%conn, %error, "read failed");
                Io::Closed(conn, Some(error.kind()))
            }
        };
        let last = matches!(report, Io::Closed(..));
        if io.send(report).await.is_err() || last {
            return;
        }
    }
}

/// Writes what the driver queues, in order, everything queued at once (a burst of acks
/// in one write). `Ok` once the driver has closed the connection and everything is
/// written; `Err` after a failed write, which it reports.
async fn write(
    conn: ConnId,
    writer: &mut WriteHalf<BoxStream>,
    outbox: &Mutex<Vec<u8>>,
    bell: &Receiver<()>,
    io: &Sender<Io>,
) -> Result<(), ()> {
    let mut batch = Vec::new();
    loop {
        batch.clear();
        std::mem::swap(&mut *lock(outbox), &mut batch);
        if batch.is_empty() {
            // `Err`: closed; nothing more is queued after the close.
            if bell.recv().await.is_err() && lock(outbox).is_empty() {
                return Ok(());
            }
            continue;
        }
        let written = async {
            writer.write_all(&batch).await?;
            writer.flush().await
        };
        if let Err(error) = written.await {
            tracing::debug!(%conn, %error, "write failed");
            let _ = io.send(Io::Closed(conn, Some(error.kind()))).await;
            return Err(());
        }
    }
}

/// Reads and discards until the peer's end of stream (or an error): what the peer
/// still sends after our end must be read, lest the socket be dropped unread.
async fn drain(reader: &mut ReadHalf<BoxStream>) {
    let mut discard = [0u8; 4096];
    while matches!(reader.read(&mut discard).await, Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

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

    /// The next report, within [`LIMIT`]; `None`: none came within `quiet`.
    fn next(io: &Receiver<Io>, quiet: Duration) -> Option<Io> {
        block_on(async { io.recv().await.ok() }.or(async {
            async_io::Timer::after(quiet).await;
            None
        }))
    }

    fn open(port: u16, tls: bool, host: &str) -> (Conn, Receiver<Io>) {
        let tasks = Tasks::new(ThreadPerTask);
        let (io_tx, io) = async_channel::bounded(8);
        let target = Target {
            host: host.to_owned(),
            port,
            tls,
        };
        let conn = Conn::open(&tasks, conn_id(), target, Arc::default(), io_tx);
        (conn, io)
    }

    /// The reader reads only with a buffer: both out, the bytes stay in the socket until
    /// the driver hands one back. Writes queued before the close go out, then the end
    /// of the stream.
    #[test]
    fn reads_follow_the_buffers_and_close_writes_what_is_queued() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("bound").port();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().expect("accept");
            socket
                .write_all(&[1; 3 * READ_BUFFER_BYTES])
                .expect("write");
            let mut rest = Vec::new();
            socket.read_to_end(&mut rest).expect("read");
            rest
        });
        let (mut c, io) = open(port, false, "127.0.0.1");
        assert!(matches!(next(&io, LIMIT), Some(Io::Connected(_))));
        let mut read = 0;
        for _ in 0..READ_BUFFERS {
            match next(&io, LIMIT) {
                Some(Io::Bytes { buffer, len, .. }) => {
                    read += len;
                    c.taken(buffer);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let quiet = next(&io, Duration::from_millis(200));
        assert!(quiet.is_none(), "read without a buffer: {quiet:?}");
        while read < 3 * READ_BUFFER_BYTES {
            c.hand_back();
            match next(&io, LIMIT) {
                Some(Io::Bytes { buffer, len, .. }) => {
                    read += len;
                    c.taken(buffer);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        c.write(b"ack-1 ").expect("room");
        c.write(b"ack-2").expect("room");
        let task = c.close();
        // The peer ends its side once it has read ours: the close ends then.
        assert_eq!(block_on(task), Some(()));
        assert_eq!(server.join().expect("no panic"), b"ack-1 ack-2");
    }

    /// Closing before the connection is established (here: a TLS handshake the peer
    /// never answers) abandons the attempt, reporting nothing.
    #[test]
    fn close_abandons_a_pending_connect() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("bound").port();
        let silent = std::thread::spawn(move || listener.accept().map(|(socket, _)| socket));
        let (c, io) = open(port, true, "localhost");
        let socket = silent.join().expect("no panic").expect("accepted");
        let task = c.close();
        assert_eq!(block_on(task), Some(()));
        assert!(io.try_recv().is_err(), "nothing to report");
        drop(socket);
    }

    /// The outbox takes at most [`WRITE_QUEUE_BYTES`] (an empty one, a write of any
    /// size); past that a write is refused, never waited for.
    #[test]
    fn a_full_outbox_refuses_writes() {
        // A TLS handshake the peer never answers: the writer never takes anything.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("bound").port();
        let (mut c, _io) = open(port, true, "localhost");
        let (socket, _) = listener.accept().expect("accept");
        let big = vec![b'x'; WRITE_QUEUE_BYTES + 1];
        assert_eq!(c.write(&big), Ok(()), "an empty outbox takes any size");
        assert_eq!(c.write(b"a"), Err(WouldBlock));
        let (mut c, _io) = open(port, true, "localhost");
        let (other, _) = listener.accept().expect("accept");
        assert_eq!(c.write(&big[..WRITE_QUEUE_BYTES]), Ok(()));
        assert_eq!(c.write(b"a"), Err(WouldBlock));
        drop((socket, other));
    }
}
