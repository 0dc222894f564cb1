//! The task that owns the [`ClientSession`]: it feeds the session every input — bytes
//! and connection ends from the connection tasks, checked frames from the checking
//! tasks, commands from the [`super::Client`] handles, the timer — and carries out every
//! output (DESIGN: adapters are byte pumps).

use std::collections::HashMap;
use std::io;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use alipay_msg_core::client::{
    Application, CheckJob, CheckedFrame, ClientSession, ConnId, DeliverError, FrameChecker, Input,
    Outcome, Output, SendError, Transmit,
};
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_core::register::RegisterError;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::Error;
use crate::transport::{Channels, Connection, Io, CLOSE_FLUSH};
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
    /// A consumer (`run`, `deliveries`) attached or went away
    /// ([`ClientSession::set_consumer`]).
    Consumer(bool),
    Shutdown,
}

/// Connection reports queued for the driver at most. A connection has at most two
/// reads out ([`crate::transport::READ_BUFFERS`]) plus its connect and end reports, so
/// this fills only with many connections at once (each attempt has two).
const IO_QUEUE: usize = 64;

/// Inputs taken from a channel at once, before the session's outputs are carried out.
const INPUT_BATCH: usize = 64;

/// Check jobs out per checking task at most: enough for each task to always have the
/// next frame at hand while the driver takes the last one back, and for the session to
/// take most of a 32 KiB read at once (it keeps what it cannot take yet and reads it
/// again, a copy of the rest, each time a job comes back; with 4 per task that copying
/// cost the burst bench about a tenth of its client CPU).
const JOBS_PER_CHECKER: usize = 16;

pub(crate) struct Driver {
    pub(crate) session: ClientSession,
    /// How connections are opened (TLS configuration, proxy).
    pub(crate) connector: std::sync::Arc<crate::network::Connector>,
    pub(crate) commands: mpsc::Receiver<Command>,
    pub(crate) app: AppSide,
}

/// Where the session's events go ([`ClientSession::dispatch`]): tokio channels.
pub(crate) struct AppSide {
    pub(crate) deliveries: mpsc::Sender<Message>,
    pub(crate) events: broadcast::Sender<ClientEvent>,
    pub(crate) connected: Option<oneshot::Sender<Result<(), Error>>>,
    /// The platform's refusal, when it stopped the client ([`super::Client::run`]
    /// returns it).
    pub(crate) fatal: std::sync::Arc<std::sync::Mutex<Option<RegisterError>>>,
    /// Sends waiting for their PRODUCE_ACK, by `stream-id`.
    pub(crate) sends: HashMap<String, oneshot::Sender<Result<ProduceAck, SendError>>>,
}

impl Application for AppSide {
    fn deliver(&mut self, message: Message) -> Result<(), DeliverError> {
        // The session admits at most `max_in_flight` deliveries and the channel holds
        // that many, so this fails only when nobody is receiving any more.
        self.deliveries.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => DeliverError::Full,
            mpsc::error::TrySendError::Closed(_) => DeliverError::Closed,
        })
    }

    fn produce_ack(&mut self, stream_id: String, result: Result<ProduceAck, SendError>) {
        if let Some(reply) = self.sends.remove(&stream_id) {
            let _ = reply.send(result);
        }
    }

    fn connect_result(&mut self, result: Result<(), Error>) {
        match &result {
            Ok(()) => tracing::info!("connected"),
            Err(error) => {
                tracing::error!(%error, "stopped before connecting");
                if let Error::Refused(refusal) = error {
                    if let Ok(mut fatal) = self.fatal.lock() {
                        *fatal = Some(refusal.clone());
                    }
                }
            }
        }
        if let Some(tx) = self.connected.take() {
            let _ = tx.send(result);
        }
    }

    fn publish(&mut self, event: ClientEvent) {
        if matches!(event, ClientEvent::KeyWarning { .. }) {
            tracing::warn!(%event);
        } else {
            tracing::debug!(%event);
        }
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }
}

pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The checking tasks, when checks are offloaded: each runs the [`CheckJob`]s dealt to
/// it and sends the [`CheckedFrame`]s back, in whatever order they finish (the session
/// restores read order).
struct Checkers {
    lanes: Vec<mpsc::Sender<CheckJob>>,
    next: usize,
    results: mpsc::Receiver<CheckedFrame>,
}

impl Checkers {
    /// `lanes` checking tasks, each with room for `per_lane` jobs.
    fn spawn(checker: &FrameChecker, lanes: usize, per_lane: usize) -> Checkers {
        let (results_tx, results) = mpsc::channel(lanes * per_lane);
        let lanes = (0..lanes)
            .map(|_| {
                let (tx, mut jobs) = mpsc::channel::<CheckJob>(per_lane);
                let (checker, results) = (checker.clone(), results_tx.clone());
                tokio::spawn(async move {
                    while let Some(job) = jobs.recv().await {
                        if results.send(checker.run(job)).await.is_err() {
                            return;
                        }
                    }
                });
                tx
            })
            .collect();
        Checkers {
            lanes,
            next: 0,
            results,
        }
    }

    /// Deals `job` to the task with the fewest jobs waiting (in turn among equals);
    /// gives it back when no task can take it (cannot happen: the session has at most
    /// `lanes × per_lane` jobs out).
    fn deal(&mut self, job: CheckJob) -> Result<(), CheckJob> {
        let count = self.lanes.len();
        let lane = (0..count)
            .map(|i| (self.next + i) % count)
            .max_by_key(|&i| {
                (
                    self.lanes[i].capacity(),
                    std::cmp::Reverse((i + count - self.next) % count),
                )
            })
            .unwrap_or(0);
        self.next = (lane + 1) % count;
        self.lanes[lane].try_send(job).map_err(|e| e.into_inner())
    }
}

impl Driver {
    pub(crate) async fn run(mut self) {
        let (io_tx, mut io_rx) = mpsc::channel::<Io>(IO_QUEUE);
        // Readers read only while this is `true`.
        let (gate, gate_rx) = watch::channel(true);
        let workers = tokio::runtime::Handle::current().metrics().num_workers();
        let lanes = self.session.config().check_parallelism_for(workers);
        // With one lane, frames are checked inline in the session (no hop).
        let mut checkers = (lanes > 1).then(|| {
            self.session.set_check_offload(lanes * JOBS_PER_CHECKER);
            Checkers::spawn(&self.session.frame_checker(), lanes, JOBS_PER_CHECKER)
        });
        let mut conns: HashMap<ConnId, Conn> = HashMap::new();
        // Connections being closed, each writing what was queued (at most CLOSE_FLUSH).
        let mut closing = JoinSet::new();
        let mut io_batch = Vec::with_capacity(INPUT_BATCH);
        let mut checked_batch = Vec::with_capacity(INPUT_BATCH);
        // Read buffers to hand back once the gate says whether to read on.
        let mut returned: Vec<(ConnId, Vec<u8>)> = Vec::new();
        let mut commands_open = true;
        // One timer for the whole run, moved only when the session's deadline moves:
        // a new timer per wake-up would re-register with the runtime's timer (and wake
        // its thread) for every read.
        let timer = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(timer);
        let mut armed: Option<Instant> = None;
        loop {
            // Carry out everything the session asks for, up to its next deadline.
            let deadline = loop {
                match self.session.poll_output() {
                    Output::Transmit(Transmit::Connect {
                        conn,
                        host,
                        port,
                        tls,
                    }) => {
                        tracing::debug!(%conn, %host, port, tls, "connect");
                        let (connection, channels) = Connection::new(
                            conn,
                            host,
                            port,
                            tls,
                            self.connector.clone(),
                            io_tx.clone(),
                            gate_rx.clone(),
                        );
                        let task = tokio::spawn(connection.run());
                        conns.insert(conn, Conn { channels, task });
                    }
                    Output::Transmit(Transmit::Write { conn, bytes }) => {
                        let Some(c) = conns.get(&conn) else {
                            continue;
                        };
                        if let Err(mpsc::error::TrySendError::Full(_)) =
                            c.channels.writes.try_send(bytes)
                        {
                            tracing::warn!(%conn, "write queue full: the peer does not read");
                            let error = Some(io::ErrorKind::WouldBlock);
                            self.session
                                .handle_input(Input::Closed { conn, error }, Instant::now());
                        }
                        // `Closed`: the connection's task has ended; its report is on
                        // the way.
                    }
                    Output::Transmit(Transmit::Close { conn }) => {
                        if let Some(c) = conns.remove(&conn) {
                            close(&mut closing, conn, c);
                        }
                    }
                    Output::Check(job) => {
                        let job = match checkers.as_mut() {
                            Some(checkers) => checkers.deal(job).err(),
                            None => Some(job),
                        };
                        if let Some(job) = job {
                            let checked = self.session.frame_checker().run(job);
                            self.session
                                .handle_input(Input::Checked(checked), Instant::now());
                        }
                    }
                    Output::Event(event) => {
                        self.session.dispatch(event, &mut self.app, Instant::now())
                    }
                    Output::Timeout(at) => break Some(at),
                    Output::Done => break None,
                    // Outputs of later core versions: nothing this adapter knows to do.
                    _ => {}
                }
            };
            let Some(deadline) = deadline else { break };
            if armed != Some(deadline) {
                timer.as_mut().reset(deadline.into());
                armed = Some(deadline);
            }
            // Bytes are read while registering and upgrading, and on the open websocket
            // while the session wants them.
            let open = !self.session.is_connected() || self.session.wants_read();
            gate.send_if_modified(|was| std::mem::replace(was, open) != open);
            for (conn, buffer) in returned.drain(..) {
                if let Some(c) = conns.get(&conn) {
                    // The connection has room for all of its buffers.
                    let _ = c.channels.buffers.try_send(buffer);
                }
            }
            while closing.try_join_next().is_some() {}
            // Timestamps the session signs follow the wall clock, adjustments included.
            self.session.update_wall_clock(Instant::now(), unix_ms());
            tokio::select! {
                () = &mut timer => {
                    self.session.handle_timeout(Instant::now());
                }
                command = self.commands.recv(), if commands_open => match command {
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
                    Some(Command::Consumer(attached)) => {
                        self.session.set_consumer(attached, Instant::now());
                    }
                    Some(Command::Shutdown) => self.session.shutdown(Instant::now()),
                    None => {
                        // Every handle is gone.
                        commands_open = false;
                        self.session.shutdown(Instant::now());
                    }
                },
                // The driver holds a sender: never `0`.
                _ = io_rx.recv_many(&mut io_batch, INPUT_BATCH) => {
                    let now = Instant::now();
                    for io in io_batch.drain(..) {
                        match io {
                            Io::Connected(conn) => {
                                self.session.handle_input(Input::Connected(conn), now);
                            }
                            Io::ConnectFailed(conn, error) => {
                                self.session.handle_input(Input::ConnectFailed { conn, error }, now);
                            }
                            Io::Bytes(conn, buffer) => {
                                self.session.handle_input(Input::Bytes { conn, bytes: &buffer }, now);
                                returned.push((conn, buffer));
                            }
                            Io::Closed(conn, error) => {
                                self.session.handle_input(Input::Closed { conn, error }, now);
                            }
                        }
                    }
                }
                _ = next_checked(&mut checkers, &mut checked_batch) => {
                    let now = Instant::now();
                    for checked in checked_batch.drain(..) {
                        self.session.handle_input(Input::Checked(checked), now);
                    }
                }
            }
        }
        // The session closes every connection before it is done; any left over (none
        // expected) are closed the same way.
        for (conn, c) in conns.drain() {
            close(&mut closing, conn, c);
        }
        drop(gate);
        // Let the last frames (acks of completed deliveries, the close) reach the sockets.
        while closing.join_next().await.is_some() {}
        for (_, reply) in self.app.sends.drain() {
            let _ = reply.send(Err(SendError::ConnectionLost));
        }
    }
}

/// One connection's task and the driver's ends of its channels.
struct Conn {
    channels: Channels,
    task: JoinHandle<()>,
}

/// Closes a connection: dropping its channels makes its task write what is queued,
/// shut the socket down and end; one that does not within [`CLOSE_FLUSH`] (a peer that
/// does not read) is dropped.
fn close(closing: &mut JoinSet<()>, conn: ConnId, Conn { channels, mut task }: Conn) {
    tracing::debug!(%conn, "close");
    drop(channels);
    if task.is_finished() {
        return;
    }
    closing.spawn(async move {
        if tokio::time::timeout(CLOSE_FLUSH, &mut task).await.is_err() {
            tracing::debug!(%conn, "not flushed in time: dropped");
            task.abort();
        }
    });
}

/// The next checked frames, when checks are offloaded; never ready otherwise. The
/// driver holds no results sender, but every checking task does while it runs.
async fn next_checked(checkers: &mut Option<Checkers>, batch: &mut Vec<CheckedFrame>) {
    let Some(checkers) = checkers else {
        return std::future::pending().await;
    };
    if checkers.results.recv_many(batch, INPUT_BATCH).await == 0 {
        // Every checking task has ended (cannot happen while the driver runs).
        std::future::pending().await
    }
}
