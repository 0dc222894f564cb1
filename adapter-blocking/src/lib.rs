//! The `alipay-msg` client on plain threads: no async runtime.
//!
//! ```no_run
//! use alipay_msg_blocking::{Client, ClientConfig, Credentials};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let credentials = Credentials::public_key(
//!     &std::fs::read_to_string("app_private_key.pem")?,
//!     &std::fs::read_to_string("alipay_public_key.pem")?,
//! )?;
//! let client = Client::connect(ClientConfig::new("2021000000000001", credentials))?;
//! client.run(|msg| {
//!     println!("{} {}", msg.msg_api(), msg.biz_content());
//!     Ok::<(), std::io::Error>(()) // Ok acks SUCCESS; Err or a panic acks FAIL
//! })?;
//! # Ok(())
//! # }
//! ```
//!
//! # Threads
//!
//! - `alipay-msg-io`: owns the protocol state machine
//!   ([`alipay_msg_core::client::ClientSession`], which speaks `register.do`, the
//!   websocket upgrade and the websocket framing over bytes) and its sockets; every
//!   read and write happens here.
//! - `alipay-msg-connect`: one short-lived thread per connection the session opens
//!   (TCP, and TLS with rustls), so a slow platform never blocks the I/O thread.
//! - `alipay-msg-check`: `ClientConfig::check_parallelism` of them (by default one per
//!   core, at most 4, and none on a single core, where the I/O thread checks), decoding
//!   frames and checking their signatures for the session, which takes the results
//!   back in any order and restores the order it read the frames in.
//! - `alipay-msg-handler-N`: the handler pool of [`Client::run`] ([`PoolConfig`]).
//! - `alipay-msg-window`: with a shared duplicate window
//!   ([`Client::connect_with_window`]) only, 4 threads asking the store (e.g. Redis)
//!   the session's claim / record / release queries.
//!
//! [`Client::shutdown`] joins all of them: no thread of the client outlives it.
//!
//! # Backpressure
//!
//! At most `max_in_flight` (default 64) deliveries await their handler's answer; at
//! that point the I/O thread stops reading the socket and the platform holds further
//! messages until handlers finish. Nothing is dropped.
//!
//! The protocol itself lives in [`alipay_msg_core`], re-exported as [`core`].

mod events;
mod io_thread;
mod lanes;
pub use alipay_msg_network as network;
mod pool;
mod transport;
mod window;

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use alipay_msg_core::client::{ClientSession, DeliverError, DeliveryId, Outcome};
use alipay_msg_core::window::WindowStore;

pub use alipay_msg_core as core;
pub use alipay_msg_core::client::{ClientConfig, ClientError, ClientEvent, Credentials, Message};
pub use alipay_msg_core::produce_ack::ProduceAck;
pub use events::{Events, EVENT_QUEUE};
pub use network::{Network, Proxy};
pub use pool::PoolConfig;

use io_thread::{Input, IoThread, Shared};
use pool::Pool;

/// Why a client call failed (the same type on every runtime).
pub type Error = ClientError;

/// Locks `mutex`, recovering from poisoning: no lock of this crate is held while
/// application code runs, so a poisoned lock still holds consistent data.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// The client whose handler pool this thread belongs to (0: none).
    static HANDLER_OF: Cell<u64> = const { Cell::new(0) };
}

pub(crate) fn mark_handler_thread(client_id: u64) {
    HANDLER_OF.with(|c| c.set(client_id));
}

fn on_handler_thread_of(client_id: u64) -> bool {
    HANDLER_OF.with(Cell::get) == client_id
}

/// Numbers clients, to recognise their handler threads.
static NEXT_CLIENT_ID: AtomicU64 = AtomicU64::new(1);

/// A connected client. Share it between threads behind an `Arc`: every method takes
/// `&self`. Dropping it shuts it down and waits, as [`Client::shutdown`] does (except
/// when the last handle is dropped on one of its own handler threads: then the
/// shutdown starts and the threads end on their own).
pub struct Client {
    id: u64,
    inputs: Sender<Input>,
    deliveries: Mutex<Option<Receiver<Message>>>,
    events: Arc<events::EventHub>,
    /// Subscribed before the I/O thread started: what the first [`Client::events`]
    /// returns.
    first_events: Mutex<Option<Events>>,
    io: Mutex<Option<JoinHandle<()>>>,
    shared: Arc<Shared>,
    pool_config: PoolConfig,
    pool: Mutex<PoolSlot>,
}

/// The handler pool of [`Client::run`], once there is one.
enum PoolSlot {
    NotStarted,
    Running(Arc<Pool>),
    /// [`Client::shutdown`] ran: no pool may start any more.
    Closed,
}

impl Client {
    /// Validates `config`, connects, and returns once the first connection is open,
    /// with the default [`PoolConfig`].
    ///
    /// Misconfigurations the client can see (keys, certificates, app id) fail at once
    /// with [`Error::Config`]; those only the platform can see (it refuses the
    /// signature, app id or certificate) fail with [`Error::Refused`] after the first
    /// register. Network failures are retried with backoff (each attempt bounded by
    /// `config.connect_timeout`) until `config.first_connect_timeout` (default 30 s;
    /// `None`: for ever) passes; then the call fails with [`Error::ConnectTimeout`],
    /// which names the last attempt's failure (a typed
    /// [`core::client::DisconnectReason`], e.g. `Network(ConnectionRefused)`). The
    /// events of the attempts (and key warnings) go to the first [`Client::events`]
    /// subscription; to watch them while connecting, use [`Client::start`].
    ///
    /// Messages that arrive before [`Client::run`] or [`Client::deliveries`] is called
    /// wait for it up to `config.consumer_grace` (default 500 ms); a client that never
    /// calls either (one that only sends) answers them FAIL after that, and the
    /// platform redelivers them to a connection that consumes.
    pub fn connect(config: ClientConfig) -> Result<Client, Error> {
        Client::launch(
            config,
            PoolConfig::default(),
            Network::default(),
            None,
            None,
        )?
        .connected()
    }

    /// [`Client::connect`] with the given TLS configuration and proxy ([`Network`];
    /// `connect` uses [`Network::default`]: webpki roots, the proxy from the
    /// environment). A certificate the configuration does not trust fails each attempt
    /// with [`std::io::ErrorKind::InvalidData`] (logged at `warn` with rustls' reason),
    /// so the call ends in [`Error::ConnectTimeout`] naming it; a proxy environment
    /// variable that is not a proxy URL fails at once ([`Error::Io`]).
    pub fn connect_with_network(config: ClientConfig, network: Network) -> Result<Client, Error> {
        Client::launch(config, PoolConfig::default(), network, None, None)?.connected()
    }

    /// [`Client::connect_with_network`] with a handler pool of the given size
    /// ([`Client::connect_with`]).
    pub fn connect_with_pool_and_network(
        config: ClientConfig,
        pool: PoolConfig,
        network: Network,
    ) -> Result<Client, Error> {
        Client::launch(config, pool, network, None, None)?.connected()
    }

    /// Validates `config` and starts connecting on the client's I/O thread, with the
    /// default [`PoolConfig`]: [`Client::connect`] in two steps, so that the first
    /// connection's events can be watched ([`Connecting::events`]) before waiting
    /// ([`Connecting::connected`]).
    pub fn start(config: ClientConfig) -> Result<Connecting, Error> {
        Client::launch(
            config,
            PoolConfig::default(),
            Network::default(),
            None,
            None,
        )
    }

    /// [`Client::start`] with a handler pool of the given size for [`Client::run`].
    pub fn start_with(config: ClientConfig, pool: PoolConfig) -> Result<Connecting, Error> {
        Client::launch(config, pool, Network::default(), None, None)
    }

    /// [`Client::start`] with a handler pool and the given TLS configuration and proxy
    /// ([`Client::connect_with_network`]).
    pub fn start_with_network(
        config: ClientConfig,
        pool: PoolConfig,
        network: Network,
    ) -> Result<Connecting, Error> {
        Client::launch(config, pool, network, None, None)
    }

    /// [`Client::connect`], giving up after `timeout` (it replaces
    /// `config.first_connect_timeout`) with [`Error::ConnectTimeout`] (which names the
    /// last reason a connection attempt failed). The client started for the attempt is
    /// shut down before this returns.
    pub fn connect_timeout(config: ClientConfig, timeout: Duration) -> Result<Client, Error> {
        Client::launch(
            config,
            PoolConfig::default(),
            Network::default(),
            Some(timeout),
            None,
        )?
        .connected()
    }

    /// [`Client::connect`] with a handler pool of the given size for [`Client::run`].
    pub fn connect_with(config: ClientConfig, pool: PoolConfig) -> Result<Client, Error> {
        Client::launch(config, pool, Network::default(), None, None)?.connected()
    }

    /// [`Client::connect_with`] with the time limit of [`Client::connect_timeout`].
    pub fn connect_with_timeout(
        config: ClientConfig,
        pool: PoolConfig,
        timeout: Duration,
    ) -> Result<Client, Error> {
        Client::launch(config, pool, Network::default(), Some(timeout), None)?.connected()
    }

    /// [`Client::connect_with_pool_and_network`] with a duplicate window shared by
    /// every instance of the service (module [`core::window`]): each message is claimed
    /// in `window` before its handler runs, its success recorded there before the
    /// SUCCESS ack, a failure's claim released; a message another instance holds is
    /// acked FAIL, one it handled is acked SUCCESS without the handler. The store is
    /// asked on `alipay-msg-window` threads (4), never on the I/O thread. Settings
    /// (lease, window, what to do when the store is away) are
    /// `config.shared_window`, the defaults when it is `None`. `window` is typically
    /// `alipay_msg_redis::RedisWindow` in an `Arc`.
    pub fn connect_with_window(
        config: ClientConfig,
        pool: PoolConfig,
        network: Network,
        window: Arc<dyn WindowStore>,
    ) -> Result<Client, Error> {
        Client::launch(config, pool, network, None, Some(window))?.connected()
    }

    /// [`Client::start_with_network`] with a shared duplicate window
    /// ([`Client::connect_with_window`]).
    pub fn start_with_window(
        config: ClientConfig,
        pool: PoolConfig,
        network: Network,
        window: Arc<dyn WindowStore>,
    ) -> Result<Connecting, Error> {
        Client::launch(config, pool, network, None, Some(window))
    }

    fn launch(
        config: ClientConfig,
        pool_config: PoolConfig,
        network: Network,
        timeout: Option<Duration>,
        window: Option<Arc<dyn WindowStore>>,
    ) -> Result<Connecting, Error> {
        let connector = network.connector()?;
        let mut config = config;
        if timeout.is_some() {
            config.first_connect_timeout = timeout;
        }
        config
            .match_window_store(window.is_some())
            .map_err(Error::Config)?;
        let max_in_flight = config.max_in_flight;
        // The session's random source (nonces, websocket keys and masks, jitter).
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        let mut session = ClientSession::new(config, seed, Instant::now(), io_thread::unix_ms())?;
        // No consumer until `run` or `deliveries`: a client that only sends answers the
        // platform's pushes FAIL after `consumer_grace` instead of holding them.
        session.set_consumer(false, Instant::now());
        let (inputs, input_rx) = mpsc::channel();
        let (delivery_tx, delivery_rx) = mpsc::sync_channel(max_in_flight);
        let (connected_tx, connected_rx) = mpsc::sync_channel(1);
        let events = Arc::new(events::EventHub::default());
        let first_events = events.subscribe();
        let shared = Arc::new(Shared::default());
        let io = IoThread::new(
            session,
            input_rx,
            inputs.clone(),
            delivery_tx,
            events.clone(),
            connected_tx,
            shared.clone(),
        )
        .with_connector(connector);
        let io = match window {
            Some(window) => io.with_window(window).map_err(Error::Io)?,
            None => io,
        };
        let io = std::thread::Builder::new()
            .name("alipay-msg-io".to_owned())
            .spawn(move || io.run())
            .map_err(|e| Error::Io(format!("could not start the I/O thread: {e}")))?;
        let client = Client {
            id: NEXT_CLIENT_ID.fetch_add(1, Ordering::Relaxed),
            inputs,
            deliveries: Mutex::new(Some(delivery_rx)),
            events,
            first_events: Mutex::new(Some(first_events)),
            io: Mutex::new(Some(io)),
            shared,
            pool_config,
            pool: Mutex::new(PoolSlot::NotStarted),
        };
        Ok(Connecting {
            client,
            connected: connected_rx,
        })
    }

    /// Runs `handler` for every verified message until the client shuts down, on the
    /// handler pool ([`PoolConfig`]). `Ok` acks SUCCESS; `Err` or a panic acks FAIL
    /// (and the session publishes [`ClientEvent::HandlerFailed`]); the platform delivers a failed
    /// message again later.
    ///
    /// Blocks the calling thread, which hands messages to the pool. Returns after
    /// shutdown, once every handler has finished and every handler thread has been
    /// joined; returns [`Error::Refused`] when the platform refused the configuration
    /// on a reconnect, [`Error::AlreadyConsuming`] when `run` or
    /// [`Client::deliveries`] was called before.
    pub fn run<F, E>(&self, handler: F) -> Result<(), Error>
    where
        F: Fn(Message) -> Result<(), E> + Send + Sync + 'static,
        E: std::fmt::Display,
    {
        let deliveries = self.take_deliveries()?;
        let pool = {
            let mut slot = lock(&self.pool);
            match &*slot {
                PoolSlot::Closed => return self.outcome(),
                PoolSlot::Running(_) => return Err(Error::AlreadyConsuming),
                PoolSlot::NotStarted => {}
            }
            let pool = Pool::new(self.pool_config, self.id);
            *slot = PoolSlot::Running(pool.clone());
            pool
        };
        let handler = Arc::new(handler);
        let (inputs, jobs) = (self.inputs.clone(), pool.clone());
        let execute = move |message: Message| {
            let handler = handler.clone();
            // A job the pool drops unrun answers FAIL (the platform redelivers).
            let answer = Answer::new(message.delivery_id(), inputs.clone());
            let job = Box::new(move || {
                let msg_id = message.msg_id().to_owned();
                let outcome = match catch_unwind(AssertUnwindSafe(|| handler(message))) {
                    Ok(Ok(())) => Outcome::Success,
                    Ok(Err(e)) => Outcome::Failure(e.to_string()),
                    Err(panic) => Outcome::from_panic(&*panic),
                };
                if let Outcome::Failure(error) = &outcome {
                    tracing::warn!(%msg_id, %error, "handler failed");
                }
                answer.send(outcome);
            });
            jobs.execute(job).map_err(|_| DeliverError::Closed)
        };
        let execute = Arc::new(execute);
        let hand_over = |message| {
            if let Err(reason) = execute(message) {
                let reason = format!("the handler pool takes no more messages ({reason})");
                // Closed by shutdown, or no thread could be started; the dropped job
                // answered its message FAIL, and the platform redelivers it.
                tracing::warn!(%reason, "a message could not be handed to the handler pool");
            }
        };
        {
            // From now on the I/O thread hands messages to the pool itself. What it put
            // in the channel before goes to the pool first, under the same lock, so
            // that the pool takes messages in the order they were delivered.
            let mut sink = lock(&self.shared.handlers);
            while let Ok(message) = deliveries.try_recv() {
                if self.shared.finished.load(Ordering::SeqCst) {
                    break; // as below
                }
                hand_over(message);
            }
            let direct = execute.clone();
            *sink = Some(Box::new(move |message| direct(message)));
        }
        // Attached after the sink is in place: held messages go straight to the pool.
        let _ = self.inputs.send(Input::Consumer(true));
        // The channel closes when the I/O thread ends.
        while let Ok(message) = deliveries.recv() {
            if self.shared.finished.load(Ordering::SeqCst) {
                // Buffered messages can no longer be acknowledged: the platform
                // redelivers them.
                break;
            }
            hand_over(message);
        }
        drop(deliveries);
        // What the handler holds is let go when `run` returns, as the caller expects.
        lock(&self.shared.handlers).take();
        pool.join();
        self.outcome()
    }

    /// `Err(Refused)` when the platform stopped the client.
    fn outcome(&self) -> Result<(), Error> {
        match lock(&self.shared.fatal).clone() {
            Some(error) => Err(Error::Refused(error)),
            None => Ok(()),
        }
    }

    /// The verified messages as a blocking iterator of [`Incoming`], for callers who
    /// prefer pulling to [`Client::run`]. Each must be answered with [`Incoming::ack`]
    /// or [`Incoming::fail`]; dropping one unanswered answers FAIL. At most
    /// `max_in_flight` may be unanswered at once: then no more arrive.
    pub fn deliveries(&self) -> Result<Deliveries, Error> {
        let receiver = self.take_deliveries()?;
        let _ = self.inputs.send(Input::Consumer(true));
        Ok(Deliveries {
            receiver: Some(receiver),
            inputs: self.inputs.clone(),
            shared: self.shared.clone(),
        })
    }

    fn take_deliveries(&self) -> Result<Receiver<Message>, Error> {
        lock(&self.deliveries).take().ok_or(Error::AlreadyConsuming)
    }

    /// Sends a message to the platform (PRODUCE) and waits for its PRODUCE_ACK, at
    /// most the configured `send_timeout`. `biz_content` must serialise to a JSON
    /// object.
    pub fn send(
        &self,
        msg_api: &str,
        biz_content: &impl serde::Serialize,
    ) -> Result<ProduceAck, Error> {
        let biz_content = serde_json::to_string(biz_content)?;
        let (reply, answer) = mpsc::sync_channel(1);
        self.inputs
            .send(Input::Send {
                msg_api: msg_api.to_owned(),
                biz_content,
                reply,
            })
            .map_err(|_| Error::Closed)?;
        Ok(answer.recv().map_err(|_| Error::Closed)??)
    }

    /// A new subscription to connection changes, rejections, duplicates, handler
    /// failures and shutdown. Each subscriber keeps up to [`EVENT_QUEUE`] events; a
    /// slower one loses its oldest ([`Events::missed`]). The first subscription holds
    /// every event since start-up ([`ClientEvent::KeyWarning`]s, the attempts of the
    /// first connection); later ones start from the call.
    pub fn events(&self) -> Events {
        lock(&self.first_events)
            .take()
            .unwrap_or_else(|| self.events.subscribe())
    }

    /// Handler threads of [`Client::run`] alive now (0 before `run` and after
    /// shutdown).
    pub fn handler_threads(&self) -> usize {
        match &*lock(&self.pool) {
            PoolSlot::Running(pool) => pool.threads(),
            _ => 0,
        }
    }

    /// The most handler threads that ran at once so far (at most
    /// [`PoolConfig::max_threads`]).
    pub fn peak_handler_threads(&self) -> usize {
        match &*lock(&self.pool) {
            PoolSlot::Running(pool) => pool.peak_threads(),
            _ => 0,
        }
    }

    /// Stops taking new messages, lets the handlers in flight finish and their acks go
    /// out (up to `shutdown_timeout`), closes the connection, and joins every thread of
    /// the client: the I/O thread, connect threads, checking threads and all handler threads. Calling it
    /// again (or concurrently) waits for the same end.
    ///
    /// Called from one of this client's own handlers, it only starts the shutdown and
    /// returns (a thread cannot join itself); [`Client::run`] returns once it is done.
    pub fn shutdown(&self) {
        let _ = self.inputs.send(Input::Shutdown);
        if on_handler_thread_of(self.id) {
            return;
        }
        {
            let mut io = lock(&self.io);
            if let Some(handle) = io.take() {
                let _ = handle.join();
            }
        }
        let pool = match std::mem::replace(&mut *lock(&self.pool), PoolSlot::Closed) {
            PoolSlot::Running(pool) => Some(pool),
            _ => None,
        };
        if let Some(pool) = pool {
            pool.join();
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("pool", &self.pool_config)
            .field("finished", &self.shared.finished.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A client on its way to the first connection ([`Client::start`]): watch its
/// [`Connecting::events`], then wait with [`Connecting::connected`]. Dropping it shuts
/// the client down.
pub struct Connecting {
    client: Client,
    connected: Receiver<Result<(), Error>>,
}

impl Connecting {
    /// The client's events from the start ([`Client::events`]): key warnings, then each
    /// attempt of the first connection and how it failed (cause, next delay).
    pub fn events(&self) -> Events {
        self.client.events()
    }

    /// Waits for the first connection. Fails with [`Error::Refused`] when the platform
    /// refuses the configuration, and with [`Error::ConnectTimeout`] (naming the last
    /// attempt's failure) when `first_connect_timeout` passes first; the client has
    /// shut down (every thread joined) when it returns an error.
    pub fn connected(self) -> Result<Client, Error> {
        // The session answers: connected, refused, or given up after
        // `first_connect_timeout` (`Error::ConnectTimeout`, naming the last cause).
        match self.connected.recv() {
            Ok(Ok(())) => Ok(self.client),
            Ok(Err(e)) => {
                self.client.shutdown();
                Err(e)
            }
            Err(_) => {
                self.client.shutdown();
                Err(Error::Closed)
            }
        }
    }
}

impl std::fmt::Debug for Connecting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connecting")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// The verified messages as a blocking iterator ([`Client::deliveries`]). It ends when
/// the client has shut down. Dropping it detaches the consumer: the messages waiting in
/// it are answered FAIL at once, later ones after `consumer_grace` (the platform
/// delivers them again).
pub struct Deliveries {
    /// `None` only while dropping.
    receiver: Option<Receiver<Message>>,
    inputs: Sender<Input>,
    shared: Arc<Shared>,
}

impl Deliveries {
    /// The next message, waiting at most `timeout`. `Err(Disconnected)` once the
    /// client has shut down.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Incoming, RecvTimeoutError> {
        let receiver = self
            .receiver
            .as_ref()
            .ok_or(RecvTimeoutError::Disconnected)?;
        let message = receiver.recv_timeout(timeout)?;
        self.incoming(message).ok_or(RecvTimeoutError::Disconnected)
    }

    fn incoming(&self, message: Message) -> Option<Incoming> {
        if self.shared.finished.load(Ordering::SeqCst) {
            // Buffered, but no longer acknowledgeable: the platform redelivers it.
            return None;
        }
        Some(Incoming {
            answer: Answer::new(message.delivery_id(), self.inputs.clone()),
            message,
        })
    }
}

impl Iterator for Deliveries {
    type Item = Incoming;

    /// The next message, waiting as long as it takes; `None` once the client has shut
    /// down.
    fn next(&mut self) -> Option<Incoming> {
        let message = self.receiver.as_ref()?.recv().ok()?;
        self.incoming(message)
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        {
            // The I/O thread delivers under this lock: once the messages waiting here
            // are taken and the channel is closed, a later delivery finds it closed and
            // the session answers it FAIL itself.
            let _delivering = lock(&self.shared.handlers);
            if let Some(receiver) = self.receiver.take() {
                for message in receiver.try_iter() {
                    Answer::new(message.delivery_id(), self.inputs.clone())
                        .send(Outcome::Failure(UNTAKEN.to_owned()));
                }
            }
        }
        let _ = self.inputs.send(Input::Consumer(false));
    }
}

/// Why a message left in a dropped [`Deliveries`] was answered FAIL.
const UNTAKEN: &str = "not taken: the deliveries stream was dropped";

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries").finish_non_exhaustive()
    }
}

/// A message from [`Deliveries`], to be answered. Derefs to [`Message`]; dropping it
/// unanswered answers FAIL.
pub struct Incoming {
    message: Message,
    answer: Answer,
}

impl Incoming {
    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Handled: ack SUCCESS.
    pub fn ack(self) {
        self.answer.send(Outcome::Success);
    }

    /// Not handled: ack FAIL; the platform delivers it again later.
    pub fn fail(self, reason: impl Into<String>) {
        self.answer.send(Outcome::Failure(reason.into()));
    }
}

impl std::ops::Deref for Incoming {
    type Target = Message;
    fn deref(&self) -> &Message {
        &self.message
    }
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("message", &self.message)
            .finish()
    }
}

/// The answer one delivery owes the session: given once with [`Answer::send`], or FAIL
/// when dropped first (an [`Incoming`] dropped unanswered, a handler job the pool
/// dropped unrun), so that no delivery holds its in-flight slot for ever.
struct Answer {
    id: DeliveryId,
    /// `None` once sent.
    inputs: Option<Sender<Input>>,
}

impl Answer {
    fn new(id: DeliveryId, inputs: Sender<Input>) -> Answer {
        Answer {
            id,
            inputs: Some(inputs),
        }
    }

    fn send(mut self, outcome: Outcome) {
        self.complete(outcome);
    }

    fn complete(&mut self, outcome: Outcome) {
        if let Some(inputs) = self.inputs.take() {
            // A closed channel: the client has stopped, the platform redelivers.
            let _ = inputs.send(Input::Complete {
                id: self.id,
                outcome,
            });
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.complete(Outcome::Failure("dropped without an answer".to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn client_is_send_and_sync() {
        assert_send_sync::<Client>();
        assert_send_sync::<PoolConfig>();
        fn assert_send<T: Send>() {}
        assert_send::<Incoming>();
        assert_send::<Deliveries>();
        assert_send::<Events>();
    }

    #[test]
    fn a_bad_key_fails_at_once() {
        let error = Credentials::public_key("not a key", "neither").unwrap_err();
        let error = Error::from(error);
        assert!(matches!(error, Error::Config(_)), "{error}");
    }

    #[test]
    fn a_bad_app_id_fails_connect_at_once() {
        let credentials = Credentials::public_key(
            alipay_msg_simulator::test_keys::APP_PRIVATE_KEY,
            alipay_msg_simulator::test_keys::PLATFORM_PUBLIC_KEY,
        )
        .unwrap();
        let started = Instant::now();
        let error = Client::connect(ClientConfig::new("not-digits", credentials)).unwrap_err();
        assert!(matches!(error, Error::Config(_)), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn connect_timeout_gives_up_and_joins() {
        let credentials = Credentials::public_key(
            alipay_msg_simulator::test_keys::APP_PRIVATE_KEY,
            alipay_msg_simulator::test_keys::PLATFORM_PUBLIC_KEY,
        )
        .unwrap();
        // A port nobody listens on: every attempt is refused, and retried.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = ClientConfig::new("2021000000000001", credentials);
        config.endpoint = alipay_msg_core::endpoint::Endpoint::plain("127.0.0.1", port);
        let started = Instant::now();
        let error = Client::connect_timeout(config, Duration::from_millis(300)).unwrap_err();
        assert!(
            matches!(&error, Error::ConnectTimeout { waited, .. } if *waited == Duration::from_millis(300)),
            "{error}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
