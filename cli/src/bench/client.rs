//! The client side of `alipay-msg bench`, run in a child process of its own so that
//! its memory and CPU time are its alone: connect to the simulator with one adapter,
//! handle (count) every message, shut down once `messages` handlers have succeeded
//! (which sends the last acks), then print one JSON line about itself.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alipay_msg_core::client::{ClientConfig, Credentials};
use alipay_msg_core::crypto::Backend;
use alipay_msg_core::endpoint::Endpoint;
use alipay_msg_simulator::test_keys;
use clap::Args;
use serde_json::json;

use super::{AdapterKind, BackendName};
use crate::Failure;

/// Arguments of the hidden `bench-client` subcommand.
#[derive(Args)]
pub(crate) struct BenchClientArgs {
    /// Which client.
    #[arg(long, value_enum)]
    adapter: AdapterKind,
    /// Which crypto backend verifies.
    #[arg(long, value_enum)]
    backend: BackendName,
    /// The simulator.
    #[arg(long)]
    endpoint: String,
    /// Handler successes to wait for.
    #[arg(long)]
    messages: usize,
    /// The client's `max_in_flight`.
    #[arg(long)]
    in_flight: usize,
    /// Once `messages` handlers have succeeded, keep running (idle) until stdin ends:
    /// `bench --rate` reads this process's counters then, before it shuts down.
    #[arg(long)]
    hold: bool,
}

/// Counts handler runs and wakes the waiter at the target.
struct Counter {
    handled: AtomicUsize,
    target: usize,
    done: std::sync::mpsc::SyncSender<()>,
}

impl Counter {
    fn handle(&self) {
        if self.handled.fetch_add(1, Ordering::Relaxed) + 1 == self.target {
            let _ = self.done.try_send(());
        }
    }
}

pub(crate) fn run(args: BenchClientArgs) -> Result<u8, Failure> {
    let credentials =
        Credentials::public_key(test_keys::APP_PRIVATE_KEY, test_keys::PLATFORM_PUBLIC_KEY)
            .map_err(|e| Failure::malformed(e.to_string()))?;
    let mut config = ClientConfig::new(test_keys::APP_ID, credentials);
    config.endpoint =
        Endpoint::parse(&args.endpoint).map_err(|e| Failure::malformed(e.to_string()))?;
    config.backend = Backend::from(args.backend);
    config.max_in_flight = args.in_flight.max(1);
    config.duplicate_capacity = config.duplicate_capacity.max(args.in_flight);
    let (done, finished) = std::sync::mpsc::sync_channel(1);
    let counter = Arc::new(Counter {
        handled: AtomicUsize::new(0),
        target: args.messages,
        done,
    });
    // Returns the threads' CPU times as the last handler finishes, before shutdown
    // ends any of them.
    let hold = args.hold;
    let wait = move || {
        // The parent kills a client that stalls; this only bounds a lost wake-up.
        let _ = finished.recv_timeout(Duration::from_secs(3600));
        if hold {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        }
        thread_cpu_ms()
    };
    let threads = match args.adapter {
        AdapterKind::Tokio => run_tokio(config, counter.clone(), wait)?,
        #[cfg(feature = "bench-adapters")]
        AdapterKind::AsyncStd => run_async_std(config, counter.clone(), wait)?,
        #[cfg(feature = "bench-adapters")]
        AdapterKind::Blocking => run_blocking(config, counter.clone(), wait)?,
        #[cfg(not(feature = "bench-adapters"))]
        other => return Err(super::not_built(other)),
    };
    let usage = ProcessUsage::read();
    println!(
        "{}",
        json!({
            "handled": counter.handled.load(Ordering::Relaxed),
            "peak_rss_kb": usage.as_ref().map(|u| u.peak_rss_kb),
            "cpu_ms": usage.as_ref().map(|u| u.user_ms + u.system_ms),
            "user_ms": usage.as_ref().map(|u| u.user_ms),
            "system_ms": usage.as_ref().map(|u| u.system_ms),
            "threads_ms": threads,
        })
    );
    Ok(0)
}

fn failed(adapter: &str, e: impl std::fmt::Display) -> Failure {
    Failure {
        code: 1,
        message: format!("bench client ({adapter}): {e}"),
    }
}

fn run_tokio(
    config: ClientConfig,
    counter: Arc<Counter>,
    wait: impl FnOnce() -> Threads + Send + 'static,
) -> Result<Threads, Failure> {
    crate::runtime()?.block_on(async move {
        let client = Arc::new(
            alipay_msg_tokio::Client::connect(config)
                .await
                .map_err(|e| failed("tokio", e))?,
        );
        let runner = tokio::spawn({
            let client = client.clone();
            async move {
                client
                    .run(move |_message| {
                        counter.handle();
                        std::future::ready(Ok::<(), &str>(()))
                    })
                    .await
            }
        });
        let threads = tokio::task::spawn_blocking(wait)
            .await
            .map_err(|e| failed("tokio", e))?;
        client.shutdown().await;
        runner
            .await
            .map_err(|e| failed("tokio", e))?
            .map_err(|e| failed("tokio", e))?;
        Ok(threads)
    })
}

#[cfg(feature = "bench-adapters")]
fn run_async_std(
    config: ClientConfig,
    counter: Arc<Counter>,
    wait: impl FnOnce() -> Threads + Send + 'static,
) -> Result<Threads, Failure> {
    async_std::task::block_on(async move {
        let client = Arc::new(
            alipay_msg_async_std::Client::connect(config)
                .await
                .map_err(|e| failed("async-std", e))?,
        );
        let runner = async_std::task::spawn({
            let client = client.clone();
            async move {
                client
                    .run(move |_message| {
                        counter.handle();
                        std::future::ready(Ok::<(), &str>(()))
                    })
                    .await
            }
        });
        let threads = async_std::task::spawn_blocking(wait).await;
        client.shutdown().await;
        runner.await.map_err(|e| failed("async-std", e))?;
        Ok(threads)
    })
}

#[cfg(feature = "bench-adapters")]
fn run_blocking(
    config: ClientConfig,
    counter: Arc<Counter>,
    wait: impl FnOnce() -> Threads + Send + 'static,
) -> Result<Threads, Failure> {
    let client =
        Arc::new(alipay_msg_blocking::Client::connect(config).map_err(|e| failed("blocking", e))?);
    let runner = std::thread::spawn({
        let client = client.clone();
        move || {
            client.run(move |_message| {
                counter.handle();
                Ok::<(), &str>(())
            })
        }
    });
    let threads = wait();
    client.shutdown();
    runner
        .join()
        .map_err(|_| failed("blocking", "the run thread panicked"))?
        .map_err(|e| failed("blocking", e))?;
    Ok(threads)
}

/// CPU milliseconds of each thread, by name, busiest first.
type Threads = Vec<(String, u64)>;

/// CPU time of each thread, by name (Linux), busiest first: where the work ran.
fn thread_cpu_ms() -> Threads {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut threads: Vec<(String, u64)> = tasks
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.ok()?.path().join("stat")).ok()?;
            let name = stat[stat.find('(')? + 1..stat.rfind(')')?].to_owned();
            let (user_ms, system_ms) = cpu_ms(&stat)?;
            Some((name, user_ms + system_ms))
        })
        .collect();
    threads.sort_by_key(|t| std::cmp::Reverse(t.1));
    threads
}

/// What the kernel counts for this process (Linux `/proc/self`).
pub(super) struct ProcessUsage {
    /// `VmHWM`: the peak resident set size.
    pub(super) peak_rss_kb: u64,
    /// User CPU time of every thread.
    pub(super) user_ms: u64,
    /// System (kernel) CPU time of every thread.
    pub(super) system_ms: u64,
}

impl ProcessUsage {
    /// `None` where `/proc/self` is not Linux's.
    pub(super) fn read() -> Option<ProcessUsage> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let peak_rss_kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        let (user_ms, system_ms) = cpu_ms(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        Some(ProcessUsage {
            peak_rss_kb,
            user_ms,
            system_ms,
        })
    }
}

/// User and system CPU milliseconds from a `/proc/…/stat` line: fields 14 and 15,
/// after the parenthesised command name, in clock ticks of USER_HZ, which Linux fixes
/// at 100 for user space.
fn cpu_ms(stat: &str) -> Option<(u64, u64)> {
    let (user, system) = cpu_ticks(stat)?;
    Some((user * 10, system * 10))
}

/// User and system CPU time from a `/proc/…/stat` line, in clock ticks (fields 14 and
/// 15, after the parenthesised command name).
pub(super) fn cpu_ticks(stat: &str) -> Option<(u64, u64)> {
    let mut fields = stat[stat.rfind(')')? + 2..].split_whitespace().skip(11);
    let mut ticks = || fields.next()?.parse::<u64>().ok();
    Some((ticks()?, ticks()?))
}
