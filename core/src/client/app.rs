//! What the application sees, the same on every runtime: a verified [`Message`], the
//! [`ClientEvent`]s worth logging, and the [`ClientError`] of a client call; and the
//! one routing of session events to them that every adapter shares
//! ([`Application`], [`super::ClientSession::dispatch`]).

use std::fmt;
use std::time::Duration;

use crate::key::KeyWarning;
use crate::register::RegisterError;

use super::{ConfigError, Delivery, DeliveryId, DisconnectReason, Event, SendError};
use crate::produce_ack::ProduceAck;
use serde::de::DeserializeOwned;

/// A verified platform message (a CONSUME whose signature checked out).
#[derive(Debug, Clone)]
pub struct Message {
    delivery: Delivery,
}

impl Message {
    /// The message of a delivery (adapters build these from [`Event::Message`]).
    pub fn new(delivery: Delivery) -> Self {
        Message { delivery }
    }

    /// The delivery to complete with [`super::ClientSession::complete`].
    pub fn delivery_id(&self) -> DeliveryId {
        self.delivery.id
    }

    /// `x-msgId`: the same across redeliveries.
    pub fn msg_id(&self) -> &str {
        self.delivery.msg_id()
    }

    /// The message kind, e.g. `alipay.open.mini.version.audit.passed`.
    pub fn msg_api(&self) -> &str {
        self.delivery.msg_api()
    }

    /// The app id the message is for (always this client's).
    pub fn app_id(&self) -> &str {
        self.delivery.frame.app_id().unwrap_or_default()
    }

    /// `x-timestamp`, milliseconds since the epoch, when present.
    pub fn timestamp_ms(&self) -> Option<i64> {
        self.delivery.frame.timestamp_ms
    }

    /// The business content: exact text of the verified JSON object.
    pub fn biz_content(&self) -> &str {
        self.delivery.biz_content()
    }

    /// The business content deserialised.
    pub fn biz<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.biz_content())
    }
}

/// What happens on the connection, for logs and metrics (the adapters' `events()`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A connection attempt started.
    Connecting {
        /// Attempt number since the last successful connection.
        attempt: u32,
    },
    /// A key of the configuration loaded but is weak ([`super::Credentials::warnings`]);
    /// published at start-up, before the first connection attempt.
    KeyWarning {
        /// Which key: `"app private key"` or `"platform public key"`.
        which: &'static str,
        /// What is wrong with it.
        warning: KeyWarning,
    },
    /// Connected.
    Connected,
    /// The connection or attempt ended.
    Disconnected {
        /// Why.
        reason: String,
        /// When the next attempt starts, if one will.
        retry_in: Option<Duration>,
    },
    /// A frame was not delivered (unsigned, forged, foreign app id, stale, malformed).
    Rejected {
        /// `x-msgId`, when known.
        msg_id: Option<String>,
        /// Why.
        reason: String,
    },
    /// A redelivered message was not handed to the handler again.
    Duplicate {
        /// `x-msgId`.
        msg_id: String,
    },
    /// A handler failed (returned an error or panicked): the message was acked FAIL and
    /// will be redelivered.
    HandlerFailed {
        /// `x-msgId`.
        msg_id: String,
        /// The error.
        error: String,
    },
    /// The platform refused the configuration; the client stopped.
    Fatal(String),
    /// Shutdown finished.
    ShutdownComplete,
}

impl fmt::Display for ClientEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientEvent::Connecting { attempt } => write!(f, "connecting (attempt {attempt})"),
            ClientEvent::KeyWarning { which, warning } => write!(f, "warning: {which}: {warning}"),
            ClientEvent::Connected => f.write_str("connected"),
            ClientEvent::Disconnected { reason, retry_in } => match retry_in {
                Some(d) => write!(f, "disconnected: {reason}; retrying in {d:?}"),
                None => write!(f, "disconnected: {reason}"),
            },
            ClientEvent::Rejected { msg_id, reason } => {
                write!(
                    f,
                    "rejected {}: {reason}",
                    msg_id.as_deref().unwrap_or("(no id)")
                )
            }
            ClientEvent::Duplicate { msg_id } => write!(f, "duplicate {msg_id} suppressed"),
            ClientEvent::HandlerFailed { msg_id, error } => {
                write!(f, "handler failed for {msg_id}: {error}")
            }
            ClientEvent::Fatal(e) => write!(f, "fatal: {e}"),
            ClientEvent::ShutdownComplete => f.write_str("shut down"),
        }
    }
}

impl ClientEvent {
    /// The application-facing form of a session event; `None` for the events an
    /// adapter handles itself (`Message`, `ProduceAck`).
    pub fn from_event(event: &Event) -> Option<ClientEvent> {
        Some(match event {
            Event::Connecting { attempt } => ClientEvent::Connecting { attempt: *attempt },
            Event::Connected => ClientEvent::Connected,
            Event::Disconnected { reason, retry_in } => ClientEvent::Disconnected {
                reason: describe(reason),
                retry_in: *retry_in,
            },
            Event::Duplicate { msg_id, .. } => ClientEvent::Duplicate {
                msg_id: msg_id.clone(),
            },
            Event::Rejected { msg_id, reason } => ClientEvent::Rejected {
                msg_id: msg_id.clone(),
                reason: reason.to_string(),
            },
            Event::Fatal(error) => ClientEvent::Fatal(error.to_string()),
            Event::GaveUp { waited, last } => ClientEvent::Fatal(
                ClientError::ConnectTimeout {
                    waited: *waited,
                    last: last.clone().map(Box::new),
                }
                .to_string(),
            ),
            Event::KeyWarning { which, warning } => ClientEvent::KeyWarning {
                which,
                warning: *warning,
            },
            Event::ShutdownComplete => ClientEvent::ShutdownComplete,
            Event::Message(_) | Event::ProduceAck { .. } => return None,
        })
    }
}

/// An adapter's application side: where [`super::ClientSession::dispatch`] sends what
/// each session [`Event`] means — the adapter only says how its channels carry it.
pub trait Application {
    /// Hands a verified message to the application. `Err(reason)` when nobody takes it
    /// any more (shutting down): the session then answers FAIL and the platform
    /// delivers it again.
    fn deliver(&mut self, message: Message) -> Result<(), String>;

    /// The PRODUCE_ACK (or failure) of the send whose `stream-id` is `stream_id`.
    fn produce_ack(&mut self, stream_id: String, result: Result<ProduceAck, SendError>);

    /// A connection opened (`Ok`, after every (re)connection), or the session stopped
    /// before one did (`Err`: [`ClientError::Refused`] when the platform refused the
    /// configuration, [`ClientError::ConnectTimeout`] past `first_connect_timeout`):
    /// what a pending `connect` returns. Called after the matching event is published.
    fn connect_result(&mut self, result: Result<(), ClientError>);

    /// An event for subscribers ([`ClientEvent`]).
    fn publish(&mut self, event: ClientEvent);
}

fn describe(reason: &DisconnectReason) -> String {
    reason.to_string()
}

/// Why a client call failed, on every runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration is invalid (reported before any connection).
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// Registration failed for good: the platform refused the configuration
    /// ([`RegisterError::is_platform_refusal`]), or this client refused the platform's
    /// answer (e.g. its signature does not verify with the configured platform key).
    /// The message says which.
    #[error("registration failed: {0}")]
    Refused(RegisterError),
    /// A send failed or got no answer.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The business content could not be serialised.
    #[error("biz content: {0}")]
    Json(#[from] serde_json::Error),
    /// The client has shut down.
    #[error("the client has shut down")]
    Closed,
    /// `run` or `deliveries` was already called.
    #[error("deliveries are already being consumed (run or deliveries was called before)")]
    AlreadyConsuming,
    /// No connection within the time allowed (`ClientConfig::first_connect_timeout`,
    /// or the blocking client's `connect_timeout`).
    #[error("not connected within {waited:?}{}", last.as_ref().map(|l| format!("; last attempt: {l}")).unwrap_or_default())]
    ConnectTimeout {
        /// The time allowed.
        waited: std::time::Duration,
        /// Why the last attempt failed, if one did (boxed: it holds a whole
        /// [`DisconnectReason`], and every `Result` of the clients carries this type).
        last: Option<Box<DisconnectReason>>,
    },
    /// A socket or thread could not be set up.
    #[error("{0}")]
    Io(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_timeout_names_the_last_cause() {
        let error = ClientError::ConnectTimeout {
            waited: Duration::from_secs(2),
            last: Some(Box::new(DisconnectReason::Network(
                std::io::ErrorKind::ConnectionRefused,
            ))),
        };
        assert_eq!(
            error.to_string(),
            "not connected within 2s; last attempt: network error: connection refused"
        );
    }
}
