//! The simulator over real sockets on 127.0.0.1: register.do, the admin endpoints, the
//! websocket upgrade, and end to end with the tokio client.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use alipay_msg_core::charset::Charset;
use alipay_msg_core::consume::AckStatus;
use alipay_msg_core::http::parse_response;
use alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_core::register::{parse_register_answer, register_request, RegisterParams};
use alipay_msg_core::server::{MessageState, ServerEvent};
use alipay_msg_core::signature::{SignType, Signer, Verifier};
use alipay_msg_simulator::{test_keys, Simulator, SimulatorEvent, SimulatorOptions};
use alipay_msg_tokio::{Client, ClientConfig, Credentials};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::timeout;

const API: &str = "alipay.open.mini.version.audit.passed";
const LIMIT: Duration = Duration::from_secs(20);

fn key_file(name: &str) -> String {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/keys");
    std::fs::read_to_string(format!("{dir}/{name}")).unwrap()
}

fn app_signer() -> Signer {
    let key = PrivateKey::from_pem_or_base64(&key_file("app_private_pkcs1.pem")).unwrap();
    Signer::new(&key, SignType::Rsa2).unwrap()
}

fn platform_verifier() -> Verifier {
    Verifier::new(&PublicKey::from_pem_or_base64(&key_file("alipay_public.pem")).unwrap()).unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A signed register.do request for the test app.
fn register_bytes(sim_endpoint: &alipay_msg_core::endpoint::Endpoint) -> Vec<u8> {
    let params = RegisterParams {
        app_id: test_keys::APP_ID,
        charset: Charset::Utf8,
        timestamp_ms: now_ms(),
        nonce: "0123456789abcdef0123456789abcdef",
        cert_sns: None,
    }
    .sign(&app_signer())
    .unwrap();
    register_request(sim_endpoint, &params, Charset::Utf8)
}

/// Writes `request` on a fresh connection and reads until the server closes.
async fn exchange(sim: &Simulator, request: &[u8]) -> alipay_msg_core::http::HttpResponse {
    let mut stream = TcpStream::connect(sim.local_addr()).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut bytes = Vec::new();
    timeout(LIMIT, stream.read_to_end(&mut bytes))
        .await
        .expect("the simulator closes after answering")
        .unwrap();
    parse_response(&bytes, true, 1 << 20).unwrap().unwrap()
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn json_body(response: &alipay_msg_core::http::HttpResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap()
}

/// A client configuration for the simulator, with quick reconnects.
fn client_config(sim: &Simulator) -> ClientConfig {
    let credentials = Credentials::public_key(
        &key_file("app_private_pkcs1.pem"),
        &key_file("alipay_public.pem"),
    )
    .unwrap();
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    config.backoff.base = Duration::from_millis(50);
    config.backoff.cap = Duration::from_millis(200);
    config
}

/// What the handler saw: `(msg_id, biz_content)`.
type Received = mpsc::UnboundedReceiver<(String, String)>;
/// The task running [`Client::run`].
type RunTask = tokio::task::JoinHandle<Result<(), alipay_msg_tokio::Error>>;

/// Runs the client's handler on a task: every message's `(msg_id, biz_content)` goes
/// to the returned channel; `fail_first` messages are answered FAIL first.
fn run_client(client: &Arc<Client>, fail_first: usize) -> (Received, RunTask) {
    let (tx, rx) = mpsc::unbounded_channel();
    let failures = Arc::new(std::sync::atomic::AtomicUsize::new(fail_first));
    let runner = client.clone();
    let run = tokio::spawn(async move {
        runner
            .run(move |msg| {
                let (tx, failures) = (tx.clone(), failures.clone());
                async move {
                    let _ = tx.send((msg.msg_id().to_owned(), msg.biz_content().to_owned()));
                    let fail = failures
                        .fetch_update(
                            std::sync::atomic::Ordering::SeqCst,
                            std::sync::atomic::Ordering::SeqCst,
                            |n| n.checked_sub(1),
                        )
                        .is_ok();
                    if fail {
                        Err("failing on purpose")
                    } else {
                        Ok(())
                    }
                }
            })
            .await
    });
    (rx, run)
}

/// Waits for the first event matching `f`.
async fn wait_event(
    events: &mut tokio::sync::broadcast::Receiver<SimulatorEvent>,
    f: impl Fn(&SimulatorEvent) -> bool,
) -> SimulatorEvent {
    timeout(LIMIT, async {
        loop {
            let event = events.recv().await.unwrap();
            if f(&event) {
                return event;
            }
        }
    })
    .await
    .expect("event in time")
}

#[tokio::test]
async fn register_over_raw_tcp_is_a_signed_success() {
    let sim = Simulator::start(SimulatorOptions::with_test_keys())
        .await
        .unwrap();
    let mut events = sim.events();
    let response = exchange(&sim, &register_bytes(&sim.endpoint())).await;
    assert_eq!(response.status, 200);
    let answer = parse_register_answer(
        &response,
        Charset::Utf8,
        &platform_verifier(),
        SignType::Rsa2,
        None,
    )
    .unwrap();
    assert_eq!(answer.link_token.len(), 32);
    assert_eq!(answer.zone.as_deref(), Some("SIM01"));
    let event = wait_event(&mut events, |_| true).await;
    assert_eq!(
        event,
        SimulatorEvent::Server(ServerEvent::Registered {
            app_id: test_keys::APP_ID.to_owned()
        })
    );
    assert_eq!(
        event.to_string(),
        format!(
            "register.do: link token issued to app {}",
            test_keys::APP_ID
        )
    );

    // Other paths and methods.
    let response = exchange(&sim, b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(response.status, 404);
    let response = exchange(
        &sim,
        b"DELETE /websocket/register.do HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 405);
    let response = exchange(&sim, b"NOT HTTP\r\n\r\n").await;
    assert_eq!(response.status, 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn websocket_upgrades_are_checked_by_the_platform() {
    let sim = Simulator::start(SimulatorOptions::with_test_keys())
        .await
        .unwrap();
    // Not a websocket request at all.
    let response = exchange(&sim, b"GET /websocket?app_id=1 HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(response.status, 400);
    // A websocket request with an unsigned, unknown link token.
    let request = "GET /websocket?app_id=2021000000000001&charset=UTF-8&link_token=nope&timestamp=1&sign_type=RSA2&sign=x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let response = exchange(&sim, request.as_bytes()).await;
    assert_eq!(
        response.status,
        400,
        "{}",
        String::from_utf8_lossy(&response.body)
    ); // timestamp
    let mut events = sim.events();
    let request = request.replace("timestamp=1", &format!("timestamp={}", now_ms()));
    let response = exchange(&sim, request.as_bytes()).await;
    assert_eq!(
        response.status,
        401,
        "{}",
        String::from_utf8_lossy(&response.body)
    ); // signature
    let event = wait_event(&mut events, |_| true).await;
    assert!(
        event
            .to_string()
            .starts_with("websocket upgrade refused (HTTP 401)"),
        "{event}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn admin_push_queues_a_message() {
    let sim = Simulator::start(SimulatorOptions::with_test_keys())
        .await
        .unwrap();
    let mut events = sim.events();
    let response = exchange(
        &sim,
        &post(
            "/admin/push",
            &format!(r#"{{"msg_api":"{API}","biz_content":{{"mini_app_id":"1"}}}}"#),
        ),
    )
    .await;
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    let msg_id = json_body(&response)["msg_id"].as_str().unwrap().to_owned();
    assert_eq!(msg_id.len(), 20);
    let SimulatorEvent::Pushed {
        msg_id: pushed,
        forged: false,
        ..
    } = wait_event(&mut events, |_| true).await
    else {
        panic!("a push event")
    };
    assert_eq!(pushed.as_str(), msg_id);
    assert_eq!(
        sim.message_state(&pushed).await.unwrap(),
        Some(MessageState::Queued { attempts: 0 })
    );
    assert_eq!(sim.counts().await.unwrap().queued, 1);
    assert!(!sim.is_settled().await.unwrap());

    // Bad bodies are 400 with a reason.
    for body in [
        "not json",
        r#"{"biz_content":{}}"#,
        &format!(r#"{{"msg_api":"{API}","biz_content":[1]}}"#),
        &format!(r#"{{"msg_api":"{API}","biz_content":{{}},"app_id":"2021000000000009"}}"#),
    ] {
        let response = exchange(&sim, &post("/admin/push", body)).await;
        assert_eq!(response.status, 400, "{body}");
        assert!(json_body(&response)["error"].is_string(), "{body}");
    }
    let response = exchange(&sim, b"POST /admin/push HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(response.status, 411);

    let response = exchange(&sim, b"GET /admin/status HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(response.status, 200);
    let status = json_body(&response);
    assert_eq!(status["queued"], 1);
    assert_eq!(status["connections"], 0);
    assert_eq!(status["settled"], false);
    sim.shutdown().await;
}

#[tokio::test]
async fn push_file_is_pushed_at_start() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/examples/platform_messages.jsonl"
    );
    let lines = std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    let sim = Simulator::start(SimulatorOptions::with_test_keys().push_file(path))
        .await
        .unwrap();
    assert_eq!(sim.counts().await.unwrap().queued, lines);
    let ids = sim.push_jsonl(path).await.unwrap();
    assert_eq!(ids.len(), lines);
    sim.shutdown().await;

    let err =
        Simulator::start(SimulatorOptions::with_test_keys().push_file("/nonexistent/file.jsonl"))
            .await
            .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}

#[tokio::test]
async fn tokio_client_receives_and_acks_three_pushes() {
    let sim = Simulator::start(SimulatorOptions::with_test_keys())
        .await
        .unwrap();
    let client = Arc::new(
        timeout(LIMIT, Client::connect(client_config(&sim)))
            .await
            .unwrap()
            .unwrap(),
    );
    assert_eq!(sim.connection_count(), 1);
    let (mut received, run) = run_client(&client, 0);
    let mut pushed = Vec::new();
    for i in 0..3 {
        pushed.push(
            sim.push(API, &format!(r#"{{"mini_app_id":"{i}"}}"#))
                .await
                .unwrap(),
        );
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(timeout(LIMIT, received.recv()).await.unwrap().unwrap());
    }
    got.sort();
    let expected: Vec<(String, String)> = pushed
        .iter()
        .enumerate()
        .map(|(i, id)| (id.to_string(), format!(r#"{{"mini_app_id":"{i}"}}"#)))
        .collect();
    assert_eq!(got, expected);
    timeout(LIMIT, sim.wait_settled()).await.unwrap().unwrap();
    assert!(sim.is_settled().await.unwrap());
    let acked = sim.acked_messages().await.unwrap();
    assert_eq!(acked.len(), 3);
    assert!(acked.iter().all(|(_, attempts)| *attempts == 1));
    assert_eq!(sim.counts().await.unwrap().acked, 3);

    timeout(LIMIT, client.shutdown()).await.unwrap();
    timeout(LIMIT, run).await.unwrap().unwrap().unwrap();
    // The client's close reaches the platform.
    timeout(LIMIT, sim.wait_disconnected())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sim.connection_count(), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn forged_push_is_refused_and_never_handled() {
    let sim = Simulator::start(SimulatorOptions::with_test_keys())
        .await
        .unwrap();
    let mut events = sim.events();
    let client = Arc::new(
        timeout(LIMIT, Client::connect(client_config(&sim)))
            .await
            .unwrap()
            .unwrap(),
    );
    let (mut received, run) = run_client(&client, 0);
    // Signed by the platform key over other content, then signed by the app's key.
    let forged = sim.push_forged(API, r#"{"forged":1}"#, None).await.unwrap();
    let forged2 = sim
        .push_forged(API, r#"{"forged":2}"#, Some(app_signer()))
        .await
        .unwrap();
    let genuine = sim.push(API, r#"{"genuine":true}"#).await.unwrap();
    for id in [&forged, &forged2] {
        let event = wait_event(&mut events, |e| {
            matches!(e, SimulatorEvent::Server(ServerEvent::ForgedDiscarded { msg_id, .. }) if msg_id == id)
        })
        .await;
        assert_eq!(
            event,
            SimulatorEvent::Server(ServerEvent::ForgedDiscarded {
                msg_id: id.clone(),
                status: Some(AckStatus::Fail)
            })
        );
    }
    let (msg_id, biz) = timeout(LIMIT, received.recv()).await.unwrap().unwrap();
    assert_eq!(
        (msg_id.as_str(), biz.as_str()),
        (genuine.as_str(), r#"{"genuine":true}"#)
    );
    timeout(LIMIT, sim.wait_settled()).await.unwrap().unwrap();
    let counts = sim.counts().await.unwrap();
    assert_eq!(
        (
            counts.forged_discarded,
            counts.forged_accepted,
            counts.acked
        ),
        (2, 0, 1)
    );
    timeout(LIMIT, client.shutdown()).await.unwrap();
    timeout(LIMIT, run).await.unwrap().unwrap().unwrap();
    assert!(
        received.try_recv().is_err(),
        "the handler saw only the genuine message"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn fail_and_disconnect_redeliver_to_the_client() {
    let mut options = SimulatorOptions::with_test_keys();
    options.server.redelivery = vec![Duration::from_millis(20)];
    let sim = Simulator::start(options).await.unwrap();
    let mut events = sim.events();
    let client = Arc::new(
        timeout(LIMIT, Client::connect(client_config(&sim)))
            .await
            .unwrap()
            .unwrap(),
    );
    let (mut received, run) = run_client(&client, 1);
    let id = sim.push(API, r#"{"n":1}"#).await.unwrap();
    // First attempt answered FAIL, the second SUCCESS.
    for _ in 0..2 {
        let (msg_id, _) = timeout(LIMIT, received.recv()).await.unwrap().unwrap();
        assert_eq!(msg_id, id.as_str());
    }
    timeout(LIMIT, sim.wait_settled()).await.unwrap().unwrap();
    assert_eq!(sim.acked_messages().await.unwrap(), vec![(id.clone(), 2)]);

    // A platform restart: the client reconnects and gets what is pushed next.
    assert_eq!(sim.disconnect_all().await.unwrap(), 1);
    wait_event(&mut events, |e| {
        matches!(
            e,
            SimulatorEvent::Server(ServerEvent::Disconnected {
                by_server: true,
                ..
            })
        )
    })
    .await;
    wait_event(&mut events, |e| {
        matches!(e, SimulatorEvent::Server(ServerEvent::Connected { .. }))
    })
    .await;
    let id2 = sim.push(API, r#"{"n":2}"#).await.unwrap();
    let (msg_id, _) = timeout(LIMIT, received.recv()).await.unwrap().unwrap();
    assert_eq!(msg_id, id2.as_str());
    timeout(LIMIT, sim.wait_settled()).await.unwrap().unwrap();
    timeout(LIMIT, client.shutdown()).await.unwrap();
    timeout(LIMIT, run).await.unwrap().unwrap().unwrap();
    sim.shutdown().await;
}

#[test]
fn start_on_thread_works_from_a_plain_test() {
    let sim = Simulator::start_on_thread(SimulatorOptions::with_test_keys()).unwrap();
    let events = sim.events();

    // register.do with std's blocking socket.
    let mut stream = std::net::TcpStream::connect(sim.local_addr()).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.write_all(&register_bytes(&sim.endpoint())).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let response = parse_response(&bytes, true, 1 << 20).unwrap().unwrap();
    parse_register_answer(
        &response,
        Charset::Utf8,
        &platform_verifier(),
        SignType::Rsa2,
        None,
    )
    .unwrap();

    let id = sim.push(API, r#"{"a":1}"#).unwrap();
    assert!(!sim.is_settled().unwrap());
    assert_eq!(
        sim.message_state(&id).unwrap(),
        Some(MessageState::Queued { attempts: 0 })
    );
    assert!(!sim.wait_settled(Duration::from_millis(10)).unwrap());

    // A client on a runtime of its own settles it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = Arc::new(
        runtime
            .block_on(Client::connect(client_config(sim.simulator())))
            .unwrap(),
    );
    let (_received, run) = runtime.block_on(async { run_client(&client, 0) });
    assert!(sim.wait_settled(LIMIT).unwrap());
    assert_eq!(sim.acked_messages().unwrap().len(), 1);
    runtime.block_on(async {
        client.shutdown().await;
        run.await.unwrap().unwrap();
    });
    assert!(sim.wait_disconnected(LIMIT).unwrap());
    assert_eq!(sim.disconnect_all().unwrap(), 0);
    drop(events);
    sim.shutdown();
}

#[tokio::test]
async fn heartbeats_are_answered_and_shutdown_closes_clients() {
    let sim = Simulator::start(SimulatorOptions::with_test_keys())
        .await
        .unwrap();
    let mut config = client_config(&sim);
    config.heartbeat_interval = Duration::from_millis(20);
    config.dead_after = Duration::from_millis(200);
    let client = timeout(LIMIT, Client::connect(config))
        .await
        .unwrap()
        .unwrap();
    let mut client_events = client.events();
    // The first subscription starts with the first connection.
    for expected in [
        alipay_msg_tokio::ClientEvent::Connecting { attempt: 1 },
        alipay_msg_tokio::ClientEvent::Connected,
    ] {
        assert_eq!(client_events.recv().await.unwrap(), expected);
    }
    // Several dead_after periods of pings: every one is answered, nothing disconnects.
    let quiet = timeout(Duration::from_millis(600), client_events.recv()).await;
    assert!(quiet.is_err(), "no client event expected: {quiet:?}");
    assert_eq!(sim.connection_count(), 1);

    // Stopping the simulator closes the connection, and does not take long.
    timeout(Duration::from_secs(5), sim.shutdown())
        .await
        .unwrap();
    let event = timeout(LIMIT, client_events.recv()).await.unwrap().unwrap();
    assert!(
        matches!(event, alipay_msg_tokio::ClientEvent::Disconnected { .. }),
        "{event:?}"
    );
    assert!(matches!(
        sim.push(API, "{}").await,
        Err(alipay_msg_simulator::SimulatorError::Stopped)
    ));
    timeout(LIMIT, client.shutdown()).await.unwrap();
}

#[tokio::test]
async fn admin_faults_produce_failures_and_bulk_pushes() {
    let sim = Simulator::start(SimulatorOptions::with_test_keys())
        .await
        .unwrap();

    // Faults: the body replaces the plan; the answer is the plan armed.
    let response = exchange(
        &sim,
        &post(
            "/admin/faults",
            r#"{"duplicate_consumes":2,"delay_produce_acks_ms":150}"#,
        ),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(json_body(&response)["duplicate_consumes"], 2);
    assert_eq!(json_body(&response)["delay_produce_acks_ms"], 150);
    let plan = sim
        .with_session(|session, _| session.faults().clone())
        .await
        .unwrap();
    assert_eq!(plan.duplicate_consumes, 2);
    assert_eq!(plan.delay_produce_acks, Some(Duration::from_millis(150)));
    let response = exchange(&sim, &post("/admin/faults", "{}")).await;
    assert_eq!(response.status, 200);
    let plan = sim
        .with_session(|session, _| session.faults().clone())
        .await
        .unwrap();
    assert_eq!(plan, Default::default());
    let response = exchange(&sim, &post("/admin/faults", r#"{"duplicates":1}"#)).await;
    assert_eq!(response.status, 400);

    // PRODUCE failures by message API, and removed again with null.
    let response = exchange(
        &sim,
        &post(
            "/admin/produce-failure",
            r#"{"msg_api":"a.b","failure":"service_unavailable"}"#,
        ),
    )
    .await;
    assert_eq!(response.status, 200);
    let failures = || sim.with_session(|session, _| session.config().produce_failures.clone());
    assert_eq!(
        failures().await.unwrap().get("a.b"),
        Some(&alipay_msg_core::server::ProduceFailure::ServiceUnavailable)
    );
    let response = exchange(
        &sim,
        &post(
            "/admin/produce-failure",
            r#"{"msg_api":"a.b","failure":null}"#,
        ),
    )
    .await;
    assert_eq!(response.status, 200);
    assert!(failures().await.unwrap().is_empty());
    for body in [
        r#"{"msg_api":"a.b","failure":"later"}"#,
        r#"{"msg_api":"","failure":"sys_abort"}"#,
    ] {
        assert_eq!(
            exchange(&sim, &post("/admin/produce-failure", body))
                .await
                .status,
            400,
            "{body}"
        );
    }

    // Bulk: n copies, each its own id.
    let body = format!(r#"{{"msg_api":"{API}","biz_content":{{"mini_app_id":"1"}},"count":3}}"#);
    let response = exchange(&sim, &post("/admin/push-bulk", &body)).await;
    assert_eq!(response.status, 200);
    let answer = json_body(&response);
    assert_eq!(answer["count"], 3);
    assert_ne!(answer["first_msg_id"], answer["last_msg_id"]);
    assert_eq!(sim.counts().await.unwrap().queued, 3);
    let body = format!(r#"{{"msg_api":"{API}","biz_content":{{}},"count":0}}"#);
    let response = exchange(&sim, &post("/admin/push-bulk", &body)).await;
    assert_eq!(response.status, 400);
    sim.shutdown().await;
}
