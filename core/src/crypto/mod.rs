//! The crypto-backend seam: RSA PKCS#1 v1.5 signing and verification.
//!
//! Two interchangeable backends sit behind [`Backend`]:
//!
//! * `Backend::Ring` (feature `ring`, on by default) — `ring`, several times faster.
//!   It verifies everything, but cannot sign with SHA-1 and refuses signing keys under
//!   2048 bits; those two signing cases go to the `rsa` crate, in every build.
//! * `Backend::RustCrypto` (feature `rust-crypto`) — the pure-Rust `rsa` crate for
//!   everything, for targets `ring` does not build on.
//!
//! The `rsa` crate is therefore always compiled in: apps whose sign type is `RSA`
//! (SHA1withRSA, PROTOCOL §2) sign with it, and the simulated platform signs their
//! register answers and CONSUMEs with it (PROTOCOL §5), without a feature the user has
//! to know about.
//!
//! Callers use [`crate::signature::Signer`] and [`crate::signature::Verifier`]; this
//! module only names the backends and hash algorithms.

#[cfg(not(any(feature = "ring", feature = "rust-crypto")))]
compile_error!("alipay-msg-core needs a crypto backend: enable feature `ring` or `rust-crypto`");

#[cfg(feature = "ring")]
pub(crate) mod ring_backend;
pub(crate) mod rust_crypto_backend;

use std::fmt;

/// An RSA implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// `ring` (feature `ring`).
    #[cfg(feature = "ring")]
    Ring,
    /// The pure-Rust `rsa` crate (feature `rust-crypto`).
    #[cfg(feature = "rust-crypto")]
    RustCrypto,
}

impl Backend {
    /// Every backend compiled into this build, fastest first.
    pub const ALL: &'static [Backend] = &[
        #[cfg(feature = "ring")]
        Backend::Ring,
        #[cfg(feature = "rust-crypto")]
        Backend::RustCrypto,
    ];

    /// Short name, as used in benchmark output (`ring`, `rust-crypto`).
    pub const fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "ring")]
            Backend::Ring => "ring",
            #[cfg(feature = "rust-crypto")]
            Backend::RustCrypto => "rust-crypto",
        }
    }
}

impl Default for Backend {
    /// `ring` when compiled in, otherwise the pure-Rust backend.
    fn default() -> Self {
        Backend::ALL[0]
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The digest inside a PKCS#1 v1.5 signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    /// SHA-1 (`RSA` sign type; legacy certificates).
    Sha1,
    /// SHA-256 (`RSA2` sign type).
    Sha256,
    /// SHA-384 (certificates only).
    Sha384,
    /// SHA-512 (certificates only).
    Sha512,
}

impl HashAlg {
    /// The algorithm's usual name.
    pub const fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SHA-1",
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha384 => "SHA-384",
            HashAlg::Sha512 => "SHA-512",
        }
    }
}
