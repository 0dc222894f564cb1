//! The axum endpoint served on 127.0.0.1, driven by a plain HTTP/1.1 client over
//! `tokio::net::TcpStream`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use alipay_msg_axum::alipay_msg_core::cert::{platform_cert, Certificate};
use alipay_msg_axum::alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_axum::alipay_msg_core::notify::{self, FormLimits, NotifyError};
use alipay_msg_axum::alipay_msg_core::sign_content::Rule;
use alipay_msg_axum::alipay_msg_core::signature::{SignType, Signer, Verifier};
use alipay_msg_axum::{Notification, Notifications, NotifyEvent, NotifyGate, RefuseReason};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");
const APP: &str = "2021000000000001";
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{path}")).unwrap()
}

fn verifier() -> Verifier {
    let key = PublicKey::from_pem_or_base64(&read("vectors/keys/alipay_public.pem")).unwrap();
    Verifier::new(&key).unwrap()
}

/// Signs `unsigned` with the platform's private key under `rule`; appends `&sign=`.
fn signed(unsigned: &str, rule: Rule) -> Vec<u8> {
    let key = PrivateKey::from_pem_or_base64(&read("vectors/keys/alipay_private_pkcs8.pem"));
    let signer = Signer::new(&key.unwrap(), SignType::Rsa2).unwrap();
    let form = notify::parse_form(unsigned.as_bytes()).unwrap();
    let content = form.charset().encode(&form.sign_content(rule)).into_owned();
    let sign = STANDARD.encode(signer.sign(&content).unwrap());
    let sign: String = form_urlencoded::byte_serialize(sign.as_bytes()).collect();
    format!("{unsigned}&sign={sign}").into_bytes()
}

fn trade(notify_id: &str, app_id: &str) -> Vec<u8> {
    signed(
        &format!(
            "notify_type=trade_status_sync&notify_id={notify_id}\
             &notify_time=2026-11-20+10%3A21%3A35&app_id={app_id}&trade_no=t1\
             &out_trade_no=o1&trade_status=TRADE_SUCCESS&total_amount=1.00&sign_type=RSA2"
        ),
        Rule::V1,
    )
}

/// The application: counts handler runs, fails on demand, can hold the handler until
/// released, and records the events.
struct App {
    calls: AtomicUsize,
    fail: AtomicBool,
    hold: AtomicBool,
    entered: Semaphore,
    release: Semaphore,
    handled: Mutex<Vec<Notification>>,
    events: Mutex<Vec<String>>,
}

impl Default for App {
    fn default() -> Self {
        App {
            calls: AtomicUsize::new(0),
            fail: AtomicBool::new(false),
            hold: AtomicBool::new(false),
            entered: Semaphore::new(0),
            release: Semaphore::new(0),
            handled: Mutex::default(),
            events: Mutex::default(),
        }
    }
}

impl App {
    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

/// Serves `gate` at `/notify` on 127.0.0.1:0.
async fn serve(gate: NotifyGate) -> (SocketAddr, Arc<App>) {
    let app = Arc::new(App::default());
    let handler_app = Arc::clone(&app);
    let event_app = Arc::clone(&app);
    let notifications = Notifications::new(gate, move |n: Notification| {
        let app = Arc::clone(&handler_app);
        async move {
            app.calls.fetch_add(1, Ordering::SeqCst);
            if app.hold.load(Ordering::SeqCst) {
                app.entered.add_permits(1);
                app.release.acquire().await.unwrap().forget();
            }
            if app.fail.load(Ordering::SeqCst) {
                return Err(format!("cannot store {}", n.notify_id().unwrap_or("?")));
            }
            app.handled.lock().unwrap().push(n);
            Ok(())
        }
    })
    .on_event(move |e: &NotifyEvent<String>| {
        event_app.events.lock().unwrap().push(format!("{e:?}"));
    });
    let router = notifications.into_router("/notify");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, app)
}

/// POSTs `body` to `/notify`; returns the status and the response body.
async fn post(addr: SocketAddr, content_type: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "POST /notify HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        request.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("a complete response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    if status == 200 {
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; charset=utf-8"),
            "{head}"
        );
    }
    (status, body.to_owned())
}

async fn post_form(addr: SocketAddr, body: &[u8]) -> String {
    let (status, answer) = post(addr, Some(FORM), body).await;
    assert_eq!(status, 200);
    answer
}

#[tokio::test]
async fn handled_once_then_duplicates_answer_success() {
    let (addr, app) = serve(NotifyGate::new(verifier(), APP)).await;
    let body = read("notify/trade_notify_rsa2_v1.txt");
    let body = body.trim_end().as_bytes();
    assert_eq!(post_form(addr, body).await, "success");
    assert_eq!(app.calls.load(Ordering::SeqCst), 1);
    match &app.handled.lock().unwrap()[0] {
        Notification::Trade(t) => {
            assert_eq!(t.out_trade_no, "20261120102126001");
            assert_eq!(t.total_amount.as_deref(), Some("88.88"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(post_form(addr, body).await, "success");
    assert_eq!(
        app.calls.load(Ordering::SeqCst),
        1,
        "a duplicate runs no handler"
    );
    let events = app.events();
    assert!(events[0].starts_with("Handled"), "{events:?}");
    assert!(events[1].starts_with("Duplicate"), "{events:?}");
}

#[tokio::test]
async fn same_notify_id_while_handling_answers_fail() {
    let (addr, app) = serve(NotifyGate::new(verifier(), APP)).await;
    app.hold.store(true, Ordering::SeqCst);
    let body = trade("n-concurrent", APP);
    let first = tokio::spawn({
        let body = body.clone();
        async move { post_form(addr, &body).await }
    });
    app.entered.acquire().await.unwrap().forget();
    // The first is inside the handler: the same notify_id now is answered fail.
    assert_eq!(post_form(addr, &body).await, "fail");
    assert!(app.events().last().unwrap().contains("InProgress"));
    app.release.add_permits(1);
    assert_eq!(first.await.unwrap(), "success");
    app.hold.store(false, Ordering::SeqCst);
    assert_eq!(post_form(addr, &body).await, "success");
    assert_eq!(app.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn handler_error_answers_fail_and_the_retry_runs_again() {
    let (addr, app) = serve(NotifyGate::new(verifier(), APP)).await;
    let body = trade("n-retry", APP);
    app.fail.store(true, Ordering::SeqCst);
    assert_eq!(post_form(addr, &body).await, "fail");
    let events = app.events();
    assert!(
        events[0].starts_with("HandlerFailed") && events[0].contains("cannot store n-retry"),
        "{events:?}"
    );
    app.fail.store(false, Ordering::SeqCst);
    assert_eq!(post_form(addr, &body).await, "success");
    assert_eq!(app.calls.load(Ordering::SeqCst), 2);
    assert_eq!(post_form(addr, &body).await, "success");
    assert_eq!(app.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn refusals_answer_fail_with_an_event_and_no_handler() {
    let limits = FormLimits::DEFAULT.with_max_body_len(1024);
    let (addr, app) = serve(NotifyGate::new(verifier(), APP).with_limits(limits)).await;

    let forged = String::from_utf8(trade("n-forged", APP)).unwrap();
    let forged = forged.replace("total_amount=1.00", "total_amount=0.01");
    assert_eq!(post_form(addr, forged.as_bytes()).await, "fail");

    assert_eq!(
        post_form(addr, &trade("n-other", "2021999999999999")).await,
        "fail"
    );

    let body = trade("n-ct", APP);
    let (status, answer) = post(addr, Some("application/json"), &body).await;
    assert_eq!((status, answer.as_str()), (200, "fail"));
    let (status, answer) = post(addr, None, &body).await;
    assert_eq!((status, answer.as_str()), (200, "fail"));

    let mut big = trade("n-big", APP);
    big.extend(std::iter::repeat_n(b'x', 1024));
    assert_eq!(post_form(addr, &big).await, "fail");

    assert_eq!(post_form(addr, b"not a form %zz").await, "fail");

    assert_eq!(app.calls.load(Ordering::SeqCst), 0, "no handler ran");
    let events = app.events();
    assert_eq!(events.len(), 6, "{events:?}");
    assert!(events[0].contains("BadSignature"), "{events:?}");
    assert!(events[1].contains("ForeignAppId"), "{events:?}");
    assert!(events[2].contains("ContentType") && events[2].contains("application/json"));
    assert!(
        events[3].contains("ContentType { got: None }"),
        "{events:?}"
    );
    assert!(events[4].contains("TooLarge { limit: 1024 }"), "{events:?}");
    assert!(events[5].contains("Malformed"), "{events:?}");
    // A GET is not a notification.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /notify HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 405"), "{response}");
}

#[tokio::test]
async fn refuse_reasons_are_typed() {
    let gate = NotifyGate::new(verifier(), APP);
    let notifications = Notifications::new(gate, |_n| async { Ok::<(), String>(()) });
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let notifications = notifications.on_event(move |e| {
        if let NotifyEvent::Refused(reason) = e {
            sink.lock().unwrap().push(reason.clone());
        }
    });
    let request = axum::http::Request::post("/notify")
        .header("content-type", FORM)
        .body(axum::body::Body::from(
            read("notify/trade_notify_tampered_amount.txt")
                .trim_end()
                .to_owned(),
        ))
        .unwrap();
    let response = notifications.answer(request).await;
    assert_eq!(response.status(), 200);
    let seen = seen.lock().unwrap();
    match &seen[..] {
        [RefuseReason::BadSignature(e)] => assert!(e.is_signature_failure()),
        other => panic!("{other:?}"),
    }
    assert!(!matches!(
        seen[0],
        RefuseReason::Malformed(NotifyError::MissingParam { .. })
    ));
}

#[tokio::test]
async fn gbk_body() {
    let (addr, app) = serve(NotifyGate::new(verifier(), APP)).await;
    let body = signed(
        &format!(
            "notify_type=trade_status_sync&notify_id=n-gbk&notify_time=t&app_id={APP}\
             &trade_no=t1&out_trade_no=o1&trade_status=TRADE_SUCCESS\
             &subject=%B2%E2%CA%D4%B6%A9%B5%A5&charset=GBK&sign_type=RSA2"
        ),
        Rule::V1,
    );
    assert_eq!(post_form(addr, &body).await, "success");
    match &app.handled.lock().unwrap()[0] {
        Notification::Trade(t) => assert_eq!(t.subject.as_deref(), Some("测试订单")),
        other => panic!("{other:?}"),
    }
    let gb18030 = read("notify/trade_notify_gb18030_v1.form");
    assert_eq!(
        post_form(addr, gb18030.trim_end().as_bytes()).await,
        "success"
    );
}

#[tokio::test]
async fn certificate_mode() {
    let chain = Certificate::all_from_pem(&read("vectors/certs/alipay_cert.crt")).unwrap();
    let key = platform_cert(&chain)
        .and_then(Certificate::public_key)
        .unwrap();
    let gate = NotifyGate::new(Verifier::new(&key).unwrap(), APP);
    let (addr, app) = serve(gate).await;
    assert_eq!(post_form(addr, &trade("n-cert", APP)).await, "success");
    assert_eq!(app.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn v2_gateway_message() {
    let gate = NotifyGate::new(verifier(), "2013121700999429").with_rule(Rule::V2);
    let (addr, app) = serve(gate).await;
    let body = read("notify/gateway_message_rsa2_v2.txt");
    assert_eq!(post_form(addr, body.trim_end().as_bytes()).await, "success");
    match &app.handled.lock().unwrap()[0] {
        Notification::GatewayMessage(m) => {
            assert_eq!(m.msg_method, "alipay.open.mini.merchant.confirmed")
        }
        other => panic!("{other:?}"),
    }
    // The V1 body of the same message does not verify under V2.
    let v1 = read("notify/gateway_message_rsa2_v1.txt");
    assert_eq!(post_form(addr, v1.trim_end().as_bytes()).await, "fail");
    assert!(app.events().last().unwrap().contains("BadSignature"));
}

#[tokio::test]
async fn a_hung_up_request_releases_its_claim() {
    let (addr, app) = serve(NotifyGate::new(verifier(), APP)).await;
    app.hold.store(true, Ordering::SeqCst);
    let body = trade("n-hangup", APP);
    let first = tokio::spawn({
        let body = body.clone();
        async move { post_form(addr, &body).await }
    });
    app.entered.acquire().await.unwrap().forget();
    // The platform gives up: the connection closes while the handler runs.
    first.abort();
    let _ = first.await;
    // hyper notices the closed connection and drops the handler future: its claim is
    // released, so the retry is handled.
    app.hold.store(false, Ordering::SeqCst);
    let mut answer = String::new();
    for _ in 0..100 {
        answer = post_form(addr, &body).await;
        if answer == "success" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(answer, "success");
    assert_eq!(app.calls.load(Ordering::SeqCst), 2);
}
