//! The verified messages on the application's side: the delivery channel's receiving
//! end ([`DeliveryQueue`]), as [`Deliveries`] (pulled) or inside `Client::run`, and
//! the [`Answer`] each message owes the session.
//!
//! Nothing the application was handed can hold its in-flight slot for ever: an
//! [`Answer`] dropped unsent answers FAIL, and dropping the queue (a [`Deliveries`]
//! dropped, a `run` cancelled) answers FAIL every message still in the channel. The
//! platform then delivers them again.

use std::pin::Pin;
use std::task::{Context, Poll};

use alipay_msg_core::client::{DeliveryId, Message, Outcome};
use async_channel::{Receiver, Sender, TrySendError};
use futures_lite::Stream;

/// What the application's side tells the driver without waiting — from `Drop` too, so
/// never by awaiting room in a queue.
pub(crate) enum Report {
    /// A delivery's outcome ([`alipay_msg_core::client::ClientSession::complete`]).
    Completed { id: DeliveryId, outcome: Outcome },
    /// A consumer (`run`, `deliveries`) attached or went away
    /// ([`alipay_msg_core::client::ClientSession::set_consumer`]).
    Consumer(bool),
}

/// Room in the reports channel for `max_in_flight`: one answer per delivery the
/// session holds (it admits at most `max_in_flight`, and each is answered once) and
/// the one consumer's attach and detach, so a report never finds it full while the
/// driver runs.
pub(crate) fn reports_capacity(max_in_flight: usize) -> usize {
    max_in_flight.saturating_add(2)
}

/// Queues `report` for the driver. A closed channel means the driver has ended (an
/// answer then has nothing left to settle: the platform redelivers); a full one
/// cannot happen ([`reports_capacity`]) and is logged.
pub(crate) fn report(reports: &Sender<Report>, report: Report) {
    if let Err(TrySendError::Full(_)) = reports.try_send(report) {
        tracing::warn!("the reports queue is full: a report was dropped");
    }
}

/// Why a message was answered FAIL without the application's answer.
const UNANSWERED: &str = "dropped without an answer";
const UNTAKEN: &str = "not taken: the consumer went away";

/// The answer one delivery owes the session: given once with [`Answer::send`], or FAIL
/// when dropped first (an [`Incoming`] dropped unanswered, a handler cancelled with
/// its `run`).
pub(crate) struct Answer {
    id: DeliveryId,
    /// `None` once sent.
    reports: Option<Sender<Report>>,
}

impl Answer {
    pub(crate) fn new(id: DeliveryId, reports: Sender<Report>) -> Answer {
        Answer {
            id,
            reports: Some(reports),
        }
    }

    /// Answers with `outcome`: `Success` acks SUCCESS, `Failure` FAIL (and the session
    /// publishes `ClientEvent::HandlerFailed`).
    pub(crate) fn send(mut self, outcome: Outcome) {
        self.settle(outcome);
    }

    fn settle(&mut self, outcome: Outcome) {
        if let Some(reports) = self.reports.take() {
            let id = self.id;
            report(&reports, Report::Completed { id, outcome });
        }
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.settle(Outcome::Failure(UNANSWERED.to_owned()));
    }
}

/// The receiving end of the delivery channel, attached as the client's consumer.
/// Dropping it detaches the consumer and answers FAIL every message still in the
/// channel (closed first, so that none arrives after: the session answers those FAIL
/// itself).
pub(crate) struct DeliveryQueue {
    receiver: Pin<Box<Receiver<Message>>>,
    reports: Sender<Report>,
}

impl DeliveryQueue {
    /// Attaches the consumer (the session hands it the messages waiting for one).
    pub(crate) fn attach(receiver: Receiver<Message>, reports: Sender<Report>) -> Self {
        report(&reports, Report::Consumer(true));
        DeliveryQueue {
            receiver: Box::pin(receiver),
            reports,
        }
    }

    /// The next message and its answer; `None` once the driver has ended.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<(Message, Answer)>> {
        self.receiver.as_mut().poll_next(cx).map(|message| {
            message.map(|message| {
                let answer = Answer::new(message.delivery_id(), self.reports.clone());
                (message, answer)
            })
        })
    }

    /// No message waits in the queue (one may arrive at any moment).
    pub(crate) fn is_empty(&self) -> bool {
        self.receiver.is_empty()
    }

    /// [`DeliveryQueue::poll_next`] as a future.
    pub(crate) async fn next(&mut self) -> Option<(Message, Answer)> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}

impl Drop for DeliveryQueue {
    fn drop(&mut self) {
        report(&self.reports, Report::Consumer(false));
        self.receiver.close();
        while let Ok(message) = self.receiver.try_recv() {
            Answer::new(message.delivery_id(), self.reports.clone())
                .send(Outcome::Failure(UNTAKEN.to_owned()));
        }
    }
}

/// A stream of verified messages ([`Client::deliveries`]), each an [`Incoming`] to
/// answer. Dropping it detaches the consumer: the messages waiting in it are answered
/// FAIL at once, later ones after `consumer_grace` (the platform delivers them again).
///
/// [`Client::deliveries`]: crate::Client::deliveries
pub struct Deliveries {
    queue: DeliveryQueue,
}

impl Deliveries {
    pub(crate) fn new(queue: DeliveryQueue) -> Self {
        Deliveries { queue }
    }

    /// The next message; `None` once the client has shut down.
    pub async fn next(&mut self) -> Option<Incoming> {
        let (message, answer) = self.queue.next().await?;
        Some(Incoming { message, answer })
    }
}

impl Stream for Deliveries {
    type Item = Incoming;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Incoming>> {
        self.queue
            .poll_next(cx)
            .map(|m| m.map(|(message, answer)| Incoming { message, answer }))
    }
}

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliveries").finish_non_exhaustive()
    }
}

/// A message from [`Deliveries`], to be answered with [`Incoming::ack`] or
/// [`Incoming::fail`]; dropping it unanswered answers FAIL. Derefs to [`Message`].
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
    pub async fn ack(self) {
        self.answer.send(Outcome::Success);
    }

    /// Not handled: ack FAIL (`reason` goes to `ClientEvent::HandlerFailed`); the
    /// platform delivers it again later.
    pub async fn fail(self, reason: impl Into<String>) {
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
            .finish_non_exhaustive()
    }
}
