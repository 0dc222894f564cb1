//! `alipay-msg demo`: the whole channel on this machine, no account, no network beyond
//! 127.0.0.1. A simulator of the platform with the repository's test keys, a client,
//! the platform's real message kinds, and the faults the client must survive; then the
//! other delivery path, HTTP notifications ([`crate::demo_notify`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alipay_msg_core::server::FaultPlan;
use alipay_msg_simulator::{test_keys, PlatformMessage, Simulator, SimulatorOptions};
use alipay_msg_tokio::{Client, ClientConfig, ClientEvent, Credentials};
use clap::Args;
use serde_json::{json, Value};

use crate::Failure;

/// The platform's message kinds with their documented example contents.
pub(crate) const EXAMPLES: &str = alipay_msg_simulator::PLATFORM_MESSAGE_EXAMPLES;

/// The message whose first delivery the demo's handler fails on purpose.
const FAIL_ONCE: &str = "alipay.open.mini.version.audit.rejected";
/// The message the platform (simulated) delivers twice.
const DELIVER_TWICE: &str = "alipay.open.mini.merchant.confirmed";

#[derive(Args)]
pub(crate) struct DemoArgs {}

#[derive(Default)]
struct Handled {
    /// Successful handler runs per msg id.
    successes: HashMap<String, u32>,
    /// Handler runs per msg id.
    runs: HashMap<String, u32>,
}

pub(crate) fn run(_: DemoArgs) -> Result<u8, Failure> {
    crate::runtime()?.block_on(demo())
}

fn fail(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: 1,
        message: format!("demo: {message}"),
    }
}

async fn demo() -> Result<u8, Failure> {
    let examples = PlatformMessage::from_json_lines(EXAMPLES)
        .map_err(|(line, e)| fail(format!("example line {line}: {e}")))?;
    let descriptions: HashMap<String, String> = EXAMPLES
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            Some((
                v["msg_api"].as_str()?.to_owned(),
                v["description"].as_str()?.to_owned(),
            ))
        })
        .collect();

    // The platform, simulated on an ephemeral loopback port, redelivering quickly.
    let mut options = SimulatorOptions::with_test_keys();
    options.server.redelivery = vec![Duration::from_millis(300)];
    options.server.ack_timeout = Duration::from_secs(5);
    options.notify.time_scale = crate::demo_notify::TIME_SCALE;
    let sim = Simulator::start(options)
        .await
        .map_err(|e| fail(format!("simulator: {e}")))?;
    println!(
        "platform simulator listening on {} (test keys, app {})",
        sim.endpoint(),
        test_keys::APP_ID
    );

    // The client, configured as for the real platform but pointed at the simulator.
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
            .map_err(fail)?;
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint = sim.endpoint();
    let client = Arc::new(
        tokio::time::timeout(Duration::from_secs(15), Client::connect(config))
            .await
            .map_err(|_| fail("the client did not connect within 15 s"))?
            .map_err(fail)?,
    );
    println!("client connected\n");

    // Print what the client reports as it happens, and count it.
    let counters = Arc::new(Mutex::new((0u32, 0u32)));
    let printer = {
        let (mut events, counters) = (client.events(), counters.clone());
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    ClientEvent::Duplicate { msg_id } => {
                        counters.lock().expect("lock").0 += 1;
                        println!("  ≡ duplicate delivery of {msg_id} suppressed (acked SUCCESS, handler not run again)");
                    }
                    ClientEvent::Rejected { msg_id, reason } => {
                        counters.lock().expect("lock").1 += 1;
                        println!(
                            "  ⊘ rejected {}: {reason} (acked FAIL, handler not run)",
                            msg_id.as_deref().unwrap_or("a frame")
                        );
                    }
                    _ => {}
                }
            }
        })
    };
    let handled = Arc::new(Mutex::new(Handled::default()));
    let runner = {
        let (client, handled, descriptions) =
            (client.clone(), handled.clone(), descriptions.clone());
        tokio::spawn(async move {
            client
                .run(move |message| {
                    let (handled, descriptions) = (handled.clone(), descriptions.clone());
                    async move {
                        let msg_id = message.msg_id().to_owned();
                        let run = {
                            // A poisoned lock would mean a panic while counting: none here.
                            let mut h = handled.lock().expect("lock");
                            let runs = h.runs.entry(msg_id.clone()).or_default();
                            *runs += 1;
                            *runs
                        };
                        if message.msg_api() == FAIL_ONCE && run == 1 {
                            println!("  ✗ handler failed on purpose for {} ({msg_id}); the platform will redeliver it", message.msg_api());
                            return Err("simulated failure of the application's handler");
                        }
                        let description = descriptions.get(message.msg_api()).map_or("", String::as_str);
                        println!("  ✓ handled {}  — {description}", message.msg_api());
                        println!("      msg_id {msg_id}  biz_content {}", message.biz_content());
                        *handled.lock().expect("lock").successes.entry(msg_id).or_default() += 1;
                        Ok(())
                    }
                })
                .await
        })
    };

    // Push every example kind; one of them is delivered twice by the platform.
    let mut genuine = Vec::new();
    for message in examples {
        if message.msg_api == DELIVER_TWICE {
            sim.set_faults(FaultPlan {
                duplicate_consumes: 1,
                ..FaultPlan::default()
            })
            .await
            .map_err(fail)?;
        }
        println!("→ platform pushes {}", message.msg_api);
        genuine.push(sim.push_message(message).await.map_err(fail)?);
        // Pace the pushes so the output reads in order.
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    // A forged message: right shape, wrong signature. It must never reach the handler.
    println!("→ someone pushes a forged alipay.open.auth.appauth.cancelled");
    sim.push_forged(
        "alipay.open.auth.appauth.cancelled",
        r#"{"app_auth_token":"forged","app_id":"2014072300007148","auth_app_id":"2013072300101234","user_id":"2088100000034011"}"#,
        None,
    )
    .await
    .map_err(fail)?;

    // The other direction: a PRODUCE and its PRODUCE_ACK.
    let biz = json!({"shop_id": "1001", "status": "1002"});
    println!("→ client sends alipay.open.app.openbizmock.message.send {biz}");
    let ack = client
        .send("alipay.open.app.openbizmock.message.send", &biz)
        .await
        .map_err(fail)?;
    println!("  ← PRODUCE_ACK {ack}");

    let settled = tokio::time::timeout(Duration::from_secs(30), sim.wait_settled())
        .await
        .is_ok();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The other delivery path: HTTP notifications to an endpoint served in-process.
    let notified = crate::demo_notify::run(&sim).await?;

    printer.abort();
    let (duplicates, rejected) = *counters.lock().expect("lock");
    let acked = sim.acked_messages().await.map_err(fail)?;
    let redelivered: u32 = acked
        .iter()
        .filter(|(id, _)| genuine.contains(id))
        .map(|(_, attempts)| attempts.saturating_sub(1))
        .sum();
    client.shutdown().await;
    let _ = runner.await;
    sim.shutdown().await;

    let h = handled.lock().expect("lock");
    let handled_once = genuine
        .iter()
        .filter(|id| h.successes.get(id.as_str()) == Some(&1))
        .count();
    let handled_twice = h.successes.values().any(|&n| n > 1);
    let handled_any = genuine
        .iter()
        .filter(|id| h.successes.contains_key(id.as_str()))
        .count();
    let lost = genuine.len() - handled_any;
    println!();
    println!(
        "summary: pushed={} handled={} redelivered={redelivered} duplicates_suppressed={duplicates} rejected={rejected} lost={lost} {}",
        genuine.len(),
        handled_any,
        notified.summary_fields(),
    );
    let ok = settled
        && lost == 0
        && !handled_twice
        && handled_once == genuine.len()
        && ack.is_success()
        && notified.as_expected();
    Ok(if ok { 0 } else { 1 })
}
