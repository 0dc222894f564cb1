//! The task that owns the [`ClientSession`]: it feeds the session every input (bytes and
//! connection news from the connection tasks, checked frames, commands from the client
//! handles, the time) and carries out every output (DESIGN: adapters are byte pumps).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use alipay_msg_core::client::{
    Application, CheckJob, CheckedFrame, ClientError, ClientEvent, ClientSession, DeliverError,
    DeliveryId, Input, Message, Outcome, Output, SendError, Transmit,
};
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_core::register::RegisterError;
use async_channel::{Receiver, Sender};
use async_io::Timer;
use futures_channel::oneshot;
use futures_lite::future;

use super::connection::{Io, Sockets};
use crate::runtime::{self, Task, Tasks};

/// Inputs taken one after another without waiting (each followed by a round of the
/// session's outputs) before the driver looks at its timer again: a burst of reads,
/// checked frames or completions costs one wake-up, not one each.
const DRAIN: usize = 64;

/// Connection reports queued for the driver. Each connection has at most one read in
/// the queue (see [`super::connection::READ_BUFFER`]); the rest are a few state changes
/// per connection.
const IO_QUEUE: usize = 64;

/// Check jobs out at once per checking task (`ClientSession::set_check_offload`).
const JOBS_PER_CHECKER: usize = 4;

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
    /// A consumer (`run`, `deliveries`) attached or went away
    /// ([`ClientSession::set_consumer`]).
    Consumer(bool),
    Shutdown,
}

/// What woke the driver up.
// Checked frames are most wake-ups under load: boxing them would add an allocation each.
#[allow(clippy::large_enum_variant)]
enum Wake {
    Deadline,
    /// `None`: every client handle is gone.
    Command(Option<Command>),
    Io(Io),
    Checked(CheckedFrame),
}

/// Where the session's events go ([`ClientSession::dispatch`]): async channels.
pub(crate) struct AppSide {
    pub(crate) deliveries: Sender<Message>,
    pub(crate) events: async_broadcast::Sender<ClientEvent>,
    pub(crate) connected: Option<oneshot::Sender<Result<(), ClientError>>>,
    /// The platform's refusal, for [`super::Client::run`] when it stops the client
    /// after the first connection.
    pub(crate) fatal: Arc<Mutex<Option<RegisterError>>>,
    /// Sends waiting for their PRODUCE_ACK, by `stream-id` (at most
    /// `max_pending_sends`: the session refuses more).
    pub(crate) sends: HashMap<String, oneshot::Sender<Result<ProduceAck, SendError>>>,
}

impl Application for AppSide {
    fn deliver(&mut self, message: Message) -> Result<(), DeliverError> {
        // The session admits at most `max_in_flight` deliveries and the channel holds
        // that many, so this fails only when nobody is receiving any more.
        self.deliveries.try_send(message).map_err(|e| match e {
            async_channel::TrySendError::Full(_) => DeliverError::Full,
            async_channel::TrySendError::Closed(_) => DeliverError::Closed,
        })
    }

    fn produce_ack(&mut self, stream_id: String, result: Result<ProduceAck, SendError>) {
        if let Some(reply) = self.sends.remove(&stream_id) {
            let _ = reply.send(result);
        }
    }

    fn connect_result(&mut self, result: Result<(), ClientError>) {
        match &result {
            Ok(()) => tracing::info!("connected"),
            Err(error) => {
                tracing::error!(%error, "the client stopped");
                if let ClientError::Refused(refusal) = error {
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
        // Nobody listening is fine; a subscriber that lags loses the oldest events.
        let _ = self.events.try_broadcast(event);
    }
}

pub(crate) struct Driver {
    pub(crate) session: ClientSession,
    pub(crate) commands: Receiver<Command>,
    pub(crate) app: AppSide,
    pub(crate) tasks: Tasks,
    /// How connections are opened (TLS configuration, proxy).
    pub(crate) connector: std::sync::Arc<crate::network::Connector>,
}

/// The wall-clock time, milliseconds since 1970-01-01 00:00 UTC (0 before it).
pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The driver's running state.
struct Pump {
    session: ClientSession,
    app: AppSide,
    sockets: Sockets,
    io: Receiver<Io>,
    /// Jobs for the checking tasks; `None`: frames are checked inline by the session.
    jobs: Option<Sender<CheckJob>>,
    checked: Receiver<CheckedFrame>,
    commands: Receiver<Command>,
    /// Some client handle is left (the command channel is open).
    handles: bool,
}

impl Driver {
    pub(crate) async fn run(self) {
        let Driver {
            mut session,
            commands,
            app,
            tasks,
            connector,
        } = self;
        let (io_tx, io) = async_channel::bounded(IO_QUEUE);
        // Checking: when more than one frame may be checked at once, on that many tasks
        // (one per executor thread by default, `ClientConfig::check_parallelism`), the
        // driver only deciding; the session puts their results back in read order.
        let parallelism = session.config().check_parallelism_for(runtime::threads());
        let max_jobs = parallelism * JOBS_PER_CHECKER;
        let (checked_tx, checked) = async_channel::bounded(max_jobs);
        let mut checkers: Vec<Task<()>> = Vec::new();
        let jobs = if parallelism > 1 {
            session.set_check_offload(max_jobs);
            // The session has at most `max_jobs` out: sending never waits.
            let (jobs, jobs_rx) = async_channel::bounded::<CheckJob>(max_jobs);
            for _ in 0..parallelism {
                let (jobs_rx, checked_tx) = (jobs_rx.clone(), checked_tx.clone());
                let checker = session.frame_checker();
                checkers.push(tasks.spawn(async move {
                    while let Ok(job) = jobs_rx.recv().await {
                        if checked_tx.send(checker.run(job)).await.is_err() {
                            return;
                        }
                    }
                }));
            }
            Some(jobs)
        } else {
            None
        };
        drop(checked_tx);
        let mut pump = Pump {
            session,
            app,
            sockets: Sockets::new(tasks, connector, io_tx),
            io,
            jobs,
            checked,
            commands,
            handles: true,
        };
        pump.run().await;
        let Pump {
            mut app,
            sockets,
            jobs,
            io,
            checked,
            ..
        } = pump;
        // Nobody reads reports or checked frames any more: a task sending one is told so
        // at once rather than waiting for room.
        drop((io, checked));
        for (_, reply) in app.sends.drain() {
            let _ = reply.send(Err(SendError::ConnectionLost));
        }
        // The checking tasks end once the jobs are gone; the connections once closed.
        drop(jobs);
        for checker in checkers {
            checker.await;
        }
        sockets.end().await;
    }
}

impl Pump {
    async fn run(&mut self) {
        // One timer for the whole run, moved only when the session's deadline moves:
        // a new timer per wake-up would register with the reactor every time.
        let mut timer = Timer::never();
        let mut armed: Option<Instant> = None;
        let mut drained = 0;
        loop {
            let Some(deadline) = self.outputs().await else {
                return;
            };
            let ready = if drained < DRAIN { self.ready() } else { None };
            let wake = match ready {
                Some(wake) => {
                    drained += 1;
                    wake
                }
                None => {
                    drained = 0;
                    if armed != Some(deadline) {
                        timer.set_at(deadline);
                        armed = Some(deadline);
                    }
                    // Timestamps the session signs follow the wall clock, adjustments
                    // included.
                    self.session.update_wall_clock(Instant::now(), unix_ms());
                    self.wait(&mut timer).await
                }
            };
            if matches!(wake, Wake::Deadline) {
                // A fired timer stays quiet until it is set again.
                armed = None;
            }
            self.handle(wake);
        }
    }

    /// Carries out everything the session asks for, up to its next deadline (`None`:
    /// the session is done); then hands the writes to the sockets and lets the readers
    /// read when the session wants bytes.
    async fn outputs(&mut self) -> Option<Instant> {
        let deadline = loop {
            match self.session.poll_output() {
                Output::Transmit(Transmit::Connect {
                    conn,
                    host,
                    port,
                    tls,
                }) => self.sockets.connect(conn, host, port, tls),
                Output::Transmit(Transmit::Write { conn, bytes }) => {
                    self.sockets.write(conn, bytes).await
                }
                Output::Transmit(Transmit::Close { conn }) => self.sockets.close(conn).await,
                Output::Transmit(other) => tracing::warn!(?other, "unknown transmit: ignored"),
                Output::Check(job) => match &self.jobs {
                    Some(jobs) => {
                        if let Err(async_channel::SendError(job)) = jobs.send(job).await {
                            // The checking tasks are gone (they end only after the
                            // driver): check it here.
                            self.check_inline(job);
                        }
                    }
                    // Only after `set_check_offload`; checked here should it come.
                    None => self.check_inline(job),
                },
                Output::Event(event) => self.session.dispatch(event, &mut self.app, Instant::now()),
                Output::Timeout(at) => break Some(at),
                Output::Done => break None,
                other => tracing::warn!(?other, "unknown session output: ignored"),
            }
        };
        self.sockets.flush().await;
        // Outside the open websocket the session always reads (the register answer,
        // the upgrade); on it only while it wants frames.
        let wanted = !self.session.is_connected() || self.session.wants_read();
        self.sockets.grant(wanted);
        deadline
    }

    fn check_inline(&mut self, job: CheckJob) {
        let checked = self.session.frame_checker().run(job);
        self.session
            .handle_input(Input::Checked(checked), Instant::now());
    }

    /// An input that is already waiting, if any.
    fn ready(&mut self) -> Option<Wake> {
        if let Ok(frame) = self.checked.try_recv() {
            return Some(Wake::Checked(frame));
        }
        if let Ok(io) = self.io.try_recv() {
            return Some(Wake::Io(io));
        }
        if self.handles {
            if let Ok(command) = self.commands.try_recv() {
                return Some(Wake::Command(Some(command)));
            }
        }
        None
    }

    /// Waits for the next input or the deadline.
    async fn wait(&self, timer: &mut Timer) -> Wake {
        let deadline = async {
            timer.await;
            Wake::Deadline
        };
        let command = async {
            if !self.handles {
                return future::pending().await;
            }
            Wake::Command(self.commands.recv().await.ok())
        };
        let io = async {
            match self.io.recv().await {
                Ok(io) => Wake::Io(io),
                // The driver holds a sender (in `sockets`): the channel never closes.
                Err(_) => future::pending().await,
            }
        };
        let checked = async {
            match self.checked.recv().await {
                Ok(frame) => Wake::Checked(frame),
                // No checking tasks: nothing comes.
                Err(_) => future::pending().await,
            }
        };
        // Like `tokio::select!`: whichever is ready, in random order.
        future::race(future::race(deadline, command), future::race(io, checked)).await
    }

    fn handle(&mut self, wake: Wake) {
        let now = Instant::now();
        let session = &mut self.session;
        match wake {
            Wake::Deadline => session.handle_timeout(now),
            Wake::Command(None) => {
                // Every handle is gone: nobody can use the client any more.
                self.handles = false;
                session.shutdown(now);
            }
            Wake::Command(Some(command)) => match command {
                Command::Send {
                    msg_api,
                    biz_content,
                    reply,
                } => match session.send(&msg_api, &biz_content, now) {
                    Ok(stream_id) => {
                        self.app.sends.insert(stream_id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
                Command::Complete { id, outcome } => {
                    // A completion for a delivery the session no longer tracks (after
                    // a shutdown timeout) has nothing left to do.
                    let _ = session.complete(id, outcome, now);
                }
                Command::Consumer(attached) => session.set_consumer(attached, now),
                Command::Shutdown => session.shutdown(now),
            },
            Wake::Io(io) => match io {
                Io::Connected(conn) => session.handle_input(Input::Connected(conn), now),
                Io::ConnectFailed(conn, error) => {
                    session.handle_input(Input::ConnectFailed { conn, error }, now)
                }
                Io::Bytes(conn, bytes) => {
                    self.sockets.taken(conn);
                    session.handle_input(
                        Input::Bytes {
                            conn,
                            bytes: &bytes,
                        },
                        now,
                    )
                }
                Io::Closed(conn, error) => session.handle_input(Input::Closed { conn, error }, now),
            },
            Wake::Checked(frame) => session.handle_input(Input::Checked(frame), now),
        }
    }
}
