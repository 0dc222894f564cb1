//! The async-std client: [`Client::connect`] (or [`Client::start`] to watch the first
//! connection), [`Client::run`], [`Client::deliveries`], [`Client::send`],
//! [`Client::events`], [`Client::shutdown`].

mod connection;
mod driver;
mod events;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use alipay_msg_core::client::{ClientConfig, ClientSession, Outcome};
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_core::register::RegisterError;
use async_channel::{Receiver, Sender};
use futures_channel::oneshot;
use futures_lite::{FutureExt, Stream};

pub use alipay_msg_core::client::{ClientError, ClientEvent, Message};
pub use events::Events;

use crate::network::Network;
use crate::runtime::{Task, Tasks};
use driver::{AppSide, Command, Driver};

/// Why a client call failed (the same type on every runtime).
pub type Error = ClientError;

/// Events kept for a subscriber that is not reading; past that the oldest are dropped.
const EVENT_CAPACITY: usize = 1024;

/// A connected client. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Client {
    commands: Sender<Command>,
    deliveries: Mutex<Option<Receiver<Message>>>,
    events: async_broadcast::Sender<ClientEvent>,
    /// Keeps the event channel open while nobody subscribes; makes subscribers.
    subscribers: async_broadcast::InactiveReceiver<ClientEvent>,
    /// Subscribed before the driver started: what the first [`Client::events`] returns.
    first_events: Mutex<Option<async_broadcast::Receiver<ClientEvent>>>,
    driver: Mutex<Option<Task<()>>>,
    /// Set by [`Client::run`]: closes when `run` returns, after its last handler.
    handlers_done: Mutex<Option<Receiver<()>>>,
    /// The platform's refusal, when it stopped the client after connecting.
    fatal: Arc<Mutex<Option<RegisterError>>>,
    max_in_flight: usize,
    tasks: Tasks,
}

/// Locks `mutex`. Nothing panics while holding one of the client's locks (each guards a
/// `take`, a `clone` or a store), so a poisoned lock cannot happen; were it to, the
/// data inside is still consistent, and it is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Client {
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
    /// connecting, use [`Client::start`].
    ///
    /// Messages that arrive before [`Client::run`] or [`Client::deliveries`] is called
    /// wait for it up to `config.consumer_grace` (default 500 ms); a client that never
    /// calls either (one that only sends) answers them FAIL after that, and the
    /// platform redelivers them to a connection that consumes.
    pub async fn connect(config: ClientConfig) -> Result<Client, Error> {
        Client::start(config)?.connected().await
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
    ) -> Result<Client, Error> {
        Client::start_with_network(config, network)?
            .connected()
            .await
    }

    /// Validates `config` and starts connecting on a task of its own: [`Client::connect`]
    /// in two steps, so that the first connection's events can be watched
    /// ([`Connecting::events`]) and the wait abandoned (drop the [`Connecting`]).
    pub fn start(config: ClientConfig) -> Result<Connecting, Error> {
        Client::start_with_network(config, Network::default())
    }

    /// [`Client::start`] with the given TLS configuration and proxy
    /// ([`Client::connect_with_network`]).
    pub fn start_with_network(config: ClientConfig, network: Network) -> Result<Connecting, Error> {
        let connector = network.connector()?;
        let max_in_flight = config.max_in_flight;
        // Nonces, websocket keys and masks, jitter: seeded from the operating system.
        let mut seed = [0u8; 32];
        rand_core::RngCore::try_fill_bytes(&mut rand_core::OsRng, &mut seed)
            .map_err(|e| Error::Io(format!("no random seed from the operating system: {e}")))?;
        let mut session = ClientSession::new(config, seed, Instant::now(), driver::unix_ms())?;
        // No consumer until `run` or `deliveries`: a client that only sends answers the
        // platform's pushes FAIL after `consumer_grace` instead of holding them.
        session.set_consumer(false, Instant::now());
        let (commands, command_rx) = async_channel::bounded(1024);
        let (delivery_tx, delivery_rx) = async_channel::bounded(max_in_flight);
        let (mut events, subscribers) = async_broadcast::broadcast(EVENT_CAPACITY);
        events.set_overflow(true);
        let first_events = subscribers.clone();
        let subscribers = subscribers.deactivate();
        let (connected_tx, connected_rx) = oneshot::channel();
        let fatal = Arc::new(Mutex::new(None));
        let tasks = Tasks::default();
        let driver = tasks.spawn(
            Driver {
                session,
                commands: command_rx,
                app: AppSide {
                    deliveries: delivery_tx,
                    events: events.clone(),
                    connected: Some(connected_tx),
                    fatal: fatal.clone(),
                    sends: Default::default(),
                },
                tasks: tasks.clone(),
                connector,
            }
            .run(),
        );
        let client = Client {
            commands,
            deliveries: Mutex::new(Some(delivery_rx)),
            events,
            subscribers,
            first_events: Mutex::new(Some(first_events)),
            driver: Mutex::new(Some(driver)),
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
    /// `max_in_flight` at a time, each on its own task. `Ok` acks SUCCESS; `Err` or a
    /// panic acks FAIL (and emits [`ClientEvent::HandlerFailed`]) and the platform
    /// delivers the message again later. Returns after shutdown, once every handler
    /// has finished; returns [`Error::Refused`] when the platform refused the
    /// configuration on a reconnect.
    pub async fn run<F, Fut, E>(&self, handler: F) -> Result<(), Error>
    where
        F: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let deliveries = self.take_deliveries()?;
        let _ = self.commands.send(Command::Consumer(true)).await;
        // `done` closes when this function returns (or its future is dropped).
        let (done, done_rx) = async_channel::bounded::<()>(1);
        *lock(&self.handlers_done) = Some(done_rx);
        let handler = Arc::new(handler);
        let limit = Arc::new(async_lock::Semaphore::new(self.max_in_flight));
        let mut running: Vec<Task<()>> = Vec::new();
        while let Ok(message) = deliveries.recv().await {
            let permit = limit.acquire_arc().await;
            let (handler, commands) = (handler.clone(), self.commands.clone());
            running.retain(|task| !task.is_finished());
            running.push(self.tasks.spawn(async move {
                let id = message.delivery_id();
                let msg_id = message.msg_id().to_owned();
                let result = std::panic::AssertUnwindSafe(handler(message))
                    .catch_unwind()
                    .await;
                let outcome = match result {
                    Ok(Ok(())) => Outcome::Success,
                    Ok(Err(e)) => Outcome::Failure(e.to_string()),
                    Err(panic) => Outcome::from_panic(&*panic),
                };
                // The session publishes the failure ([`ClientEvent::HandlerFailed`]).
                if let Outcome::Failure(error) = &outcome {
                    tracing::warn!(%msg_id, %error, "handler failed; acking FAIL");
                }
                let _ = commands.send(Command::Complete { id, outcome }).await;
                drop(permit);
            }));
        }
        // The driver has ended: let the handlers still running finish.
        for task in running {
            task.await;
        }
        drop(done);
        match lock(&self.fatal).clone() {
            Some(error) => Err(Error::Refused(error)),
            None => Ok(()),
        }
    }

    /// The verified messages as a stream of [`Incoming`], for callers who prefer
    /// pulling to [`Client::run`]. Each must be answered with [`Incoming::ack`] or
    /// [`Incoming::fail`]; dropping one unanswered answers FAIL.
    pub fn deliveries(&self) -> Result<Deliveries, Error> {
        let receiver = Box::pin(self.take_deliveries()?);
        send_soon(&self.commands, &self.tasks, Command::Consumer(true));
        Ok(Deliveries {
            receiver,
            commands: self.commands.clone(),
            tasks: self.tasks.clone(),
        })
    }

    fn take_deliveries(&self) -> Result<Receiver<Message>, Error> {
        lock(&self.deliveries).take().ok_or(Error::AlreadyConsuming)
    }

    /// Sends a message to the platform (PRODUCE) and waits for its PRODUCE_ACK.
    /// `biz_content` must serialise to a JSON object.
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
    /// subscriber holds up to 1024 events; one that lags loses the oldest.
    pub fn events(&self) -> Events {
        let first = lock(&self.first_events).take();
        Events::new(first.unwrap_or_else(|| self.subscribers.activate_cloned()))
    }

    /// Stops taking new messages, lets the handlers in flight finish and their acks go
    /// out (up to `shutdown_timeout`), closes the connection and waits for every task of
    /// the client to end. Afterwards [`Events::recv`] returns `None` once a subscriber
    /// has read what is left.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
        let driver = lock(&self.driver).take();
        if let Some(driver) = driver {
            driver.await;
        }
        let done = lock(&self.handlers_done).clone();
        if let Some(done) = done {
            // Nothing is ever sent: this returns when `run` has returned.
            let _ = done.recv().await;
        }
        self.events.close();
    }

    /// This client's tasks that have not ended: the driver, one per connection (reading
    /// and writing its socket), the checking tasks and the handler tasks. Zero once
    /// [`Client::shutdown`] has returned. For tests.
    #[doc(hidden)]
    pub fn live_tasks(&self) -> usize {
        self.tasks.live()
    }
}

/// A client on its way to the first connection ([`Client::start`]): watch its
/// [`Connecting::events`], then await [`Connecting::connected`]. Dropping it stops the
/// attempts.
pub struct Connecting {
    client: Client,
    connected: oneshot::Receiver<Result<(), Error>>,
}

impl Connecting {
    /// The client's events from the start ([`Client::events`]): key warnings, then each
    /// attempt of the first connection and how it failed (cause, next delay).
    pub fn events(&self) -> Events {
        self.client.events()
    }

    /// Waits for the first connection. Fails with [`Error::Refused`] when the platform
    /// refuses the configuration, and with [`Error::ConnectTimeout`] (naming the last
    /// attempt's failure) when `first_connect_timeout` passes first; the attempts have
    /// stopped when it returns an error.
    pub async fn connected(self) -> Result<Client, Error> {
        // The session answers: connected, refused, or gave up past
        // `first_connect_timeout`.
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

/// Sends `command` to the driver from synchronous code: at once when its queue has
/// room, else from a task of the client (when the queue is closed the client is gone
/// and nothing is left to tell).
fn send_soon(commands: &Sender<Command>, tasks: &Tasks, command: Command) {
    if let Err(async_channel::TrySendError::Full(command)) = commands.try_send(command) {
        let commands = commands.clone();
        tasks
            .spawn(async move {
                let _ = commands.send(command).await;
            })
            .detach();
    }
}

/// A stream of verified messages ([`Client::deliveries`]). Dropping it detaches the
/// consumer: later messages are answered FAIL after `consumer_grace`.
pub struct Deliveries {
    receiver: Pin<Box<Receiver<Message>>>,
    commands: Sender<Command>,
    tasks: Tasks,
}

impl Deliveries {
    /// The next message; `None` once the client has shut down.
    pub async fn next(&mut self) -> Option<Incoming> {
        let message = self.receiver.recv().await.ok()?;
        Some(self.incoming(message))
    }

    fn incoming(&self, message: Message) -> Incoming {
        Incoming {
            message,
            commands: Some(self.commands.clone()),
            tasks: self.tasks.clone(),
        }
    }
}

impl Stream for Deliveries {
    type Item = Incoming;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        self.receiver
            .as_mut()
            .poll_next(cx)
            .map(|m| m.map(|message| self.incoming(message)))
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        send_soon(&self.commands, &self.tasks, Command::Consumer(false));
    }
}

/// A message from [`Deliveries`], to be answered.
pub struct Incoming {
    message: Message,
    commands: Option<Sender<Command>>,
    tasks: Tasks,
}

impl Incoming {
    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Handled: ack SUCCESS.
    pub async fn ack(mut self) {
        self.finish(Outcome::Success).await;
    }

    /// Not handled: ack FAIL; the platform delivers it again later.
    pub async fn fail(mut self, reason: impl Into<String>) {
        self.finish(Outcome::Failure(reason.into())).await;
    }

    async fn finish(&mut self, outcome: Outcome) {
        if let Some(commands) = self.commands.take() {
            let _ = commands
                .send(Command::Complete {
                    id: self.message.delivery_id(),
                    outcome,
                })
                .await;
        }
    }
}

impl std::ops::Deref for Incoming {
    type Target = Message;
    fn deref(&self) -> &Message {
        &self.message
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(commands) = self.commands.take() {
            let id = self.message.delivery_id();
            let outcome = Outcome::Failure("dropped without an answer".to_owned());
            if let Err(async_channel::TrySendError::Full(command)) =
                commands.try_send(Command::Complete { id, outcome })
            {
                // The command queue is full: finish on a task of the client. (When it is
                // closed the client is gone and the platform redelivers.)
                self.tasks
                    .spawn(async move {
                        let _ = commands.send(command).await;
                    })
                    .detach();
            }
        }
    }
}
