//! How a client reaches the platform: the TLS configuration and the proxy
//! ([`Network`]), shared by every client crate (`alipay-msg-tokio`,
//! `alipay-msg-async-std`, `alipay-msg-blocking`, each re-exporting it as `network`);
//! the core has no TLS (DESIGN: the adapter opens TCP + TLS, through an HTTP CONNECT
//! proxy when configured). Runtime-neutral: no sockets here, only the configuration
//! each client's connect code uses.
//!
//! ```no_run
//! # use std::sync::Arc;
//! use alipay_msg_network::{Network, Proxy};
//! # fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // Through a corporate proxy, trusting an extra CA besides the webpki roots.
//! let mut roots = alipay_msg_network::webpki_roots();
//! for cert in alipay_msg_network::read_pem_certificates("corp-ca.pem".as_ref())? {
//!     roots.add(cert)?;
//! }
//! let network = Network::default()
//!     .tls(alipay_msg_network::tls_config(roots))
//!     .proxy(Proxy::http("http://proxy.corp:3128")?);
//! # Ok(()) }
//! ```

use std::io;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// The rustls this crate builds its configurations with: name TLS types through it so
/// that they match [`Network::tls`]'s version.
pub use rustls;

pub use alipay_msg_core::client::{CertificateProblem, ConnectError};
pub use alipay_msg_core::proxy::ProxyRules;
pub use alipay_msg_core::proxy::{NoProxy, Proxy, ProxyError, ProxyServer};
use rustls::pki_types::CertificateDer;

use alipay_msg_core::client::ClientError;

/// The network options of a client: which TLS configuration it connects with and
/// which proxy it goes through. The default — webpki roots, the proxy from the
/// environment ([`Proxy::FromEnv`]) — suits the platform's public endpoints.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Network {
    /// The rustls configuration for `https` endpoints (`None`: [`default_tls_config`]).
    /// Its crypto provider and roots are the caller's; the server name is the
    /// endpoint's host.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The HTTP CONNECT proxy, for `register.do` and the websocket alike.
    pub proxy: Proxy,
}

impl Network {
    /// Connects with this rustls configuration.
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Goes through this proxy ([`Proxy::None`]: directly, whatever the environment).
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = proxy;
        self
    }

    /// The connector for a client: the configuration chosen, the proxy environment
    /// read (once, when the client starts). [`ClientError::Io`] when a proxy variable
    /// of the environment is not a proxy URL.
    pub fn connector(&self) -> Result<Arc<Connector>, ClientError> {
        let proxy = self
            .proxy
            .resolve(|name| std::env::var(name).ok())
            .map_err(|e| ClientError::Io(format!("proxy: {e}")))?;
        Ok(Arc::new(Connector {
            tls: self.tls.clone().unwrap_or_else(default_tls_config),
            proxy,
        }))
    }
}

/// What each connection of a client opens with ([`Network`], resolved).
#[derive(Debug)]
pub struct Connector {
    /// The rustls configuration for `https` endpoints.
    pub tls: Arc<rustls::ClientConfig>,
    /// Which hosts go through which proxy.
    pub proxy: ProxyRules,
}

impl Default for Connector {
    fn default() -> Self {
        Connector {
            tls: default_tls_config(),
            proxy: ProxyRules::default(),
        }
    }
}

/// The default TLS configuration: rustls with the ring provider, TLS 1.2 and 1.3, the
/// Mozilla roots of `webpki-roots`, no client certificate. Built once per process.
pub fn default_tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| tls_config(webpki_roots())).clone()
}

/// The Mozilla roots of `webpki-roots`: [`default_tls_config`]'s trust, to add to.
pub fn webpki_roots() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// A TLS configuration trusting exactly `roots`: ring provider, TLS 1.2 and 1.3, no
/// client certificate.
pub fn tls_config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // The ring provider supports every safe default protocol version.
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A TLS configuration that verifies with the operating system (feature
/// `native-roots`, `rustls-platform-verifier`: the trust settings of macOS, Windows and
/// Android, and on Linux the system's CA bundle), trusting `extra_roots` as well;
/// ring provider.
#[cfg(feature = "native-roots")]
pub fn platform_tls_config(
    extra_roots: Vec<CertificateDer<'static>>,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = if extra_roots.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone())?
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())?
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The certificates of a PEM file (`-----BEGIN CERTIFICATE-----` blocks; other blocks
/// are skipped). An `InvalidData` error when it has none.
pub fn read_pem_certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let invalid = |e: rustls::pki_types::pem::Error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(invalid)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    if certs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// Logs why a connection could not be opened: a TLS failure (an untrusted or
/// mismatched certificate: rustls' error, e.g. `invalid peer certificate:
/// UnknownIssuer`) and a proxy's refusal at `warn` — the session learns only the
/// [`io::ErrorKind`] (`InvalidData` for TLS) — anything else at `debug`.
pub fn log_connect_failure(conn: impl std::fmt::Display, host: &str, port: u16, error: &io::Error) {
    match connect_failure(error) {
        Some(what) => tracing::warn!(%conn, %host, port, %error, "{what}"),
        None => tracing::debug!(%conn, %host, port, %error, "connect failed"),
    }
}

/// The typed cause of a failed connect for the session ([`Input::ConnectFailed`]):
/// rustls' certificate errors by problem (`UnknownIssuer`, `Expired`, …), other TLS
/// failures by rustls' description, a proxy's refusal, or the I/O error's kind.
///
/// [`Input::ConnectFailed`]: alipay_msg_core::client::Input::ConnectFailed
pub fn connect_error(error: &io::Error) -> ConnectError {
    let Some(inner) = error.get_ref() else {
        return error.kind().into();
    };
    if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
        match tls {
            rustls::Error::InvalidCertificate(problem) => {
                ConnectError::Certificate(certificate_problem(problem))
            }
            other => ConnectError::Tls(other.to_string()),
        }
    } else if let Some(proxy) = inner.downcast_ref::<ProxyError>() {
        ConnectError::Proxy(proxy.clone())
    } else {
        error.kind().into()
    }
}

/// rustls' certificate error as the core names it.
fn certificate_problem(error: &rustls::CertificateError) -> CertificateProblem {
    use rustls::CertificateError as E;
    match error {
        E::UnknownIssuer => CertificateProblem::UnknownIssuer,
        E::Expired | E::ExpiredContext { .. } => CertificateProblem::Expired,
        E::NotValidYet | E::NotValidYetContext { .. } => CertificateProblem::NotValidYet,
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            CertificateProblem::NotValidForName
        }
        E::Revoked => CertificateProblem::Revoked,
        E::BadSignature => CertificateProblem::BadSignature,
        other => CertificateProblem::Other(format!("{other:?}")),
    }
}

/// What kind of failure `error` is, when it is one the user must see (a TLS failure, a
/// proxy's refusal); `None` for the rest.
pub fn connect_failure(error: &io::Error) -> Option<&'static str> {
    let inner = error.get_ref()?;
    if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
        Some(match tls {
            rustls::Error::InvalidCertificate(_) => "TLS: the server's certificate is not trusted",
            _ => "TLS handshake failed",
        })
    } else if inner.downcast_ref::<ProxyError>().is_some() {
        Some("the proxy did not open a tunnel")
    } else {
        None
    }
}

#[cfg(test)]
mod connect_error_tests {
    use super::*;

    fn tls(error: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, error)
    }

    #[test]
    fn certificate_errors_are_named_by_problem() {
        use rustls::CertificateError as E;
        for (error, problem) in [
            (E::UnknownIssuer, CertificateProblem::UnknownIssuer),
            (E::Expired, CertificateProblem::Expired),
            (E::NotValidForName, CertificateProblem::NotValidForName),
            (E::BadSignature, CertificateProblem::BadSignature),
        ] {
            let error = tls(rustls::Error::InvalidCertificate(error));
            assert_eq!(connect_error(&error), ConnectError::Certificate(problem));
        }
        let alert = tls(rustls::Error::AlertReceived(
            rustls::AlertDescription::HandshakeFailure,
        ));
        assert!(matches!(connect_error(&alert), ConnectError::Tls(_)));
    }

    #[test]
    fn proxy_refusals_and_plain_failures_keep_their_kind() {
        let refused = ProxyError::Refused {
            status: 407,
            reason: "Proxy Authentication Required".into(),
        };
        let error = io::Error::new(io::ErrorKind::ConnectionRefused, refused.clone());
        assert_eq!(connect_error(&error), ConnectError::Proxy(refused));
        let plain = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(
            connect_error(&plain),
            ConnectError::Network(io::ErrorKind::ConnectionRefused)
        );
    }
}
