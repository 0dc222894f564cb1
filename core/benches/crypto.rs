//! The CONSUME path piece by piece and together, PRODUCE signing, HTTP notification
//! verification, and the two RSA backends side by side.
//!
//! `cargo bench -p alipay-msg-core --all-features --bench crypto`

// criterion_group! makes public functions without doc comments.
#![allow(missing_docs)]

use std::hint::black_box;

use alipay_msg_core::charset::Charset;
use alipay_msg_core::consume::{AckStatus, ConsumeFrame};
use alipay_msg_core::crypto::Backend;
use alipay_msg_core::frame::FrameLimits;
use alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_core::notify;
use alipay_msg_core::produce::ProduceRequest;
use alipay_msg_core::sign_content::Rule;
use alipay_msg_core::signature::{SignType, Signer, Verifier};
use criterion::{criterion_group, criterion_main, Criterion};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{rel}")).unwrap()
}

fn bench(c: &mut Criterion) {
    let platform_key =
        PublicKey::from_pem_or_base64(&read("vectors/keys/alipay_public.pem")).unwrap();
    let app_key =
        PrivateKey::from_pem_or_base64(&read("vectors/keys/app_private_pkcs1.pem")).unwrap();
    let frame_text = read("frames/consume.txt");
    let notification = read("notify/trade_notify_rsa2_v1.txt");
    let limits = FrameLimits::default();
    let frame = ConsumeFrame::parse(&frame_text, &limits).unwrap();
    let signed = frame.signed_content().to_owned();
    let sign = frame.sign.clone().unwrap();

    c.bench_function("consume/parse", |b| {
        b.iter(|| ConsumeFrame::parse(black_box(&frame_text), &limits).unwrap())
    });
    c.bench_function("consume/ack_encode", |b| {
        b.iter(|| black_box(&frame).ack(AckStatus::Success).encode())
    });

    let mut group = c.benchmark_group("rsa2048");
    for &backend in Backend::ALL {
        let verifier = Verifier::with_backend(&platform_key, backend).unwrap();
        let signer = Signer::with_backend(&app_key, SignType::Rsa2, backend).unwrap();
        group.bench_function(format!("verify_rsa2/{backend}"), |b| {
            b.iter(|| {
                verifier
                    .verify_text(SignType::Rsa2, Charset::Utf8, black_box(&signed), &sign)
                    .unwrap()
            })
        });
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
        group.bench_function(format!("produce_sign_encode/{backend}"), |b| {
            b.iter(|| {
                ProduceRequest {
                    app_id: "2021000000000001",
                    msg_api: "alipay.open.app.openbizmock.message.send",
                    biz_content: black_box(r#"{"shop_id":"1001","status":"1002"}"#),
                    cert_sns: None,
                    stream_id: "c00000000ab001",
                    timestamp_ms: 1_795_430_400_123,
                    charset: Charset::Utf8,
                }
                .sign_and_encode(&signer, &limits)
                .unwrap()
            })
        });
        group.bench_function(format!("notify_verify/{backend}"), |b| {
            b.iter(|| {
                notify::verify(black_box(notification.as_bytes()), &verifier, Rule::V1).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
