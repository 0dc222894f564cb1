//! Certificate chain verification (PROTOCOL §9).
//!
//! Used to decide whether a platform public-key certificate (possibly a new one
//! fetched at run time) is trusted: it must chain up to a certificate of the root
//! bundle. Signatures are checked through the crate's crypto seam
//! ([`crate::signature::Verifier::verify_raw`]), never by the X.509 parser.
//!
//! The platform SDK's `AntCertificationUtil.isTrusted` (alipay-sdk-java-all,
//! `src/main/java/com/alipay/api/internal/util/AntCertificationUtil.java`) checks, for
//! each certificate of the chain file: validity at the current time, an issuer whose
//! subject equals its issuer name, and the signature with that issuer's key; the top
//! of the chain must be issued by a root of the bundle. The checks here are the same,
//! with the time passed in. Like the SDK, no extension (basic constraints, key usage)
//! is interpreted; unlike the SDK, intermediates that are not on the path are
//! ignored rather than rejected, and the root's own validity is checked too.

use super::{Certificate, ChainError};
use crate::crypto::HashAlg;
use crate::key::PublicKey;
use crate::signature::{SignatureError, Verifier};

/// The RSA PKCS#1 v1.5 signature algorithms the crypto seam can check, by OID.
const RSA_SIGNATURE_ALGORITHMS: &[(&str, HashAlg)] = &[
    ("1.2.840.113549.1.1.5", HashAlg::Sha1), // sha1WithRSAEncryption
    ("1.3.14.3.2.29", HashAlg::Sha1),        // sha1WithRSASignature (OIW)
    ("1.2.840.113549.1.1.11", HashAlg::Sha256), // sha256WithRSAEncryption
    ("1.2.840.113549.1.1.12", HashAlg::Sha384), // sha384WithRSAEncryption
    ("1.2.840.113549.1.1.13", HashAlg::Sha512), // sha512WithRSAEncryption
];

/// The digest of an RSA PKCS#1 v1.5 signature algorithm OID, `None` for anything else.
fn rsa_hash(oid: &str) -> Option<HashAlg> {
    RSA_SIGNATURE_ALGORITHMS
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, h)| *h)
}

impl Certificate {
    /// Whether `issuer`'s subject is this certificate's issuer name: identical DER, or
    /// the same RFC 2253 text ignoring ASCII case (the JDK compares names in a
    /// canonical, case-folded form).
    fn names_issuer(&self, issuer: &Certificate) -> bool {
        self.issuer_der() == issuer.subject_der()
            || self
                .issuer_name_ref()
                .eq_ignore_ascii_case(issuer.subject_name_ref())
    }

    /// Checks that `issuer` issued this certificate: its subject matches this
    /// certificate's issuer name and its public key verifies this certificate's
    /// signature over the `TBSCertificate` (PROTOCOL §9). Validity times are not
    /// checked here.
    ///
    /// Errors: [`ChainError::IssuerMismatch`], [`ChainError::AlgorithmMismatch`]
    /// (inner and outer signature algorithms differ),
    /// [`ChainError::UnsupportedAlgorithm`] (anything but RSA PKCS#1 v1.5 with SHA-1 /
    /// SHA-256 / SHA-384 / SHA-512), [`ChainError::IssuerKey`] (issuer key not RSA),
    /// [`ChainError::Crypto`], [`ChainError::SignatureInvalid`].
    pub fn verify_issued_by(&self, issuer: &Certificate) -> Result<(), ChainError> {
        if !self.names_issuer(issuer) {
            return Err(ChainError::IssuerMismatch {
                subject: self.subject_name(),
                issuer: self.issuer_name(),
                candidate: issuer.subject_name(),
            });
        }
        if self.signature_algorithm_oid() != self.tbs_signature_oid() {
            return Err(ChainError::AlgorithmMismatch {
                subject: self.subject_name(),
                outer: self.signature_algorithm_oid().to_string(),
                inner: self.tbs_signature_oid().to_string(),
            });
        }
        let hash = rsa_hash(self.signature_algorithm_oid()).ok_or_else(|| {
            ChainError::UnsupportedAlgorithm {
                subject: self.subject_name(),
                oid: self.signature_algorithm_oid().to_string(),
            }
        })?;
        let key =
            PublicKey::from_spki_der(issuer.subject_public_key_info_der()).map_err(|source| {
                ChainError::IssuerKey {
                    issuer: issuer.subject_name(),
                    source,
                }
            })?;
        let crypto = |e: SignatureError| ChainError::Crypto {
            subject: self.subject_name(),
            reason: e.to_string(),
        };
        let verifier = Verifier::new(&key).map_err(crypto)?;
        match verifier.verify_raw(hash, self.tbs_der(), self.signature_value()) {
            Ok(()) => Ok(()),
            Err(SignatureError::Mismatch) => Err(ChainError::SignatureInvalid {
                subject: self.subject_name(),
                issuer: issuer.subject_name(),
            }),
            Err(e) => Err(crypto(e)),
        }
    }

    /// Verifies that this certificate chains up to one of `roots` at time `now_unix`
    /// (unix seconds; the clock is never read) (PROTOCOL §9).
    ///
    /// Path: this certificate, then zero or more of `intermediates` (any order), then a
    /// root. Each step needs the parent's subject to equal the child's issuer name and
    /// the child's signature to verify with the parent's key
    /// ([`Certificate::verify_issued_by`]); every certificate on the path, the root
    /// included, must be valid at `now_unix`. A certificate that is itself one of the
    /// roots (same DER) only needs to be valid. At each step roots are tried before
    /// intermediates, and among certificates sharing the wanted name the first that
    /// verifies (and is valid) is taken; there is no backtracking past it.
    ///
    /// For a platform certificate file holding a chain, pass the first certificate as
    /// `self` and the rest as `intermediates` (see [`super::platform_cert`]).
    ///
    /// Errors: the first problem met — [`ChainError::NotYetValid`] /
    /// [`ChainError::Expired`], [`ChainError::IssuerNotFound`] when no candidate has
    /// the right name, a candidate's [`Certificate::verify_issued_by`] error, or
    /// [`ChainError::PathTooLong`] when the intermediates loop.
    pub fn verify_chain(
        &self,
        intermediates: &[Certificate],
        roots: &[Certificate],
        now_unix: i64,
    ) -> Result<(), ChainError> {
        self.check_validity(now_unix)?;
        if roots.iter().any(|root| root.der() == self.der()) {
            return Ok(());
        }
        let max = intermediates.len() + 1;
        let mut current = self;
        for _ in 0..max {
            let mut first_error: Option<ChainError> = None;
            for root in roots.iter().filter(|r| current.names_issuer(r)) {
                let step = current
                    .verify_issued_by(root)
                    .and_then(|()| root.check_validity(now_unix));
                match step {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            let mut next = None;
            for candidate in intermediates
                .iter()
                .filter(|c| c.der() != current.der() && current.names_issuer(c))
            {
                let step = current
                    .verify_issued_by(candidate)
                    .and_then(|()| candidate.check_validity(now_unix));
                match step {
                    Ok(()) => {
                        next = Some(candidate);
                        break;
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            match next {
                Some(parent) => current = parent,
                None => {
                    return Err(first_error.unwrap_or_else(|| ChainError::IssuerNotFound {
                        subject: current.subject_name(),
                        issuer: current.issuer_name(),
                    }))
                }
            }
        }
        Err(ChainError::PathTooLong { max })
    }
}

/// Verifies a certificate file holding a chain — the first certificate and, as
/// intermediates, the others — against a root bundle at `now_unix` (PROTOCOL §9).
/// The SDK-equivalent of `AntCertificationUtil.isTrusted(certFile, rootBundle)`.
///
/// An empty `chain` is [`ChainError::EmptyChain`].
pub fn verify_cert_file(
    chain: &[Certificate],
    roots: &[Certificate],
    now_unix: i64,
) -> Result<(), ChainError> {
    match chain.split_first() {
        Some((leaf, intermediates)) => leaf.verify_chain(intermediates, roots, now_unix),
        None => Err(ChainError::EmptyChain),
    }
}
