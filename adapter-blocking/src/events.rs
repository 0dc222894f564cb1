//! [`Events`]: a subscription to the client's [`ClientEvent`]s. Every subscriber has
//! its own bounded queue; when a subscriber falls [`EVENT_QUEUE`] events behind, its
//! oldest events are dropped and counted ([`Events::missed`]) — the I/O thread never
//! waits for a slow reader (as tokio's `broadcast` does with lagging receivers).

use std::collections::VecDeque;
use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use alipay_msg_core::client::ClientEvent;

use crate::lock;

/// Events one subscriber may fall behind before the oldest are dropped.
pub const EVENT_QUEUE: usize = 1024;

/// Publishes to every live subscriber.
#[derive(Default)]
pub(crate) struct EventHub {
    state: Mutex<HubState>,
}

#[derive(Default)]
struct HubState {
    subscribers: Vec<Weak<Subscriber>>,
    closed: bool,
}

#[derive(Default)]
struct Subscriber {
    state: Mutex<Queue>,
    ready: Condvar,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<ClientEvent>,
    missed: u64,
    closed: bool,
}

impl EventHub {
    /// A new subscriber; already closed when the client has stopped.
    pub(crate) fn subscribe(&self) -> Events {
        let subscriber = Arc::new(Subscriber::default());
        let mut hub = lock(&self.state);
        if hub.closed {
            lock(&subscriber.state).closed = true;
        } else {
            hub.subscribers.retain(|s| s.strong_count() > 0);
            hub.subscribers.push(Arc::downgrade(&subscriber));
        }
        Events { subscriber }
    }

    /// Gives `event` to every subscriber, dropping the oldest of a full queue.
    pub(crate) fn publish(&self, event: &ClientEvent) {
        let mut hub = lock(&self.state);
        hub.subscribers.retain(|weak| match weak.upgrade() {
            Some(subscriber) => {
                let mut queue = lock(&subscriber.state);
                if queue.events.len() >= EVENT_QUEUE {
                    queue.events.pop_front();
                    queue.missed += 1;
                }
                queue.events.push_back(event.clone());
                drop(queue);
                subscriber.ready.notify_all();
                true
            }
            None => false,
        });
    }

    /// No more events: subscribers drain what they have, then see the end.
    pub(crate) fn close(&self) {
        let mut hub = lock(&self.state);
        hub.closed = true;
        for subscriber in hub.subscribers.drain(..).filter_map(|w| w.upgrade()) {
            lock(&subscriber.state).closed = true;
            subscriber.ready.notify_all();
        }
    }
}

/// A subscription to the client's events ([`crate::Client::events`]): connection
/// changes, rejections, duplicates, handler failures, shutdown.
///
/// Iterating blocks for the next event and ends when the client has stopped and every
/// event was read.
pub struct Events {
    subscriber: Arc<Subscriber>,
}

impl Events {
    /// The next event, waiting at most `timeout`. `Err(Disconnected)` once the client
    /// has stopped and every event was read.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<ClientEvent, RecvTimeoutError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut queue = lock(&self.subscriber.state);
        loop {
            if let Some(event) = queue.events.pop_front() {
                return Ok(event);
            }
            if queue.closed {
                return Err(RecvTimeoutError::Disconnected);
            }
            match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(RecvTimeoutError::Timeout);
                    }
                    queue = self
                        .subscriber
                        .ready
                        .wait_timeout(queue, left)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0;
                }
                None => queue = self.wait(queue),
            }
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&self) -> Result<ClientEvent, TryRecvError> {
        let mut queue = lock(&self.subscriber.state);
        match queue.events.pop_front() {
            Some(event) => Ok(event),
            None if queue.closed => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// The next event, waiting as long as it takes; `None` once the client has stopped
    /// and every event was read.
    pub fn recv(&self) -> Option<ClientEvent> {
        let mut queue = lock(&self.subscriber.state);
        loop {
            if let Some(event) = queue.events.pop_front() {
                return Some(event);
            }
            if queue.closed {
                return None;
            }
            queue = self.wait(queue);
        }
    }

    /// Events dropped so far because this subscriber fell [`EVENT_QUEUE`] behind.
    pub fn missed(&self) -> u64 {
        lock(&self.subscriber.state).missed
    }

    fn wait<'a>(
        &self,
        queue: std::sync::MutexGuard<'a, Queue>,
    ) -> std::sync::MutexGuard<'a, Queue> {
        self.subscriber
            .ready
            .wait(queue)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Iterator for Events {
    type Item = ClientEvent;

    fn next(&mut self) -> Option<ClientEvent> {
        self.recv()
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let queue = lock(&self.subscriber.state);
        f.debug_struct("Events")
            .field("queued", &queue.events.len())
            .field("missed", &queue.missed)
            .field("closed", &queue.closed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subscriber_gets_every_event() {
        let hub = EventHub::default();
        let (a, b) = (hub.subscribe(), hub.subscribe());
        hub.publish(&ClientEvent::Connected);
        assert_eq!(a.try_recv(), Ok(ClientEvent::Connected));
        assert_eq!(b.try_recv(), Ok(ClientEvent::Connected));
        assert_eq!(a.try_recv(), Err(TryRecvError::Empty));
    }

    #[test]
    fn a_slow_subscriber_loses_the_oldest() {
        let hub = EventHub::default();
        let events = hub.subscribe();
        for attempt in 0..(EVENT_QUEUE as u32 + 3) {
            hub.publish(&ClientEvent::Connecting { attempt });
        }
        assert_eq!(events.missed(), 3);
        assert_eq!(
            events.try_recv(),
            Ok(ClientEvent::Connecting { attempt: 3 })
        );
    }

    #[test]
    fn close_ends_after_the_queue_is_drained() {
        let hub = EventHub::default();
        let mut events = hub.subscribe();
        hub.publish(&ClientEvent::ShutdownComplete);
        hub.close();
        assert_eq!(events.next(), Some(ClientEvent::ShutdownComplete));
        assert_eq!(events.next(), None);
        assert_eq!(
            events.recv_timeout(Duration::from_secs(1)),
            Err(RecvTimeoutError::Disconnected)
        );
        let late = hub.subscribe();
        assert_eq!(late.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[test]
    fn recv_timeout_waits_for_a_publisher() {
        let hub = Arc::new(EventHub::default());
        let events = hub.subscribe();
        assert_eq!(
            events.recv_timeout(Duration::from_millis(10)),
            Err(RecvTimeoutError::Timeout)
        );
        let publisher = {
            let hub = hub.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                hub.publish(&ClientEvent::Connected);
            })
        };
        assert_eq!(
            events.recv_timeout(Duration::from_secs(5)),
            Ok(ClientEvent::Connected)
        );
        publisher.join().unwrap();
    }

    #[test]
    fn dropped_subscribers_are_forgotten() {
        let hub = EventHub::default();
        drop(hub.subscribe());
        hub.publish(&ClientEvent::Connected);
        assert!(lock(&hub.state).subscribers.is_empty());
    }
}
