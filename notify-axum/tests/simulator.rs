//! End to end: the simulator signs HTTP notifications with the platform key and POSTs
//! them (retrying on the platform's schedule, time-scaled) to the axum endpoint served
//! on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alipay_msg_axum::alipay_msg_core::cert::{platform_cert, platform_cert_sn, Certificate};
use alipay_msg_axum::alipay_msg_core::key::PublicKey;
use alipay_msg_axum::alipay_msg_core::sign_content::Rule;
use alipay_msg_axum::alipay_msg_core::signature::{SignType, Verifier};
use alipay_msg_axum::{Notification, Notifications, NotifyEvent, NotifyGate};
use alipay_msg_simulator::{
    test_keys, NextAttempt, NotificationCounts, NotifyAnswer, PlatformNotification, Simulator,
    SimulatorEvent, SimulatorOptions, NOTIFY_RETRY_SCHEDULE,
};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

const CERTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/certs");

/// A bound for things that take milliseconds; a test fails rather than hangs.
const PATIENCE: Duration = Duration::from_secs(30);

fn verifier() -> Verifier {
    Verifier::new(&PublicKey::from_pem_or_base64(test_keys::PLATFORM_PUBLIC_KEY).unwrap()).unwrap()
}

/// The platform public-key certificate of the tests and its SN.
fn platform_certificate() -> (Verifier, String) {
    let pem = std::fs::read_to_string(format!("{CERTS}/alipay_cert.crt")).unwrap();
    let chain = Certificate::all_from_pem(&pem).unwrap();
    let key = platform_cert(&chain)
        .and_then(Certificate::public_key)
        .unwrap();
    (
        Verifier::new(&key).unwrap(),
        platform_cert_sn(&chain).unwrap(),
    )
}

/// The application behind the endpoint: fails its first `fail_first` runs, records
/// what it handled and the endpoint's events.
#[derive(Default)]
struct App {
    calls: AtomicUsize,
    fail_first: usize,
    handled: Mutex<Vec<Notification>>,
    events: Mutex<Vec<String>>,
}

impl App {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    fn handled(&self) -> Vec<Notification> {
        self.handled.lock().unwrap().clone()
    }
}

/// Serves `gate` at `/alipay/notify` on 127.0.0.1:0; returns its URL.
async fn serve(gate: NotifyGate, fail_first: usize) -> (String, Arc<App>) {
    let app = Arc::new(App {
        fail_first,
        ..App::default()
    });
    let (handler_app, event_app) = (Arc::clone(&app), Arc::clone(&app));
    let notifications = Notifications::new(gate, move |n: Notification| {
        let app = Arc::clone(&handler_app);
        async move {
            let call = app.calls.fetch_add(1, Ordering::SeqCst);
            if call < app.fail_first {
                return Err(format!("cannot store {} yet", n.notify_id().unwrap_or("?")));
            }
            app.handled.lock().unwrap().push(n);
            Ok(())
        }
    })
    .on_event(move |e: &NotifyEvent<String>| {
        event_app.events.lock().unwrap().push(format!("{e:?}"));
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let router = notifications.into_router("/alipay/notify");
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (format!("http://{addr}/alipay/notify"), app)
}

/// A simulator with the test keys whose retry schedule runs `scale` times as fast.
async fn simulator(scale: f64) -> Simulator {
    let (_, sn) = platform_certificate();
    let options = SimulatorOptions::with_test_keys()
        .notify_time_scale(scale)
        .platform_cert_sn(sn);
    Simulator::start(options).await.unwrap()
}

async fn settled(sim: &Simulator) -> NotificationCounts {
    tokio::time::timeout(PATIENCE, sim.wait_notifications_settled())
        .await
        .expect("notifications settle")
        .unwrap();
    sim.notification_counts()
}

/// The attempts reported so far: (notify_id, attempt, answer, next).
fn attempts(
    events: &mut broadcast::Receiver<SimulatorEvent>,
) -> Vec<(String, u32, NotifyAnswer, NextAttempt)> {
    let mut out = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let SimulatorEvent::NotificationAttempt {
            notify_id,
            attempt,
            answer,
            next,
            ..
        } = event
        {
            out.push((notify_id, attempt, answer, next));
        }
    }
    out
}

fn fail_answer() -> NotifyAnswer {
    NotifyAnswer::Other {
        status: 200,
        body: "fail".to_owned(),
    }
}

#[tokio::test]
async fn a_payment_is_handled_once_and_answered_success() {
    let sim = simulator(1.0).await;
    let (url, app) = serve(NotifyGate::new(verifier(), test_keys::APP_ID), 0).await;
    let mut events = sim.events();
    let notify_id = sim
        .notify(
            PlatformNotification::payment(url)
                .with_field("out_trade_no", "20261120102126001")
                .with_field("total_amount", "66.60"),
        )
        .await
        .unwrap();
    let counts = settled(&sim).await;
    assert_eq!(
        (
            counts.posted,
            counts.attempts,
            counts.answered_success,
            counts.failed
        ),
        (1, 1, 1, 0)
    );
    assert_eq!(app.calls(), 1);
    match &app.handled()[..] {
        [Notification::Trade(trade)] => {
            assert_eq!(trade.notify_id, notify_id);
            assert_eq!(trade.app_id, test_keys::APP_ID);
            assert_eq!(trade.out_trade_no, "20261120102126001");
            assert_eq!(trade.total_amount.as_deref(), Some("66.60"));
            assert!(trade.trade_status.is_paid());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        attempts(&mut events),
        [(notify_id, 1, NotifyAnswer::Success, NextAttempt::None)]
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_same_notify_id_again_is_answered_success_without_the_handler() {
    let sim = simulator(1.0).await;
    let (url, app) = serve(NotifyGate::new(verifier(), test_keys::APP_ID), 0).await;
    let mut notification = PlatformNotification::payment(url);
    notification.notify_id = Some("2026112000222102134003881455040001".to_owned());
    sim.notify(notification.clone()).await.unwrap();
    settled(&sim).await;
    sim.notify(notification).await.unwrap();
    let counts = settled(&sim).await;
    assert_eq!((counts.posted, counts.answered_success), (2, 2));
    assert_eq!(app.calls(), 1, "the duplicate runs no handler");
    let events = app.events();
    assert!(events[0].starts_with("Handled"), "{events:?}");
    assert!(events[1].starts_with("Duplicate"), "{events:?}");
}

#[tokio::test]
async fn a_forgery_is_refused_and_sent_once() {
    let sim = simulator(1.0).await;
    let (url, app) = serve(NotifyGate::new(verifier(), test_keys::APP_ID), 0).await;
    let mut events = sim.events();
    let mut forged = PlatformNotification::payment(url);
    forged.forged = true;
    let notify_id = sim.notify(forged).await.unwrap();
    let counts = settled(&sim).await;
    assert_eq!(
        (
            counts.forged,
            counts.forged_refused,
            counts.forged_accepted,
            counts.posted,
            counts.attempts
        ),
        (1, 1, 0, 0, 0)
    );
    assert_eq!(app.calls(), 0);
    assert!(
        app.events()[0].contains("BadSignature"),
        "{:?}",
        app.events()
    );
    assert_eq!(
        attempts(&mut events),
        [(notify_id, 1, fail_answer(), NextAttempt::None)]
    );
}

/// Another app's notification is refused on every attempt, and the simulator gives up
/// after the eighth (the whole 25 h schedule in under a second).
#[tokio::test]
async fn another_apps_notification_is_refused_until_given_up() {
    let sim = simulator(0.00001).await;
    let (url, app) = serve(NotifyGate::new(verifier(), test_keys::APP_ID), 0).await;
    let mut events = sim.events();
    let mut notification = PlatformNotification::payment(url);
    notification.app_id = Some("2021000000009999".to_owned());
    sim.notify(notification).await.unwrap();
    let counts = settled(&sim).await;
    assert_eq!(
        (
            counts.posted,
            counts.attempts,
            counts.failed,
            counts.given_up,
            counts.answered_success,
            counts.pending
        ),
        (1, 8, 8, 1, 0, 0)
    );
    assert_eq!(app.calls(), 0);
    let events_seen = app.events();
    assert_eq!(events_seen.len(), 8);
    assert!(
        events_seen.iter().all(|e| e.contains("ForeignAppId")),
        "{events_seen:?}"
    );
    let seen = attempts(&mut events);
    let nexts: Vec<NextAttempt> = seen.iter().map(|(_, _, _, next)| *next).collect();
    let mut expected: Vec<NextAttempt> = NOTIFY_RETRY_SCHEDULE
        .iter()
        .map(|&scheduled| NextAttempt::After {
            wait: Duration::try_from_secs_f64(scheduled.as_secs_f64() * 0.00001).unwrap(),
            scheduled,
        })
        .collect();
    expected.push(NextAttempt::GivenUp);
    assert_eq!(nexts, expected);
}

#[tokio::test]
async fn a_gbk_payment_reaches_the_handler_decoded() {
    let sim = simulator(1.0).await;
    let (url, app) = serve(NotifyGate::new(verifier(), test_keys::APP_ID), 0).await;
    let mut notification = PlatformNotification::payment(url)
        .with_field("subject", "测试订单 Test Order")
        .with_field("body", "中文商品描述：两件");
    notification.charset = Some("GBK".to_owned());
    sim.notify(notification).await.unwrap();
    assert_eq!(settled(&sim).await.answered_success, 1);
    match &app.handled()[..] {
        [Notification::Trade(trade)] => {
            assert_eq!(trade.subject.as_deref(), Some("测试订单 Test Order"));
            assert_eq!(trade.params.get("body"), Some("中文商品描述：两件"));
            assert_eq!(trade.params.charset_label(), "GBK");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn certificate_mode() {
    let sim = simulator(1.0).await;
    let (platform, sn) = platform_certificate();
    let (url, app) = serve(NotifyGate::new(platform, test_keys::APP_ID), 0).await;
    let mut notification = PlatformNotification::payment(url);
    notification.certificate = true;
    sim.notify(notification).await.unwrap();
    assert_eq!(settled(&sim).await.answered_success, 1);
    match &app.handled()[..] {
        [n] => assert_eq!(n.params().get("alipay_cert_sn"), Some(sn.as_str())),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_v2_gateway_message_signed_sha1() {
    let sim = simulator(1.0).await;
    let gate = NotifyGate::new(verifier(), test_keys::APP_ID).with_rule(Rule::V2);
    let (url, app) = serve(gate, 0).await;
    let mut notification = PlatformNotification::gateway_message(
        &url,
        "alipay.open.mini.merchant.confirmed",
        r#"{"order_no":"2394834823942343","status":"PROCESS"}"#,
    );
    notification.rule = Rule::V2;
    notification.sign_type = SignType::Rsa;
    sim.notify(notification).await.unwrap();
    assert_eq!(settled(&sim).await.answered_success, 1);
    // A message signed under V1 does not verify at a V2 endpoint.
    let v1 = PlatformNotification::gateway_message(&url, "alipay.x", r#"{"a":1}"#);
    let mut v1_events = sim.events();
    let v1_id = sim.notify(v1).await.unwrap();
    let first = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(SimulatorEvent::NotificationAttempt {
                notify_id, answer, ..
            }) = v1_events.recv().await
            {
                if notify_id == v1_id {
                    return answer;
                }
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(first, fail_answer());
    assert_eq!(app.calls(), 1);
    match &app.handled()[..] {
        [Notification::GatewayMessage(m)] => {
            assert_eq!(m.msg_method, "alipay.open.mini.merchant.confirmed");
            assert_eq!(m.biz_content["order_no"], "2394834823942343");
            assert_eq!(m.params.get("sign_type"), Some("RSA"));
        }
        other => panic!("{other:?}"),
    }
    assert!(app.events().iter().any(|e| e.contains("BadSignature")));
    sim.shutdown().await;
}

/// The handler fails the first time: `fail`, the platform's retry (240 ms instead of
/// 4 min) is handled again and answered `success`.
#[tokio::test]
async fn a_handler_failure_is_retried_until_success() {
    let sim = simulator(0.001).await;
    let (url, app) = serve(NotifyGate::new(verifier(), test_keys::APP_ID), 1).await;
    let mut events = sim.events();
    let notify_id = sim
        .notify(PlatformNotification::payment(url))
        .await
        .unwrap();
    let counts = settled(&sim).await;
    assert_eq!(
        (
            counts.posted,
            counts.attempts,
            counts.failed,
            counts.answered_success,
            counts.given_up
        ),
        (1, 2, 1, 1, 0)
    );
    assert_eq!(app.calls(), 2);
    assert_eq!(app.handled().len(), 1);
    let events_seen = app.events();
    assert!(
        events_seen[0].starts_with("HandlerFailed") && events_seen[0].contains("cannot store"),
        "{events_seen:?}"
    );
    assert!(events_seen[1].starts_with("Handled"), "{events_seen:?}");
    assert_eq!(
        attempts(&mut events),
        [
            (
                notify_id.clone(),
                1,
                fail_answer(),
                NextAttempt::After {
                    wait: Duration::from_millis(240),
                    scheduled: Duration::from_secs(240)
                }
            ),
            (notify_id, 2, NotifyAnswer::Success, NextAttempt::None)
        ]
    );
}

/// An endpoint that is not there: no answer, counted as a failed attempt, retried.
#[tokio::test]
async fn no_endpoint_is_a_failed_attempt() {
    let sim = simulator(1.0).await;
    // A port nobody listens on: bound, then closed.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut events = sim.events();
    sim.notify(PlatformNotification::payment(format!(
        "http://127.0.0.1:{port}/notify"
    )))
    .await
    .unwrap();
    let attempt = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(SimulatorEvent::NotificationAttempt { answer, next, .. }) =
                events.recv().await
            {
                return (answer, next);
            }
        }
    })
    .await
    .unwrap();
    assert!(
        matches!(&attempt.0, NotifyAnswer::NoAnswer { reason } if reason.contains("connect")),
        "{attempt:?}"
    );
    assert!(
        matches!(attempt.1, NextAttempt::After { .. }),
        "{attempt:?}"
    );
    let counts = sim.notification_counts();
    assert_eq!((counts.attempts, counts.failed, counts.pending), (1, 1, 1));
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_requests_are_refused_before_sending() {
    let sim = simulator(1.0).await;
    for (notification, expected) in [
        (
            PlatformNotification::payment("https://127.0.0.1/notify"),
            "https is not supported",
        ),
        (
            PlatformNotification::gateway_message("http://127.0.0.1/", "m", "[1]"),
            "JSON object",
        ),
    ] {
        let e = sim.notify(notification).await.unwrap_err().to_string();
        assert!(e.contains(expected), "{e}");
    }
    let plain = Simulator::start(SimulatorOptions::with_test_keys())
        .await
        .unwrap();
    let mut certificate = PlatformNotification::payment("http://127.0.0.1/");
    certificate.certificate = true;
    let e = plain.notify(certificate).await.unwrap_err().to_string();
    assert!(e.contains("platform certificate"), "{e}");
    assert_eq!(sim.notification_counts(), NotificationCounts::default());
    let bad_scale = SimulatorOptions::with_test_keys().notify_time_scale(0.0);
    let e = Simulator::start(bad_scale).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}
