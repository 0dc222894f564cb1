//! Every code block of the README is compiled or run by a test (issue: "every code
//! block in it compiles or runs in a test"). This file finds each fenced block, by its
//! info string, and:
//!
//! - `console`: runs the session — each `$ ` line through `bash` with this build's
//!   `alipay-msg`, free ports for `127.0.0.1:7001`/`:8080` and the README's own
//!   configuration file for `client.toml` — and finds each output line the README shows
//!   (digits may differ: ids and times; `…` stands for anything);
//! - `toml`: the configuration file is that `client.toml` (so the sessions above load
//!   it); the `[dependencies]` lines name real crates at real paths;
//! - `sh`: the commands are the ones this repository has (`cargo run --release -- demo`
//!   runs the default member's `alipay-msg`, `.ci/run` exists, `cargo install --path cli`
//!   installs `alipay-msg`);
//! - `text`: the demo's summary line (checked against a run by `cli::demo_summary`);
//! - `rust`: compiled (and `no_run` aside, run) as doc tests of `alipay-msg-conformance`,
//!   which includes the README — checked here;
//! - `python`: run and compiled by `bindings/python/tests/test_example.py` — checked here.
//!
//! A block of any other kind fails the test, so that no block goes untested.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// A fenced block: its info string and its lines.
struct Block {
    info: String,
    text: String,
    /// 1-based line of the opening fence.
    line: usize,
}

fn blocks() -> Vec<Block> {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (i, line) in readme.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_owned(),
                    text: String::new(),
                    line: i + 1,
                })
            }
            (Some(_), Some("")) => blocks.push(open.take().expect("open")),
            (Some(block), _) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "an unclosed block in the README");
    blocks
}

#[test]
fn every_block_is_of_a_kind_these_tests_cover() {
    let blocks = blocks();
    for block in &blocks {
        let kind = block.info.split(',').next().unwrap_or("");
        assert!(
            ["console", "toml", "sh", "text", "rust", "python"].contains(&kind),
            "README line {}: a ```{} block no test covers",
            block.line,
            block.info
        );
    }
    let conformance =
        std::fs::read_to_string(Path::new(ROOT).join("conformance/src/lib.rs")).unwrap();
    assert!(
        conformance.contains("#[doc = include_str!(\"../../README.md\")]"),
        "the README's Rust blocks are doc tests of alipay-msg-conformance"
    );
    assert!(
        blocks.iter().any(|b| b.info.starts_with("rust")),
        "a Rust example"
    );
    let python =
        std::fs::read_to_string(Path::new(ROOT).join("bindings/python/tests/test_example.py"))
            .unwrap();
    assert!(python.contains("README.md") && python.contains("compile("));
}

#[test]
fn the_sh_blocks_name_commands_this_repository_has() {
    let manifest = std::fs::read_to_string(Path::new(ROOT).join("Cargo.toml")).unwrap();
    let cli = std::fs::read_to_string(Path::new(ROOT).join("cli/Cargo.toml")).unwrap();
    let mut seen = Vec::new();
    for block in blocks()
        .iter()
        .filter(|b| b.info.split(',').next() == Some("sh"))
    {
        for line in block.text.lines() {
            let command = line.split('#').next().unwrap_or("").trim();
            match command {
                "" => {}
                "cargo run --release -- demo" => {
                    assert!(manifest.contains("default-members = [\"cli\"]"));
                    assert!(cli.contains("name = \"alipay-msg\""));
                }
                "bash .ci/run" => assert!(Path::new(ROOT).join(".ci/run").is_file()),
                "cargo install --locked --path cli" => {
                    assert!(cli.contains("name = \"alipay-msg\""))
                }
                other => panic!(
                    "README line {}: a command no test knows: {other}",
                    block.line
                ),
            }
            seen.push(command.to_owned());
        }
    }
    for command in ["cargo run --release -- demo", "bash .ci/run"] {
        assert!(
            seen.iter().any(|c| c == command),
            "the two commands: {command}"
        );
    }
}

#[test]
fn the_dependencies_block_names_each_crate_at_its_path() {
    let block = blocks()
        .into_iter()
        .find(|b| b.info == "toml" && b.text.starts_with("[dependencies]"))
        .expect("a [dependencies] block");
    let table: toml::Table = toml::from_str(&block.text).unwrap();
    let deps = table["dependencies"].as_table().unwrap();
    assert!(deps.len() >= 4, "{deps:?}");
    for (name, spec) in deps {
        let path = spec["path"].as_str().unwrap();
        let dir = path
            .strip_prefix("alipay-msg/")
            .expect("paths inside a checkout named alipay-msg");
        let manifest = std::fs::read_to_string(Path::new(ROOT).join(dir).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{dir}/Cargo.toml is not {name}"
        );
    }
}

#[test]
fn the_text_block_is_the_demos_summary_line() {
    let block = blocks()
        .into_iter()
        .find(|b| b.info == "text")
        .expect("the demo's output");
    let line = block.text.trim();
    assert!(line.starts_with("summary: pushed="), "{line}");
    // `cli::demo_summary` runs the demo and compares its summary with this very line.
    let cli = std::fs::read_to_string(Path::new(ROOT).join("cli/tests/cli.rs")).unwrap();
    assert!(cli.contains("readme_summary_line()"));
}

/// The README's configuration file, with its key paths made absolute (they are
/// relative to the repository root, where the README's session runs) and `endpoint`
/// set to `endpoint`.
fn readme_config(dir: &Path, endpoint: &str) -> PathBuf {
    let block = blocks()
        .into_iter()
        .find(|b| b.info == "toml" && b.text.starts_with("app_id"))
        .expect("the configuration file");
    let root = std::fs::canonicalize(ROOT).unwrap();
    let text = block
        .text
        .replace("\"testdata/", &format!("\"{}/testdata/", root.display()))
        .replace("\"127.0.0.1:7001\"", &format!("\"{endpoint}\""));
    let path = dir.join("client.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Lines of a child's stdout and stderr, merged.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let streams: [Box<dyn Read + Send>; 2] = [
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    for stream in streams {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// Digits as `0`: ids, times and counts may differ between runs.
fn normalise(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_digits = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('0');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// `expected` (with `…` for anything) matches `actual`, digits aside.
fn matches(expected: &str, actual: &str) -> bool {
    let actual = normalise(actual);
    let mut rest = actual.as_str();
    let parts: Vec<String> = expected.split('…').map(normalise).collect();
    for (i, part) in parts.iter().enumerate() {
        let found = if i == 0 {
            rest.starts_with(part.as_str()).then_some(0)
        } else {
            rest.find(part.as_str())
        };
        match found {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    parts.len() > 1 || rest.is_empty()
}

/// Runs one console block as the README shows it.
fn run_console(block: &Block) {
    let dir = support::test_dir(&format!("readme-{}", block.line));
    let simulator = format!("127.0.0.1:{}", free_port());
    let endpoint = format!("127.0.0.1:{}", free_port());
    let config = readme_config(&dir, &simulator);
    let binary = env!("CARGO_BIN_EXE_alipay-msg");
    let substitute = |command: &str| {
        command
            .replace("alipay-msg ", &format!("{binary} "))
            .replace("127.0.0.1:7001", &simulator)
            .replace("127.0.0.1:8080", &endpoint)
            .replace("client.toml", config.to_str().unwrap())
    };
    let mut background: Vec<support::Reaped> = Vec::new();
    let (all_tx, all) = mpsc::channel::<String>();
    let mut expected: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for line in block.text.lines() {
        let Some(command) = line.strip_prefix("$ ") else {
            expected.push(line.to_owned());
            continue;
        };
        let command = command.split("  #").next().unwrap_or(command).trim();
        if command.starts_with("pip install ") {
            // The Python package: .ci/run builds and installs it with maturin, and
            // pytest runs the README's Python example (bindings/python/tests).
            assert_eq!(command, "pip install ./bindings/python");
            assert!(Path::new(ROOT)
                .join("bindings/python/pyproject.toml")
                .is_file());
            continue;
        }
        let (command, in_background) = match command.strip_suffix('&') {
            Some(c) => (c.trim(), true),
            None => (command, false),
        };
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(substitute(command))
            .current_dir(ROOT)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(&mut child);
        if in_background {
            // Ready when it says so: the simulator listens, a client is connected, an
            // endpoint serves.
            let ready = [
                "listening on",
                "alipay-msg: connected",
                "serving notifications",
            ];
            let deadline = Instant::now() + support::PATIENCE;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let line = lines.recv_timeout(left).unwrap_or_else(|_| {
                    panic!("README line {}: `{command}` never got ready", block.line)
                });
                let done = ready.iter().any(|r| line.contains(r));
                seen.push(line);
                if done {
                    break;
                }
            }
            let tx = all_tx.clone();
            std::thread::spawn(move || {
                for line in lines {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            background.push(support::Reaped(child));
        } else {
            let status = child.wait().unwrap();
            // Everything it printed: the reader threads end at its end of stream.
            seen.extend(lines.iter());
            // Give the background processes a moment to print what this caused.
            std::thread::sleep(Duration::from_millis(300));
            seen.extend(all.try_iter());
            assert!(
                status.success(),
                "README line {}: `{command}` failed: {seen:#?}",
                block.line
            );
        }
    }
    let deadline = Instant::now() + support::PATIENCE;
    // Each expected line is matched by a printed line of its own.
    let missing = |seen: &[String]| -> Vec<String> {
        let mut used = vec![false; seen.len()];
        let mut missing = Vec::new();
        for e in &expected {
            match (0..seen.len()).find(|&i| !used[i] && matches(e, &seen[i])) {
                Some(i) => used[i] = true,
                None => missing.push(e.clone()),
            }
        }
        missing
    };
    while !missing(&seen).is_empty() && Instant::now() < deadline {
        if let Ok(line) = all.recv_timeout(Duration::from_millis(100)) {
            seen.push(line);
        }
    }
    assert!(
        missing(&seen).is_empty(),
        "README line {}: lines not printed: {:#?}\nprinted: {seen:#?}",
        block.line,
        missing(&seen)
    );
    for mut child in background {
        child.signal("-INT", false);
        child.wait_at_most(support::PATIENCE);
    }
}

#[cfg(unix)]
#[test]
fn the_console_sessions_run_as_shown() {
    let blocks: Vec<Block> = blocks()
        .into_iter()
        .filter(|b| b.info.split(',').next() == Some("console"))
        .collect();
    let sessions = blocks
        .iter()
        .filter(|b| b.text.contains("$ alipay-msg "))
        .count();
    assert!(
        sessions >= 2,
        "the simulator session and the notification session"
    );
    for block in &blocks {
        run_console(block);
    }
}

#[test]
fn matching_ignores_digits_and_ellipses_only() {
    assert!(matches(
        r#"{"msg_id":"17954650230000000001"}"#,
        r#"{"msg_id":"1796"}"#
    ));
    assert!(!matches(r#"{"msg_id":"1"}"#, r#"{"notify_id":"1"}"#));
    assert!(matches(
        r#"{"a":1,"p":{…},"z":2}"#,
        r#"{"a":7,"p":{"k":"v"},"z":3}"#
    ));
    assert!(!matches("abc", "abcd"));
}
