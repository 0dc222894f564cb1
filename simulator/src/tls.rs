//! TLS in front of the simulator ([`SimulatorOptions::tls`](super::SimulatorOptions::tls)):
//! accepts on the public address, completes the TLS handshake (tokio-rustls, ring
//! provider), and relays the plaintext both ways to the simulator's plain listener on
//! the loopback address. The simulator itself stays plain; only clients' TLS is tested
//! through this.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
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
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(config);
    let limit = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            () = super::listener::stop_requested(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let Ok(permit) = limit.clone().try_acquire_owned() else {
                        tracing::warn!(%peer, max_connections, "too many TLS connections; closing");
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    tasks.spawn(async move {
                        relay(acceptor, tcp, peer, backend).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(STOP_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.shutdown().await;
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
