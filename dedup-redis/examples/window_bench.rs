//! Messages per second through the blocking client with the local duplicate window and
//! with the shared window on Redis, back to back in one run, against the local
//! simulator (127.0.0.1): the cost of a claim and a record per message.
//!
//! ```text
//! ALIPAY_MSG_REDIS_URL=redis://127.0.0.1:6379/0 \
//!     cargo run --release -p alipay-msg-redis --example window_bench [MESSAGES] [ROUNDS]
//! ```
//!
//! MESSAGES (default 20 000) are pushed pre-signed at once; the time runs from the push
//! to the last SUCCESS ack the simulator records. Each round measures the local window
//! then the Redis window; every line is printed.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alipay_msg_blocking::{Client, ClientConfig, Credentials, Network, PoolConfig};
use alipay_msg_core::window::SharedWindowConfig;
use alipay_msg_redis::{RedisWindow, RedisWindowConfig, REDIS_URL_ENV};
use alipay_msg_simulator::{test_keys, Simulator, SimulatorOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let messages: usize = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(2), |a| a.parse())?;
    let url = std::env::var(REDIS_URL_ENV)
        .map_err(|_| format!("set {REDIS_URL_ENV} to the Redis to measure against"))?;
    println!("window_bench: blocking client, {messages} messages, {rounds} rounds");
    for round in 1..=rounds {
        let local = measure(messages, None)?;
        let shared = measure(messages, Some(&url))?;
        println!(
            "round {round}: local window {local:>9.0} msg/s | Redis window {shared:>9.0} msg/s ({:.0} %)",
            100.0 * shared / local
        );
    }
    Ok(())
}

/// Messages per second for one client (with the shared window on `redis` when given).
fn measure(messages: usize, redis: Option<&str>) -> Result<f64, Box<dyn std::error::Error>> {
    let mut options = SimulatorOptions::with_test_keys();
    options.server.max_queued = messages.max(100_000);
    let sim = Simulator::start_on_thread(options)?;
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)?;
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    config.max_in_flight = 256;
    let client = match redis {
        None => Client::connect(config)?,
        Some(url) => {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
            let window = RedisWindow::new(
                RedisWindowConfig::new(url).with_prefix(format!("bench-{nanos}")),
            )?;
            config.shared_window = Some(SharedWindowConfig::new());
            Client::connect_with_window(
                config,
                PoolConfig::default(),
                Network::default(),
                Arc::new(window),
            )?
        }
    };
    let client = Arc::new(client);
    let runner = client.clone();
    let run = std::thread::spawn(move || runner.run(|_msg| Ok::<(), std::io::Error>(())));
    let app_id = sim.app_id().to_owned();
    let content = sim.with_session(move |session, _| {
        session.presign(
            &app_id,
            "alipay.open.mini.version.audit.passed",
            r#"{"mini_app_id":"2014072300007148"}"#,
        )
    })??;
    let started = Instant::now();
    sim.with_session(move |session, now| {
        (0..messages).try_for_each(|_| session.push_presigned(&content, now).map(drop))
    })??;
    if !sim.wait_settled(Duration::from_secs(600))? {
        return Err(format!("not settled: {:?}", sim.counts()?).into());
    }
    let elapsed = started.elapsed();
    client.shutdown();
    run.join().map_err(|_| "the run thread panicked")??;
    sim.shutdown();
    Ok(messages as f64 / elapsed.as_secs_f64())
}
