//! Certificate mode against the shared test vectors (PROTOCOL §9):
//! `testdata/vectors/cert_vectors.json` and the certificates and keys next to it.

use alipay_msg_core::cert::{
    platform_cert, platform_cert_sn, root_cert_sn, verify_cert_file, CertError, Certificate,
    ChainError,
};
use alipay_msg_core::key::{KeyError, PublicKey};
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

fn read(rel: &str) -> String {
    let path = format!("{VECTORS}/{rel}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn cert(rel: &str) -> Certificate {
    Certificate::from_pem(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn vectors() -> Value {
    serde_json::from_str(&read("cert_vectors.json")).expect("cert_vectors.json is JSON")
}

fn cases() -> Vec<Value> {
    vectors()["cases"]
        .as_array()
        .expect("cases is an array")
        .clone()
}

fn str_field<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key]
        .as_str()
        .unwrap_or_else(|| panic!("case {case} has no string field {key}"))
}

fn root_ca() -> Certificate {
    cert("certs/root_ca.pem")
}

fn bundle() -> Vec<Certificate> {
    Certificate::all_from_pem(&read("certs/root_bundle_simple.crt")).expect("bundle loads")
}

/// A time one day into the validity window of every test certificate.
fn inside(c: &Certificate) -> i64 {
    c.not_before() + 86_400
}

#[test]
fn every_case_has_expected_issuer_serial_and_sn() {
    let mut checked = 0;
    for case in cases().iter().filter(|c| c.get("root").is_none()) {
        let file = str_field(case, "file");
        let c = cert(file);
        assert_eq!(
            c.issuer_name(),
            str_field(case, "issuer_dn"),
            "{file}: issuer_dn"
        );
        assert_eq!(
            c.serial_decimal(),
            str_field(case, "serial_decimal"),
            "{file}: serial"
        );
        assert_eq!(c.sn(), str_field(case, "sn"), "{file}: sn");
        // Read as a (one-certificate) chain file, the platform SN rule gives the same.
        let chain = Certificate::all_from_pem(&read(file)).expect("chain file loads");
        assert_eq!(chain.len(), 1);
        assert_eq!(
            platform_cert_sn(&chain).expect("non-empty"),
            str_field(case, "sn")
        );
        assert!(c.is_rsa_signed());
        checked += 1;
    }
    assert_eq!(checked, 2, "app and platform certificate cases");
}

#[test]
fn root_bundle_sn_matches_vector() {
    let root_cases: Vec<Value> = cases()
        .into_iter()
        .filter(|c| c.get("root").is_some())
        .collect();
    assert_eq!(root_cases.len(), 1);
    let case = &root_cases[0];
    let certs = Certificate::all_from_pem(&read(str_field(case, "file"))).expect("bundle loads");
    assert_eq!(
        root_cert_sn(&certs).expect("has an RSA root"),
        str_field(case, "sn")
    );
}

#[test]
fn root_bundle_holds_an_ec_root_then_the_test_ca() {
    let certs = bundle();
    assert_eq!(certs.len(), 2);
    assert!(!certs[0].is_rsa_signed());
    assert_eq!(certs[0].signature_algorithm_oid(), "1.2.840.10045.4.3.2"); // ecdsa-with-SHA256
    assert_eq!(
        certs[0].subject_name(),
        "CN=Test Open Platform Root CA E1,O=Test Open Platform,C=CN"
    );
    assert!(certs[1].is_rsa_signed());
    assert_eq!(
        certs[1].der(),
        root_ca().der(),
        "second bundle entry is root_ca.pem"
    );
    // Only the RSA root counts: the bundle SN is the test CA's own SN.
    assert_eq!(
        root_cert_sn(&certs).expect("has an RSA root"),
        root_ca().sn()
    );
    assert_eq!(root_cert_sn(&[root_ca()]).expect("RSA"), root_ca().sn());
}

#[test]
fn root_sn_errors() {
    assert_eq!(root_cert_sn(&[]), Err(CertError::EmptyChain));
    let ec = bundle().remove(0);
    assert_eq!(root_cert_sn(&[ec]), Err(CertError::NoRsaRoot { count: 1 }));
}

#[test]
fn alipay_cert_public_key_equals_alipay_public_pem() {
    let from_cert = cert("certs/alipay_cert.crt").public_key().expect("RSA key");
    let from_pem =
        PublicKey::from_pem_or_base64(&read("keys/alipay_public.pem")).expect("key loads");
    assert_eq!(from_cert.pkcs1_der(), from_pem.pkcs1_der());
    assert_eq!(from_cert.modulus_bits(), 2048);
    let case = cases()
        .into_iter()
        .find(|c| c.get("public_key_matches").is_some())
        .expect("a public_key_matches case");
    assert_eq!(str_field(&case, "file"), "certs/alipay_cert.crt");
    assert_eq!(
        str_field(&case, "public_key_matches"),
        "keys/alipay_public.pem"
    );
}

#[test]
fn app_cert_public_key_equals_app_public_pem() {
    let from_cert = cert("certs/app_cert.crt").public_key().expect("RSA key");
    let from_pem = PublicKey::from_pem_or_base64(&read("keys/app_public.pem")).expect("key loads");
    assert_eq!(from_cert.pkcs1_der(), from_pem.pkcs1_der());
}

#[test]
fn spki_of_certificate_is_the_public_key_pem_body() {
    let c = cert("certs/alipay_cert.crt");
    let key = PublicKey::from_der(c.subject_public_key_info_der()).expect("SPKI DER loads");
    assert_eq!(key, c.public_key().expect("RSA key"));
}

#[test]
fn ec_root_public_key_is_refused_without_panicking() {
    let ec = bundle().remove(0);
    assert!(matches!(
        ec.public_key(),
        Err(CertError::PublicKey(KeyError::NotRsa { .. }))
    ));
}

#[test]
fn platform_chain_file_uses_its_first_certificate() {
    // A platform certificate file holding the platform certificate and then its CA.
    let text = format!(
        "{}\n{}",
        read("certs/alipay_cert.crt"),
        read("certs/root_ca.pem")
    );
    let chain = Certificate::all_from_pem(&text).expect("chain loads");
    assert_eq!(chain.len(), 2);
    let platform = cert("certs/alipay_cert.crt");
    assert_eq!(platform_cert(&chain).expect("non-empty"), &platform);
    assert_eq!(
        platform_cert_sn(&chain).expect("non-empty"),
        "7107d7d8dc6fc5ce914a4560bcd5096a"
    );
    // from_pem reads exactly the first block of such a file.
    assert_eq!(Certificate::from_pem(&text).expect("first block"), platform);
    assert_eq!(platform_cert_sn(&[]), Err(CertError::EmptyChain));
    // The whole file verifies against the bundle.
    verify_cert_file(&chain, &bundle(), inside(&platform)).expect("chain file is trusted");
    assert_eq!(
        verify_cert_file(&[], &bundle(), 0),
        Err(ChainError::EmptyChain)
    );
}

#[test]
fn chain_verifies_inside_validity_window() {
    let roots = [root_ca()];
    for file in ["certs/app_cert.crt", "certs/alipay_cert.crt"] {
        let c = cert(file);
        for now in [c.not_before(), inside(&c), c.not_after()] {
            c.verify_chain(&[], &roots, now)
                .unwrap_or_else(|e| panic!("{file} at {now}: {e}"));
            c.verify_chain(&[], &bundle(), now)
                .unwrap_or_else(|e| panic!("{file} against the bundle at {now}: {e}"));
        }
        c.verify_issued_by(&root_ca())
            .expect("signed by the test CA");
    }
}

#[test]
fn chain_fails_before_not_before() {
    let c = cert("certs/app_cert.crt");
    let now = c.not_before() - 1;
    let err = c.verify_chain(&[], &[root_ca()], now).unwrap_err();
    assert_eq!(
        err,
        ChainError::NotYetValid {
            subject: c.subject_name(),
            not_before: c.not_before(),
            now,
        }
    );
    assert!(err.to_string().contains("2026-11-23T18:49:54Z"), "{err}");
}

#[test]
fn chain_fails_after_not_after() {
    let c = cert("certs/alipay_cert.crt");
    let now = c.not_after() + 1;
    let err = c.verify_chain(&[], &[root_ca()], now).unwrap_err();
    assert!(matches!(err, ChainError::Expired { not_after, .. } if not_after == c.not_after()));
    assert!(
        err.to_string().contains("expired at 2036-11-20T18:49:54Z"),
        "{err}"
    );
}

#[test]
fn chain_fails_against_a_root_with_another_name() {
    let c = cert("certs/app_cert.crt");
    let ec_root = bundle().remove(0);
    let err = c.verify_chain(&[], &[ec_root], inside(&c)).unwrap_err();
    assert_eq!(
        err,
        ChainError::IssuerNotFound {
            subject: c.subject_name(),
            issuer: c.issuer_name(),
        }
    );
    assert_eq!(
        c.verify_chain(&[], &[], inside(&c)),
        Err(ChainError::IssuerNotFound {
            subject: c.subject_name(),
            issuer: c.issuer_name(),
        })
    );
    assert!(matches!(
        c.verify_issued_by(&bundle()[0]),
        Err(ChainError::IssuerMismatch { .. })
    ));
}

/// The test CA with its public key replaced by the platform key: same subject,
/// wrong key.
fn root_with_wrong_key() -> Certificate {
    let root = root_ca();
    let wrong_spki = cert("certs/alipay_cert.crt")
        .subject_public_key_info_der()
        .to_vec();
    let spki = root.subject_public_key_info_der();
    assert_eq!(spki.len(), wrong_spki.len(), "both RSA-2048 with e = 65537");
    let der = root.der();
    let at = der
        .windows(spki.len())
        .position(|w| w == spki)
        .expect("SPKI inside the DER");
    let mut forged = der.to_vec();
    forged[at..at + spki.len()].copy_from_slice(&wrong_spki);
    let forged = Certificate::from_der(&forged).expect("still a certificate");
    assert_eq!(forged.subject_name(), root.subject_name());
    forged
}

#[test]
fn chain_fails_against_a_root_with_the_right_name_but_another_key() {
    let c = cert("certs/alipay_cert.crt");
    let wrong = root_with_wrong_key();
    let err = c
        .verify_chain(&[], std::slice::from_ref(&wrong), inside(&c))
        .unwrap_err();
    assert_eq!(
        err,
        ChainError::SignatureInvalid {
            subject: c.subject_name(),
            issuer: wrong.subject_name(),
        }
    );
    assert!(
        err.to_string().contains("signature does not verify"),
        "{err}"
    );
    // With the genuine root also present, the path is found.
    c.verify_chain(&[], &[wrong, root_ca()], inside(&c))
        .expect("second candidate verifies");
}

#[test]
fn flipped_signature_byte_fails() {
    let c = cert("certs/app_cert.crt");
    let mut der = c.der().to_vec();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let tampered = Certificate::from_der(&der).expect("still parses");
    assert_eq!(tampered.sn(), c.sn(), "the SN does not cover the signature");
    assert_eq!(
        tampered.verify_chain(&[], &[root_ca()], inside(&c)),
        Err(ChainError::SignatureInvalid {
            subject: c.subject_name(),
            issuer: root_ca().subject_name(),
        })
    );
}

#[test]
fn flipped_tbs_byte_fails() {
    let c = cert("certs/alipay_cert.crt");
    let mut der = c.der().to_vec();
    // Last byte of the subject's CN value, inside the signed part.
    let cn = b"Test Alipay Public Cert";
    let at = der
        .windows(cn.len())
        .position(|w| w == cn)
        .expect("CN in DER")
        + cn.len()
        - 1;
    der[at] ^= 0x20;
    let tampered = Certificate::from_der(&der).expect("still parses");
    assert!(matches!(
        tampered.verify_chain(&[], &[root_ca()], inside(&c)),
        Err(ChainError::SignatureInvalid { .. })
    ));
}

#[test]
fn path_must_end_at_a_root() {
    let c = cert("certs/alipay_cert.crt");
    // The CA given only as an intermediate: the path stops at an untrusted CA.
    let err = c.verify_chain(&[root_ca()], &[], inside(&c)).unwrap_err();
    assert!(matches!(err, ChainError::IssuerNotFound { .. }), "{err}");
    // A certificate that is itself a root is trusted.
    root_ca()
        .verify_chain(&[], &[root_ca()], inside(&c))
        .expect("root is trusted");
}

#[test]
fn ec_signature_is_an_unsupported_algorithm() {
    let ec = bundle().remove(0);
    assert_eq!(
        ec.verify_issued_by(&ec),
        Err(ChainError::UnsupportedAlgorithm {
            subject: ec.subject_name(),
            oid: "1.2.840.10045.4.3.2".to_string(),
        })
    );
}

#[test]
fn loading_errors() {
    assert_eq!(Certificate::from_pem(""), Err(CertError::NoCertificate));
    assert_eq!(
        Certificate::all_from_pem(&read("keys/alipay_public.pem")),
        Err(CertError::NoCertificate)
    );
    assert_eq!(
        Certificate::from_pem(&read("keys/alipay_public.pem")),
        Err(CertError::NoCertificate)
    );
    let err =
        Certificate::from_pem("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
            .unwrap_err();
    assert!(matches!(err, CertError::Pem { index: 1, .. }), "{err}");
    let err =
        Certificate::from_pem("-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n")
            .unwrap_err();
    assert!(matches!(err, CertError::Malformed { .. }), "{err}");
    assert!(
        err.to_string().starts_with("not a valid X.509 certificate"),
        "{err}"
    );
    assert_eq!(
        Certificate::from_pem("no pem here")
            .unwrap_err()
            .to_string(),
        "no CERTIFICATE block in PEM input"
    );
    let mut trailing = root_ca().der().to_vec();
    trailing.push(0);
    assert!(matches!(
        Certificate::from_der(&trailing),
        Err(CertError::Malformed { .. })
    ));
}

#[test]
fn no_panic_on_truncated_or_corrupted_der() {
    let der = cert("certs/app_cert.crt").der().to_vec();
    for len in 0..der.len() {
        assert!(
            Certificate::from_der(&der[..len]).is_err(),
            "prefix {len} accepted"
        );
    }
    let root = root_ca();
    for i in 0..der.len() {
        for bit in [0x01u8, 0x80] {
            let mut corrupted = der.clone();
            corrupted[i] ^= bit;
            if let Ok(c) = Certificate::from_der(&corrupted) {
                let _ = c.sn();
                let _ = c.public_key();
                let _ = c.verify_chain(&[], std::slice::from_ref(&root), inside(&root));
            }
        }
    }
}

#[test]
fn crlf_and_indented_pem_load() {
    let text = read("certs/app_cert.crt").replace('\n', "\r\n   ");
    assert_eq!(
        Certificate::from_pem(&text).expect("loads"),
        cert("certs/app_cert.crt")
    );
}
