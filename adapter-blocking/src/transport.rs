//! Sockets: TCP — through an HTTP CONNECT proxy when the client's
//! [`Network`](crate::network::Network) says so — and TLS (rustls' `StreamOwned` over
//! the `TcpStream`, with the client's rustls configuration, by default ring and webpki
//! roots). Everything here moves bytes; the session decides (it speaks HTTP, the
//! websocket upgrade and RFC 6455 itself).
//!
//! Opening a connection ([`connect`], on an `alipay-msg-connect` thread) is bounded:
//! the TCP connect by the attempt's deadline, the proxy's answer and the TLS handshake
//! by the deadline too, read in slices of [`SLICE`] so that an abandoned connection
//! notices its cancel flag promptly.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};

use crate::network::{Connector, ProxyError, ProxyServer};

/// Read timeout of the TLS handshake: how soon an abandoned connection notices.
pub(crate) const SLICE: Duration = Duration::from_millis(100);

/// A byte stream to the platform, plain or TLS.
pub(crate) enum Stream {
    /// Plain TCP (the local simulator).
    Plain(TcpStream),
    /// TLS over TCP: the bytes read and written are the plaintext inside.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref(),
        }
    }

    /// Makes reads of the socket underneath return at once (`WouldBlock`) when nothing
    /// is there, or wait for their timeout again.
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.tcp().set_nonblocking(nonblocking)
    }

    /// Sends what is left to send (TLS: a `close_notify` alert first) and shuts the
    /// socket down; best effort, the stream is dropped next.
    pub(crate) fn shut(&mut self) {
        if let Stream::Tls(tls) = self {
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        let _ = self.tcp().shutdown(Shutdown::Both);
    }
}

/// `set_read_timeout` and `set_write_timeout` refuse a zero duration.
fn nonzero(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

/// A read or write that ran into the socket's timeout, or found nothing on a
/// non-blocking socket (not a failure of a read; a write that times out has failed).
pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// Where an attempt to open a connection stands: its deadline and its cancel flag.
#[derive(Clone, Copy)]
pub(crate) struct Bounds<'a> {
    pub(crate) deadline: Instant,
    pub(crate) cancel: &'a AtomicBool,
}

impl Bounds<'_> {
    /// `Err` once the attempt is cancelled or past its deadline.
    pub(crate) fn check(&self) -> io::Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "connection abandoned",
            ));
        }
        self.remaining().map(|_| ())
    }

    fn remaining(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connect attempt timed out",
            ))
        } else {
            Ok(left)
        }
    }
}

/// How an opened stream is to behave.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamTimeouts {
    /// The longest a read waits (the I/O thread's read slice).
    pub(crate) read: Duration,
    /// The longest a write waits before the connection counts as failed
    /// (`dead_after`: the peer stopped reading).
    pub(crate) write: Duration,
}

/// Opens TCP to `host:port` (each resolved address in turn, within the deadline) — or
/// to the proxy the connector names for it, and a tunnel through it ([`tunnel`]) —
/// then TLS with `host` as the server name when `tls`, with the connector's rustls
/// configuration. The stream has `TCP_NODELAY` and the given timeouts. A TLS failure
/// is an `InvalidData` error holding rustls' error (e.g.
/// `InvalidCertificate(UnknownIssuer)`); a proxy's refusal holds a [`ProxyError`]
/// ([`ProxyError::io_kind`]).
///
/// Name resolution uses the system resolver, which has no timeout of its own.
pub(crate) fn connect(
    host: &str,
    port: u16,
    tls: bool,
    connector: &Connector,
    timeouts: StreamTimeouts,
    bounds: Bounds<'_>,
) -> io::Result<Stream> {
    let proxy = connector.proxy.for_target(host, port, tls);
    let mut tcp = match proxy {
        Some(proxy) => tcp_connect(&proxy.host, proxy.port, bounds)?,
        None => tcp_connect(host, port, bounds)?,
    };
    tcp.set_nodelay(true)?;
    tcp.set_write_timeout(Some(nonzero(timeouts.write)))?;
    if let Some(proxy) = proxy {
        tcp.set_read_timeout(Some(SLICE))?;
        tunnel(&mut tcp, proxy, host, port, bounds)?;
    }
    if !tls {
        tcp.set_read_timeout(Some(nonzero(timeouts.read)))?;
        return Ok(Stream::Plain(tcp));
    }
    tcp.set_read_timeout(Some(SLICE))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut conn = ClientConnection::new(connector.tls.clone(), name).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        match conn.complete_io(&mut tcp) {
            Ok(_) => {}
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => bounds.check()?,
            Err(e) => return Err(e),
        }
        bounds.check()?;
    }
    tcp.set_read_timeout(Some(nonzero(timeouts.read)))?;
    Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
}

/// TCP to `host:port`: each resolved address in turn, within the deadline.
fn tcp_connect(host: &str, port: u16, bounds: Bounds<'_>) -> io::Result<TcpStream> {
    let mut last_error = None;
    for addr in (host, port).to_socket_addrs()? {
        bounds.check()?;
        match TcpStream::connect_timeout(&addr, bounds.remaining()?) {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "the host name resolved to no address",
        )
    }))
}

/// Asks `proxy` (connected on `tcp`, whose reads time out every [`SLICE`]) for a tunnel
/// to `host:port` (`CONNECT`, RFC 9110 §9.3.6) and reads its answer within the
/// deadline, at most [`MAX_CONNECT_RESPONSE`](alipay_msg_core::proxy::MAX_CONNECT_RESPONSE) bytes, one byte at a time: nothing
/// past the answer's header section is read, so the tunnel's first bytes stay in the
/// socket for TLS.
fn tunnel(
    tcp: &mut TcpStream,
    proxy: &ProxyServer,
    host: &str,
    port: u16,
    bounds: Bounds<'_>,
) -> io::Result<()> {
    tcp.write_all(&proxy.connect_request(host, port))?;
    tcp.flush()?;
    let mut answer = alipay_msg_core::proxy::ConnectAnswer::default();
    loop {
        bounds.check()?;
        let mut byte = [0u8; 1];
        match tcp.read(&mut byte) {
            Ok(0) => return Err(ProxyError::Closed.into()),
            Ok(_) => {}
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        if answer.push(byte[0])? {
            tracing::debug!(%proxy, %host, port, "tunnel open");
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    const TIMEOUTS: StreamTimeouts = StreamTimeouts {
        read: Duration::from_millis(20),
        write: Duration::from_secs(1),
    };

    fn bounds(cancel: &AtomicBool, within: Duration) -> Bounds<'_> {
        Bounds {
            deadline: Instant::now() + within,
            cancel,
        }
    }

    #[test]
    fn timeouts_are_not_read_failures() {
        assert!(is_timeout(&io::Error::from(io::ErrorKind::WouldBlock)));
        assert!(is_timeout(&io::Error::from(io::ErrorKind::TimedOut)));
        assert!(!is_timeout(&io::Error::from(
            io::ErrorKind::ConnectionReset
        )));
    }

    #[test]
    fn cancelled_bounds_fail() {
        let cancel = AtomicBool::new(false);
        assert!(bounds(&cancel, Duration::from_secs(5)).check().is_ok());
        cancel.store(true, Ordering::Relaxed);
        assert!(bounds(&cancel, Duration::from_secs(5)).check().is_err());
        let fresh = AtomicBool::new(false);
        assert!(bounds(&fresh, Duration::ZERO).check().is_err());
    }

    #[test]
    fn plain_bytes_go_both_ways_then_end_of_stream() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = [0u8; 5];
            socket.read_exact(&mut request).unwrap();
            assert_eq!(&request, b"HELLO");
            socket.write_all(b"WORLD").unwrap();
        });
        let cancel = AtomicBool::new(false);
        let mut stream = connect(
            "127.0.0.1",
            port,
            false,
            &Connector::default(),
            TIMEOUTS,
            bounds(&cancel, Duration::from_secs(5)),
        )
        .unwrap();
        stream.write_all(b"HELLO").unwrap();
        stream.flush().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        let started = Instant::now();
        loop {
            assert!(started.elapsed() < Duration::from_secs(5));
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) => panic!("{e}"),
            }
        }
        server.join().unwrap();
        assert_eq!(got, b"WORLD");
        stream.shut();
    }

    #[test]
    fn a_refused_connection_has_its_kind() {
        // Bind and drop to get a port nobody listens on.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cancel = AtomicBool::new(false);
        let error = connect(
            "127.0.0.1",
            port,
            false,
            &Connector::default(),
            TIMEOUTS,
            bounds(&cancel, Duration::from_secs(5)),
        )
        .err()
        .unwrap();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[test]
    fn a_silent_tls_peer_is_abandoned_when_cancelled() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cancel = AtomicBool::new(false);
        let started = Instant::now();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(200));
                cancel.store(true, Ordering::Relaxed);
            });
            let error = connect(
                "127.0.0.1",
                port,
                true,
                &Connector::default(),
                TIMEOUTS,
                bounds(&cancel, Duration::from_secs(30)),
            )
            .err()
            .unwrap();
            assert_eq!(error.kind(), io::ErrorKind::Interrupted, "{error}");
        });
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(listener);
    }
}
