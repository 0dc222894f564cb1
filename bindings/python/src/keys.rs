//! RSA keys loaded once, with the core's loaders and error messages (PROTOCOL §2, §9).

use alipay_msg_core::cert::{platform_cert, Certificate};
use alipay_msg_core::key::{KeyWarning, PrivateKey as CorePrivateKey, PublicKey as CorePublicKey};
use alipay_msg_core::signature::Verifier;
use pyo3::prelude::*;

use crate::errors::{cert_error, key_error, InvalidKeyError};

/// An RSA public key, parsed once, ready to verify signatures (normally the platform
/// public key, `alipay_public_key`).
///
/// Build it with load_public_key(text) or load_cert_public_key(pem) and pass it to
/// verify_notification(body, alipay_public_key=key) for every request: the key is not
/// parsed again. Immutable and safe to share between threads. repr() shows only the
/// size.
#[pyclass(frozen, module = "alipay_msg", name = "PublicKey")]
pub struct PublicKey {
    key: CorePublicKey,
    verifier: Verifier,
}

impl PublicKey {
    pub(crate) fn new(key: CorePublicKey) -> PyResult<Self> {
        let verifier = Verifier::new(&key).map_err(|e| InvalidKeyError::new_err(e.to_string()))?;
        Ok(PublicKey { key, verifier })
    }

    /// The verifier for this key.
    pub(crate) fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// The core's key.
    pub(crate) fn core(&self) -> &CorePublicKey {
        &self.key
    }
}

impl PrivateKey {
    /// The core's key.
    pub(crate) fn core(&self) -> &CorePrivateKey {
        &self.key
    }
}

#[pymethods]
impl PublicKey {
    /// The modulus size in bits (int), e.g. 2048.
    #[getter]
    fn modulus_bits(&self) -> usize {
        self.key.modulus_bits()
    }

    /// Problems that did not stop the key from loading (list[str], empty for a good
    /// key), e.g. a modulus under 2048 bits.
    #[getter]
    fn warnings(&self) -> Vec<String> {
        warnings(self.key.warnings())
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PublicKey>()
            .is_ok_and(|other| other.get().key == self.key)
    }

    fn __repr__(&self) -> String {
        format!(
            "<alipay_msg.PublicKey RSA {} bits>",
            self.key.modulus_bits()
        )
    }
}

/// An RSA private key, parsed once (the app private key). Immutable; repr() shows only
/// the size, never key material.
#[pyclass(frozen, module = "alipay_msg", name = "PrivateKey")]
pub struct PrivateKey {
    key: CorePrivateKey,
}

#[pymethods]
impl PrivateKey {
    /// The modulus size in bits (int), e.g. 2048.
    #[getter]
    fn modulus_bits(&self) -> usize {
        self.key.modulus_bits()
    }

    /// Problems that did not stop the key from loading (list[str], empty for a good
    /// key), e.g. a modulus under 2048 bits.
    #[getter]
    fn warnings(&self) -> Vec<String> {
        warnings(self.key.warnings())
    }

    /// The public half of this key (PublicKey).
    #[getter]
    fn public_key(&self) -> PyResult<PublicKey> {
        PublicKey::new(self.key.public_key().clone())
    }

    fn __repr__(&self) -> String {
        format!(
            "<alipay_msg.PrivateKey RSA {} bits>",
            self.key.modulus_bits()
        )
    }
}

fn warnings(warnings: Vec<KeyWarning>) -> Vec<String> {
    warnings.iter().map(ToString::to_string).collect()
}

/// load_public_key(text: str) -> PublicKey
///
/// Loads an RSA public key from PEM (`-----BEGIN PUBLIC KEY-----` = SPKI, or
/// `-----BEGIN RSA PUBLIC KEY-----` = PKCS#1) or from bare base64 of either DER form
/// (the one-line string the platform's console shows as the platform public key).
///
/// Raises InvalidKeyError with the reason (e.g. "no key material: the input is empty",
/// "expected a public key, got a private key ...", "not base64 ..."); the message never
/// contains key material.
#[pyfunction]
pub fn load_public_key(py: Python<'_>, text: &str) -> PyResult<PublicKey> {
    let key = py
        .detach(|| CorePublicKey::from_pem_or_base64(text))
        .map_err(key_error)?;
    PublicKey::new(key)
}

/// load_private_key(text: str) -> PrivateKey
///
/// Loads an RSA private key from PEM (`-----BEGIN RSA PRIVATE KEY-----` = PKCS#1,
/// `-----BEGIN PRIVATE KEY-----` = PKCS#8) or from bare base64 of either DER form (the
/// shape the platform's key tool exports).
///
/// Raises InvalidKeyError with the reason (e.g. "expected a private key, got a public
/// key", "the private key is encrypted ..."); the message never contains key material.
#[pyfunction]
pub fn load_private_key(py: Python<'_>, text: &str) -> PyResult<PrivateKey> {
    let key = py
        .detach(|| CorePrivateKey::from_pem_or_base64(text))
        .map_err(key_error)?;
    Ok(PrivateKey { key })
}

/// load_cert_public_key(pem: str) -> PublicKey
///
/// The public key inside a public-key certificate file (PEM text), for certificate
/// mode: from the platform public-key certificate (alipayCertPublicKey_RSA2.crt), the
/// key that verifies the platform's signatures. When the file holds a chain, the key
/// is the first certificate's, as in the platform's Java SDK (PROTOCOL §9). The chain
/// is not checked for trust here.
///
/// Raises CertificateError when the text holds no readable certificate or its key is
/// not an RSA key.
#[pyfunction]
pub fn load_cert_public_key(py: Python<'_>, pem: &str) -> PyResult<PublicKey> {
    let key = py
        .detach(|| {
            let chain = Certificate::all_from_pem(pem)?;
            platform_cert(&chain)?.public_key()
        })
        .map_err(cert_error)?;
    PublicKey::new(key)
}
