//! [`Events`]: a subscription to a client's [`ClientEvent`]s.

use std::pin::Pin;
use std::task::{Context, Poll};

use alipay_msg_core::client::ClientEvent;
use async_broadcast::{Receiver, RecvError, TryRecvError};
use futures_lite::Stream;

/// A subscription to a client's [`ClientEvent`]s ([`super::Client::events`]): every
/// event from the moment of subscribing. It holds up to 1024 unread events; when it
/// lags further behind, the oldest are dropped (and logged) rather than slowing the
/// client down. Also a [`Stream`].
pub struct Events {
    receiver: Receiver<ClientEvent>,
}

impl Events {
    pub(crate) fn new(receiver: Receiver<ClientEvent>) -> Self {
        Events { receiver }
    }

    /// The next event; `None` once the client has shut down (or is gone) and every
    /// event has been read.
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        loop {
            match self.receiver.recv_direct().await {
                Ok(event) => return Some(event),
                Err(RecvError::Overflowed(lost)) => lagged(lost),
                Err(RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<ClientEvent> {
        loop {
            match self.receiver.try_recv() {
                Ok(event) => return Some(event),
                Err(TryRecvError::Overflowed(lost)) => lagged(lost),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            }
        }
    }
}

fn lagged(lost: u64) {
    tracing::warn!(
        lost,
        "an events subscriber lagged behind: its oldest events were dropped"
    );
}

impl Stream for Events {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        // async-broadcast's stream skips the events lost to overflow.
        Pin::new(&mut self.receiver).poll_next(cx)
    }
}
