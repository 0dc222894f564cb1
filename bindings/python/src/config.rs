//! The client configuration from Python: `alipay_msg.Config` (a dataclass in
//! `python/alipay_msg/_config.py`) read attribute by attribute into the core's
//! [`ClientConfig`], durations in seconds (float) → [`Duration`], the rules checked by
//! the core when the session starts.

use std::time::Duration;

use alipay_msg_core::charset::Charset;
use alipay_msg_core::client::{ClientConfig, ConfigError as CoreConfigError, Credentials};
use alipay_msg_core::endpoint::Endpoint;
use alipay_msg_core::signature::SignType;
use alipay_msg_core::window::{SharedWindowConfig, StoreFailure};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{config_error, ConfigError};
use crate::keys::{PrivateKey, PublicKey};

/// The tunables every configuration has, by their Python name: read by
/// [`client_config`] and listed by [`config_defaults`].
const SECONDS: [&str; 9] = [
    "heartbeat_interval",
    "dead_after",
    "connect_timeout",
    "backoff_base",
    "backoff_cap",
    "backoff_reset_after",
    "duplicate_max_age",
    "consumer_grace",
    "send_timeout",
];

/// A `ConfigError` naming the setting.
fn invalid(name: &str, reason: &str) -> PyErr {
    ConfigError::new_err(format!("invalid setting {name}: {reason}"))
}

/// A duration given in seconds: a finite number, at least 0.
fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        invalid(
            name,
            "must be a finite number of seconds, at least 0 (at most 365 days)",
        )
    })
}

/// A count: an int, at least 0.
fn count(name: &str, value: i64) -> PyResult<usize> {
    usize::try_from(value).map_err(|_| invalid(name, "must be at least 0"))
}

fn attr<'py, T: FromPyObjectOwned<'py>>(config: &Bound<'py, PyAny>, name: &str) -> PyResult<T> {
    let value = config.getattr(name)?;
    let extracted = value.extract::<T>().map_err(Into::into);
    extracted.map_err(|e: PyErr| {
        pyo3::exceptions::PyTypeError::new_err(format!("Config.{name}: {}", e.value(config.py())))
    })
}

/// Text or a loaded key, for a key setting.
enum KeyText<K> {
    Text(String),
    Loaded(K),
}

/// The core configuration of an `alipay_msg.Config`.
///
/// Raises ConfigError for what the core refuses at once (keys, certificates, endpoint,
/// charset, sign_type, negative or non-finite durations, neither or both key modes),
/// TypeError for an attribute of the wrong type. The rules between settings are checked
/// when the session starts (`ClientSession::new`), also as ConfigError.
pub(crate) fn client_config(config: &Bound<'_, PyAny>) -> PyResult<ClientConfig> {
    let app_id: String = attr(config, "app_id")?;
    let credentials = credentials(config)?;
    let mut core = ClientConfig::new(app_id, credentials);
    let endpoint: String = attr(config, "endpoint")?;
    core.endpoint = Endpoint::parse(&endpoint).map_err(|e| ConfigError::new_err(e.to_string()))?;
    let charset: String = attr(config, "charset")?;
    core.charset = charset
        .parse::<Charset>()
        .map_err(|e| ConfigError::new_err(e.to_string()))?;
    let sign_type: String = attr(config, "sign_type")?;
    core.sign_type = sign_type
        .parse::<SignType>()
        .map_err(|e| ConfigError::new_err(e.to_string()))?;

    let mut durations = [Duration::ZERO; SECONDS.len()];
    for (slot, name) in durations.iter_mut().zip(SECONDS) {
        *slot = seconds(name, attr(config, name)?)?;
    }
    let [heartbeat_interval, dead_after, connect_timeout, backoff_base, backoff_cap, backoff_reset_after, duplicate_max_age, consumer_grace, send_timeout] =
        durations;
    core.heartbeat_interval = heartbeat_interval;
    core.dead_after = dead_after;
    core.connect_timeout = connect_timeout;
    core.backoff.base = backoff_base;
    core.backoff.cap = backoff_cap;
    core.backoff.reset_after = backoff_reset_after;
    core.duplicate_max_age = duplicate_max_age;
    core.consumer_grace = consumer_grace;
    core.send_timeout = send_timeout;
    core.shutdown_timeout = seconds("shutdown_timeout", attr(config, "shutdown_timeout")?)?;
    let optional = |name: &str| -> PyResult<Option<Duration>> {
        attr::<Option<f64>>(config, name)?
            .map(|s| seconds(name, s))
            .transpose()
    };
    core.first_connect_timeout = optional("first_connect_timeout")?;
    core.max_clock_skew = optional("max_clock_skew")?;
    core.max_message_age = optional("max_message_age")?;
    core.retry_on_auth_error = attr(config, "retry_on_auth_error")?;
    core.duplicate_capacity = count("duplicate_capacity", attr(config, "duplicate_capacity")?)?;
    core.max_in_flight = count("max_in_flight", attr(config, "max_in_flight")?)?;
    core.check_parallelism = count("check_parallelism", attr(config, "check_parallelism")?)?;
    core.max_pending_sends = count("max_pending_sends", attr(config, "max_pending_sends")?)?;
    core.frame_limits.max_frame_bytes = count("max_frame_bytes", attr(config, "max_frame_bytes")?)?;
    core.max_register_response_bytes = count(
        "max_register_response_bytes",
        attr(config, "max_register_response_bytes")?,
    )?;
    core.shared_window = shared_window(&config.getattr("shared_window")?)?;
    Ok(core)
}

/// The shared window's settings of an `alipay_msg.SharedWindowConfig` (None: off).
///
/// Raises ConfigError for a duration not more than 0 s or over 365 days
/// ([`SharedWindowConfig::check`]) or an unknown `on_store_failure`, TypeError for an
/// attribute of the wrong type.
fn shared_window(value: &Bound<'_, PyAny>) -> PyResult<Option<SharedWindowConfig>> {
    if value.is_none() {
        return Ok(None);
    }
    let name = |field: &str| format!("shared_window.{field}");
    let lease = seconds(&name("lease"), attr(value, "lease")?)?;
    let window = seconds(&name("window"), attr(value, "window")?)?;
    let record_retry = seconds(&name("record_retry"), attr(value, "record_retry")?)?;
    let on_store_failure: String = attr(value, "on_store_failure")?;
    let on_store_failure = match on_store_failure.as_str() {
        "fail" => StoreFailure::Fail,
        "local_window" => StoreFailure::LocalWindow,
        _ => {
            return Err(invalid(
                "shared_window.on_store_failure",
                "must be \"fail\" or \"local_window\"",
            ))
        }
    };
    let settings = SharedWindowConfig::new()
        .with_lease(lease)
        .with_window(window)
        .with_record_retry(record_retry)
        .with_store_failure(on_store_failure);
    settings
        .check()
        .map_err(|e| ConfigError::new_err(e.to_string()))?;
    Ok(Some(settings))
}

/// A key setting: its text (PEM or bare base64) or the key of a loaded key object
/// (`PrivateKey`, `PublicKey`), by `loaded`; `None` when unset.
fn key_setting<K>(
    value: &Bound<'_, PyAny>,
    name: &str,
    loaded: impl FnOnce(&Bound<'_, PyAny>) -> Option<K>,
) -> PyResult<Option<KeyText<K>>> {
    if value.is_none() {
        return Ok(None);
    }
    if let Some(key) = loaded(value) {
        return Ok(Some(KeyText::Loaded(key)));
    }
    match value.extract::<String>() {
        Ok(text) => Ok(Some(KeyText::Text(text))),
        Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "Config.{name} must be a str (PEM or base64) or a loaded key, not {}",
            value.get_type().name()?
        ))),
    }
}

fn credentials(config: &Bound<'_, PyAny>) -> PyResult<Credentials> {
    let private = config.getattr("app_private_key")?;
    let public = config.getattr("alipay_public_key")?;
    let private = key_setting(&private, "app_private_key", |v| {
        v.cast::<PrivateKey>().ok().map(|k| k.get().core().clone())
    })?
    .ok_or_else(|| ConfigError::new_err("app_private_key is required"))?;
    let public = key_setting(&public, "alipay_public_key", |v| {
        v.cast::<PublicKey>().ok().map(|k| k.get().core().clone())
    })?;
    let app_cert: Option<String> = attr(config, "app_cert")?;
    let alipay_cert: Option<String> = attr(config, "alipay_cert")?;
    let alipay_root_cert: Option<String> = attr(config, "alipay_root_cert")?;
    let key_error =
        |which: &'static str| move |source| config_error(CoreConfigError::Key { which, source });
    match (public, app_cert, alipay_cert, alipay_root_cert) {
        (Some(public), None, None, None) => {
            let app_private_key = match private {
                KeyText::Loaded(key) => key,
                KeyText::Text(text) => alipay_msg_core::key::PrivateKey::from_pem_or_base64(&text)
                    .map_err(key_error("app private key"))?,
            };
            let alipay_public_key = match public {
                KeyText::Loaded(key) => key,
                KeyText::Text(text) => alipay_msg_core::key::PublicKey::from_pem_or_base64(&text)
                    .map_err(key_error("platform public key"))?,
            };
            Ok(Credentials::PublicKey {
                app_private_key,
                alipay_public_key,
            })
        }
        (None, Some(app_cert), Some(alipay_cert), Some(alipay_root_cert)) => {
            let private = match private {
                KeyText::Text(text) => text,
                KeyText::Loaded(_) => {
                    return Err(pyo3::exceptions::PyTypeError::new_err(
                        "Config.app_private_key must be key text in certificate mode",
                    ))
                }
            };
            Credentials::certificate(&private, &app_cert, &alipay_cert, &alipay_root_cert)
                .map_err(config_error)
        }
        _ => Err(ConfigError::new_err(
            "give the platform key one way: alipay_public_key (public-key mode), or app_cert, \
             alipay_cert and alipay_root_cert together (certificate mode)",
        )),
    }
}

/// The tunables of `config` by their Python names, in Python units (seconds as float,
/// None for "off").
fn settings<'py>(py: Python<'py>, config: &ClientConfig) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    let durations = [
        config.heartbeat_interval,
        config.dead_after,
        config.connect_timeout,
        config.backoff.base,
        config.backoff.cap,
        config.backoff.reset_after,
        config.duplicate_max_age,
        config.consumer_grace,
        config.send_timeout,
    ];
    for (name, value) in SECONDS.iter().zip(durations) {
        out.set_item(name, value.as_secs_f64())?;
    }
    out.set_item("shutdown_timeout", config.shutdown_timeout.as_secs_f64())?;
    for (name, value) in [
        ("first_connect_timeout", config.first_connect_timeout),
        ("max_clock_skew", config.max_clock_skew),
        ("max_message_age", config.max_message_age),
    ] {
        out.set_item(name, value.map(|d| d.as_secs_f64()))?;
    }
    out.set_item("retry_on_auth_error", config.retry_on_auth_error)?;
    for (name, value) in [
        ("duplicate_capacity", config.duplicate_capacity),
        ("max_in_flight", config.max_in_flight),
        ("check_parallelism", config.check_parallelism),
        ("max_pending_sends", config.max_pending_sends),
        ("max_frame_bytes", config.frame_limits.max_frame_bytes),
        (
            "max_register_response_bytes",
            config.max_register_response_bytes,
        ),
    ] {
        out.set_item(name, value)?;
    }
    out.set_item("endpoint", config.endpoint.to_string())?;
    out.set_item("charset", config.charset.as_str())?;
    out.set_item("sign_type", config.sign_type.as_str())?;
    let shared_window = match &config.shared_window {
        None => None,
        Some(window) => {
            let settings = PyDict::new(py);
            settings.set_item("lease", window.lease.as_secs_f64())?;
            settings.set_item("window", window.window.as_secs_f64())?;
            settings.set_item("record_retry", window.record_retry.as_secs_f64())?;
            let on_store_failure = match window.on_store_failure {
                StoreFailure::Fail => "fail",
                StoreFailure::LocalWindow => "local_window",
            };
            settings.set_item("on_store_failure", on_store_failure)?;
            Some(settings)
        }
    };
    out.set_item("shared_window", shared_window)?;
    Ok(out)
}

/// _config_defaults(app_private_key: str, alipay_public_key: str) -> dict[str, object]
///
/// The core's defaults (`ClientConfig::new`) by the names of alipay_msg.Config, in its
/// units: the tests check that Config's defaults are these. Raises ConfigError when a
/// key does not load.
#[pyfunction]
pub fn _config_defaults<'py>(
    py: Python<'py>,
    app_private_key: &str,
    alipay_public_key: &str,
) -> PyResult<Bound<'py, PyDict>> {
    let credentials =
        Credentials::public_key(app_private_key, alipay_public_key).map_err(config_error)?;
    settings(py, &ClientConfig::new("0", credentials))
}

/// _effective_config(config: Config) -> dict[str, object]
///
/// What the session makes of `config` (the same shape as _config_defaults): the tests
/// check that every attribute of Config reaches the core. Raises as ClientSession does
/// for a configuration it cannot read.
#[pyfunction]
pub fn _effective_config<'py>(
    py: Python<'py>,
    config: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    settings(py, &client_config(config)?)
}
