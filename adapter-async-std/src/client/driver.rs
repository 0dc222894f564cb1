//! The task that owns the [`ClientSession`] and the sockets: it feeds every input to the
//! session and carries out every output (DESIGN: adapters are thin).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alipay_msg_core::client::{
    Application, AttemptFailure, ClientEvent, ClientSession, DeliveryId, Event, FrameChecker,
    Inbound, Message, Outcome, Output, SendError, Transmit, WsRead,
};
use alipay_msg_core::endpoint::Endpoint;
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_core::register::RegisterError;
use async_channel::{Receiver, Sender};
use async_io::Timer;
use async_tungstenite::tungstenite::Message as WsMessage;
use async_tungstenite::{WebSocketReceiver, WebSocketSender};
use futures_channel::oneshot;
use futures_lite::future;
use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
use futures_util::SinkExt;

use super::Error;
use crate::runtime::{self, Task, Tasks};
use crate::transport::{self, BoxIo, Failed, Ws};

/// How long the driver waits, when it ends, for the last writer to send its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Requests from [`super::Client`] handles.
pub(crate) enum Command {
    Send {
        msg_api: String,
        biz_content: String,
        reply: oneshot::Sender<Result<ProduceAck, SendError>>,
    },
    Complete {
        id: DeliveryId,
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

/// What woke the driver up.
// Checked frames are nearly every wake-up: boxing them would add an allocation each.
#[allow(clippy::large_enum_variant)]
enum Wake {
    Deadline,
    Command(Option<Command>),
    Io(Io),
    Inbound(Inbound),
}

/// Where the session's events go ([`ClientSession::dispatch`]): async channels.
pub(crate) struct AppSide {
    pub(crate) deliveries: Sender<Message>,
    pub(crate) events: async_broadcast::Sender<ClientEvent>,
    pub(crate) connected: Option<oneshot::Sender<Result<(), Error>>>,
    pub(crate) fatal: Arc<Mutex<Option<RegisterError>>>,
    /// Why the last attempt or connection ended (the last cause of a first `connect`
    /// that gives up).
    pub(crate) last_failure: Arc<Mutex<Option<AttemptFailure>>>,
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
        // Nobody listening is fine; a subscriber that lags loses the oldest events.
        let _ = self.events.try_broadcast(event);
    }
}

pub(crate) struct Driver {
    pub(crate) session: ClientSession,
    pub(crate) commands: Receiver<Command>,
    pub(crate) app: AppSide,
    pub(crate) tasks: Tasks,
    /// The socket error kind of the attempt in progress, until the session reports how
    /// the attempt ended.
    pub(crate) io_kind: Option<std::io::ErrorKind>,
}

/// The open connection: a reader task reads frames, checking lanes check them, a writer
/// task writes.
struct Connection {
    inbound: Lanes,
    /// Held while the connection is: the reader task stops once it is dropped.
    _reader_stop: Sender<()>,
    /// The reader and checking-lane tasks, which end by themselves once the connection
    /// is let go.
    reader_tasks: Vec<Task<()>>,
    writer: Sender<WsMessage>,
    writer_task: Task<()>,
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
    lanes: Vec<Receiver<Inbound>>,
    next: usize,
}

impl Lanes {
    /// The next frame in read order. Cancel-safe: a turn advances only when a frame is
    /// taken.
    async fn recv(&mut self) -> Inbound {
        match self.lanes[self.next].recv().await {
            Ok(inbound) => {
                self.next = (self.next + 1) % self.lanes.len();
                inbound
            }
            // The lane ended without passing on a close: its task was stopped.
            Err(_) => Inbound::Closed("connection closed".to_owned()),
        }
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
        let (io_tx, io_rx) = async_channel::bounded::<Io>(64);
        let mut attempt: u64 = 0;
        let mut attempt_task: Option<Task<()>> = None;
        let mut conn: Option<Connection> = None;
        // Writers of closed connections, still sending their last frames.
        let mut closing: Vec<Task<()>> = Vec::new();
        let max_message = self.session.config().frame_limits.max_frame_bytes;
        // One timer for the whole run, moved only when the session's deadline moves:
        // a new timer per wake-up would register with the reactor for every frame.
        let mut timer = Timer::never();
        let mut armed: Option<Instant> = None;
        loop {
            // Carry out everything the session asks for, up to its next deadline.
            let deadline = loop {
                match self.session.poll_output() {
                    Output::Transmit(t) => match t {
                        Transmit::HttpRequest { endpoint, request } => {
                            attempt += 1;
                            let (tx, id) = (io_tx.clone(), attempt);
                            runtime::cancel(&mut attempt_task).await;
                            attempt_task = Some(self.tasks.spawn(async move {
                                http_exchange(id, endpoint, request, tx).await;
                            }));
                        }
                        Transmit::WsConnect { endpoint, connect } => {
                            let (tx, id) = (io_tx.clone(), attempt);
                            runtime::cancel(&mut attempt_task).await;
                            attempt_task = Some(self.tasks.spawn(async move {
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
                            runtime::cancel(&mut attempt_task).await;
                            if let Some(c) = conn.take() {
                                // The writer sends the close frame and ends.
                                let _ = c.writer.try_send(WsMessage::Close(None));
                                retire(c, &mut closing);
                            }
                        }
                    },
                    Output::Event(event) => {
                        if matches!(event, Event::Connecting { .. }) {
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
                timer.set_at(deadline);
                armed = Some(deadline);
            }
            let reading = conn.is_some() && self.session.wants_read();
            // Timestamps the session signs follow the wall clock, adjustments included.
            self.session.update_wall_clock(Instant::now(), unix_ms());
            let wake = {
                let commands = &self.commands;
                let conn = &mut conn;
                let timer = async {
                    (&mut timer).await;
                    Wake::Deadline
                };
                let command = async { Wake::Command(commands.recv().await.ok()) };
                let io = async {
                    match io_rx.recv().await {
                        Ok(io) => Wake::Io(io),
                        // The driver holds a sender: the channel never closes.
                        Err(_) => future::pending().await,
                    }
                };
                let frame = async {
                    match conn {
                        Some(c) if reading => Wake::Inbound(c.inbound.recv().await),
                        _ => future::pending().await,
                    }
                };
                // Like `tokio::select!`: whichever is ready, in random order.
                future::race(future::race(timer, command), future::race(io, frame)).await
            };
            let now = Instant::now();
            match wake {
                Wake::Deadline => {
                    // A fired timer stays quiet until it is set again.
                    armed = None;
                    self.session.handle_timeout(now);
                }
                Wake::Command(command) => match command {
                    Some(Command::Send {
                        msg_api,
                        biz_content,
                        reply,
                    }) => match self.session.send(&msg_api, &biz_content, now) {
                        Ok(stream_id) => {
                            self.app.sends.insert(stream_id, reply);
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    },
                    Some(Command::Complete { id, outcome }) => {
                        // A completion for a delivery the session no longer tracks (after a
                        // shutdown timeout) has nothing left to do.
                        let _ = self.session.complete(id, outcome, now);
                    }
                    Some(Command::Shutdown) | None => self.session.shutdown(now),
                },
                Wake::Io(io) => match io {
                    Io::HttpData(id, data) if id == attempt => {
                        self.session.handle_http_data(&data, now);
                    }
                    Io::HttpEof(id) if id == attempt => self.session.handle_http_eof(now),
                    Io::HttpFailed(id, failed) if id == attempt => {
                        self.io_kind = failed.kind;
                        self.session.handle_http_failed(&failed.text, now);
                    }
                    Io::WsOpen(id, ws) if id == attempt => {
                        let (sink, reader) = (*ws).split();
                        let (writer, writer_task) =
                            spawn_writer(&self.tasks, sink, io_tx.clone(), id);
                        let lanes = self
                            .session
                            .config()
                            .check_parallelism_for(runtime::threads());
                        let (inbound, reader_stop, reader_tasks) =
                            spawn_reader(&self.tasks, reader, self.session.frame_checker(), lanes);
                        conn = Some(Connection {
                            inbound,
                            _reader_stop: reader_stop,
                            reader_tasks,
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
                        if let Some(c) = conn.take() {
                            retire(c, &mut closing);
                        }
                        self.session.handle_ws_closed(&e, now);
                    }
                    _ => {} // from an abandoned attempt or connection
                },
                Wake::Inbound(inbound) => match inbound {
                    Inbound::Frame(frame) => {
                        // Checked by this session's own checker: never foreign.
                        let _ = self.session.handle_checked(frame, now);
                    }
                    Inbound::Pong => self.session.handle_pong(now),
                    Inbound::Closed(reason) => {
                        if let Some(c) = conn.take() {
                            retire(c, &mut closing);
                        }
                        self.session.handle_ws_closed(&reason, now);
                    }
                },
            }
        }
        runtime::cancel(&mut attempt_task).await;
        if let Some(c) = conn.take() {
            let _ = c.writer.try_send(WsMessage::Close(None));
            retire(c, &mut closing);
        }
        for (_, reply) in self.app.sends.drain() {
            let _ = reply.send(Err(SendError::ConnectionLost));
        }
        // Give the writers a moment to send their close frames, and the readers to see
        // their connection let go; none outlives the driver.
        let grace = Instant::now() + CLOSE_GRACE;
        for mut writer in closing {
            let ended = future::or(
                async {
                    (&mut writer).await;
                    true
                },
                async {
                    Timer::at(grace).await;
                    false
                },
            )
            .await;
            if !ended {
                writer.cancel().await;
            }
        }
    }
}

/// Lets go of a connection: its reader and checking lanes stop (nothing they read
/// matters any more), and its writer task ends once it has sent what it was given.
/// Their tasks are kept so that the driver can wait for them at the end.
fn retire(conn: Connection, closing: &mut Vec<Task<()>>) {
    closing.retain(|task| !task.is_finished());
    closing.push(conn.writer_task);
    closing.extend(conn.reader_tasks);
}

/// Reads frames on its own task and deals them in turn to `lanes` checking tasks (by
/// default one per executor thread: `ClientConfig::check_parallelism`), which parse
/// them and check CONSUME signatures — nearly all of a message's cost. The driver only
/// decides, and checking runs on every thread at once.
///
/// With one lane the reader checks frames itself (no hop).
///
/// The tasks end by themselves: the reader once the returned sender is dropped (it then
/// drops its half of the socket) or the connection ends, each lane once the reader has
/// ended.
fn spawn_reader(
    tasks: &Tasks,
    mut reader: WebSocketReceiver<BoxIo>,
    checker: FrameChecker,
    lanes: usize,
) -> (Lanes, Sender<()>, Vec<Task<()>>) {
    let lanes = lanes.max(1);
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let mut spawned = Vec::with_capacity(lanes + 1);
    let mut outputs = Vec::with_capacity(lanes);
    let mut inputs = Vec::with_capacity(lanes);
    if lanes == 1 {
        let (tx, rx) = async_channel::bounded(2 * LANE_AHEAD);
        outputs.push(rx);
        inputs.push(Lane::Inline(tx, checker));
    } else {
        for _ in 0..lanes {
            let (raw_tx, raw_rx) = async_channel::bounded::<WsRead>(LANE_AHEAD);
            let (tx, rx) = async_channel::bounded(LANE_AHEAD);
            let checker = checker.clone();
            spawned.push(tasks.spawn(async move {
                while let Ok(read) = raw_rx.recv().await {
                    let last = read.is_closed();
                    if tx.send(checker.check_read(read)).await.is_err() || last {
                        return;
                    }
                }
            }));
            outputs.push(rx);
            inputs.push(Lane::Task(raw_tx));
        }
    }
    spawned.push(tasks.spawn(async move {
        let mut turn = 0;
        loop {
            let next = future::or(async { Some(reader.next().await) }, async {
                // Nothing is ever sent: this ends when the connection is let go.
                let _ = stopped.recv().await;
                None
            });
            let Some(next) = next.await else { return };
            // Pings (tungstenite answers them) and binary frames: nothing to pass on.
            let Some(read) = WsRead::from_next(next) else {
                continue;
            };
            let last = read.is_closed();
            if !inputs[turn].pass(read).await || last {
                return;
            }
            turn = (turn + 1) % inputs.len();
        }
    }));
    (
        Lanes {
            lanes: outputs,
            next: 0,
        },
        stop,
        spawned,
    )
}

/// Where the reader passes a frame: to a checking lane's task, or checked in place.
enum Lane {
    Task(Sender<WsRead>),
    Inline(Sender<Inbound>, FrameChecker),
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

async fn write(conn: &Option<Connection>, message: WsMessage) {
    if let Some(c) = conn {
        // A closed writer reports the failure itself (Io::WsWriteFailed).
        let _ = c.writer.send(message).await;
    }
}

/// Writes frames in order on its own task, so that a slow peer never stops the driver
/// from reading. Frames queued together go out with one flush (one write to the socket
/// for a burst of acks, not one each).
fn spawn_writer(
    tasks: &Tasks,
    sink: WebSocketSender<BoxIo>,
    io: Sender<Io>,
    id: u64,
) -> (Sender<WsMessage>, Task<()>) {
    let (tx, rx) = async_channel::bounded::<WsMessage>(256);
    let task = tasks.spawn(async move {
        let mut sink = sink;
        while let Ok(mut message) = rx.recv().await {
            let mut closing;
            loop {
                closing = matches!(message, WsMessage::Close(_));
                if let Err(e) = sink.feed(message).await {
                    let _ = io.send(Io::WsWriteFailed(id, e.to_string())).await;
                    return;
                }
                if closing {
                    break;
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
            if closing {
                return;
            }
        }
        // The driver let go of the connection without a close frame: send one.
        let _ = sink.close(None).await;
    });
    (tx, task)
}

/// One `register.do` exchange: connect, write the request, stream the answer back.
async fn http_exchange(id: u64, endpoint: Endpoint, request: Vec<u8>, tx: Sender<Io>) {
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
    if let Err(e) = io.flush().await {
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
