//! Sockets: TCP (`async-net`) — through an HTTP CONNECT proxy when the client's
//! [`Network`](crate::network::Network) says so — and TLS (`futures-rustls` with the
//! client's rustls configuration, by default ring and webpki roots). Everything here
//! moves bytes over `futures-io`; what the bytes say (HTTP, the websocket) is the
//! session's business.

use std::io;

use async_net::TcpStream;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::network::{Connector, ProxyError, ProxyServer};

/// A byte stream, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(crate) type BoxIo = Box<dyn Io>;

/// Opens TCP to `host:port` (`host`: a name, or an address; an IPv6 one without
/// brackets) — or to the proxy the connector names for it, and a tunnel through it
/// ([`tunnel`]) — then TLS with `host` as the server name when `tls`, with the
/// connector's rustls configuration. A TLS failure is an `InvalidData` error holding
/// rustls' error (e.g. `InvalidCertificate(UnknownIssuer)`); a proxy's refusal holds a
/// [`ProxyError`] ([`ProxyError::io_kind`]).
pub(crate) async fn connect(
    host: &str,
    port: u16,
    tls: bool,
    connector: &Connector,
) -> io::Result<BoxIo> {
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
        return Ok(Box::new(tcp));
    }
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let connector = futures_rustls::TlsConnector::from(connector.tls.clone());
    Ok(Box::new(connector.connect(name, tcp).await?))
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
    use super::*;

    /// The TLS path runs (rustls through futures-rustls) and reports a peer that does
    /// not speak TLS as an error.
    #[async_std::test]
    async fn tls_to_a_plain_server_fails_cleanly() {
        use futures_lite::AsyncWriteExt;
        let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = async_std::task::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        });
        let error = match connect("127.0.0.1", port, true, &Connector::default()).await {
            Ok(_) => panic!("a plain server cannot complete a TLS handshake"),
            Err(e) => e,
        };
        // rustls reports protocol errors as InvalidData (here: "received corrupt message").
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        server.await;
    }
}
