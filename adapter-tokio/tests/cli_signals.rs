//! `alipay-msg listen` and the signals service managers and terminals send: SIGTERM
//! drains like SIGINT, a second signal stops at once, `--exec` handlers run in their own
//! process group, and an `--exec` program that does not exist is reported at start-up.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

/// Generous bounds for things that happen in milliseconds; a test fails rather than
/// hangs when they do not happen at all.
const PATIENCE: Duration = Duration::from_secs(20);

/// A fresh directory for one test's files.
fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "alipay-msg-cli-signals-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A client configuration file for `endpoint` with the repository's test keys.
fn client_config(dir: &Path, endpoint: &str) -> PathBuf {
    let file = dir.join("client.toml");
    std::fs::write(
        &file,
        format!(
            "app_id = \"2021000000000001\"\nendpoint = \"{endpoint}\"\n\
             [keys]\napp_private_key_file = \"{VECTORS}/keys/app_private_pkcs1.pem\"\n\
             alipay_public_key_file = \"{VECTORS}/keys/alipay_public.pem\"\n\
             [tuning]\nconnect_timeout_ms = 1000\n"
        ),
    )
    .unwrap();
    file
}

/// Sends the lines a child writes to `out` down a channel, so that tests can wait for a
/// line with a bound and the child never blocks on a full pipe.
fn lines_of(out: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for the first line containing `needle`; returns the lines seen up to it
/// (itself last), or panics naming them.
fn wait_for_line(lines: &Receiver<String>, needle: &str, what: &str) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(e) => panic!("{what}: no line with {needle:?} ({e}); saw {seen:#?}"),
        }
    }
}

/// The lines received so far, without waiting.
fn drain(lines: &Receiver<String>) -> Vec<String> {
    lines.try_iter().collect()
}

/// Kills a child process on drop, so a failed assertion leaves nothing running.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Reaped {
    /// Waits for the child to exit, at most `bound`; `None` when it is still running.
    fn wait_at_most(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` (`-TERM`, `-INT`) to the child, or with `group` to its process
    /// group, as a terminal's Ctrl-C does (the child must lead its own group).
    fn signal(&self, signal: &str, group: bool) {
        let pid = self.0.id().to_string();
        let target = if group { format!("-{pid}") } else { pid };
        let sent = Command::new("kill")
            .args([signal, "--", &target])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {signal} {target}");
    }
}

/// `alipay-msg simulate` on a free port, pushing one message; its output lines.
fn simulator(dir: &Path) -> (Reaped, String, Receiver<String>) {
    let push = dir.join("push.jsonl");
    std::fs::write(
        &push,
        "{\"msg_api\":\"alipay.open.mini.version.audit.passed\",\"biz_content\":{\"mini_app_id\":\"2014072300007148\"}}\n",
    )
    .unwrap();
    let mut sim = Reaped(
        Command::new(env!("CARGO_BIN_EXE_alipay-msg"))
            .args(["simulate", "--listen", "127.0.0.1:0", "--push"])
            .arg(&push)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let lines = lines_of(sim.0.stdout.take().unwrap());
    let first = lines
        .recv_timeout(PATIENCE)
        .expect("the simulator's first line");
    let endpoint = first
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    (sim, endpoint, lines)
}

/// `alipay-msg listen --config CONFIG --exec EXEC`, leading its own process group (so
/// that signalling the group does not reach the test runner); its stderr lines.
fn listen(config: &Path, exec: &str) -> (Reaped, Receiver<String>) {
    let mut child = Reaped(
        Command::new(env!("CARGO_BIN_EXE_alipay-msg"))
            .arg("listen")
            .arg("--config")
            .arg(config)
            .args(["--exec", exec])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = lines_of(child.0.stderr.take().unwrap());
    (child, stderr)
}

/// A handler that reads its message, writes its shell's process id to `started`,
/// sleeps `secs` (in a process of its own), then marks `done`.
fn marking_handler(dir: &Path, secs: u32) -> (String, PathBuf, PathBuf) {
    let (started, done) = (dir.join("started"), dir.join("done"));
    let exec = format!(
        "cat > /dev/null; echo $$ > '{}'; sleep {secs}; touch '{}'",
        started.display(),
        done.display()
    );
    (exec, started, done)
}

/// Waits for the handler to start; the process id it wrote.
fn wait_for_start(started: &Path) -> u32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let written = std::fs::read_to_string(started).unwrap_or_default();
        if let Ok(pid) = written.trim().parse() {
            return pid;
        }
        assert!(Instant::now() < deadline, "the handler never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The live (not zombie) processes of process group `group`, as `ps` lists them.
fn live_members(group: u32) -> Vec<String> {
    let out = Command::new("ps")
        .args(["-A", "-o", "pgid=,stat=,args="])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| {
            let mut fields = line.split_whitespace();
            fields.next() == Some(group.to_string().as_str())
                && !fields.next().unwrap_or("").starts_with('Z')
        })
        .map(str::to_owned)
        .collect()
}

/// The simulator's first ack line: the ack of the one message pushed.
fn first_ack(sim_lines: &Receiver<String>) -> String {
    let seen = wait_for_line(sim_lines, "ack ", "the simulator");
    seen.last().unwrap().clone()
}

/// SIGTERM (systemd, Docker, Kubernetes) drains as Ctrl-C does: `listen` waits for the
/// `--exec` handler running, its SUCCESS ack goes out, and it exits 0.
#[test]
fn sigterm_drains_a_running_exec_handler_to_a_success_ack() {
    let dir = test_dir("sigterm");
    let (_sim, endpoint, sim_lines) = simulator(&dir);
    let config = client_config(&dir, &endpoint);
    let (exec, started, done) = marking_handler(&dir, 1);
    let (mut listen, stderr) = listen(&config, &exec);
    wait_for_start(&started);
    listen.signal("-TERM", false);
    let status = listen.wait_at_most(PATIENCE);
    let err = drain(&stderr);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{status:?}: {err:#?}"
    );
    assert!(
        err.iter().any(|l| l.contains("SIGTERM: shutting down")),
        "{err:#?}"
    );
    assert!(done.exists(), "the handler was not let finish: {err:#?}");
    let ack = first_ack(&sim_lines);
    assert!(ack.contains("ack SUCCESS"), "{ack}");
}

/// A second signal during the drain ends `listen` at once (well before the handler's
/// 30 s), saying how many deliveries were left unacked, with exit status 128 + the
/// signal's number; the handler still running is killed, with what it started.
#[test]
fn a_second_signal_during_the_drain_stops_at_once() {
    let dir = test_dir("second");
    let (_sim, endpoint, _sim_lines) = simulator(&dir);
    let config = client_config(&dir, &endpoint);
    let (exec, started, done) = marking_handler(&dir, 30);
    let (mut listen, stderr) = listen(&config, &exec);
    let handler = wait_for_start(&started);
    listen.signal("-TERM", false);
    // Two signals sent at once may arrive as one: the second follows the first's line.
    wait_for_line(&stderr, "shutting down", "listen after SIGTERM");
    let second = Instant::now();
    listen.signal("-INT", false);
    let status = listen.wait_at_most(Duration::from_secs(10));
    let stopped_after = second.elapsed();
    let err = drain(&stderr);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(130),
        "{status:?} after {stopped_after:?}: {err:#?}"
    );
    assert!(
        err.iter().any(|l| l.contains(
            "second signal (SIGINT): stopping now; 1 delivery left unacked (the platform redelivers it)"
        )),
        "{err:#?}"
    );
    assert!(!done.exists(), "the drain was not cut short");
    // The handler's whole process group is killed: its shell and the `sleep 30`.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let live = live_members(handler);
        if live.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the handler's processes outlived listen: {live:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A terminal's Ctrl-C signals the whole foreground process group: the `--exec` handler
/// runs in a group of its own, so it is not killed, the drain waits for it and its
/// message is acked SUCCESS.
#[test]
fn ctrl_c_to_the_process_group_spares_the_exec_handler() {
    let dir = test_dir("group");
    let (_sim, endpoint, sim_lines) = simulator(&dir);
    let config = client_config(&dir, &endpoint);
    let (exec, started, done) = marking_handler(&dir, 1);
    let (mut listen, stderr) = listen(&config, &exec);
    wait_for_start(&started);
    listen.signal("-INT", true);
    let status = listen.wait_at_most(PATIENCE);
    let err = drain(&stderr);
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{status:?}: {err:#?}"
    );
    let ack = first_ack(&sim_lines);
    assert!(ack.contains("ack SUCCESS"), "{ack}; listen: {err:#?}");
    assert!(done.exists(), "the handler did not finish: {err:#?}");
}

/// An `--exec` program that does not exist is a start-up error (exit 2, naming it),
/// before any connection attempt; so is one not on PATH.
#[test]
fn a_missing_exec_program_is_reported_at_start_up() {
    let dir = test_dir("missing");
    // Nothing listens there: an attempt would be reported as `disconnected: …refused`.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = client_config(&dir, &format!("127.0.0.1:{port}"));
    for (exec, named) in [
        ("/nonexistent/prog --flag", "/nonexistent/prog"),
        (
            "alipay-msg-no-such-program-on-path",
            "alipay-msg-no-such-program-on-path",
        ),
    ] {
        let (mut listen, stderr) = listen(&config, exec);
        let status = listen.wait_at_most(Duration::from_secs(10));
        let status = status.unwrap_or_else(|| {
            panic!("still running after 10 s: {:#?}", drain(&stderr));
        });
        // The child has exited: its stderr ends.
        let err: Vec<String> = stderr.iter().collect();
        assert_eq!(status.code(), Some(2), "{exec}: {err:#?}");
        assert!(
            err.iter()
                .any(|l| l.contains("--exec") && l.contains(named)),
            "{exec}: {err:#?}"
        );
        assert!(
            !err.iter().any(|l| l.contains("disconnected")),
            "{exec}: a connection was attempted: {err:#?}"
        );
    }
}
