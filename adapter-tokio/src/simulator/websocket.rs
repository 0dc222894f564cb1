//! The websocket side of the port: the upgrade (checked by the platform state machine,
//! answered `101` here), then one task per connection that reads frames into the
//! platform task and a writer that sends what the platform queues for it.

use std::time::Duration;

use alipay_msg_core::server::ConnectionId;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use super::http::{self, RequestHead};
use super::listener::{stopped, Shared};
use super::platform::Request;

/// How long a client gets to answer the platform's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The `Sec-WebSocket-Key` of a valid upgrade request (RFC 6455 §4.2.1), or why not.
fn websocket_key(head: &RequestHead) -> Result<&str, &'static str> {
    let has_token = |name: &str, token: &str| {
        head.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !has_token("upgrade", "websocket") || !has_token("connection", "upgrade") {
        return Err("expected a websocket upgrade (Upgrade: websocket, Connection: Upgrade)");
    }
    if head.header("sec-websocket-version") != Some("13") {
        return Err("Sec-WebSocket-Version must be 13");
    }
    head.header("sec-websocket-key")
        .filter(|k| !k.is_empty())
        .ok_or("missing Sec-WebSocket-Key")
}

/// `GET /websocket?…`: asks the platform, answers `101` or the refusal's status, then
/// runs the connection.
pub(super) async fn serve(mut stream: TcpStream, head: RequestHead, shared: Shared) {
    let accept_key = match websocket_key(&head) {
        Ok(key) => derive_accept_key(key.as_bytes()),
        Err(reason) => {
            http::answer(&mut stream, &http::text_response(400, reason)).await;
            return;
        }
    };
    let (writer, frames) = mpsc::channel(shared.max_queued_frames.max(1));
    let (reply, answer) = oneshot::channel();
    let request = Request::Upgrade {
        target: head.target.clone(),
        cookie: head.header("cookie").map(str::to_owned),
        writer,
        reply,
    };
    if shared.requests.send(request).await.is_err() {
        http::answer(&mut stream, &stopped()).await;
        return;
    }
    let conn = match answer.await {
        Ok(Ok(conn)) => conn,
        Ok(Err(refusal)) => {
            let body = format!("websocket upgrade refused: {refusal}");
            http::answer(
                &mut stream,
                &http::text_response(refusal.http_status(), &body),
            )
            .await;
            return;
        }
        Err(_) => {
            http::answer(&mut stream, &stopped()).await;
            return;
        }
    };
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept_key}\r\n\r\n"
    );
    if let Err(e) = stream.write_all(response.as_bytes()).await {
        tracing::debug!(%conn, error = %e, "upgrade answer not written");
        let _ = shared.requests.send(Request::Closed { conn }).await;
        return;
    }
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(shared.max_frame_bytes);
    config.max_frame_size = Some(shared.max_frame_bytes);
    // A client may have sent frames right behind its request head.
    let ws =
        WebSocketStream::from_partially_read(stream, head.rest, Role::Server, Some(config)).await;
    run(conn, ws, frames, shared).await;
}

/// One open connection until either side closes it.
async fn run(
    conn: ConnectionId,
    ws: WebSocketStream<TcpStream>,
    mut frames: mpsc::Receiver<String>,
    shared: Shared,
) {
    let (mut sink, mut source) = ws.split();
    let mut writer = tokio::spawn(async move {
        while let Some(text) = frames.recv().await {
            // Batch what is queued, then flush once.
            let mut result = sink.feed(WsMessage::Text(text.into())).await;
            while let (Ok(()), Ok(text)) = (&result, frames.try_recv()) {
                result = sink.feed(WsMessage::Text(text.into())).await;
            }
            if let Err(e) = result.and(sink.flush().await) {
                tracing::debug!(%conn, error = %e, "websocket write failed");
                return;
            }
        }
        // The platform dropped the sender: it closed the connection.
        let _ = sink.send(WsMessage::Close(None)).await;
        let _ = sink.close().await;
    });
    let mut writer_done = false;
    loop {
        tokio::select! {
            frame = source.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    let request = Request::Text { conn, text: text.as_str().to_owned() };
                    if shared.requests.send(request).await.is_err() {
                        break;
                    }
                }
                // Pings are answered by tungstenite; pongs and binary frames mean nothing
                // here.
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Binary(_) | WsMessage::Frame(_))) => {}
                Some(Ok(WsMessage::Close(_))) | None => break,
                Some(Err(e)) => {
                    tracing::debug!(%conn, error = %e, "websocket read failed");
                    break;
                }
            },
            _ = &mut writer, if !writer_done => {
                writer_done = true;
                // Closed by the platform (or the write failed): let the client answer
                // the close frame, briefly.
                let _ = tokio::time::timeout(CLOSE_GRACE, async {
                    while let Some(Ok(_)) = source.next().await {}
                })
                .await;
                break;
            }
        }
    }
    // Unknown or already closed connections are ignored by the platform.
    let _ = shared.requests.send(Request::Closed { conn }).await;
    if !writer_done {
        // The platform drops the writer's sender on `Closed`: the writer then sends the
        // close frame (or the answer to the client's) and ends.
        if tokio::time::timeout(CLOSE_GRACE, &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    }
}
