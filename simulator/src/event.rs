//! What the simulator reports: the platform state machine's events, the pushes it was
//! asked for and the HTTP notifications it sends, each printable as one readable line.

use std::fmt;
use std::time::Instant;

use alipay_msg_core::charset::MalformedText;
use alipay_msg_core::client::HumanDuration;
use alipay_msg_core::consume::AckStatus;
use alipay_msg_core::server::{
    ConnectionId, DeliveryKind, MsgId, ProduceAnswer, RedeliveryReason, ServerEvent, UnexpectedAck,
};

use super::notifier::{NextAttempt, NotifyAnswer};

/// One thing that happened in the simulator ([`super::Simulator::events`]). `Display`
/// prints it as one line, e.g. `deliver 17954304000000000001 on conn#1 (attempt 1)`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimulatorEvent {
    /// A message was queued ([`super::Simulator::push`], the admin endpoint or a push
    /// file).
    Pushed {
        /// Its `x-msgId`.
        msg_id: MsgId,
        /// The app it is for.
        app_id: String,
        /// Its message API.
        msg_api: String,
        /// Pushed with [`super::Simulator::push_forged`]: the client must refuse it.
        forged: bool,
    },
    /// An event of the platform state machine.
    Server(ServerEvent),
    /// An HTTP notification was signed and queued for sending
    /// ([`super::Simulator::notify`], `POST /admin/notify`).
    NotificationQueued {
        /// Its `notify_id`.
        notify_id: String,
        /// Where it is posted.
        url: String,
        /// What it is: kind, status or method, rule, charset, sign type, mode.
        summary: String,
        /// A forgery: one attempt, the endpoint must refuse it.
        forged: bool,
    },
    /// One POST of an HTTP notification, its answer and what follows.
    NotificationAttempt {
        /// Its `notify_id`.
        notify_id: String,
        /// This attempt, from 1.
        attempt: u32,
        /// How many attempts it gets at most (8: [`super::NOTIFY_RETRY_SCHEDULE`] plus
        /// the first; 1 for a forgery).
        of: u32,
        /// What the endpoint answered.
        answer: NotifyAnswer,
        /// What follows.
        next: NextAttempt,
        /// A forgery.
        forged: bool,
    },
    /// A client sent a text frame whose bytes are not valid in its connection's charset:
    /// the simulator closed the connection with 1007, as the platform's Java client does
    /// (PROTOCOL §4).
    UndecodableText {
        /// The connection.
        conn: ConnectionId,
        /// The charset and where the first malformed sequence starts.
        error: MalformedText,
    },
}

impl fmt::Display for SimulatorEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimulatorEvent::Pushed {
                msg_id,
                app_id,
                msg_api,
                forged,
            } => {
                let what = if *forged { "forged message" } else { "message" };
                write!(f, "push {msg_id}: {what} {msg_api} for app {app_id} queued")
            }
            SimulatorEvent::Server(event) => server_event(event, f),
            SimulatorEvent::NotificationQueued {
                notify_id,
                url,
                summary,
                forged,
            } => {
                let forged = if *forged { "forged " } else { "" };
                write!(f, "notify {notify_id}: {forged}{summary} to {url} queued")
            }
            SimulatorEvent::NotificationAttempt {
                notify_id,
                attempt,
                of,
                answer,
                next,
                forged,
            } => {
                let label = if *forged { " (forged)" } else { "" };
                write!(
                    f,
                    "notify {notify_id}{label} attempt {attempt}/{of}: {answer}"
                )?;
                match next {
                    _ if *forged && answer.is_success() => {
                        f.write_str("; the endpoint ACCEPTED a forgery: endpoint bug")
                    }
                    _ if *forged => f.write_str("; refused, as it must be"),
                    NextAttempt::After { wait, scheduled } if wait == scheduled => {
                        write!(f, "; next attempt in {}", HumanDuration(*wait))
                    }
                    NextAttempt::After { wait, scheduled } => write!(
                        f,
                        "; next attempt in {} ({} on the platform's schedule)",
                        HumanDuration(*wait),
                        HumanDuration(*scheduled)
                    ),
                    NextAttempt::GivenUp => write!(f, "; given up after {attempt} attempts"),
                    _ => f.write_str("; done"),
                }
            }
            SimulatorEvent::UndecodableText { conn, error } => {
                write!(f, "{conn}: text frame refused ({error}); closed with 1007")
            }
        }
    }
}

fn server_event(event: &ServerEvent, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match event {
        ServerEvent::Registered { app_id } => {
            write!(f, "register.do: link token issued to app {app_id}")
        }
        ServerEvent::RegisterRefused { app_id, sub_code } => write!(
            f,
            "register.do refused ({sub_code}) for app {}",
            app_id.as_deref().unwrap_or("(none)")
        ),
        ServerEvent::Connected { conn, app_id, zone } => match zone {
            Some(zone) => write!(f, "{conn} connected: app {app_id}, zone {zone}"),
            None => write!(f, "{conn} connected: app {app_id}"),
        },
        ServerEvent::UpgradeRefused { app_id, refusal } => write!(
            f,
            "websocket upgrade refused (HTTP {}): {refusal}; app {}",
            refusal.http_status(),
            app_id.as_deref().unwrap_or("(none)")
        ),
        ServerEvent::Disconnected {
            conn,
            by_server,
            unacked,
        } => write!(
            f,
            "{conn} disconnected by the {}; {unacked} unacked message(s) to redeliver",
            if *by_server { "platform" } else { "client" }
        ),
        ServerEvent::Delivered {
            msg_id,
            conn,
            attempt,
            kind,
        } => {
            let kind = match kind {
                DeliveryKind::Genuine => "",
                DeliveryKind::CorruptedSignature => ", corrupted signature",
                DeliveryKind::Duplicate => ", duplicate copy",
                DeliveryKind::Forged => ", forged",
                _ => ", other",
            };
            write!(f, "deliver {msg_id} on {conn} (attempt {attempt}{kind})")
        }
        ServerEvent::GarbageSent { conn } => write!(f, "garbage frame sent on {conn}"),
        ServerEvent::Acked {
            msg_id,
            conn,
            status,
            attempt,
            latency,
        } => write!(
            f,
            "ack {status} for {msg_id} on {conn} (attempt {attempt}, {:.1} ms after sending)",
            latency.as_secs_f64() * 1e3
        ),
        ServerEvent::RedeliveryScheduled {
            msg_id,
            attempts,
            at,
            reason,
        } => {
            let reason = match reason {
                RedeliveryReason::Fail => "client answered FAIL",
                RedeliveryReason::AckTimeout => "no ack in time",
                RedeliveryReason::Disconnected => "connection closed",
                _ => "other",
            };
            let wait = at.saturating_duration_since(Instant::now());
            write!(
                f,
                "redeliver {msg_id} in {} ms ({reason}; {attempts} attempt(s) so far)",
                wait.as_millis()
            )
        }
        ServerEvent::Abandoned { msg_id, attempts } => {
            write!(f, "abandon {msg_id} after {attempts} attempts")
        }
        ServerEvent::ForgedDiscarded { msg_id, status } => match status {
            Some(AckStatus::Success) => write!(
                f,
                "forged {msg_id} ACCEPTED by the client (SUCCESS): client bug"
            ),
            Some(AckStatus::Fail) => write!(f, "forged {msg_id} refused by the client (FAIL)"),
            None => write!(f, "forged {msg_id} discarded without an ack"),
        },
        ServerEvent::UnexpectedAck {
            conn,
            msg_id,
            status,
            reason,
        } => {
            let reason = match reason {
                UnexpectedAck::UnknownMsgId => "unknown x-msgId",
                UnexpectedAck::NotInFlight => "not in flight",
                UnexpectedAck::WrongConnection => "in flight on another connection",
                _ => "other",
            };
            write!(f, "ignored ack {status} for {msg_id} on {conn}: {reason}")
        }
        ServerEvent::Produced {
            conn,
            stream_id,
            msg_api,
            verdict,
            msg_id,
            biz_content,
            answer,
        } => {
            write!(
                f,
                "produce {} on {conn} (stream {}): {}",
                msg_api.as_deref().unwrap_or("(no msgApi)"),
                stream_id.as_deref().unwrap_or("(none)"),
                verdict.code
            )?;
            if let Some(error) = verdict.error {
                write!(f, " {error}")?;
            }
            if let Some(msg_id) = msg_id {
                write!(f, ", msg_id {msg_id}")?;
            }
            match answer {
                ProduceAnswer::Sent => {}
                ProduceAnswer::Delayed { at } => write!(
                    f,
                    ", answer delayed {} ms",
                    at.saturating_duration_since(Instant::now()).as_millis()
                )?,
                ProduceAnswer::Withheld => f.write_str(", answer withheld")?,
                ProduceAnswer::NoStreamId => f.write_str(", not answered (no stream-id)")?,
                _ => {}
            }
            if let Some(content) = biz_content {
                write!(f, ": {content}")?;
            }
            Ok(())
        }
        ServerEvent::MalformedFromClient { conn, error } => {
            write!(f, "malformed frame from {conn}: {error}")
        }
        ServerEvent::TextOnUnknownConnection { conn } => {
            write!(f, "text on closed {conn} ignored")
        }
        other => write!(f, "{other:?}"),
    }
}
