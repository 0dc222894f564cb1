//! The session's connections, as sockets: each [`Transmit::Connect`] opens TCP (+TLS) on
//! a task of its own, which then pumps bytes both ways until [`Transmit::Close`].
//!
//! [`Transmit::Connect`]: alipay_msg_core::client::Transmit::Connect
//! [`Transmit::Close`]: alipay_msg_core::client::Transmit::Close
//!
//! The connection task reports to the driver what happens on the socket ([`Io`]:
//! connected, failed to connect, bytes read, closed) and writes what the driver hands it.
//! It reads only with the driver's leave: one read (at most [`READ_BUFFER`] bytes) per
//! credit, and the driver gives the next credit once the session has taken the bytes
//! and wants more ([`Sockets::grant`]). So while the session does not want bytes
//! (`ClientSession::wants_read`, backpressure) nothing is read, and the platform's
//! messages wait in the socket. The adapter keeps no numbering of its own: input for a
//! connection the session has let go is handed in anyway, and the session ignores it.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use alipay_msg_core::client::ConnId;
use async_channel::{Receiver, Sender};
use async_io::Timer;
use futures_lite::io::{ReadHalf, WriteHalf};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt, FutureExt};

use crate::network::{self, Connector};
use crate::runtime::{Task, Tasks};
use crate::transport::{self, BoxIo};

/// Bytes read from a socket at once: at most this many are in the driver's hands (or
/// on their way) per connection. Well under the 64 KiB the session keeps beyond a frame
/// when bytes arrive that it did not want.
pub(crate) const READ_BUFFER: usize = 32 * 1024;

/// Bytes gathered for one write to the socket: the writes of one round of the session
/// (a burst of acks) go out together, up to this much.
const WRITE_BATCH: usize = 64 * 1024;

/// Batches (each at most about [`WRITE_BATCH`] bytes) queued for a connection's writer;
/// when it is full the driver waits for the socket.
const WRITE_QUEUE: usize = 64;

/// How long a closed connection may take to write what it was given and close; past
/// that it is dropped (a peer that stopped reading cannot hold a task).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a connection task reports to the driver, for `ClientSession::handle_input`.
#[derive(Debug)]
pub(crate) enum Io {
    /// TCP connected (and the TLS handshake done).
    Connected(ConnId),
    /// The connection could not be opened.
    ConnectFailed(ConnId, network::ConnectError),
    /// Bytes read (after TLS), at most [`READ_BUFFER`].
    Bytes(ConnId, Vec<u8>),
    /// The socket ended: `None` at end of stream, else the read or write error.
    Closed(ConnId, Option<io::ErrorKind>),
}

/// The driver's side of one open connection.
struct Connection {
    /// Batches for the writer; dropped on close, and the writer finishes.
    writes: Sender<Vec<u8>>,
    /// Read credits (at most one waiting).
    credit: Sender<()>,
    /// Never sent on: dropped on close, which stops the reader and a pending connect.
    _stop: Sender<()>,
    /// The reader is waiting for a credit.
    owed_credit: bool,
    /// Writes gathered since the last flush.
    out: Vec<u8>,
    task: Task<()>,
}

impl Connection {
    /// Hands the gathered writes to the writer, waiting while its queue is full.
    async fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.out);
        // `Err`: the writer has ended after a write error, which it has reported.
        let _ = self.writes.send(bytes).await;
    }
}

/// The open connections of one client, by the session's [`ConnId`], and the tasks of
/// closed ones that may still be writing their last bytes.
pub(crate) struct Sockets {
    tasks: Tasks,
    /// How connections are opened (TLS configuration, proxy).
    connector: Arc<Connector>,
    io: Sender<Io>,
    open: HashMap<ConnId, Connection>,
    closing: Vec<Task<()>>,
}

impl Sockets {
    /// No connections yet; their tasks open with `connector` and report on `io`.
    pub(crate) fn new(tasks: Tasks, connector: Arc<Connector>, io: Sender<Io>) -> Self {
        Sockets {
            tasks,
            connector,
            io,
            open: HashMap::new(),
            closing: Vec::new(),
        }
    }

    /// `Transmit::Connect`: starts the connection's task.
    pub(crate) fn connect(&mut self, conn: ConnId, host: String, port: u16, tls: bool) {
        let (writes, writes_rx) = async_channel::bounded(WRITE_QUEUE);
        let (credit, credit_rx) = async_channel::bounded(1);
        let (stop, stop_rx) = async_channel::bounded(1);
        tracing::debug!(%conn, %host, port, tls, "connecting");
        let task = self.tasks.spawn(run(
            conn,
            Target { host, port, tls },
            self.connector.clone(),
            self.io.clone(),
            writes_rx,
            credit_rx,
            stop_rx,
        ));
        let connection = Connection {
            writes,
            credit,
            _stop: stop,
            owed_credit: true,
            out: Vec::new(),
            task,
        };
        if let Some(old) = self.open.insert(conn, connection) {
            // The session never reuses an id; were it to, the old socket is let go.
            self.retire(old);
        }
    }

    /// `Transmit::Write`: gathers `bytes` for the connection's next flush.
    pub(crate) async fn write(&mut self, conn: ConnId, bytes: Vec<u8>) {
        let Some(c) = self.open.get_mut(&conn) else {
            tracing::debug!(%conn, "write for a connection that is not open: dropped");
            return;
        };
        if c.out.is_empty() {
            c.out = bytes;
        } else {
            c.out.extend_from_slice(&bytes);
        }
        if c.out.len() >= WRITE_BATCH {
            c.flush().await;
        }
    }

    /// Hands every connection's gathered writes to its writer.
    pub(crate) async fn flush(&mut self) {
        for c in self.open.values_mut() {
            c.flush().await;
        }
    }

    /// `Transmit::Close`: the writer writes what it was given, then closes the socket;
    /// the reader (or a connect still under way) stops at once.
    pub(crate) async fn close(&mut self, conn: ConnId) {
        if let Some(mut c) = self.open.remove(&conn) {
            c.flush().await;
            tracing::debug!(%conn, "closing");
            self.retire(c);
        }
    }

    fn retire(&mut self, c: Connection) {
        self.closing.retain(|task| !task.is_finished());
        self.closing.push(c.task);
    }

    /// Bytes of `conn` reached the session: its reader waits for a credit again.
    pub(crate) fn taken(&mut self, conn: ConnId) {
        if let Some(c) = self.open.get_mut(&conn) {
            c.owed_credit = true;
        }
    }

    /// Lets every waiting reader read once more, when the session wants bytes.
    pub(crate) fn grant(&mut self, wanted: bool) {
        if !wanted {
            return;
        }
        for c in self.open.values_mut().filter(|c| c.owed_credit) {
            // Capacity 1 and a credit is owed only after the last one was used: never
            // full. `Err(Closed)`: the reader has ended.
            let _ = c.credit.try_send(());
            c.owed_credit = false;
        }
    }

    /// Closes what is still open and waits for every connection task to end (each
    /// within [`CLOSE_GRACE`] of its close).
    pub(crate) async fn end(mut self) {
        let open: Vec<ConnId> = self.open.keys().copied().collect();
        for conn in open {
            self.close(conn).await;
        }
        for task in self.closing {
            task.await;
        }
    }
}

/// Where to connect.
struct Target {
    host: String,
    port: u16,
    tls: bool,
}

/// One connection's task: connect, then read and write until closed.
async fn run(
    conn: ConnId,
    target: Target,
    connector: Arc<Connector>,
    io: Sender<Io>,
    writes: Receiver<Vec<u8>>,
    credit: Receiver<()>,
    stop: Receiver<()>,
) {
    let connecting =
        async { Some(transport::connect(&target.host, target.port, target.tls, &connector).await) };
    let stopped = async {
        // Nothing is ever sent: this returns when the driver lets the connection go.
        let _ = stop.recv().await;
        None
    };
    let stream = match connecting.or(stopped).await {
        // Closed by the session (e.g. its connect timeout) before it opened.
        None => return,
        Some(Err(e)) => {
            network::log_connect_failure(conn, &target.host, target.port, &e);
            let _ = io
                .send(Io::ConnectFailed(conn, network::connect_error(&e)))
                .await;
            return;
        }
        Some(Ok(stream)) => stream,
    };
    if io.send(Io::Connected(conn)).await.is_err() {
        return;
    }
    let (reader, writer) = futures_lite::io::split(stream);
    let pump = future::zip(
        read(conn, reader, credit, stop.clone(), io.clone()),
        write(conn, writer, writes, io),
    );
    let grace = async {
        let _ = stop.recv().await;
        Timer::after(CLOSE_GRACE).await;
        tracing::debug!(%conn, "the socket did not close in time: dropped");
    };
    async {
        pump.await;
    }
    .or(grace)
    .await;
}

/// Reads one buffer per credit and passes it on, until the end of the stream, an
/// error, or the close.
async fn read(
    conn: ConnId,
    mut reader: ReadHalf<BoxIo>,
    credit: Receiver<()>,
    stop: Receiver<()>,
    io: Sender<Io>,
) {
    let mut buffer = vec![0u8; READ_BUFFER];
    loop {
        let reading = async {
            credit.recv().await.ok()?;
            Some(reader.read(&mut buffer).await)
        };
        let stopped = async {
            let _ = stop.recv().await;
            None
        };
        let report = match reading.or(stopped).await {
            None => return,
            Some(Ok(0)) => Io::Closed(conn, None),
            Some(Ok(n)) => Io::Bytes(conn, buffer.get(..n).unwrap_or_default().to_vec()),
            Some(Err(e)) => {
                tracing::debug!(%conn, error = %e, "read failed");
                Io::Closed(conn, Some(e.kind()))
            }
        };
        let last = !matches!(report, Io::Bytes(..));
        if io.send(report).await.is_err() || last {
            return;
        }
    }
}

/// Writes the batches in order, each queued run of them with one write and one flush,
/// then closes the socket once the driver lets the connection go.
async fn write(
    conn: ConnId,
    mut writer: WriteHalf<BoxIo>,
    writes: Receiver<Vec<u8>>,
    io: Sender<Io>,
) {
    while let Ok(mut batch) = writes.recv().await {
        while batch.len() < WRITE_BATCH {
            match writes.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        let written = async {
            writer.write_all(&batch).await?;
            writer.flush().await
        };
        if let Err(e) = written.await {
            tracing::debug!(%conn, error = %e, "write failed");
            let _ = io.send(Io::Closed(conn, Some(e.kind()))).await;
            return;
        }
    }
    if let Err(e) = writer.close().await {
        tracing::debug!(%conn, error = %e, "close failed");
    }
}
