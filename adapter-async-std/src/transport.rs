//! Sockets: TCP (`async-net`) and TLS (`futures-rustls` with core's shared rustls
//! configuration: ring provider, webpki roots). Everything here moves bytes over
//! `futures-io`; what the bytes say (HTTP, the websocket) is the session's business.

use std::io;

use async_net::TcpStream;
use futures_lite::{AsyncRead, AsyncWrite};

/// A byte stream, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(crate) type BoxIo = Box<dyn Io>;

/// Opens TCP to `host:port` (`host`: a name, or an address; an IPv6 one without
/// brackets), wrapped in TLS with `host` as the server name when `tls`.
pub(crate) async fn connect(host: &str, port: u16, tls: bool) -> io::Result<BoxIo> {
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    if !tls {
        return Ok(Box::new(tcp));
    }
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let connector = futures_rustls::TlsConnector::from(alipay_msg_core::tls::client_config());
    Ok(Box::new(connector.connect(name, tcp).await?))
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
        let error = match connect("127.0.0.1", port, true).await {
            Ok(_) => panic!("a plain server cannot complete a TLS handshake"),
            Err(e) => e,
        };
        // rustls reports protocol errors as InvalidData (here: "received corrupt message").
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        server.await;
    }
}
