//! The demo's second delivery path: HTTP notifications (PROTOCOL §10). The simulated
//! platform posts a payment notification to a `serve-notify` endpoint the demo runs
//! in-process; the demo's handler fails its first attempt on purpose, so the endpoint
//! answers `fail` and the platform retries (on its schedule, time-scaled); the retry is
//! handled and answered `success`. Then a forged notification is posted and refused.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alipay_msg_axum::{Notification, Notifications, NotifyEvent, NotifyGate};
use alipay_msg_core::key::PublicKey;
use alipay_msg_core::signature::Verifier;
use alipay_msg_simulator::{
    test_keys, NotificationCounts, PlatformNotification, Simulator, SimulatorEvent,
};
use tokio::sync::broadcast;

use crate::serve_notify::NotifyServer;
use crate::Failure;

/// The time scale of the platform's retry schedule in the demo: 4 min becomes 240 ms.
pub(crate) const TIME_SCALE: f64 = 0.001;

/// How long the demo waits for the notifications to settle.
const PATIENCE: Duration = Duration::from_secs(30);

/// What the notification part of the demo saw.
pub(crate) struct NotifyOutcome {
    /// The simulator's notification counts at the end.
    pub(crate) counts: NotificationCounts,
    /// Successful handler runs per `notify_id`.
    successes: HashMap<String, u32>,
}

impl NotifyOutcome {
    /// The demo's expectation: one notification, failed once on purpose, handled once
    /// on its retry and answered `success`; the forgery refused.
    pub(crate) fn as_expected(&self) -> bool {
        let c = &self.counts;
        c.posted == 1
            && c.attempts == 2
            && c.answered_success == 1
            && c.given_up == 0
            && c.pending == 0
            && c.forged_refused == 1
            && c.forged_accepted == 0
            && self.successes.len() == 1
            && self.successes.values().all(|&n| n == 1)
    }

    /// The summary line's fields.
    pub(crate) fn summary_fields(&self) -> String {
        let c = &self.counts;
        format!(
            "notified={} notify_attempts={} notify_success={} notify_forged_refused={}",
            c.posted, c.attempts, c.answered_success, c.forged_refused
        )
    }
}

fn fail(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: 1,
        message: format!("demo: {message}"),
    }
}

/// Runs the notification part against `sim` (whose notify time scale is
/// [`TIME_SCALE`]).
pub(crate) async fn run(sim: &Simulator) -> Result<NotifyOutcome, Failure> {
    let key = PublicKey::from_pem_or_base64(test_keys::PLATFORM_PUBLIC_KEY).map_err(fail)?;
    let gate = NotifyGate::new(Verifier::new(&key).map_err(fail)?, test_keys::APP_ID);
    // Handler runs and successes per notify_id. A poisoned lock would mean a panic
    // while counting: none here.
    let runs: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let successes: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let notifications = {
        let (runs, successes) = (runs.clone(), successes.clone());
        Notifications::new(gate, move |notification: Notification| {
            let (runs, successes) = (runs.clone(), successes.clone());
            async move {
                let notify_id = notification.notify_id().unwrap_or_default().to_owned();
                let run = {
                    let mut runs = runs.lock().expect("lock");
                    let run = runs.entry(notify_id.clone()).or_default();
                    *run += 1;
                    *run
                };
                if run == 1 {
                    println!("  ✗ notification handler failed on purpose for {notify_id}; the endpoint answers fail");
                    return Err("simulated failure of the application's handler".to_owned());
                }
                if let Notification::Trade(trade) = &notification {
                    println!(
                        "  ✓ handled payment {} {} {} (notify_id {notify_id}); the endpoint answers success",
                        trade.out_trade_no,
                        trade.trade_status,
                        trade.total_amount.as_deref().unwrap_or("?")
                    );
                }
                *successes.lock().expect("lock").entry(notify_id).or_default() += 1;
                Ok(())
            }
        })
        .on_event(|event: &NotifyEvent<String>| {
            if let NotifyEvent::Refused(reason) = event {
                println!("  ⊘ {reason} (answered fail, handler not run)");
            }
        })
    };
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut server = NotifyServer::start(listen, "/alipay/notify", notifications)
        .await
        .map_err(|e| fail(format!("notification endpoint: {e}")))?;
    let url = server.url();
    println!("\nnotification endpoint (serve-notify) listening on {url}");

    let mut events = sim.events();
    println!(
        "→ platform posts a payment notification (retries on its schedule, 1000× faster here)"
    );
    let payment = PlatformNotification::payment(url.clone())
        .with_field("out_trade_no", "20261120102126001")
        .with_field("total_amount", "88.88")
        .with_field("subject", "测试订单 Test Order");
    sim.notify(payment).await.map_err(fail)?;
    print_attempts_until_settled(sim, &mut events).await?;

    println!("→ someone posts a forged payment notification");
    let mut forged = PlatformNotification::payment(url).with_field("total_amount", "0.01");
    forged.forged = true;
    sim.notify(forged).await.map_err(fail)?;
    print_attempts_until_settled(sim, &mut events).await?;

    server.stop().await;
    let successes = successes.lock().expect("lock").clone();
    Ok(NotifyOutcome {
        counts: sim.notification_counts(),
        successes,
    })
}

/// Prints the simulator's notification attempts until no notification is pending.
async fn print_attempts_until_settled(
    sim: &Simulator,
    events: &mut broadcast::Receiver<SimulatorEvent>,
) -> Result<(), Failure> {
    let print = |event: SimulatorEvent| {
        if matches!(event, SimulatorEvent::NotificationAttempt { .. }) {
            println!("  ↩ {event}");
        }
    };
    let settled = tokio::time::timeout(PATIENCE, sim.wait_notifications_settled());
    tokio::pin!(settled);
    loop {
        tokio::select! {
            biased;
            Ok(event) = events.recv() => print(event),
            done = &mut settled => {
                done.map_err(|_| fail("the notifications did not settle within 30 s"))?
                    .map_err(fail)?;
                break;
            }
        }
    }
    // The attempt that settled it is sent before the counts change.
    while let Ok(event) = events.try_recv() {
        print(event);
    }
    Ok(())
}
