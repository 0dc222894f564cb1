//! Window threads: `alipay-msg-window` threads that put the session's shared-window
//! queries ([`alipay_msg_core::client::Output::Window`]) to the store
//! ([`WindowStore`], e.g. `alipay-msg-redis`'s `RedisWindow`) and hand each answer back
//! to the I/O thread, which feeds it to the session
//! ([`alipay_msg_core::client::Input::WindowAnswered`]). The I/O thread never waits for
//! the store: a slow or unreachable Redis delays the messages it is asked about, not the
//! connection (pings, acks, other messages).
//!
//! The queue is bounded ([`QUEUE_PER_IN_FLIGHT`] × `max_in_flight`): the session has at
//! most `max_in_flight` messages in flight, queries included, plus the few releases and
//! background records it counts against the same bound. A query that finds the queue
//! full anyway is answered with an error at once (the message is acked FAIL and
//! redelivered).

use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use alipay_msg_core::window::{QueryId, WindowAnswer, WindowError, WindowQuery, WindowStore};

use crate::lock;

/// Threads asking the store at once: each holds one connection and one call.
pub(crate) const WINDOW_THREADS: usize = 4;

/// Queue slots per `max_in_flight`.
pub(crate) const QUEUE_PER_IN_FLIGHT: usize = 2;

/// Where an answer goes: `false` when nobody takes answers any more (the thread ends).
pub(crate) type Reply =
    Arc<dyn Fn(WindowQuery, Result<WindowAnswer, WindowError>) -> bool + Send + Sync>;

/// The window threads of one client; they end and are joined when it is dropped.
pub(crate) struct WindowThreads {
    queue: Option<SyncSender<WindowQuery>>,
    threads: Vec<JoinHandle<()>>,
}

impl WindowThreads {
    /// [`WINDOW_THREADS`] threads asking `store`, with a queue of `capacity` queries.
    /// Errors: no thread could be started (the text says why).
    pub(crate) fn start(
        store: Arc<dyn WindowStore>,
        capacity: usize,
        reply: Reply,
    ) -> Result<WindowThreads, String> {
        let (queue, rx) = mpsc::sync_channel::<WindowQuery>(capacity.max(1));
        let rx: Arc<Mutex<Receiver<WindowQuery>>> = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(WINDOW_THREADS);
        for _ in 0..WINDOW_THREADS {
            let (rx, store, reply) = (rx.clone(), store.clone(), reply.clone());
            let spawned = std::thread::Builder::new()
                .name("alipay-msg-window".to_owned())
                .spawn(move || loop {
                    // The lock is held only to take the next query.
                    let next = lock(&rx).recv();
                    let Ok(query) = next else { return };
                    let answer = store.answer(&query);
                    if !reply(query, answer) {
                        return;
                    }
                });
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(error) if threads.is_empty() => {
                    return Err(format!("could not start a window thread: {error}"))
                }
                Err(error) => {
                    tracing::warn!(%error, started = threads.len(), "fewer window threads");
                    break;
                }
            }
        }
        Ok(WindowThreads {
            queue: Some(queue),
            threads,
        })
    }

    /// Queues `query`; `Err` with its id and the error to answer at once when the queue
    /// is full or the threads are gone.
    pub(crate) fn ask(&self, query: WindowQuery) -> Result<(), (QueryId, WindowError)> {
        let Some(queue) = &self.queue else {
            return Err((
                query.id,
                WindowError("the window threads have stopped".into()),
            ));
        };
        match queue.try_send(query) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(query)) => Err((
                query.id,
                WindowError("too many shared-window queries waiting".into()),
            )),
            Err(TrySendError::Disconnected(query)) => Err((
                query.id,
                WindowError("the window threads have stopped".into()),
            )),
        }
    }
}

impl Drop for WindowThreads {
    fn drop(&mut self) {
        // Closing the queue ends each thread after its current call (bounded by the
        // store's timeout).
        self.queue = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alipay_msg_core::window::{WindowKey, WindowKind, WindowOp};
    use std::time::Duration;

    struct Answers;

    impl WindowStore for Answers {
        fn answer(&self, query: &WindowQuery) -> Result<WindowAnswer, WindowError> {
            match query.op {
                WindowOp::Record { .. } => Ok(WindowAnswer::Recorded),
                _ => Err(WindowError("down".into())),
            }
        }
    }

    fn query(n: u64, op: WindowOp) -> WindowQuery {
        WindowQuery {
            id: QueryId::new(n),
            key: WindowKey {
                app_id: "2021000000000001".into(),
                kind: WindowKind::Msg,
                id: format!("m{n}"),
            },
            op,
        }
    }

    #[test]
    fn answers_come_back_with_their_query_and_threads_join() {
        let (tx, rx) = mpsc::channel();
        let reply: Reply = Arc::new(move |q: WindowQuery, a| tx.send((q.id, a)).is_ok());
        let threads = WindowThreads::start(Arc::new(Answers), 8, reply).unwrap();
        let window = Duration::from_secs(1);
        threads.ask(query(1, WindowOp::Record { window })).unwrap();
        threads
            .ask(query(2, WindowOp::Release { token: "t".into() }))
            .unwrap();
        let mut got: Vec<_> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        got.sort_by_key(|(id, _)| id.as_u64());
        assert_eq!(got[0], (QueryId::new(1), Ok(WindowAnswer::Recorded)));
        assert_eq!(got[1], (QueryId::new(2), Err(WindowError("down".into()))));
        drop(threads);
    }
}
