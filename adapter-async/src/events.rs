//! [`Events`]: a subscription to a client's [`ClientEvent`]s.

use std::pin::Pin;
use std::task::{Context, Poll};

use alipay_msg_core::client::ClientEvent;
use async_broadcast::{Receiver, RecvError, TryRecvError};
use futures_lite::Stream;

/// Events kept for a subscriber that is not reading; past that its oldest are dropped.
pub(crate) const EVENT_CAPACITY: usize = 1024;

/// A subscription to a client's [`ClientEvent`]s ([`Client::events`]): every event
/// from the moment of subscribing, in order. It holds up to 1024 unread events; when
/// it lags further behind, its oldest are dropped, counted ([`Events::missed`]) and
/// logged, rather than slowing the client down. Also a [`Stream`].
///
/// [`Client::events`]: crate::Client::events
pub struct Events {
    receiver: Receiver<ClientEvent>,
    missed: u64,
}

impl Events {
    pub(crate) fn new(receiver: Receiver<ClientEvent>) -> Self {
        Events {
            receiver,
            missed: 0,
        }
    }

    /// The next event; `None` once the client has shut down (or is gone) and every
    /// event has been read.
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        futures_lite::StreamExt::next(self).await
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<ClientEvent> {
        loop {
            match self.receiver.try_recv() {
                Ok(event) => return Some(event),
                Err(TryRecvError::Overflowed(lost)) => self.lagged(lost),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            }
        }
    }

    /// Events this subscriber lost by lagging more than 1024 behind, so far.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    fn lagged(&mut self, lost: u64) {
        self.missed = self.missed.saturating_add(lost);
        tracing::warn!(
            lost,
            "an events subscriber lagged behind: its oldest events were dropped"
        );
    }
}

impl Stream for Events {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        loop {
            match Pin::new(&mut self.receiver).poll_recv(cx) {
                Poll::Ready(Some(Err(RecvError::Overflowed(lost)))) => self.lagged(lost),
                // `Closed` comes as `None`.
                Poll::Ready(Some(Err(RecvError::Closed))) => return Poll::Ready(None),
                Poll::Ready(Some(Ok(event))) => return Poll::Ready(Some(event)),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("waiting", &self.receiver.len())
            .field("missed", &self.missed)
            .finish()
    }
}
