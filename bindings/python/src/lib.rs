//! The native module `alipay_msg._native` of the Python package `alipay_msg`: the core's
//! notification verification, key loading and certificate SNs, for Python.
//!
//! The Python API is `alipay_msg` (`python/alipay_msg/`), which re-exports what is here
//! and builds typed results; stubs are in `python/alipay_msg/*.pyi`. Unlike the other
//! crates this one cannot `forbid(unsafe_code)`: PyO3's macros expand to unsafe code.
//! None is written by hand.
#![warn(missing_docs)]

mod cert;
mod errors;
mod keys;
mod notification;

use pyo3::prelude::*;

/// Native part of the alipay_msg package; import alipay_msg instead.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("AlipayMsgError", py.get_type::<errors::AlipayMsgError>())?;
    m.add("SignatureError", py.get_type::<errors::SignatureError>())?;
    m.add("MalformedError", py.get_type::<errors::MalformedError>())?;
    m.add("InvalidKeyError", py.get_type::<errors::InvalidKeyError>())?;
    m.add(
        "CertificateError",
        py.get_type::<errors::CertificateError>(),
    )?;
    m.add_class::<keys::PublicKey>()?;
    m.add_class::<keys::PrivateKey>()?;
    m.add_function(wrap_pyfunction!(keys::load_public_key, m)?)?;
    m.add_function(wrap_pyfunction!(keys::load_private_key, m)?)?;
    m.add_function(wrap_pyfunction!(keys::load_cert_public_key, m)?)?;
    m.add_function(wrap_pyfunction!(cert::cert_sn, m)?)?;
    m.add_function(wrap_pyfunction!(cert::root_cert_sn, m)?)?;
    m.add_function(wrap_pyfunction!(notification::verify, m)?)?;
    Ok(())
}
