//! One platform connection as a byte pump: what the socket gives goes to the platform
//! task as [`Request::Bytes`] (the request head the listener read first), what the
//! session writes for the connection comes back on a bounded channel and is written;
//! the end of that channel is the session's [`ServerOutput::Close`]. HTTP, the websocket
//! handshake and framing, charsets and 1007 are all the session's
//! ([`alipay_msg_core::server`]).
//!
//! [`ServerOutput::Close`]: alipay_msg_core::server::ServerOutput::Close

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::http::{self, RequestHead};
use super::listener::{stopped, Shared};
use super::platform::Request;

/// How long a client gets, after the platform closed, to send what it still sends (its
/// close frame) before the socket is dropped; dropping it with unread input would
/// reset the connection under the client's feet.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Queued writes joined into one socket write stop at about this many bytes.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// Serves a connection whose request head (for `register.do`, the upgrade, or any path
/// the listener does not route itself) has been read: the head and what followed are
/// its first bytes for the session.
pub(super) async fn pump(stream: TcpStream, head: RequestHead, shared: Shared) {
    let (writer, mut writes) = mpsc::channel(shared.max_queued_frames.max(1));
    let (reply, accepted) = oneshot::channel();
    let mut first = head.raw;
    first.extend_from_slice(&head.rest);
    let request = Request::Accept {
        writer,
        first,
        reply,
    };
    let mut stream = stream;
    let conn = match shared.requests.send(request).await {
        Ok(()) => accepted.await.ok().flatten(),
        Err(_) => None,
    };
    let Some(conn) = conn else {
        http::answer(&mut stream, &stopped()).await;
        return;
    };
    let (mut reader, mut socket) = stream.into_split();
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut out = Vec::new();
    loop {
        tokio::select! {
            biased;
            bytes = writes.recv() => {
                let Some(bytes) = bytes else {
                    // Closed by the session: what was queued is written; end our side,
                    // let the client answer briefly, then drop the socket.
                    let _ = socket.shutdown().await;
                    let _ = tokio::time::timeout(CLOSE_GRACE, async {
                        while matches!(reader.read(&mut chunk).await, Ok(n) if n > 0) {}
                    })
                    .await;
                    return;
                };
                out.clear();
                out.extend_from_slice(&bytes);
                while out.len() < WRITE_BATCH_BYTES {
                    let Ok(bytes) = writes.try_recv() else { break };
                    out.extend_from_slice(&bytes);
                }
                if let Err(e) = socket.write_all(&out).await {
                    tracing::debug!(%conn, error = %e, "write failed");
                    let error = Some(e.kind());
                    let _ = shared.requests.send(Request::Closed { conn, error }).await;
                    return;
                }
            }
            read = reader.read(&mut chunk) => {
                let (input, done) = match read {
                    Ok(0) => (Request::Closed { conn, error: None }, true),
                    Ok(n) => (Request::Bytes { conn, bytes: chunk[..n].to_vec() }, false),
                    Err(e) => {
                        tracing::debug!(%conn, error = %e, "read failed");
                        (Request::Closed { conn, error: Some(e.kind()) }, true)
                    }
                };
                if shared.requests.send(input).await.is_err() || done {
                    return;
                }
            }
        }
    }
}
