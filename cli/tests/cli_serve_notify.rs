//! `alipay-msg serve-notify` fed by `alipay-msg simulate`: the simulator signs HTTP
//! notifications (`POST /admin/notify`) and posts them, retrying on the platform's
//! schedule 1000 times as fast, to the endpoint, which prints each verified one as a
//! JSON line or hands it to `--exec`.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::Receiver;

use serde_json::{json, Value};

mod support;

use support::{client_config, lines_of, simulator, test_dir, wait_for_line, Reaped, PATIENCE};

/// `alipay-msg serve-notify` on a free port with `extra` arguments; the child, the URL
/// it serves, its stdout and stderr lines.
fn serve_notify(
    config: &Path,
    extra: &[&str],
) -> (Reaped, String, Receiver<String>, Receiver<String>) {
    let mut child = Reaped(
        Command::new(env!("CARGO_BIN_EXE_alipay-msg"))
            .arg("serve-notify")
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0", "--path", "/alipay/notify"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = lines_of(child.0.stdout.take().unwrap());
    let stderr = lines_of(child.0.stderr.take().unwrap());
    let seen = wait_for_line(&stderr, "serving notifications on ", "serve-notify");
    let line = seen.last().unwrap();
    let url = line
        .split("serving notifications on ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    (child, url, stdout, stderr)
}

/// One request to the simulator's admin endpoints; the status and the JSON answer.
fn admin(endpoint: &str, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let body = if method == "GET" {
        String::new()
    } else {
        body.to_string()
    };
    let mut stream = TcpStream::connect(endpoint).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {endpoint}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The `notifications` counts of `GET /admin/status` once none is pending (each
/// attempt is printed just before it is counted).
fn settled_counts(endpoint: &str) -> Value {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (_, status) = admin(endpoint, "GET", "/admin/status", &Value::Null);
        if status["notifications"]["pending"] == 0 {
            return status["notifications"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still pending: {status}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn notify(endpoint: &str, request: Value) -> String {
    let (status, answer) = admin(endpoint, "POST", "/admin/notify", &request);
    assert_eq!(status, 200, "{answer}");
    answer["notify_id"].as_str().unwrap().to_owned()
}

#[test]
fn serve_notify_prints_verified_notifications_and_refuses_forgeries() {
    let dir = test_dir("serve-notify");
    let (simulate, endpoint, sim_lines) = simulator(&dir, "", &["--notify-time-scale", "0.001"]);
    let config = client_config(&dir, &endpoint, "");
    let (mut serve, url, stdout, stderr) = serve_notify(&config, &[]);
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/alipay/notify"),
        "{url}"
    );

    let notify_id = notify(
        &endpoint,
        json!({"url": url, "payment": {"out_trade_no": "o-cli", "total_amount": "1.23",
               "subject": "测试订单"}, "charset": "GBK"}),
    );
    let line = stdout.recv_timeout(PATIENCE).expect("a JSON line");
    let printed: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert_eq!(printed["type"], "trade_status_sync");
    assert_eq!(printed["notify_id"], notify_id.as_str());
    assert_eq!(printed["app_id"], "2021000000000001");
    assert_eq!(printed["out_trade_no"], "o-cli");
    assert_eq!(printed["total_amount"], "1.23");
    assert_eq!(printed["params"]["subject"], "测试订单");
    assert_eq!(printed["params"]["charset"], "GBK");
    assert!(printed["params"].get("sign").is_none(), "{printed}");
    wait_for_line(
        &sim_lines,
        "attempt 1/8: answered success; done",
        "simulate",
    );

    // A gateway message at a V1 endpoint: also verified (the simulator signs under V1
    // unless told otherwise).
    notify(
        &endpoint,
        json!({"url": url, "gateway_message": {"msg_method": "alipay.open.mini.merchant.confirmed",
               "biz_content": {"order_no": "1"}}}),
    );
    let line = stdout.recv_timeout(PATIENCE).expect("a JSON line");
    let printed: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(printed["type"], "gateway_message");
    assert_eq!(printed["biz_content"]["order_no"], "1");

    notify(
        &endpoint,
        json!({"url": url, "payment": {}, "forged": true}),
    );
    wait_for_line(&stderr, "notification signature rejected", "serve-notify");
    wait_for_line(
        &sim_lines,
        "(forged) attempt 1/1: answered \"fail\"",
        "simulate",
    );
    let counts = settled_counts(&endpoint);
    assert_eq!(
        (
            &counts["posted"],
            &counts["answered_success"],
            &counts["forged_refused"]
        ),
        (&json!(2), &json!(2), &json!(1)),
        "{counts}"
    );
    assert!(
        stdout.try_recv().is_err(),
        "nothing printed for the forgery"
    );

    serve.signal("-TERM", false);
    let status = serve.wait_at_most(PATIENCE).expect("serve-notify stops");
    assert_eq!(status.code(), Some(0));
    wait_for_line(&stderr, "SIGTERM: shutting down", "serve-notify");
    simulate.signal("-INT", false);
}

/// `--exec`: exit status 1 answers `fail`, the platform retries (240 ms instead of
/// 4 min), exit status 0 answers `success`.
#[test]
fn serve_notify_exec_decides_the_answer() {
    let dir = test_dir("serve-notify-exec");
    let (simulate, endpoint, sim_lines) = simulator(&dir, "", &["--notify-time-scale", "0.001"]);
    let config = client_config(&dir, &endpoint, "");
    let (once, handled) = (dir.join("once"), dir.join("handled.json"));
    let exec = format!(
        "if [ -e '{once}' ]; then cat > '{handled}'; else touch '{once}'; exit 1; fi",
        once = once.display(),
        handled = handled.display()
    );
    let (serve, url, _stdout, stderr) = serve_notify(&config, &["--exec", &exec]);

    let notify_id = notify(
        &endpoint,
        json!({"url": url, "payment": {"out_trade_no": "o-exec"}}),
    );
    let seen = wait_for_line(
        &sim_lines,
        "attempt 2/8: answered success; done",
        "simulate",
    );
    assert!(
        seen.iter().any(|l| l.contains(&format!(
            "notify {notify_id} attempt 1/8: answered \"fail\" (HTTP 200); next attempt in 240 ms (4 min on the platform's schedule)"
        ))),
        "{seen:#?}"
    );
    wait_for_line(&stderr, "exited with", "serve-notify");
    let handled: Value = serde_json::from_str(&std::fs::read_to_string(&handled).unwrap()).unwrap();
    assert_eq!(handled["notify_id"], notify_id.as_str());
    assert_eq!(handled["out_trade_no"], "o-exec");
    let counts = settled_counts(&endpoint);
    assert_eq!(
        (
            &counts["attempts"],
            &counts["failed"],
            &counts["answered_success"]
        ),
        (&json!(2), &json!(1), &json!(1)),
        "{counts}"
    );
    serve.signal("-INT", false);
    simulate.signal("-INT", false);
}

#[test]
fn serve_notify_refuses_bad_settings_at_start() {
    let dir = test_dir("serve-notify-bad");
    let config = client_config(&dir, "127.0.0.1:1", "");
    for (args, expected) in [
        (vec!["--path", "notify"], "--path \"notify\""),
        (
            vec!["--exec", "/nonexistent/handler"],
            "/nonexistent/handler: no such file",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_alipay-msg"))
            .arg("serve-notify")
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
}

/// The bodies the simulator posted, kept in `testdata/notify/` as fuzz seeds, verify
/// with the test platform key (the second under V2 only).
#[test]
fn captured_simulator_bodies_verify() {
    let testdata = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");
    let key = format!("{testdata}/vectors/keys/alipay_public.pem");
    for (file, v2, code) in [
        ("simulator_trade_gbk_cert_v1.form", false, 0),
        ("simulator_gateway_rsa_sha1_v2.form", true, 0),
        ("simulator_gateway_rsa_sha1_v2.form", false, 1),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_alipay-msg"))
            .args(["verify-notify", "--alipay-public-key", &key])
            .args(v2.then_some("--v2"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let body = std::fs::read(format!("{testdata}/notify/{file}")).unwrap();
        child.stdin.take().unwrap().write_all(&body).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{file} v2={v2}");
    }
}
