//! `alipay-msg listen` and the signals service managers and terminals send: SIGTERM
//! drains like SIGINT, a second signal stops at once, `--exec` handlers run in their own
//! process group, and an `--exec` program that does not exist is reported at start-up.
#![cfg(unix)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

mod support;

use support::{
    client_config, drain, lines_of, simulator, test_dir, wait_for_line, Reaped, ONE_PUSH, PATIENCE,
};

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
    let (_sim, endpoint, sim_lines) = simulator(&dir, ONE_PUSH, &[]);
    let config = client_config(&dir, &endpoint, "");
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
    let (_sim, endpoint, _sim_lines) = simulator(&dir, ONE_PUSH, &[]);
    let config = client_config(&dir, &endpoint, "");
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
    let (_sim, endpoint, sim_lines) = simulator(&dir, ONE_PUSH, &[]);
    let config = client_config(&dir, &endpoint, "");
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
    let config = client_config(&dir, &format!("127.0.0.1:{port}"), "");
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
