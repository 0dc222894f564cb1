//! RSA through the pure-Rust `rsa` crate: every operation of `Backend::RustCrypto`
//! (feature `rust-crypto`), and in every build the signing ring cannot do (SHA1withRSA,
//! keys under 2048 bits).

use rsa::pkcs1::DecodeRsaPrivateKey;
#[cfg(feature = "rust-crypto")]
use rsa::pkcs1::DecodeRsaPublicKey;
#[cfg(feature = "rust-crypto")]
use rsa::RsaPublicKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::HashAlg;

fn scheme_and_digest(hash: HashAlg, message: &[u8]) -> (Pkcs1v15Sign, Vec<u8>) {
    match hash {
        HashAlg::Sha1 => (Pkcs1v15Sign::new::<Sha1>(), Sha1::digest(message).to_vec()),
        HashAlg::Sha256 => (
            Pkcs1v15Sign::new::<Sha256>(),
            Sha256::digest(message).to_vec(),
        ),
        HashAlg::Sha384 => (
            Pkcs1v15Sign::new::<Sha384>(),
            Sha384::digest(message).to_vec(),
        ),
        HashAlg::Sha512 => (
            Pkcs1v15Sign::new::<Sha512>(),
            Sha512::digest(message).to_vec(),
        ),
    }
}

/// A signing key parsed by the `rsa` crate.
pub(crate) struct RustCryptoSigner(RsaPrivateKey);

impl RustCryptoSigner {
    pub(crate) fn new(pkcs1_der: &[u8]) -> Result<Self, String> {
        let key =
            RsaPrivateKey::from_pkcs1_der(pkcs1_der).map_err(|_| "InvalidEncoding".to_string())?;
        key.validate()
            .map_err(|_| "InconsistentComponents".to_string())?;
        Ok(RustCryptoSigner(key))
    }

    pub(crate) fn sign(&self, hash: HashAlg, message: &[u8]) -> Option<Vec<u8>> {
        let (scheme, digest) = scheme_and_digest(hash, message);
        self.0.sign(scheme, &digest).ok()
    }
}

/// A verification key parsed by the `rsa` crate.
#[cfg(feature = "rust-crypto")]
pub(crate) struct RustCryptoVerifier(RsaPublicKey);

#[cfg(feature = "rust-crypto")]
impl RustCryptoVerifier {
    pub(crate) fn new(pkcs1_der: &[u8]) -> Result<Self, String> {
        RsaPublicKey::from_pkcs1_der(pkcs1_der)
            .map(RustCryptoVerifier)
            .map_err(|_| "InvalidEncoding".to_string())
    }

    pub(crate) fn verify(&self, hash: HashAlg, message: &[u8], sig: &[u8]) -> bool {
        let (scheme, digest) = scheme_and_digest(hash, message);
        self.0.verify(scheme, &digest, sig).is_ok()
    }
}
