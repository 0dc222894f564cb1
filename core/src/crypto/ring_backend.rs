//! RSA through `ring`.

use ring::signature::{self, RsaKeyPair, UnparsedPublicKey, VerificationAlgorithm};

use super::HashAlg;

/// A signing key parsed by ring.
pub(crate) struct RingSigner(RsaKeyPair);

impl RingSigner {
    /// Parses a PKCS#1 `RSAPrivateKey`. ring refuses keys under 2048 bits.
    pub(crate) fn new(pkcs1_der: &[u8]) -> Result<Self, String> {
        RsaKeyPair::from_der(pkcs1_der)
            .map(RingSigner)
            .map_err(|e| e.to_string())
    }

    /// Signs; `None` for SHA-1, which ring does not sign with.
    pub(crate) fn sign(&self, hash: HashAlg, message: &[u8]) -> Option<Vec<u8>> {
        let padding: &'static dyn signature::RsaEncoding = match hash {
            HashAlg::Sha1 => return None,
            HashAlg::Sha256 => &signature::RSA_PKCS1_SHA256,
            HashAlg::Sha384 => &signature::RSA_PKCS1_SHA384,
            HashAlg::Sha512 => &signature::RSA_PKCS1_SHA512,
        };
        let mut out = vec![0u8; self.0.public().modulus_len()];
        // PKCS#1 v1.5 signatures are deterministic; ring takes a random source only to
        // blind the private-key operation against timing attacks.
        let rng = ring::rand::SystemRandom::new();
        self.0.sign(padding, &rng, message, &mut out).ok()?;
        Some(out)
    }
}

/// A verification key for ring: the PKCS#1 `RSAPublicKey` DER ring expects.
pub(crate) struct RingVerifier {
    pkcs1_der: Vec<u8>,
    /// Keys of 1024–2047 bits need ring's legacy algorithms.
    legacy_size: bool,
}

impl RingVerifier {
    pub(crate) fn new(pkcs1_der: &[u8], modulus_bits: usize) -> Self {
        RingVerifier {
            pkcs1_der: pkcs1_der.to_vec(),
            legacy_size: modulus_bits < 2048,
        }
    }

    pub(crate) fn verify(&self, hash: HashAlg, message: &[u8], sig: &[u8]) -> bool {
        let alg: &'static dyn VerificationAlgorithm = match (hash, self.legacy_size) {
            (HashAlg::Sha1, _) => &signature::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY,
            (HashAlg::Sha256, false) => &signature::RSA_PKCS1_2048_8192_SHA256,
            (HashAlg::Sha256, true) => &signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
            (HashAlg::Sha384, _) => &signature::RSA_PKCS1_2048_8192_SHA384,
            (HashAlg::Sha512, false) => &signature::RSA_PKCS1_2048_8192_SHA512,
            (HashAlg::Sha512, true) => &signature::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY,
        };
        UnparsedPublicKey::new(alg, &self.pkcs1_der)
            .verify(message, sig)
            .is_ok()
    }
}
