//! Sockets: one task per connection the session asks for ([`Transmit::Connect`]). It
//! opens TCP (+TLS: rustls with webpki roots, core's shared configuration, `host` as the
//! server name), then moves bytes both ways until the session closes the connection.
//! Everything here moves bytes; the session decides (register.do, the websocket and its
//! frames are all in [`alipay_msg_core::client::ClientSession`]).
//!
//! [`Transmit::Connect`]: alipay_msg_core::client::Transmit::Connect

use std::io;
use std::time::Duration;

use alipay_msg_core::client::ConnId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

/// Bytes read from a socket at most at once (one `read` call, one [`Io::Bytes`]).
///
/// A connection has [`READ_BUFFERS`] of these: while one is with the session, the next
/// read goes on in the other. When the session stops wanting bytes
/// (`ClientSession::wants_read`), what it holds beyond the frame it stopped at is then
/// at most the rest of one read plus one more read, 2 × 32 KiB: within the 64 KiB the
/// session keeps for that.
pub(crate) const READ_BUFFER_BYTES: usize = 32 * 1024;

/// Read buffers per connection: one with the session, one being read into.
pub(crate) const READ_BUFFERS: usize = 2;

/// Writes queued for one connection at most (each a [`alipay_msg_core::client::Transmit::Write`]:
/// a request, or websocket frames such as one ack). A queue this full means the peer
/// has stopped reading for long: the driver then reports the connection failed.
pub(crate) const WRITE_QUEUE: usize = 4096;

/// Bytes written with one call at most: queued writes are joined up to this size (a
/// burst of acks goes out in one write, not one each).
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// How long a closed connection may take to write what was queued before its close
/// (acks of completed deliveries, the websocket close) before it is dropped.
pub(crate) const CLOSE_FLUSH: Duration = Duration::from_secs(1);

/// What a connection's task reports to the driver, for `ClientSession::handle_input`.
#[derive(Debug)]
pub(crate) enum Io {
    /// TCP (and TLS) established.
    Connected(ConnId),
    /// TCP connect (or the TLS handshake, or name resolution) failed.
    ConnectFailed(ConnId, io::ErrorKind),
    /// Bytes read (plaintext, after TLS). The buffer goes back to the connection's
    /// [`Channels::buffers`] once the session has taken them.
    Bytes(ConnId, Vec<u8>),
    /// The connection ended: `None` at end of stream, `Some` on a read or write error.
    Closed(ConnId, Option<io::ErrorKind>),
}

/// The driver's ends of one connection's channels.
pub(crate) struct Channels {
    /// Bytes to write, in order. Dropping it is the close: what is queued is written,
    /// then the socket is shut down.
    pub(crate) writes: mpsc::Sender<Vec<u8>>,
    /// Read buffers handed back after the session took their bytes.
    pub(crate) buffers: mpsc::Sender<Vec<u8>>,
}

/// Everything a connection's task needs.
pub(crate) struct Connection {
    pub(crate) conn: ConnId,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) tls: bool,
    /// To the driver.
    pub(crate) io: mpsc::Sender<Io>,
    /// `true` while the session wants bytes: read only then (backpressure reaches the
    /// socket, and the platform holds its messages).
    pub(crate) gate: watch::Receiver<bool>,
    writes: mpsc::Receiver<Vec<u8>>,
    buffers: mpsc::Receiver<Vec<u8>>,
}

impl Connection {
    /// A connection to open, and the driver's ends of its channels.
    pub(crate) fn new(
        conn: ConnId,
        host: String,
        port: u16,
        tls: bool,
        io: mpsc::Sender<Io>,
        gate: watch::Receiver<bool>,
    ) -> (Connection, Channels) {
        let (writes_tx, writes) = mpsc::channel(WRITE_QUEUE);
        let (buffers_tx, buffers) = mpsc::channel(READ_BUFFERS);
        let connection = Connection {
            conn,
            host,
            port,
            tls,
            io,
            gate,
            writes,
            buffers,
        };
        let channels = Channels {
            writes: writes_tx,
            buffers: buffers_tx,
        };
        (connection, channels)
    }

    /// Opens the connection and moves bytes until it is closed: the driver dropped
    /// [`Channels`] (what was queued is written first), reading or writing failed, or
    /// the peer ended the stream and the driver closed it. Closing before the
    /// connection is established abandons the attempt.
    pub(crate) async fn run(mut self) {
        let opened = tokio::select! {
            opened = open(&self.host, self.port, self.tls) => opened,
            // Nothing is handed back before `Bytes`: `None` means the driver closed the
            // connection (the session's connect timeout, or shutdown).
            _ = self.buffers.recv() => return,
        };
        let conn = self.conn;
        let stream = match opened {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%conn, host = %self.host, port = self.port, %error, "connect failed");
                let _ = self.io.send(Io::ConnectFailed(conn, error.kind())).await;
                return;
            }
        };
        if self.io.send(Io::Connected(conn)).await.is_err() {
            return;
        }
        match stream {
            Stream::Plain(mut tcp) => {
                let (reader, writer) = tcp.split();
                self.pump(reader, writer).await;
            }
            Stream::Tls(tls) => {
                let (reader, writer) = tokio::io::split(tls);
                self.pump(reader, writer).await;
            }
        }
    }

    /// Reads and writes at once until the writing ends (closed by the driver, or
    /// failed); a read that ends first (end of stream, error) is reported and writing
    /// goes on until the driver closes the connection.
    async fn pump<R, W>(self, reader: R, writer: W)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let Connection {
            conn,
            io,
            gate,
            writes,
            buffers,
            ..
        } = self;
        let reading = read(conn, reader, io.clone(), gate, buffers);
        let writing = write(conn, writer, io, writes);
        tokio::pin!(reading, writing);
        tokio::select! {
            () = &mut writing => {}
            () = &mut reading => writing.await,
        }
    }
}

/// Reads while the session wants bytes, into the connection's buffers in turn, and
/// hands each read to the driver; reports the end of the stream or an error and
/// returns. Returns quietly once the driver has closed the connection.
async fn read<R: AsyncRead + Unpin>(
    conn: ConnId,
    mut reader: R,
    io: mpsc::Sender<Io>,
    mut gate: watch::Receiver<bool>,
    mut returned: mpsc::Receiver<Vec<u8>>,
) {
    let mut spare: Vec<Vec<u8>> = (0..READ_BUFFERS)
        .map(|_| Vec::with_capacity(READ_BUFFER_BYTES))
        .collect();
    loop {
        let mut buffer = match spare.pop() {
            Some(buffer) => buffer,
            None => match returned.recv().await {
                Some(buffer) => buffer,
                None => return,
            },
        };
        // Closed: the driver has ended, and with it the session.
        if gate.wait_for(|open| *open).await.is_err() {
            return;
        }
        buffer.clear();
        // `read_buf` reads into the spare capacity only: at most READ_BUFFER_BYTES.
        buffer.reserve(READ_BUFFER_BYTES);
        let input = match reader.read_buf(&mut buffer).await {
            Ok(0) => Io::Closed(conn, None),
            Ok(_) => Io::Bytes(conn, buffer),
            Err(error) => {
                tracing::debug!(%conn, %error, "read failed");
                Io::Closed(conn, Some(error.kind()))
            }
        };
        let last = matches!(input, Io::Closed(..));
        if io.send(input).await.is_err() || last {
            return;
        }
    }
}

/// Writes what the driver queues, in order, joining what is queued together into one
/// write (many acks in a burst: one `write` call). Once the driver has dropped its
/// sender and everything queued is written, shuts the socket down (TLS: close_notify,
/// then FIN). Reports a failed write and returns.
async fn write<W: AsyncWrite + Unpin>(
    conn: ConnId,
    mut writer: W,
    io: mpsc::Sender<Io>,
    mut writes: mpsc::Receiver<Vec<u8>>,
) {
    while let Some(mut batch) = writes.recv().await {
        while batch.len() < WRITE_BATCH_BYTES {
            match writes.try_recv() {
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        let written = async {
            writer.write_all(&batch).await?;
            writer.flush().await
        };
        if let Err(error) = written.await {
            tracing::debug!(%conn, %error, "write failed");
            let _ = io.send(Io::Closed(conn, Some(error.kind()))).await;
            return;
        }
    }
    // A peer that is gone already makes this fail: nothing is left to tell anyone.
    let _ = writer.shutdown().await;
}

/// A connected socket, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Opens TCP to `host:port`, with TLS when `tls` (`host` is the server name).
async fn open(host: &str, port: u16, tls: bool) -> io::Result<Stream> {
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    if !tls {
        return Ok(Stream::Plain(tcp));
    }
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let connector = tokio_rustls::TlsConnector::from(alipay_msg_core::tls::client_config());
    Ok(Stream::Tls(Box::new(connector.connect(name, tcp).await?)))
}
