//! Why a connection could not be opened, as the adapter that opened it tells the
//! session ([`super::Input::ConnectFailed`]): the network, the platform's TLS
//! certificate (by problem, so that a user reads "not trusted" or "expired" instead of
//! an I/O error), another TLS failure, or the HTTP proxy. The core opens no connection
//! and has no TLS: adapters map their TLS library's errors onto these
//! (`alipay-msg-network`'s `connect_error` for rustls).

use std::fmt;
use std::io;

use crate::proxy::ProxyError;

/// Why opening a connection failed. `From<io::ErrorKind>` for plain network failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// Resolving the host, the TCP connect, or reading/writing during the handshake
    /// failed (`ConnectionRefused`, `TimedOut`, …).
    #[error("network error: {}", io::Error::from(*.0))]
    Network(io::ErrorKind),
    /// The platform's (or a TLS-intercepting proxy's) certificate was refused by the
    /// client's TLS configuration (RFC 5280 path validation, RFC 6125 name check).
    #[error("the server's TLS certificate was refused: {0}")]
    Certificate(CertificateProblem),
    /// The TLS handshake failed for another reason (an alert from the server, no
    /// common protocol version or cipher suite); the TLS library's description.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The HTTP proxy did not open the tunnel (RFC 9110 §9.3.6).
    #[error("{0}")]
    Proxy(ProxyError),
}

impl From<io::ErrorKind> for ConnectError {
    fn from(kind: io::ErrorKind) -> Self {
        ConnectError::Network(kind)
    }
}

/// What is wrong with a server certificate, in the terms of RFC 5280 and RFC 6125 (and
/// of rustls' `CertificateError`, which these follow).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertificateProblem {
    /// No chain to a trusted root: issued by a CA the client does not trust (a
    /// corporate proxy's CA, a test CA, a missing intermediate).
    UnknownIssuer,
    /// Past its `notAfter` (or the client's clock is ahead).
    Expired,
    /// Before its `notBefore` (or the client's clock is behind).
    NotValidYet,
    /// Valid, but not for the host name connected to.
    NotValidForName,
    /// Revoked by its issuer.
    Revoked,
    /// A signature in the chain does not verify.
    BadSignature,
    /// Anything else, as the TLS library describes it.
    Other(String),
}

impl fmt::Display for CertificateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertificateProblem::UnknownIssuer => {
                f.write_str("issued by a CA this client does not trust (UnknownIssuer)")
            }
            CertificateProblem::Expired => f.write_str("expired (Expired)"),
            CertificateProblem::NotValidYet => f.write_str("not valid yet (NotValidYet)"),
            CertificateProblem::NotValidForName => {
                f.write_str("not valid for the host name (NotValidForName)")
            }
            CertificateProblem::Revoked => f.write_str("revoked (Revoked)"),
            CertificateProblem::BadSignature => f.write_str("bad signature (BadSignature)"),
            CertificateProblem::Other(what) => f.write_str(what),
        }
    }
}

impl CertificateProblem {
    /// A stable snake_case name (`"unknown_issuer"`, …, `"other"`) for logs and JSON.
    pub fn name(&self) -> &'static str {
        match self {
            CertificateProblem::UnknownIssuer => "unknown_issuer",
            CertificateProblem::Expired => "expired",
            CertificateProblem::NotValidYet => "not_valid_yet",
            CertificateProblem::NotValidForName => "not_valid_for_name",
            CertificateProblem::Revoked => "revoked",
            CertificateProblem::BadSignature => "bad_signature",
            CertificateProblem::Other(_) => "other",
        }
    }
}
