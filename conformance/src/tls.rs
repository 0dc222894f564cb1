//! TLS and proxy scenarios: the simulator serves TLS with a certificate for
//! `127.0.0.1` from a test CA made at test time (`rcgen`, ring backend); each client
//! connects with that CA as its only root, directly and through a small HTTP CONNECT
//! proxy started by the test ([`ConnectProxy`]), and refuses the same server when the CA
//! is not trusted.
//!
//! A client crate's test implements [`TlsClientUnderTest`] and expands [`tls_suite!`](crate::tls_suite).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use alipay_msg_core::client::{CertificateProblem, ClientConfig, ClientError, DisconnectReason};
use alipay_msg_core::proxy::ProxyError;
use alipay_msg_simulator::{Simulator, SimulatorHandle, SimulatorOptions};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

use crate::{config, fast, push_n, settle, ClientUnderTest, Tally, LIMIT};

/// A client that can be given its TLS configuration and a proxy.
pub trait TlsClientUnderTest: ClientUnderTest {
    /// Connects with `tls` as its rustls configuration, through the HTTP proxy `proxy`
    /// (`http://host:port`) when given, else directly (never from the environment).
    fn connect_tls(
        config: ClientConfig,
        tls: Arc<rustls::ClientConfig>,
        proxy: Option<String>,
    ) -> Result<Self, ClientError>;
}

/// Makes one `#[test]` per TLS scenario for a [`TlsClientUnderTest`].
#[macro_export]
macro_rules! tls_suite {
    ($client:ty) => {
        #[test]
        fn tls_with_a_test_ca() {
            $crate::tls::tls_with_a_test_ca::<$client>();
        }
        #[test]
        fn tls_through_a_connect_proxy() {
            $crate::tls::tls_through_a_connect_proxy::<$client>();
        }
    };
}

/// A CA made for one test, and a server certificate it issued for `127.0.0.1` and
/// `localhost`.
pub struct TestCa {
    /// The CA's certificate: the root to trust.
    pub root: CertificateDer<'static>,
    /// The server's certificate chain (its certificate only).
    pub chain: Vec<CertificateDer<'static>>,
    /// The server's private key (PKCS #8).
    pub key: PrivateKeyDer<'static>,
}

impl TestCa {
    /// A new CA called `name` (ECDSA P-256, ring) and a server certificate from it.
    pub fn new(name: &str) -> TestCa {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root = ca
            .self_signed(&ca_key)
            .expect("CA certificate")
            .der()
            .clone();
        let issuer = Issuer::new(ca, ca_key);
        let server_key = KeyPair::generate().expect("a server key");
        let mut server =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server parameters");
        server
            .distinguished_name
            .push(DnType::CommonName, "alipay-msg simulator");
        let cert = server
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        TestCa {
            root,
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        }
    }

    /// A client configuration trusting this CA only (ring provider).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.root.clone())
            .expect("the CA certificate parses");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports TLS 1.2 and 1.3")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// A simulator serving TLS with the server certificate.
    pub fn simulator(&self) -> SimulatorHandle {
        let options = fast(SimulatorOptions::with_test_keys())
            .tls(self.chain.clone(), self.key.clone_key())
            .expect("the test certificate suits");
        Simulator::start_on_thread(options).expect("simulator starts")
    }
}

/// What the clients log at `warn`, for the scenarios that check a warning's text: a
/// global `tracing` subscriber writing here, installed once per test binary (`None`
/// when another one was installed first: the text is then not checked).
fn logs() -> Option<&'static Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Option<&'static Mutex<Vec<u8>>>> = OnceLock::new();
    *LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || LogWriter(logs))
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .ok()
            .map(|()| logs)
    })
}

struct LogWriter(&'static Mutex<Vec<u8>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Pushes 5 messages and sends one PRODUCE over the client's connection: each message
/// handled once, the PRODUCE acknowledged.
fn round_trip<C: ClientUnderTest>(sim: &SimulatorHandle, client: &C) {
    let tally = Arc::new(Tally::default());
    client.start(tally.handler(0, false, Duration::ZERO));
    let ids = push_n(sim, 5);
    settle(sim);
    let biz = json!({"out_trade_no": "tls-1", "total_amount": "0.01"});
    let ack = client
        .send("alipay.trade.precreate", &biz)
        .expect("a PRODUCE over TLS is acknowledged");
    assert!(ack.is_success(), "{ack}");
    tally.assert_each_once(&ids);
}

/// Trusted: register and the websocket over TLS, messages both ways. Untrusted (another
/// CA as the only root): every attempt fails the handshake, and the connect gives up
/// with the typed cause `Certificate(UnknownIssuer)`, which the client's warning names
/// too.
pub fn tls_with_a_test_ca<C: TlsClientUnderTest>() {
    let logs = logs();
    let ca = TestCa::new("alipay-msg test CA");
    let sim = ca.simulator();
    let mut config = config(&sim);
    assert!(config.endpoint.tls, "the simulator serves https");
    let client = C::connect_tls(config.clone(), ca.client_config(), None)
        .expect("the client connects over TLS with the test CA as its root");
    round_trip(&sim, &client);
    client.shutdown();

    // Another CA, of another name: the server's issuer is unknown to the client.
    let stranger = TestCa::new("a stranger's CA");
    config.first_connect_timeout = Some(Duration::from_millis(1500));
    let (tx, rx) = std::sync::mpsc::channel();
    let tls = stranger.client_config();
    std::thread::spawn(move || {
        let _ = tx.send(C::connect_tls(config, tls, None).map(|c| c.shutdown()));
    });
    let err = match rx.recv_timeout(LIMIT) {
        Ok(Ok(())) => panic!("connected to a server whose CA is not trusted"),
        Ok(Err(e)) => e,
        Err(_) => panic!("connect did not give up within {LIMIT:?}"),
    };
    match &err {
        ClientError::ConnectTimeout {
            last: Some(last), ..
        } => assert_eq!(
            **last,
            DisconnectReason::Certificate(CertificateProblem::UnknownIssuer),
            "{err}"
        ),
        other => panic!("expected ConnectTimeout naming the TLS failure, got {other}"),
    }
    if let Some(logs) = logs {
        let logged = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
        assert!(
            logged.contains("invalid peer certificate: UnknownIssuer"),
            "the warning names the certificate problem: {logged}"
        );
    }
    sim.shutdown();
}

/// The same over a CONNECT proxy: register and the websocket each open a tunnel to the
/// simulator (the proxy sees `CONNECT 127.0.0.1:port`), TLS inside it; then a proxy
/// that refuses (403) fails the connect with `Proxy(Refused { status: 403, .. })`.
pub fn tls_through_a_connect_proxy<C: TlsClientUnderTest>() {
    let ca = TestCa::new("alipay-msg test CA");
    let sim = ca.simulator();
    let proxy = ConnectProxy::start(None);
    let config = config(&sim);
    let client = C::connect_tls(config.clone(), ca.client_config(), Some(proxy.url()))
        .expect("the client connects through the proxy");
    round_trip(&sim, &client);
    client.shutdown();
    let target = format!("{}:{}", config.endpoint.host, config.endpoint.port);
    let targets = proxy.targets();
    assert!(
        targets.len() >= 2,
        "register.do and the websocket each went through a tunnel: {targets:?}"
    );
    assert!(targets.iter().all(|t| *t == target), "{targets:?}");

    let refusing = ConnectProxy::start(Some("403 Forbidden"));
    let mut config = config;
    config.first_connect_timeout = Some(Duration::from_millis(1500));
    let (tx, rx) = std::sync::mpsc::channel();
    let (tls, url) = (ca.client_config(), refusing.url());
    std::thread::spawn(move || {
        let _ = tx.send(C::connect_tls(config, tls, Some(url)).map(|c| c.shutdown()));
    });
    match rx.recv_timeout(LIMIT) {
        Ok(Err(ClientError::ConnectTimeout {
            last: Some(last), ..
        })) => assert!(
            matches!(
                *last,
                DisconnectReason::Proxy(ProxyError::Refused { status: 403, .. })
            ),
            "{last}"
        ),
        Ok(Err(other)) => panic!("expected ConnectTimeout, got {other}"),
        Ok(Ok(())) => panic!("connected through a proxy that refuses"),
        Err(_) => panic!("connect did not give up within {LIMIT:?}"),
    }
    assert!(
        !refusing.targets().is_empty(),
        "the refusing proxy was asked"
    );
    sim.shutdown();
}

/// A small HTTP CONNECT proxy on 127.0.0.1 (RFC 9110 §9.3.6): reads the request head,
/// connects to the target, answers `200`, and copies both ways; or answers with a fixed
/// refusal. Records each tunnel's target. Its threads end with their connections.
pub struct ConnectProxy {
    port: u16,
    targets: Arc<Mutex<Vec<String>>>,
    tunnels: Arc<AtomicUsize>,
}

impl ConnectProxy {
    /// Starts listening; `refuse`: the status line's code and reason to answer with.
    pub fn start(refuse: Option<&'static str>) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("bound").port();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let tunnels = Arc::new(AtomicUsize::new(0));
        let (seen, open) = (targets.clone(), tunnels.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let (seen, open) = (seen.clone(), open.clone());
                std::thread::spawn(move || {
                    let _ = tunnel(client, refuse, &seen, &open);
                });
            }
        });
        ConnectProxy {
            port,
            targets,
            tunnels,
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The target of each `CONNECT`, in order.
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().expect("lock").clone()
    }

    /// Tunnels opened (answered 200).
    pub fn tunnels(&self) -> usize {
        self.tunnels.load(Ordering::Relaxed)
    }
}

fn tunnel(
    mut client: TcpStream,
    refuse: Option<&str>,
    targets: &Mutex<Vec<String>>,
    tunnels: &AtomicUsize,
) -> io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || client.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut words = head.split_whitespace();
    let (Some("CONNECT"), Some(target)) = (words.next(), words.next()) else {
        client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")?;
        return Ok(());
    };
    targets.lock().expect("lock").push(target.to_owned());
    if let Some(status) = refuse {
        client.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())?;
        return Ok(());
    }
    let upstream = match TcpStream::connect(target) {
        Ok(upstream) => upstream,
        Err(_) => {
            client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")?;
            return Ok(());
        }
    };
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    tunnels.fetch_add(1, Ordering::Relaxed);
    let (mut up_read, mut client_write) = (upstream.try_clone()?, client.try_clone()?);
    let down = std::thread::spawn(move || {
        let _ = io::copy(&mut up_read, &mut client_write);
        let _ = client_write.shutdown(Shutdown::Write);
    });
    let (mut client_read, mut up_write) = (client, upstream);
    let _ = io::copy(&mut client_read, &mut up_write);
    let _ = up_write.shutdown(Shutdown::Write);
    let _ = down.join();
    Ok(())
}
