//! Certificate SNs for certificate mode (PROTOCOL §9).

use alipay_msg_core::cert::{self, Certificate};
use pyo3::prelude::*;

use crate::errors::cert_error;

/// cert_sn(pem: str) -> str
///
/// The SN of the first certificate in PEM text: `app_cert_sn` of the app public-key
/// certificate, `alipay_cert_sn` of the platform public-key certificate file (PROTOCOL
/// §9). It is 32 lowercase hex digits: MD5 of the issuer name (as Java's
/// X500Principal.getName() prints it) followed by the serial number in decimal.
///
/// Raises CertificateError when the text holds no readable certificate.
#[pyfunction]
pub fn cert_sn(pem: &str) -> PyResult<String> {
    Certificate::from_pem(pem)
        .map(|c| c.sn())
        .map_err(cert_error)
}

/// root_cert_sn(pem: str) -> str
///
/// `alipay_root_cert_sn` of a root certificate bundle (alipayRootCert.crt): the SNs of
/// its RSA-signed certificates joined with `_`, in file order; EC and SM2 certificates
/// are skipped (PROTOCOL §9).
///
/// Raises CertificateError when the text holds no readable certificate, or no
/// RSA-signed one.
#[pyfunction]
pub fn root_cert_sn(pem: &str) -> PyResult<String> {
    Certificate::all_from_pem(pem)
        .and_then(|certs| cert::root_cert_sn(&certs))
        .map_err(cert_error)
}
