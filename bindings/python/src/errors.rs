//! The exceptions the package raises: one base class, one subclass per kind of failure.
//! Messages are the core's error messages, which never contain key material.

use alipay_msg_core::cert::CertError;
use alipay_msg_core::key::KeyError;
use alipay_msg_core::notify::NotifyError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::PyErr;

create_exception!(
    alipay_msg,
    AlipayMsgError,
    PyException,
    "Base class of every error this package raises about its input (a notification, a key, \
     a certificate). Misuse of the API (a wrong argument type, neither or both keys, an \
     unknown rule) raises TypeError or ValueError instead."
);
create_exception!(
    alipay_msg,
    SignatureError,
    AlipayMsgError,
    "A well-formed notification whose signature does not verify with the platform key \
     (PROTOCOL §10): it was not sent by the platform, or it was altered after it was sent, \
     or it was signed under the other rule (v1/v2). Answer `fail`."
);
create_exception!(
    alipay_msg,
    MalformedError,
    AlipayMsgError,
    "A notification body that cannot be checked or used (PROTOCOL §10): too large, a bad \
     percent escape, a duplicate parameter, an unsupported charset or sign_type, a missing \
     sign, sign_type or required field, a biz_content that is not a JSON object, an amount \
     that is not a decimal number. Answer `fail`."
);
create_exception!(
    alipay_msg,
    InvalidKeyError,
    AlipayMsgError,
    "An RSA key that cannot be loaded: empty, not PEM or base64, the wrong kind (a private \
     key where a public one is expected, a certificate, an encrypted key), not RSA. The \
     message says which; it never contains key material."
);
create_exception!(
    alipay_msg,
    CertificateError,
    AlipayMsgError,
    "A certificate file that cannot be used (PROTOCOL §9): no CERTIFICATE block, unreadable \
     PEM or DER, a public key that is not RSA, a root bundle without an RSA-signed \
     certificate."
);

/// The exception for a rejected notification: [`SignatureError`] when the signature
/// failed, [`MalformedError`] for everything else.
pub(crate) fn notify_error(e: NotifyError) -> PyErr {
    if e.is_signature_failure() {
        SignatureError::new_err(e.to_string())
    } else {
        MalformedError::new_err(e.to_string())
    }
}

/// The exception for a key that does not load.
pub(crate) fn key_error(e: KeyError) -> PyErr {
    InvalidKeyError::new_err(e.to_string())
}

/// The exception for a certificate file that cannot be used.
pub(crate) fn cert_error(e: CertError) -> PyErr {
    CertificateError::new_err(e.to_string())
}
