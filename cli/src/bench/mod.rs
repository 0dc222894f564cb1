//! `alipay-msg bench`: what a message costs the client, next to what it must cost.
//!
//! First the crypto bound, per backend, on one core of this process: bare RSA2
//! verifications per second, and the core pipeline (parse + verify + ack) per second.
//! Then, per backend and adapter, end to end over 127.0.0.1: a simulator in this
//! process pushes `--messages` pre-signed messages (each example kind signed once, so
//! signing never limits the platform side), a client in a child process of its own
//! verifies, hands each to a handler that only counts it, and acks it. Throughput and
//! latency are what the simulator sees (from sending a CONSUME to receiving its
//! SUCCESS ack); peak RSS and CPU time are the child's own.
//!
//! `ALIPAY_MSG_BENCH_CLIENT_WRAPPER` (e.g. `valgrind --tool=callgrind`) runs the client
//! child under that command, to profile exactly what the bench measures.

mod client;
mod crypto;
mod trickle;

use std::process::Stdio;
use std::time::{Duration, Instant};

use alipay_msg_core::crypto::Backend;
use alipay_msg_core::server::{PresignedContent, ServerEvent, ServerSession};
use alipay_msg_simulator::SimulatorEvent;
use alipay_msg_simulator::{PlatformMessage, Simulator, SimulatorOptions};
use clap::{Args, ValueEnum};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::sync::broadcast::error::RecvError;

pub(crate) use client::{run as run_client, BenchClientArgs};

use crate::Failure;

/// A client adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AdapterKind {
    /// `alipay-msg-tokio`.
    Tokio,
    /// `alipay-msg-async-std` (needs the `bench-adapters` feature).
    AsyncStd,
    /// `alipay-msg-blocking` (needs the `bench-adapters` feature).
    Blocking,
}

impl AdapterKind {
    const fn name(self) -> &'static str {
        match self {
            AdapterKind::Tokio => "tokio",
            AdapterKind::AsyncStd => "async-std",
            AdapterKind::Blocking => "blocking",
        }
    }

    /// The adapters compiled into this binary.
    fn built() -> &'static [AdapterKind] {
        if cfg!(feature = "bench-adapters") {
            &[
                AdapterKind::Tokio,
                AdapterKind::AsyncStd,
                AdapterKind::Blocking,
            ]
        } else {
            &[AdapterKind::Tokio]
        }
    }
}

/// A crypto backend, by the name the output uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BackendName {
    /// `ring` (default feature).
    Ring,
    /// The pure-Rust `rsa` crate (feature `rust-crypto`).
    RustCrypto,
}

impl BackendName {
    fn of(backend: Backend) -> BackendName {
        match backend.name() {
            "ring" => BackendName::Ring,
            _ => BackendName::RustCrypto,
        }
    }

    fn backend(self) -> Option<Backend> {
        Backend::ALL
            .iter()
            .copied()
            .find(|b| BackendName::of(*b) == self)
    }
}

impl From<BackendName> for Backend {
    /// Only called with a backend the parent found compiled in.
    fn from(name: BackendName) -> Backend {
        name.backend().unwrap_or_default()
    }
}

pub(super) fn not_built(adapter: AdapterKind) -> Failure {
    Failure::malformed(format!(
        "this build has no {} client; build with `--features bench-adapters`",
        adapter.name()
    ))
}

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Adapters to measure (repeatable; default: every one built in).
    #[arg(long, value_enum)]
    adapter: Vec<AdapterKind>,
    /// Crypto backends to measure (repeatable; default: every one built in).
    #[arg(long, value_enum)]
    backend: Vec<BackendName>,
    /// Messages per run (default: 20 000 in bursts; with `--rate`, 20 s worth).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    messages: Option<u64>,
    /// Production rates instead of bursts: the simulator pushes one message every
    /// `1/RATE` s (messages per second, at most 10 000) and each line gives the client's
    /// CPU time and wake-ups per message, and push-to-ack latency, next to the bare
    /// verify cost measured around the run.
    #[arg(long, value_parser = parse_rate)]
    rate: Option<f64>,
    /// With `--rate`: also measure `alipay-msg listen`, printing each message as a JSON
    /// line into a pipe.
    #[arg(long, requires = "rate")]
    listen: bool,
    /// Most messages in flight: the simulator's window and the client's `max_in_flight`.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    in_flight: u64,
    /// Runs per adapter and backend; the run with the median ratio is reported, with
    /// the smallest and largest ratio of all.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    runs: u64,
    /// Seconds spent measuring each crypto rate (the bound before and after each run
    /// takes a quarter of it each).
    #[arg(long, default_value_t = 2.0)]
    crypto_secs: f64,
}

/// `--rate`: messages per second, in (0, 10 000].
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate > 0.0 && rate <= 10_000.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate in (0, 10000] messages per second"
        )),
    }
}

/// The example kinds the simulator cycles through.
const EXAMPLES: &str = crate::demo::EXAMPLES;

/// One end-to-end run as the simulator saw it.
struct RunResult {
    elapsed: Duration,
    latencies: Vec<Duration>,
    redelivered: u64,
    child: Value,
    /// CPU time of this process (the simulator) during the run.
    simulator_cpu_ms: Option<u64>,
}

pub(crate) fn run(args: BenchArgs) -> Result<u8, Failure> {
    let backends = if args.backend.is_empty() {
        Backend::ALL.to_vec()
    } else {
        let mut chosen = Vec::new();
        for name in &args.backend {
            chosen.push(name.backend().ok_or_else(|| {
                Failure::malformed(
                    "this build has no rust-crypto backend; build with `--features rust-crypto`",
                )
            })?);
        }
        chosen
    };
    let adapters = if args.adapter.is_empty() {
        AdapterKind::built().to_vec()
    } else {
        for a in &args.adapter {
            if !AdapterKind::built().contains(a) {
                return Err(not_built(*a));
            }
        }
        args.adapter.clone()
    };
    if !(args.crypto_secs > 0.0 && args.crypto_secs <= 600.0) {
        return Err(Failure::malformed("--crypto-secs must be in (0, 600]"));
    }
    let examples = PlatformMessage::from_json_lines(EXAMPLES)
        .map_err(|(line, e)| Failure::malformed(format!("example line {line}: {e}")))?;
    let sample = crypto::sample_consume(&examples[0].biz_content, &examples[0].msg_api)?;

    let messages = args.messages.unwrap_or(match args.rate {
        // 20 s of pushes: enough 10 ms CPU ticks for a per-message figure.
        Some(rate) => ((rate * 20.0).round() as u64).max(1),
        None => 20_000,
    });
    println!(
        "bench: {} cores, messages={messages} in_flight={}{}, {} build",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        args.in_flight,
        args.rate
            .map_or(String::new(), |rate| format!(" rate={rate}/s")),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    );
    let mut bounds = Vec::new();
    for &backend in &backends {
        let rates = crypto::measure(&sample, backend, Duration::from_secs_f64(args.crypto_secs))?;
        println!(
            "bench: crypto backend={backend} verify={:.0}/s verify_us={:.1} pipeline={:.0}/s pipeline_us={:.1} pipeline_cost={:.3}x",
            rates.verify,
            1e6 / rates.verify,
            rates.pipeline,
            1e6 / rates.pipeline,
            rates.verify / rates.pipeline,
        );
        bounds.push((backend, rates));
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::malformed(format!("cannot start the runtime: {e}")))?;
    let bound_time = Duration::from_secs_f64(args.crypto_secs / 4.0);
    if let Some(rate) = args.rate {
        let mut clients: Vec<_> = adapters
            .iter()
            .map(|&a| trickle::TrickleClient::Adapter(a))
            .collect();
        if args.listen {
            clients.push(trickle::TrickleClient::Listen);
        }
        for &backend in &backends {
            for &client in &clients {
                let mut runs = Vec::new();
                for _ in 0..args.runs {
                    // Two seconds' worth, at most 1 000 (at least 50).
                    let count = (2.0 * rate).clamp(50.0, 1000.0) as u32;
                    let paced = crypto::paced(&sample, backend, rate, count)?;
                    let before = crypto::measure(&sample, backend, bound_time)?.verify;
                    let result = runtime.block_on(trickle::trickle(
                        rate,
                        messages,
                        args.in_flight,
                        &examples,
                        client,
                        backend,
                    ))?;
                    let after = crypto::measure(&sample, backend, bound_time)?.verify;
                    // The bare verify cost in µs, averaged around the run.
                    let bounds = trickle::Bounds {
                        verify_us: 2e6 / (before + after),
                        paced_us: paced,
                    };
                    runs.push((bounds, result));
                }
                trickle::print_trickle(client, backend, rate, messages, runs);
            }
        }
        return Ok(0);
    }
    for &backend in &backends {
        let messages = messages_for(messages, backend);
        for &adapter in &adapters {
            let mut runs = Vec::new();
            for _ in 0..args.runs {
                // The bound right before and right after the run, averaged: the
                // machine's speed drifts.
                let before = crypto::measure(&sample, backend, bound_time)?.verify;
                let result =
                    runtime.block_on(end_to_end(&args, messages, &examples, adapter, backend))?;
                let after = crypto::measure(&sample, backend, bound_time)?.verify;
                runs.push(((before + after) / 2.0, result));
            }
            print_runs(adapter, backend, messages, runs);
        }
    }
    Ok(0)
}

/// Messages per run: the pure-Rust backend, an order of magnitude slower, runs a tenth.
fn messages_for(messages: u64, backend: Backend) -> u64 {
    if BackendName::of(backend) == BackendName::RustCrypto {
        (messages / 10).max(1)
    } else {
        messages
    }
}

fn print_runs(adapter: AdapterKind, backend: Backend, messages: u64, runs: Vec<(f64, RunResult)>) {
    let throughput = |r: &RunResult| messages as f64 / r.elapsed.as_secs_f64().max(1e-9);
    let mut runs: Vec<(f64, f64, RunResult)> = runs
        .into_iter()
        .map(|(bound, r)| (throughput(&r) / bound, bound, r))
        .collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ratio_min, ratio_max) = (runs[0].0, runs[runs.len() - 1].0);
    let redelivered: u64 = runs.iter().map(|run| run.2.redelivered).sum();
    let (ratio, bound, mut r) = runs.swap_remove(runs.len() / 2);
    r.latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((r.latencies.len() as f64 * p).ceil() as usize).clamp(1, r.latencies.len()) - 1;
        r.latencies[i].as_secs_f64() * 1e3
    };
    let mb = |kb: &Value| {
        kb.as_f64()
            .map_or("n/a".to_owned(), |kb| format!("{:.1}", kb / 1024.0))
    };
    let per_msg = |ms: Option<f64>| {
        ms.map_or("n/a".to_owned(), |ms| {
            format!("{:.1}", ms * 1e3 / messages as f64)
        })
    };
    println!(
        "bench: adapter={} backend={backend} messages={messages} throughput={:.0}/s p50_ms={:.2} p99_ms={:.2} peak_rss_mb={} client_cpu_us_per_msg={} crypto_bound={bound:.0}/s ratio={ratio:.2} ratio_min={ratio_min:.2} ratio_max={ratio_max:.2}",
        adapter.name(),
        throughput(&r),
        pct(0.50),
        pct(0.99),
        mb(&r.child["peak_rss_kb"]),
        per_msg(r.child["cpu_ms"].as_f64()),
    );
    if std::env::var_os("ALIPAY_MSG_BENCH_VERBOSE").is_some() {
        println!(
            "bench: client report {} simulator_cpu_us_per_msg={} elapsed_ms={}",
            r.child,
            per_msg(r.simulator_cpu_ms.map(|ms| ms as f64)),
            r.elapsed.as_millis()
        );
    }
    if redelivered > 0 {
        println!("bench: warning: {redelivered} message(s) were redelivered during the run");
    }
}

pub(super) fn failed(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: 1,
        message: format!("bench: {message}"),
    }
}

/// Each example kind signed once by the simulator's platform key, so that signing never
/// limits the platform side of a run.
async fn presign_examples(
    sim: &Simulator,
    examples: &[PlatformMessage],
) -> Result<Vec<PresignedContent>, Failure> {
    let kinds: Vec<(String, String)> = examples
        .iter()
        .map(|m| (m.msg_api.clone(), m.biz_content.clone()))
        .collect();
    let app_id = sim.app_id().to_owned();
    sim.with_session(move |session: &mut ServerSession, _now| {
        kinds
            .iter()
            .map(|(api, content)| session.presign(&app_id, api, content))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(failed)?
    .map_err(failed)
}

/// Starts a simulator, queues the messages, starts the client child and follows the
/// simulator's events until every message is acknowledged SUCCESS.
async fn end_to_end(
    args: &BenchArgs,
    messages: u64,
    examples: &[PlatformMessage],
    adapter: AdapterKind,
    backend: Backend,
) -> Result<RunResult, Failure> {
    let n = messages as usize;
    let window = args.in_flight as usize;
    let mut options = SimulatorOptions::with_test_keys();
    options.server.max_queued = n;
    options.server.max_in_flight_per_connection = window;
    options.server.ack_timeout = Duration::from_secs(120);
    options.max_queued_frames = window + 64;
    options.event_queue = 3 * n + 1024;
    let sim = Simulator::start(options)
        .await
        .map_err(|e| failed(format!("simulator: {e}")))?;
    let mut events = sim.events();

    // Sign each example kind once, then queue `n` messages cycling through them.
    let signed = presign_examples(&sim, examples).await?;
    sim.with_session(move |session: &mut ServerSession, now| {
        for i in 0..n {
            session.push_presigned(&signed[i % signed.len()], now)?;
        }
        Ok::<(), alipay_msg_core::server::PushError>(())
    })
    .await
    .map_err(failed)?
    .map_err(failed)?;

    let exe =
        std::env::current_exe().map_err(|e| failed(format!("cannot find this program: {e}")))?;
    // A profiler to run the client under, e.g. `valgrind --tool=callgrind`.
    let wrapper = std::env::var("ALIPAY_MSG_BENCH_CLIENT_WRAPPER").unwrap_or_default();
    let mut command = match wrapper.split_whitespace().collect::<Vec<_>>().split_first() {
        Some((program, args)) => {
            let mut c = tokio::process::Command::new(program);
            c.args(args).arg(exe);
            c
        }
        None => tokio::process::Command::new(exe),
    };
    let mut child = command
        .arg("bench-client")
        .args(["--adapter", adapter.name()])
        .args(["--backend", backend.name()])
        .args(["--endpoint", &sim.endpoint().to_string()])
        .args(["--messages", &n.to_string()])
        .args(["--in-flight", &window.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("cannot start the client process: {e}")))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| failed("no client stdout"))?;

    let usage_before = client::ProcessUsage::read();
    let mut started = None;
    let mut latencies = Vec::with_capacity(n);
    let mut redelivered = 0u64;
    let mut exited = None;
    // Generous: the slowest backend and adapter at a few hundred messages a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60 + messages / 100);
    while latencies.len() < n {
        tokio::select! {
            event = events.recv() => match event {
                Ok(SimulatorEvent::Server(ServerEvent::Connected { .. })) => {
                    started.get_or_insert_with(Instant::now);
                }
                Ok(SimulatorEvent::Server(ServerEvent::Acked { status, latency, .. })) => {
                    if status == alipay_msg_core::consume::AckStatus::Success {
                        latencies.push(latency);
                    }
                }
                Ok(SimulatorEvent::Server(ServerEvent::RedeliveryScheduled { .. })) => redelivered += 1,
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    return Err(failed(format!("missed {missed} simulator events")));
                }
                Err(RecvError::Closed) => return Err(failed("the simulator stopped")),
            },
            status = child.wait(), if exited.is_none() => {
                exited = Some(status.map_err(|e| failed(format!("client process: {e}")))?);
                if latencies.len() < n {
                    // Its last acks may still be on their way; a little grace.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    while let Ok(event) = events.try_recv() {
                        if let SimulatorEvent::Server(ServerEvent::Acked { status, latency, .. }) = event {
                            if status == alipay_msg_core::consume::AckStatus::Success {
                                latencies.push(latency);
                            }
                        }
                    }
                    if latencies.len() < n {
                        return Err(failed(format!(
                            "the client process ended ({}) after {} of {n} acks",
                            exited.expect("set above"),
                            latencies.len()
                        )));
                    }
                }
            },
            () = tokio::time::sleep_until(deadline) => {
                return Err(failed(format!("timed out after {} of {n} acks", latencies.len())));
            }
        }
    }
    let elapsed = started.map_or(Duration::ZERO, |t| t.elapsed());
    let simulator_cpu_ms = usage_before
        .zip(client::ProcessUsage::read())
        .map(|(a, b)| (b.user_ms + b.system_ms) - (a.user_ms + a.system_ms));
    let status = match exited {
        Some(status) => status,
        None => tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .map_err(|_| failed("the client process did not exit after its last ack"))?
            .map_err(|e| failed(format!("client process: {e}")))?,
    };
    let mut out = String::new();
    stdout
        .read_to_string(&mut out)
        .await
        .map_err(|e| failed(format!("client output: {e}")))?;
    if !status.success() {
        return Err(failed(format!("the client process failed ({status})")));
    }
    let child: Value = out
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| failed(format!("unreadable client report: {out:?}")))?;
    sim.shutdown().await;
    Ok(RunResult {
        elapsed,
        latencies,
        redelivered,
        child,
        simulator_cpu_ms,
    })
}
