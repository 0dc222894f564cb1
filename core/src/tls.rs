//! The TLS client configuration every adapter uses (feature `tls`): rustls with the
//! `ring` provider and the Mozilla roots from `webpki-roots`, built in one place so the
//! three runtimes connect to the platform identically.

use std::sync::{Arc, OnceLock};

/// A shared rustls client configuration: TLS 1.2 and 1.3, webpki roots, no client
/// certificate. Built once per process.
pub fn client_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                // The ring provider supports every safe default protocol version.
                .expect("ring supports TLS 1.2 and 1.3")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    #[test]
    fn builds_once() {
        let a = super::client_config();
        let b = super::client_config();
        assert!(std::sync::Arc::ptr_eq(&a, &b));
    }
}
