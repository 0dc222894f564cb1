//! `serde` feature: how the client's events and their reasons serialize (for bindings
//! and the CLI's `--events json`). The shape is part of the API:
//!
//! - an event ([`crate::client::ClientEvent`]) is an object tagged by `"event"`;
//! - a reason ([`DisconnectReason`], [`RejectReason`]) or a register error
//!   ([`RegisterError`]) is an object with its `"kind"` (the variant in snake_case),
//!   its human `"message"` (its `Display`) and the variant's plain fields;
//! - durations are integer milliseconds in fields ending `_ms`; an
//!   [`std::io::ErrorKind`] is its name (`"ConnectionRefused"`).

use std::fmt::Display;
use std::time::Duration;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

use crate::client::{DisconnectReason, RejectReason};
use crate::register::RegisterError;

/// Serializes a value as its `Display` text.
pub(crate) fn display<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// Serializes a duration as whole milliseconds.
pub(crate) fn ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Serializes an optional duration as whole milliseconds, or `null`.
pub(crate) fn opt_ms<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ms(d, s),
        None => s.serialize_none(),
    }
}

/// Starts a reason's object: `kind` and `message`.
fn open<S: Serializer>(
    s: S,
    kind: &str,
    message: &dyn Display,
) -> Result<S::SerializeMap, S::Error> {
    let mut map = s.serialize_map(None)?;
    map.serialize_entry("kind", kind)?;
    map.serialize_entry("message", &message.to_string())?;
    Ok(map)
}

impl Serialize for DisconnectReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = match self {
            DisconnectReason::Register(_) => "register",
            DisconnectReason::Sign(_) => "sign",
            DisconnectReason::Request(_) => "request",
            DisconnectReason::Handshake(_) => "handshake",
            DisconnectReason::ConnectTimeout => "connect_timeout",
            DisconnectReason::Dead { .. } => "dead",
            DisconnectReason::Network(_) => "network",
            DisconnectReason::Certificate(_) => "certificate",
            DisconnectReason::Tls(_) => "tls",
            DisconnectReason::Proxy(_) => "proxy",
            DisconnectReason::Eof => "eof",
            DisconnectReason::ClosedByPeer { .. } => "closed_by_peer",
            DisconnectReason::Protocol(_) => "protocol",
            DisconnectReason::ReadOverflow { .. } => "read_overflow",
            DisconnectReason::Shutdown => "shutdown",
        };
        let mut map = open(s, kind, self)?;
        match self {
            DisconnectReason::Register(e) => map.serialize_entry("register", e)?,
            DisconnectReason::Dead { silent_for } => {
                map.serialize_entry("silent_for_ms", &millis(*silent_for))?
            }
            DisconnectReason::Network(error) => {
                map.serialize_entry("error", &format!("{error:?}"))?
            }
            DisconnectReason::Certificate(problem) => {
                map.serialize_entry("problem", problem.name())?
            }
            DisconnectReason::ClosedByPeer { code, reason } => {
                map.serialize_entry("code", &code.map(u16::from))?;
                map.serialize_entry("reason", reason)?;
            }
            DisconnectReason::ReadOverflow { limit } => map.serialize_entry("limit", limit)?,
            _ => {}
        }
        map.end()
    }
}

impl Serialize for RejectReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = match self {
            RejectReason::Undecodable(_) => "undecodable",
            RejectReason::Malformed(_) => "malformed",
            RejectReason::Unsigned => "unsigned",
            RejectReason::BadSignature(_) => "bad_signature",
            RejectReason::ForeignAppId { .. } => "foreign_app_id",
            RejectReason::Timestamp { .. } => "timestamp",
            RejectReason::ShuttingDown => "shutting_down",
            RejectReason::NoConsumer { .. } => "no_consumer",
            RejectReason::ClaimedElsewhere => "claimed_elsewhere",
            RejectReason::NotRecorded => "not_recorded",
            RejectReason::Undeliverable(_) => "undeliverable",
            RejectReason::Unexpected { .. } => "unexpected",
        };
        let mut map = open(s, kind, self)?;
        match self {
            RejectReason::ForeignAppId { app_id } => map.serialize_entry("app_id", app_id)?,
            RejectReason::Timestamp {
                timestamp_ms,
                direction,
            } => {
                map.serialize_entry("timestamp_ms", timestamp_ms)?;
                map.serialize_entry("direction", direction)?;
            }
            RejectReason::NoConsumer { waited } => {
                map.serialize_entry("waited_ms", &millis(*waited))?
            }
            RejectReason::Unexpected { cmd } => map.serialize_entry("cmd", cmd.as_str())?,
            _ => {}
        }
        map.end()
    }
}

impl Serialize for RegisterError {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let kind = match self {
            RegisterError::Http(_) => "http",
            RegisterError::Status { .. } => "status",
            RegisterError::Malformed { .. } => "malformed",
            RegisterError::Refused { .. } => "refused",
            RegisterError::Unsigned => "unsigned",
            RegisterError::BadSignature(_) => "bad_signature",
            RegisterError::CertSnMismatch { .. } => "cert_sn_mismatch",
        };
        let mut map = open(s, kind, self)?;
        match self {
            RegisterError::Status { status } => map.serialize_entry("status", status)?,
            RegisterError::Refused {
                code,
                msg,
                sub_code,
                sub_msg,
                signature_verified,
            } => {
                map.serialize_entry("code", code)?;
                map.serialize_entry("msg", msg)?;
                map.serialize_entry("sub_code", sub_code)?;
                map.serialize_entry("sub_msg", sub_msg)?;
                map.serialize_entry("signature_verified", signature_verified)?;
            }
            RegisterError::CertSnMismatch { expected, received } => {
                map.serialize_entry("expected", expected)?;
                map.serialize_entry("received", received)?;
            }
            _ => {}
        }
        map.end()
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
