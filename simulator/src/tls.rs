//! TLS in front of the simulator ([`SimulatorOptions::tls`](super::SimulatorOptions::tls)):
//! accepts on the public address, completes the TLS handshake (tokio-rustls, ring
//! provider), and relays the plaintext both ways to the simulator's plain listener on
//! the loopback address. The simulator itself stays plain; only clients' TLS is tested
//! through this.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long relays get to finish when the simulator stops (after the plain listener's
/// own grace, which ends the connections behind them).
const STOP_GRACE: Duration = Duration::from_secs(4);

/// Accepts TLS connections on `listener` until `stop`, each relayed to `backend`; at
/// most `max_connections` at once (further ones are closed at once).
pub(super) async fn front(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    backend: SocketAddr,
    max_connections: usize,
    stop: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(config);
    super::listener::serve_until_stopped(
        listener,
        stop,
        max_connections,
        "TLS connections",
        STOP_GRACE,
        move |tcp, peer| relay(acceptor.clone(), tcp, peer, backend),
    )
    .await;
}

/// One connection: the handshake, then the plaintext copied both ways.
async fn relay(acceptor: TlsAcceptor, tcp: TcpStream, peer: SocketAddr, backend: SocketAddr) {
    let _ = tcp.set_nodelay(true);
    let mut tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            // E.g. the client does not trust the certificate: it sends an alert.
            tracing::debug!(%peer, %error, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let mut plain = match TcpStream::connect(backend).await {
        Ok(plain) => plain,
        Err(error) => {
            tracing::warn!(%error, "the simulator's plain listener is gone");
            return;
        }
    };
    let _ = plain.set_nodelay(true);
    if let Err(error) = tokio::io::copy_bidirectional(&mut tls, &mut plain).await {
        tracing::debug!(%peer, %error, "TLS relay ended");
    }
}
