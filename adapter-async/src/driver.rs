//! The task that owns the [`ClientSession`] and the open connection's stream: it feeds
//! the session every input — bytes it reads and the stream's end, opened connections
//! from the opening tasks, checked frames from the checking tasks, sends and answers
//! from the application's side, shared-window answers, the timer — and carries out every
//! output, writing the session's bytes itself (DESIGN: adapters are byte pumps). It
//! never waits for room in a queue: what the session writes goes to bounded outboxes
//! that refuse instead ([`crate::connection`]), and every channel it feeds has room by
//! construction.

use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use alipay_msg_core::client::{
    Application, CheckJob, CheckedFrame, ClientError, ClientEvent, ClientSession, ConnId,
    DeliverError, Input, Message, Output, SendError, Transmit,
};
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_core::register::RegisterError;
use alipay_msg_core::window::{AsyncWindowStore, QueryId, WindowAnswer, WindowError, WindowQuery};
use async_channel::{Receiver, Sender, TryRecvError, TrySendError};
use futures_channel::oneshot;
use futures_lite::{FutureExt, Stream};

use crate::connection::{Conn, Event, Io, Target};
use crate::deliveries::Report;
use crate::network::Connector;
use crate::runtime::{Runtime, Task, Tasks};

/// Requests from the client's async methods ([`crate::Client::send`],
/// [`crate::Client::shutdown`]), which may wait for room.
pub(crate) enum Command {
    /// PRODUCE; the PRODUCE_ACK (or why there is none) goes to `reply`.
    Send {
        msg_api: String,
        biz_content: String,
        reply: oneshot::Sender<Result<ProduceAck, SendError>>,
    },
    /// [`ClientSession::shutdown`].
    Shutdown,
}

/// Commands queued at most.
pub(crate) const COMMAND_QUEUE: usize = 1024;

/// Opening tasks' reports queued at most: one per opening (the session opens one
/// connection at a time, a second only while the first is let go); a task finding the
/// queue full waits for room.
const IO_QUEUE: usize = 16;

/// Inputs taken from one channel at once before the session's outputs are carried
/// out: a burst of reads, checked frames or answers costs one round, one write.
const INPUT_BATCH: usize = 64;

/// Check jobs out per checking task at most: enough for each task to always have the
/// next frame at hand while the driver takes the last one back, and for the session to
/// take most of a 32 KiB read at once (it keeps what it cannot take yet and reads it
/// again, a copy of the rest, each time a job comes back; with 4 per task that copying
/// cost the burst bench about a tenth of its client CPU).
const JOBS_PER_CHECKER: usize = 16;

/// The wall-clock time, milliseconds since 1970-01-01 00:00 UTC (0 before it).
pub(crate) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Where the session's events go ([`ClientSession::dispatch`]).
pub(crate) struct AppSide {
    /// Verified messages, to `run` or a `Deliveries` (room for `max_in_flight`).
    pub(crate) deliveries: Sender<Message>,
    pub(crate) events: async_broadcast::Sender<ClientEvent>,
    /// The first connection's outcome, for `Connecting::connected`.
    pub(crate) connected: Option<oneshot::Sender<Result<(), ClientError>>>,
    /// The platform's refusal, for `run` when it stops the client after the first
    /// connection.
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
            TrySendError::Full(_) => DeliverError::Full,
            TrySendError::Closed(_) => DeliverError::Closed,
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
                    *self.fatal.lock().unwrap_or_else(PoisonError::into_inner) =
                        Some(refusal.clone());
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
        // Nobody listening is fine; a subscriber that lags loses its oldest events.
        let _ = self.events.try_broadcast(event);
    }
}

/// Everything the driver task starts with.
pub(crate) struct Driver<R> {
    pub(crate) session: ClientSession,
    /// How connections are opened (TLS configuration, proxy).
    pub(crate) connector: Arc<Connector>,
    pub(crate) commands: Receiver<Command>,
    pub(crate) reports: Receiver<Report>,
    pub(crate) app: AppSide,
    pub(crate) tasks: Tasks<R>,
    /// The shared duplicate window's store, when the session has one.
    pub(crate) window: Option<Arc<dyn AsyncWindowStore>>,
}

/// A shared window's answer to one query, as its task sends it back.
type Answered = (QueryId, Result<WindowAnswer, WindowError>);

/// The shared duplicate window: every query the session asks runs on a task of its own
/// (a store may take a network round trip; the driver never waits for one), whose
/// answer comes back on `answers`.
struct Window {
    store: Arc<dyn AsyncWindowStore>,
    /// Cloned into each query's task. A task waits for room, never the driver.
    answer_tx: Sender<Answered>,
    /// The queries' tasks, until they end; at the driver's end, what is still out is
    /// abandoned (the session is done: an answer could change nothing) and waited for.
    queries: Vec<Task<()>>,
    /// Never sent on: dropped at the driver's end, which abandons the queries out (a
    /// store that never answers would otherwise keep its task for ever).
    stop: Sender<()>,
    stopped: Receiver<()>,
}

/// The checking tasks, when checks are offloaded: each takes the next [`CheckJob`] and
/// sends the [`CheckedFrame`] back, in whatever order they finish (the session restores
/// read order).
struct Checkers {
    /// Room for every job the session may have out: dealing never waits.
    jobs: Sender<CheckJob>,
    tasks: Vec<Task<()>>,
}

/// What woke the driver, taken in batches.
#[derive(Default)]
struct Batch {
    /// The session's deadline has passed.
    deadline: bool,
    /// The timer fired (at the session's deadline, or at an earlier one it has moved
    /// past since): it is set again.
    timer_fired: bool,
    commands: Vec<Command>,
    /// Every client handle is gone.
    commands_closed: bool,
    reports: Vec<Report>,
    io: Vec<Io>,
    /// What the open connections' sockets did, in the order polled.
    conn_events: Vec<(ConnId, Event)>,
    checked: Vec<CheckedFrame>,
    answered: Vec<Answered>,
}

/// The driver's running state.
struct Pump<R: Runtime> {
    session: ClientSession,
    app: AppSide,
    tasks: Tasks<R>,
    connector: Arc<Connector>,
    conns: HashMap<ConnId, Conn>,
    /// The session wants bytes: the open connections are read.
    wants_read: bool,
    /// Closed connections' tasks, until they end.
    closing: Vec<Task<()>>,
    io_tx: Sender<Io>,
    io: Pin<Box<Receiver<Io>>>,
    checkers: Option<Checkers>,
    checked: Pin<Box<Receiver<CheckedFrame>>>,
    commands: Pin<Box<Receiver<Command>>>,
    /// Some client handle is left (the command channel is open).
    handles: bool,
    reports: Pin<Box<Receiver<Report>>>,
    window: Option<Window>,
    answers: Pin<Box<Receiver<Answered>>>,
}

impl<R: Runtime> Driver<R> {
    /// Runs the session until it is done, then closes what is left and waits for the
    /// connection and checking tasks to end.
    pub(crate) async fn run(self) {
        let Driver {
            mut session,
            connector,
            commands,
            reports,
            app,
            tasks,
            window,
        } = self;
        let (io_tx, io) = async_channel::bounded(IO_QUEUE);
        // The session has at most about `max_in_flight` queries out; a task whose answer
        // finds the channel full waits for room (the driver drains it every round).
        let (answer_tx, answers) = async_channel::bounded(session.config().max_in_flight.max(1));
        let window = window.map(|store| {
            let (stop, stopped) = async_channel::bounded(1);
            Window {
                store,
                answer_tx,
                queries: Vec::new(),
                stop,
                stopped,
            }
        });
        let lanes = session
            .config()
            .check_parallelism_for(tasks.runtime().worker_threads());
        let max_jobs = lanes * JOBS_PER_CHECKER;
        let (checked_tx, checked) = async_channel::bounded(max_jobs);
        // With one lane, frames are checked inline in the session (no hop).
        let checkers = (lanes > 1).then(|| {
            session.set_check_offload(max_jobs);
            let (jobs, jobs_rx) = async_channel::bounded::<CheckJob>(max_jobs);
            let tasks = (0..lanes)
                .map(|_| {
                    let (jobs, results) = (jobs_rx.clone(), checked_tx.clone());
                    let checker = session.frame_checker();
                    tasks.spawn(async move {
                        while let Ok(job) = jobs.recv().await {
                            if results.send(checker.run(job)).await.is_err() {
                                return;
                            }
                        }
                    })
                })
                .collect();
            Checkers { jobs, tasks }
        });
        drop(checked_tx);
        let mut pump = Pump {
            session,
            app,
            tasks,
            connector,
            conns: HashMap::new(),
            wants_read: true,
            closing: Vec::new(),
            io_tx,
            io: Box::pin(io),
            checkers,
            checked: Box::pin(checked),
            commands: Box::pin(commands),
            handles: true,
            reports: Box::pin(reports),
            window,
            answers: Box::pin(answers),
        };
        pump.run().await;
        pump.end().await;
    }
}

impl<R: Runtime> Pump<R> {
    async fn run(&mut self) {
        // One timer for the whole run. It is moved only when the session's deadline
        // moves earlier: at a trickle every message moves the deadline later (the
        // heartbeat), and moving a timer costs a call into the runtime's timer — with
        // async-io, a system call and a wake-up of its reactor. Set to an instant the
        // deadline has moved past, the timer fires early, finds nothing due and is set
        // again: once per heartbeat interval rather than once per message.
        let now = Instant::now();
        let mut timer = self.tasks.runtime().timer(now);
        let mut armed = Some(now);
        let mut batch = Batch::default();
        loop {
            let Some(deadline) = self.outputs() else {
                return;
            };
            if armed.is_none_or(|at| deadline < at) {
                self.tasks.runtime().reset_timer(&mut timer, deadline);
                armed = Some(deadline);
            }
            // Timestamps the session signs follow the wall clock, adjustments included.
            self.session.update_wall_clock(Instant::now(), unix_ms());
            self.wait(&mut timer, deadline, &mut batch).await;
            if std::mem::take(&mut batch.timer_fired) {
                // A fired timer is set again before it is waited for.
                armed = None;
            }
            self.handle(&mut batch);
        }
    }

    /// Carries out everything the session asks for, up to its next deadline (`None`:
    /// the session is done); what it writes is queued for [`Pump::wait`] to write.
    fn outputs(&mut self) -> Option<Instant> {
        let deadline = loop {
            match self.session.poll_output() {
                Output::Transmit(Transmit::Connect {
                    conn,
                    host,
                    port,
                    tls,
                }) => {
                    tracing::debug!(%conn, %host, port, tls, "connect");
                    let target = Target { host, port, tls };
                    let c = Conn::open(
                        &self.tasks,
                        conn,
                        target,
                        self.connector.clone(),
                        self.io_tx.clone(),
                    );
                    if let Some(old) = self.conns.insert(conn, c) {
                        // The session never reuses an id; were it to, the old one goes.
                        self.closing.extend(old.close(&self.tasks));
                    }
                }
                Output::Transmit(Transmit::Write { conn, bytes }) => {
                    let Some(c) = self.conns.get_mut(&conn) else {
                        continue;
                    };
                    if c.write(&bytes).is_err() {
                        tracing::warn!(%conn, "write queue full: the peer does not read");
                        let error = Some(io::ErrorKind::WouldBlock);
                        self.session
                            .handle_input(Input::Closed { conn, error }, Instant::now());
                    }
                }
                Output::Transmit(Transmit::Close { conn }) => {
                    if let Some(c) = self.conns.remove(&conn) {
                        tracing::debug!(%conn, "close");
                        self.closing.extend(c.close(&self.tasks));
                    }
                }
                Output::Transmit(other) => tracing::warn!(?other, "unknown transmit: ignored"),
                Output::Check(job) => {
                    let job = match &self.checkers {
                        // The session has at most as many jobs out as there is room.
                        Some(checkers) => checkers.jobs.try_send(job).err().map(|e| e.into_inner()),
                        None => Some(job),
                    };
                    if let Some(job) = job {
                        let checked = self.session.frame_checker().run(job);
                        self.session
                            .handle_input(Input::Checked(checked), Instant::now());
                    }
                }
                Output::Window(query) => self.ask(query),
                Output::Event(event) => self.session.dispatch(event, &mut self.app, Instant::now()),
                Output::Timeout(at) => break Some(at),
                Output::Done => break None,
                other => tracing::warn!(?other, "unknown session output: ignored"),
            }
        };
        // Bytes are read while registering and upgrading, and on the open websocket
        // while the session wants them.
        self.wants_read = !self.session.is_connected() || self.session.wants_read();
        self.closing.retain(|task| !task.is_finished());
        if let Some(window) = &mut self.window {
            window.queries.retain(|task| !task.is_finished());
        }
        deadline
    }

    /// Asks the shared window `query` on a task of its own; its answer comes back on
    /// `answers`. (The session asks only when it has a window, and `launch` gives it a
    /// store then; were there none, the query is answered as a store failure.)
    fn ask(&mut self, query: WindowQuery) {
        let Some(window) = &mut self.window else {
            let answer = Err(WindowError("no shared window store".to_owned()));
            let id = query.id;
            return self
                .session
                .handle_input(Input::WindowAnswered { id, answer }, Instant::now());
        };
        let (store, answer_tx) = (window.store.clone(), window.answer_tx.clone());
        let stopped = window.stopped.clone();
        window.queries.push(self.tasks.spawn(async move {
            let answered = async { Some(store.answer(&query).await) }.or(async {
                // Nothing is ever sent: this returns at the driver's end.
                let _ = stopped.recv().await;
                None
            });
            if let Some(answer) = answered.await {
                // The driver has ended: nobody to tell.
                let _ = answer_tx.send((query.id, answer)).await;
            }
        }));
    }

    /// Writes what the session wrote and reads the open connections while it wants
    /// bytes; then waits for the deadline or the next inputs, and takes what is waiting
    /// (up to [`INPUT_BATCH`] from each channel) into `batch`. What is waiting already
    /// is taken without registering to be woken — in a burst there nearly always is
    /// something — and the deadline is then read off the clock rather than the timer.
    async fn wait(&mut self, timer: &mut R::Timer, deadline: Instant, batch: &mut Batch) {
        let mut first = true;
        poll_fn(|cx| {
            let mut woke = false;
            for (&conn, c) in &mut self.conns {
                if let Poll::Ready(event) = c.poll_io(cx, self.wants_read) {
                    batch.conn_events.push((conn, event));
                    woke = true;
                }
            }
            if std::mem::take(&mut first) && self.take_waiting(batch) | woke {
                batch.deadline = Instant::now() >= deadline;
                return Poll::Ready(());
            }
            batch.timer_fired = Pin::new(&mut *timer).poll(cx).is_ready();
            batch.deadline = batch.timer_fired && Instant::now() >= deadline;
            woke |= batch.timer_fired;
            if self.handles {
                match self.commands.as_mut().poll_next(cx) {
                    Poll::Ready(Some(command)) => {
                        batch.commands.push(command);
                        woke = true;
                    }
                    Poll::Ready(None) => {
                        batch.commands_closed = true;
                        woke = true;
                    }
                    Poll::Pending => {}
                }
            }
            woke |= poll_take(self.reports.as_mut(), cx, &mut batch.reports);
            woke |= poll_take(self.io.as_mut(), cx, &mut batch.io);
            if self.checkers.is_some() {
                woke |= poll_take(self.checked.as_mut(), cx, &mut batch.checked);
            }
            if self.window.is_some() {
                woke |= poll_take(self.answers.as_mut(), cx, &mut batch.answered);
            }
            if woke {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        self.take_waiting(batch);
    }

    /// Moves what waits in the input channels into `batch`, up to [`INPUT_BATCH`] from
    /// each; whether there was anything (or the last client handle has gone).
    fn take_waiting(&mut self, batch: &mut Batch) -> bool {
        let mut took = take(&self.reports, &mut batch.reports);
        took |= take(&self.io, &mut batch.io);
        took |= take(&self.checked, &mut batch.checked);
        took |= take(&self.answers, &mut batch.answered);
        if self.handles {
            while batch.commands.len() < INPUT_BATCH {
                match self.commands.try_recv() {
                    Ok(command) => {
                        batch.commands.push(command);
                        took = true;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Closed) => {
                        batch.commands_closed = true;
                        took = true;
                        break;
                    }
                }
            }
        }
        took
    }

    /// Feeds the session what woke the driver.
    fn handle(&mut self, batch: &mut Batch) {
        let now = Instant::now();
        if std::mem::take(&mut batch.deadline) {
            self.session.handle_timeout(now);
        }
        for io in batch.io.drain(..) {
            match io {
                Io::Connected(conn, stream) => {
                    // A connection the session has let go meanwhile: the stream is
                    // dropped (nothing was written on it) and the session ignores this.
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.opened(stream);
                    }
                    self.session.handle_input(Input::Connected(conn), now);
                }
                Io::ConnectFailed(conn, error) => self
                    .session
                    .handle_input(Input::ConnectFailed { conn, error }, now),
            }
        }
        for (conn, event) in batch.conn_events.drain(..) {
            match event {
                Event::Read(_) => {
                    if let Some(c) = self.conns.get(&conn) {
                        let bytes = c.read_bytes();
                        self.session.handle_input(Input::Bytes { conn, bytes }, now);
                    }
                }
                Event::Ended(error) => self
                    .session
                    .handle_input(Input::Closed { conn, error }, now),
            }
        }
        for checked in batch.checked.drain(..) {
            self.session.handle_input(Input::Checked(checked), now);
        }
        for (id, answer) in batch.answered.drain(..) {
            self.session
                .handle_input(Input::WindowAnswered { id, answer }, now);
        }
        for report in batch.reports.drain(..) {
            match report {
                Report::Completed { id, outcome } => {
                    // A completion for a delivery the session no longer tracks (after a
                    // shutdown timeout) has nothing left to do.
                    let _ = self.session.complete(id, outcome, now);
                }
                Report::Consumer(attached) => self.session.set_consumer(attached, now),
            }
        }
        for command in batch.commands.drain(..) {
            match command {
                Command::Send {
                    msg_api,
                    biz_content,
                    reply,
                } => match self.session.send(&msg_api, &biz_content, now) {
                    Ok(stream_id) => {
                        self.app.sends.insert(stream_id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
                Command::Shutdown => self.session.shutdown(now),
            }
        }
        if std::mem::take(&mut batch.commands_closed) {
            // Every handle is gone: nobody can use the client any more.
            self.handles = false;
            self.session.shutdown(now);
        }
    }

    /// The session is done: closes what is left (none expected: the session closes its
    /// connections before it is done), answers the sends still waiting, abandons the
    /// shared-window queries still out, and waits for every connection, checking and
    /// query task to end.
    async fn end(self) {
        let Pump {
            mut app,
            tasks,
            conns,
            mut closing,
            checkers,
            io,
            checked,
            commands,
            reports,
            window,
            answers,
            ..
        } = self;
        closing.extend(conns.into_values().filter_map(|c| c.close(&tasks)));
        // Nobody reads any more: a task sending something is told so at once rather
        // than waiting for room (a send waiting for its reply gets `Closed`).
        drop((io, checked, commands, reports, answers));
        for (_, reply) in app.sends.drain() {
            let _ = reply.send(Err(SendError::ConnectionLost));
        }
        // The checking tasks end once the jobs are gone; the connections within their
        // close grace.
        if let Some(Checkers { jobs, tasks }) = checkers {
            drop(jobs);
            for task in tasks {
                task.await;
            }
        }
        for task in closing {
            task.await;
        }
        if let Some(Window { stop, queries, .. }) = window {
            drop(stop);
            for task in queries {
                task.await;
            }
        }
    }
}

/// Takes an item of `channel` into `into` if one is ready (else registers to be woken
/// when one is); whether it took one. An ended channel takes nothing: the driver holds
/// a sender of the connections' channel, polls the checked frames' only while the
/// checking tasks (which hold one) run, and the reports' ends only when the client and
/// everything it handed out are gone, the commands' first (which ends the session).
fn poll_take<T>(
    channel: Pin<&mut Receiver<T>>,
    cx: &mut std::task::Context<'_>,
    into: &mut Vec<T>,
) -> bool {
    match channel.poll_next(cx) {
        Poll::Ready(Some(item)) => {
            into.push(item);
            true
        }
        Poll::Ready(None) | Poll::Pending => false,
    }
}

/// Moves what waits in `channel` into `into`, up to [`INPUT_BATCH`] in all; whether
/// it moved anything.
fn take<T>(channel: &Receiver<T>, into: &mut Vec<T>) -> bool {
    let before = into.len();
    while into.len() < INPUT_BATCH {
        match channel.try_recv() {
            Ok(item) => into.push(item),
            Err(_) => break,
        }
    }
    into.len() > before
}
