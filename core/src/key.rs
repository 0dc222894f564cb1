//! RSA keys: the app's private key and the platform's public key.
//!
//! The platform's tooling hands keys out in several shapes, and users paste whichever
//! they have: PEM (`RSA PRIVATE KEY` = PKCS#1, `PRIVATE KEY` = PKCS#8, `PUBLIC KEY` =
//! SPKI, `RSA PUBLIC KEY` = PKCS#1), or the bare base64 body of any of these with the
//! header lines removed, or DER. Loaders accept all of them, tell a misplaced
//! certificate or the wrong half of a key pair apart from garbage, and never put key
//! material into an error or a `Debug` string.
//!
//! Keys are normalised to PKCS#1 DER, the form both crypto backends take.

use std::fmt;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use pkcs1::der::{Decode, Encode};

/// OID of `rsaEncryption` (PKCS#1).
const RSA_ENCRYPTION_OID: &str = "1.2.840.113549.1.1.1";

/// Below this modulus size a key is accepted with a [`KeyWarning::SmallModulus`].
pub const RECOMMENDED_MIN_BITS: usize = 2048;

/// Base64 as found in key files: standard alphabet, padding optional.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What a piece of key material turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// An RSA private key (PKCS#1 or PKCS#8).
    PrivateKey,
    /// An RSA public key (SPKI or PKCS#1).
    PublicKey,
    /// An X.509 certificate.
    Certificate,
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyKind::PrivateKey => "a private key",
            KeyKind::PublicKey => "a public key",
            KeyKind::Certificate => "a certificate",
        })
    }
}

/// Why key material could not be loaded. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The input was empty or only whitespace.
    #[error("no key material: the input is empty")]
    Empty,
    /// The input has no PEM header and is not base64 either.
    #[error("not base64 (and no PEM `-----BEGIN` header found)")]
    NotBase64,
    /// A PEM block could not be read.
    #[error("malformed PEM: {reason}")]
    Pem {
        /// What was wrong.
        reason: String,
    },
    /// A private key was expected.
    #[error("expected a private key, got {found}")]
    ExpectedPrivateKey {
        /// What the input is.
        found: KeyKind,
    },
    /// A public key was expected.
    #[error("expected a public key, got {found}{hint}", hint = public_key_hint(*.found))]
    ExpectedPublicKey {
        /// What the input is.
        found: KeyKind,
    },
    /// The private key is password-protected.
    #[error("the private key is encrypted (ENCRYPTED PRIVATE KEY); store it unencrypted, e.g. `openssl pkcs8 -in KEY -out KEY.pem` asks for the password once")]
    Encrypted,
    /// A PEM label that holds no RSA key.
    #[error("unsupported PEM block `{label}`: expected RSA PRIVATE KEY, PRIVATE KEY, PUBLIC KEY or RSA PUBLIC KEY")]
    UnsupportedPemLabel {
        /// The label after `BEGIN`.
        label: String,
    },
    /// A well-formed key of another algorithm (EC, SM2 …).
    #[error("not an RSA key (algorithm {algorithm}); the platform signs with RSA only")]
    NotRsa {
        /// The algorithm OID.
        algorithm: String,
    },
    /// DER that is not any RSA key structure.
    #[error(
        "not a valid RSA key: the data is neither PKCS#1, PKCS#8 nor SubjectPublicKeyInfo DER"
    )]
    Malformed,
    /// Multi-prime RSA keys are not supported by either backend.
    #[error("multi-prime RSA private keys are not supported")]
    MultiPrime,
    /// The private key and the public key (or certificate) are not one pair.
    #[error("{private} and {public} are not a key pair: the public key does not belong to the private key")]
    Mismatch {
        /// Names the private key (e.g. "the app private key").
        private: &'static str,
        /// Names the public key (e.g. "the app certificate").
        public: &'static str,
    },
}

fn public_key_hint(found: KeyKind) -> &'static str {
    match found {
        KeyKind::Certificate => " (configure it as a certificate to use certificate mode)",
        _ => "",
    }
}

/// A problem that does not stop a key from loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyWarning {
    /// The modulus is smaller than [`RECOMMENDED_MIN_BITS`].
    SmallModulus {
        /// The key's modulus size.
        bits: usize,
    },
}

impl fmt::Display for KeyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyWarning::SmallModulus { bits } => write!(
                f,
                "RSA key smaller than {RECOMMENDED_MIN_BITS} bits ({bits} bits): the platform issues RSA2 keys of 2048 bits"
            ),
        }
    }
}

/// An RSA public key, held as PKCS#1 `RSAPublicKey` DER.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pkcs1_der: Vec<u8>,
    modulus_bits: usize,
}

impl PublicKey {
    /// Loads a public key from PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`) or from bare
    /// base64 of SPKI or PKCS#1 DER.
    ///
    /// ```
    /// let pem = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/keys/alipay_public.pem")).unwrap();
    /// let key = alipay_msg_core::key::PublicKey::from_pem_or_base64(&pem).unwrap();
    /// assert_eq!(key.modulus_bits(), 2048);
    /// ```
    pub fn from_pem_or_base64(text: &str) -> Result<Self, KeyError> {
        match decode_text(text, &["PUBLIC KEY", "RSA PUBLIC KEY"])? {
            Decoded::Pem { label, der } => match label.as_str() {
                "PUBLIC KEY" => Self::from_spki_der(&der),
                "RSA PUBLIC KEY" => Self::from_pkcs1_der(&der),
                "PRIVATE KEY" | "RSA PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
                    Err(KeyError::ExpectedPublicKey {
                        found: KeyKind::PrivateKey,
                    })
                }
                "CERTIFICATE" => Err(KeyError::ExpectedPublicKey {
                    found: KeyKind::Certificate,
                }),
                _ => Err(KeyError::UnsupportedPemLabel { label }),
            },
            Decoded::Der(der) => Self::from_der(&der),
        }
    }

    /// Loads SPKI or PKCS#1 DER, whichever it is.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        match Self::from_spki_der(der) {
            Err(KeyError::Malformed) => {}
            other => return other,
        }
        match Self::from_pkcs1_der(der) {
            Err(KeyError::Malformed) => {}
            other => return other,
        }
        match sniff(der) {
            Some(found) => Err(KeyError::ExpectedPublicKey { found }),
            None => Err(KeyError::Malformed),
        }
    }

    /// Loads an X.509 `SubjectPublicKeyInfo` holding an RSA key.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki =
            pkcs8::spki::SubjectPublicKeyInfoRef::from_der(der).map_err(|_| KeyError::Malformed)?;
        let algorithm = spki.algorithm.oid.to_string();
        if algorithm != RSA_ENCRYPTION_OID {
            return Err(KeyError::NotRsa { algorithm });
        }
        let inner = spki
            .subject_public_key
            .as_bytes()
            .ok_or(KeyError::Malformed)?;
        Self::from_pkcs1_der(inner)
    }

    /// Loads a PKCS#1 `RSAPublicKey`.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, KeyError> {
        let key = pkcs1::RsaPublicKey::from_der(der).map_err(|_| KeyError::Malformed)?;
        Self::from_parts(key)
    }

    fn from_parts(key: pkcs1::RsaPublicKey<'_>) -> Result<Self, KeyError> {
        let modulus_bits = bit_length(key.modulus.as_bytes());
        if modulus_bits == 0 || key.public_exponent.as_bytes().is_empty() {
            return Err(KeyError::Malformed);
        }
        // Re-encoding gives one canonical DER per key, so equal keys compare equal.
        let pkcs1_der = key.to_der().map_err(|_| KeyError::Malformed)?;
        Ok(PublicKey {
            pkcs1_der,
            modulus_bits,
        })
    }

    /// The key as PKCS#1 `RSAPublicKey` DER (canonical encoding).
    pub fn pkcs1_der(&self) -> &[u8] {
        &self.pkcs1_der
    }

    /// Size of the modulus in bits.
    pub fn modulus_bits(&self) -> usize {
        self.modulus_bits
    }

    /// The key as X.509 `SubjectPublicKeyInfo` DER (`rsaEncryption`, NULL parameters):
    /// the body of a `PUBLIC KEY` PEM, the form the platform's console hands out.
    pub fn spki_der(&self) -> Vec<u8> {
        // AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }.
        const ALGORITHM: [u8; 15] = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        let mut bit_string = vec![0x03];
        push_der_len(&mut bit_string, self.pkcs1_der.len() + 1);
        bit_string.push(0); // no unused bits
        bit_string.extend_from_slice(&self.pkcs1_der);
        let mut der = vec![0x30];
        push_der_len(&mut der, ALGORITHM.len() + bit_string.len());
        der.extend_from_slice(&ALGORITHM);
        der.extend_from_slice(&bit_string);
        der
    }

    /// A short name for the key, for logs and diagnoses: the first 16 hex digits
    /// (lower case) of the SHA-256 of its [`spki_der`](Self::spki_der). The same as
    /// `openssl pkey -pubin -in KEY.pem -outform DER | sha256sum | cut -c1-16`. Two keys
    /// with different fingerprints differ; it reveals nothing usable about the key.
    ///
    /// ```
    /// let pem = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/keys/alipay_public.pem")).unwrap();
    /// let key = alipay_msg_core::key::PublicKey::from_pem_or_base64(&pem).unwrap();
    /// assert_eq!(key.fingerprint(), "d0de861be430270f");
    /// ```
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(self.spki_der());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Problems worth logging that do not stop the key from being used.
    pub fn warnings(&self) -> Vec<KeyWarning> {
        size_warnings(self.modulus_bits)
    }
}

/// Appends a DER definite length.
fn push_der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        // Fits in the short form: one byte below 0x80.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        // At most size_of::<usize>() (8) length bytes.
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(RSA-{})", self.modulus_bits)
    }
}

/// An RSA private key, held as PKCS#1 `RSAPrivateKey` DER. `Debug` shows only its size.
#[derive(Clone)]
pub struct PrivateKey {
    pkcs1_der: Vec<u8>,
    public: PublicKey,
}

impl PrivateKey {
    /// Loads a private key from PEM (`RSA PRIVATE KEY` = PKCS#1, `PRIVATE KEY` = PKCS#8)
    /// or from bare base64 of either DER form (the shape the platform's key tool
    /// exports).
    ///
    /// ```
    /// use alipay_msg_core::key::{KeyError, KeyKind, PrivateKey};
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");
    /// let pem = std::fs::read_to_string(format!("{dir}/keys/app_private_pkcs8.pem")).unwrap();
    /// assert_eq!(PrivateKey::from_pem_or_base64(&pem).unwrap().modulus_bits(), 2048);
    ///
    /// let cert = std::fs::read_to_string(format!("{dir}/certs/app_cert.crt")).unwrap();
    /// let err = PrivateKey::from_pem_or_base64(&cert).unwrap_err();
    /// assert_eq!(err, KeyError::ExpectedPrivateKey { found: KeyKind::Certificate });
    /// assert_eq!(err.to_string(), "expected a private key, got a certificate");
    /// ```
    pub fn from_pem_or_base64(text: &str) -> Result<Self, KeyError> {
        match decode_text(text, &["PRIVATE KEY", "RSA PRIVATE KEY"])? {
            Decoded::Pem { label, der } => match label.as_str() {
                "PRIVATE KEY" => Self::from_pkcs8_der(&der),
                "RSA PRIVATE KEY" => Self::from_pkcs1_der(&der),
                "ENCRYPTED PRIVATE KEY" => Err(KeyError::Encrypted),
                "PUBLIC KEY" | "RSA PUBLIC KEY" => Err(KeyError::ExpectedPrivateKey {
                    found: KeyKind::PublicKey,
                }),
                "CERTIFICATE" => Err(KeyError::ExpectedPrivateKey {
                    found: KeyKind::Certificate,
                }),
                _ => Err(KeyError::UnsupportedPemLabel { label }),
            },
            Decoded::Der(der) => Self::from_der(&der),
        }
    }

    /// Loads PKCS#8 or PKCS#1 DER, whichever it is.
    pub fn from_der(der: &[u8]) -> Result<Self, KeyError> {
        match Self::from_pkcs8_der(der) {
            Err(KeyError::Malformed) => {}
            other => return other,
        }
        match Self::from_pkcs1_der(der) {
            Err(KeyError::Malformed) => {}
            other => return other,
        }
        match sniff(der) {
            Some(found) => Err(KeyError::ExpectedPrivateKey { found }),
            None => Err(KeyError::Malformed),
        }
    }

    /// Loads a PKCS#8 `PrivateKeyInfo` holding an RSA key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        let info = pkcs8::PrivateKeyInfo::from_der(der).map_err(|_| KeyError::Malformed)?;
        let algorithm = info.algorithm.oid.to_string();
        if algorithm != RSA_ENCRYPTION_OID {
            return Err(KeyError::NotRsa { algorithm });
        }
        Self::from_pkcs1_der(info.private_key)
    }

    /// Loads a PKCS#1 `RSAPrivateKey`.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<Self, KeyError> {
        let key = pkcs1::RsaPrivateKey::from_der(der).map_err(|_| KeyError::Malformed)?;
        if key.other_prime_infos.is_some() {
            return Err(KeyError::MultiPrime);
        }
        let public = PublicKey::from_parts(key.public_key())?;
        Ok(PrivateKey {
            pkcs1_der: der.to_vec(),
            public,
        })
    }

    /// The public half of the key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Size of the modulus in bits.
    pub fn modulus_bits(&self) -> usize {
        self.public.modulus_bits
    }

    /// Problems worth logging that do not stop the key from being used.
    pub fn warnings(&self) -> Vec<KeyWarning> {
        size_warnings(self.public.modulus_bits)
    }

    /// Checks that `public` is this key's public half, e.g. the key inside the app
    /// certificate. `private_name` and `public_name` name the two in the error.
    pub fn check_pair(
        &self,
        public: &PublicKey,
        private_name: &'static str,
        public_name: &'static str,
    ) -> Result<(), KeyError> {
        if &self.public == public {
            Ok(())
        } else {
            Err(KeyError::Mismatch {
                private: private_name,
                public: public_name,
            })
        }
    }

    pub(crate) fn pkcs1_der(&self) -> &[u8] {
        &self.pkcs1_der
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(RSA-{}, redacted)", self.public.modulus_bits)
    }
}

fn size_warnings(bits: usize) -> Vec<KeyWarning> {
    if bits < RECOMMENDED_MIN_BITS {
        vec![KeyWarning::SmallModulus { bits }]
    } else {
        Vec::new()
    }
}

/// Number of significant bits in a big-endian unsigned integer.
fn bit_length(be: &[u8]) -> usize {
    let be = match be.iter().position(|&b| b != 0) {
        Some(first) => &be[first..],
        None => return 0,
    };
    be.len() * 8 - be[0].leading_zeros() as usize
}

/// What key text decoded to.
enum Decoded {
    Pem { label: String, der: Vec<u8> },
    Der(Vec<u8>),
}

/// Decodes PEM (the first block whose label is in `wanted`, else the first block) or
/// bare base64.
fn decode_text(text: &str, wanted: &[&str]) -> Result<Decoded, KeyError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(KeyError::Empty);
    }
    if !text.contains("-----BEGIN") {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        return KEY_BASE64
            .decode(compact)
            .map(Decoded::Der)
            .map_err(|_| KeyError::NotBase64);
    }
    // The crate's one lenient PEM reader (indentation, blank lines, CRLF), shared with
    // certificates.
    let mut first = None;
    for block in crate::cert::pem::pem_blocks(text, |_| true) {
        let block = block.map_err(|e| KeyError::Pem { reason: e.reason })?;
        if wanted.contains(&block.label.as_str()) {
            return Ok(Decoded::Pem {
                label: block.label,
                der: block.der,
            });
        }
        first.get_or_insert(block);
    }
    match first {
        Some(block) => Ok(Decoded::Pem {
            label: block.label,
            der: block.der,
        }),
        None => Err(KeyError::Pem {
            reason: "no complete `-----BEGIN`/`-----END` block".into(),
        }),
    }
}

/// Recognises DER that is some other kind of key material than the one asked for.
fn sniff(der: &[u8]) -> Option<KeyKind> {
    if pkcs8::PrivateKeyInfo::from_der(der).is_ok() || pkcs1::RsaPrivateKey::from_der(der).is_ok() {
        Some(KeyKind::PrivateKey)
    } else if pkcs8::spki::SubjectPublicKeyInfoRef::from_der(der).is_ok()
        || pkcs1::RsaPublicKey::from_der(der).is_ok()
    {
        Some(KeyKind::PublicKey)
    } else if x509_parser::parse_x509_certificate(der).is_ok() {
        Some(KeyKind::Certificate)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

    fn read(path: &str) -> String {
        std::fs::read_to_string(format!("{DIR}/{path}")).unwrap()
    }

    fn pem_body(pem: &str) -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    #[test]
    fn private_key_all_shapes_agree() {
        let pkcs1 = read("keys/app_private_pkcs1.pem");
        let pkcs8 = read("keys/app_private_pkcs8.pem");
        let a = PrivateKey::from_pem_or_base64(&pkcs1).unwrap();
        let b = PrivateKey::from_pem_or_base64(&pkcs8).unwrap();
        let c = PrivateKey::from_pem_or_base64(&pem_body(&pkcs1)).unwrap();
        let d = PrivateKey::from_pem_or_base64(&pem_body(&pkcs8)).unwrap();
        assert_eq!(a.pkcs1_der(), b.pkcs1_der());
        assert_eq!(a.pkcs1_der(), c.pkcs1_der());
        assert_eq!(a.pkcs1_der(), d.pkcs1_der());
        assert!(a.warnings().is_empty());
        let public = PublicKey::from_pem_or_base64(&read("keys/app_public.pem")).unwrap();
        assert_eq!(a.public_key(), &public);
        a.check_pair(&public, "the app private key", "the app public key")
            .unwrap();
    }

    #[test]
    fn public_key_shapes() {
        let pem = read("keys/alipay_public.pem");
        let a = PublicKey::from_pem_or_base64(&pem).unwrap();
        let b = PublicKey::from_pem_or_base64(&pem_body(&pem)).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.modulus_bits(), 2048);
        let c = PublicKey::from_pkcs1_der(a.pkcs1_der()).unwrap();
        assert_eq!(a, c);
    }

    #[test]
    fn wrong_kinds_are_named() {
        let private = read("keys/app_private_pkcs1.pem");
        let public = read("keys/app_public.pem");
        let cert = read("certs/app_cert.crt");
        assert_eq!(
            PrivateKey::from_pem_or_base64(&public).unwrap_err(),
            KeyError::ExpectedPrivateKey {
                found: KeyKind::PublicKey
            }
        );
        assert_eq!(
            PublicKey::from_pem_or_base64(&private).unwrap_err(),
            KeyError::ExpectedPublicKey {
                found: KeyKind::PrivateKey
            }
        );
        assert_eq!(
            PublicKey::from_pem_or_base64(&pem_body(&private)).unwrap_err(),
            KeyError::ExpectedPublicKey {
                found: KeyKind::PrivateKey
            }
        );
        assert_eq!(
            PrivateKey::from_pem_or_base64(&pem_body(&cert)).unwrap_err(),
            KeyError::ExpectedPrivateKey {
                found: KeyKind::Certificate
            }
        );
        let err = PublicKey::from_pem_or_base64(&cert).unwrap_err();
        assert!(err.to_string().contains("certificate mode"), "{err}");
    }

    #[test]
    fn garbage_is_typed_and_not_echoed() {
        assert_eq!(
            PrivateKey::from_pem_or_base64("  \n").unwrap_err(),
            KeyError::Empty
        );
        let err = PrivateKey::from_pem_or_base64("secret-not-base64!").unwrap_err();
        assert_eq!(err, KeyError::NotBase64);
        assert!(!err.to_string().contains("secret"));
        assert_eq!(
            PrivateKey::from_pem_or_base64("AAAA").unwrap_err(),
            KeyError::Malformed
        );
        let err =
            PrivateKey::from_pem_or_base64("-----BEGIN PRIVATE KEY-----\nAAAA\n").unwrap_err();
        assert!(matches!(err, KeyError::Pem { .. }), "{err:?}");
        let err = PrivateKey::from_pem_or_base64(
            "-----BEGIN EC PARAMETERS-----\nAAAA\n-----END EC PARAMETERS-----\n",
        )
        .unwrap_err();
        assert!(
            matches!(err, KeyError::UnsupportedPemLabel { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn mismatch_is_reported() {
        let app = PrivateKey::from_pem_or_base64(&read("keys/app_private_pkcs1.pem")).unwrap();
        let platform = PublicKey::from_pem_or_base64(&read("keys/alipay_public.pem")).unwrap();
        let err = app
            .check_pair(&platform, "the app private key", "the app certificate")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the app private key and the app certificate are not a key pair: the public key does not belong to the private key"
        );
        assert!(!format!("{app:?}").contains("MII"));
    }

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[0, 0, 1]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(
            size_warnings(1024),
            vec![KeyWarning::SmallModulus { bits: 1024 }]
        );
    }

    #[test]
    fn spki_der_is_the_public_key_pem_body() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata");
        for file in [
            "vectors/keys/alipay_public.pem",
            "vectors/keys/app_public.pem",
            "keys/small_1024_public.pem",
        ] {
            let pem = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let der = KEY_BASE64.decode(body).unwrap();
            let key = PublicKey::from_pem_or_base64(&pem).unwrap();
            assert_eq!(key.spki_der(), der, "{file}");
            assert_eq!(key.fingerprint().len(), 16);
        }
        let mut out = Vec::new();
        push_der_len(&mut out, 0x7f);
        push_der_len(&mut out, 0x80);
        push_der_len(&mut out, 0x1_0000);
        assert_eq!(out, [0x7f, 0x81, 0x80, 0x83, 0x01, 0x00, 0x00]);
    }
}
