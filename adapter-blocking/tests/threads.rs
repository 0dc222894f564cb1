//! No thread of the client outlives `shutdown`: counted from the operating system's
//! list of this process's threads. Its own test binary (one process, one test), so no
//! other client's threads are counted.

#![cfg(target_os = "linux")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alipay_msg_blocking::{Client, ClientConfig, Credentials, PoolConfig};
use alipay_msg_simulator::{test_keys, Simulator, SimulatorOptions};

/// Names of this process's threads that belong to a client: `alipay-msg-io`,
/// `alipay-msg-connect`, `alipay-msg-check`, `alipay-msg-handler-N` (the kernel keeps 15 bytes of a name,
/// so the simulator's `alipay-msg-simulator` shows as `alipay-msg-simu`).
fn client_threads() -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path().join("comm");
        // A thread that ended between listing and reading has no comm any more.
        if let Ok(name) = std::fs::read_to_string(path) {
            let name = name.trim().to_owned();
            if name.starts_with("alipay-msg-") && !name.starts_with("alipay-msg-simu") {
                names.push(name);
            }
        }
    }
    names
}

#[test]
fn no_thread_of_the_client_outlives_shutdown() {
    assert_eq!(client_threads(), Vec::<String>::new());
    let sim = Simulator::start_on_thread(SimulatorOptions::with_test_keys()).unwrap();
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
            .unwrap();
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    let client = Arc::new(
        Client::connect_with_timeout(config, PoolConfig::default(), Duration::from_secs(10))
            .unwrap(),
    );
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let runner = {
        let (client, st, fi) = (client.clone(), started.clone(), finished.clone());
        std::thread::spawn(move || {
            client.run(move |_msg| {
                st.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(300));
                fi.fetch_add(1, Ordering::SeqCst);
                Ok::<(), String>(())
            })
        })
    };
    for i in 0..3 {
        sim.push(
            "alipay.open.mini.version.audit.passed",
            &format!(r#"{{"n":{i}}}"#),
        )
        .unwrap();
    }
    let since = Instant::now();
    while started.load(Ordering::SeqCst) < 3 {
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "handlers started"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let during = client_threads();
    assert!(during.contains(&"alipay-msg-io".to_owned()), "{during:?}");
    assert_eq!(
        during
            .iter()
            .filter(|n| n.starts_with("alipay-msg-hand"))
            .count(),
        3,
        "{during:?}"
    );
    client.shutdown();
    assert_eq!(finished.load(Ordering::SeqCst), 3);
    // Every thread was joined before `shutdown` returned.
    assert_eq!(client_threads(), Vec::<String>::new());
    runner.join().unwrap().unwrap();
    assert!(sim.wait_settled(Duration::from_secs(2)).unwrap());
    assert_eq!(client_threads(), Vec::<String>::new());
}
