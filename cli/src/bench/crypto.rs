//! The crypto bound: how many CONSUME signatures one core verifies per second, and
//! what the core's whole per-message pipeline (parse, verify, decide and encode the
//! ack) costs next to it. Measured in-process, on the calling thread.

use std::hint::black_box;
use std::time::{Duration, Instant};

use alipay_msg_core::charset::Charset;
use alipay_msg_core::consume::{AckStatus, ConsumeFrame, ConsumeOut};
use alipay_msg_core::crypto::Backend;
use alipay_msg_core::frame::{DataHeader, FrameHeaders, FrameLimits};
use alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_core::signature::{SignType, Signer, Verifier};
use alipay_msg_simulator::test_keys;

use crate::Failure;

/// Rates of one backend, per second on one core.
#[derive(Debug, Clone, Copy)]
pub(super) struct CryptoRates {
    /// Bare RSA2 verifications of a CONSUME's `data`.
    pub(super) verify: f64,
    /// Parse + verify + ack encode of the same CONSUME frame.
    pub(super) pipeline: f64,
}

/// A CONSUME as the simulator sends it, signed with the test platform key.
pub(super) fn sample_consume(biz_content: &str, msg_api: &str) -> Result<String, Failure> {
    let key = PrivateKey::from_pem_or_base64(test_keys::PLATFORM_PRIVATE_KEY)
        .map_err(|e| Failure::malformed(format!("embedded platform key: {e}")))?;
    let platform = Signer::new(&key, SignType::Rsa2)
        .map_err(|e| Failure::malformed(format!("embedded platform key: {e}")))?;
    let headers = FrameHeaders {
        from_sys: Some("openchannel".into()),
        from_sys_ip: Some("127.0.0.1".into()),
        stream_id: Some("s00000000001".into()),
    };
    let header = DataHeader {
        app_id: Some(test_keys::APP_ID.into()),
        msg_api: Some(msg_api.into()),
        ..DataHeader::default()
    };
    ConsumeOut {
        headers: &headers,
        msg_id: "20261123000000000001",
        timestamp_ms: 1_795_430_400_000,
        data_header: &header,
        biz_content,
        charset: Charset::Utf8,
    }
    .sign_and_encode(&platform)
    .map_err(|e| Failure::malformed(format!("signing the sample CONSUME: {e}")))
}

/// Measures `backend` on `frame` for about `time` per figure.
pub(super) fn measure(
    frame: &str,
    backend: Backend,
    time: Duration,
) -> Result<CryptoRates, Failure> {
    let key = PublicKey::from_pem_or_base64(test_keys::PLATFORM_PUBLIC_KEY)
        .map_err(|e| Failure::malformed(format!("embedded platform key: {e}")))?;
    let verifier = Verifier::with_backend(&key, backend)
        .map_err(|e| Failure::malformed(format!("{backend} verifier: {e}")))?;
    let limits = FrameLimits::default();
    let parsed = ConsumeFrame::parse(frame, &limits)
        .map_err(|e| Failure::malformed(format!("sample CONSUME: {e}")))?;
    if !parsed.verify(&verifier).is_valid() {
        return Err(Failure::malformed("the sample CONSUME does not verify"));
    }
    let mut verify_once = || {
        assert!(black_box(&parsed).verify(&verifier).is_valid());
    };
    let mut pipeline_once = || {
        // Parsed just above, so it parses again.
        let consume = ConsumeFrame::parse(black_box(frame), &limits).expect("parses");
        assert!(consume.verify(&verifier).is_valid());
        black_box(consume.ack(AckStatus::Success).encode());
    };
    // Alternating rounds, best of each: a burst of load from elsewhere on the machine
    // then slows one round of each rather than one figure.
    let round = time / ROUNDS;
    rate(round / 2, &mut verify_once);
    rate(round / 2, &mut pipeline_once);
    let (mut verify, mut pipeline) = (0f64, 0f64);
    for _ in 0..ROUNDS {
        verify = verify.max(rate(round, &mut verify_once));
        pipeline = pipeline.max(rate(round, &mut pipeline_once));
    }
    Ok(CryptoRates { verify, pipeline })
}

/// What one thread spends, in µs of CPU, to wake up every `1/rate` s and parse, verify
/// and ack `frame` (the pipeline a client runs per message), `count` times, with
/// nothing else to do: the floor of any client at that rate on this machine. A wake-up
/// from idle costs CPU of its own, and the verify runs with caches gone cold since the
/// last one, so this is well above the bare verify measured back to back. Reads the
/// thread's run time from `/proc/thread-self/schedstat` (ns; Linux only: `None`
/// elsewhere).
pub(super) fn paced(
    frame: &str,
    backend: Backend,
    rate: f64,
    count: u32,
) -> Result<Option<f64>, Failure> {
    let key = PublicKey::from_pem_or_base64(test_keys::PLATFORM_PUBLIC_KEY)
        .map_err(|e| Failure::malformed(format!("embedded platform key: {e}")))?;
    let verifier = Verifier::with_backend(&key, backend)
        .map_err(|e| Failure::malformed(format!("{backend} verifier: {e}")))?;
    let limits = FrameLimits::default();
    let run_ns = || -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        stat.split_whitespace().next()?.parse().ok()
    };
    let period = Duration::from_secs_f64(1.0 / rate);
    let Some(before) = run_ns() else {
        return Ok(None);
    };
    let start = Instant::now();
    for i in 1..=count {
        std::thread::sleep((start + period * i).saturating_duration_since(Instant::now()));
        let consume = ConsumeFrame::parse(black_box(frame), &limits)
            .map_err(|e| Failure::malformed(format!("sample CONSUME: {e}")))?;
        if !consume.verify(&verifier).is_valid() {
            return Err(Failure::malformed("the sample CONSUME does not verify"));
        }
        black_box(consume.ack(AckStatus::Success).encode());
    }
    Ok(run_ns().map(|after| after.saturating_sub(before) as f64 / 1e3 / f64::from(count)))
}

/// Rounds per figure.
const ROUNDS: u32 = 5;

/// Runs `f` for `time`; returns runs per second.
fn rate(time: Duration, f: &mut dyn FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..8 {
            f();
        }
        n += 8;
        let elapsed = start.elapsed();
        if elapsed >= time {
            return n as f64 / elapsed.as_secs_f64();
        }
    }
}
