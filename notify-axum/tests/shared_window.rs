//! Two endpoint instances sharing one duplicate window on Redis
//! (`ALIPAY_MSG_REDIS_URL`, started by `.ci/run`): the same notification posted to both
//! is handled once. Skipped with a message when the variable is unset, failed when `CI`
//! is set and it is unset.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use alipay_msg_axum::alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_axum::alipay_msg_core::notify;
use alipay_msg_axum::alipay_msg_core::sign_content::Rule;
use alipay_msg_axum::alipay_msg_core::signature::{SignType, Signer, Verifier};
use alipay_msg_axum::{Notification, Notifications, NotifyEvent, NotifyGate, SharedWindowConfig};
use alipay_msg_redis::{redis_url_from_env, AsyncRedisWindow, RedisWindowConfig};
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

fn trade(notify_id: &str) -> Vec<u8> {
    let key = PrivateKey::from_pem_or_base64(&read("vectors/keys/alipay_private_pkcs8.pem"));
    let signer = Signer::new(&key.unwrap(), SignType::Rsa2).unwrap();
    let unsigned = format!(
        "notify_type=trade_status_sync&notify_id={notify_id}\
         &notify_time=2026-11-20+10%3A21%3A35&app_id={APP}&trade_no=t1\
         &out_trade_no=o1&trade_status=TRADE_SUCCESS&total_amount=1.00&sign_type=RSA2"
    );
    let form = notify::parse_form(unsigned.as_bytes()).unwrap();
    let content = form
        .charset()
        .encode(&form.sign_content(Rule::V1))
        .into_owned();
    let sign = STANDARD.encode(signer.sign(&content).unwrap());
    let sign: String = form_urlencoded::byte_serialize(sign.as_bytes()).collect();
    format!("{unsigned}&sign={sign}").into_bytes()
}

/// Handler runs per `notify_id`, across both instances; the first instance's handler
/// can be held inside until released.
#[derive(Default)]
struct Cluster {
    runs: Mutex<HashMap<String, usize>>,
    calls: [AtomicUsize; 2],
    events: Mutex<Vec<String>>,
}

/// Serves instance `n` of the endpoint at `/notify` on 127.0.0.1:0, sharing the window
/// under `prefix`; with `hold`, its handler waits inside for a permit.
async fn serve(
    n: usize,
    url: &str,
    prefix: &str,
    cluster: &Arc<Cluster>,
    hold: Option<(Arc<Semaphore>, Arc<Semaphore>)>,
) -> SocketAddr {
    let key = PublicKey::from_pem_or_base64(&read("vectors/keys/alipay_public.pem")).unwrap();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ n as u64;
    let gate = NotifyGate::new(Verifier::new(&key).unwrap(), APP)
        .with_shared_window(SharedWindowConfig::new(), seed)
        .unwrap();
    let store = AsyncRedisWindow::new(RedisWindowConfig::new(url).with_prefix(prefix)).unwrap();
    let (handler_cluster, event_cluster) = (cluster.clone(), cluster.clone());
    let notifications = Notifications::new(gate, move |notification: Notification| {
        let cluster = handler_cluster.clone();
        let hold = hold.clone();
        async move {
            let id = notification.notify_id().unwrap_or_default().to_owned();
            cluster.calls[n].fetch_add(1, Ordering::SeqCst);
            if let Some((entered, release)) = hold {
                entered.add_permits(1);
                release.acquire().await.unwrap().forget();
            }
            *cluster.runs.lock().unwrap().entry(id).or_default() += 1;
            Ok::<(), String>(())
        }
    })
    .with_shared_window(Arc::new(store))
    .on_event(move |e: &NotifyEvent<String>| {
        event_cluster
            .events
            .lock()
            .unwrap()
            .push(format!("{n}: {e:?}"));
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = notifications.into_router("/notify");
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// POSTs a notification; returns the answer body (`success` or `fail`).
async fn post(addr: SocketAddr, body: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /notify HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {FORM}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

fn prefix(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("test-axum-{test}-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn the_same_notification_on_two_instances_is_handled_once() {
    let Some(url) =
        redis_url_from_env("the_same_notification_on_two_instances_is_handled_once").unwrap()
    else {
        return;
    };
    let prefix = prefix("once");
    let cluster = Arc::new(Cluster::default());
    let (entered, release) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
    let first = serve(
        0,
        &url,
        &prefix,
        &cluster,
        Some((entered.clone(), release.clone())),
    )
    .await;
    let second = serve(1, &url, &prefix, &cluster, None).await;
    let body = trade("n-cluster-1");

    // Instance 0 is handling it; the platform's retry reaches instance 1: fail, and
    // instance 1's handler does not run.
    let handling = tokio::spawn({
        let body = body.clone();
        async move { post(first, &body).await }
    });
    entered.acquire().await.unwrap().forget();
    assert_eq!(post(second, &body).await, "fail");
    assert_eq!(cluster.calls[1].load(Ordering::SeqCst), 0);
    assert!(
        cluster
            .events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.starts_with("1: Refused(ClaimedElsewhere")),
        "{:?}",
        cluster.events.lock().unwrap()
    );
    // Instance 0 finishes: recorded, then `success`.
    release.add_permits(1);
    assert_eq!(handling.await.unwrap(), "success");
    // The next retry on instance 1: `success` from the shared window, no handler.
    assert_eq!(post(second, &body).await, "success");
    assert_eq!(cluster.calls[1].load(Ordering::SeqCst), 0);
    assert_eq!(cluster.runs.lock().unwrap()["n-cluster-1"], 1);
}

#[tokio::test]
async fn concurrent_posts_to_both_instances_handle_each_once() {
    let Some(url) =
        redis_url_from_env("concurrent_posts_to_both_instances_handle_each_once").unwrap()
    else {
        return;
    };
    let prefix = prefix("race");
    let cluster = Arc::new(Cluster::default());
    let a = serve(0, &url, &prefix, &cluster, None).await;
    let b = serve(1, &url, &prefix, &cluster, None).await;
    let ids: Vec<String> = (0..40).map(|i| format!("n-race-{i}")).collect();
    for id in &ids {
        let body = trade(id);
        let (x, y) = tokio::join!(post(a, &body), post(b, &body));
        // Each answer is `success` (handled, or handled elsewhere) or `fail` (being
        // handled elsewhere): the platform retries a `fail`.
        let mut answers = vec![x, y];
        while !answers.iter().any(|r| r == "success") {
            answers.push(post(b, &body).await);
        }
        assert!(answers.iter().all(|r| r == "success" || r == "fail"));
    }
    let runs = cluster.runs.lock().unwrap();
    for id in &ids {
        assert_eq!(
            runs.get(id),
            Some(&1),
            "{id} handled exactly once: {runs:?}"
        );
    }
    let calls = cluster.calls[0].load(Ordering::SeqCst) + cluster.calls[1].load(Ordering::SeqCst);
    assert_eq!(calls, ids.len(), "no handler ran twice");
}
