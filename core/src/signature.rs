//! Sign types and the two operations on them: sign with the app key, verify with the
//! platform key (PROTOCOL §2, §5, §10).
//!
//! A signature is RSA PKCS#1 v1.5 over the bytes of the signed text in the stated
//! charset, with SHA-256 (`RSA2`) or SHA-1 (`RSA`), written as standard base64 with
//! padding. PKCS#1 v1.5 is deterministic: the same key and text always give the same
//! signature, which is what lets the shared vectors pin signatures byte for byte.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::charset::Charset;
use crate::crypto::{Backend, HashAlg};
use crate::key::{PrivateKey, PublicKey};

/// The `sign_type` / `x-signType` of a signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SignType {
    /// `RSA2`: SHA256withRSA. The platform's default and the only one new apps get.
    #[default]
    Rsa2,
    /// `RSA`: SHA1withRSA, for legacy apps.
    Rsa,
}

impl SignType {
    /// The name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            SignType::Rsa2 => "RSA2",
            SignType::Rsa => "RSA",
        }
    }

    /// The digest inside the signature.
    pub const fn hash(self) -> HashAlg {
        match self {
            SignType::Rsa2 => HashAlg::Sha256,
            SignType::Rsa => HashAlg::Sha1,
        }
    }
}

/// A sign type name other than `RSA2` and `RSA`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported sign type {name:?}: the platform uses RSA2 (SHA256withRSA) or RSA (SHA1withRSA)"
)]
pub struct UnknownSignType {
    /// The name as given (truncated to 64 characters).
    pub name: String,
}

impl FromStr for SignType {
    type Err = UnknownSignType;

    /// Exactly `RSA2` or `RSA`: the platform's SDKs compare the names case-sensitively.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "RSA2" => Ok(SignType::Rsa2),
            "RSA" => Ok(SignType::Rsa),
            _ => Err(UnknownSignType {
                name: name.chars().take(64).collect(),
            }),
        }
    }
}

impl fmt::Display for SignType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why signing or verifying failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature text is not standard base64.
    #[error("the signature is not valid base64")]
    NotBase64,
    /// The signature does not match the content and key.
    #[error("the signature does not verify")]
    Mismatch,
    /// The crypto backend refused the key.
    #[error("the {backend} backend rejected the key: {reason}")]
    KeyRejected {
        /// Which backend.
        backend: Backend,
        /// The backend's reason (no key material).
        reason: String,
    },
    /// The backend failed to sign (should not happen with a validated key).
    #[error("the {backend} backend failed to sign")]
    SigningFailed {
        /// Which backend.
        backend: Backend,
    },
}

enum SignerImpl {
    #[cfg(feature = "ring")]
    Ring(crate::crypto::ring_backend::RingSigner),
    /// The `rsa` crate: `Backend::RustCrypto`, and in every build what ring cannot sign.
    RsaCrate(crate::crypto::rust_crypto_backend::RustCryptoSigner),
}

/// Signs text with the app private key, for one sign type. Build it once at start-up:
/// construction parses and checks the key, so a key the backend cannot use is reported
/// before the first connection.
pub struct Signer {
    sign_type: SignType,
    backend: Backend,
    imp: SignerImpl,
}

impl Signer {
    /// A signer on the default backend.
    ///
    /// Every build signs both sign types: with `ring` (the default), `RSA` (SHA-1)
    /// signing and keys under 2048 bits, which ring cannot sign, go to the pure-Rust
    /// `rsa` crate, which is always compiled in (PROTOCOL §2; the Java SDK's
    /// `AsymmetricManager.getByName("RSA")` signs SHA1withRSA with any key size).
    ///
    /// ```
    /// use alipay_msg_core::{charset::Charset, key::PrivateKey, signature::{SignType, Signer}};
    /// let pem = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/keys/app_private_pkcs1.pem")).unwrap();
    /// let key = PrivateKey::from_pem_or_base64(&pem).unwrap();
    /// let signer = Signer::new(&key, SignType::Rsa2).unwrap();
    /// let sign = signer.sign_text("a=1&b=2", Charset::Utf8).unwrap();
    /// assert_eq!(sign.len(), 344); // 256 bytes, base64
    /// let legacy = Signer::new(&key, SignType::Rsa).unwrap(); // SHA1withRSA
    /// assert_ne!(legacy.sign_text("a=1&b=2", Charset::Utf8).unwrap(), sign);
    /// ```
    pub fn new(key: &PrivateKey, sign_type: SignType) -> Result<Self, SignatureError> {
        Self::with_backend(key, sign_type, Backend::default())
    }

    /// A signer on a chosen backend. With [`Backend::Ring`], what ring cannot sign
    /// (SHA1withRSA, keys under 2048 bits) is signed by the `rsa` crate; see
    /// [`Signer::backend`] for how that is reported.
    pub fn with_backend(
        key: &PrivateKey,
        sign_type: SignType,
        backend: Backend,
    ) -> Result<Self, SignatureError> {
        match backend {
            #[cfg(feature = "ring")]
            Backend::Ring => {
                let ring_can_sign = sign_type != SignType::Rsa && key.modulus_bits() >= 2048;
                if !ring_can_sign {
                    #[cfg(feature = "rust-crypto")]
                    let reported = Backend::RustCrypto;
                    #[cfg(not(feature = "rust-crypto"))]
                    let reported = Backend::Ring;
                    return Self::with_rsa_crate(key, sign_type, reported);
                }
                let imp = crate::crypto::ring_backend::RingSigner::new(key.pkcs1_der())
                    .map_err(|reason| SignatureError::KeyRejected { backend, reason })?;
                Ok(Signer {
                    sign_type,
                    backend,
                    imp: SignerImpl::Ring(imp),
                })
            }
            #[cfg(feature = "rust-crypto")]
            Backend::RustCrypto => Self::with_rsa_crate(key, sign_type, backend),
        }
    }

    /// A signer on the `rsa` crate, reported as `backend`.
    fn with_rsa_crate(
        key: &PrivateKey,
        sign_type: SignType,
        backend: Backend,
    ) -> Result<Self, SignatureError> {
        let imp = crate::crypto::rust_crypto_backend::RustCryptoSigner::new(key.pkcs1_der())
            .map_err(|reason| SignatureError::KeyRejected { backend, reason })?;
        Ok(Signer {
            sign_type,
            backend,
            imp: SignerImpl::RsaCrate(imp),
        })
    }

    /// The sign type this signer makes.
    pub fn sign_type(&self) -> SignType {
        self.sign_type
    }

    /// The backend that signs, after the fallback for what ring cannot sign: that is
    /// [`Backend::RustCrypto`] when the `rust-crypto` feature is on; without the feature
    /// the `rsa` crate still signs those cases, reported as [`Backend::Ring`] (the
    /// backend asked for, there being no other).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Signs raw bytes; returns the signature bytes.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignatureError> {
        let hash = self.sign_type.hash();
        let out = match &self.imp {
            #[cfg(feature = "ring")]
            SignerImpl::Ring(k) => k.sign(hash, message),
            SignerImpl::RsaCrate(k) => k.sign(hash, message),
        };
        out.ok_or(SignatureError::SigningFailed {
            backend: self.backend,
        })
    }

    /// Encodes `text` in `charset`, signs it and returns standard base64 — the value of
    /// a `sign` parameter or an `x-sign` field.
    pub fn sign_text(&self, text: &str, charset: Charset) -> Result<String, SignatureError> {
        Ok(STANDARD.encode(self.sign(&charset.encode(text))?))
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("sign_type", &self.sign_type)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

enum VerifierImpl {
    #[cfg(feature = "ring")]
    Ring(crate::crypto::ring_backend::RingVerifier),
    #[cfg(feature = "rust-crypto")]
    RustCrypto(crate::crypto::rust_crypto_backend::RustCryptoVerifier),
}

/// Verifies signatures made with the private half of a public key (normally the
/// platform key). Build it once; it verifies both sign types.
pub struct Verifier {
    backend: Backend,
    key_fingerprint: String,
    imp: VerifierImpl,
}

impl Verifier {
    /// A verifier on the default backend.
    pub fn new(key: &PublicKey) -> Result<Self, SignatureError> {
        Self::with_backend(key, Backend::default())
    }

    /// A verifier on a chosen backend.
    pub fn with_backend(key: &PublicKey, backend: Backend) -> Result<Self, SignatureError> {
        let imp = match backend {
            #[cfg(feature = "ring")]
            Backend::Ring => VerifierImpl::Ring(crate::crypto::ring_backend::RingVerifier::new(
                key.pkcs1_der(),
                key.modulus_bits(),
            )),
            #[cfg(feature = "rust-crypto")]
            Backend::RustCrypto => VerifierImpl::RustCrypto(
                crate::crypto::rust_crypto_backend::RustCryptoVerifier::new(key.pkcs1_der())
                    .map_err(|reason| SignatureError::KeyRejected { backend, reason })?,
            ),
        };
        Ok(Verifier {
            backend,
            key_fingerprint: key.fingerprint(),
            imp,
        })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The [`PublicKey::fingerprint`] of the key this verifier checks with: which key
    /// was used, for logs and diagnoses, without the key itself.
    pub fn key_fingerprint(&self) -> &str {
        &self.key_fingerprint
    }

    /// Verifies a PKCS#1 v1.5 signature with any supported digest (used for
    /// certificate chains).
    pub fn verify_raw(
        &self,
        hash: HashAlg,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        let ok = match &self.imp {
            #[cfg(feature = "ring")]
            VerifierImpl::Ring(k) => k.verify(hash, message, signature),
            #[cfg(feature = "rust-crypto")]
            VerifierImpl::RustCrypto(k) => k.verify(hash, message, signature),
        };
        if ok {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    /// Verifies signature bytes over raw bytes.
    pub fn verify(
        &self,
        sign_type: SignType,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        self.verify_raw(sign_type.hash(), message, signature)
    }

    /// Verifies a base64 signature (`sign`, `x-sign`) over `text` encoded in `charset`.
    ///
    /// Surrounding whitespace of the base64 text is ignored; anything else that is not
    /// standard base64 with padding is [`SignatureError::NotBase64`].
    pub fn verify_text(
        &self,
        sign_type: SignType,
        charset: Charset,
        text: &str,
        signature_base64: &str,
    ) -> Result<(), SignatureError> {
        self.verify_base64(sign_type, &charset.encode(text), signature_base64)
    }

    /// Verifies a base64 signature over `message`, bytes already encoded (a notification's
    /// sign content in its own charset, PROTOCOL §10). Base64 as in
    /// [`verify_text`](Self::verify_text).
    pub fn verify_base64(
        &self,
        sign_type: SignType,
        message: &[u8],
        signature_base64: &str,
    ) -> Result<(), SignatureError> {
        let signature = STANDARD
            .decode(signature_base64.trim())
            .map_err(|_| SignatureError::NotBase64)?;
        self.verify(sign_type, message, &signature)
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("backend", &self.backend)
            .field("key_fingerprint", &self.key_fingerprint)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

    fn app_key() -> PrivateKey {
        let pem = std::fs::read_to_string(format!("{DIR}/keys/app_private_pkcs1.pem")).unwrap();
        PrivateKey::from_pem_or_base64(&pem).unwrap()
    }

    #[test]
    fn sign_type_names() {
        assert_eq!("RSA2".parse(), Ok(SignType::Rsa2));
        assert_eq!("RSA".parse(), Ok(SignType::Rsa));
        assert!("rsa2".parse::<SignType>().is_err());
        assert!("SM2"
            .parse::<SignType>()
            .unwrap_err()
            .to_string()
            .contains("SM2"));
    }

    #[test]
    fn every_backend_signs_and_verifies_identically() {
        let key = app_key();
        let text = "app_id=1&charset=GBK&subject=测试";
        for &backend in Backend::ALL {
            for sign_type in [SignType::Rsa2, SignType::Rsa] {
                // Every build signs both sign types (ring alone cannot sign SHA-1; the
                // `rsa` crate does it for it).
                let signer = Signer::with_backend(&key, sign_type, backend).unwrap();
                let sign = signer.sign_text(text, Charset::Gbk).unwrap();
                for &vb in Backend::ALL {
                    let v = Verifier::with_backend(key.public_key(), vb).unwrap();
                    v.verify_text(sign_type, Charset::Gbk, text, &sign).unwrap();
                    assert_eq!(
                        v.verify_text(sign_type, Charset::Utf8, text, &sign),
                        Err(SignatureError::Mismatch)
                    );
                    let other = if sign_type == SignType::Rsa2 {
                        SignType::Rsa
                    } else {
                        SignType::Rsa2
                    };
                    assert_eq!(
                        v.verify_text(other, Charset::Gbk, text, &sign),
                        Err(SignatureError::Mismatch)
                    );
                    assert_eq!(
                        v.verify_text(sign_type, Charset::Gbk, text, "not base64!"),
                        Err(SignatureError::NotBase64)
                    );
                }
            }
        }
    }

    #[test]
    fn small_keys_warn_and_sign_on_every_backend() {
        let pem = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../testdata/keys/small_1024_pkcs1.pem"
        ))
        .unwrap();
        let key = PrivateKey::from_pem_or_base64(&pem).unwrap();
        assert_eq!(key.modulus_bits(), 1024);
        assert_eq!(
            key.warnings(),
            vec![crate::key::KeyWarning::SmallModulus { bits: 1024 }]
        );
        // ring refuses to sign with keys under 2048 bits; the `rsa` crate signs them in
        // every build, and every backend verifies them.
        for sign_type in [SignType::Rsa2, SignType::Rsa] {
            let signer = Signer::new(&key, sign_type).unwrap();
            let sign = signer.sign_text("x", Charset::Utf8).unwrap();
            for &backend in Backend::ALL {
                Verifier::with_backend(key.public_key(), backend)
                    .unwrap()
                    .verify_text(sign_type, Charset::Utf8, "x", &sign)
                    .unwrap();
            }
        }
    }
}
