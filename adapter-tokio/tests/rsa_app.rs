//! An app whose sign type is `RSA` (SHA1withRSA), end to end against the simulator in
//! the default build: it registers (the answer signed SHA1withRSA, which the client
//! checks with its own sign type, as the Java client does), receives a CONSUME signed
//! SHA1withRSA, acknowledges it, and sends a PRODUCE signed SHA1withRSA (PROTOCOL §2,
//! §3, §5).

use std::sync::Arc;
use std::time::Duration;

use alipay_msg_core::server::ServerEvent;
use alipay_msg_core::signature::SignType;
use alipay_msg_simulator::{test_keys, Simulator, SimulatorEvent, SimulatorOptions};
use alipay_msg_tokio::{Client, ClientConfig, Credentials};
use tokio::sync::mpsc;
use tokio::time::timeout;

const API: &str = "alipay.open.mini.version.audit.passed";
const LIMIT: Duration = Duration::from_secs(20);

fn rsa_client_config(sim: &Simulator) -> ClientConfig {
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
            .unwrap();
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    config.sign_type = SignType::Rsa;
    config.backoff.base = Duration::from_millis(50);
    config.backoff.cap = Duration::from_millis(200);
    config
}

#[tokio::test]
async fn an_rsa_app_registers_consumes_acks_and_produces() {
    let options = SimulatorOptions::with_test_keys().app_sign_type(SignType::Rsa);
    let sim = Simulator::start(options).await.unwrap();
    let mut events = sim.events();

    let client = Arc::new(
        timeout(LIMIT, Client::connect(rsa_client_config(&sim)))
            .await
            .expect("connects in time")
            .expect("an RSA app registers and connects"),
    );
    assert_eq!(sim.connection_count(), 1);

    let (tx, mut received) = mpsc::unbounded_channel();
    let runner = client.clone();
    let run = tokio::spawn(async move {
        runner
            .run(move |msg| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((msg.msg_id().to_owned(), msg.biz_content().to_owned()));
                    Ok::<(), &str>(())
                }
            })
            .await
    });

    // A CONSUME signed SHA1withRSA reaches the handler and is acknowledged SUCCESS.
    let id = sim.push(API, r#"{"mini_app_id":"rsa"}"#).await.unwrap();
    let (got_id, biz) = timeout(LIMIT, received.recv()).await.unwrap().unwrap();
    assert_eq!(
        (got_id.as_str(), biz.as_str()),
        (id.as_str(), r#"{"mini_app_id":"rsa"}"#)
    );
    timeout(LIMIT, sim.wait_settled()).await.unwrap().unwrap();
    assert_eq!(sim.acked_messages().await.unwrap(), [(id, 1)]);

    // A PRODUCE signed SHA1withRSA is accepted by the platform.
    let ack = timeout(
        LIMIT,
        client.send("alipay.msg.rsa.test", &serde_json::json!({"k": "v"})),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(ack.is_success(), "{ack:?}");
    let produced = timeout(LIMIT, async {
        loop {
            if let SimulatorEvent::Server(ServerEvent::Produced { verdict, .. }) =
                events.recv().await.unwrap()
            {
                return verdict;
            }
        }
    })
    .await
    .unwrap();
    assert!(produced.is_accepted(), "{produced:?}");

    timeout(LIMIT, client.shutdown()).await.unwrap();
    timeout(LIMIT, run).await.unwrap().unwrap().unwrap();
    sim.shutdown().await;
}

#[tokio::test]
async fn an_rsa2_app_is_unchanged() {
    let sim = Simulator::start(SimulatorOptions::with_test_keys())
        .await
        .unwrap();
    let mut config = rsa_client_config(&sim);
    config.sign_type = SignType::Rsa2;
    let client = timeout(LIMIT, Client::connect(config))
        .await
        .unwrap()
        .unwrap();
    let ack = timeout(
        LIMIT,
        client.send("alipay.msg.rsa2.test", &serde_json::json!({"k": "v"})),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(ack.is_success(), "{ack:?}");
    timeout(LIMIT, client.shutdown()).await.unwrap();
    sim.shutdown().await;
}
