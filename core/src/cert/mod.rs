//! Certificate mode (PROTOCOL §9): certificate SNs, the platform public key from its
//! certificate, and chain verification against the platform's root bundle.
//!
//! In certificate mode the app identifies its certificates to the platform by SN:
//!
//! * `app_cert_sn` = [`Certificate::sn`] of the app public-key certificate;
//! * `alipay_cert_sn` = [`platform_cert_sn`] of the platform public-key certificate
//!   file (its first certificate — see [`platform_cert`]);
//! * `alipay_root_cert_sn` = [`root_cert_sn`] of the root bundle: the SNs of its
//!   RSA-signed certificates joined with `_`.
//!
//! A certificate's SN is the lowercase hex MD5 (32 digits) of the UTF-8 bytes of its
//! issuer name followed by its serial number in decimal. The issuer name must be
//! byte-for-byte what Java's `X500Principal.getName()` prints, since the platform's
//! Java SDK and server compute it that way; [`Certificate::issuer_name`] re-implements
//! the JDK's RFC 2253 printer (rules below, from `sun.security.x509.AVA`, `RDN` and
//! `X500Name` in openjdk/jdk). The platform public key used to verify the platform's
//! signatures is the key inside the platform public-key certificate
//! ([`Certificate::public_key`]).
//!
//! # The JDK's RFC 2253 rules
//!
//! * RDNs in reverse order of the encoding, joined with `,`, no spaces; the AVAs of a
//!   multi-valued RDN in encoding order, joined with `+`; an empty name is `""`.
//! * Keywords only for `CN C L ST O OU STREET DC UID`; any other attribute type is its
//!   dotted OID (e.g. `1.2.840.113549.1.9.1` for an e-mail address), and its value is
//!   `#` + lowercase hex of the value's DER encoding.
//! * A value that is not a PrintableString, T61String, IA5String, GeneralString,
//!   BMPString or UTF8String is also printed as `#hex`.
//! * String values: content octets decoded as UTF-8 (whatever the string type);
//!   `, = + < > # ; " \` are backslash-escaped wherever they occur; NUL is `\00`;
//!   leading and trailing spaces and carriage returns are backslash-escaped; all other
//!   characters, non-ASCII included, are kept as is. (JDK 8–17 behaviour; JDK 25
//!   decodes T61String and BMPString by their own charsets instead.)
//!
//! # Example
//!
//! ```no_run
//! use alipay_msg_core::cert::{platform_cert, platform_cert_sn, root_cert_sn, Certificate};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Certificate::from_pem(&std::fs::read_to_string("appCertPublicKey.crt")?)?;
//! let platform = Certificate::all_from_pem(&std::fs::read_to_string("alipayCertPublicKey_RSA2.crt")?)?;
//! let roots = Certificate::all_from_pem(&std::fs::read_to_string("alipayRootCert.crt")?)?;
//!
//! let app_cert_sn = app.sn();
//! let alipay_cert_sn = platform_cert_sn(&platform)?;
//! let alipay_root_cert_sn = root_cert_sn(&roots)?;
//! let platform_key = platform_cert(&platform)?.public_key()?;
//! # let _ = (app_cert_sn, alipay_cert_sn, alipay_root_cert_sn, platform_key);
//! # Ok(())
//! # }
//! ```

mod certificate;
mod chain;
mod dn;
mod error;
pub(crate) mod pem;
mod serial;
mod sn;
mod time;

pub use certificate::{Certificate, RSA_SIGNATURE_OID_PREFIX};
pub use chain::verify_cert_file;
pub use error::{CertError, ChainError};
pub use sn::{platform_cert, platform_cert_sn, root_cert_sn};
