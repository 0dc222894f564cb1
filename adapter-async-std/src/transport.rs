//! Sockets: TCP (`async-net`), TLS (`futures-rustls` with core's shared rustls
//! configuration: ring provider, webpki roots) and the websocket upgrade
//! (`async-tungstenite`, handed the already-TLS stream). Everything here moves bytes over
//! `futures-io`; the session decides.

use std::io;

use alipay_msg_core::endpoint::Endpoint;
use alipay_msg_core::register::WsConnect;
use async_net::TcpStream;
use async_tungstenite::WebSocketStream;
use futures_lite::{AsyncRead, AsyncWrite};

/// A byte stream, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub(crate) type BoxIo = Box<dyn Io>;
pub(crate) type Ws = WebSocketStream<BoxIo>;

/// Opens TCP to the endpoint, with TLS when it says so.
pub(crate) async fn connect(endpoint: &Endpoint) -> io::Result<BoxIo> {
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await?;
    tcp.set_nodelay(true)?;
    if !endpoint.tls {
        return Ok(Box::new(tcp));
    }
    let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let connector = futures_rustls::TlsConnector::from(alipay_msg_core::tls::client_config());
    Ok(Box::new(connector.connect(name, tcp).await?))
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

/// Opens the websocket: TCP (+TLS), then the upgrade with the signed URL and the zone
/// cookie.
pub(crate) async fn websocket(
    endpoint: &Endpoint,
    connect_to: &WsConnect,
    max_message_bytes: usize,
) -> Result<Ws, Failed> {
    let request = connect_to
        .client_request()
        .map_err(|text| Failed { text, kind: None })?;
    let io = connect(endpoint)
        .await
        .map_err(|e| Failed::io(format!("connect {endpoint}"), &e))?;
    let config = WsConnect::websocket_config(max_message_bytes);
    let (ws, _response) = async_tungstenite::client_async_with_config(request, io, Some(config))
        .await
        .map_err(|e| Failed {
            kind: match &e {
                async_tungstenite::tungstenite::Error::Io(io) => Some(io.kind()),
                _ => None,
            },
            text: e.to_string(),
        })?;
    Ok(ws)
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
        let endpoint = Endpoint {
            tls: true,
            host: "127.0.0.1".to_owned(),
            port,
        };
        let error = match connect(&endpoint).await {
            Ok(_) => panic!("a plain server cannot complete a TLS handshake"),
            Err(e) => e,
        };
        // rustls reports protocol errors as InvalidData (here: "received corrupt message").
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        server.await;
    }
}
