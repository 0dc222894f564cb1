//! Sockets: one task per connection the session asks for ([`Transmit::Connect`]). It
//! opens TCP — through an HTTP CONNECT proxy when the client's [`Network`] says so —
//! (+TLS: the client's rustls configuration, by default webpki roots, `host` as the
//! server name), then moves bytes both ways until the session closes the connection.
//! Everything here moves bytes; the session decides (register.do, the websocket and its
//! frames are all in [`alipay_msg_core::client::ClientSession`]).
//!
//! [`Transmit::Connect`]: alipay_msg_core::client::Transmit::Connect
//! [`Network`]: crate::network::Network

use std::io;
use std::sync::Arc;
use std::time::Duration;

use alipay_msg_core::client::ConnId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::network::{self, Connector, ProxyError, ProxyServer};

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
    ConnectFailed(ConnId, network::ConnectError),
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
    /// The client's TLS configuration and proxy.
    pub(crate) connector: Arc<Connector>,
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
        connector: Arc<Connector>,
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
            connector,
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
            opened = open(&self.host, self.port, self.tls, &self.connector) => opened,
            // Nothing is handed back before `Bytes`: `None` means the driver closed the
            // connection (the session's connect timeout, or shutdown).
            _ = self.buffers.recv() => return,
        };
        let conn = self.conn;
        let stream = match opened {
            Ok(stream) => stream,
            Err(error) => {
                network::log_connect_failure(conn, &self.host, self.port, &error);
                let _ = self
                    .io
                    .send(Io::ConnectFailed(conn, network::connect_error(&error)))
                    .await;
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

/// Opens TCP to `host:port` — or to the proxy the connector names for it, and a tunnel
/// through it ([`tunnel`]) — then TLS when `tls` (`host` is the server name), with the
/// connector's rustls configuration. A TLS failure is an `InvalidData` error holding
/// rustls' error (e.g. `InvalidCertificate(UnknownIssuer)`); a proxy's refusal holds a
/// [`ProxyError`] ([`ProxyError::io_kind`]).
async fn open(host: &str, port: u16, tls: bool, connector: &Connector) -> io::Result<Stream> {
    let proxy = connector.proxy.for_target(host, port, tls);
    let mut tcp = match proxy {
        Some(proxy) => TcpStream::connect((proxy.host.as_str(), proxy.port)).await?,
        None => TcpStream::connect((host, port)).await?,
    };
    tcp.set_nodelay(true)?;
    if let Some(proxy) = proxy {
        tunnel(&mut tcp, proxy, host, port).await?;
    }
    if !tls {
        return Ok(Stream::Plain(tcp));
    }
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let connector = tokio_rustls::TlsConnector::from(connector.tls.clone());
    Ok(Stream::Tls(Box::new(connector.connect(name, tcp).await?)))
}

/// Asks `proxy` (connected on `stream`) for a tunnel to `host:port` (`CONNECT`, RFC 9110
/// §9.3.6) and reads its answer, at most [`MAX_CONNECT_RESPONSE`](alipay_msg_core::proxy::MAX_CONNECT_RESPONSE) bytes, one byte
/// at a time: nothing past the answer's header section is read, so the tunnel's first
/// bytes stay in the socket for TLS.
async fn tunnel<S>(stream: &mut S, proxy: &ProxyServer, host: &str, port: u16) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    stream.write_all(&proxy.connect_request(host, port)).await?;
    stream.flush().await?;
    let mut answer = alipay_msg_core::proxy::ConnectAnswer::default();
    loop {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await? == 0 {
            return Err(ProxyError::Closed.into());
        }
        if answer.push(byte[0])? {
            tracing::debug!(%proxy, %host, port, "tunnel open");
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use alipay_msg_core::client::{ClientConfig, ClientSession, Credentials, Output, Transmit};
    use alipay_msg_simulator::test_keys;
    use tokio::net::TcpListener;
    use tokio::time::timeout;

    use super::*;

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

    /// The reader reads only while the gate is open: closed, the bytes stay in the
    /// socket; each read hands its buffer over and waits for it back when both are out.
    #[tokio::test]
    async fn reads_follow_the_gate_and_the_buffers() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("bound").port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            socket
                .write_all(&[1; 3 * READ_BUFFER_BYTES])
                .await
                .expect("write");
            let mut rest = Vec::new();
            socket.read_to_end(&mut rest).await.expect("read");
            rest
        });
        let conn = conn_id();
        let (io_tx, mut io) = mpsc::channel(8);
        let (gate, gate_rx) = watch::channel(false);
        let (connection, channels) = Connection::new(
            conn,
            "127.0.0.1".into(),
            port,
            false,
            Arc::default(),
            io_tx,
            gate_rx,
        );
        let task = tokio::spawn(connection.run());
        assert!(matches!(io.recv().await, Some(Io::Connected(c)) if c == conn));
        let quiet = timeout(Duration::from_millis(200), io.recv()).await;
        assert!(quiet.is_err(), "read while the gate was closed");

        gate.send_replace(true);
        let mut buffers = Vec::new();
        let mut read = 0;
        while buffers.len() < READ_BUFFERS {
            match io.recv().await {
                Some(Io::Bytes(c, bytes)) if c == conn => {
                    read += bytes.len();
                    buffers.push(bytes);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // Both buffers are out: nothing more is read until one comes back.
        let quiet = timeout(Duration::from_millis(200), io.recv()).await;
        assert!(quiet.is_err(), "read without a buffer");
        for buffer in buffers {
            channels
                .buffers
                .try_send(buffer)
                .expect("room for its own buffers");
        }
        while read < 3 * READ_BUFFER_BYTES {
            match io.recv().await {
                Some(Io::Bytes(_, bytes)) => {
                    read += bytes.len();
                    channels.buffers.try_send(bytes).expect("room");
                }
                other => panic!("unexpected {other:?}"),
            }
        }

        // Writes queued before the close go out, then the end of stream.
        channels.writes.try_send(b"ack-1 ".to_vec()).expect("room");
        channels.writes.try_send(b"ack-2".to_vec()).expect("room");
        drop(channels);
        timeout(Duration::from_secs(5), task)
            .await
            .expect("ends")
            .expect("no panic");
        let written = timeout(Duration::from_secs(5), server)
            .await
            .expect("ends")
            .expect("ok");
        assert_eq!(written, b"ack-1 ack-2");
    }

    /// Closing before the connection is established (here: a TLS handshake the peer
    /// never answers) abandons the attempt.
    #[tokio::test]
    async fn close_abandons_a_pending_connect() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("bound").port();
        let silent = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(10)).await;
            drop(socket);
        });
        let (io_tx, mut io) = mpsc::channel(8);
        let (_gate, gate_rx) = watch::channel(true);
        let (connection, channels) = Connection::new(
            conn_id(),
            "localhost".into(),
            port,
            true,
            Arc::default(),
            io_tx,
            gate_rx,
        );
        let task = tokio::spawn(connection.run());
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(channels);
        timeout(Duration::from_secs(2), task)
            .await
            .expect("ends")
            .expect("no panic");
        assert!(io.try_recv().is_err(), "nothing to report");
        silent.abort();
    }
}
