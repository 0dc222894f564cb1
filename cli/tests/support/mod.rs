//! What the CLI tests share: a fresh directory, a client configuration with the test
//! keys, `alipay-msg simulate` on a free port, children that are killed when a test
//! fails, and reading their output lines with a bound (unix: signals go through
//! `kill`).
// Each test file uses a part of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

pub const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

/// Generous bounds for things that happen in milliseconds; a test fails rather than
/// hangs when they do not happen at all.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// One pushed message, as `simulate --push` reads it.
pub const ONE_PUSH: &str =
    "{\"msg_api\":\"alipay.open.mini.version.audit.passed\",\"biz_content\":{\"mini_app_id\":\"2014072300007148\"}}\n";

/// A fresh directory for one test's files.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("alipay-msg-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A client configuration file for `endpoint` with the repository's test keys, the
/// top-level lines `extra` (e.g. `sign_type = "RSA"`) and a 1 s connect timeout.
pub fn client_config(dir: &Path, endpoint: &str, extra: &str) -> PathBuf {
    let file = dir.join("client.toml");
    std::fs::write(
        &file,
        format!(
            "app_id = \"2021000000000001\"\nendpoint = \"{endpoint}\"\n{extra}\n\
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
pub fn lines_of(out: impl std::io::Read + Send + 'static) -> Receiver<String> {
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
pub fn wait_for_line(lines: &Receiver<String>, needle: &str, what: &str) -> Vec<String> {
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
pub fn drain(lines: &Receiver<String>) -> Vec<String> {
    lines.try_iter().collect()
}

/// Kills a child process on drop, so a failed assertion leaves nothing running.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Reaped {
    /// Waits for the child to exit, at most `bound`; `None` when it is still running.
    pub fn wait_at_most(&mut self, bound: Duration) -> Option<ExitStatus> {
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
    pub fn signal(&self, signal: &str, group: bool) {
        let pid = self.0.id().to_string();
        let target = if group { format!("-{pid}") } else { pid };
        let sent = Command::new("kill")
            .args([signal, "--", &target])
            .status()
            .unwrap();
        assert!(sent.success(), "kill {signal} {target}");
    }
}

/// `alipay-msg simulate` on a free port with `extra_args`, pushing the JSON lines
/// `push` at start; the child, its endpoint (`127.0.0.1:PORT`) and its output lines.
pub fn simulator(
    dir: &Path,
    push: &str,
    extra_args: &[&str],
) -> (Reaped, String, Receiver<String>) {
    let file = dir.join("push.jsonl");
    std::fs::write(&file, push).unwrap();
    let mut sim = Reaped(
        Command::new(env!("CARGO_BIN_EXE_alipay-msg"))
            .args(["simulate", "--listen", "127.0.0.1:0", "--push"])
            .arg(&file)
            .args(extra_args)
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
