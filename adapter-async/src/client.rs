//! The client on any [`Runtime`]: [`Client::connect`] (or [`Client::start`] to watch
//! the first connection), [`Client::run`], [`Client::deliveries`], [`Client::send`],
//! [`Client::events`], [`Client::shutdown`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use alipay_msg_core::client::{
    ClientConfig, ClientError, ClientEvent, ClientSession, Message, Outcome,
};
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_core::register::RegisterError;
use alipay_msg_core::window::AsyncWindowStore;
use async_channel::{Receiver, Sender};
use futures_channel::oneshot;
use futures_lite::{future, FutureExt};

use crate::deliveries::{reports_capacity, Deliveries, DeliveryQueue, Report};
use crate::driver::{unix_ms, AppSide, Command, Driver, COMMAND_QUEUE};
use crate::events::{Events, EVENT_CAPACITY};
use crate::network::Network;
use crate::runtime::{Runtime, Tasks};

/// Why a client call failed (the same type on every runtime).
pub type Error = ClientError;

/// A client of the message channel on the runtime `R`. Cheap to share behind an
/// `Arc`; every method takes `&self`. The runtime crates name it for their runtime
/// (`alipay_msg_tokio::Client`, `alipay_msg_async_std::Client`).
///
/// Dropping the client shuts the session down as [`Client::shutdown`] does, without
/// waiting (a [`Deliveries`] then ends).
pub struct Client<R: Runtime> {
    commands: Sender<Command>,
    reports: Sender<Report>,
    deliveries: Mutex<Option<Receiver<Message>>>,
    events: async_broadcast::Sender<ClientEvent>,
    /// Keeps the event channel open while nobody subscribes; makes subscribers.
    subscribers: async_broadcast::InactiveReceiver<ClientEvent>,
    /// Subscribed before the driver started: what the first [`Client::events`] returns.
    first_events: Mutex<Option<async_broadcast::Receiver<ClientEvent>>>,
    /// Closes when the driver task has ended (nothing is ever sent).
    driver_done: Receiver<()>,
    /// Set by [`Client::run`]: closes when `run` returns, after its last handler.
    handlers_done: Mutex<Option<Receiver<()>>>,
    /// The platform's refusal, when it stopped the client after connecting.
    fatal: Arc<Mutex<Option<RegisterError>>>,
    max_in_flight: usize,
    tasks: Tasks<R>,
}

/// Locks `mutex`. Nothing panics while holding one of the client's locks (each guards a
/// `take`, a `clone` or a store), so a poisoned lock cannot happen; were it to, the
/// data inside is still consistent, and it is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<R: Runtime> Client<R> {
    /// Validates `config`, connects, and returns once the first connection is open.
    ///
    /// Misconfigurations the client can see (keys, certificates, app id) fail at once
    /// with [`Error::Config`]; those only the platform can see (it refuses the
    /// signature, app id or certificate) fail with [`Error::Refused`] after the first
    /// register. Network failures are retried with backoff until
    /// `config.first_connect_timeout` (default 30 s) passes; then the session gives up
    /// and the call fails with [`Error::ConnectTimeout`], which names the last attempt's
    /// failure (a typed [`DisconnectReason`](alipay_msg_core::client::DisconnectReason)).
    /// Dropping the future stops the attempts. The events of the attempts (and key
    /// warnings) go to the first [`Client::events`] subscription; to watch them while
    /// connecting, use [`Client::start`]. Called outside the runtime `R`
    /// ([`Runtime::current`]): [`Error::Io`].
    ///
    /// Messages that arrive before [`Client::run`] or [`Client::deliveries`] is called
    /// wait for it up to `config.consumer_grace` (default 500 ms); a client that never
    /// calls either (one that only sends) answers them FAIL after that, and the
    /// platform redelivers them to a connection that consumes.
    pub async fn connect(config: ClientConfig) -> Result<Self, Error> {
        Self::start(config)?.connected().await
    }

    /// [`Client::connect`] with the given TLS configuration and proxy ([`Network`];
    /// `connect` uses [`Network::default`]: webpki roots, the proxy from the
    /// environment). A certificate the configuration does not trust fails each attempt
    /// with [`io::ErrorKind::InvalidData`](std::io::ErrorKind::InvalidData) (logged at
    /// `warn` with rustls' reason), so the call ends in [`Error::ConnectTimeout`] naming
    /// it; a proxy environment variable that is not a proxy URL fails at once
    /// ([`Error::Io`]).
    pub async fn connect_with_network(
        config: ClientConfig,
        network: Network,
    ) -> Result<Self, Error> {
        Self::start_with_network(config, network)?.connected().await
    }

    /// Validates `config` and starts connecting on a task of the current runtime:
    /// [`Client::connect`] in two steps, so that the first connection's events can be
    /// watched ([`Connecting::events`]) and the wait abandoned (drop the
    /// [`Connecting`]).
    pub fn start(config: ClientConfig) -> Result<Connecting<R>, Error> {
        Self::start_with_network(config, Network::default())
    }

    /// [`Client::start`] with the given TLS configuration and proxy
    /// ([`Client::connect_with_network`]).
    pub fn start_with_network(
        config: ClientConfig,
        network: Network,
    ) -> Result<Connecting<R>, Error> {
        let runtime = R::current().map_err(|e| Error::Io(format!("no async runtime: {e}")))?;
        Self::start_with_runtime(runtime, config, network)
    }

    /// [`Client::connect_with_network`] with a duplicate window shared by every
    /// instance of the service (module [`alipay_msg_core::window`]): each message is
    /// claimed in `window` before its handler runs and its success recorded there before
    /// the SUCCESS ack; one another instance holds, or met while the store is away, is
    /// answered FAIL (the platform redelivers it). Each query runs on a task of its own,
    /// never on the driver's. Settings (lease, window, what to do when the store is
    /// away) are `config.shared_window`, the defaults when it is `None`. `window` is
    /// typically `alipay_msg_redis::AsyncRedisWindow`, made inside the runtime.
    pub async fn connect_with_window(
        config: ClientConfig,
        network: Network,
        window: Arc<dyn AsyncWindowStore>,
    ) -> Result<Self, Error> {
        Self::start_with_window(config, network, window)?
            .connected()
            .await
    }

    /// [`Client::start_with_network`] with a shared duplicate window
    /// ([`Client::connect_with_window`]).
    pub fn start_with_window(
        config: ClientConfig,
        network: Network,
        window: Arc<dyn AsyncWindowStore>,
    ) -> Result<Connecting<R>, Error> {
        let runtime = R::current().map_err(|e| Error::Io(format!("no async runtime: {e}")))?;
        Self::launch(runtime, config, network, Some(window))
    }

    /// [`Client::start_with_network`] on the given runtime value rather than the
    /// current one.
    pub fn start_with_runtime(
        runtime: R,
        config: ClientConfig,
        network: Network,
    ) -> Result<Connecting<R>, Error> {
        Self::launch(runtime, config, network, None)
    }

    /// Starts the driver. A `shared_window` setting without a store is refused
    /// ([`Error::Config`]); a store without the setting uses its defaults.
    fn launch(
        runtime: R,
        mut config: ClientConfig,
        network: Network,
        window: Option<Arc<dyn AsyncWindowStore>>,
    ) -> Result<Connecting<R>, Error> {
        config
            .match_window_store(window.is_some())
            .map_err(Error::Config)?;
        let connector = network.connector()?;
        let max_in_flight = config.max_in_flight;
        // Nonces, websocket keys and masks, jitter: seeded from the operating system.
        let mut seed = [0u8; 32];
        rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut seed)
            .map_err(|e| Error::Io(format!("no random seed from the operating system: {e}")))?;
        let mut session = ClientSession::new(config, seed, Instant::now(), unix_ms())?;
        // No consumer until `run` or `deliveries`: a client that only sends answers the
        // platform's pushes FAIL after `consumer_grace` instead of holding them.
        session.set_consumer(false, Instant::now());
        let (commands, command_rx) = async_channel::bounded(COMMAND_QUEUE);
        let (reports, report_rx) = async_channel::bounded(reports_capacity(max_in_flight));
        let (delivery_tx, delivery_rx) = async_channel::bounded(max_in_flight);
        let (mut events, subscribers) = async_broadcast::broadcast(EVENT_CAPACITY);
        events.set_overflow(true);
        let first_events = subscribers.clone();
        let subscribers = subscribers.deactivate();
        let (connected_tx, connected_rx) = oneshot::channel();
        let (driver_done_tx, driver_done) = async_channel::bounded::<()>(1);
        let fatal = Arc::new(Mutex::new(None));
        let tasks = Tasks::new(runtime);
        let driver = Driver {
            session,
            connector,
            commands: command_rx,
            reports: report_rx,
            app: AppSide {
                deliveries: delivery_tx,
                events: events.clone(),
                connected: Some(connected_tx),
                fatal: fatal.clone(),
                sends: Default::default(),
            },
            tasks: tasks.clone(),
            window,
        };
        tasks.detach(driver.run(), driver_done_tx);
        let client = Client {
            commands,
            reports,
            deliveries: Mutex::new(Some(delivery_rx)),
            events,
            subscribers,
            first_events: Mutex::new(Some(first_events)),
            driver_done,
            handlers_done: Mutex::new(None),
            fatal,
            max_in_flight,
            tasks,
        };
        Ok(Connecting {
            client,
            connected: connected_rx,
        })
    }

    /// Runs `handler` for every verified message until the client shuts down, at most
    /// `max_in_flight` at a time, each on a task of its own — except that a message
    /// arriving alone (none waits behind it) starts on the task that awaits `run`, in
    /// its context (tracing span, task-locals), and moves to a task of its own when its
    /// handler first waits. At a trickle that saves a hop between tasks, about a fifth
    /// of a message's CPU (`alipay-msg bench --rate`, docs/performance.md). The price: a
    /// handler that blocks its thread before its first `.await` (synchronous I/O, long
    /// computation) holds up `run`'s dispatch of the next message that long, where on a
    /// task of its own another worker could have taken it — do blocking work with your
    /// runtime's `spawn_blocking`, as async code should anyway. The client's connection
    /// runs on its own task either way. `Ok` acks SUCCESS; `Err` or
    /// a panic acks FAIL (logged at `warn`; the session publishes
    /// [`ClientEvent::HandlerFailed`]) and the platform delivers the message again
    /// later. Returns after shutdown, once every handler has finished; returns
    /// [`Error::Refused`] when the platform refused the configuration on a reconnect,
    /// [`Error::AlreadyConsuming`] when `run` or [`Client::deliveries`] was called
    /// before.
    ///
    /// Cancelling `run` (dropping its future) detaches the consumer and cancels the
    /// handlers it started: every message it had taken and not finished is answered
    /// FAIL, and the platform delivers it again.
    pub async fn run<F, Fut, E>(&self, handler: F) -> Result<(), Error>
    where
        F: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let mut queue = self.take_deliveries()?;
        // `done` closes when this function returns (or its future is dropped).
        let (done, done_rx) = async_channel::bounded::<()>(1);
        *lock(&self.handlers_done) = Some(done_rx);
        // Each handler races `cancelled`, which closes when `cancel` drops: when `run`
        // is cancelled, not when it returns (it waits for the handlers first).
        let (cancel, cancelled) = async_channel::bounded::<()>(1);
        let handler = Arc::new(handler);
        let limit = Arc::new(async_lock::Semaphore::new(self.max_in_flight));
        while let Some((message, answer)) = queue.next().await {
            let permit = limit.acquire_arc().await;
            let (handler, cancelled) = (handler.clone(), cancelled.clone());
            let handling = async move {
                let msg_id = message.msg_id().to_owned();
                // A panic in the handler's call (before its future exists) is caught
                // too: it may run on `run`'s own task (a lone message, below).
                let handler =
                    AssertUnwindSafe(async move { handler(message).await }).catch_unwind();
                let handled = async { Some(handler.await) }.or(async {
                    // Nothing is ever sent: this returns when `run` is cancelled.
                    let _ = cancelled.recv().await;
                    None
                });
                // Cancelled: `answer` is dropped unsent, which answers FAIL.
                let Some(result) = handled.await else { return };
                let outcome = match result {
                    Ok(Ok(())) => Outcome::Success,
                    Ok(Err(e)) => Outcome::Failure(e.to_string()),
                    Err(panic) => Outcome::from_panic(&*panic),
                };
                if let Outcome::Failure(error) = &outcome {
                    tracing::warn!(%msg_id, %error, "handler failed; acking FAIL");
                }
                answer.send(outcome);
            };
            // A lone message (none waits behind it: a trickle) is handled right here as
            // far as it goes without waiting; only a handler that waits, or messages
            // that queue up (a burst, where they spread over the workers), get a task
            // of their own. A hop to a new task and back costs a thread wake-up at a
            // trickle, about the price of the signature check.
            let mut handling = Box::pin(handling);
            if queue.is_empty() && future::poll_once(&mut handling).await.is_some() {
                drop(permit);
                continue;
            }
            // The permit comes back once the task has ended.
            self.tasks.detach(handling, permit);
        }
        // The driver has ended: let the handlers still running finish (each task holds
        // a permit until it has ended).
        let mut finished = Vec::with_capacity(self.max_in_flight);
        for _ in 0..self.max_in_flight {
            finished.push(limit.acquire_arc().await);
        }
        drop((cancel, done));
        match lock(&self.fatal).clone() {
            Some(error) => Err(Error::Refused(error)),
            None => Ok(()),
        }
    }

    /// The verified messages as a stream of [`Incoming`](crate::Incoming), for callers
    /// who prefer pulling to [`Client::run`]. Each must be answered with
    /// [`Incoming::ack`](crate::Incoming::ack) or [`Incoming::fail`](crate::Incoming::fail);
    /// dropping one unanswered answers FAIL, and dropping the stream answers FAIL the
    /// messages waiting in it. At most `max_in_flight` may be unanswered at once: then
    /// no more arrive (the platform holds them). [`Error::AlreadyConsuming`] when
    /// `deliveries` or [`Client::run`] was called before.
    pub fn deliveries(&self) -> Result<Deliveries, Error> {
        Ok(Deliveries::new(self.take_deliveries()?))
    }

    fn take_deliveries(&self) -> Result<DeliveryQueue, Error> {
        let receiver = lock(&self.deliveries)
            .take()
            .ok_or(Error::AlreadyConsuming)?;
        Ok(DeliveryQueue::attach(receiver, self.reports.clone()))
    }

    /// Sends a message to the platform (PRODUCE) and waits for its PRODUCE_ACK (at
    /// most `send_timeout`). `biz_content` must serialise to a JSON object
    /// ([`Error::Json`] otherwise); [`Error::Send`] says why there is no answer
    /// (timeout, connection lost, not connected, too many pending); [`Error::Closed`]
    /// after shutdown.
    pub async fn send(
        &self,
        msg_api: &str,
        biz_content: &impl serde::Serialize,
    ) -> Result<ProduceAck, Error> {
        let biz_content = serde_json::to_string(biz_content)?;
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Send {
                msg_api: msg_api.to_owned(),
                biz_content,
                reply,
            })
            .await
            .map_err(|_| Error::Closed)?;
        Ok(answer.await.map_err(|_| Error::Closed)??)
    }

    /// Connection state changes, rejections, duplicates, handler failures. The first
    /// subscription holds every event since start-up ([`ClientEvent::KeyWarning`]s, the
    /// attempts of the first connection); later ones start from the call. Each
    /// subscriber holds up to 1024 events; one that lags loses the oldest
    /// ([`Events::missed`]).
    pub fn events(&self) -> Events {
        let first = lock(&self.first_events).take();
        Events::new(first.unwrap_or_else(|| self.subscribers.activate_cloned()))
    }

    /// Stops taking new messages, lets the handlers in flight finish and their acks go
    /// out (up to `shutdown_timeout`), closes the connection (within a second) and waits
    /// for every task of the client to end. Afterwards [`Events::recv`] returns `None`
    /// once a subscriber has read what is left. Calling it again (or concurrently)
    /// waits for the same end.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
        // Nothing is ever sent: each returns when its sender has gone.
        let _ = self.driver_done.recv().await;
        let handlers_done = lock(&self.handlers_done).clone();
        if let Some(done) = handlers_done {
            let _ = done.recv().await;
        }
        self.events.close();
    }

    /// This client's tasks that have not ended: the driver, a connection's opening and
    /// closing tasks, the checking tasks, the shared-window queries and the handler
    /// tasks. Zero once
    /// [`Client::shutdown`] has returned. For tests.
    #[doc(hidden)]
    pub fn live_tasks(&self) -> usize {
        self.tasks.live()
    }
}

impl<R: Runtime> std::fmt::Debug for Client<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("max_in_flight", &self.max_in_flight)
            .field("live_tasks", &self.tasks.live())
            .finish_non_exhaustive()
    }
}

/// A client on its way to the first connection ([`Client::start`]): watch its
/// [`Connecting::events`], then await [`Connecting::connected`]. Dropping it stops the
/// attempts.
pub struct Connecting<R: Runtime> {
    client: Client<R>,
    connected: oneshot::Receiver<Result<(), Error>>,
}

impl<R: Runtime> Connecting<R> {
    /// The client's events from the start ([`Client::events`]): key warnings, then each
    /// attempt of the first connection and how it failed (cause, next delay).
    pub fn events(&self) -> Events {
        self.client.events()
    }

    /// Waits for the first connection. Fails with [`Error::Refused`] when the platform
    /// refuses the configuration, and with [`Error::ConnectTimeout`] (naming the last
    /// attempt's failure) when `first_connect_timeout` passes first; the attempts have
    /// stopped (every task of the client has ended) when it returns an error.
    pub async fn connected(self) -> Result<Client<R>, Error> {
        match self.connected.await {
            Ok(Ok(())) => Ok(self.client),
            Ok(Err(e)) => {
                self.client.shutdown().await;
                Err(e)
            }
            // The driver ended without an answer.
            Err(_) => Err(Error::Closed),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Connecting<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connecting")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}
