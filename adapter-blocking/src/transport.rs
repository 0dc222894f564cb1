//! Sockets: TCP, TLS (rustls' `StreamOwned` with core's shared configuration) and the
//! websocket client handshake (tungstenite). Everything here moves bytes; the session
//! decides.
//!
//! Every blocking step is bounded: TCP connects by the attempt's deadline, reads by
//! the socket's read timeout. Steps that read (TLS handshake, register answer,
//! websocket upgrade) run in slices of [`SLICE`] so that an abandoned attempt notices
//! its cancel flag promptly.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use alipay_msg_core::endpoint::Endpoint;
use alipay_msg_core::register::WsConnect;
use rustls::{ClientConnection, StreamOwned};
use tungstenite::handshake::HandshakeError;
use tungstenite::WebSocket;

/// Read timeout of the steps of a connect attempt: how soon a cancelled attempt
/// notices.
pub(crate) const SLICE: Duration = Duration::from_millis(100);

/// A byte stream to the platform, plain or TLS.
pub(crate) enum Stream {
    /// Plain TCP (the local simulator).
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

/// The open websocket.
pub(crate) type Ws = WebSocket<Stream>;

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref(),
        }
    }

    /// Sets the read timeout of the socket underneath.
    pub(crate) fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.tcp().set_read_timeout(Some(nonzero(timeout)))
    }

    /// Makes reads of the socket underneath return at once (`WouldBlock`) when nothing
    /// is there, or wait for their timeout again.
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.tcp().set_nonblocking(nonblocking)
    }

    /// Sets the write timeout of the socket underneath.
    pub(crate) fn set_write_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.tcp().set_write_timeout(Some(nonzero(timeout)))
    }
}

/// `set_read_timeout` refuses a zero duration.
fn nonzero(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

/// A read timeout shows as `WouldBlock` on Unix and `TimedOut` on Windows; tungstenite
/// treats only `WouldBlock` as "try again", so every timeout is reported as that.
fn timeout_as_would_block(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::TimedOut {
        io::Error::from(io::ErrorKind::WouldBlock)
    } else {
        e
    }
}

/// A read or write that ran into the socket's timeout (not a failure).
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
        .map_err(timeout_as_would_block)
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

/// Where an attempt stands: its deadline and its cancel flag.
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
                "attempt abandoned",
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

/// Opens TCP to the endpoint (each resolved address in turn, within the deadline),
/// then TLS when the endpoint says so. The returned stream reads in [`SLICE`]s.
///
/// Name resolution uses the system resolver, which has no timeout of its own.
pub(crate) fn connect(endpoint: &Endpoint, bounds: Bounds<'_>) -> io::Result<Stream> {
    let mut last_error = None;
    let mut tcp = None;
    for addr in (endpoint.host.as_str(), endpoint.port).to_socket_addrs()? {
        bounds.check()?;
        match TcpStream::connect_timeout(&addr, bounds.remaining()?) {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let mut tcp = match (tcp, last_error) {
        (Some(tcp), _) => tcp,
        (None, Some(e)) => return Err(e),
        (None, None) => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the host name resolved to no address",
            ))
        }
    };
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(SLICE))?;
    tcp.set_write_timeout(Some(nonzero(bounds.remaining()?)))?;
    if !endpoint.tls {
        return Ok(Stream::Plain(tcp));
    }
    let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut conn = ClientConnection::new(alipay_msg_core::tls::client_config(), name)
        .map_err(io::Error::other)?;
    while conn.is_handshaking() {
        match conn.complete_io(&mut tcp) {
            Ok(_) => {}
            Err(e) if is_timeout(&e) => bounds.check()?,
            Err(e) => return Err(e),
        }
    }
    Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
}

/// What a `register.do` exchange produced, piece by piece.
pub(crate) enum HttpProgress {
    /// Bytes of the answer.
    Data(Vec<u8>),
    /// End of stream.
    Eof,
    /// The exchange failed (connect, TLS, I/O).
    Failed(Failed),
}

/// Why opening a connection failed: the text for the session, and the socket error's
/// kind when there was one (the typed last cause of `ClientError::ConnectTimeout`).
pub(crate) struct Failed {
    pub(crate) text: String,
    pub(crate) kind: Option<io::ErrorKind>,
}

impl Failed {
    /// A socket error while doing `what`.
    pub(crate) fn io(what: impl std::fmt::Display, error: &io::Error) -> Self {
        Failed {
            text: format!("{what}: {error}"),
            kind: Some(error.kind()),
        }
    }
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// One `register.do` exchange: connect, write the request, report the answer as it
/// arrives. Stops early when `report` returns `false` (nobody listens any more) or the
/// attempt is cancelled or past its deadline (the session closes it at its deadline
/// anyway).
pub(crate) fn http_exchange(
    endpoint: &Endpoint,
    request: &[u8],
    bounds: Bounds<'_>,
    mut report: impl FnMut(HttpProgress) -> bool,
) {
    let mut io = match connect(endpoint, bounds) {
        Ok(io) => io,
        Err(e) => {
            report(HttpProgress::Failed(Failed::io(
                format!("connect {endpoint}"),
                &e,
            )));
            return;
        }
    };
    if let Err(e) = io.write_all(request).and_then(|()| io.flush()) {
        report(HttpProgress::Failed(Failed::io("write", &e)));
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if bounds.check().is_err() {
            return;
        }
        match io.read(&mut buf) {
            Ok(0) => {
                report(HttpProgress::Eof);
                return;
            }
            // A TLS peer that closed without close_notify: the session's HTTP parser
            // decides whether the answer is complete, as for a clean end of stream.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                report(HttpProgress::Eof);
                return;
            }
            Ok(n) => {
                // `read` returns at most `buf.len()`.
                if !report(HttpProgress::Data(buf[..n].to_vec())) {
                    return;
                }
            }
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                report(HttpProgress::Failed(Failed::io("read", &e)));
                return;
            }
        }
    }
}

/// Opens the websocket: TCP (+TLS), then the upgrade with the signed URL and the zone
/// cookie. Limits frames and messages to `max_message_bytes`.
pub(crate) fn websocket(
    endpoint: &Endpoint,
    connect_to: &WsConnect,
    max_message_bytes: usize,
    bounds: Bounds<'_>,
) -> Result<Ws, Failed> {
    let request = connect_to
        .client_request()
        .map_err(|text| Failed { text, kind: None })?;
    let io =
        connect(endpoint, bounds).map_err(|e| Failed::io(format!("connect {endpoint}"), &e))?;
    let config = WsConnect::websocket_config(max_message_bytes);
    let mut round = tungstenite::client::client_with_config(request, io, Some(config));
    loop {
        match round {
            Ok((ws, _response)) => return Ok(ws),
            Err(HandshakeError::Failure(e)) => {
                return Err(Failed {
                    kind: match &e {
                        tungstenite::Error::Io(io) => Some(io.kind()),
                        _ => None,
                    },
                    text: e.to_string(),
                })
            }
            Err(HandshakeError::Interrupted(mid)) => {
                bounds
                    .check()
                    .map_err(|e| Failed::io("websocket upgrade", &e))?;
                round = mid.handshake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn bounds(cancel: &AtomicBool, within: Duration) -> Bounds<'_> {
        Bounds {
            deadline: Instant::now() + within,
            cancel,
        }
    }

    #[test]
    fn timeouts_are_not_failures() {
        assert!(is_timeout(&io::Error::from(io::ErrorKind::WouldBlock)));
        assert!(is_timeout(&io::Error::from(io::ErrorKind::TimedOut)));
        assert!(!is_timeout(&io::Error::from(
            io::ErrorKind::ConnectionReset
        )));
        let mapped = timeout_as_would_block(io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(mapped.kind(), io::ErrorKind::WouldBlock);
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
    fn http_exchange_streams_the_answer_then_eof() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = [0u8; 5];
            socket.read_exact(&mut request).unwrap();
            assert_eq!(&request, b"HELLO");
            socket.write_all(b"HTTP/1.1 200 OK\r\n\r\nbody").unwrap();
        });
        let cancel = AtomicBool::new(false);
        let mut got = Vec::new();
        let mut eof = false;
        http_exchange(
            &Endpoint::plain("127.0.0.1", port),
            b"HELLO",
            bounds(&cancel, Duration::from_secs(5)),
            |progress| {
                match progress {
                    HttpProgress::Data(d) => got.extend(d),
                    HttpProgress::Eof => eof = true,
                    HttpProgress::Failed(e) => panic!("{e}"),
                }
                true
            },
        );
        server.join().unwrap();
        assert!(eof);
        assert_eq!(got, b"HTTP/1.1 200 OK\r\n\r\nbody");
    }

    #[test]
    fn http_exchange_reports_a_refused_connection() {
        // Bind and drop to get a port nobody listens on.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cancel = AtomicBool::new(false);
        let mut failed = None;
        http_exchange(
            &Endpoint::plain("127.0.0.1", port),
            b"x",
            bounds(&cancel, Duration::from_secs(5)),
            |progress| {
                if let HttpProgress::Failed(e) = progress {
                    failed = Some(e);
                }
                true
            },
        );
        let failed = failed.unwrap();
        assert!(failed.text.starts_with("connect "), "{failed}");
        assert_eq!(failed.kind, Some(io::ErrorKind::ConnectionRefused));
    }

    #[test]
    fn a_silent_peer_is_abandoned_at_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cancel = AtomicBool::new(false);
        let started = Instant::now();
        let mut reports = 0;
        http_exchange(
            &Endpoint::plain("127.0.0.1", port),
            b"x",
            bounds(&cancel, Duration::from_millis(300)),
            |_| {
                reports += 1;
                true
            },
        );
        assert_eq!(
            reports, 0,
            "nothing to report: the session times out itself"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(listener);
    }
}
