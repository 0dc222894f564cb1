//! Replays every file of the fuzz corpora (`fuzz/corpus/<target>/`: the seeds from
//! `fuzz/seed.sh` and any regression inputs kept there) through the same functions the
//! fuzz targets call, on the stable toolchain, as an ordinary test.

use std::path::{Path, PathBuf};

use alipay_msg_core::fuzzing;

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {} is missing: {e}", dir.display()))
        .map(|entry| entry.expect("readable corpus directory").path())
        .filter(|path| path.is_file())
        .collect();
    assert!(
        !files.is_empty(),
        "corpus directory {} is empty (run fuzz/seed.sh)",
        dir.display()
    );
    files.sort();
    files
}

fn replay(target: &str, run: fn(&[u8])) {
    for path in corpus_files(target) {
        let data = std::fs::read(&path).expect("readable corpus file");
        // Name the input that panicked before the panic unwinds the test.
        let outcome = std::panic::catch_unwind(|| run(&data));
        if let Err(payload) = outcome {
            eprintln!("{target}: {} panicked", path.display());
            std::panic::resume_unwind(payload);
        }
    }
}

#[test]
fn frame() {
    replay("frame", fuzzing::frame);
}

#[test]
fn message_json() {
    replay("message_json", fuzzing::message_json);
}

#[test]
fn register_answer() {
    replay("register_answer", fuzzing::register_answer);
}

#[test]
fn http_response() {
    replay("http_response", fuzzing::http_response);
}

#[test]
fn notify_body() {
    replay("notify_body", fuzzing::notify_body);
}

#[test]
fn notify_endpoint() {
    replay("notify_endpoint", fuzzing::notify_endpoint);
}

#[test]
fn keys() {
    replay("keys", fuzzing::keys);
}

#[test]
fn cert_der() {
    replay("cert_der", fuzzing::cert_der);
}

#[test]
fn client_session() {
    replay("client_session", fuzzing::client_session);
}

#[test]
fn ws_client_frames() {
    replay("ws_client_frames", fuzzing::ws_client_frames);
}

#[test]
fn ws_server_frames() {
    replay("ws_server_frames", fuzzing::ws_server_frames);
}

#[test]
fn ws_upgrade_answer() {
    replay("ws_upgrade_answer", fuzzing::ws_upgrade_answer);
}

#[test]
fn server_session() {
    replay("server_session", fuzzing::server_session);
}
