//! [`SimulatorHandle`]: a simulator on its own tokio runtime on a background thread,
//! with blocking methods, for tests of clients that do not run on tokio (async-std,
//! threads).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use alipay_msg_core::endpoint::Endpoint;
use alipay_msg_core::server::{
    FaultPlan, MessageCounts, MessageState, MsgId, ProduceFailure, ServerSession,
};
use alipay_msg_core::signature::Signer;
use tokio::sync::{broadcast, oneshot};

use super::{
    NotificationCounts, PlatformNotification, Simulator, SimulatorError, SimulatorEvent,
    SimulatorOptions,
};

/// A simulator running on a background thread ([`Simulator::start_on_thread`]). Every
/// method blocks the calling thread (do not call them from inside a single-threaded
/// async runtime's task). Dropping the handle shuts the simulator down and joins its
/// thread.
///
/// ```
/// use alipay_msg_simulator::{Simulator, SimulatorOptions};
///
/// let sim = Simulator::start_on_thread(SimulatorOptions::with_test_keys()).unwrap();
/// let id = sim.push("alipay.open.mini.version.audit.passed", r#"{"mini_app_id":"1"}"#).unwrap();
/// assert!(!sim.is_settled().unwrap()); // nobody connected yet
/// # let _ = id;
/// sim.shutdown();
/// ```
#[derive(Debug)]
pub struct SimulatorHandle {
    simulator: Simulator,
    runtime: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SimulatorHandle {
    pub(super) fn start(options: SimulatorOptions) -> io::Result<Self> {
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("alipay-msg-simulator".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match Simulator::start(options).await {
                        Ok(simulator) => {
                            let handle = tokio::runtime::Handle::current();
                            let _ = ready_tx.send(Ok((simulator.clone(), handle)));
                            // Runs until the handle asks to stop or is dropped.
                            let _ = stop_rx.await;
                            simulator.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })?;
        match ready_rx.recv() {
            Ok(Ok((simulator, runtime))) => Ok(SimulatorHandle {
                simulator,
                runtime,
                stop: Some(stop),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(io::Error::other(
                    "the simulator thread ended before starting",
                ))
            }
        }
    }

    /// Runs `future` on the simulator's runtime and waits for its result.
    fn block<T, F>(&self, future: F) -> T
    where
        T: Send + 'static,
        F: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        // The runtime runs until `shutdown`/drop, which need `self`: the task completes.
        rx.recv()
            .expect("the simulator runtime runs while the handle exists")
    }

    /// The async handle, for use from a tokio runtime.
    pub fn simulator(&self) -> &Simulator {
        &self.simulator
    }

    /// See [`Simulator::local_addr`].
    pub fn local_addr(&self) -> SocketAddr {
        self.simulator.local_addr()
    }

    /// See [`Simulator::endpoint`].
    pub fn endpoint(&self) -> Endpoint {
        self.simulator.endpoint()
    }

    /// See [`Simulator::app_id`].
    pub fn app_id(&self) -> &str {
        self.simulator.app_id()
    }

    /// See [`Simulator::push`].
    pub fn push(&self, msg_api: &str, biz_content: &str) -> Result<MsgId, SimulatorError> {
        let (sim, msg_api, biz) = (
            self.simulator.clone(),
            msg_api.to_owned(),
            biz_content.to_owned(),
        );
        self.block(async move { sim.push(&msg_api, &biz).await })
    }

    /// See [`Simulator::push_forged`].
    pub fn push_forged(
        &self,
        msg_api: &str,
        biz_content: &str,
        forger: Option<Signer>,
    ) -> Result<MsgId, SimulatorError> {
        let (sim, msg_api, biz) = (
            self.simulator.clone(),
            msg_api.to_owned(),
            biz_content.to_owned(),
        );
        self.block(async move { sim.push_forged(&msg_api, &biz, forger).await })
    }

    /// See [`Simulator::push_jsonl`].
    pub fn push_jsonl(&self, path: impl AsRef<Path>) -> Result<Vec<MsgId>, SimulatorError> {
        let (sim, path) = (self.simulator.clone(), path.as_ref().to_owned());
        self.block(async move { sim.push_jsonl(path).await })
    }

    /// See [`Simulator::with_session`].
    pub fn with_session<T, F>(&self, f: F) -> Result<T, SimulatorError>
    where
        T: Send + 'static,
        F: FnOnce(&mut ServerSession, Instant) -> T + Send + 'static,
    {
        let sim = self.simulator.clone();
        self.block(async move { sim.with_session(f).await })
    }

    /// See [`Simulator::set_faults`].
    pub fn set_faults(&self, plan: FaultPlan) -> Result<(), SimulatorError> {
        self.with_session(move |session, _| session.set_faults(plan))
    }

    /// See [`Simulator::set_produce_failure`].
    pub fn set_produce_failure(
        &self,
        msg_api: &str,
        failure: Option<ProduceFailure>,
    ) -> Result<(), SimulatorError> {
        let msg_api = msg_api.to_owned();
        self.with_session(move |session, _| session.set_produce_failure(&msg_api, failure))
    }

    /// See [`Simulator::counts`].
    pub fn counts(&self) -> Result<MessageCounts, SimulatorError> {
        self.with_session(|session, _| session.counts())
    }

    /// See [`Simulator::is_settled`].
    pub fn is_settled(&self) -> Result<bool, SimulatorError> {
        self.with_session(|session, _| session.is_settled())
    }

    /// See [`Simulator::acked_messages`].
    pub fn acked_messages(&self) -> Result<Vec<(MsgId, u32)>, SimulatorError> {
        self.with_session(|session, _| session.acked_messages())
    }

    /// See [`Simulator::message_state`].
    pub fn message_state(&self, msg_id: &MsgId) -> Result<Option<MessageState>, SimulatorError> {
        let msg_id = msg_id.clone();
        self.with_session(move |session, _| session.message_state(msg_id.as_str()))
    }

    /// Waits up to `timeout` until every genuine message is settled; `false` on
    /// timeout.
    pub fn wait_settled(&self, timeout: Duration) -> Result<bool, SimulatorError> {
        let sim = self.simulator.clone();
        self.block(async move {
            match tokio::time::timeout(timeout, sim.wait_settled()).await {
                Ok(result) => result.map(|()| true),
                Err(_) => Ok(false),
            }
        })
    }

    /// Waits up to `timeout` until at least `n` websocket connections are open;
    /// `false` on timeout.
    pub fn wait_connections(&self, n: usize, timeout: Duration) -> Result<bool, SimulatorError> {
        let sim = self.simulator.clone();
        self.block(async move {
            match tokio::time::timeout(timeout, sim.wait_connections(n)).await {
                Ok(result) => result.map(|()| true),
                Err(_) => Ok(false),
            }
        })
    }

    /// Waits up to `timeout` until no websocket connection is open; `false` on
    /// timeout.
    pub fn wait_disconnected(&self, timeout: Duration) -> Result<bool, SimulatorError> {
        let sim = self.simulator.clone();
        self.block(async move {
            match tokio::time::timeout(timeout, sim.wait_disconnected()).await {
                Ok(result) => result.map(|()| true),
                Err(_) => Ok(false),
            }
        })
    }

    /// See [`Simulator::connection_count`].
    pub fn connection_count(&self) -> usize {
        self.simulator.connection_count()
    }

    /// See [`Simulator::events`]; read with `blocking_recv` (or `recv().await`).
    pub fn events(&self) -> broadcast::Receiver<SimulatorEvent> {
        self.simulator.events()
    }

    /// See [`Simulator::notify`].
    pub fn notify(&self, notification: PlatformNotification) -> Result<String, SimulatorError> {
        let sim = self.simulator.clone();
        self.block(async move { sim.notify(notification).await })
    }

    /// See [`Simulator::notification_counts`].
    pub fn notification_counts(&self) -> NotificationCounts {
        self.simulator.notification_counts()
    }

    /// Waits up to `timeout` until no HTTP notification is pending; `false` on timeout
    /// ([`Simulator::wait_notifications_settled`]).
    pub fn wait_notifications_settled(&self, timeout: Duration) -> Result<bool, SimulatorError> {
        let sim = self.simulator.clone();
        self.block(async move {
            match tokio::time::timeout(timeout, sim.wait_notifications_settled()).await {
                Ok(result) => result.map(|()| true),
                Err(_) => Ok(false),
            }
        })
    }

    /// See [`Simulator::disconnect_all`].
    pub fn disconnect_all(&self) -> Result<usize, SimulatorError> {
        let sim = self.simulator.clone();
        self.block(async move { sim.disconnect_all().await })
    }

    /// Stops the simulator and joins its thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SimulatorHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
