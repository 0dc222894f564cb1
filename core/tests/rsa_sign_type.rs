//! Sign type `RSA` (SHA1withRSA) in the default build: apps created before RSA2 sign
//! their parameters and PRODUCEs with it, and the platform signs their register answers
//! with it (PROTOCOL §2, §3, §5).
//!
//! Reference: the Java SDK's `AsymmetricManager.getByName("RSA")` signs and verifies
//! SHA1withRSA (`RSAEncryptor`, algorithm `SHA1WithRSA`); the platform's Java message
//! client verifies the register answer with its own configured sign type, so an app
//! whose sign type is `RSA` refuses an answer signed SHA256withRSA.
//!
//! Vector: `testdata/vectors/gbk_frames.json` → `register_response_rsa`.

use alipay_msg_core::charset::Charset;
use alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_core::register::{parse_register_body, RegisterError};
use alipay_msg_core::signature::{SignType, SignatureError, Signer, Verifier};
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{VECTORS}/{path}"))
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn vector() -> Value {
    let all: Value = serde_json::from_str(&read("gbk_frames.json")).unwrap();
    all["register_response_rsa"].clone()
}

fn platform_verifier() -> Verifier {
    Verifier::new(&PublicKey::from_pem_or_base64(&read("keys/alipay_public.pem")).unwrap()).unwrap()
}

#[test]
fn the_rsa_register_answer_is_accepted_by_an_rsa_app() {
    let v = vector();
    assert_eq!(v["sign_type"], "RSA");
    let token = parse_register_body(
        v["body"].as_str().unwrap(),
        Charset::Utf8,
        &platform_verifier(),
        SignType::Rsa,
        None,
    )
    .unwrap();
    assert_eq!(token, v["expect"]["link_token"].as_str().unwrap());
}

#[test]
fn the_rsa_register_answer_is_refused_by_an_rsa2_app() {
    let v = vector();
    let e = parse_register_body(
        v["body"].as_str().unwrap(),
        Charset::Utf8,
        &platform_verifier(),
        SignType::Rsa2,
        None,
    )
    .unwrap_err();
    assert_eq!(e, RegisterError::BadSignature(SignatureError::Mismatch));
}

#[test]
fn the_default_build_signs_sha1_with_rsa_byte_for_byte() {
    // PKCS#1 v1.5 is deterministic: signing the vector's content with the platform key
    // gives the vector's signature exactly.
    let v = vector();
    let key = PrivateKey::from_pem_or_base64(&read("keys/alipay_private_pkcs1.pem")).unwrap();
    let signer = Signer::new(&key, SignType::Rsa).expect("SHA1withRSA signs in every build");
    let sign = signer
        .sign_text(v["signed_content"].as_str().unwrap(), Charset::Utf8)
        .unwrap();
    let body: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(sign, body["sign"].as_str().unwrap());
}

#[test]
fn the_default_build_signs_sha1_with_the_app_key_in_pkcs8_too() {
    let key = PrivateKey::from_pem_or_base64(&read("keys/app_private_pkcs8.pem")).unwrap();
    let signer = Signer::new(&key, SignType::Rsa).unwrap();
    let sign = signer
        .sign_text("app_id=1&charset=GBK&sign_type=RSA", Charset::Gbk)
        .unwrap();
    let app = Verifier::new(&PublicKey::from_pem_or_base64(&read("keys/app_public.pem")).unwrap())
        .unwrap();
    app.verify_text(
        SignType::Rsa,
        Charset::Gbk,
        "app_id=1&charset=GBK&sign_type=RSA",
        &sign,
    )
    .unwrap();
}
