//! Pushing messages and tracking each one until the client acknowledges it
//! (PROTOCOL §5–6): the ready queue, the per-connection window, ack deadlines and the
//! redelivery schedule.
//!
//! Rules, in one place:
//! - a message is in flight on at most one connection at a time (plus, under the
//!   duplicate fault, one extra copy); each send of it is one attempt;
//! - SUCCESS from the connection it is in flight on (or its duplicate's) completes it;
//! - FAIL, no ack within [`ServerConfig::ack_timeout`](super::ServerConfig::ack_timeout), or its connection closing all
//!   count as a failed attempt: after attempt `n` the message waits
//!   `redelivery[n-1]` (the last value repeating) and is queued again, unless
//!   [`ServerConfig::max_attempts`](super::ServerConfig::max_attempts) is reached, when it is abandoned;
//! - messages go to the app's open connections round robin, at most
//!   [`ServerConfig::max_in_flight_per_connection`](super::ServerConfig::max_in_flight_per_connection) unacknowledged per connection;
//! - a forged message gets exactly one attempt and is then discarded, whatever the
//!   answer.

use std::sync::Arc;
use std::time::Instant;

use crate::charset::Charset;
use crate::consume::{AckStatus, ConsumeAck, ConsumeOut};
use crate::frame::{json_object, write_data, DataHeader, FrameHeaders};
use crate::signature::{SignType, Signer};

use super::faults::{self, corrupt_sign, GARBAGE_FRAME};
use super::{
    ConnectionId, MsgId, PushError, RedeliveryReason, ServerEvent, ServerSession, Timer, TimerKey,
    UnexpectedAck,
};

/// The signed part of a CONSUME, made once per message and reused on every attempt
/// (the signature covers only `data`, not `x-msgId` or `x-timestamp`, PROTOCOL §5).
#[derive(Debug)]
pub(crate) struct Payload {
    app_id: String,
    msg_api: String,
    data: String,
    /// `x-signType` of the signatures.
    sign_type: SignType,
    /// The signature over `data` encoded in UTF-8.
    sign_utf8: String,
    /// The signature over `data` encoded in GBK; `None` when `data` is ASCII, whose
    /// bytes (and so signature) are the same in both charsets.
    sign_gbk: Option<String>,
}

impl Payload {
    /// The signature for a connection whose charset is `charset`: a CONSUME is written
    /// in the connection's charset and signed over those bytes (PROTOCOL §4–5).
    fn sign_in(&self, charset: Charset) -> &str {
        match (charset, &self.sign_gbk) {
            (Charset::Gbk, Some(sign)) => sign,
            _ => &self.sign_utf8,
        }
    }
}

/// A CONSUME body signed once, to push many times with
/// [`ServerSession::push_presigned`] without signing each (benchmarks). Each push gets
/// its own `x-msgId`.
#[derive(Debug, Clone)]
pub struct PresignedContent(Arc<Payload>);

impl PresignedContent {
    /// The app it is for.
    pub fn app_id(&self) -> &str {
        &self.0.app_id
    }

    /// Its message API.
    pub fn msg_api(&self) -> &str {
        &self.0.msg_api
    }
}

/// What was sent in one [`ServerEvent::Delivered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeliveryKind {
    /// A correctly signed CONSUME.
    Genuine,
    /// A CONSUME whose `x-sign` was corrupted ([`super::FaultPlan::corrupt_consumes`]).
    CorruptedSignature,
    /// The second copy of a duplicated CONSUME ([`super::FaultPlan::duplicate_consumes`]).
    Duplicate,
    /// A forged message ([`ServerSession::push_forged`]).
    Forged,
}

/// Where a message stands ([`ServerSession::message_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MessageState {
    /// Waiting for a connection (or for window space).
    Queued {
        /// Attempts made so far.
        attempts: u32,
    },
    /// Sent, waiting for the ack.
    InFlight {
        /// The connection.
        conn: ConnectionId,
        /// This attempt's number.
        attempt: u32,
    },
    /// Failed; queued again at `at`.
    WaitingRetry {
        /// Attempts made so far.
        attempts: u32,
        /// When it becomes ready.
        at: Instant,
    },
    /// Acknowledged SUCCESS.
    Acked {
        /// Attempts it took.
        attempts: u32,
    },
    /// Given up after [`ServerConfig::max_attempts`](super::ServerConfig::max_attempts).
    Abandoned {
        /// Attempts made.
        attempts: u32,
    },
    /// A forged message after its single attempt.
    ForgedDiscarded {
        /// The client's answer (`None`: timeout or disconnect).
        status: Option<AckStatus>,
    },
}

/// Message counts ([`ServerSession::counts`]): live genuine messages by state, and
/// totals since the session started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Waiting for a connection or window space.
    pub queued: usize,
    /// Waiting for their redelivery time.
    pub waiting_retry: usize,
    /// Sent and not yet acknowledged.
    pub in_flight: usize,
    /// Acknowledged SUCCESS, in total.
    pub acked: u64,
    /// Abandoned, in total.
    pub abandoned: u64,
    /// Forged messages discarded, in total.
    pub forged_discarded: u64,
    /// Forged messages the client acknowledged SUCCESS (a client bug), in total.
    pub forged_accepted: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Live {
    Queued,
    InFlight {
        conn: ConnectionId,
        dup: Option<ConnectionId>,
        sent_at: Instant,
    },
    WaitingRetry {
        at: Instant,
    },
}

/// A message not settled yet.
#[derive(Debug)]
pub(crate) struct Message {
    payload: Arc<Payload>,
    forged: bool,
    attempts: u32,
    live: Live,
    timer: Option<TimerKey>,
    /// The connection of the last attempt (for
    /// [`ServerConfig::redeliver_elsewhere`](super::ServerConfig::redeliver_elsewhere)).
    pub(crate) last_conn: Option<ConnectionId>,
}

/// How a message ended, remembered for introspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    Acked { attempts: u32 },
    Abandoned { attempts: u32 },
    ForgedDiscarded { status: Option<AckStatus> },
}

impl ServerSession {
    // ----- pushing -----

    /// Queues a message for `app_id` (PROTOCOL §5–6): `biz_content` must be the text of
    /// one JSON object; the CONSUME's `data` is signed with the platform key once, here.
    /// It is delivered to an open connection of the app as soon as there is one with
    /// window space.
    pub fn push(
        &mut self,
        app_id: &str,
        msg_api: &str,
        biz_content: &str,
        now: Instant,
    ) -> Result<MsgId, PushError> {
        let payload = self.payload(app_id, msg_api, biz_content, None)?;
        self.enqueue(Arc::new(payload), false, now)
    }

    /// Signs a CONSUME body once for [`ServerSession::push_presigned`].
    pub fn presign(
        &self,
        app_id: &str,
        msg_api: &str,
        biz_content: &str,
    ) -> Result<PresignedContent, PushError> {
        self.payload(app_id, msg_api, biz_content, None)
            .map(|p| PresignedContent(Arc::new(p)))
    }

    /// Queues a pre-signed message (a fresh `x-msgId`, the same signed `data`).
    pub fn push_presigned(
        &mut self,
        content: &PresignedContent,
        now: Instant,
    ) -> Result<MsgId, PushError> {
        self.enqueue(Arc::clone(&content.0), false, now)
    }

    /// Queues a forged message: signed with `forger` (a key that is not the platform
    /// key), or with `None` signed by the platform key over different content. A client
    /// must refuse it (answer FAIL, never hand it to the application). It is not a
    /// genuine message: it gets one attempt and is then discarded
    /// ([`ServerEvent::ForgedDiscarded`]), never redelivered, and does not count for
    /// [`ServerSession::is_settled`].
    pub fn push_forged(
        &mut self,
        app_id: &str,
        msg_api: &str,
        biz_content: &str,
        forger: Option<&Signer>,
        now: Instant,
    ) -> Result<MsgId, PushError> {
        let payload = self.payload(app_id, msg_api, biz_content, Some(forger))?;
        self.enqueue(Arc::new(payload), true, now)
    }

    /// Builds and signs a payload. `forge`: `Some(Some(key))` signs with `key`,
    /// `Some(None)` signs other content with the platform key.
    fn payload(
        &self,
        app_id: &str,
        msg_api: &str,
        biz_content: &str,
        forge: Option<Option<&Signer>>,
    ) -> Result<Payload, PushError> {
        let Some(app) = self.config.apps.get(app_id) else {
            return Err(PushError::UnknownApp {
                app_id: app_id.to_owned(),
            });
        };
        if msg_api.is_empty() {
            return Err(PushError::EmptyMsgApi);
        }
        let content =
            json_object(biz_content, &self.config.limits).map_err(PushError::BizContent)?;
        let header = DataHeader {
            app_id: Some(app_id.to_owned()),
            msg_api: Some(msg_api.to_owned()),
            ..DataHeader::default()
        };
        let data = write_data(&header, Some(content));
        // Signed in the app's sign type (PROTOCOL §5): SHA1withRSA for an `RSA` app.
        let platform = self.config.platform_signer(app.sign_type);
        // Signed in both charsets: which one goes out depends on the connection it is
        // sent on (PROTOCOL §4), and a message may be redelivered on another one.
        let sign = |charset| match forge {
            None => platform.sign_text(&data, charset),
            Some(Some(forger)) => forger.sign_text(&data, charset),
            Some(None) => platform.sign_text(&format!("{data} "), charset),
        };
        let sign_utf8 = sign(Charset::Utf8)?;
        let sign_gbk = if data.is_ascii() {
            None
        } else {
            Some(sign(Charset::Gbk)?)
        };
        let sign_type = match forge {
            Some(Some(forger)) => forger.sign_type(),
            _ => platform.sign_type(),
        };
        Ok(Payload {
            app_id: app_id.to_owned(),
            msg_api: msg_api.to_owned(),
            data,
            sign_type,
            sign_utf8,
            sign_gbk,
        })
    }

    fn enqueue(
        &mut self,
        payload: Arc<Payload>,
        forged: bool,
        now: Instant,
    ) -> Result<MsgId, PushError> {
        if self.messages.len() >= self.config.max_queued {
            return Err(PushError::QueueFull {
                limit: self.config.max_queued,
            });
        }
        let id = self.next_msg_id();
        self.apps
            .entry(payload.app_id.clone())
            .or_default()
            .ready
            .push_back(id.clone());
        self.messages.insert(
            id.clone(),
            Message {
                payload,
                forged,
                attempts: 0,
                live: Live::Queued,
                timer: None,
                last_conn: None,
            },
        );
        if !forged {
            self.genuine_live += 1;
        }
        self.finish(now);
        Ok(id)
    }

    // ----- sending -----

    /// Sends ready messages to connections with window space, app by app (in app id
    /// order, so runs are reproducible), round robin over each app's connections.
    pub(crate) fn pump(&mut self, now: Instant) {
        let mut apps: Vec<String> = self
            .apps
            .iter()
            .filter(|(_, a)| !a.ready.is_empty() && !a.conns.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        apps.sort_unstable();
        for app_id in apps {
            while self.apps.get(&app_id).is_some_and(|a| !a.ready.is_empty()) {
                let Some(conn) = self.pick_conn(&app_id) else {
                    break;
                };
                let Some(id) = self.apps.get_mut(&app_id).and_then(|a| a.ready.pop_front()) else {
                    break;
                };
                let conn = self.redelivery_conn(&app_id, &id, conn);
                self.send_message(id, conn, now);
            }
        }
    }

    /// The next connection of the app, round robin, that is open and has window space.
    pub(crate) fn pick_conn(&mut self, app_id: &str) -> Option<ConnectionId> {
        let window = self.config.max_in_flight_per_connection;
        let app = self.apps.get_mut(app_id)?;
        let n = app.conns.len();
        for i in 0..n {
            let idx = (app.next + i) % n;
            let conn = app.conns[idx];
            let open = self
                .connections
                .get(&conn)
                .is_some_and(|c| !c.closing && c.in_flight.len() < window);
            if open {
                app.next = (idx + 1) % n;
                return Some(conn);
            }
        }
        None
    }

    /// One attempt: the CONSUME (with the armed faults) on `conn`, then the ack
    /// deadline.
    fn send_message(&mut self, id: MsgId, conn: ConnectionId, now: Instant) {
        let Some(m) = self.messages.get_mut(&id) else {
            return;
        };
        m.attempts = m.attempts.saturating_add(1);
        m.last_conn = Some(conn);
        let attempt = m.attempts;
        let forged = m.forged;
        let payload = Arc::clone(&m.payload);
        let corrupt = !forged && faults::take(&mut self.faults.corrupt_consumes);
        let duplicate = faults::take(&mut self.faults.duplicate_consumes);
        let garbage = faults::take(&mut self.faults.garbage_before_consumes);
        let dup_conn = duplicate.then(|| self.other_conn(&payload.app_id, conn));
        if let Some(m) = self.messages.get_mut(&id) {
            m.live = Live::InFlight {
                conn,
                dup: dup_conn,
                sent_at: now,
            };
        }
        if let Some(c) = self.connections.get_mut(&conn) {
            c.in_flight.insert(id.clone());
        }
        let deadline = now.checked_add(self.config.ack_timeout).unwrap_or(now);
        let key = self.add_timer(deadline, Timer::AckTimeout(id.clone()));
        if let Some(m) = self.messages.get_mut(&id) {
            m.timer = Some(key);
        }

        let charset = self.connection_charset(conn).unwrap_or_default();
        let text = self.consume_text(&id, &payload, corrupt, charset, now);
        if garbage {
            self.send_frame(conn, GARBAGE_FRAME.to_owned());
            self.event(ServerEvent::GarbageSent { conn });
        }
        let kind = match (forged, corrupt) {
            (true, _) => DeliveryKind::Forged,
            (false, true) => DeliveryKind::CorruptedSignature,
            (false, false) => DeliveryKind::Genuine,
        };
        let dup_copy = dup_conn.map(|dup| {
            // The copy is written in its own connection's charset.
            let dup_charset = self.connection_charset(dup).unwrap_or_default();
            let text = if dup_charset == charset {
                text.clone()
            } else {
                self.consume_text(&id, &payload, corrupt, dup_charset, now)
            };
            (dup, text)
        });
        self.send_frame(conn, text);
        self.event(ServerEvent::Delivered {
            msg_id: id.clone(),
            conn,
            attempt,
            kind,
        });
        if let Some((dup, text)) = dup_copy {
            self.send_frame(dup, text);
            self.event(ServerEvent::Delivered {
                msg_id: id,
                conn: dup,
                attempt,
                kind: DeliveryKind::Duplicate,
            });
        }
    }

    /// Another open connection of the app for a duplicate copy, else `conn` itself.
    fn other_conn(&self, app_id: &str, conn: ConnectionId) -> ConnectionId {
        self.apps
            .get(app_id)
            .and_then(|a| {
                a.conns
                    .iter()
                    .copied()
                    .find(|c| *c != conn && self.connections.get(c).is_some_and(|x| !x.closing))
            })
            .unwrap_or(conn)
    }

    /// The CONSUME text: header lines, `x-msgId`, `x-timestamp` = wall clock now, the
    /// signed `data` (PROTOCOL §4–5), with `x-charset` and the signature of `charset`, the
    /// charset of the connection it goes out on.
    fn consume_text(
        &mut self,
        id: &MsgId,
        payload: &Payload,
        corrupt: bool,
        charset: Charset,
        now: Instant,
    ) -> String {
        self.stream_seq += 1;
        let headers = FrameHeaders {
            from_sys: Some(self.config.from_sys.clone()),
            from_sys_ip: Some(self.config.from_sys_ip.clone()),
            stream_id: Some(format!("s{:011}", self.stream_seq)),
        };
        let corrupted;
        let sign = match payload.sign_in(charset) {
            sign if corrupt => {
                corrupted = corrupt_sign(sign);
                corrupted.as_str()
            }
            sign => sign,
        };
        let header = DataHeader::default();
        ConsumeOut {
            headers: &headers,
            msg_id: id.as_str(),
            timestamp_ms: self.clock.unix_ms(now),
            data_header: &header,
            biz_content: "{}",
            charset,
        }
        .encode_with_sign(&payload.data, Some((payload.sign_type, sign)))
    }

    // ----- acks, timeouts, disconnects -----

    /// A CONSUME_ACK from `conn` (PROTOCOL §6).
    pub(crate) fn on_ack(&mut self, conn: ConnectionId, ack: ConsumeAck, now: Instant) {
        let unexpected = |reason| ServerEvent::UnexpectedAck {
            conn,
            msg_id: ack.msg_id.clone(),
            status: ack.status,
            reason,
        };
        let Some((id, m)) = self.messages.get_key_value(ack.msg_id.as_str()) else {
            let reason = if self.settled.contains_key(ack.msg_id.as_str()) {
                UnexpectedAck::NotInFlight
            } else {
                UnexpectedAck::UnknownMsgId
            };
            self.event(unexpected(reason));
            return;
        };
        let (primary, sent_at) = match m.live {
            Live::InFlight {
                conn: c,
                dup,
                sent_at,
            } if c == conn || dup == Some(conn) => (c, sent_at),
            Live::InFlight { .. } => {
                self.event(unexpected(UnexpectedAck::WrongConnection));
                return;
            }
            _ => {
                self.event(unexpected(UnexpectedAck::NotInFlight));
                return;
            }
        };
        let id = id.clone();
        self.leave_flight(&id, primary);
        let Some(m) = self.messages.get(&id) else {
            return;
        };
        let (attempts, forged) = (m.attempts, m.forged);
        if forged {
            if ack.status == AckStatus::Success {
                self.totals.forged_accepted += 1;
            }
            self.settle(
                &id,
                Settled::ForgedDiscarded {
                    status: Some(ack.status),
                },
            );
            return;
        }
        self.event(ServerEvent::Acked {
            msg_id: id.clone(),
            conn,
            status: ack.status,
            attempt: attempts,
            latency: now.saturating_duration_since(sent_at),
        });
        match ack.status {
            AckStatus::Success => self.settle(&id, Settled::Acked { attempts }),
            AckStatus::Fail => self.fail_attempt(&id, RedeliveryReason::Fail, now),
        }
    }

    /// Takes a message out of flight: cancels its timer, frees its window slot.
    fn leave_flight(&mut self, id: &MsgId, conn: ConnectionId) {
        if let Some(m) = self.messages.get_mut(id) {
            if let Some(key) = m.timer.take() {
                self.timers.remove(&key);
            }
        }
        if let Some(c) = self.connections.get_mut(&conn) {
            c.in_flight.remove(id);
        }
    }

    /// The ack deadline of a message passed (its timer is already removed).
    pub(crate) fn on_ack_timeout(&mut self, id: &MsgId, now: Instant) {
        let Some(m) = self.messages.get_mut(id) else {
            return;
        };
        m.timer = None;
        if let Live::InFlight { conn, .. } = m.live {
            self.leave_flight(id, conn);
            self.fail_attempt(id, RedeliveryReason::AckTimeout, now);
        }
    }

    /// A redelivery wait ended: the message is ready again.
    pub(crate) fn on_retry_due(&mut self, id: &MsgId) {
        let Some(m) = self.messages.get_mut(id) else {
            return;
        };
        m.timer = None;
        if let Live::WaitingRetry { .. } = m.live {
            m.live = Live::Queued;
            let app_id = m.payload.app_id.clone();
            self.apps
                .entry(app_id)
                .or_default()
                .ready
                .push_back(id.clone());
        }
    }

    /// An attempt failed (FAIL, ack timeout, disconnect; the message is already out of
    /// flight): discard if forged, abandon at `max_attempts`, else schedule.
    fn fail_attempt(&mut self, id: &MsgId, reason: RedeliveryReason, now: Instant) {
        let Some(m) = self.messages.get(id) else {
            return;
        };
        let attempts = m.attempts;
        if m.forged {
            self.settle(id, Settled::ForgedDiscarded { status: None });
            return;
        }
        if self.config.max_attempts.is_some_and(|max| attempts >= max) {
            self.settle(id, Settled::Abandoned { attempts });
            return;
        }
        let wait = self.config.redelivery_wait(attempts);
        let at = now.checked_add(wait).unwrap_or(now);
        let key = self.add_timer(at, Timer::Retry(id.clone()));
        if let Some(m) = self.messages.get_mut(id) {
            m.live = Live::WaitingRetry { at };
            m.timer = Some(key);
        }
        self.event(ServerEvent::RedeliveryScheduled {
            msg_id: id.clone(),
            attempts,
            at,
            reason,
        });
    }

    /// Forgets a connection; its in-flight messages fail (in id order, which is push
    /// order, so runs are reproducible).
    pub(crate) fn close_connection(&mut self, conn: ConnectionId, by_server: bool, now: Instant) {
        let Some(c) = self.connections.remove(&conn) else {
            return;
        };
        if let Some(app) = self.apps.get_mut(&c.app_id) {
            app.conns.retain(|x| *x != conn);
            if app.next >= app.conns.len() {
                app.next = 0;
            }
        }
        let mut ids: Vec<MsgId> = c.in_flight.into_iter().collect();
        ids.sort_unstable();
        self.event(ServerEvent::Disconnected {
            conn,
            by_server,
            unacked: ids.len(),
        });
        for id in ids {
            self.leave_flight(&id, conn);
            self.fail_attempt(&id, RedeliveryReason::Disconnected, now);
        }
    }

    /// Ends a message: removes it, records how it ended (bounded), reports it.
    fn settle(&mut self, id: &MsgId, how: Settled) {
        let Some(m) = self.messages.remove(id) else {
            return;
        };
        if !m.forged {
            self.genuine_live = self.genuine_live.saturating_sub(1);
        }
        match how {
            Settled::Acked { .. } => self.totals.acked += 1,
            Settled::Abandoned { attempts } => {
                self.totals.abandoned += 1;
                self.event(ServerEvent::Abandoned {
                    msg_id: id.clone(),
                    attempts,
                });
            }
            Settled::ForgedDiscarded { status } => {
                self.totals.forged_discarded += 1;
                self.event(ServerEvent::ForgedDiscarded {
                    msg_id: id.clone(),
                    status,
                });
            }
        }
        let cap = self.config.max_settled_records;
        if cap == 0 {
            return;
        }
        while self.settled_order.len() >= cap {
            match self.settled_order.pop_front() {
                Some(old) => {
                    self.settled.remove(&old);
                }
                None => break,
            }
        }
        self.settled_order.push_back(id.clone());
        self.settled.insert(id.clone(), how);
    }

    // ----- introspection -----

    /// Live genuine messages by state, and totals.
    pub fn counts(&self) -> MessageCounts {
        let mut counts = self.totals;
        for m in self.messages.values().filter(|m| !m.forged) {
            match m.live {
                Live::Queued => counts.queued += 1,
                Live::InFlight { .. } => counts.in_flight += 1,
                Live::WaitingRetry { .. } => counts.waiting_retry += 1,
            }
        }
        counts
    }

    /// No genuine message is queued, waiting for redelivery or in flight.
    pub fn is_settled(&self) -> bool {
        self.genuine_live == 0
    }

    /// Where a message stands; `None` for ids never pushed or forgotten (see
    /// [`ServerConfig::max_settled_records`](super::ServerConfig::max_settled_records)).
    pub fn message_state(&self, msg_id: &str) -> Option<MessageState> {
        if let Some(m) = self.messages.get(msg_id) {
            return Some(match m.live {
                Live::Queued => MessageState::Queued {
                    attempts: m.attempts,
                },
                Live::InFlight { conn, .. } => MessageState::InFlight {
                    conn,
                    attempt: m.attempts,
                },
                Live::WaitingRetry { at } => MessageState::WaitingRetry {
                    attempts: m.attempts,
                    at,
                },
            });
        }
        self.settled.get(msg_id).map(|s| match *s {
            Settled::Acked { attempts } => MessageState::Acked { attempts },
            Settled::Abandoned { attempts } => MessageState::Abandoned { attempts },
            Settled::ForgedDiscarded { status } => MessageState::ForgedDiscarded { status },
        })
    }

    /// Messages acknowledged SUCCESS, in ack order, with the attempts each took (the
    /// most recent [`ServerConfig::max_settled_records`](super::ServerConfig::max_settled_records) settled messages).
    pub fn acked_messages(&self) -> Vec<(MsgId, u32)> {
        self.settled_order
            .iter()
            .filter_map(|id| match self.settled.get(id) {
                Some(Settled::Acked { attempts }) => Some((id.clone(), *attempts)),
                _ => None,
            })
            .collect()
    }
}
