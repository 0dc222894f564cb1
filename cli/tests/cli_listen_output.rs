//! `alipay-msg listen`'s output to a pipe: a burst of messages comes out as whole JSON
//! lines, each once, and every message the platform saw acked SUCCESS has its line on
//! the pipe even when `listen` is killed right after (the line is written before the
//! ack).
#![cfg(unix)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Instant;

use serde_json::Value;

mod support;

use support::{client_config, lines_of, simulator, test_dir, Reaped, PATIENCE};

/// Messages in the burst.
const BURST: usize = 400;

/// The push file: `BURST` messages told apart by `biz_content.n`, of 30 to about
/// 6000 bytes, so that some writes are larger than a pipe's atomic `PIPE_BUF`.
fn burst() -> String {
    (0..BURST)
        .map(|n| {
            let pad = "x".repeat(n * 37 % 6000);
            format!(
                "{{\"msg_api\":\"alipay.open.mini.version.audit.passed\",\
                 \"biz_content\":{{\"n\":{n},\"pad\":\"{pad}\"}}}}\n"
            )
        })
        .collect()
}

/// Waits until the simulator has reported `count` acks SUCCESS.
fn wait_for_acks(lines: &Receiver<String>, count: usize) {
    let deadline = Instant::now() + PATIENCE;
    let mut acked = 0;
    while acked < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains("ack SUCCESS") => acked += 1,
            Ok(line) => assert!(!line.contains("ack FAIL"), "{line}"),
            Err(e) => panic!("the simulator: {acked} of {count} acks SUCCESS ({e})"),
        }
    }
}

#[test]
fn a_burst_to_a_pipe_comes_out_whole_once_and_before_the_acks() {
    let dir = test_dir("listen-output");
    let (_simulate, endpoint, sim_lines) = simulator(&dir, &burst(), &[]);
    let config = client_config(&dir, &endpoint, "");
    let mut listen = Reaped(
        Command::new(env!("CARGO_BIN_EXE_alipay-msg"))
            .arg("listen")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = lines_of(listen.0.stdout.take().unwrap());

    wait_for_acks(&sim_lines, BURST);
    // A crash right after the acks: every acked line is already on the pipe.
    listen.0.kill().unwrap();
    listen.0.wait().unwrap();
    // The pipe's reader ends at EOF, once the lines on the pipe have been read.
    let lines: Vec<String> = out.iter().collect();

    let mut seen = BTreeMap::new();
    for line in &lines {
        let message: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a whole JSON line ({e}): {line:.120}"));
        let n = message["biz_content"]["n"].as_u64().expect("biz_content.n") as usize;
        assert_eq!(
            message["biz_content"]["pad"].as_str().map(str::len),
            Some(n * 37 % 6000),
            "message {n} whole"
        );
        assert_eq!(
            message["msg_api"], "alipay.open.mini.version.audit.passed",
            "{line:.120}"
        );
        let msg_id = message["msg_id"].as_str().expect("msg_id").to_owned();
        assert!(
            seen.insert(n, msg_id).is_none(),
            "message {n} printed twice"
        );
    }
    assert_eq!(seen.len(), BURST, "every acked message printed");
    let ids: std::collections::BTreeSet<_> = seen.values().collect();
    assert_eq!(ids.len(), BURST, "one msg_id per message");
}

/// A reader that goes away stops `listen` (exit 2, saying why) instead of leaving it
/// running and answering every later message FAIL; the message whose line could not be
/// written is not acked SUCCESS (the platform redelivers it).
#[test]
fn listen_stops_when_stdout_is_gone() {
    let dir = test_dir("stdout-gone");
    let push =
        "{\"msg_api\":\"alipay.open.mini.version.audit.passed\",\"biz_content\":{\"n\":1}}\n";
    let (_simulate, endpoint, sim_lines) = simulator(&dir, push, &[]);
    let config = client_config(&dir, &endpoint, "");
    let mut listen = Reaped(
        Command::new(env!("CARGO_BIN_EXE_alipay-msg"))
            .args(["listen", "--config", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Nobody reads stdout: its write fails (EPIPE).
    drop(listen.0.stdout.take());
    let stderr = lines_of(listen.0.stderr.take().unwrap());
    let status = listen
        .wait_at_most(PATIENCE)
        .expect("listen stops when its stdout is gone");
    assert_eq!(status.code(), Some(2));
    let said: Vec<String> = stderr.try_iter().collect();
    assert!(
        said.iter().any(|l| l.contains("stdout")),
        "listen says why: {said:#?}"
    );
    let seen: Vec<String> = sim_lines.try_iter().collect();
    assert!(
        !seen.iter().any(|l| l.contains("ack SUCCESS")),
        "no SUCCESS for a line that was not written: {seen:#?}"
    );
}
