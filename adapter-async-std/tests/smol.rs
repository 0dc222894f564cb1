//! The client driven from smol instead of async-std: `smol::block_on` on the test
//! thread, the handler loop on smol's executor. (The client's own tasks still run on
//! async-std's global executor; its sockets and timers are async-io's, which smol
//! shares.)

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alipay_msg_async_std::{Client, ClientConfig, Credentials};
use alipay_msg_simulator::{test_keys, Simulator, SimulatorOptions};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn runs_under_smol() {
    let mut options = SimulatorOptions::with_test_keys();
    options.server.redelivery = vec![Duration::from_millis(100)];
    let sim = Arc::new(Simulator::start_on_thread(options).unwrap());
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
            .unwrap();
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();

    smol::block_on(async {
        let client = Arc::new(Client::connect(config).await.unwrap());
        let handled = Arc::new(Mutex::new(HashSet::new()));
        let (runner, h) = (client.clone(), handled.clone());
        let run = smol::spawn(async move {
            runner
                .run(move |msg| {
                    let h = h.clone();
                    async move {
                        smol::Timer::after(Duration::from_millis(5)).await;
                        h.lock().unwrap().insert(msg.msg_id().to_owned());
                        Ok::<(), String>(())
                    }
                })
                .await
        });
        let s = sim.clone();
        let ids: Vec<String> = smol::unblock(move || {
            (0..5)
                .map(|i| {
                    let biz = format!(r#"{{"n":{i}}}"#);
                    s.push("alipay.open.mini.version.audit.passed", &biz)
                        .unwrap()
                        .as_str()
                        .to_owned()
                })
                .collect()
        })
        .await;
        let s = sim.clone();
        assert!(smol::unblock(move || s.wait_settled(LIMIT)).await.unwrap());
        let ack = client
            .send(
                "alipay.open.app.openbizmock.message.send",
                &serde_json::json!({"a": 1}),
            )
            .await
            .unwrap();
        assert!(ack.is_success(), "{ack}");
        client.shutdown().await;
        run.await.unwrap();
        assert_eq!(client.live_tasks(), 0);
        let handled = handled.lock().unwrap();
        assert!(ids.iter().all(|id| handled.contains(id)), "{handled:?}");
    });
}
