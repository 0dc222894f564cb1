//! The tokio client: [`Client::connect`] (or [`Client::start`] to watch the first
//! connection), [`Client::run`], [`Client::deliveries`], [`Client::send`],
//! [`Client::events`], [`Client::shutdown`].

mod driver;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use alipay_msg_core::client::{ClientConfig, ClientSession, Outcome};
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_core::register::RegisterError;
use futures_util::FutureExt;
use tokio::sync::{broadcast, mpsc, oneshot, watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

pub use alipay_msg_core::client::{ClientError, ClientEvent, Message};

use crate::network::Network;
use driver::{AppSide, Command, Driver};

/// Why a client call failed (the same type on every runtime).
pub type Error = ClientError;

/// A connected client. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Client {
    commands: mpsc::Sender<Command>,
    deliveries: Mutex<Option<mpsc::Receiver<Message>>>,
    events: broadcast::Sender<ClientEvent>,
    /// Subscribed before the driver started: what the first [`Client::events`] returns.
    first_events: Mutex<Option<broadcast::Receiver<ClientEvent>>>,
    driver: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// Set by [`Client::run`]: becomes `true` when its last handler has finished.
    handlers_done: tokio::sync::Mutex<Option<watch::Receiver<bool>>>,
    /// The platform's refusal, when it stopped the client after connecting.
    fatal: Arc<Mutex<Option<RegisterError>>>,
    max_in_flight: usize,
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
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        self.client.events()
    }

    /// Waits for the first connection. Fails with [`Error::Refused`] when the platform
    /// refuses the configuration, and with [`Error::ConnectTimeout`] (naming the last
    /// attempt's failure) when `first_connect_timeout` passes first (the session gives
    /// up by itself); the attempts have stopped when it returns an error.
    pub async fn connected(mut self) -> Result<Client, Error> {
        match (&mut self.connected).await {
            Ok(Ok(())) => Ok(self.client),
            Ok(Err(e)) => {
                self.client.shutdown().await;
                Err(e)
            }
            Err(_) => Err(Error::Closed),
        }
    }
}

impl Client {
    /// Validates `config`, connects, and returns once the first connection is open.
    ///
    /// Misconfigurations the client can see (keys, certificates, app id) fail at once
    /// with [`Error::Config`]; those only the platform can see (it refuses the
    /// signature, app id or certificate) fail with [`Error::Refused`] after the first
    /// register. Network failures are retried with backoff until
    /// `config.first_connect_timeout` (default 30 s) passes, then the call fails with
    /// [`Error::ConnectTimeout`], which names the last attempt's failure. The events of
    /// the attempts (and key warnings) go to the first [`Client::events`] receiver; to
    /// watch them while connecting, use [`Client::start`].
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

    /// Validates `config` and starts connecting on a task of the current runtime:
    /// [`Client::connect`] in two steps, so that the first connection's events can be
    /// watched ([`Connecting::events`]) and the wait abandoned (drop the
    /// [`Connecting`]). Must be called within a tokio runtime.
    pub fn start(config: ClientConfig) -> Result<Connecting, Error> {
        Client::start_with_network(config, Network::default())
    }

    /// [`Client::start`] with the given TLS configuration and proxy
    /// ([`Client::connect_with_network`]).
    pub fn start_with_network(config: ClientConfig, network: Network) -> Result<Connecting, Error> {
        let connector = network.connector()?;
        let max_in_flight = config.max_in_flight;
        // The session's random source (nonces, websocket keys and masks, jitter).
        let mut seed = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        let mut session = ClientSession::new(config, seed, Instant::now(), driver::unix_ms())?;
        // No consumer until `run` or `deliveries`: a client that only sends answers the
        // platform's pushes FAIL after `consumer_grace` instead of holding them.
        session.set_consumer(false, Instant::now());
        let (commands, command_rx) = mpsc::channel(1024);
        let (delivery_tx, delivery_rx) = mpsc::channel(max_in_flight);
        let (events, first_events) = broadcast::channel(1024);
        let (connected_tx, connected_rx) = oneshot::channel();
        let fatal = Arc::new(Mutex::new(None));
        let driver = tokio::spawn(
            Driver {
                session,
                connector,
                commands: command_rx,
                app: AppSide {
                    deliveries: delivery_tx,
                    events: events.clone(),
                    connected: Some(connected_tx),
                    fatal: fatal.clone(),
                    sends: Default::default(),
                },
            }
            .run(),
        );
        Ok(Connecting {
            client: Client {
                commands,
                deliveries: Mutex::new(Some(delivery_rx)),
                events,
                first_events: Mutex::new(Some(first_events)),
                driver: tokio::sync::Mutex::new(Some(driver)),
                handlers_done: tokio::sync::Mutex::new(None),
                fatal,
                max_in_flight,
            },
            connected: connected_rx,
        })
    }

    /// Runs `handler` for every verified message until the client shuts down, at most
    /// `max_in_flight` at a time. `Ok` acks SUCCESS; `Err` or a panic acks FAIL and the
    /// platform delivers the message again later. Returns after shutdown, once every
    /// handler has finished; returns [`Error::Refused`] when the platform refused the
    /// configuration on a reconnect.
    pub async fn run<F, Fut, E>(&self, handler: F) -> Result<(), Error>
    where
        F: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let mut deliveries = self.take_deliveries()?;
        let _ = self.commands.send(Command::Consumer(true)).await;
        let (done_tx, done_rx) = watch::channel(false);
        *self.handlers_done.lock().await = Some(done_rx);
        let handler = Arc::new(handler);
        let limit = Arc::new(Semaphore::new(self.max_in_flight));
        let mut running = JoinSet::new();
        while let Some(message) = deliveries.recv().await {
            // The semaphore is never closed, so acquiring cannot fail.
            let permit = limit.clone().acquire_owned().await.expect("semaphore open");
            let (handler, commands) = (handler.clone(), self.commands.clone());
            running.spawn(async move {
                let id = message.delivery_id();
                let result = std::panic::AssertUnwindSafe(handler(message))
                    .catch_unwind()
                    .await;
                let outcome = match result {
                    Ok(Ok(())) => Outcome::Success,
                    Ok(Err(e)) => Outcome::Failure(e.to_string()),
                    Err(panic) => Outcome::from_panic(&*panic),
                };
                // A failure is published by the session ([`ClientEvent::HandlerFailed`]).
                let _ = commands.send(Command::Complete { id, outcome }).await;
                drop(permit);
            });
            while running.try_join_next().is_some() {}
        }
        // The driver has ended: let the handlers still running finish.
        while running.join_next().await.is_some() {}
        let _ = done_tx.send(true);
        // A poisoned lock means a panic while storing the error, which cannot happen.
        let fatal = self.fatal.lock().expect("lock not poisoned").clone();
        match fatal {
            Some(error) => Err(Error::Refused(error)),
            None => Ok(()),
        }
    }

    /// The verified messages as a stream of [`Incoming`], for callers who prefer
    /// pulling to [`Client::run`]. Each must be answered with [`Incoming::ack`] or
    /// [`Incoming::fail`]; dropping one unanswered answers FAIL.
    pub fn deliveries(&self) -> Result<Deliveries, Error> {
        let receiver = self.take_deliveries()?;
        send_soon(&self.commands, Command::Consumer(true));
        Ok(Deliveries {
            receiver,
            commands: self.commands.clone(),
        })
    }

    fn take_deliveries(&self) -> Result<mpsc::Receiver<Message>, Error> {
        // A poisoned lock means a panic while taking the receiver, which cannot happen.
        self.deliveries
            .lock()
            .expect("lock not poisoned")
            .take()
            .ok_or(Error::AlreadyConsuming)
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
    /// receiver holds every event since start-up ([`ClientEvent::KeyWarning`]s, the
    /// attempts of the first connection), up to 1024; later ones start from the call.
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        // A poisoned lock means a panic while taking the receiver, which cannot happen.
        self.first_events
            .lock()
            .expect("lock not poisoned")
            .take()
            .unwrap_or_else(|| self.events.subscribe())
    }

    /// Stops taking new messages, lets the handlers in flight finish and their acks go
    /// out (up to `shutdown_timeout`), closes the connection and waits for every task of
    /// the client to end.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
        if let Some(driver) = self.driver.lock().await.take() {
            let _ = driver.await;
        }
        let done = self.handlers_done.lock().await.clone();
        if let Some(mut done) = done {
            // The sender lives until `run` returns; a closed channel means it returned.
            let _ = done.wait_for(|finished| *finished).await;
        }
    }
}

/// Sends `command` to the driver from synchronous code: at once when its queue has
/// room, else from a task of the current runtime (without one, the client is gone
/// with its runtime and nothing is left to tell).
fn send_soon(commands: &mpsc::Sender<Command>, command: Command) {
    if let Err(mpsc::error::TrySendError::Full(command)) = commands.try_send(command) {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let commands = commands.clone();
            handle.spawn(async move {
                let _ = commands.send(command).await;
            });
        }
    }
}

/// A stream of verified messages ([`Client::deliveries`]). Dropping it detaches the
/// consumer: later messages are answered FAIL after `consumer_grace`.
pub struct Deliveries {
    receiver: mpsc::Receiver<Message>,
    commands: mpsc::Sender<Command>,
}

impl Deliveries {
    /// The next message; `None` once the client has shut down.
    pub async fn next(&mut self) -> Option<Incoming> {
        let message = self.receiver.recv().await?;
        Some(Incoming {
            message,
            commands: Some(self.commands.clone()),
        })
    }
}

impl futures_util::Stream for Deliveries {
    type Item = Incoming;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Incoming>> {
        let commands = self.commands.clone();
        self.receiver.poll_recv(cx).map(|m| {
            m.map(|message| Incoming {
                message,
                commands: Some(commands),
            })
        })
    }
}

impl Drop for Deliveries {
    fn drop(&mut self) {
        send_soon(&self.commands, Command::Consumer(false));
    }
}

/// A message from [`Deliveries`], to be answered.
pub struct Incoming {
    message: Message,
    commands: Option<mpsc::Sender<Command>>,
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
            if commands
                .try_send(Command::Complete {
                    id,
                    outcome: outcome.clone(),
                })
                .is_err()
            {
                // The command queue is full or closed: finish asynchronously if a runtime
                // is there, otherwise the client is gone and the platform redelivers.
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    handle.spawn(async move {
                        let _ = commands.send(Command::Complete { id, outcome }).await;
                    });
                }
            }
        }
    }
}
