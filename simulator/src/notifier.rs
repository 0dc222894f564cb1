//! Sending HTTP notifications as the platform does (PROTOCOL §10): POST the signed form
//! body, and again on [`NOTIFY_RETRY_SCHEDULE`] until the answer is `success`.
//!
//! Each notification is a task of its own (at most [`NotifyOptions::max_pending`]), and
//! at most [`NotifyOptions::max_concurrent_posts`] POSTs are in progress at once. A POST
//! is one HTTP/1.1 request on a connection of its own (hyper's client connection, plain
//! TCP: `http://` targets only) with [`NotifyOptions::request_timeout`] for the whole
//! exchange; the answer body is read up to [`MAX_ANSWER_BYTES`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alipay_msg_core::client::HumanDuration;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use super::event::SimulatorEvent;
use super::listener::stop_requested;
use super::notification::{BuiltNotification, Defaults, NotificationError, PlatformNotification};
use super::platform::{self, Request};

/// The waits between the attempts of a notification not answered `success`: 4 min,
/// 10 min, 10 min, 1 h, 2 h, 6 h, 15 h — 8 attempts over about 25 hours (24 h 24 min),
/// then the platform gives up.
///
/// Source: the platform's published notification rule (open platform documentation,
/// "异步通知说明", <https://opendocs.alipay.com/open/270/105902>: "如果商户反馈给支付宝的字符不是
/// success 这7个字符，支付宝服务器会不断重发通知，直到超过 24 小时 22 分钟。一般情况下，25
/// 小时以内完成 8 次通知（通知的间隔频率一般是：4m,10m,10m,1h,2h,6h,15h）"), PROTOCOL §10.
/// The same page says the `notify_id` stays the same on every re-send; whether the
/// other parameters (`notify_time`) change is not published, so the simulator re-sends
/// the same bytes.
pub const NOTIFY_RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(4 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(3600),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(6 * 3600),
    Duration::from_secs(15 * 3600),
];

/// The answer that settles a notification: the HTTP status 200 and a body of exactly
/// these 7 bytes, no whitespace, no other letter case.
///
/// The platform's documentation asks for exactly the 7 characters `success` and says
/// the page must print nothing else, "such as spaces" ("必须保证服务器异步通知页面上无任何字符，如空格、HTML
/// 标签…", <https://opendocs.alipay.com/open/270/105902>); it does not say whether the
/// platform trims what it reads, and the Java SDK has no part in it (it is the
/// platform's side). The simulator compares exactly, the strict reading, so that an
/// endpoint that passes here does not depend on the platform being lenient. A redirect
/// or an error status is not an answer ("如果执行页面跳转，支付宝会收不到 success 字符").
pub const SUCCESS_ANSWER: &[u8] = b"success";

/// Most bytes of an answer body read; a longer body is not `success`.
pub const MAX_ANSWER_BYTES: usize = 1024;

/// Answer text kept in events (characters).
const ANSWER_QUOTE_CHARS: usize = 64;

/// How the simulator sends HTTP notifications ([`crate::SimulatorOptions::notify`]).
///
/// ```
/// use alipay_msg_simulator::SimulatorOptions;
/// // Tests: 4 min becomes 240 ms, the whole 25 h schedule about 88 s.
/// let options = SimulatorOptions::with_test_keys().notify_time_scale(0.001);
/// assert_eq!(options.notify.time_scale, 0.001);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NotifyOptions {
    /// Multiplies every wait of [`NOTIFY_RETRY_SCHEDULE`]: 1.0 (the default) is the
    /// platform's real schedule; 0.001 makes 4 min 240 ms. In (0, 1]; anything else is
    /// refused at start (`InvalidInput`). Timeouts are not scaled.
    pub time_scale: f64,
    /// POSTs in progress at once (default 16); further attempts wait their turn.
    pub max_concurrent_posts: usize,
    /// Notifications not yet settled (being sent or waiting for a retry) at once
    /// (default 10 000); more are refused ([`NotificationError::TooManyPending`]).
    pub max_pending: usize,
    /// The time one POST may take, connecting, sending and reading the whole answer
    /// (default 15 s; the platform's is not published). Over it, the attempt failed.
    pub request_timeout: Duration,
}

impl Default for NotifyOptions {
    fn default() -> Self {
        NotifyOptions {
            time_scale: 1.0,
            max_concurrent_posts: 16,
            max_pending: 10_000,
            request_timeout: Duration::from_secs(15),
        }
    }
}

impl NotifyOptions {
    /// Refuses a time scale outside (0, 1] (NaN included) and zero bounds.
    pub(crate) fn check(&self) -> Result<(), &'static str> {
        if !(self.time_scale > 0.0 && self.time_scale <= 1.0) {
            return Err("notify time scale must be in (0, 1]");
        }
        if self.max_concurrent_posts == 0 || self.max_pending == 0 {
            return Err("notify max_concurrent_posts and max_pending must be at least 1");
        }
        if self.request_timeout.is_zero() || self.request_timeout > Duration::from_secs(3600) {
            return Err("notify request_timeout must be in (0, 1 h]");
        }
        Ok(())
    }

    /// A wait of the schedule, scaled.
    fn scaled(&self, wait: Duration) -> Duration {
        // The scale is in (0, 1] (checked at start): the product is finite and small.
        Duration::try_from_secs_f64(wait.as_secs_f64() * self.time_scale).unwrap_or(wait)
    }
}

/// Counts of the HTTP notifications sent ([`crate::Simulator::notification_counts`],
/// `notifications` in `GET /admin/status`). Genuine and forged notifications are counted
/// apart: `posted + forged = answered_success + given_up + forged_refused +
/// forged_accepted + pending`, and `attempts = answered_success + failed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NotificationCounts {
    /// Genuine notifications accepted for sending.
    pub posted: u64,
    /// POSTs of genuine notifications (every attempt).
    pub attempts: u64,
    /// Genuine notifications answered `success` (each once).
    pub answered_success: u64,
    /// Attempts of genuine notifications not answered `success` (another body or
    /// status, no answer, a timeout).
    pub failed: u64,
    /// Genuine notifications never answered `success` in all their attempts.
    pub given_up: u64,
    /// Notifications (genuine or forged) being sent or waiting for a retry.
    pub pending: u64,
    /// Forged notifications accepted for sending.
    pub forged: u64,
    /// Forged notifications the endpoint refused (any answer but `success`): right.
    pub forged_refused: u64,
    /// Forged notifications the endpoint answered `success`: an endpoint bug.
    pub forged_accepted: u64,
}

/// What the endpoint answered one POST.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotifyAnswer {
    /// Status 200 and exactly [`SUCCESS_ANSWER`].
    Success,
    /// Any other answer: its status and body (lossy UTF-8, at most 64 characters).
    Other {
        /// The HTTP status.
        status: u16,
        /// The body, cut.
        body: String,
    },
    /// No answer: connection refused, a broken exchange, a timeout, a body over
    /// [`MAX_ANSWER_BYTES`].
    NoAnswer {
        /// Why.
        reason: String,
    },
}

impl NotifyAnswer {
    /// Whether this settles the notification.
    pub fn is_success(&self) -> bool {
        matches!(self, NotifyAnswer::Success)
    }

    fn of(status: u16, body: &[u8]) -> Self {
        if status == 200 && body == SUCCESS_ANSWER {
            NotifyAnswer::Success
        } else {
            NotifyAnswer::Other {
                status,
                body: String::from_utf8_lossy(body)
                    .chars()
                    .take(ANSWER_QUOTE_CHARS)
                    .collect(),
            }
        }
    }
}

impl fmt::Display for NotifyAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifyAnswer::Success => f.write_str("answered success"),
            NotifyAnswer::Other { status, body } => {
                write!(f, "answered {body:?} (HTTP {status})")
            }
            NotifyAnswer::NoAnswer { reason } => write!(f, "no answer ({reason})"),
        }
    }
}

/// What follows an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NextAttempt {
    /// Answered `success` (or a forgery's one attempt is over): nothing more.
    None,
    /// Another attempt after `wait` (the platform's `scheduled` wait, scaled).
    After {
        /// The wait, scaled by [`NotifyOptions::time_scale`].
        wait: Duration,
        /// The wait of [`NOTIFY_RETRY_SCHEDULE`].
        scheduled: Duration,
    },
    /// Not answered `success` in its last attempt: given up.
    GivenUp,
}

/// Where to POST: from an `http://` URL.
#[derive(Debug, Clone)]
struct Target {
    /// The host to connect to (brackets of an IPv6 literal removed).
    host: String,
    port: u16,
    /// The `Host` header: the URL's authority.
    authority: String,
    /// Path and query.
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, NotificationError> {
        let bad = |reason| NotificationError::Url {
            url: url.chars().take(200).collect(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(bad(
                    "https is not supported: the simulator posts plain http:// only",
                ))
            }
            _ => return Err(bad("expected http://host[:port]/path")),
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Target {
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            path: uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
        })
    }
}

/// The notification sender of one simulator: shared by the handle and the admin
/// endpoint.
pub(crate) struct Notifier {
    sending: Arc<Sending>,
    /// The platform task, which holds the platform key: bodies are signed there.
    requests: mpsc::Sender<Request>,
    app_id: String,
    ids: Mutex<IdSource>,
    tasks: Mutex<JoinSet<()>>,
}

/// What each notification's task shares.
struct Sending {
    options: NotifyOptions,
    posts: Semaphore,
    counts: watch::Sender<NotificationCounts>,
    events: broadcast::Sender<SimulatorEvent>,
    stop: watch::Receiver<bool>,
}

/// New `notify_id`s, `trade_no`s and `out_trade_no`s: unique to this run (a number
/// drawn at start) and in sending order.
struct IdSource {
    run: u64,
    next: u64,
}

impl Notifier {
    pub(crate) fn new(
        options: NotifyOptions,
        requests: mpsc::Sender<Request>,
        events: broadcast::Sender<SimulatorEvent>,
        stop: watch::Receiver<bool>,
        app_id: String,
        run: u64,
    ) -> Self {
        let (counts, _) = watch::channel(NotificationCounts::default());
        Notifier {
            sending: Arc::new(Sending {
                posts: Semaphore::new(options.max_concurrent_posts.max(1)),
                options,
                counts,
                events,
                stop,
            }),
            requests,
            app_id,
            ids: Mutex::new(IdSource {
                run: run % 1_000_000_000_000,
                next: 1,
            }),
            tasks: Mutex::new(JoinSet::new()),
        }
    }

    /// Checks, signs and starts sending `notification`; returns its `notify_id`.
    pub(crate) async fn submit(
        &self,
        notification: PlatformNotification,
    ) -> Result<String, SubmitError> {
        notification.check()?;
        let target = Target::parse(&notification.url)?;
        let unix_ms = super::unix_ms();
        let china_time = ChinaTime::of_unix_ms(unix_ms);
        let serial = {
            // A poisoned lock would mean a panic while counting: none here.
            let mut ids = self.ids.lock().expect("lock not poisoned");
            let serial = ids.next;
            ids.next += 1;
            (ids.run, serial)
        };
        let date = china_time.date_digits();
        let notify_id = notification
            .notify_id
            .clone()
            .unwrap_or_else(|| format!("{date}{:012}{:014}", serial.0, serial.1));
        let out_trade_no = format!("SIM{date}{:08}", serial.1);
        let trade_no = format!("{date}2200{:06}{:010}", serial.0 % 1_000_000, serial.1);
        let app_id = self.app_id.clone();
        let forged = notification.forged;
        let built = platform::call(&self.requests, move |platform, _| {
            let config = platform.session.config();
            let defaults = Defaults {
                app_id: &app_id,
                notify_id: &notify_id,
                out_trade_no: &out_trade_no,
                trade_no: &trade_no,
                unix_ms,
                china_time: china_time.to_string(),
            };
            notification.build(
                config.platform_signer(notification.sign_type),
                config.platform_cert_sn.as_deref(),
                &defaults,
            )
        })
        .await
        .ok_or(SubmitError::Stopped)??;
        self.start(target, built, forged)
    }

    fn start(
        &self,
        target: Target,
        built: BuiltNotification,
        forged: bool,
    ) -> Result<String, SubmitError> {
        let limit = self.sending.options.max_pending;
        let mut admitted = false;
        self.sending.counts.send_if_modified(|c| {
            if c.pending >= u64::try_from(limit).unwrap_or(u64::MAX) {
                return false;
            }
            admitted = true;
            c.pending += 1;
            if forged {
                c.forged += 1;
            } else {
                c.posted += 1;
            }
            true
        });
        if !admitted {
            return Err(NotificationError::TooManyPending { limit }.into());
        }
        let notify_id = built.notify_id.clone();
        let _ = self
            .sending
            .events
            .send(SimulatorEvent::NotificationQueued {
                notify_id: notify_id.clone(),
                url: format!("http://{}{}", target.authority, target.path),
                summary: built.summary.clone(),
                forged,
            });
        let sending = Arc::clone(&self.sending);
        let mut stop = self.sending.stop.clone();
        // A poisoned lock would mean a panic while spawning: none here.
        let mut tasks = self.tasks.lock().expect("lock not poisoned");
        // Forget the tasks that ended, so the set stays as small as what is pending.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            tokio::select! {
                () = stop_requested(&mut stop) => {}
                () = deliver(&sending, &target, built, forged) => {}
            }
        });
        Ok(notify_id)
    }

    /// The counts so far.
    pub(crate) fn counts(&self) -> NotificationCounts {
        *self.sending.counts.borrow()
    }

    /// Resolves when no notification is pending (at once when none is): `true`, or
    /// `false` when the simulator stops first.
    pub(crate) async fn wait_settled(&self) -> bool {
        let mut counts = self.sending.counts.subscribe();
        let mut stop = self.sending.stop.clone();
        tokio::select! {
            biased;
            // The sender lives as long as `self`.
            settled = counts.wait_for(|c| c.pending == 0) => settled.is_ok(),
            () = stop_requested(&mut stop) => false,
        }
    }

    /// Stops every notification task (the stop flag is set already) and waits for them.
    pub(crate) async fn shutdown(&self) {
        let mut tasks = std::mem::take(&mut *self.tasks.lock().expect("lock not poisoned"));
        tasks.shutdown().await;
    }
}

/// Why [`Notifier::submit`] failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SubmitError {
    #[error(transparent)]
    Notification(#[from] NotificationError),
    #[error("the simulator has stopped")]
    Stopped,
}

/// Sends one notification until it is settled.
async fn deliver(sending: &Sending, target: &Target, built: BuiltNotification, forged: bool) {
    let attempts = if forged {
        1
    } else {
        NOTIFY_RETRY_SCHEDULE.len() + 1
    };
    let body = Bytes::from(built.body);
    for attempt in 1..=attempts {
        let answer = {
            // The semaphore is never closed.
            let Ok(_permit) = sending.posts.acquire().await else {
                return;
            };
            post(
                target,
                body.clone(),
                &built.content_type,
                sending.options.request_timeout,
            )
            .await
        };
        let success = answer.is_success();
        let next = if success || forged {
            NextAttempt::None
        } else {
            match NOTIFY_RETRY_SCHEDULE.get(attempt - 1) {
                Some(&scheduled) => NextAttempt::After {
                    wait: sending.options.scaled(scheduled),
                    scheduled,
                },
                None => NextAttempt::GivenUp,
            }
        };
        // The event first: whoever sees the counts settle finds it sent already.
        let _ = sending.events.send(SimulatorEvent::NotificationAttempt {
            notify_id: built.notify_id.clone(),
            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            of: u32::try_from(attempts).unwrap_or(u32::MAX),
            answer,
            next,
            forged,
        });
        sending.counts.send_modify(|c| {
            if forged {
                if success {
                    c.forged_accepted += 1;
                } else {
                    c.forged_refused += 1;
                }
            } else {
                c.attempts += 1;
                if success {
                    c.answered_success += 1;
                } else {
                    c.failed += 1;
                }
                if next == NextAttempt::GivenUp {
                    c.given_up += 1;
                }
            }
            if !matches!(next, NextAttempt::After { .. }) {
                c.pending = c.pending.saturating_sub(1);
            }
        });
        match next {
            NextAttempt::After { wait, .. } => tokio::time::sleep(wait).await,
            _ => return,
        }
    }
}

/// One POST and its answer, within `timeout`.
async fn post(target: &Target, body: Bytes, content_type: &str, timeout: Duration) -> NotifyAnswer {
    match tokio::time::timeout(timeout, exchange(target, body, content_type)).await {
        Ok(Ok((status, body))) => NotifyAnswer::of(status, &body),
        Ok(Err(reason)) => NotifyAnswer::NoAnswer { reason },
        Err(_) => NotifyAnswer::NoAnswer {
            reason: format!("no answer within {}", HumanDuration(timeout)),
        },
    }
}

/// Connects, sends the request, reads the status and at most [`MAX_ANSWER_BYTES`] of
/// the body.
async fn exchange(
    target: &Target,
    body: Bytes,
    content_type: &str,
) -> Result<(u16, Vec<u8>), String> {
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("connect to {}: {e}", target.authority))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let request = hyper::Request::post(target.path.as_str())
        .header(HOST, target.authority.as_str())
        .header(CONTENT_TYPE, content_type)
        .header(CONNECTION, "close")
        .header(USER_AGENT, "alipay-msg-simulator")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let answer = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?;
        Ok::<_, String>((status, body.to_bytes().to_vec()))
    };
    tokio::pin!(answer, connection);
    tokio::select! {
        biased;
        answered = &mut answer => answered,
        ended = &mut connection => {
            // The connection may end (`Connection: close`) with the answer read.
            ended.map_err(|e| e.to_string())?;
            answer.await
        }
    }
}

/// A time as the platform writes `notify_time`: China Standard Time (UTC+8), no
/// daylight saving.
#[derive(Debug, Clone, Copy)]
struct ChinaTime(time::OffsetDateTime);

impl ChinaTime {
    fn of_unix_ms(unix_ms: i64) -> Self {
        let utc = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        // +08:00 is a valid offset.
        let cst = time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC);
        ChinaTime(utc.to_offset(cst))
    }

    /// `yyyyMMdd`.
    fn date_digits(&self) -> String {
        let t = self.0;
        format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day())
    }
}

impl fmt::Display for ChinaTime {
    /// `yyyy-MM-dd HH:mm:ss`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_the_platforms() {
        let total: Duration = NOTIFY_RETRY_SCHEDULE.iter().sum();
        assert_eq!(total, Duration::from_secs(24 * 3600 + 24 * 60));
        assert_eq!(NOTIFY_RETRY_SCHEDULE.len() + 1, 8);
        let options = NotifyOptions {
            time_scale: 0.001,
            ..NotifyOptions::default()
        };
        assert_eq!(
            options.scaled(NOTIFY_RETRY_SCHEDULE[0]),
            Duration::from_millis(240)
        );
        assert_eq!(
            NotifyOptions::default().scaled(NOTIFY_RETRY_SCHEDULE[6]),
            Duration::from_secs(15 * 3600)
        );
    }

    #[test]
    fn options_are_checked() {
        assert!(NotifyOptions::default().check().is_ok());
        for scale in [0.0, -1.0, 1.5, f64::NAN, f64::INFINITY] {
            let options = NotifyOptions {
                time_scale: scale,
                ..NotifyOptions::default()
            };
            assert!(options.check().is_err(), "{scale}");
        }
        let options = NotifyOptions {
            max_pending: 0,
            ..NotifyOptions::default()
        };
        assert!(options.check().is_err());
    }

    #[test]
    fn only_exactly_success_settles() {
        assert!(NotifyAnswer::of(200, b"success").is_success());
        for (status, body) in [
            (200, &b"success\n"[..]),
            (200, b" success"),
            (200, b"SUCCESS"),
            (200, b"fail"),
            (500, b"success"),
            (302, b"success"),
        ] {
            assert!(
                !NotifyAnswer::of(status, body).is_success(),
                "{status} {body:?}"
            );
        }
        assert_eq!(
            NotifyAnswer::of(200, b"fail").to_string(),
            "answered \"fail\" (HTTP 200)"
        );
        let long = NotifyAnswer::of(500, &[b'x'; 300]);
        assert!(matches!(long, NotifyAnswer::Other { ref body, .. } if body.len() == 64));
    }

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:8080/alipay/notify?x=1").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.authority.as_str(),
                t.path.as_str()
            ),
            ("127.0.0.1", 8080, "127.0.0.1:8080", "/alipay/notify?x=1")
        );
        let t = Target::parse("http://[::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 80));
        let t = Target::parse("http://localhost:1").unwrap();
        assert_eq!(t.path, "/");
        for (url, reason) in [
            ("https://example.com/n", "https is not supported"),
            ("ftp://x/", "expected http://"),
            ("/notify", "expected http://"),
            ("http://", "not a URL"),
            ("not a url", "not a URL"),
        ] {
            let e = Target::parse(url).unwrap_err().to_string();
            assert!(e.contains(reason), "{url}: {e}");
        }
    }

    #[test]
    fn china_time() {
        // 2026-11-20 02:21:35 UTC is 10:21:35 in China.
        let t = ChinaTime::of_unix_ms(1_795_141_295_000);
        assert_eq!(t.to_string(), "2026-11-20 10:21:35");
        assert_eq!(t.date_digits(), "20261120");
        // Past midnight in China, still the day before in UTC.
        let t = ChinaTime::of_unix_ms(1_795_104_000_000);
        assert_eq!(t.to_string(), "2026-11-20 00:00:00");
    }
}
