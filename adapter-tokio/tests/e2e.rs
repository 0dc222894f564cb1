//! The tokio client against the simulator over 127.0.0.1: the end-to-end scenarios.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alipay_msg_core::key::PrivateKey;
use alipay_msg_core::server::{FaultPlan, ProduceFailure};
use alipay_msg_tokio::simulator::{test_keys, AppKey, Simulator, SimulatorOptions};
use alipay_msg_tokio::{Client, ClientConfig, ClientEvent, Credentials};
use serde_json::json;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");
const LIMIT: Duration = Duration::from_secs(30);

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{rel}")).unwrap()
}

fn fast_options() -> SimulatorOptions {
    let mut options = SimulatorOptions::with_test_keys();
    options.server.redelivery = vec![Duration::from_millis(100)];
    options.server.ack_timeout = Duration::from_secs(3);
    options
}

async fn client_for(sim: &Simulator) -> Arc<Client> {
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
            .unwrap();
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    Arc::new(
        tokio::time::timeout(LIMIT, Client::connect(config))
            .await
            .unwrap()
            .unwrap(),
    )
}

/// Successful handler runs per msg id.
type Counts = Arc<Mutex<HashMap<String, usize>>>;

/// Runs `client` with a handler that fails the first `fail_first` runs of every message
/// and counts successes.
fn run_counting(client: &Arc<Client>, fail_first: usize) -> (Counts, tokio::task::JoinHandle<()>) {
    let successes: Counts = Arc::default();
    let runs: Counts = Arc::default();
    let (client, s) = (client.clone(), successes.clone());
    let task = tokio::spawn(async move {
        client
            .run(move |msg| {
                let (s, runs) = (s.clone(), runs.clone());
                async move {
                    let run = {
                        let mut runs = runs.lock().unwrap();
                        let n = runs.entry(msg.msg_id().to_owned()).or_default();
                        *n += 1;
                        *n
                    };
                    if run <= fail_first {
                        return Err(format!("failure {run} on purpose"));
                    }
                    *s.lock()
                        .unwrap()
                        .entry(msg.msg_id().to_owned())
                        .or_default() += 1;
                    Ok(())
                }
            })
            .await
            .unwrap();
    });
    (successes, task)
}

async fn push_n(sim: &Simulator, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let biz = json!({"mini_app_id": "2014072300007148", "n": i}).to_string();
        ids.push(
            sim.push("alipay.open.mini.version.audit.passed", &biz)
                .await
                .unwrap()
                .as_str()
                .to_owned(),
        );
    }
    ids
}

async fn settle(sim: &Simulator) {
    tokio::time::timeout(LIMIT, sim.wait_settled())
        .await
        .expect("settled in time")
        .unwrap();
}

fn assert_each_once(successes: &Counts, ids: &[String]) {
    let s = successes.lock().unwrap();
    for id in ids {
        assert_eq!(
            s.get(id),
            Some(&1),
            "{id} handled successfully exactly once: {s:?}"
        );
    }
    assert_eq!(s.len(), ids.len(), "nothing else handled: {s:?}");
}

#[tokio::test]
async fn happy_path() {
    let sim = Simulator::start(fast_options()).await.unwrap();
    let client = client_for(&sim).await;
    let (successes, task) = run_counting(&client, 0);
    let ids = push_n(&sim, 20).await;
    settle(&sim).await;
    client.shutdown().await;
    task.await.unwrap();
    assert_each_once(&successes, &ids);
    sim.shutdown().await;
}

#[tokio::test]
async fn handler_failure_is_redelivered_until_success() {
    let sim = Simulator::start(fast_options()).await.unwrap();
    let client = client_for(&sim).await;
    let mut events = client.events();
    let (successes, task) = run_counting(&client, 2);
    let ids = push_n(&sim, 5).await;
    settle(&sim).await;
    client.shutdown().await;
    task.await.unwrap();
    assert_each_once(&successes, &ids);
    for (id, attempts) in sim.acked_messages().await.unwrap() {
        assert_eq!(attempts, 3, "{} took two FAILs then a SUCCESS", id.as_str());
    }
    let mut failures = 0;
    while let Ok(e) = events.try_recv() {
        failures += usize::from(matches!(e, ClientEvent::HandlerFailed { .. }));
    }
    assert_eq!(failures, 10);
    sim.shutdown().await;
}

#[tokio::test]
async fn handler_panic_acks_fail_and_the_client_survives() {
    let sim = Simulator::start(fast_options()).await.unwrap();
    let client = client_for(&sim).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let runner = client.clone();
    let task = tokio::spawn(async move {
        runner
            .run(move |_msg| {
                let r = r.clone();
                async move {
                    if r.fetch_add(1, Ordering::SeqCst) == 0 {
                        panic!("handler bug");
                    }
                    Ok::<(), String>(())
                }
            })
            .await
    });
    push_n(&sim, 1).await;
    settle(&sim).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "the panic acked FAIL, the redelivery succeeded"
    );
    client.shutdown().await;
    task.await.unwrap().unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn duplicate_delivery_is_suppressed() {
    let sim = Simulator::start(fast_options()).await.unwrap();
    let client = client_for(&sim).await;
    let mut events = client.events();
    let (successes, task) = run_counting(&client, 0);
    sim.set_faults(FaultPlan {
        duplicate_consumes: 3,
        ..FaultPlan::default()
    })
    .await
    .unwrap();
    let ids = push_n(&sim, 3).await;
    settle(&sim).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.shutdown().await;
    task.await.unwrap();
    assert_each_once(&successes, &ids);
    let mut duplicates = 0;
    while let Ok(e) = events.try_recv() {
        duplicates += usize::from(matches!(e, ClientEvent::Duplicate { .. }));
    }
    assert_eq!(duplicates, 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn forged_message_never_reaches_the_handler() {
    let sim = Simulator::start(fast_options()).await.unwrap();
    let client = client_for(&sim).await;
    let mut events = client.events();
    let (successes, task) = run_counting(&client, 0);
    let forger = PrivateKey::from_pem_or_base64(&read("keys/app_private_pkcs1.pem")).unwrap();
    let forger = alipay_msg_core::signature::Signer::new(
        &forger,
        alipay_msg_core::signature::SignType::Rsa2,
    )
    .unwrap();
    sim.push_forged(
        "alipay.open.auth.appauth.cancelled",
        r#"{"app_auth_token":"x"}"#,
        Some(forger),
    )
    .await
    .unwrap();
    sim.push_forged(
        "alipay.open.auth.appauth.cancelled",
        r#"{"app_auth_token":"y"}"#,
        None,
    )
    .await
    .unwrap();
    let ids = push_n(&sim, 2).await;
    settle(&sim).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.shutdown().await;
    task.await.unwrap();
    assert_each_once(&successes, &ids);
    let mut rejected = 0;
    while let Ok(e) = events.try_recv() {
        if let ClientEvent::Rejected { reason, .. } = e {
            assert!(reason.contains("signature"), "{reason}");
            rejected += 1;
        }
    }
    assert_eq!(rejected, 2);
    assert_eq!(sim.counts().await.unwrap().forged_accepted, 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn platform_restart_mid_stream_loses_nothing() {
    let sim = Simulator::start(fast_options()).await.unwrap();
    let client = client_for(&sim).await;
    let successes: Counts = Arc::default();
    let (runner, s) = (client.clone(), successes.clone());
    let task = tokio::spawn(async move {
        runner
            .run(move |msg| {
                let s = s.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    *s.lock()
                        .unwrap()
                        .entry(msg.msg_id().to_owned())
                        .or_default() += 1;
                    Ok::<(), String>(())
                }
            })
            .await
            .unwrap();
    });
    let mut ids = push_n(&sim, 30).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        sim.disconnect_all().await.unwrap();
        ids.extend(push_n(&sim, 10).await);
    }
    tokio::time::timeout(LIMIT, sim.wait_connections(1))
        .await
        .unwrap()
        .unwrap();
    settle(&sim).await;
    client.shutdown().await;
    task.await.unwrap();
    assert_each_once(&successes, &ids);
    sim.shutdown().await;
}

#[tokio::test]
async fn produce_success_and_error_code() {
    let sim = Simulator::start(fast_options()).await.unwrap();
    let client = client_for(&sim).await;
    let ack = client
        .send(
            "alipay.open.app.openbizmock.message.send",
            &json!({"shop_id": "1001"}),
        )
        .await
        .unwrap();
    assert!(ack.is_success(), "{ack}");
    assert!(ack.msg_id.is_some());

    sim.set_produce_failure(
        "alipay.open.app.busy.message.send",
        Some(ProduceFailure::ServiceUnavailable),
    )
    .await
    .unwrap();
    let ack = client
        .send("alipay.open.app.busy.message.send", &json!({"a": 1}))
        .await
        .unwrap();
    assert_eq!(
        (ack.code.as_deref(), ack.is_retryable(), ack.is_success()),
        (Some("20000"), true, false)
    );

    sim.set_produce_failure(
        "alipay.open.app.nobody.message.send",
        Some(ProduceFailure::ConsumerNotExist),
    )
    .await
    .unwrap();
    let ack = client
        .send("alipay.open.app.nobody.message.send", &json!({"a": 1}))
        .await
        .unwrap();
    assert_eq!(
        (
            ack.code.as_deref(),
            ack.error.as_deref(),
            ack.is_retryable()
        ),
        (Some("40000"), Some("msg.consumer-not-exist"), false)
    );

    // Content that is not a JSON object never leaves the client.
    let err = client
        .send("alipay.open.app.openbizmock.message.send", &json!([1, 2]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("JSON object"), "{err}");
    client.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_waits_for_handlers_in_flight() {
    let sim = Simulator::start(fast_options()).await.unwrap();
    let client = client_for(&sim).await;
    let (started, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (runner, st, fi) = (client.clone(), started.clone(), finished.clone());
    let task = tokio::spawn(async move {
        runner
            .run(move |_msg| {
                let (st, fi) = (st.clone(), fi.clone());
                async move {
                    st.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    fi.fetch_add(1, Ordering::SeqCst);
                    Ok::<(), String>(())
                }
            })
            .await
            .unwrap();
    });
    push_n(&sim, 3).await;
    tokio::time::timeout(LIMIT, async {
        while started.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    client.shutdown().await;
    // shutdown() returned: every handler finished and nothing runs any more.
    assert_eq!(finished.load(Ordering::SeqCst), 3);
    task.await.unwrap();
    // Their SUCCESS acks went out before the connection closed: the platform settles
    // them (it reads them asynchronously) with no connection left to redeliver on.
    tokio::time::timeout(LIMIT, sim.wait_disconnected())
        .await
        .unwrap()
        .unwrap();
    settle(&sim).await;
    assert_eq!(sim.acked_messages().await.unwrap().len(), 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn certificate_mode() {
    let app_key = AppKey::from_certificates(
        &read("certs/app_cert.crt"),
        Some(&read("certs/root_bundle_simple.crt")),
    )
    .unwrap();
    let platform_key =
        PrivateKey::from_pem_or_base64(&read("keys/alipay_private_pkcs1.pem")).unwrap();
    let mut options = SimulatorOptions::new(test_keys::APP_ID, &app_key, &platform_key)
        .unwrap()
        .platform_cert_sn("7107d7d8dc6fc5ce914a4560bcd5096a");
    options.server.redelivery = vec![Duration::from_millis(100)];
    let sim = Simulator::start(options).await.unwrap();
    let credentials = Credentials::certificate(
        &read("keys/app_private_pkcs8.pem"),
        &read("certs/app_cert.crt"),
        &read("certs/alipay_cert.crt"),
        &read("certs/root_bundle_simple.crt"),
    )
    .unwrap();
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    let client = Arc::new(
        tokio::time::timeout(LIMIT, Client::connect(config))
            .await
            .unwrap()
            .unwrap(),
    );
    let (successes, task) = run_counting(&client, 0);
    let ids = push_n(&sim, 3).await;
    settle(&sim).await;
    let ack = client
        .send(
            "alipay.open.app.openbizmock.message.send",
            &json!({"shop_id": "1001"}),
        )
        .await
        .unwrap();
    assert!(ack.is_success(), "{ack}");
    client.shutdown().await;
    task.await.unwrap();
    assert_each_once(&successes, &ids);
    sim.shutdown().await;
}

#[tokio::test]
async fn refused_configuration_is_a_clear_error_at_connect() {
    let sim = Simulator::start(fast_options()).await.unwrap();
    // Signing with the wrong app key: the platform answers isv.invalid-signature.
    let credentials = Credentials::public_key(
        &read("keys/alipay_private_pkcs1.pem"),
        test_keys::PLATFORM_PUBLIC_KEY,
    )
    .unwrap();
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    let err = match tokio::time::timeout(LIMIT, Client::connect(config))
        .await
        .unwrap()
    {
        Ok(_) => panic!("connect must fail"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("isv.invalid-signature"), "{err}");
    sim.shutdown().await;
}
