//! What the application sees, the same on every runtime: a verified [`Message`], the
//! [`ClientEvent`]s worth logging, and the [`ClientError`] of a client call; and the
//! one routing of session events to them that every adapter shares
//! ([`Application`], [`super::ClientSession::dispatch`]).

use std::fmt;
use std::time::Duration;

use crate::key::KeyWarning;
use crate::register::RegisterError;

use super::output::HumanDuration;
use super::{ConfigError, Delivery, DeliveryId, DisconnectReason, Event, RejectReason, SendError};
use crate::produce_ack::ProduceAck;
use crate::window::WindowError;
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
/// `Display` is one human line; with the `serde` feature it serializes as one JSON
/// object tagged by `"event"` (`"connected"`, `"disconnected"`, …), durations in
/// milliseconds (`retry_in_ms`, `waited_ms`), reasons as objects with a `"kind"` and
/// their human `"message"`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(tag = "event", rename_all = "snake_case")
)]
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
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_impls::display")
        )]
        warning: KeyWarning,
    },
    /// Connected (every time, the first connection included).
    Connected,
    /// The connection or attempt ended.
    Disconnected {
        /// Why.
        reason: DisconnectReason,
        /// When the next attempt starts, if one will.
        #[cfg_attr(
            feature = "serde",
            serde(rename = "retry_in_ms", serialize_with = "crate::serde_impls::opt_ms")
        )]
        retry_in: Option<Duration>,
    },
    /// A frame was not delivered (unsigned, forged, foreign app id, stale, malformed;
    /// shutting down; no consumer attached).
    Rejected {
        /// `x-msgId`, when known.
        msg_id: Option<String>,
        /// Why.
        reason: RejectReason,
    },
    /// A redelivered message was not handed to the handler again.
    Duplicate {
        /// `x-msgId`.
        msg_id: String,
    },
    /// A handler failed (returned an error, panicked, or its message was dropped
    /// unanswered): the message was acked FAIL and will be redelivered.
    HandlerFailed {
        /// `x-msgId`.
        msg_id: String,
        /// The application's text of the failure.
        error: String,
    },
    /// The platform refused the configuration (or this client refused the platform's
    /// register answer); the client stopped. `connect` and `run` return
    /// [`ClientError::Refused`] with the same error.
    Fatal(RegisterError),
    /// No connection opened within `first_connect_timeout`; the client stopped.
    /// `connect` returns [`ClientError::ConnectTimeout`] with the same fields.
    GaveUp {
        /// `first_connect_timeout`.
        #[cfg_attr(
            feature = "serde",
            serde(rename = "waited_ms", serialize_with = "crate::serde_impls::ms")
        )]
        waited: Duration,
        /// Why the last attempt failed, if one did.
        last: Option<DisconnectReason>,
    },
    /// The shared duplicate window could not answer a `claim` or a `record`: the
    /// message was acked FAIL (or, with `fallback`, went on with the local window).
    /// While the store is away every message reports this: the stall is visible here.
    SharedWindowFailed {
        /// `x-msgId`.
        msg_id: String,
        /// `claim` or `record`.
        op: &'static str,
        /// The store's error text.
        #[cfg_attr(
            feature = "serde",
            serde(serialize_with = "crate::serde_impls::display")
        )]
        error: WindowError,
        /// Went on with the local window instead of acking FAIL.
        fallback: bool,
    },
    /// The shared duplicate window answers again after `failures` failed queries.
    SharedWindowRestored {
        /// Failed queries in a row before this answer.
        failures: u64,
    },
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
                Some(d) if d.is_zero() => write!(f, "disconnected: {reason}; retrying now"),
                Some(d) => write!(
                    f,
                    "disconnected: {reason}; retrying in {}",
                    HumanDuration(*d)
                ),
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
            ClientEvent::GaveUp { waited, last } => {
                write!(f, "fatal: not connected within {}", HumanDuration(*waited))?;
                match last {
                    Some(last) => write!(f, "; last attempt: {last}"),
                    None => Ok(()),
                }
            }
            ClientEvent::SharedWindowFailed {
                msg_id,
                op,
                error,
                fallback,
            } => {
                write!(f, "{op} of {msg_id} failed: {error}; ")?;
                f.write_str(if *fallback {
                    "going on with the local window"
                } else {
                    "answered FAIL"
                })
            }
            ClientEvent::SharedWindowRestored { failures } => write!(
                f,
                "shared duplicate window answers again (after {failures} failed queries)"
            ),
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
                reason: reason.clone(),
                retry_in: *retry_in,
            },
            Event::Duplicate { msg_id, .. } => ClientEvent::Duplicate {
                msg_id: msg_id.clone(),
            },
            Event::Rejected { msg_id, reason } => ClientEvent::Rejected {
                msg_id: msg_id.clone(),
                reason: reason.clone(),
            },
            Event::HandlerFailed { msg_id, error } => ClientEvent::HandlerFailed {
                msg_id: msg_id.clone(),
                error: error.clone(),
            },
            Event::Fatal(error) => ClientEvent::Fatal(error.clone()),
            Event::GaveUp { waited, last } => ClientEvent::GaveUp {
                waited: *waited,
                last: last.clone(),
            },
            Event::KeyWarning { which, warning } => ClientEvent::KeyWarning {
                which,
                warning: *warning,
            },
            Event::SharedWindowFailed {
                msg_id,
                op,
                error,
                fallback,
            } => ClientEvent::SharedWindowFailed {
                msg_id: msg_id.clone(),
                op,
                error: error.clone(),
                fallback: *fallback,
            },
            Event::SharedWindowRestored { failures } => ClientEvent::SharedWindowRestored {
                failures: *failures,
            },
            Event::ShutdownComplete => ClientEvent::ShutdownComplete,
            Event::Message(_) | Event::ProduceAck { .. } => return None,
        })
    }
}

/// Why [`Application::deliver`] could not hand a message to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    /// Nobody receives deliveries any more (the consumer ended, or shutting down).
    #[error("nobody receives deliveries any more")]
    Closed,
    /// The application's queue is full (adapters size it to `max_in_flight`, which
    /// the session never exceeds, so this is a bug in the adapter).
    #[error("the delivery queue is full")]
    Full,
}

/// An adapter's application side: where [`super::ClientSession::dispatch`] sends what
/// each session [`Event`] means — the adapter only says how its channels carry it.
pub trait Application {
    /// Hands a verified message to the application's consumer (the session hands
    /// messages out only while one is attached: [`super::ClientSession::set_consumer`]).
    /// `Err` when nobody takes it any more: the session then answers FAIL (the
    /// platform delivers it again) and publishes [`ClientEvent::Rejected`] with
    /// [`super::RejectReason::Undeliverable`].
    fn deliver(&mut self, message: Message) -> Result<(), DeliverError>;

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
    #[error("not connected within {}{}", HumanDuration(*waited), last.as_ref().map(|l| format!("; last attempt: {l}")).unwrap_or_default())]
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

    /// Every event kind serializes to one tagged JSON object of a stable shape.
    #[cfg(feature = "serde")]
    #[test]
    fn events_serialize_as_tagged_json() {
        use crate::ws::CloseCode;
        use serde_json::json;
        let json = |event: ClientEvent| serde_json::to_value(&event).unwrap();
        assert_eq!(
            json(ClientEvent::Connecting { attempt: 2 }),
            json!({"event": "connecting", "attempt": 2})
        );
        assert_eq!(
            json(ClientEvent::KeyWarning {
                which: "app private key",
                warning: KeyWarning::SmallModulus { bits: 1024 },
            }),
            json!({
                "event": "key_warning",
                "which": "app private key",
                "warning": KeyWarning::SmallModulus { bits: 1024 }.to_string(),
            })
        );
        assert_eq!(json(ClientEvent::Connected), json!({"event": "connected"}));
        assert_eq!(
            json(ClientEvent::Disconnected {
                reason: DisconnectReason::Network(std::io::ErrorKind::ConnectionRefused),
                retry_in: Some(Duration::from_millis(1500)),
            }),
            json!({
                "event": "disconnected",
                "reason": {
                    "kind": "network",
                    "message": "network error: connection refused",
                    "error": "ConnectionRefused",
                },
                "retry_in_ms": 1500,
            })
        );
        assert_eq!(
            json(ClientEvent::Disconnected {
                reason: DisconnectReason::ClosedByPeer {
                    code: Some(CloseCode::GOING_AWAY),
                    reason: "bye".into(),
                },
                retry_in: None,
            })["reason"],
            json!({
                "kind": "closed_by_peer",
                "message": DisconnectReason::ClosedByPeer {
                    code: Some(CloseCode::GOING_AWAY),
                    reason: "bye".into(),
                }
                .to_string(),
                "code": 1001,
                "reason": "bye",
            })
        );
        assert_eq!(
            json(ClientEvent::Rejected {
                msg_id: Some("m1".into()),
                reason: RejectReason::NoConsumer {
                    waited: Duration::from_millis(500),
                },
            }),
            json!({
                "event": "rejected",
                "msg_id": "m1",
                "reason": {
                    "kind": "no_consumer",
                    "message": RejectReason::NoConsumer { waited: Duration::from_millis(500) }.to_string(),
                    "waited_ms": 500,
                },
            })
        );
        assert_eq!(
            json(ClientEvent::Rejected {
                msg_id: None,
                reason: RejectReason::Unsigned,
            }),
            json!({
                "event": "rejected",
                "msg_id": null,
                "reason": {"kind": "unsigned", "message": "unsigned message"},
            })
        );
        assert_eq!(
            json(ClientEvent::Duplicate {
                msg_id: "m2".into()
            }),
            json!({"event": "duplicate", "msg_id": "m2"})
        );
        assert_eq!(
            json(ClientEvent::HandlerFailed {
                msg_id: "m3".into(),
                error: "boom".into(),
            }),
            json!({"event": "handler_failed", "msg_id": "m3", "error": "boom"})
        );
        let refused = RegisterError::Refused {
            code: "40002".into(),
            msg: "Invalid Arguments".into(),
            sub_code: Some("isv.invalid-app-id".into()),
            sub_msg: None,
            signature_verified: true,
        };
        assert_eq!(
            json(ClientEvent::Fatal(refused.clone())),
            json!({
                "event": "fatal",
                "kind": "refused",
                "message": refused.to_string(),
                "code": "40002",
                "msg": "Invalid Arguments",
                "sub_code": "isv.invalid-app-id",
                "sub_msg": null,
                "signature_verified": true,
            })
        );
        assert_eq!(
            json(ClientEvent::GaveUp {
                waited: Duration::from_secs(2),
                last: Some(DisconnectReason::ConnectTimeout),
            }),
            json!({
                "event": "gave_up",
                "waited_ms": 2000,
                "last": {"kind": "connect_timeout", "message": "connect attempt timed out"},
            })
        );
        assert_eq!(
            json(ClientEvent::Disconnected {
                reason: DisconnectReason::Register(refused.clone()),
                retry_in: None,
            })["reason"]["register"]["code"],
            json!("40002")
        );
        assert_eq!(
            json(ClientEvent::ShutdownComplete),
            json!({"event": "shutdown_complete"})
        );
    }

    #[test]
    fn gave_up_reads_as_the_connect_timeout() {
        let last = DisconnectReason::Network(std::io::ErrorKind::ConnectionRefused);
        let event = ClientEvent::GaveUp {
            waited: Duration::from_secs(2),
            last: Some(last.clone()),
        };
        let error = ClientError::ConnectTimeout {
            waited: Duration::from_secs(2),
            last: Some(Box::new(last)),
        };
        assert_eq!(event.to_string(), format!("fatal: {error}"));
    }

    #[test]
    fn retry_delays_read_as_people_write_them() {
        let disconnected = |ms| ClientEvent::Disconnected {
            reason: DisconnectReason::Eof,
            retry_in: Some(Duration::from_millis(ms)),
        };
        assert!(disconnected(0).to_string().ends_with("; retrying now"));
        assert!(disconnected(1_200)
            .to_string()
            .ends_with("; retrying in 1.2 s"));
        assert!(disconnected(350)
            .to_string()
            .ends_with("; retrying in 350 ms"));
    }

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
            "not connected within 2 s; last attempt: network error: connection refused"
        );
    }
}
