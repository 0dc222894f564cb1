//! The websocket side of the port, spoken with the core's sans-IO `ws` module: the
//! upgrade request read by [`ServerHandshake`] (its parameters checked by the platform
//! state machine, answered `101` here), then per connection a reader that turns frames
//! into text for the platform task and a writer that frames what the platform queues.
//!
//! Text frames carry the connection's charset, both ways (PROTOCOL §4): what a client
//! sends is decoded strictly in it — bytes that do not decode close the connection with
//! 1007, as the platform's Java client does — and what the platform sends is encoded in
//! it. RFC 6455 readers (tungstenite) would refuse a GBK app's frames, hence the core's
//! `ws` module rather than a websocket library.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use alipay_msg_core::charset::Charset;
use alipay_msg_core::server::ConnectionId;
use alipay_msg_core::ws::handshake::ServerHandshake;
use alipay_msg_core::ws::{CloseCode, Role, WsConnection, WsEvent, WsLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::http::{self, RequestHead};
use super::listener::{stopped, Shared};
use super::platform::Request;

/// How long a client gets to answer the platform's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

/// Queued texts written in one go stop at about this many bytes.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// Frames the reader hands the writer (pongs, the close echo, closes the simulator
/// starts). The websocket keeps at most one pong and one close pending, so a few
/// suffice; the reader waits when the writer is behind.
const CONTROL_QUEUE: usize = 4;

/// The server mask argument: the server role sends unmasked frames and ignores it.
const NO_MASK: [u8; 4] = [0; 4];

/// The websocket state of one connection, shared by its reader and writer (locked for
/// one call at a time, never across an await).
type SharedWs = Arc<Mutex<WsConnection>>;

fn lock(ws: &SharedWs) -> MutexGuard<'_, WsConnection> {
    // A panic while holding the lock is a bug elsewhere; the state stays usable.
    ws.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `GET /websocket?…`: checks the websocket handshake, asks the platform, answers
/// `101` or the refusal's status, then runs the connection.
pub(super) async fn serve(mut stream: TcpStream, head: RequestHead, shared: Shared) {
    let upgrade = match ServerHandshake::new().read(&head.raw) {
        Ok(Some(upgrade)) => upgrade,
        Ok(None) => {
            // The listener read a complete head; the handshake's bound is lower.
            http::answer(
                &mut stream,
                &http::text_response(400, "incomplete upgrade request"),
            )
            .await;
            return;
        }
        Err(e) => {
            tracing::debug!(error = %e, "websocket handshake refused");
            http::answer(&mut stream, &e.server_answer()).await;
            return;
        }
    };
    // `consumed` is the whole head the listener read; a client may have sent frames
    // right behind it.
    let mut first_bytes = head.raw[upgrade.consumed.min(head.raw.len())..].to_vec();
    first_bytes.extend_from_slice(&head.rest);

    let (writer, frames) = mpsc::channel(shared.max_queued_frames.max(1));
    let (reply, answer) = oneshot::channel();
    let request = Request::Upgrade {
        target: upgrade.path_and_query.clone(),
        cookie: upgrade
            .header("cookie")
            .map(|v| String::from_utf8_lossy(v).trim().to_owned()),
        writer,
        reply,
    };
    if shared.requests.send(request).await.is_err() {
        http::answer(&mut stream, &stopped()).await;
        return;
    }
    let (conn, charset) = match answer.await {
        Ok(Ok(accepted)) => accepted,
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
    if let Err(e) = stream.write_all(&upgrade.accept_answer()).await {
        tracing::debug!(%conn, error = %e, "upgrade answer not written");
        let _ = shared.requests.send(Request::Closed { conn }).await;
        return;
    }
    let ws = Arc::new(Mutex::new(WsConnection::new(
        Role::Server,
        WsLimits {
            max_message_bytes: shared.max_frame_bytes,
        },
    )));
    let (read_half, write_half) = stream.into_split();
    let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let writer = tokio::spawn(write_frames(
        conn,
        charset,
        ws.clone(),
        write_half,
        frames,
        control_rx,
    ));
    let reader = Reader {
        conn,
        charset,
        ws,
        control: control_tx,
        shared,
    };
    reader.run(read_half, first_bytes, writer).await;
}

/// Writes what the platform queues for the connection, each text encoded in the
/// connection's charset and framed (unmasked), and what the reader hands over (pongs,
/// close echoes and closes, first). When the platform drops its sender (it closed the
/// connection), sends a close frame unless one went already, and ends.
async fn write_frames(
    conn: ConnectionId,
    charset: Charset,
    ws: SharedWs,
    mut socket: OwnedWriteHalf,
    mut frames: mpsc::Receiver<String>,
    mut control: mpsc::Receiver<Vec<u8>>,
) {
    let mut control_open = true;
    let mut out = Vec::new();
    loop {
        out.clear();
        tokio::select! {
            biased;
            bytes = control.recv(), if control_open => match bytes {
                Some(bytes) => out.extend_from_slice(&bytes),
                None => control_open = false,
            },
            text = frames.recv() => match text {
                Some(text) => {
                    // Batch what is queued, then write once.
                    push_text(&ws, charset, &text, &mut out);
                    while out.len() < WRITE_BATCH_BYTES {
                        let Ok(text) = frames.try_recv() else { break };
                        push_text(&ws, charset, &text, &mut out);
                    }
                }
                None => {
                    // The platform closed the connection: what the reader still
                    // queued, then our close (unless a close went already).
                    while let Ok(bytes) = control.try_recv() {
                        out.extend_from_slice(&bytes);
                    }
                    if let Ok(close) = lock(&ws).close(CloseCode::NORMAL, "", NO_MASK) {
                        out.extend_from_slice(&close);
                    }
                    if socket.write_all(&out).await.is_ok() {
                        let _ = socket.shutdown().await;
                    }
                    return;
                }
            },
        }
        if let Err(e) = socket.write_all(&out).await {
            tracing::debug!(%conn, error = %e, "websocket write failed");
            return;
        }
    }
}

/// Appends `text` as one text frame in `charset` (nothing once a close went either way:
/// RFC 6455 §5.5.1 allows no data frame after it).
fn push_text(ws: &SharedWs, charset: Charset, text: &str, out: &mut Vec<u8>) {
    let payload = charset.encode(text);
    if let Ok(frame) = lock(ws).encode_text(&payload, NO_MASK) {
        out.extend_from_slice(&frame);
    }
}

/// How reading a connection ended.
enum ReadEnd {
    /// Keep reading.
    Open,
    /// The simulator started the close (1007): wait, briefly, for the client's close.
    Closing,
    /// Nothing more to read: the close handshake is over, the connection failed, the
    /// client left or the platform is gone.
    Done,
}

/// The reading side of one connection.
struct Reader {
    conn: ConnectionId,
    charset: Charset,
    ws: SharedWs,
    /// Frames for the writer.
    control: mpsc::Sender<Vec<u8>>,
    shared: Shared,
}

impl Reader {
    /// Reads until either side closes the connection, then tells the platform and gives
    /// the writer [`CLOSE_GRACE`] to send what is left.
    async fn run(
        self,
        mut socket: OwnedReadHalf,
        first_bytes: Vec<u8>,
        mut writer: JoinHandle<()>,
    ) {
        let conn = self.conn;
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut state = self.take(&first_bytes).await;
        let mut writer_done = false;
        // Set once the simulator closed its side: the client gets until then to answer.
        let mut grace_until: Option<Instant> = None;
        loop {
            match state {
                ReadEnd::Done => break,
                ReadEnd::Closing if grace_until.is_none() => {
                    grace_until = Some(Instant::now() + CLOSE_GRACE);
                }
                ReadEnd::Open | ReadEnd::Closing => {}
            }
            let grace = async {
                match grace_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                read = socket.read(&mut chunk) => match read {
                    Ok(0) => break,
                    Ok(n) => state = self.take(&chunk[..n]).await,
                    Err(e) => {
                        tracing::debug!(%conn, error = %e, "websocket read failed");
                        break;
                    }
                },
                _ = &mut writer, if !writer_done => {
                    // Closed by the platform (or the write failed): let the client
                    // answer the close frame, briefly.
                    writer_done = true;
                    state = ReadEnd::Closing;
                }
                () = grace => break,
            }
        }
        drop(socket);
        // Unknown or already closed connections are ignored by the platform.
        let _ = self.shared.requests.send(Request::Closed { conn }).await;
        // The platform drops the writer's sender on `Closed`: the writer then sends what
        // is queued and the close frame (or nothing more, after a close) and ends.
        drop(self.control);
        if !writer_done
            && tokio::time::timeout(CLOSE_GRACE, &mut writer)
                .await
                .is_err()
        {
            writer.abort();
        }
    }

    /// Reads `input` through the websocket: every complete message to the platform,
    /// every frame the websocket wants written to the writer.
    async fn take(&self, mut input: &[u8]) -> ReadEnd {
        let conn = self.conn;
        let mut end = ReadEnd::Open;
        loop {
            let (result, transmits) = {
                let mut ws = lock(&self.ws);
                let result = ws.read(input);
                let mut transmits = Vec::new();
                while let Some(bytes) = ws.poll_transmit(NO_MASK) {
                    transmits.push(bytes);
                }
                (result, transmits)
            };
            for bytes in transmits {
                if self.control.send(bytes).await.is_err() {
                    return ReadEnd::Done;
                }
            }
            let event = match result {
                Ok((used, event)) => {
                    input = &input[used..];
                    event
                }
                Err(violation) => {
                    // The failing close frame went to the writer above.
                    tracing::debug!(%conn, %violation, "websocket protocol violation");
                    return ReadEnd::Done;
                }
            };
            match event {
                None => return end,
                Some(WsEvent::Text(payload)) => {
                    if !matches!(end, ReadEnd::Open) {
                        // Read after our close: the client's text means nothing now.
                        continue;
                    }
                    match self.charset.decode_strict(&payload) {
                        Ok(text) => {
                            let request = Request::Text {
                                conn,
                                text: text.into_owned(),
                            };
                            if self.shared.requests.send(request).await.is_err() {
                                return ReadEnd::Done;
                            }
                        }
                        Err(error) => {
                            tracing::debug!(%conn, %error, "undecodable text frame; closing with 1007");
                            let reason = format!("not valid {}", self.charset);
                            let close =
                                lock(&self.ws).close(CloseCode::INVALID_PAYLOAD, &reason, NO_MASK);
                            if let Ok(bytes) = close {
                                if self.control.send(bytes).await.is_err() {
                                    return ReadEnd::Done;
                                }
                            }
                            let request = Request::Undecodable { conn, error };
                            if self.shared.requests.send(request).await.is_err() {
                                return ReadEnd::Done;
                            }
                            end = ReadEnd::Closing;
                        }
                    }
                }
                // Pings are answered through poll_transmit; pongs and binary frames
                // mean nothing here (PROTOCOL §4 has text frames only).
                Some(WsEvent::Pong(_) | WsEvent::Binary(_)) => {}
                // The close handshake is over (the echo, if any, went to the writer).
                Some(WsEvent::Closed { .. }) => return ReadEnd::Done,
                Some(_) => {}
            }
        }
    }
}
