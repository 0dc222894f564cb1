//! Opening a connection the session asked for: TCP from the [`Runtime`] — to the
//! target, or to the HTTP CONNECT proxy the client's [`Network`] names for it and a
//! tunnel through it — then TLS with `futures-rustls` and the client's rustls
//! configuration (by default ring and the webpki roots), `host` as the server name.
//! Everything here moves bytes over `futures-io`; what they say is the session's.
//!
//! [`Network`]: crate::network::Network

use std::io;

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::network::{Connector, ProxyError, ProxyServer};
use crate::runtime::{AsyncRead, AsyncWrite, Runtime};

/// A connected byte stream, plain or TLS.
pub(crate) trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> ByteStream for T {}

/// A connected byte stream of either kind.
pub(crate) type BoxStream = Box<dyn ByteStream>;

/// Opens TCP to `host:port` (`host`: a name, or an IP address, an IPv6 one without
/// brackets) — or to the proxy the connector names for it, and a tunnel through it
/// ([`tunnel`]) — then TLS when `tls`, with `host` as the server name and the
/// connector's rustls configuration. A TLS failure is an `InvalidData` error holding
/// rustls' error (e.g. `InvalidCertificate(UnknownIssuer)`); a proxy's refusal holds a
/// [`ProxyError`] ([`ProxyError::io_kind`]); a host that is no server name is
/// `InvalidInput`.
pub(crate) async fn open<R: Runtime>(
    runtime: &R,
    host: &str,
    port: u16,
    tls: bool,
    connector: &Connector,
) -> io::Result<BoxStream> {
    let proxy = connector.proxy.for_target(host, port, tls);
    let mut tcp = match proxy {
        Some(proxy) => runtime.connect_tcp(&proxy.host, proxy.port).await?,
        None => runtime.connect_tcp(host, port).await?,
    };
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
/// §9.3.6) and reads its answer with [`ConnectAnswer`], at most
/// [`MAX_CONNECT_RESPONSE`] bytes, one byte at a time: nothing past the answer's header
/// section is read, so the tunnel's first bytes stay in the socket for TLS.
///
/// [`ConnectAnswer`]: alipay_msg_core::proxy::ConnectAnswer
/// [`MAX_CONNECT_RESPONSE`]: alipay_msg_core::proxy::MAX_CONNECT_RESPONSE
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
    use std::io::Write;

    use futures_lite::future::block_on;

    use super::*;
    use crate::runtime::thread_per_task::ThreadPerTask;

    /// The TLS path runs (rustls through futures-rustls) and reports a peer that does
    /// not speak TLS as an error: rustls reports protocol errors as `InvalidData`.
    #[test]
    fn tls_to_a_plain_server_fails_cleanly() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("bound").port();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        });
        let opened = block_on(open(
            &ThreadPerTask,
            "127.0.0.1",
            port,
            true,
            &Connector::default(),
        ));
        let error = match opened {
            Ok(_) => panic!("a plain server cannot complete a TLS handshake"),
            Err(e) => e,
        };
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        server.join().expect("no panic");
    }
}
