//! The offline CLI commands against the shared vectors (`testdata/vectors`).

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

#[cfg(unix)]
mod support;
#[cfg(unix)]
use support::Reaped;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_alipay-msg"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit (bad key, usage error) before it reads stdin.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

fn path(rel: &str) -> String {
    format!("{DIR}/{rel}")
}

fn json_line(output: &Output) -> Value {
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "one line: {text:?}");
    serde_json::from_str(&text).unwrap()
}

fn vectors(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path(name)).unwrap()).unwrap()
}

#[test]
fn cert_sn_matches_the_vectors() {
    for case in vectors("cert_vectors.json")["cases"].as_array().unwrap() {
        let file = path(case["file"].as_str().unwrap());
        let args: Vec<&str> = if case["root"] == true {
            vec!["cert-sn", "--root", &file]
        } else {
            vec!["cert-sn", &file]
        };
        let out = run(&args, b"");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("{}\n", case["sn"].as_str().unwrap())
        );
    }
}

#[test]
fn cert_sn_of_a_key_file_is_a_clear_error() {
    let out = run(&["cert-sn", &path("keys/app_public.pem")], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("no CERTIFICATE block"), "{err}");
}

fn notify_body(case: &Value) -> String {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (k, v) in case["params"].as_object().unwrap() {
        body.append_pair(k, v.as_str().unwrap());
    }
    body.finish()
}

#[test]
fn verify_notify_gives_each_vector_its_verdict() {
    for case in vectors("notify_vectors.json").as_array().unwrap() {
        let body = notify_body(case);
        let mut args = vec!["verify-notify"];
        if case["verify_mode"].as_str().unwrap().starts_with("V2") {
            args.push("--v2");
        }
        for key in [
            ["--alipay-public-key", "keys/alipay_public.pem"],
            ["--alipay-cert", "certs/alipay_cert.crt"],
        ] {
            let key_path = path(key[1]);
            let mut a = args.clone();
            a.extend([key[0], key_path.as_str()]);
            let out = run(&a, body.as_bytes());
            let valid = case["expect_valid"].as_bool().unwrap();
            assert_eq!(
                out.status.code(),
                Some(if valid { 0 } else { 1 }),
                "{}",
                case["name"]
            );
            let line = json_line(&out);
            assert_eq!(line["valid"], valid);
            assert_eq!(line["notify_id"], case["params"]["notify_id"]);
            if let Some(status) = case["params"].get("trade_status") {
                assert_eq!(line["trade_status"], *status);
                assert_eq!(line["type"], "trade_status_sync");
            }
            if let Some(method) = case["params"].get("msg_method") {
                assert_eq!(line["msg_method"], *method);
                assert_eq!(line["type"], "gateway_message");
            }
        }
    }
}

#[test]
fn verify_notify_malformed_input_and_key() {
    let key = path("keys/alipay_public.pem");
    let out = run(
        &["verify-notify", "--alipay-public-key", &key],
        b"a=%zz&sign=x",
    );
    assert_eq!(out.status.code(), Some(2));
    // The promised JSON line, on exit 2 too; the message stays on stderr.
    let line = json_line(&out);
    assert_eq!(line["valid"], false);
    let error = line["error"].as_str().unwrap();
    assert!(error.contains("malformed notification"), "{error}");
    assert!(!out.stderr.is_empty());
    let private = path("keys/app_private_pkcs1.pem");
    let out = run(&["verify-notify", "--alipay-public-key", &private], b"a=1");
    assert_eq!(out.status.code(), Some(2));
    let line = json_line(&out);
    assert_eq!(line["valid"], false);
    let error = line["error"].as_str().unwrap();
    assert!(
        error.contains("expected a public key, got a private key"),
        "{error}"
    );
    assert!(!error.contains("MII"), "no key material in the line");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("expected a public key, got a private key"),
        "{err}"
    );
    assert!(!err.contains("MII"), "no key material in errors");
    let out = run(
        &[
            "verify-notify",
            "--alipay-public-key",
            "/nonexistent/key.pem",
        ],
        b"a=1",
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_line(&out)["valid"], false);
    // Neither or both key options: a usage error from clap.
    assert_eq!(run(&["verify-notify"], b"").status.code(), Some(2));
}

#[test]
fn inspect_frame_consume_and_tampered() {
    let v = vectors("frame_vectors.json");
    let key = path("keys/alipay_public.pem");
    let out = run(
        &["inspect-frame", "--alipay-public-key", &key],
        v["consume"]["frame"].as_str().unwrap().as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0));
    let line = json_line(&out);
    let expect = &v["consume"]["expect"];
    assert_eq!(line["cmd"], "CONSUME");
    assert_eq!(line["msg_id"], expect["msg_id"]);
    assert_eq!(line["msg_api"], expect["msg_api"]);
    assert_eq!(line["app_id"], expect["app_id"]);
    assert_eq!(line["stream_id"], "s0Zx9Q2k0001");
    assert_eq!(line["timestamp_ms"], expect["timestamp_ms"]);
    assert_eq!(line["signature"], "valid");
    assert_eq!(line["biz_content"], expect["biz_content_json"]);

    // With a trailing newline, as `echo` or a file gives it, and via the certificate.
    let cert = path("certs/alipay_cert.crt");
    let tampered = format!("{}\n", v["consume_tampered"]["frame"].as_str().unwrap());
    let out = run(
        &["inspect-frame", "--alipay-cert", &cert],
        tampered.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_line(&out)["signature"], "invalid");

    let out = run(
        &["inspect-frame", "--alipay-public-key", &key],
        v["consume"]["ack_success"].as_str().unwrap().as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0));
    let line = json_line(&out);
    assert_eq!(
        (line["cmd"].as_str(), line["signature"].as_str()),
        (Some("CONSUME_ACK"), Some("absent"))
    );
}

#[test]
fn inspect_frame_malformed() {
    let key = path("keys/alipay_public.pem");
    for input in [&b"{\"protocol\":{}}"[..], b"\r\n\r\n{", b"\xff\xfe", b""] {
        let out = run(&["inspect-frame", "--alipay-public-key", &key], input);
        assert_eq!(out.status.code(), Some(2), "{input:?}");
        assert!(out.stdout.is_empty());
        assert!(!out.stderr.is_empty());
    }
}

/// The sample files the README's examples use give the answers the README shows.
#[test]
fn readme_sample_files() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");
    let read = |rel: &str| std::fs::read(format!("{root}/{rel}")).unwrap();
    let key = path("keys/alipay_public.pem");
    let cert = path("certs/alipay_cert.crt");
    for (file, signature) in [
        ("frames/consume.txt", "valid"),
        ("frames/consume_tampered.txt", "invalid"),
        ("frames/consume_tricky_strings.txt", "valid"),
        ("frames/produce_ack_busy.txt", "absent"),
    ] {
        let out = run(&["inspect-frame", "--alipay-cert", &cert], &read(file));
        assert_eq!(out.status.code(), Some(0), "{file}");
        assert_eq!(json_line(&out)["signature"], signature, "{file}");
    }
    for (file, v2, code) in [
        ("notify/trade_notify_rsa2_v1.txt", false, 0),
        ("notify/trade_notify_tampered_amount.txt", false, 1),
        ("notify/trade_notify_rsa_sha1_v1.txt", false, 0),
        ("notify/gateway_message_rsa2_v1.txt", false, 0),
        ("notify/gateway_message_rsa2_v2.txt", true, 0),
        ("notify/gateway_message_rsa2_v2.txt", false, 1),
    ] {
        let mut args = vec!["verify-notify", "--alipay-public-key", &key];
        if v2 {
            args.push("--v2");
        }
        assert_eq!(
            run(&args, &read(file)).status.code(),
            Some(code),
            "{file} v2={v2}"
        );
    }
}

/// The summary line the README shows for the demo (its one ```text block).
fn readme_summary_line() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let block = readme
        .split("```text\n")
        .nth(1)
        .expect("the README shows the demo's summary in a text block");
    block.split("\n```").next().unwrap().trim().to_owned()
}

/// `alipay-msg demo` runs the whole channel locally and ends with one summary line,
/// the one the README shows.
#[test]
fn demo_summary() {
    let out = run(&["demo"], b"");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("summary: "))
        .collect();
    assert_eq!(
        summary,
        ["summary: pushed=9 handled=9 redelivered=1 duplicates_suppressed=1 rejected=1 lost=0 notified=1 notify_attempts=2 notify_success=1 notify_forged_refused=1"],
        "{stdout}"
    );
    assert_eq!(
        summary[0],
        readme_summary_line(),
        "the README shows the demo's summary"
    );
    assert!(stdout.contains("PRODUCE_ACK SUCCESS 10000"), "{stdout}");
    // The notification failed once on purpose, was retried and answered success; the
    // forgery was refused.
    for expected in [
        "attempt 1/8: answered \"fail\" (HTTP 200); next attempt in 240 ms (4 min on the platform's schedule)",
        "attempt 2/8: answered success; done",
        "(forged) attempt 1/1: answered \"fail\" (HTTP 200); refused, as it must be",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
}

/// A `bench: key=value …` line's fields.
fn fields(line: &str) -> std::collections::HashMap<&str, &str> {
    line.trim_start_matches("bench: ")
        .split(' ')
        .filter_map(|kv| kv.split_once('='))
        .collect()
}

/// `bench --rate`: messages paced by the simulator, one `bench: trickle` line per client
/// (here tokio and `listen`) with every message acked and its counters read.
#[cfg(target_os = "linux")]
#[test]
fn bench_at_a_rate_reports_each_client_per_message() {
    let out = run(
        &[
            "bench",
            "--rate",
            "200",
            "--messages",
            "40",
            "--runs",
            "1",
            "--adapter",
            "tokio",
            "--backend",
            "ring",
            "--listen",
            "--crypto-secs",
            "0.05",
        ],
        b"",
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<_> = stdout
        .lines()
        .filter(|l| l.starts_with("bench: trickle "))
        .map(|l| fields(&l["bench: trickle ".len()..]))
        .collect();
    let clients: Vec<&str> = lines.iter().map(|f| f["client"]).collect();
    assert_eq!(clients, ["tokio", "listen"], "{stdout}");
    for line in &lines {
        assert_eq!(line["messages"], "40");
        for key in [
            "cpu_us_per_msg",
            "verify_us",
            "wakeups_per_msg",
            "p50_ms",
            "p99_ms",
        ] {
            let value: f64 = line[key].parse().unwrap_or_else(|e| panic!("{key}: {e}"));
            assert!(value >= 0.0, "{key}={value}");
        }
        let verify: f64 = line["verify_us"].parse().unwrap();
        assert!(verify > 0.0);
        // The paced floor: a wake-up and a verify with cold caches, each time.
        let paced: f64 = line["paced_us"].parse().unwrap();
        assert!(paced > 0.0, "paced_us={paced}");
        let cpu: f64 = line["cpu_us_per_msg"].parse().unwrap();
        let ratio: f64 = line["cpu_per_paced"].trim_end_matches('x').parse().unwrap();
        assert!(
            (ratio - cpu / paced).abs() < 0.01 + 0.01 * ratio,
            "{line:?}"
        );
    }
}

#[test]
fn bench_measures_the_crypto_bound_and_the_client_end_to_end() {
    let out = run(
        &[
            "bench",
            "--adapter",
            "tokio",
            "--messages",
            "300",
            "--in-flight",
            "16",
            "--runs",
            "2",
            "--crypto-secs",
            "0.05",
        ],
        b"",
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crypto: Vec<_> = stdout
        .lines()
        .filter(|l| l.starts_with("bench: crypto "))
        .map(fields)
        .collect();
    let runs: Vec<_> = stdout
        .lines()
        .filter(|l| l.starts_with("bench: adapter="))
        .map(fields)
        .collect();
    // One crypto line and one tokio line per backend built in.
    assert!(!crypto.is_empty(), "{stdout}");
    assert_eq!(crypto.len(), runs.len(), "{stdout}");
    for (bound, run) in crypto.iter().zip(&runs) {
        assert_eq!(run["adapter"], "tokio");
        assert_eq!(run["backend"], bound["backend"]);
        // The pure-Rust backend runs a tenth of the messages.
        let messages = if run["backend"] == "ring" {
            "300"
        } else {
            "30"
        };
        assert_eq!(run["messages"], messages);
        let rate = |v: &str| v.trim_end_matches("/s").parse::<f64>().unwrap();
        assert!(rate(bound["verify"]) > 0.0 && rate(bound["pipeline"]) > 0.0);
        // The bound is measured again right before each run.
        assert!(rate(run["crypto_bound"]) > 0.0);
        let ratio: f64 = run["ratio"].parse().unwrap();
        let expected = rate(run["throughput"]) / rate(run["crypto_bound"]);
        assert!((ratio - expected).abs() < 0.01, "{stdout}");
        let (low, high): (f64, f64) = (
            run["ratio_min"].parse().unwrap(),
            run["ratio_max"].parse().unwrap(),
        );
        assert!(low <= ratio && ratio <= high, "{stdout}");
        let (p50, p99): (f64, f64) = (
            run["p50_ms"].parse().unwrap(),
            run["p99_ms"].parse().unwrap(),
        );
        assert!(0.0 < p50 && p50 <= p99, "{stdout}");
        if cfg!(target_os = "linux") {
            let rss: f64 = run["peak_rss_mb"].parse().unwrap();
            assert!(rss > 1.0, "{stdout}");
        }
    }
    assert!(!stdout.contains("warning"), "{stdout}");
}

#[test]
fn bench_refuses_what_the_build_lacks() {
    let out = run(&["bench", "--messages", "0"], b"");
    assert_eq!(out.status.code(), Some(2));
    if !cfg!(feature = "bench-adapters") {
        let out = run(&["bench", "--adapter", "blocking", "--messages", "10"], b"");
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--features bench-adapters"));
    }
    // The binary links the same core as this test: in a workspace build another crate
    // (the conformance suite) may turn on core's rust-crypto backend.
    let has_rust_crypto = alipay_msg_tokio::core::crypto::Backend::ALL
        .iter()
        .any(|b| b.name() == "rust-crypto");
    if !has_rust_crypto {
        let out = run(
            &["bench", "--backend", "rust-crypto", "--messages", "10"],
            b"",
        );
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--features rust-crypto"));
    }
}

/// A configuration file for `listen` and `send` pointing at `endpoint`, with the
/// 1024-bit platform key (accepted with a start-up warning).
fn weak_key_config(name: &str, endpoint: &str, connect_timeout_ms: u64) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("alipay-msg-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("client.toml");
    let toml = format!(
        "app_id = \"2021000000000001\"\n\
         endpoint = \"{endpoint}\"\n\
         [keys]\n\
         app_private_key_file = \"{}\"\n\
         alipay_public_key_file = \"{}/../keys/small_1024_public.pem\"\n\
         [tuning]\n\
         connect_timeout_ms = {connect_timeout_ms}\n",
        path("keys/app_private_pkcs1.pem"),
        DIR,
    );
    std::fs::write(&file, toml).unwrap();
    file
}

/// A local port where nothing listens: every connection attempt is refused.
fn refusing_endpoint() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("127.0.0.1:{port}")
}

/// `send` to an endpoint it cannot reach: the key warning and each failed attempt on
/// stderr, then it gives up after the connect timeout with the last cause (exit 3).
#[test]
fn send_gives_up_after_the_connect_timeout_naming_the_cause() {
    let config = weak_key_config("send", &refusing_endpoint(), 1000);
    let config = config.to_str().unwrap();
    let started = std::time::Instant::now();
    let out = run(
        &[
            "send",
            "--config",
            config,
            "--msg-api",
            "alipay.open.app.openbizmock.message.send",
            "--biz-content",
            "{}",
        ],
        b"",
    );
    let waited = started.elapsed();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        waited < std::time::Duration::from_secs(30),
        "gave up only after {waited:?}"
    );
    assert!(
        err.contains("warning: platform public key: RSA key smaller than 2048 bits (1024 bits)"),
        "{err}"
    );
    assert!(err.contains("disconnected: "), "{err}");
    let last = err.lines().last().unwrap();
    assert!(last.contains("not connected within 1 s"), "{last}");
    assert!(last.to_lowercase().contains("refused"), "{last}");
    eprintln!("send gave up after {waited:?}");
}

/// `listen` before its first connection: the key warning, then every failed attempt
/// with its cause and next delay; Ctrl-C (SIGINT) ends it cleanly.
#[cfg(unix)]
#[test]
fn listen_reports_failed_first_attempts_and_stops_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    let config = weak_key_config("listen", &refusing_endpoint(), 1000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_alipay-msg"))
        .args(["listen", "--config", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    // Read until the first reported attempt (the process is then surely past start-up).
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("stderr ended before a failed attempt was reported: {seen:?}");
        }
        let done = line.contains("disconnected: ");
        seen.push(line);
        if done {
            break;
        }
    }
    assert!(
        seen[0].contains("warning: platform public key: RSA key smaller than 2048 bits"),
        "{seen:?}"
    );
    let attempt = seen.last().unwrap();
    assert!(attempt.to_lowercase().contains("refused"), "{attempt}");
    assert!(attempt.contains("; retrying "), "{attempt}");
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{status}; stderr after the attempt: {rest}"
    );
    assert!(
        rest.contains("interrupted before the first connection"),
        "{rest}"
    );
}

/// An app whose sign type is `RSA` (SHA1withRSA), through the CLI alone:
/// `simulate --sign-type RSA` signs the app's CONSUMEs with SHA1withRSA, `listen` with
/// `sign_type = "RSA"` verifies and handles one, and `send` signs a PRODUCE the
/// simulator accepts. The default build signs SHA1 (the Java client's own rule for such
/// apps: it verifies the register answer in its own sign type, PROTOCOL §5).
#[cfg(unix)]
#[test]
fn rsa_app_end_to_end_through_the_cli() {
    use std::io::{BufRead, BufReader};
    let dir = support::test_dir("rsa");
    let (_simulate, endpoint, sim_lines) =
        support::simulator(&dir, support::ONE_PUSH, &["--sign-type", "RSA"]);
    let config = support::client_config(&dir, &endpoint, "sign_type = \"RSA\"");
    let config = config.to_str().unwrap();

    let mut listen = Reaped(
        Command::new(env!("CARGO_BIN_EXE_alipay-msg"))
            .args(["listen", "--config", config])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(listen.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let message: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("listen printed {line:?}: {e}"));
    assert_eq!(message["msg_api"], "alipay.open.mini.version.audit.passed");
    assert_eq!(message["biz_content"]["mini_app_id"], "2014072300007148");

    let out = run(
        &[
            "send",
            "--config",
            config,
            "--msg-api",
            "alipay.open.app.openbizmock.message.send",
            "--biz-content",
            "{\"shop_id\":\"1001\"}",
        ],
        b"",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let ack = json_line(&out);
    assert_eq!(ack["code"], "10000", "{ack}");

    listen.signal("-INT", false);
    assert_eq!(listen.0.wait().unwrap().code(), Some(0));
    support::wait_for_line(&sim_lines, "ack SUCCESS", "the simulator");
}

const NOTIFY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/notify");

/// SHA-256 of the SubjectPublicKeyInfo DER of `vectors/keys/alipay_public.pem`, first
/// 16 hex digits (`openssl pkey -pubin -in … -outform DER | sha256sum`).
const PLATFORM_KEY_FINGERPRINT: &str = "d0de861be430270f";

/// `verify-notify` on a file of `testdata/notify/` (or raw bytes), with extra flags:
/// the exit status and the one JSON line.
fn verify_notify(flags: &[&str], body: &[u8]) -> (Option<i32>, Value) {
    let key = path("keys/alipay_public.pem");
    let mut args = vec!["verify-notify", "--alipay-public-key", &key];
    args.extend(flags);
    let out = run(&args, body);
    (out.status.code(), json_line(&out))
}

fn notify_file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{NOTIFY}/{name}")).unwrap()
}

/// The `explain` object of a line, with the fields every diagnosis has.
fn explain(line: &Value) -> &Value {
    let explain = &line["explain"];
    assert!(explain.is_object(), "no explain in {line}");
    assert_eq!(
        explain["key_fingerprint"], PLATFORM_KEY_FINGERPRINT,
        "{line}"
    );
    explain
}

fn hints(line: &Value) -> Vec<&str> {
    explain(line)["hints"]
        .as_array()
        .unwrap_or_else(|| panic!("no hints in {line}"))
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect()
}

#[test]
fn verify_notify_explains_a_v2_body_checked_without_v2() {
    let (code, line) = verify_notify(&[], &notify_file("gateway_message_rsa2_v2.txt"));
    assert_eq!(code, Some(1), "{line}");
    let explain = explain(&line);
    assert_eq!(explain["rule"], "V1");
    assert_eq!(explain["charset"], "UTF-8");
    assert_eq!(explain["sign_type"], "RSA2");
    let content = explain["sign_content"].as_str().unwrap();
    assert!(
        content.starts_with("app_id=2013121700999429&biz_content={"),
        "{content}"
    );
    assert!(
        !content.contains("sign_type="),
        "V1 leaves sign_type out: {content}"
    );
    assert_eq!(hints(&line), ["verifies under the V2 rule: use --v2"]);
}

#[test]
fn verify_notify_explains_a_v1_body_checked_with_v2() {
    let (code, line) = verify_notify(&["--v2"], &notify_file("trade_notify_rsa2_v1.txt"));
    assert_eq!(code, Some(1), "{line}");
    assert_eq!(explain(&line)["rule"], "V2");
    assert!(explain(&line)["sign_content"]
        .as_str()
        .unwrap()
        .contains("&sign_type=RSA2&"));
    assert_eq!(hints(&line), ["verifies under the V1 rule: leave out --v2"]);
}

#[test]
fn verify_notify_explains_an_already_url_decoded_body() {
    let (code, line) = verify_notify(&[], &notify_file("trade_notify_rsa2_v1_url_decoded.form"));
    assert_eq!(code, Some(1), "{line}");
    assert_eq!(explain(&line)["charset"], "utf-8");
    assert_eq!(hints(&line), ["the body looks already URL-decoded"]);
}

#[test]
fn verify_notify_explains_a_json_body() {
    let (code, line) = verify_notify(&[], &notify_file("gateway_message_rsa2_v1_as_json.json"));
    assert_eq!(code, Some(2), "{line}");
    assert_eq!(line["valid"], false);
    assert!(line["error"]
        .as_str()
        .unwrap()
        .contains("malformed notification"));
    assert_eq!(hints(&line), ["this is JSON, not a form body"]);
}

#[test]
fn verify_notify_explains_empty_input() {
    for body in [&b""[..], b"\n", b" \r\n"] {
        let (code, line) = verify_notify(&[], body);
        assert_eq!(code, Some(2), "{line}");
        assert_eq!(hints(&line), ["empty input"], "{body:?}");
    }
}

#[test]
fn verify_notify_explain_always_with_the_flag() {
    let body = notify_file("trade_notify_rsa2_v1.txt");
    let (code, line) = verify_notify(&[], &body);
    assert_eq!(code, Some(0));
    assert!(line.get("explain").is_none(), "only on failure: {line}");
    let (code, line) = verify_notify(&["--explain"], &body);
    assert_eq!(code, Some(0), "{line}");
    assert_eq!(line["valid"], true);
    assert_eq!(hints(&line), Vec::<&str>::new());
    // A tampered body: the exact sign content shows the changed amount.
    let (code, line) = verify_notify(&[], &notify_file("trade_notify_tampered_amount.txt"));
    assert_eq!(code, Some(1));
    assert!(hints(&line).is_empty(), "{line}");
    let content = explain(&line)["sign_content"].as_str().unwrap().to_owned();
    let verified = verify_notify(&["--explain"], &body).1;
    assert_ne!(
        content,
        explain(&verified)["sign_content"].as_str().unwrap()
    );
}

/// `simulate` on a free port: the process and its `host:port`.
#[cfg(unix)]
fn start_simulator() -> (Reaped, String) {
    let dir = support::test_dir("simulator");
    let (simulate, endpoint, _lines) = support::simulator(&dir, "", &[]);
    (simulate, endpoint)
}

/// `send` with a configuration naming these two key files: exit status and stderr.
fn send_with_keys(
    name: &str,
    endpoint: &str,
    app_private: &str,
    platform: &str,
) -> (Option<i32>, String) {
    let dir = std::env::temp_dir().join(format!("alipay-msg-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("client.toml");
    std::fs::write(
        &config,
        format!(
            "app_id = \"2021000000000001\"\nendpoint = \"{endpoint}\"\n\
             [keys]\napp_private_key_file = \"{}\"\nalipay_public_key_file = \"{}\"\n\
             [tuning]\nconnect_timeout_ms = 5000\n",
            path(app_private),
            path(platform),
        ),
    )
    .unwrap();
    let out = run(
        &[
            "send",
            "--config",
            config.to_str().unwrap(),
            "--msg-api",
            "alipay.open.app.openbizmock.message.send",
            "--biz-content",
            "{}",
        ],
        b"",
    );
    (out.status.code(), String::from_utf8(out.stderr).unwrap())
}

/// The key mix-ups at registration, named: the app public key configured as the
/// platform key (this client refuses the platform's answer), and an app private key
/// that is not the pair of the app public key the platform has (`isv.invalid-signature`).
#[cfg(unix)]
#[test]
fn send_names_the_likely_key_mix_up() {
    let (_simulator, endpoint) = start_simulator();
    let (code, err) = send_with_keys(
        "platform-key-is-app-key",
        &endpoint,
        "keys/app_private_pkcs1.pem",
        "keys/app_public.pem",
    );
    assert_eq!(code, Some(2), "{err}");
    let last = err.lines().last().unwrap();
    assert!(
        !last.contains("platform refused"),
        "the client refused: {last}"
    );
    assert!(
        last.contains("refused the platform's register.do answer"),
        "{last}"
    );
    assert!(last.contains("alipay_public_key_file"), "{last}");
    assert!(last.contains("not the app public key"), "{last}");

    let (code, err) = send_with_keys(
        "app-key-not-the-pair",
        &endpoint,
        "../keys/small_1024_pkcs1.pem",
        "keys/alipay_public.pem",
    );
    assert_eq!(code, Some(2), "{err}");
    let last = err.lines().last().unwrap();
    assert!(last.contains("isv.invalid-signature"), "{last}");
    assert!(
        last.contains("app public key uploaded in the console"),
        "{last}"
    );
    assert!(last.contains("app_private_key_file"), "{last}");
}

/// Issue 18: `send` consumes nothing, so a message queued for the app (no listener
/// running) that the platform pushes to `send`'s connection is answered FAIL at once
/// instead of being held until the connection closes (it took 30 s: the shutdown
/// waited for it); a `listen` started afterwards handles it, and says when it connects
/// (the first connection included).
#[cfg(unix)]
#[test]
fn send_fails_a_queued_push_at_once_and_listen_handles_it() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let dir = support::test_dir("sendonly");
    let (simulate, endpoint, sim_lines) = support::simulator(
        &dir,
        "{\"msg_api\":\"alipay.open.mini.version.audit.passed\",\"biz_content\":{\"n\":1}}\n",
        &[],
    );
    let config = support::client_config(&dir, &endpoint, "");
    let config = config.to_str().unwrap();

    let started = Instant::now();
    let out = run(
        &[
            "send",
            "--config",
            config,
            "--events",
            "json",
            "--msg-api",
            "alipay.open.app.openbizmock.message.send",
            "--biz-content",
            "{\"shop_id\":\"1001\"}",
        ],
        b"",
    );
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(took < Duration::from_secs(5), "send took {took:?}: {err}");
    let events: Vec<Value> = err
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert!(
        events.iter().any(|e| e["event"] == "connected"),
        "JSON events on stderr: {err}"
    );
    assert!(
        events.iter().any(|e| e["event"] == "rejected"
            && ["no_consumer", "shutting_down"]
                .contains(&e["reason"]["kind"].as_str().unwrap_or(""))),
        "the queued push was answered FAIL: {err}"
    );

    let mut listen = Reaped(
        Command::new(env!("CARGO_BIN_EXE_alipay-msg"))
            .args(["listen", "--config", config])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(listen.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let message: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("listen printed {line:?}: {e}"));
    assert_eq!(message["biz_content"]["n"], 1);
    listen.signal("-INT", false);
    assert_eq!(listen.0.wait().unwrap().code(), Some(0));
    let mut listened = String::new();
    std::io::Read::read_to_string(&mut listen.0.stderr.take().unwrap(), &mut listened).unwrap();
    assert!(
        listened.lines().any(|l| l == "alipay-msg: connected"),
        "listen says when it connects: {listened}"
    );
    let seen = support::wait_for_line(&sim_lines, "ack SUCCESS", "the simulator");
    assert!(
        seen.iter().any(|l| l.contains("ack FAIL")),
        "the push was FAILed before it was handled: {seen:#?}"
    );
    simulate.signal("-INT", false);
}

/// `simulate` prints where it listens, queues what `/admin/push` is given (and says
/// so), and stops cleanly on Ctrl-C (moved here from the tokio client's tests with the
/// CLI).
#[cfg(unix)]
#[test]
fn simulate_queues_admin_pushes_and_stops_on_ctrl_c() {
    use std::io::{Read, Write};
    let dir = support::test_dir("simulate-admin");
    let (mut simulate, endpoint, lines) = support::simulator(&dir, "", &[]);
    let body = r#"{"msg_api":"alipay.open.mini.version.audit.passed","biz_content":{"a":1}}"#;
    let mut stream = std::net::TcpStream::connect(&endpoint).unwrap();
    stream.set_read_timeout(Some(support::PATIENCE)).unwrap();
    write!(
        stream,
        "POST /admin/push HTTP/1.1\r\nHost: {endpoint}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let json = answer.split("\r\n\r\n").nth(1).expect("a body");
    let msg_id = serde_json::from_str::<Value>(json).unwrap()["msg_id"]
        .as_str()
        .expect("the queued message's msg_id")
        .to_owned();
    let seen = support::wait_for_line(&lines, "queued", "the simulator");
    let line = seen.last().unwrap();
    assert!(
        line.contains(&format!(
            "push {msg_id}: message alipay.open.mini.version.audit.passed"
        )),
        "{line}"
    );

    simulate.signal("-INT", false);
    support::wait_for_line(&lines, "stopping", "the simulator");
    let status = simulate
        .wait_at_most(support::PATIENCE)
        .expect("simulate exits after Ctrl-C");
    assert_eq!(status.code(), Some(0));
}

/// Issue 16: `listen` with `[dedup] redis_url` runs on the shared duplicate window: the
/// message is claimed and recorded in Redis (a key holding its msg_id is there after its
/// SUCCESS ack). Needs a Redis (`ALIPAY_MSG_REDIS_URL`, started by `.ci/run`).
#[cfg(unix)]
#[test]
fn listen_with_dedup_records_in_redis() {
    use std::io::{BufRead, BufReader};
    let Some(url) = std::env::var("ALIPAY_MSG_REDIS_URL").ok() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI has Redis: ALIPAY_MSG_REDIS_URL"
        );
        eprintln!("SKIPPED listen_with_dedup_records_in_redis: ALIPAY_MSG_REDIS_URL is not set");
        return;
    };
    let dir = support::test_dir("listen-dedup");
    let (simulate, endpoint, sim_lines) = support::simulator(&dir, "", &[]);
    let config = support::client_config(
        &dir,
        &endpoint,
        &format!("[dedup]\nredis_url = \"{url}\"\n"),
    );
    let mut listen = Reaped(
        Command::new(env!("CARGO_BIN_EXE_alipay-msg"))
            .args(["listen", "--config", config.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    support::wait_for_line(&sim_lines, "connected", "the simulator");
    let out = Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            &format!("http://{endpoint}/admin/push"),
            "-d",
        ])
        .arg(r#"{"msg_api":"alipay.open.mini.version.audit.passed","biz_content":{"n":16}}"#)
        .output()
        .unwrap();
    let pushed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let msg_id = pushed["msg_id"].as_str().unwrap().to_owned();
    let mut line = String::new();
    BufReader::new(listen.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let message: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(message["msg_id"], msg_id);
    support::wait_for_line(&sim_lines, "ack SUCCESS", "the simulator");
    let keys = Command::new("redis-cli")
        .args(["-u", &url, "--scan", "--pattern", &format!("*{msg_id}*")])
        .output()
        .unwrap();
    let keys = String::from_utf8_lossy(&keys.stdout);
    assert!(
        keys.lines()
            .any(|k| k.contains(":msg:") && k.ends_with(&msg_id)),
        "the message's key in Redis: {keys:?}"
    );
    listen.signal("-INT", false);
    assert_eq!(listen.0.wait().unwrap().code(), Some(0));
    simulate.signal("-INT", false);
}
