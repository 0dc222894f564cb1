//! An owned, parsed X.509 certificate (PROTOCOL §9).

use std::fmt;

use x509_parser::certificate::{X509Certificate, X509CertificateParser};
use x509_parser::nom::Parser as _;

use super::dn::{oid_dotted, rfc2253_name};
use super::pem::certificate_blocks;
use super::serial::serial_decimal;
use super::sn::cert_sn;
use super::{CertError, ChainError};
use crate::key::PublicKey;

/// Prefix of the PKCS#1 signature algorithm OIDs (`sha256WithRSAEncryption` …): the
/// platform SDK's test for "RSA-signed" (PROTOCOL §9).
pub const RSA_SIGNATURE_OID_PREFIX: &str = "1.2.840.113549.1.1";

/// An X.509 certificate: the DER it was read from plus the fields certificate mode
/// needs, extracted once (PROTOCOL §9).
///
/// Build one with [`Certificate::from_pem`], [`Certificate::all_from_pem`] or
/// [`Certificate::from_der`]. Certificates are public, so `Debug` shows the subject,
/// issuer, serial and validity.
#[derive(Clone, PartialEq, Eq)]
pub struct Certificate {
    der: Vec<u8>,
    tbs_der: Vec<u8>,
    issuer_der: Vec<u8>,
    subject_der: Vec<u8>,
    issuer_name: String,
    subject_name: String,
    serial_decimal: String,
    signature_oid: String,
    tbs_signature_oid: String,
    signature: Vec<u8>,
    spki_der: Vec<u8>,
    not_before: i64,
    not_after: i64,
}

impl Certificate {
    /// Reads the first `CERTIFICATE` block of PEM text, ignoring anything after it —
    /// as the platform SDK's `CertificateFactory.generateCertificate` does with an app
    /// or platform public-key certificate file (PROTOCOL §9). Text and non-certificate
    /// blocks before it are skipped.
    ///
    /// Errors: [`CertError::NoCertificate`] when there is no such block,
    /// [`CertError::Pem`] when the block is unreadable, [`CertError::Malformed`] when
    /// its content is not an X.509 certificate.
    pub fn from_pem(text: &str) -> Result<Self, CertError> {
        match certificate_blocks(text).next() {
            None => Err(CertError::NoCertificate),
            Some(block) => Self::from_der(&block?),
        }
    }

    /// Reads every `CERTIFICATE` block of PEM text in file order: a root bundle, or a
    /// public-key certificate file holding a chain (PROTOCOL §9).
    ///
    /// Errors: [`CertError::NoCertificate`] when there is none; otherwise the first
    /// unreadable block's error.
    pub fn all_from_pem(text: &str) -> Result<Vec<Self>, CertError> {
        let certs = certificate_blocks(text)
            .map(|block| Self::from_der(&block?))
            .collect::<Result<Vec<_>, _>>()?;
        if certs.is_empty() {
            return Err(CertError::NoCertificate);
        }
        Ok(certs)
    }

    /// Parses one DER-encoded certificate; trailing bytes are an error (PROTOCOL §9).
    ///
    /// Extensions are not interpreted, so a certificate with an odd extension still
    /// loads. Names are rendered up front: a name the JDK could not print either (an
    /// attribute type OID with a malformed encoding) is [`CertError::Malformed`], as is
    /// an empty serial number.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let mut parser = X509CertificateParser::new().with_deep_parse_extensions(false);
        let (rest, cert) = parser.parse(der).map_err(|e| CertError::Malformed {
            reason: match e {
                x509_parser::nom::Err::Incomplete(_) => "truncated DER".to_string(),
                x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => {
                    e.to_string()
                }
            },
        })?;
        if !rest.is_empty() {
            return Err(CertError::Malformed {
                reason: format!("{} trailing byte(s) after the certificate", rest.len()),
            });
        }
        Self::from_parsed(der, &cert)
    }

    fn from_parsed(der: &[u8], cert: &X509Certificate<'_>) -> Result<Self, CertError> {
        let malformed = |reason: String| CertError::Malformed { reason };
        let tbs = &cert.tbs_certificate;
        let raw_serial = tbs.raw_serial();
        if raw_serial.is_empty() {
            return Err(malformed("empty serial number".to_string()));
        }
        let issuer_name =
            rfc2253_name(&tbs.issuer).map_err(|r| malformed(format!("issuer: {r}")))?;
        let subject_name =
            rfc2253_name(&tbs.subject).map_err(|r| malformed(format!("subject: {r}")))?;
        let signature_oid = oid_dotted(cert.signature_algorithm.algorithm.as_bytes())
            .ok_or_else(|| malformed("malformed signature algorithm OID".to_string()))?;
        let tbs_signature_oid = oid_dotted(tbs.signature.algorithm.as_bytes())
            .ok_or_else(|| malformed("malformed signature algorithm OID".to_string()))?;
        Ok(Certificate {
            der: der.to_vec(),
            tbs_der: tbs.as_ref().to_vec(),
            issuer_der: tbs.issuer.as_raw().to_vec(),
            subject_der: tbs.subject.as_raw().to_vec(),
            issuer_name,
            subject_name,
            serial_decimal: serial_decimal(raw_serial),
            signature_oid,
            tbs_signature_oid,
            signature: cert.signature_value.data.to_vec(),
            spki_der: tbs.subject_pki.raw.to_vec(),
            not_before: tbs.validity.not_before.timestamp(),
            not_after: tbs.validity.not_after.timestamp(),
        })
    }

    /// The certificate's DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The issuer name in RFC 2253 form exactly as Java's `X500Principal.getName()`
    /// prints it — the first half of the cert SN input (PROTOCOL §9). See the module
    /// documentation for the rules.
    pub fn issuer_name(&self) -> String {
        self.issuer_name.clone()
    }

    /// The subject name, printed by the same rules as [`Certificate::issuer_name`]
    /// (PROTOCOL §9).
    pub fn subject_name(&self) -> String {
        self.subject_name.clone()
    }

    /// The serial number in decimal as Java's `BigInteger.toString()` prints it, any
    /// length — the second half of the cert SN input (PROTOCOL §9). For every
    /// RFC 5280 serial (positive) this is the unsigned decimal; a non-conforming serial
    /// with its top bit set is negative in Java and prints with a leading `-`.
    pub fn serial_decimal(&self) -> String {
        self.serial_decimal.clone()
    }

    /// The certificate SN: lowercase hex MD5 (32 digits) of the UTF-8 bytes of
    /// [`issuer_name`](Certificate::issuer_name) followed by
    /// [`serial_decimal`](Certificate::serial_decimal) (PROTOCOL §9). This is the
    /// `app_cert_sn` of an app certificate.
    pub fn sn(&self) -> String {
        cert_sn(&self.issuer_name, &self.serial_decimal)
    }

    /// The signature algorithm OID (`Certificate.signatureAlgorithm`) in dotted form.
    pub fn signature_algorithm_oid(&self) -> &str {
        &self.signature_oid
    }

    /// Whether the signature algorithm OID starts with `1.2.840.113549.1.1` — the
    /// platform SDK's string-prefix test deciding which certificates of a root bundle
    /// count for the root cert SN (PROTOCOL §9).
    pub fn is_rsa_signed(&self) -> bool {
        self.signature_oid.starts_with(RSA_SIGNATURE_OID_PREFIX)
    }

    /// Start of validity (`notBefore`), unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// End of validity (`notAfter`), unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// Checks `notBefore <= now_unix <= notAfter` (bounds inclusive, like Java's
    /// `X509Certificate.checkValidity`). The time is passed in; the clock is never read.
    pub fn check_validity(&self, now_unix: i64) -> Result<(), ChainError> {
        if now_unix < self.not_before {
            return Err(ChainError::NotYetValid {
                subject: self.subject_name.clone(),
                not_before: self.not_before,
                now: now_unix,
            });
        }
        if now_unix > self.not_after {
            return Err(ChainError::Expired {
                subject: self.subject_name.clone(),
                not_after: self.not_after,
                now: now_unix,
            });
        }
        Ok(())
    }

    /// The DER of the `SubjectPublicKeyInfo`.
    pub fn subject_public_key_info_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The certificate's RSA public key — for the platform public-key certificate, the
    /// key that verifies the platform's signatures (PROTOCOL §9).
    ///
    /// Errors with [`CertError::PublicKey`] when the key is not a usable RSA key (for
    /// example an EC or SM2 key).
    pub fn public_key(&self) -> Result<PublicKey, CertError> {
        Ok(PublicKey::from_spki_der(&self.spki_der)?)
    }

    /// The DER of the signed part (`TBSCertificate`).
    pub fn tbs_der(&self) -> &[u8] {
        &self.tbs_der
    }

    /// The signature octets (content of the `signatureValue` BIT STRING).
    pub fn signature_value(&self) -> &[u8] {
        &self.signature
    }

    pub(crate) fn tbs_signature_oid(&self) -> &str {
        &self.tbs_signature_oid
    }

    pub(crate) fn issuer_der(&self) -> &[u8] {
        &self.issuer_der
    }

    pub(crate) fn subject_der(&self) -> &[u8] {
        &self.subject_der
    }

    pub(crate) fn issuer_name_ref(&self) -> &str {
        &self.issuer_name
    }

    pub(crate) fn subject_name_ref(&self) -> &str {
        &self.subject_name
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject_name)
            .field("issuer", &self.issuer_name)
            .field("serial", &self.serial_decimal)
            .field("signature_algorithm", &self.signature_oid)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}
