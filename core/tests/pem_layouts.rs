//! One lenient PEM reader for keys and certificates: every layout a hand-edited file or
//! a paste from a web console produces loads, for every kind of key and for
//! certificates, and errors name the fault without echoing key material.
//!
//! Reference: the platform's Java SDK reads keys as bare base64 (`AlipaySignature` →
//! `RSAEncryptor.getPrivateKeyFromPKCS8` decodes the string after removing
//! whitespace) and certificates with `CertificateFactory`, which skips text around the
//! block; indentation is what editors and consoles add.

use alipay_msg_core::cert::Certificate;
use alipay_msg_core::key::{KeyError, PrivateKey, PublicKey};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{TESTDATA}/{path}"))
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// `(name, layout)`: each turns a well-formed PEM file into another layout.
#[allow(clippy::type_complexity)]
fn layouts() -> Vec<(&'static str, Box<dyn Fn(&str) -> String>)> {
    fn map_lines(pem: &str, f: impl Fn(usize, &str) -> String, sep: &str) -> String {
        let mut out = String::new();
        for (i, line) in pem.lines().enumerate() {
            out.push_str(&f(i, line));
            out.push_str(sep);
        }
        out
    }
    let is_header = |l: &str| l.starts_with("-----");
    vec![
        ("as written", Box::new(|p: &str| p.to_owned())),
        (
            "CRLF",
            Box::new(|p: &str| map_lines(p, |_, l| l.to_owned(), "\r\n")),
        ),
        (
            "every line indented",
            Box::new(|p: &str| map_lines(p, |_, l| format!("    {l}"), "\n")),
        ),
        (
            "every line tab-indented",
            Box::new(|p: &str| map_lines(p, |_, l| format!("\t{l}"), "\n")),
        ),
        (
            "only the body indented",
            Box::new(move |p: &str| {
                map_lines(
                    p,
                    |_, l| {
                        if is_header(l) {
                            l.to_owned()
                        } else {
                            format!("  {l}")
                        }
                    },
                    "\n",
                )
            }),
        ),
        (
            "only the END line indented",
            Box::new(|p: &str| {
                map_lines(
                    p,
                    |_, l| {
                        if l.starts_with("-----END") {
                            format!("  {l}")
                        } else {
                            l.to_owned()
                        }
                    },
                    "\n",
                )
            }),
        ),
        (
            "trailing whitespace",
            Box::new(|p: &str| map_lines(p, |_, l| format!("{l} \t "), "\n")),
        ),
        (
            "blank lines",
            Box::new(|p: &str| {
                format!(
                    "\n\n{}",
                    map_lines(
                        p,
                        |i, l| if i == 2 {
                            format!("\n  \n{l}")
                        } else {
                            l.to_owned()
                        },
                        "\n\n"
                    )
                )
            }),
        ),
        (
            "no final newline",
            Box::new(|p: &str| p.trim_end().to_owned()),
        ),
        (
            "indented CRLF without final newline",
            Box::new(|p: &str| {
                map_lines(p, |_, l| format!("  {l}  "), "\r\n")
                    .trim_end_matches("\r\n")
                    .to_owned()
            }),
        ),
        (
            "surrounded by text and whitespace",
            Box::new(|p: &str| {
                format!(
                    "  \r\n{}\r\n   \n",
                    map_lines(p, |_, l| format!(" {l}"), "\r\n")
                )
            }),
        ),
    ]
}

#[test]
fn every_layout_loads_every_kind() {
    let private_pkcs1 = read("vectors/keys/app_private_pkcs1.pem");
    let private_pkcs8 = read("vectors/keys/app_private_pkcs8.pem");
    let public_spki = read("vectors/keys/app_public.pem");
    let public_pkcs1 = read("keys/app_public_pkcs1.pem");
    let cert = read("vectors/certs/app_cert.crt");
    let bundle = read("vectors/certs/root_bundle_simple.crt");

    let private = PrivateKey::from_pem_or_base64(&private_pkcs1).unwrap();
    let public = PublicKey::from_pem_or_base64(&public_spki).unwrap();
    let certificate = Certificate::from_pem(&cert).unwrap();
    let certificates = Certificate::all_from_pem(&bundle).unwrap();
    assert!(
        certificates.len() > 1,
        "the bundle has several certificates"
    );

    let mut failures = Vec::new();
    for (name, layout) in layouts() {
        let mut check = |kind: &str, ok: bool, detail: String| {
            if !ok {
                failures.push(format!("{kind} / {name}: {detail}"));
            }
        };
        for (kind, pem) in [
            ("private PKCS#1", &private_pkcs1),
            ("private PKCS#8", &private_pkcs8),
        ] {
            match PrivateKey::from_pem_or_base64(&layout(pem)) {
                Ok(k) => check(
                    kind,
                    k.public_key() == private.public_key(),
                    "other key".into(),
                ),
                Err(e) => check(kind, false, e.to_string()),
            }
        }
        for (kind, pem) in [
            ("public SPKI", &public_spki),
            ("public PKCS#1", &public_pkcs1),
        ] {
            match PublicKey::from_pem_or_base64(&layout(pem)) {
                Ok(k) => check(kind, k == public, "other key".into()),
                Err(e) => check(kind, false, e.to_string()),
            }
        }
        match Certificate::from_pem(&layout(&cert)) {
            Ok(c) => check("certificate", c == certificate, "other certificate".into()),
            Err(e) => check("certificate", false, e.to_string()),
        }
        match Certificate::all_from_pem(&layout(&bundle)) {
            Ok(c) => check(
                "certificate bundle",
                c == certificates,
                "other certificates".into(),
            ),
            Err(e) => check("certificate bundle", false, e.to_string()),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn bare_base64_still_loads_in_any_layout() {
    let pem = read("vectors/keys/app_private_pkcs8.pem");
    let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    for text in [
        body.concat(),
        body.join("\n"),
        body.join("\r\n  "),
        format!("  {}  ", body.concat()),
    ] {
        PrivateKey::from_pem_or_base64(&text).unwrap();
    }
}

#[test]
fn errors_name_the_fault_without_key_material() {
    let pem = read("vectors/keys/app_public.pem");
    let secret_line = pem.lines().nth(2).unwrap().trim().to_owned();

    let unterminated: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----END"))
        .collect::<Vec<_>>()
        .join("\n");
    let e = PublicKey::from_pem_or_base64(&unterminated).unwrap_err();
    assert!(matches!(e, KeyError::Pem { .. }), "{e:?}");
    assert!(e.to_string().contains("-----END PUBLIC KEY-----"), "{e}");

    let bad = pem.replace(
        &secret_line,
        &format!("{}*{}", &secret_line[..10], &secret_line[11..]),
    );
    let e = PublicKey::from_pem_or_base64(&bad).unwrap_err();
    assert!(matches!(e, KeyError::Pem { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("base64"), "{text}");
    assert!(
        !text.contains(&secret_line[..10]) && !text.contains(&secret_line[11..20]),
        "{text}"
    );

    let wrong_end = pem.replace("-----END PUBLIC KEY-----", "-----END PRIVATE KEY-----");
    let e = PublicKey::from_pem_or_base64(&wrong_end).unwrap_err();
    assert!(e.to_string().contains("END PRIVATE KEY"), "{e}");

    let e = Certificate::from_pem("-----BEGIN CERTIFICATE-----\nAQ*D\n-----END CERTIFICATE-----\n")
        .unwrap_err();
    assert!(
        e.to_string().contains("base64") && !e.to_string().contains("AQ"),
        "{e}"
    );
}
