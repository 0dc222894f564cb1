//! Certificate serial numbers ("SN") sent to the platform (PROTOCOL §9).
//!
//! * `app_cert_sn` — [`Certificate::sn`] of the app public-key certificate.
//! * `alipay_cert_sn` — [`platform_cert_sn`] of the platform public-key certificate
//!   file.
//! * `alipay_root_cert_sn` — [`root_cert_sn`] of the root bundle.

use md5::{Digest, Md5};

use super::{CertError, Certificate};

/// Lowercase hex MD5 (always 32 digits) of the UTF-8 bytes of `issuer_name`
/// followed by `serial_decimal` (PROTOCOL §9).
pub(crate) fn cert_sn(issuer_name: &str, serial_decimal: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(issuer_name.as_bytes());
    md5.update(serial_decimal.as_bytes());
    md5.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The root cert SN of a root bundle: the [`Certificate::sn`] of every RSA-signed
/// certificate ([`Certificate::is_rsa_signed`]) joined with `_`, in file order;
/// EC / SM2 certificates are skipped (PROTOCOL §9).
///
/// This is the platform SDK's `AntCertificationUtil.getRootCertSN`. Errors:
/// [`CertError::EmptyChain`] for an empty list, [`CertError::NoRsaRoot`] when no
/// certificate is RSA-signed (the SDK then reports the bundle as invalid).
pub fn root_cert_sn(certs: &[Certificate]) -> Result<String, CertError> {
    if certs.is_empty() {
        return Err(CertError::EmptyChain);
    }
    let sns: Vec<String> = certs
        .iter()
        .filter(|c| c.is_rsa_signed())
        .map(Certificate::sn)
        .collect();
    if sns.is_empty() {
        return Err(CertError::NoRsaRoot { count: certs.len() });
    }
    Ok(sns.join("_"))
}

/// The certificate of a platform public-key certificate file that the SN and the
/// verification key come from: the **first** certificate in file order (PROTOCOL §9).
///
/// The file may hold a chain (the platform certificate followed by intermediate CA
/// certificates). The platform's Java SDK reads it with
/// `CertificateFactory.generateCertificate(stream)`, which returns only the first
/// certificate of the stream, and takes both `alipay_cert_sn`
/// (`AntCertificationUtil.getCertSN(cert)`) and the platform public key
/// (`cert.getPublicKey()`) from that one certificate; the rest of the file is used
/// only when the chain is checked for trust (`AntCertificationUtil.isTrusted`).
/// Sources read: `alipay/alipay-sdk-java-all`,
/// `src/main/java/com/alipay/api/internal/util/AntCertificationUtil.java`
/// (`getCertFromPath`, `getCertFromContent`, `getCertSN`, `getAlipayPublicKey`,
/// `isTrusted`) and `AlipaySignature.java` (`getCertSN`, `getAlipayPublicKey`).
///
/// Errors with [`CertError::EmptyChain`] for an empty list.
pub fn platform_cert(chain: &[Certificate]) -> Result<&Certificate, CertError> {
    chain.first().ok_or(CertError::EmptyChain)
}

/// `alipay_cert_sn`: the [`Certificate::sn`] of the first certificate of a platform
/// public-key certificate file — see [`platform_cert`] for why the first (PROTOCOL §9).
/// For a single-certificate file it is that certificate's SN.
pub fn platform_cert_sn(chain: &[Certificate]) -> Result<String, CertError> {
    Ok(platform_cert(chain)?.sn())
}

#[cfg(test)]
mod tests {
    use super::cert_sn;

    #[test]
    fn md5_hex_is_32_lowercase_digits() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(cert_sn("", ""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            cert_sn(
                "CN=Test Open Platform Root CA R1,OU=Certification Authority,O=Test Open Platform,C=CN",
                "47724914708969405121171"
            ),
            "2a82c79ac8cfebc5e6099dfafccafbc8"
        );
    }

    #[test]
    fn non_ascii_issuer_is_hashed_as_utf8() {
        // MD5 of the UTF-8 bytes of "O=支付宝1".
        let expected: String = {
            use md5::{Digest, Md5};
            Md5::digest("O=支付宝1".as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        assert_eq!(cert_sn("O=支付宝", "1"), expected);
    }
}
