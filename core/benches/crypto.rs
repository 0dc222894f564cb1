//! One RSA-2048 verify and one sign per backend, and the CONSUME path around them.
//!
//! `cargo bench -p alipay-msg-core --all-features --bench crypto`

use std::hint::black_box;

use alipay_msg_core::charset::Charset;
use alipay_msg_core::consume::{AckStatus, ConsumeFrame};
use alipay_msg_core::crypto::Backend;
use alipay_msg_core::frame::FrameLimits;
use alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_core::signature::{SignType, Signer, Verifier};
use criterion::{criterion_group, criterion_main, Criterion};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{rel}")).unwrap()
}

fn consume_frame() -> String {
    let v: serde_json::Value = serde_json::from_str(&read("frame_vectors.json")).unwrap();
    v["consume"]["frame"].as_str().unwrap().to_owned()
}

fn bench(c: &mut Criterion) {
    let platform_key = PublicKey::from_pem_or_base64(&read("keys/alipay_public.pem")).unwrap();
    let app_key = PrivateKey::from_pem_or_base64(&read("keys/app_private_pkcs1.pem")).unwrap();
    let frame_text = consume_frame();
    let limits = FrameLimits::default();
    let frame = ConsumeFrame::parse(&frame_text, &limits).unwrap();
    let signed = frame.signed_content().to_owned();
    let sign = frame.sign.clone().unwrap();

    let mut group = c.benchmark_group("rsa2048");
    for &backend in Backend::ALL {
        let verifier = Verifier::with_backend(&platform_key, backend).unwrap();
        group.bench_function(format!("verify_rsa2/{backend}"), |b| {
            b.iter(|| {
                verifier
                    .verify_text(SignType::Rsa2, Charset::Utf8, black_box(&signed), &sign)
                    .unwrap()
            })
        });
        let signer = Signer::with_backend(&app_key, SignType::Rsa2, backend).unwrap();
        group.bench_function(format!("sign_rsa2/{backend}"), |b| {
            b.iter(|| signer.sign_text(black_box(&signed), Charset::Utf8).unwrap())
        });
        group.bench_function(format!("consume_parse_verify_ack/{backend}"), |b| {
            b.iter(|| {
                let frame = ConsumeFrame::parse(black_box(&frame_text), &limits).unwrap();
                assert!(frame.verify(&verifier).is_valid());
                frame.ack(AckStatus::Success).encode()
            })
        });
    }
    group.finish();

    c.bench_function("consume_parse_only", |b| {
        b.iter(|| ConsumeFrame::parse(black_box(&frame_text), &limits).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
