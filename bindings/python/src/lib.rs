//! The native module `alipay_msg._native` of the Python package `alipay_msg`: the core's
//! notification verification and notification gate, key loading and certificate SNs,
//! its sans-IO client session (`alipay_msg.session.ClientSession`), its HTTP CONNECT
//! proxy rules and answer reader, and the shared duplicate window's queries and Redis
//! store (`alipay_msg_redis`), for Python.
//!
//! The Python API is `alipay_msg` (`python/alipay_msg/`), which re-exports what is here
//! and builds typed results; stubs are in `python/alipay_msg/*.pyi`. Unlike the other
//! crates this one cannot `forbid(unsafe_code)`: PyO3's macros expand to unsafe code.
//! None is written by hand.
#![warn(missing_docs)]

mod cert;
mod clock;
mod config;
mod errors;
mod gate;
mod keys;
mod message;
mod notification;
mod outputs;
mod proxy;
mod session;
mod window;

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
    // A ProxyError made by hand (not by ConnectAnswer) has no status or reason.
    let proxy_error = py.get_type::<errors::ProxyError>();
    proxy_error.setattr("status", py.None())?;
    proxy_error.setattr("reason", py.None())?;
    for (name, error) in [
        ("ConfigError", py.get_type::<errors::ConfigError>()),
        ("ConnectError", py.get_type::<errors::ConnectError>()),
        ("ProxyError", py.get_type::<errors::ProxyError>()),
        ("RefusedError", py.get_type::<errors::RefusedError>()),
        (
            "ConnectTimeoutError",
            py.get_type::<errors::ConnectTimeoutError>(),
        ),
        ("SendError", py.get_type::<errors::SendError>()),
        (
            "NotConnectedError",
            py.get_type::<errors::NotConnectedError>(),
        ),
        (
            "TooManyPendingError",
            py.get_type::<errors::TooManyPendingError>(),
        ),
        (
            "ShuttingDownError",
            py.get_type::<errors::ShuttingDownError>(),
        ),
        (
            "InvalidMessageError",
            py.get_type::<errors::InvalidMessageError>(),
        ),
        (
            "SendTimeoutError",
            py.get_type::<errors::SendTimeoutError>(),
        ),
        (
            "ConnectionLostError",
            py.get_type::<errors::ConnectionLostError>(),
        ),
        (
            "UnknownDeliveryError",
            py.get_type::<errors::UnknownDeliveryError>(),
        ),
        (
            "ClientClosedError",
            py.get_type::<errors::ClientClosedError>(),
        ),
        ("WindowError", py.get_type::<errors::WindowError>()),
    ] {
        m.add(name, error)?;
    }
    m.add_class::<message::Message>()?;
    m.add_class::<message::ProduceAck>()?;
    m.add_class::<message::ProduceCode>()?;
    m.add_class::<session::ClientSession>()?;
    m.add_class::<session::Input>()?;
    m.add_class::<proxy::ProxyRules>()?;
    m.add_class::<proxy::ProxyTunnel>()?;
    m.add_class::<proxy::ConnectAnswer>()?;
    m.add_class::<outputs::Connect>()?;
    m.add_class::<outputs::Write>()?;
    m.add_class::<outputs::Close>()?;
    m.add_class::<outputs::Timeout>()?;
    m.add_class::<outputs::Done>()?;
    m.add_class::<outputs::Connecting>()?;
    m.add_class::<outputs::Connected>()?;
    m.add_class::<outputs::Disconnected>()?;
    m.add_class::<outputs::Duplicate>()?;
    m.add_class::<outputs::Rejected>()?;
    m.add_class::<outputs::ProduceAnswer>()?;
    m.add_class::<outputs::Fatal>()?;
    m.add_class::<outputs::GaveUp>()?;
    m.add_class::<outputs::KeyWarning>()?;
    m.add_class::<outputs::HandlerFailed>()?;
    m.add_class::<outputs::ShutdownComplete>()?;
    m.add_class::<outputs::SharedWindowFailed>()?;
    m.add_class::<outputs::SharedWindowRestored>()?;
    m.add_class::<window::WindowKey>()?;
    m.add_class::<window::WindowQuery>()?;
    m.add_class::<window::RedisWindow>()?;
    m.add_function(wrap_pyfunction!(config::_config_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(config::_effective_config, m)?)?;
    m.add_class::<keys::PublicKey>()?;
    m.add_class::<keys::PrivateKey>()?;
    m.add_function(wrap_pyfunction!(keys::load_public_key, m)?)?;
    m.add_function(wrap_pyfunction!(keys::load_private_key, m)?)?;
    m.add_function(wrap_pyfunction!(keys::load_cert_public_key, m)?)?;
    m.add_function(wrap_pyfunction!(cert::cert_sn, m)?)?;
    m.add_function(wrap_pyfunction!(cert::root_cert_sn, m)?)?;
    m.add_function(wrap_pyfunction!(notification::verify, m)?)?;
    m.add_class::<gate::NotifyGate>()?;
    m.add_class::<gate::NotifyClaim>()?;
    m.add_function(wrap_pyfunction!(gate::_gate_defaults, m)?)?;
    Ok(())
}
