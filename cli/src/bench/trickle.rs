//! `alipay-msg bench --rate R`: what a message costs at production rates, where messages
//! arrive one at a time and every one of them wakes the client up.
//!
//! The simulator in this process pushes one pre-signed message every `1/R` s to a client
//! in a child process (a `bench-client`, or `alipay-msg listen` printing each message as
//! a JSON line into a pipe this process drains). The child's counters are read from
//! `/proc` (Linux) once it is connected and idle, and again when the last message is
//! acknowledged, while it still runs:
//!
//! - CPU: `utime + stime` of `/proc/PID/stat`, every thread the process ever had, in
//!   clock ticks of 10 ms (USER_HZ = 100) — so a run must last long enough for its CPU
//!   time to be many ticks (the line prints the ticks it measured);
//! - wake-ups: `voluntary_ctxt_switches` of `/proc/PID/task/*/status`, summed over the
//!   threads alive at the second reading (all of a thread's switches when it started
//!   after the first; a thread that ended in between is not counted);
//! - latency: from the simulator writing a CONSUME to reading its SUCCESS ack.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alipay_msg_core::consume::AckStatus;
use alipay_msg_core::crypto::Backend;
use alipay_msg_core::server::{PushError, ServerEvent, ServerSession};
use alipay_msg_simulator::{
    test_keys, PlatformMessage, Simulator, SimulatorEvent, SimulatorOptions,
};
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast::error::RecvError;

use super::{failed, AdapterKind};
use crate::Failure;

/// The client a trickle run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TrickleClient {
    /// A `bench-client` child on this adapter, with a handler that only counts.
    Adapter(AdapterKind),
    /// `alipay-msg listen`, printing each message as a JSON line into a pipe.
    Listen,
}

impl TrickleClient {
    pub(super) fn name(self) -> &'static str {
        match self {
            TrickleClient::Adapter(adapter) => adapter.name(),
            TrickleClient::Listen => "listen",
        }
    }
}

/// One trickle run: what the child spent between its two readings, and the latencies.
pub(super) struct TrickleResult {
    /// CPU time of the child between the readings, in 10 ms ticks.
    pub(super) cpu_ticks: u64,
    /// Voluntary context switches of the child's threads between the readings.
    pub(super) wakeups: u64,
    /// Push-to-ack latencies, one per message.
    pub(super) latencies: Vec<Duration>,
    /// How long pushing took (`messages / rate`, give or take the timer).
    pub(super) elapsed: Duration,
}

/// What `/proc` says about a process at one moment.
#[derive(Debug, Clone, Copy)]
struct Counters {
    /// `utime + stime`, in 10 ms ticks.
    cpu_ticks: u64,
    /// Voluntary context switches since the first reading, of the threads alive at
    /// the second (`None` at the first reading).
    wakeups: Option<u64>,
}

/// Reads `/proc/PID/stat` and each thread's voluntary switches: on the `first`
/// reading into `threads` (by thread id), later as the sum of the increases since.
fn read_counters(pid: u32, threads: &mut HashMap<u64, u64>, first: bool) -> Option<Counters> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (user, system) = super::client::cpu_ticks(&stat)?;
    let cpu_ticks = user + system;
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let task = task.ok()?;
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<u64>().ok())
        else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue; // ended between the listing and the read
        };
        let Some(switches) = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
        else {
            continue;
        };
        if first {
            threads.insert(tid, switches);
        } else {
            // A thread started since the first reading (a handler pool's, started
            // on the first message) switched only in between.
            let before = threads.get(&tid).copied().unwrap_or(0);
            total += switches.saturating_sub(before);
        }
    }
    Some(Counters {
        cpu_ticks,
        wakeups: (!first).then_some(total),
    })
}

/// Runs one paced run of `messages` at `rate` per second against `client`.
pub(super) async fn trickle(
    rate: f64,
    messages: u64,
    in_flight: u64,
    examples: &[PlatformMessage],
    client: TrickleClient,
    backend: Backend,
) -> Result<TrickleResult, Failure> {
    let n = messages as usize;
    let mut options = SimulatorOptions::with_test_keys();
    options.server.ack_timeout = Duration::from_secs(120);
    options.event_queue = 4 * n + 1024;
    let sim = Simulator::start(options)
        .await
        .map_err(|e| failed(format!("simulator: {e}")))?;
    let mut events = sim.events();
    let signed = Arc::new(super::presign_examples(&sim, examples).await?);

    let exe =
        std::env::current_exe().map_err(|e| failed(format!("cannot find this program: {e}")))?;
    let dir = std::env::temp_dir().join(format!("alipay-msg-bench-{}", std::process::id()));
    let mut command = tokio::process::Command::new(&exe);
    match client {
        TrickleClient::Adapter(adapter) => {
            command
                .arg("bench-client")
                .args(["--adapter", adapter.name()])
                .args(["--backend", backend.name()])
                .args(["--endpoint", &sim.endpoint().to_string()])
                .args(["--messages", &n.to_string()])
                .args(["--in-flight", &in_flight.to_string()])
                .arg("--hold");
        }
        TrickleClient::Listen => {
            std::fs::create_dir_all(&dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
            let config = dir.join("listen.toml");
            std::fs::write(
                &config,
                format!(
                    "app_id = \"{}\"\nendpoint = \"{}\"\n[keys]\napp_private_key = '''\n{}'''\nalipay_public_key = '''\n{}'''\n[tuning]\nmax_in_flight = {in_flight}\n",
                    test_keys::APP_ID,
                    sim.endpoint(),
                    test_keys::APP_PRIVATE_KEY,
                    test_keys::PLATFORM_PUBLIC_KEY,
                ),
            )
            .map_err(|e| failed(format!("{}: {e}", config.display())))?;
            command.arg("listen").arg("--config").arg(&config);
        }
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot start the client process: {e}")))?;
    let pid = child
        .id()
        .ok_or_else(|| failed("the client process ended at once"))?;
    let stdin = child.stdin.take();
    // `listen`'s JSON lines, read as a log collector would; `bench-client`'s report.
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| failed("no client stdout"))?;
    let drain = tokio::spawn(async move {
        let mut out = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match stdout.read(&mut chunk).await {
                Ok(0) | Err(_) => return out.len(),
                Ok(read) => out.extend_from_slice(&chunk[..read]),
            }
        }
    });

    // Connected and idle: the first reading.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(SimulatorEvent::Server(ServerEvent::Connected { .. })) => break,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Err(failed("the simulator stopped")),
            },
            () = tokio::time::sleep_until(deadline) => return Err(failed("the client did not connect")),
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut threads = HashMap::new();
    let before = read_counters(pid, &mut threads, true)
        .ok_or_else(|| failed("cannot read the client's /proc counters (Linux only)"))?;

    let period = Duration::from_secs_f64(1.0 / rate);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut pushed = 0usize;
    let mut latencies = Vec::with_capacity(n);
    let deadline =
        tokio::time::Instant::now() + Duration::from_secs_f64(30.0 + 2.0 * messages as f64 / rate);
    while latencies.len() < n {
        tokio::select! {
            _ = ticker.tick(), if pushed < n => {
                let signed = signed.clone();
                let i = pushed;
                sim.with_session(move |session: &mut ServerSession, now| {
                    session.push_presigned(&signed[i % signed.len()], now).map(|_| ())
                })
                .await
                .map_err(failed)?
                .map_err(|e: PushError| failed(e))?;
                pushed += 1;
            }
            event = events.recv() => match event {
                Ok(SimulatorEvent::Server(ServerEvent::Acked { status, latency, .. })) => {
                    if status == AckStatus::Success {
                        latencies.push(latency);
                    } else {
                        return Err(failed(format!("a message was acked {status:?}")));
                    }
                }
                Ok(SimulatorEvent::Server(ServerEvent::Disconnected { .. })) => {
                    return Err(failed("the client disconnected during the run"));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    return Err(failed(format!("missed {missed} simulator events")));
                }
                Err(RecvError::Closed) => return Err(failed("the simulator stopped")),
            },
            () = tokio::time::sleep_until(deadline) => {
                return Err(failed(format!("timed out after {} of {n} acks", latencies.len())));
            }
        }
    }
    let elapsed = started.elapsed();
    let after = read_counters(pid, &mut threads, false)
        .ok_or_else(|| failed("the client process ended before its last reading"))?;

    // Let it go: `bench-client` shuts down when its stdin ends, `listen` on SIGINT.
    drop(stdin);
    if client == TrickleClient::Listen {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).ok_or_else(|| failed("no pid"))?,
            rustix::process::Signal::INT,
        );
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .map_err(|_| failed("the client process did not exit"))?
        .map_err(|e| failed(format!("client process: {e}")))?;
    let printed = drain.await.unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);
    if !status.success() {
        return Err(failed(format!("the client process failed ({status})")));
    }
    if client == TrickleClient::Listen && printed == 0 {
        return Err(failed("listen printed nothing"));
    }
    sim.shutdown().await;
    Ok(TrickleResult {
        cpu_ticks: after.cpu_ticks.saturating_sub(before.cpu_ticks),
        wakeups: after.wakeups.unwrap_or(0),
        latencies,
        elapsed,
    })
}

/// What a message must cost at least, measured around a run, in µs of CPU.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    /// The bare verify, back to back on one core (hot caches), averaged before and
    /// after the run.
    pub(super) verify_us: f64,
    /// A thread that wakes up at the run's rate and parses, verifies and acks one
    /// CONSUME each time, nothing else (`crypto::paced`; `None` off Linux).
    pub(super) paced_us: Option<f64>,
}

/// Prints one `bench: trickle …` line: the run with the median CPU per message, next
/// to the bare verify cost (µs) and the paced floor measured around it.
pub(super) fn print_trickle(
    client: TrickleClient,
    backend: Backend,
    rate: f64,
    messages: u64,
    runs: Vec<(Bounds, TrickleResult)>,
) {
    let per_msg_us = |r: &TrickleResult| r.cpu_ticks as f64 * 10_000.0 / messages as f64;
    let mut runs = runs;
    runs.sort_by(|a, b| {
        (per_msg_us(&a.1) / a.0.verify_us).total_cmp(&(per_msg_us(&b.1) / b.0.verify_us))
    });
    let (bounds, mut r) = runs.swap_remove(runs.len() / 2);
    let verify_us = bounds.verify_us;
    let paced = bounds.paced_us.map_or_else(String::new, |paced_us| {
        format!(
            " paced_us={paced_us:.1} cpu_per_paced={:.2}x",
            per_msg_us(&r) / paced_us
        )
    });
    r.latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((r.latencies.len() as f64 * p).ceil() as usize).clamp(1, r.latencies.len()) - 1;
        r.latencies[i].as_secs_f64() * 1e3
    };
    println!(
        "bench: trickle client={} backend={backend} rate={rate:.0}/s messages={messages} achieved={:.0}/s cpu_us_per_msg={:.1} verify_us={verify_us:.1} cpu_per_verify={:.2}x{paced} wakeups_per_msg={:.2} p50_ms={:.2} p99_ms={:.2} cpu_ticks={}",
        client.name(),
        messages as f64 / r.elapsed.as_secs_f64().max(1e-9),
        per_msg_us(&r),
        per_msg_us(&r) / verify_us,
        r.wakeups as f64 / messages as f64,
        pct(0.50),
        pct(0.99),
        r.cpu_ticks,
    );
}
