//! The conformance suite: the end-to-end scenarios every `alipay-msg` client must pass,
//! written once against [`ClientUnderTest`] and run, over 127.0.0.1, against the local
//! simulator of the platform.
//!
//! A client crate's test implements [`ClientUnderTest`] (a blocking view of its API) and
//! expands [`conformance_suite!`], which makes one `#[test]` per scenario.

pub mod chaos;
pub mod cluster;
pub mod tls;
pub mod valve;

// Every Rust example in the README compiles (and those not marked `no_run` run) as a
// doc test of this crate, which sees every client crate.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod readme {}

// The same for the Rust examples of the architecture notes.
#[cfg(doctest)]
#[doc = include_str!("../../docs/architecture.md")]
mod architecture_notes {}

// And for those of the cluster notes.
#[cfg(doctest)]
#[doc = include_str!("../../docs/clusters.md")]
mod cluster_notes {}

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alipay_msg_core::client::RejectReason;
use alipay_msg_core::client::{ClientConfig, ClientError, ClientEvent, Credentials, Message};
use alipay_msg_core::key::PrivateKey;
use alipay_msg_core::produce_ack::ProduceAck;
use alipay_msg_core::server::{FaultPlan, MessageState, ProduceFailure};
use alipay_msg_core::signature::{SignType, Signer};
use alipay_msg_simulator::{test_keys, AppKey, Simulator, SimulatorHandle, SimulatorOptions};
use serde_json::{json, Value};

/// A handler as the suite writes it: synchronous, may block (the client under test runs
/// it the way its users would run blocking work).
pub type Handler = Arc<dyn Fn(&Message) -> Result<(), String> + Send + Sync>;

/// A client, seen through a blocking interface.
pub trait ClientUnderTest: Send + Sync + Sized + 'static {
    /// Connects; returns once the first connection is open.
    fn connect(config: ClientConfig) -> Result<Self, ClientError>;
    /// Starts handling messages with `handler` in the background; returns at once.
    fn start(&self, handler: Handler);
    /// Sends a PRODUCE and waits for its PRODUCE_ACK.
    fn send(&self, msg_api: &str, biz_content: &Value) -> Result<ProduceAck, ClientError>;
    /// Every event since `connect`.
    fn events(&self) -> Vec<ClientEvent>;
    /// Graceful shutdown: returns when in-flight handlers have finished, the connection
    /// is closed, the run started by [`ClientUnderTest::start`] has returned and no task
    /// or thread of the client is left.
    fn shutdown(&self);
}

/// Makes one `#[test]` per scenario for a [`ClientUnderTest`].
#[macro_export]
macro_rules! conformance_suite {
    ($client:ty) => {
        #[test]
        fn happy_path() {
            $crate::happy_path::<$client>();
        }
        #[test]
        fn read_order_kept() {
            $crate::read_order_kept::<$client>();
        }
        #[test]
        fn handler_failure_and_redelivery() {
            $crate::handler_failure_and_redelivery::<$client>();
        }
        #[test]
        fn handler_panic_is_a_failure() {
            $crate::handler_panic_is_a_failure::<$client>();
        }
        #[test]
        fn duplicate_suppressed() {
            $crate::duplicate_suppressed::<$client>();
        }
        #[test]
        fn forged_rejected() {
            $crate::forged_rejected::<$client>();
        }
        #[test]
        fn platform_restart_loses_nothing() {
            $crate::platform_restart_loses_nothing::<$client>();
        }
        #[test]
        fn produce_success_and_error_code() {
            $crate::produce_success_and_error_code::<$client>();
        }
        #[test]
        fn shutdown_drains_handlers_in_flight() {
            $crate::shutdown_drains_handlers_in_flight::<$client>();
        }
        #[test]
        fn certificate_mode() {
            $crate::certificate_mode::<$client>();
        }
        #[test]
        fn refused_configuration() {
            $crate::refused_configuration::<$client>();
        }
        #[test]
        fn first_connect_gives_up_with_the_last_cause() {
            $crate::first_connect_gives_up_with_the_last_cause::<$client>();
        }
        #[test]
        fn key_warnings_at_start_up() {
            $crate::key_warnings_at_start_up::<$client>();
        }
        #[test]
        fn gbk_app_exchanges_chinese_text() {
            $crate::gbk_app_exchanges_chinese_text::<$client>();
        }
        #[test]
        fn send_only_client_fails_pushes_at_once() {
            $crate::send_only_client_fails_pushes_at_once::<$client>();
        }
        #[test]
        fn chaos() {
            $crate::chaos::chaos::<$client>();
        }
    };
}

const LIMIT: Duration = Duration::from_secs(30);
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

fn read(rel: &str) -> String {
    // The test vectors ship with the repository.
    std::fs::read_to_string(format!("{DIR}/{rel}")).expect("test vector readable")
}

fn fast(mut options: SimulatorOptions) -> SimulatorOptions {
    options.server.redelivery = vec![Duration::from_millis(100)];
    options.server.ack_timeout = Duration::from_secs(3);
    options
}

fn simulator() -> SimulatorHandle {
    Simulator::start_on_thread(fast(SimulatorOptions::with_test_keys())).expect("simulator starts")
}

fn config(sim: &SimulatorHandle) -> ClientConfig {
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
            .expect("test keys load");
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    config
}

fn connect<C: ClientUnderTest>(config: ClientConfig) -> C {
    C::connect(config).expect("the client connects to the simulator")
}

/// Successful handler runs and all runs, per msg id.
#[derive(Default)]
struct Tally {
    successes: Mutex<HashMap<String, usize>>,
    runs: Mutex<HashMap<String, usize>>,
}

impl Tally {
    /// A handler that fails the first `fail_first` runs of each message (panicking
    /// instead when `panic` is set), sleeps `work`, and counts.
    fn handler(self: &Arc<Self>, fail_first: usize, panic: bool, work: Duration) -> Handler {
        let tally = self.clone();
        Arc::new(move |msg: &Message| {
            let run = {
                let mut runs = tally.runs.lock().expect("lock");
                let n = runs.entry(msg.msg_id().to_owned()).or_default();
                *n += 1;
                *n
            };
            if run <= fail_first {
                if panic {
                    panic!("handler bug on purpose (run {run})");
                }
                return Err(format!("failure on purpose (run {run})"));
            }
            std::thread::sleep(work);
            *tally
                .successes
                .lock()
                .expect("lock")
                .entry(msg.msg_id().to_owned())
                .or_default() += 1;
            Ok(())
        })
    }

    fn assert_each_once(&self, ids: &[String]) {
        let s = self.successes.lock().expect("lock");
        for id in ids {
            assert_eq!(
                s.get(id),
                Some(&1),
                "{id} handled successfully exactly once: {s:?}"
            );
        }
        assert_eq!(s.len(), ids.len(), "nothing else was handled: {s:?}");
    }
}

fn push_n(sim: &SimulatorHandle, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let biz = json!({"mini_app_id": "2014072300007148", "n": i}).to_string();
            sim.push("alipay.open.mini.version.audit.passed", &biz)
                .expect("push")
                .as_str()
                .to_owned()
        })
        .collect()
}

fn settle(sim: &SimulatorHandle) {
    assert!(
        sim.wait_settled(LIMIT).expect("simulator runs"),
        "settled within {LIMIT:?}: {:?}",
        sim.counts()
    );
}

/// A simulator, and a client connected to it running a [`Tally`]'s handler
/// ([`Tally::handler`]'s arguments).
fn running<C: ClientUnderTest>(
    fail_first: usize,
    panic: bool,
    work: Duration,
) -> (SimulatorHandle, C, Arc<Tally>) {
    let sim = simulator();
    let client: C = connect(config(&sim));
    let tally = Arc::new(Tally::default());
    client.start(tally.handler(fail_first, panic, work));
    (sim, client, tally)
}

fn count<C: ClientUnderTest>(client: &C, pred: impl Fn(&ClientEvent) -> bool) -> usize {
    client.events().iter().filter(|e| pred(e)).count()
}

/// 20 messages, each handled once, all acknowledged.
pub fn happy_path<C: ClientUnderTest>() {
    let (sim, client, tally) = running::<C>(0, false, Duration::ZERO);
    let ids = push_n(&sim, 20);
    settle(&sim);
    client.shutdown();
    tally.assert_each_once(&ids);
    sim.shutdown();
}

/// One delivery in flight at a time (`max_in_flight` 1): never two handlers at once,
/// and handlers run in the order the platform sent the messages, although the client
/// reads and checks frames ahead of the session — on the thread that reads
/// (`check_parallelism` 1), on three lanes (more than this machine may have cores), and
/// on the default number.
pub fn read_order_kept<C: ClientUnderTest>() {
    for parallelism in [1, 3, 0] {
        let sim = simulator();
        let mut config = config(&sim);
        config.max_in_flight = 1;
        config.check_parallelism = parallelism;
        let client: C = connect(config);
        let order = Arc::new(Mutex::new(Vec::new()));
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (handled, now_running, most) = (order.clone(), running.clone(), peak.clone());
        client.start(Arc::new(move |msg: &Message| {
            let n = now_running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(n, Ordering::SeqCst);
            handled.lock().expect("lock").push(msg.msg_id().to_owned());
            // Long enough for a second delivery, if one were admitted, to overlap.
            std::thread::sleep(Duration::from_micros(300));
            now_running.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }));
        let ids = push_n(&sim, 60);
        settle(&sim);
        client.shutdown();
        assert_eq!(
            peak.load(Ordering::SeqCst),
            1,
            "check_parallelism {parallelism}: one handler at a time"
        );
        assert_eq!(
            *order.lock().expect("lock"),
            ids,
            "check_parallelism {parallelism}: handled in the order sent"
        );
        sim.shutdown();
    }
}

/// A handler error acks FAIL; the platform redelivers; the next run succeeds.
pub fn handler_failure_and_redelivery<C: ClientUnderTest>() {
    let (sim, client, tally) = running::<C>(2, false, Duration::ZERO);
    let ids = push_n(&sim, 4);
    settle(&sim);
    client.shutdown();
    tally.assert_each_once(&ids);
    for (id, attempts) in sim.acked_messages().expect("simulator runs") {
        assert_eq!(attempts, 3, "{} took two FAILs and a SUCCESS", id.as_str());
    }
    assert_eq!(
        count(&client, |e| matches!(e, ClientEvent::HandlerFailed { .. })),
        8
    );
    sim.shutdown();
}

/// A panicking handler acks FAIL and the client keeps going.
pub fn handler_panic_is_a_failure<C: ClientUnderTest>() {
    let (sim, client, tally) = running::<C>(1, true, Duration::ZERO);
    let ids = push_n(&sim, 2);
    settle(&sim);
    client.shutdown();
    tally.assert_each_once(&ids);
    sim.shutdown();
}

/// The platform delivers a message twice: the handler runs once.
pub fn duplicate_suppressed<C: ClientUnderTest>() {
    let (sim, client, tally) = running::<C>(0, false, Duration::ZERO);
    sim.set_faults(FaultPlan {
        duplicate_consumes: 3,
        ..FaultPlan::default()
    })
    .expect("faults");
    let ids = push_n(&sim, 3);
    settle(&sim);
    wait_for(|| count(&client, |e| matches!(e, ClientEvent::Duplicate { .. })) == 3);
    client.shutdown();
    tally.assert_each_once(&ids);
    sim.shutdown();
}

/// Forged messages are rejected and never reach the handler.
pub fn forged_rejected<C: ClientUnderTest>() {
    let (sim, client, tally) = running::<C>(0, false, Duration::ZERO);
    let forger = PrivateKey::from_pem_or_base64(&read("keys/app_private_pkcs1.pem")).expect("key");
    let forger = Signer::new(&forger, SignType::Rsa2).expect("signer");
    sim.push_forged(
        "alipay.open.auth.appauth.cancelled",
        r#"{"app_auth_token":"x"}"#,
        Some(forger),
    )
    .expect("push");
    sim.push_forged(
        "alipay.open.auth.appauth.cancelled",
        r#"{"app_auth_token":"y"}"#,
        None,
    )
    .expect("push");
    let ids = push_n(&sim, 2);
    settle(&sim);
    wait_for(|| count(&client, |e| matches!(e, ClientEvent::Rejected { .. })) == 2);
    client.shutdown();
    tally.assert_each_once(&ids);
    assert_eq!(sim.counts().expect("simulator runs").forged_accepted, 0);
    sim.shutdown();
}

/// The platform drops every connection three times mid-stream: the client reconnects and
/// nothing is lost or handled twice.
pub fn platform_restart_loses_nothing<C: ClientUnderTest>() {
    let (sim, client, tally) = running::<C>(0, false, Duration::from_millis(3));
    let mut ids = push_n(&sim, 30);
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(30));
        sim.disconnect_all().expect("simulator runs");
        ids.extend(push_n(&sim, 10));
    }
    settle(&sim);
    client.shutdown();
    tally.assert_each_once(&ids);
    sim.shutdown();
}

/// PRODUCE: accepted, and a retryable platform error.
pub fn produce_success_and_error_code<C: ClientUnderTest>() {
    let sim = simulator();
    let client: C = connect(config(&sim));
    let ack = client
        .send(
            "alipay.open.app.openbizmock.message.send",
            &json!({"shop_id": "1001"}),
        )
        .expect("send");
    assert!(ack.is_success(), "{ack}");
    sim.set_produce_failure(
        "alipay.open.app.busy.message.send",
        Some(ProduceFailure::ServiceUnavailable),
    )
    .expect("simulator runs");
    let ack = client
        .send("alipay.open.app.busy.message.send", &json!({"a": 1}))
        .expect("send");
    assert_eq!(
        (ack.code.as_deref(), ack.is_retryable(), ack.is_success()),
        (Some("20000"), true, false)
    );
    let err = client
        .send("alipay.open.app.openbizmock.message.send", &json!([1]))
        .expect_err("not an object");
    assert!(err.to_string().contains("JSON object"), "{err}");
    client.shutdown();
    sim.shutdown();
}

/// An app whose charset is GBK: the websocket text frames carry GBK bytes both ways
/// (PROTOCOL §4, the platform's Java client encodes and decodes every text frame in the
/// app's charset). A CONSUME with Chinese text reaches the handler intact, signed and
/// verified over its GBK bytes, and is acked; a PRODUCE with Chinese text, signed over
/// its GBK bytes, is accepted.
pub fn gbk_app_exchanges_chinese_text<C: ClientUnderTest>() {
    let sim = simulator();
    let mut config = config(&sim);
    config.charset = alipay_msg_core::charset::Charset::Gbk;
    let client: C = connect(config);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler: Handler = {
        let seen = seen.clone();
        Arc::new(move |msg: &Message| {
            seen.lock()
                .expect("lock")
                .push(msg.biz_content().to_owned());
            Ok(())
        })
    };
    client.start(handler);
    let biz = json!({"shop_name": "测试店铺", "memo": "订单已支付，谢谢"}).to_string();
    sim.push("alipay.open.mini.version.audit.passed", &biz)
        .expect("push");
    settle(&sim);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let got: serde_json::Value = serde_json::from_str(&seen[0]).expect("JSON");
    assert_eq!(got["shop_name"], "测试店铺", "{}", seen[0]);
    assert_eq!(got["memo"], "订单已支付，谢谢", "{}", seen[0]);
    let ack = client
        .send(
            "alipay.open.app.openbizmock.message.send",
            &json!({"shop_name": "测试店铺"}),
        )
        .expect("send");
    assert!(ack.is_success(), "{ack}");
    assert_eq!(
        count(&client, |e| matches!(e, ClientEvent::Rejected { .. })),
        0
    );
    client.shutdown();
    sim.shutdown();
}

/// Shutdown with handlers in flight: they finish, their acks reach the platform, and
/// shutdown returns only after that.
pub fn shutdown_drains_handlers_in_flight<C: ClientUnderTest>() {
    let sim = simulator();
    let client: C = connect(config(&sim));
    let (started, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (s, f) = (started.clone(), finished.clone());
    client.start(Arc::new(move |_msg: &Message| {
        s.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        f.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }));
    push_n(&sim, 3);
    wait_for(|| started.load(Ordering::SeqCst) == 3);
    client.shutdown();
    assert_eq!(
        finished.load(Ordering::SeqCst),
        3,
        "shutdown returned after the handlers"
    );
    assert!(sim.wait_disconnected(LIMIT).expect("simulator runs"));
    settle(&sim);
    assert_eq!(sim.acked_messages().expect("simulator runs").len(), 3);
    sim.shutdown();
}

/// Certificate mode end to end: SNs on register, upgrade and PRODUCE; the platform key
/// taken from its certificate.
pub fn certificate_mode<C: ClientUnderTest>() {
    let app_key = AppKey::from_certificates(
        &read("certs/app_cert.crt"),
        Some(&read("certs/root_bundle_simple.crt")),
    )
    .expect("certificates");
    let platform =
        PrivateKey::from_pem_or_base64(&read("keys/alipay_private_pkcs1.pem")).expect("key");
    let options = SimulatorOptions::new(test_keys::APP_ID, &app_key, &platform)
        .expect("options")
        .platform_cert_sn("7107d7d8dc6fc5ce914a4560bcd5096a");
    let sim = Simulator::start_on_thread(fast(options)).expect("simulator starts");
    let credentials = Credentials::certificate(
        &read("keys/app_private_pkcs8.pem"),
        &read("certs/app_cert.crt"),
        &read("certs/alipay_cert.crt"),
        &read("certs/root_bundle_simple.crt"),
    )
    .expect("certificate credentials");
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    let client: C = connect(config);
    let tally = Arc::new(Tally::default());
    client.start(tally.handler(0, false, Duration::ZERO));
    let ids = push_n(&sim, 3);
    settle(&sim);
    let ack = client
        .send(
            "alipay.open.app.openbizmock.message.send",
            &json!({"shop_id": "1001"}),
        )
        .expect("send");
    assert!(ack.is_success(), "{ack}");
    client.shutdown();
    tally.assert_each_once(&ids);
    sim.shutdown();
}

/// The platform refuses the signature: `connect` fails with the platform's reason.
pub fn refused_configuration<C: ClientUnderTest>() {
    let sim = simulator();
    let credentials = Credentials::public_key(
        &read("keys/alipay_private_pkcs1.pem"),
        test_keys::PLATFORM_PUBLIC_KEY,
    )
    .expect("keys load");
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    let started = Instant::now();
    let err = match C::connect(config) {
        Ok(_) => panic!("connect must fail"),
        Err(e) => e,
    };
    assert!(matches!(err, ClientError::Refused(_)), "{err}");
    assert!(err.to_string().contains("isv.invalid-signature"), "{err}");
    assert!(started.elapsed() < LIMIT);
    sim.shutdown();
}

/// Nothing listens on the endpoint: `connect` gives up after `first_connect_timeout`
/// with [`ClientError::ConnectTimeout`] naming the last attempt's failure, typed
/// (connection refused).
pub fn first_connect_gives_up_with_the_last_cause<C: ClientUnderTest>() {
    // A port where nothing listens: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
            .expect("test keys load");
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = alipay_msg_core::endpoint::Endpoint::plain("127.0.0.1", port);
    config.first_connect_timeout = Some(Duration::from_millis(1500));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(C::connect(config).map(|client| client.shutdown()));
    });
    let err = match rx.recv_timeout(LIMIT) {
        Ok(Ok(())) => panic!("connected to a port where nothing listens"),
        Ok(Err(e)) => e,
        Err(_) => panic!("connect did not give up within {LIMIT:?}"),
    };
    match &err {
        ClientError::ConnectTimeout { waited, last } => {
            assert_eq!(*waited, Duration::from_millis(1500));
            let last = last.as_ref().expect("an attempt failed");
            assert_eq!(
                **last,
                alipay_msg_core::client::DisconnectReason::Network(
                    std::io::ErrorKind::ConnectionRefused
                ),
                "{last}"
            );
        }
        other => panic!("expected ConnectTimeout, got {other}"),
    }
    let text = err.to_string().to_lowercase();
    assert!(text.contains("refused"), "{text}");
}

/// A weak key (1024-bit, accepted with a warning) is reported by `events()` at start-up,
/// before the client connects.
pub fn key_warnings_at_start_up<C: ClientUnderTest>() {
    let small = PrivateKey::from_pem_or_base64(
        &std::fs::read_to_string(format!("{DIR}/../keys/small_1024_pkcs1.pem"))
            .expect("test key readable"),
    )
    .expect("small key loads");
    let platform =
        PrivateKey::from_pem_or_base64(&read("keys/alipay_private_pkcs1.pem")).expect("key");
    let options = SimulatorOptions::new(
        test_keys::APP_ID,
        &AppKey::PublicKey(small.public_key().clone()),
        &platform,
    )
    .expect("options");
    let sim = Simulator::start_on_thread(fast(options)).expect("simulator starts");
    let credentials = Credentials::PublicKey {
        app_private_key: small,
        alipay_public_key: alipay_msg_core::key::PublicKey::from_pem_or_base64(
            test_keys::PLATFORM_PUBLIC_KEY,
        )
        .expect("key loads"),
    };
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    // ring signs with 2048-bit keys and more; the pure-Rust backend signs small ones.
    config.backend = alipay_msg_core::crypto::Backend::RustCrypto;
    let client: C = connect(config);
    wait_for(|| count(&client, |e| matches!(e, ClientEvent::Connected)) > 0);
    let events = client.events();
    let warning = events
        .iter()
        .position(|e| {
            matches!(
                e,
                ClientEvent::KeyWarning {
                    which: "app private key",
                    warning: alipay_msg_core::key::KeyWarning::SmallModulus { bits: 1024 },
                }
            )
        })
        .unwrap_or_else(|| panic!("no key warning in {events:?}"));
    let connected = events
        .iter()
        .position(|e| matches!(e, ClientEvent::Connected))
        .expect("connected");
    assert!(warning < connected, "{events:?}");
    client.shutdown();
    sim.shutdown();
}

/// Waits (bounded) until `done` holds.
/// A client that never consumes (no `run`, no `deliveries`: one that only sends) does
/// not hold the platform's pushes: a message pushed to it is answered FAIL within about
/// a second (`consumer_grace`, 500 ms by default), reported as `Rejected` with
/// `NoConsumer`, and a consuming client started afterwards handles it (issue 18).
pub fn send_only_client_fails_pushes_at_once<C: ClientUnderTest>() {
    let sim = simulator();
    let sender: C = connect(config(&sim));
    let pushed = Instant::now();
    let id = sim
        .push("alipay.open.mini.version.audit.passed", r#"{"n":1}"#)
        .expect("push");
    // Answered FAIL: the simulator counts an attempt that is no longer in flight.
    let failed = || {
        matches!(
            sim.message_state(&id).expect("simulator runs"),
            Some(MessageState::WaitingRetry { attempts, .. } | MessageState::Queued { attempts })
                if attempts >= 1
        )
    };
    while !failed() {
        assert!(
            pushed.elapsed() < Duration::from_secs(2),
            "the send-only client answered within about a second: {:?}",
            sim.message_state(&id)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let fail_took = pushed.elapsed();
    wait_for(|| {
        count(&sender, |e| {
            matches!(
                e,
                ClientEvent::Rejected {
                    reason: RejectReason::NoConsumer { .. },
                    ..
                }
            )
        }) >= 1
    });

    let consumer: C = connect(config(&sim));
    let tally = Arc::new(Tally::default());
    consumer.start(tally.handler(0, false, Duration::ZERO));
    settle(&sim);
    consumer.shutdown();
    sender.shutdown();
    tally.assert_each_once(&[id.as_str().to_owned()]);
    assert_eq!(
        count(&sender, |e| matches!(e, ClientEvent::HandlerFailed { .. })),
        0,
        "the sender ran no handler"
    );
    eprintln!("send-only client: FAILed {fail_took:?} after the push");
    sim.shutdown();
}

fn wait_for(done: impl Fn() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "condition not reached within {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
