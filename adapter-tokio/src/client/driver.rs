//! The task that owns the [`ClientSession`] and the sockets: it feeds every input to the
//! session and carries out every output (DESIGN: adapters are thin).

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use alipay_msg_core::client::{
    Application, AttemptFailure, ClientSession, FrameChecker, Inbound, Outcome, Output, SendError,
    Transmit, WsRead,
};
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_core::register::RegisterError;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::Error;
use crate::transport::{self, Failed, Ws};
use alipay_msg_core::client::{ClientEvent, Message};

/// Requests from [`super::Client`] handles.
pub(crate) enum Command {
    Send {
        msg_api: String,
        biz_content: String,
        reply: oneshot::Sender<Result<ProduceAck, SendError>>,
    },
    Complete {
        id: alipay_msg_core::client::DeliveryId,
        outcome: Outcome,
    },
    Shutdown,
}

/// What the I/O tasks report, tagged with the attempt or connection they belong to.
enum Io {
    HttpData(u64, Vec<u8>),
    HttpEof(u64),
    HttpFailed(u64, Failed),
    WsOpen(u64, Box<Ws>),
    WsFailed(u64, Failed),
    WsWriteFailed(u64, String),
}

pub(crate) struct Driver {
    pub(crate) session: ClientSession,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) app: AppSide,
    /// The socket error kind of the attempt in progress, until the session reports how
    /// the attempt ended.
    pub(crate) io_kind: Option<std::io::ErrorKind>,
}

/// Where the session's events go ([`ClientSession::dispatch`]): tokio channels.
pub(crate) struct AppSide {
    pub(crate) deliveries: mpsc::Sender<Message>,
    pub(crate) events: broadcast::Sender<ClientEvent>,
    pub(crate) connected: Option<oneshot::Sender<Result<(), Error>>>,
    pub(crate) fatal: std::sync::Arc<std::sync::Mutex<Option<RegisterError>>>,
    /// Why the last attempt or connection ended (the last cause of a first `connect`
    /// that gives up).
    pub(crate) last_failure: std::sync::Arc<std::sync::Mutex<Option<AttemptFailure>>>,
    /// Sends waiting for their PRODUCE_ACK, by `stream-id`.
    pub(crate) sends: HashMap<String, oneshot::Sender<Result<ProduceAck, SendError>>>,
}

impl Application for AppSide {
    fn deliver(&mut self, message: Message) -> Result<(), String> {
        // The session admits at most `max_in_flight` deliveries and the channel holds
        // that many, so this fails only when nobody is receiving any more (shutting
        // down).
        self.deliveries
            .try_send(message)
            .map_err(|e| format!("no receiver: {e}"))
    }

    fn produce_ack(&mut self, stream_id: String, result: Result<ProduceAck, SendError>) {
        if let Some(reply) = self.sends.remove(&stream_id) {
            let _ = reply.send(result);
        }
    }

    fn connect_result(&mut self, result: Result<(), RegisterError>) {
        match &result {
            Ok(()) => tracing::info!("connected"),
            Err(error) => {
                tracing::error!(%error, "the platform refused the configuration");
                if let Ok(mut fatal) = self.fatal.lock() {
                    *fatal = Some(error.clone());
                }
            }
        }
        if let Some(tx) = self.connected.take() {
            let _ = tx.send(result.map_err(Error::Refused));
        }
    }

    fn publish(&mut self, event: ClientEvent) {
        tracing::debug!(%event);
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }
}

/// The open connection: a reader task reads frames, checking lanes check them, a writer
/// task writes.
struct Connection {
    inbound: Lanes,
    _reader_tasks: Vec<AbortOnDrop>,
    writer: mpsc::Sender<WsMessage>,
    writer_task: JoinHandle<()>,
}

/// The reader task holds the socket's reading half; once its connection is let go,
/// nothing it reads matters.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Frames a checking lane holds at most waiting to be checked, and as many checked
/// ones waiting for the driver: a connection reads at most `2 × LANE_AHEAD + 1` frames
/// per lane (the one being checked) and one more (in the reader's hand) ahead of the
/// session. While the session does not want to read (backpressure) the lanes fill up,
/// then the reader stops, and with it the socket.
const LANE_AHEAD: usize = 4;

/// The checking lanes' outputs, taken in the turn the reader dealt frames to them: the
/// session sees frames in the order they were read, whatever lane finished first.
struct Lanes {
    lanes: Vec<mpsc::Receiver<Inbound>>,
    next: usize,
}

impl Lanes {
    /// The next frame in read order; `None` once the lane it is due from has ended.
    /// Cancel-safe: a turn advances only when a frame is taken.
    async fn recv(&mut self) -> Option<Inbound> {
        let inbound = self.lanes[self.next].recv().await?;
        self.next = (self.next + 1) % self.lanes.len();
        Some(inbound)
    }
}

pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Driver {
    pub(crate) async fn run(mut self) {
        for event in ClientEvent::start_up(self.session.config()) {
            tracing::warn!(%event);
            self.app.publish(event);
        }
        let (io_tx, mut io_rx) = mpsc::channel::<Io>(64);
        let mut attempt: u64 = 0;
        let mut attempt_task: Option<JoinHandle<()>> = None;
        let mut conn: Option<Connection> = None;
        // The writer of a connection being closed, still flushing its last frames.
        let mut closing: Option<JoinHandle<()>> = None;
        let max_message = self.session.config().frame_limits.max_frame_bytes;
        // One timer for the whole run, moved only when the session's deadline moves:
        // a new timer per wake-up would re-register with the runtime's timer (and wake
        // its thread) for every frame.
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            // Carry out everything the session asks for, up to its next deadline.
            let deadline = loop {
                match self.session.poll_output() {
                    Output::Transmit(t) => match t {
                        Transmit::HttpRequest { endpoint, request } => {
                            attempt += 1;
                            let (tx, id) = (io_tx.clone(), attempt);
                            abort(&mut attempt_task);
                            attempt_task = Some(tokio::spawn(async move {
                                http_exchange(id, endpoint, request, tx).await;
                            }));
                        }
                        Transmit::WsConnect { endpoint, connect } => {
                            let (tx, id) = (io_tx.clone(), attempt);
                            abort(&mut attempt_task);
                            attempt_task = Some(tokio::spawn(async move {
                                let result =
                                    transport::websocket(&endpoint, &connect, max_message).await;
                                let _ = tx
                                    .send(match result {
                                        Ok(ws) => Io::WsOpen(id, Box::new(ws)),
                                        Err(failed) => Io::WsFailed(id, failed),
                                    })
                                    .await;
                            }));
                        }
                        Transmit::Text(text) => write(&conn, WsMessage::Text(text.into())).await,
                        Transmit::Ping => write(&conn, WsMessage::Ping(Vec::new().into())).await,
                        Transmit::Close => {
                            abort(&mut attempt_task);
                            if let Some(c) = conn.take() {
                                // The writer sends what is queued (acks included), the
                                // close frame, and ends.
                                let _ = c.writer.try_send(WsMessage::Close(None));
                                closing = Some(c.writer_task);
                            }
                        }
                    },
                    Output::Event(event) => {
                        if matches!(event, alipay_msg_core::client::Event::Connecting { .. }) {
                            self.io_kind = None;
                        }
                        if let Some(failure) =
                            AttemptFailure::from_event(&event, self.io_kind.take())
                        {
                            if let Ok(mut last) = self.app.last_failure.lock() {
                                *last = Some(failure);
                            }
                        }
                        self.session.dispatch(event, &mut self.app, Instant::now())
                    }
                    Output::Timeout(at) => break Some(at),
                    Output::Done => break None,
                }
            };
            let Some(deadline) = deadline else { break };
            if armed != Some(deadline) {
                timer.as_mut().reset(deadline.into());
                armed = Some(deadline);
            }
            let reading = conn.is_some() && self.session.wants_read();
            // Timestamps the session signs follow the wall clock, adjustments included.
            self.session.update_wall_clock(Instant::now(), unix_ms());
            tokio::select! {
                () = &mut timer => {
                    self.session.handle_timeout(Instant::now());
                }
                command = self.commands.recv() => match command {
                    Some(Command::Send { msg_api, biz_content, reply }) => {
                        match self.session.send(&msg_api, &biz_content, Instant::now()) {
                            Ok(stream_id) => { self.app.sends.insert(stream_id, reply); }
                            Err(e) => { let _ = reply.send(Err(e)); }
                        }
                    }
                    Some(Command::Complete { id, outcome }) => {
                        // A completion for a delivery the session no longer tracks (after a
                        // shutdown timeout) has nothing left to do.
                        let _ = self.session.complete(id, outcome, Instant::now());
                    }
                    Some(Command::Shutdown) | None => self.session.shutdown(Instant::now()),
                },
                Some(io) = io_rx.recv() => {
                    let now = Instant::now();
                    match io {
                        Io::HttpData(id, data) if id == attempt => self.session.handle_http_data(&data, now),
                        Io::HttpEof(id) if id == attempt => self.session.handle_http_eof(now),
                        Io::HttpFailed(id, failed) if id == attempt => {
                            self.io_kind = failed.kind;
                            self.session.handle_http_failed(&failed.text, now);
                        }
                        Io::WsOpen(id, ws) if id == attempt => {
                            let (sink, reader) = (*ws).split();
                            let (writer, writer_task) = spawn_writer(sink, io_tx.clone(), id);
                            let workers = tokio::runtime::Handle::current().metrics().num_workers();
                            let lanes = self.session.config().check_parallelism_for(workers);
                            let (inbound, reader_tasks) =
                                spawn_reader(reader, self.session.frame_checker(), lanes);
                            conn = Some(Connection {
                                inbound,
                                _reader_tasks: reader_tasks,
                                writer,
                                writer_task,
                            });
                            self.session.update_wall_clock(now, unix_ms());
                            self.session.handle_ws_open(now);
                        }
                        Io::WsFailed(id, failed) if id == attempt => {
                            self.io_kind = failed.kind;
                            self.session.handle_ws_failed(&failed.text, now);
                        }
                        Io::WsWriteFailed(id, e) if id == attempt && conn.is_some() => {
                            conn = None;
                            self.session.handle_ws_closed(&e, now);
                        }
                        _ => {} // from an abandoned attempt or connection
                    }
                }
                inbound = next_inbound(&mut conn), if reading => {
                    let now = Instant::now();
                    match inbound {
                        Inbound::Frame(frame) => {
                            // Checked by this session's own checker: never foreign.
                            let _ = self.session.handle_checked(frame, now);
                        }
                        Inbound::Pong => self.session.handle_pong(now),
                        Inbound::Closed(reason) => {
                            conn = None;
                            self.session.handle_ws_closed(&reason, now);
                        }
                    }
                }
            }
        }
        abort(&mut attempt_task);
        if let Some(c) = conn.take() {
            let _ = c.writer.try_send(WsMessage::Close(None));
            closing = Some(c.writer_task);
        }
        // Let the last frames (acks of completed deliveries) reach the socket.
        if let Some(writer) = closing {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), writer).await;
        }
        for (_, reply) in self.app.sends.drain() {
            let _ = reply.send(Err(SendError::ConnectionLost));
        }
    }
}

fn abort(task: &mut Option<JoinHandle<()>>) {
    if let Some(task) = task.take() {
        task.abort();
    }
}

async fn write(conn: &Option<Connection>, message: WsMessage) {
    if let Some(c) = conn {
        // A closed writer reports the failure itself (Io::WsWriteFailed).
        let _ = c.writer.send(message).await;
    }
}

async fn next_inbound(conn: &mut Option<Connection>) -> Inbound {
    match conn {
        Some(c) => c
            .inbound
            .recv()
            .await
            .unwrap_or_else(|| Inbound::Closed("connection closed".to_owned())),
        None => std::future::pending().await,
    }
}

/// Reads frames on its own task and deals them in turn to `lanes` checking tasks (by
/// default one per worker thread: `ClientConfig::check_parallelism`), which parse them
/// and check CONSUME signatures — nearly all of a message's cost. The driver only
/// decides, and checking runs on every worker at once: one task checking would keep a
/// frame's hand-off to the driver in its worker's LIFO slot, where no other worker can
/// take it.
///
/// With one lane the reader checks frames itself (no hop).
fn spawn_reader(
    mut reader: futures_util::stream::SplitStream<Ws>,
    checker: FrameChecker,
    lanes: usize,
) -> (Lanes, Vec<AbortOnDrop>) {
    let lanes = lanes.max(1);
    let mut tasks = Vec::with_capacity(lanes + 1);
    let mut outputs = Vec::with_capacity(lanes);
    let mut inputs = Vec::with_capacity(lanes);
    if lanes == 1 {
        let (tx, rx) = mpsc::channel(2 * LANE_AHEAD);
        outputs.push(rx);
        inputs.push(Lane::Inline(tx, checker));
    } else {
        for _ in 0..lanes {
            let (raw_tx, mut raw_rx) = mpsc::channel::<WsRead>(LANE_AHEAD);
            let (tx, rx) = mpsc::channel(LANE_AHEAD);
            let checker = checker.clone();
            tasks.push(AbortOnDrop(tokio::spawn(async move {
                while let Some(read) = raw_rx.recv().await {
                    let last = read.is_closed();
                    if tx.send(checker.check_read(read)).await.is_err() || last {
                        return;
                    }
                }
            })));
            outputs.push(rx);
            inputs.push(Lane::Task(raw_tx));
        }
    }
    tasks.push(AbortOnDrop(tokio::spawn(async move {
        let mut turn = 0;
        loop {
            // Pings (tungstenite answers them) and binary frames: nothing to pass on.
            let Some(read) = WsRead::from_next(reader.next().await) else {
                continue;
            };
            let last = read.is_closed();
            if !inputs[turn].pass(read).await || last {
                return;
            }
            turn = (turn + 1) % inputs.len();
        }
    })));
    (
        Lanes {
            lanes: outputs,
            next: 0,
        },
        tasks,
    )
}

/// Where the reader passes a frame: to a checking lane's task, or checked in place.
enum Lane {
    Task(mpsc::Sender<WsRead>),
    Inline(mpsc::Sender<Inbound>, FrameChecker),
}

impl Lane {
    /// `false` once nobody takes frames any more.
    async fn pass(&self, read: WsRead) -> bool {
        match self {
            Lane::Task(tx) => tx.send(read).await.is_ok(),
            Lane::Inline(tx, checker) => tx.send(checker.check_read(read)).await.is_ok(),
        }
    }
}

/// Writes frames in order on its own task, so that a slow peer never stops the driver
/// from reading. Frames queued together go out with one flush (one write to the socket
/// for a burst of acks, not one each).
fn spawn_writer(
    mut sink: futures_util::stream::SplitSink<Ws, WsMessage>,
    io: mpsc::Sender<Io>,
    id: u64,
) -> (mpsc::Sender<WsMessage>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<WsMessage>(256);
    let task = tokio::spawn(async move {
        'frames: while let Some(mut message) = rx.recv().await {
            loop {
                let closing = matches!(message, WsMessage::Close(_));
                if let Err(e) = sink.feed(message).await {
                    let _ = io.send(Io::WsWriteFailed(id, e.to_string())).await;
                    return;
                }
                if closing {
                    break 'frames;
                }
                match rx.try_recv() {
                    Ok(next) => message = next,
                    Err(_) => break,
                }
            }
            if let Err(e) = sink.flush().await {
                let _ = io.send(Io::WsWriteFailed(id, e.to_string())).await;
                return;
            }
        }
        let _ = sink.close().await;
    });
    (tx, task)
}

/// One `register.do` exchange: connect, write the request, stream the answer back.
async fn http_exchange(
    id: u64,
    endpoint: alipay_msg_core::endpoint::Endpoint,
    request: Vec<u8>,
    tx: mpsc::Sender<Io>,
) {
    let mut io = match transport::connect(&endpoint).await {
        Ok(io) => io,
        Err(e) => {
            let _ = tx
                .send(Io::HttpFailed(
                    id,
                    Failed::io(format!("connect {endpoint}"), &e),
                ))
                .await;
            return;
        }
    };
    if let Err(e) = io.write_all(&request).await {
        let _ = tx.send(Io::HttpFailed(id, Failed::io("write", &e))).await;
        return;
    }
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match io.read(&mut buf).await {
            Ok(0) => {
                let _ = tx.send(Io::HttpEof(id)).await;
                return;
            }
            Ok(n) => {
                if tx.send(Io::HttpData(id, buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Io::HttpFailed(id, Failed::io("read", &e))).await;
                return;
            }
        }
    }
}
