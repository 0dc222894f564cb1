//! Errors of certificate mode (PROTOCOL §9). Certificates are public documents, so
//! errors may name subjects, issuers and times; they never carry key material.

use crate::key::KeyError;

/// Why a certificate (or a certificate file) could not be loaded or used
/// (PROTOCOL §9).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The text holds no `-----BEGIN CERTIFICATE-----` block at all.
    #[error("no CERTIFICATE block in PEM input")]
    NoCertificate,
    /// A CERTIFICATE block is present but cannot be read (unterminated block, bad base64).
    #[error("malformed PEM CERTIFICATE block #{index}: {reason}")]
    Pem {
        /// 1-based position of the block among the CERTIFICATE blocks of the input.
        index: usize,
        /// What was wrong.
        reason: String,
    },
    /// The bytes are not a DER X.509 certificate this library can read.
    #[error("not a valid X.509 certificate: {reason}")]
    Malformed {
        /// What the parser complained about.
        reason: String,
    },
    /// The certificate's public key cannot be loaded as an RSA public key.
    #[error("the certificate's public key cannot be used: {0}")]
    PublicKey(#[from] KeyError),
    /// An empty list was given where a certificate file's certificates were expected.
    #[error("no certificate given: the certificate list is empty")]
    EmptyChain,
    /// A root bundle without a single RSA-signed certificate: its root cert SN would be
    /// empty (the platform SDK rejects such a bundle as invalid too).
    #[error("the root certificate bundle holds no RSA-signed certificate (signature algorithm 1.2.840.113549.1.1.*); {count} certificate(s) were skipped")]
    NoRsaRoot {
        /// How many (non-RSA) certificates the bundle holds.
        count: usize,
    },
}

/// Why a certificate chain does not verify (PROTOCOL §9).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The certificate's validity starts after the given time.
    #[error("certificate {subject} is not yet valid: valid from {} (unix {not_before}), checked at {} (unix {now})", super::time::format_utc(*.not_before), super::time::format_utc(*.now))]
    NotYetValid {
        /// Subject of the certificate (RFC 2253).
        subject: String,
        /// Start of validity, unix seconds.
        not_before: i64,
        /// The time checked, unix seconds.
        now: i64,
    },
    /// The certificate's validity ended before the given time.
    #[error("certificate {subject} expired at {} (unix {not_after}), checked at {} (unix {now})", super::time::format_utc(*.not_after), super::time::format_utc(*.now))]
    Expired {
        /// Subject of the certificate (RFC 2253).
        subject: String,
        /// End of validity, unix seconds.
        not_after: i64,
        /// The time checked, unix seconds.
        now: i64,
    },
    /// The would-be issuer's subject is not the certificate's issuer name.
    #[error("issuer {issuer} of certificate {subject} does not match subject {candidate} of the would-be issuer certificate")]
    IssuerMismatch {
        /// Subject of the certificate being checked.
        subject: String,
        /// Issuer name in the certificate being checked.
        issuer: String,
        /// Subject of the certificate offered as its issuer.
        candidate: String,
    },
    /// No intermediate and no root has the certificate's issuer as its subject.
    #[error("no trusted root or intermediate certificate has subject {issuer}, the issuer of certificate {subject}")]
    IssuerNotFound {
        /// Subject of the certificate whose issuer is missing.
        subject: String,
        /// The missing issuer name.
        issuer: String,
    },
    /// The certificate is signed with an algorithm other than RSA PKCS#1 v1.5 with
    /// SHA-1/SHA-256/SHA-384/SHA-512 (e.g. ECDSA, SM2, RSASSA-PSS, MD5withRSA).
    #[error("certificate {subject} is signed with unsupported algorithm {oid}; only RSA PKCS#1 v1.5 with SHA-1/SHA-256/SHA-384/SHA-512 is supported")]
    UnsupportedAlgorithm {
        /// Subject of the certificate.
        subject: String,
        /// The signature algorithm OID.
        oid: String,
    },
    /// The signature algorithm inside the signed part differs from the outer one.
    #[error("certificate {subject} names signature algorithm {outer} outside but {inner} in its signed part")]
    AlgorithmMismatch {
        /// Subject of the certificate.
        subject: String,
        /// `Certificate.signatureAlgorithm`.
        outer: String,
        /// `TBSCertificate.signature`.
        inner: String,
    },
    /// The issuer's public key cannot check the signature (e.g. not an RSA key).
    #[error("the public key of issuer certificate {issuer} cannot be used: {source}")]
    IssuerKey {
        /// Subject of the issuer certificate.
        issuer: String,
        /// Why the key was refused.
        source: KeyError,
    },
    /// The crypto backend refused the issuer's key or the operation.
    #[error("the crypto backend cannot check the signature of {subject}: {reason}")]
    Crypto {
        /// Subject of the certificate being checked.
        subject: String,
        /// The backend's reason.
        reason: String,
    },
    /// The signature does not verify with the issuer's public key.
    #[error(
        "signature does not verify: certificate {subject} was not signed by the key of {issuer}"
    )]
    SignatureInvalid {
        /// Subject of the certificate being checked.
        subject: String,
        /// Subject of the issuer certificate whose key was tried.
        issuer: String,
    },
    /// There is no certificate to verify.
    #[error("no certificate to verify: the chain is empty")]
    EmptyChain,
    /// The path would need more certificates than were given (a loop among the
    /// intermediates).
    #[error("certificate path longer than {max} certificates (loop among the intermediates?)")]
    PathTooLong {
        /// The limit that was hit.
        max: usize,
    },
}
