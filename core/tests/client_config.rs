//! Start-up errors of the client: every misconfiguration is reported before the first
//! connection, with a message that names it.

use std::time::{Duration, Instant};

use alipay_msg_core::client::{
    ClientConfig, ClientSession, ConfigError, Credentials, Input, Output, Transmit,
};
use alipay_msg_core::key::KeyError;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{rel}")).unwrap()
}

fn public_key_mode() -> Credentials {
    Credentials::public_key(
        &read("keys/app_private_pkcs8.pem"),
        &read("keys/alipay_public.pem"),
    )
    .unwrap()
}

fn start(config: ClientConfig) -> Result<ClientSession, ConfigError> {
    ClientSession::new(config, [1; 32], Instant::now(), 1_795_430_400_000)
}

#[test]
fn wrong_key_formats_are_named() {
    let err = Credentials::public_key(&read("certs/app_cert.crt"), &read("keys/alipay_public.pem"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "app private key: expected a private key, got a certificate"
    );
    let err = Credentials::public_key(
        &read("keys/app_private_pkcs1.pem"),
        &read("keys/app_private_pkcs1.pem"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "platform public key: expected a public key, got a private key"
    );
    let err = Credentials::public_key("not a key", &read("keys/alipay_public.pem")).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Key {
                source: KeyError::NotBase64,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn key_and_certificate_mismatch() {
    // The platform key is not the key of the app certificate.
    let err = Credentials::certificate(
        &read("keys/alipay_private_pkcs1.pem"),
        &read("certs/app_cert.crt"),
        &read("certs/alipay_cert.crt"),
        &read("certs/root_bundle_simple.crt"),
    )
    .unwrap_err();
    assert!(
        matches!(err, ConfigError::KeyCertificateMismatch(_)),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("the app private key and the app certificate are not a key pair"),
        "{err}"
    );

    let ok = Credentials::certificate(
        &read("keys/app_private_pkcs1.pem"),
        &read("certs/app_cert.crt"),
        &read("certs/alipay_cert.crt"),
        &read("certs/root_bundle_simple.crt"),
    )
    .unwrap();
    start(ClientConfig::new("2021000000000001", ok)).unwrap();

    let err = Credentials::certificate(
        &read("keys/app_private_pkcs1.pem"),
        &read("keys/app_public.pem"),
        &read("certs/alipay_cert.crt"),
        &read("certs/root_bundle_simple.crt"),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("app certificate: no CERTIFICATE block"),
        "{err}"
    );
}

#[test]
fn bad_app_ids() {
    for (app_id, needle) in [
        ("", "empty"),
        ("abc", "decimal number"),
        ("2021 0001", "decimal number"),
        (&"1".repeat(33)[..], "longer"),
    ] {
        let err = start(ClientConfig::new(app_id, public_key_mode())).unwrap_err();
        assert!(matches!(err, ConfigError::InvalidAppId { .. }), "{err}");
        assert!(err.to_string().contains(needle), "{err}");
    }
}

#[test]
fn bad_tunables() {
    let mut config = ClientConfig::new("2021000000000001", public_key_mode());
    config.dead_after = config.heartbeat_interval;
    let err = start(config).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid setting dead_after: must be longer than heartbeat_interval"
    );
    let mut config = ClientConfig::new("2021000000000001", public_key_mode());
    config.max_in_flight = 0;
    assert!(matches!(
        start(config).unwrap_err(),
        ConfigError::InvalidSetting {
            name: "max_in_flight",
            ..
        }
    ));
    let mut config = ClientConfig::new("2021000000000001", public_key_mode());
    config.check_parallelism = ClientConfig::MAX_CHECK_PARALLELISM + 1;
    assert_eq!(
        start(config).unwrap_err().to_string(),
        "invalid setting check_parallelism: must be at most 64"
    );
    // A duration that would overflow a deadline (`Duration::MAX` meant as "for ever")
    // is refused at start-up instead of panicking later.
    let mut config = ClientConfig::new("2021000000000001", public_key_mode());
    config.first_connect_timeout = Some(std::time::Duration::MAX);
    assert!(matches!(
        start(config).unwrap_err(),
        ConfigError::InvalidSetting {
            name: "first_connect_timeout",
            ..
        }
    ));
    let mut config = ClientConfig::new("2021000000000001", public_key_mode());
    config.shutdown_timeout = ClientConfig::MAX_DURATION + std::time::Duration::from_secs(1);
    assert!(start(config)
        .unwrap_err()
        .to_string()
        .contains("shutdown_timeout: must be at most 365 days"));
}

#[test]
fn check_parallelism_follows_the_workers_up_to_four() {
    let mut config = ClientConfig::new("2021000000000001", public_key_mode());
    assert_eq!(config.check_parallelism, 0, "automatic by default");
    for (workers, lanes) in [(0, 1), (1, 1), (2, 2), (3, 3), (4, 4), (64, 4)] {
        assert_eq!(
            config.check_parallelism_for(workers),
            lanes,
            "{workers} workers"
        );
    }
    config.check_parallelism = 1;
    assert_eq!(config.check_parallelism_for(8), 1, "checked where read");
    config.check_parallelism = 6;
    assert_eq!(config.check_parallelism_for(2), 6, "as many as asked");
}

#[test]
fn first_output_is_the_register_request() {
    let mut session = start(ClientConfig::new("2021000000000001", public_key_mode())).unwrap();
    let mut saw_request = false;
    loop {
        match session.poll_output() {
            Output::Transmit(Transmit::Connect {
                conn,
                host,
                port,
                tls,
            }) => {
                assert_eq!(
                    (host.as_str(), port, tls),
                    ("openchannel.alipay.com", 443, true)
                );
                session.handle_input(Input::Connected(conn), Instant::now());
            }
            Output::Transmit(Transmit::Write { bytes, .. }) => {
                let text = String::from_utf8(bytes).unwrap();
                assert!(text.starts_with("GET /websocket/register.do?app_id=2021000000000001&charset=UTF-8&sign_type=RSA2&timestamp=1795430400000&sdk_version=alipay-msg-rust-"), "{text}");
                assert!(
                    text.contains("&nonce=") && text.contains("&sign="),
                    "{text}"
                );
                saw_request = true;
            }
            Output::Timeout(at) => {
                assert!(
                    at > Instant::now() + Duration::from_secs(9),
                    "the connect timeout is armed"
                );
                break;
            }
            Output::Event(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_request);
}
