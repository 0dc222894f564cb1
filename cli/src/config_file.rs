//! The TOML configuration file of the `alipay-msg` CLI (`listen`, `send`).
//!
//! ```toml
//! app_id = "2021000000000001"
//! endpoint = "127.0.0.1:7001"          # or "sandbox"; default: https://openchannel.alipay.com
//! charset = "UTF-8"                    # or "GBK"
//! sign_type = "RSA2"                   # or "RSA"
//!
//! [keys]
//! app_private_key_file = "keys/app_private_key.pem"   # or app_private_key = "MIIEv..."
//! # public-key mode:
//! alipay_public_key_file = "keys/alipay_public.pem"   # or alipay_public_key = "MIIB..."
//! # certificate mode (instead of alipay_public_key*):
//! # app_cert_file = "certs/appCertPublicKey.crt"
//! # alipay_cert_file = "certs/alipayCertPublicKey_RSA2.crt"
//! # alipay_root_cert_file = "certs/alipayRootCert.crt"
//!
//! [tuning]                             # every field optional
//! heartbeat_interval_ms = 5000
//! dead_after_ms = 15000
//! connect_timeout_ms = 10000
//! send_timeout_ms = 10000
//! max_in_flight = 64
//! consumer_grace_ms = 500              # a push waits this long for a consumer, then FAIL
//! check_parallelism = 0                # frames checked at once; 0: one per core, at most 4
//! max_pending_sends = 200
//! retry_on_auth_error = false
//!
//! [network]                            # every field optional
//! proxy = "http://proxy.corp:3128"     # HTTP CONNECT proxy; "none": direct; default:
//!                                      # HTTPS_PROXY / HTTP_PROXY / NO_PROXY
//! ca_file = "certs/corp-ca.pem"        # extra trusted root(s), PEM
//! native_roots = false                 # the OS's trust (feature native-roots)
//!
//! [dedup]                              # optional: one duplicate window for a cluster
//! redis_url = "redis://127.0.0.1:6379/0"   # see docs/clusters.md
//! ```
//!
//! Relative paths are relative to the configuration file. [`load_with_network`] gives the client
//! configuration; [`load_with_network`] also the [`Network`] of `[network]`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alipay_msg_core::client::{ClientConfig, ConfigError, Credentials};
use alipay_msg_core::endpoint::{Endpoint, EndpointError};
use serde::Deserialize;

use alipay_msg_tokio::network::{self, rustls, Network, Proxy};

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigFileError {
    /// The file (or a file it names) could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not valid TOML of the expected shape: a syntax error, a value of the wrong type,
    /// an unknown field (every table refuses fields it does not know, so a misspelt
    /// setting is not silently ignored) or a missing one. Shown as
    /// `PATH:LINE:COLUMN: FIELD: MESSAGE`, the field as `[table] name` (top-level fields
    /// without a table).
    #[error("{path}{location}{field}: {message}",
        path = path.display(),
        location = location.as_ref().map(|l| format!(":{}:{}", l.line, l.column)).unwrap_or_default(),
        field = field.as_deref().map(|f| format!(": {f}")).unwrap_or_default())]
    Toml {
        /// The path.
        path: PathBuf,
        /// Where in the file the parser stopped, when it says.
        location: Option<TextLocation>,
        /// The field at that place (`[tuning] max_in_flight`, `app_id`), when there is one.
        field: Option<String>,
        /// The parser's message.
        message: String,
    },
    /// A key is given neither inline nor as a file, or both ways.
    #[error("{path}: {message}")]
    Keys {
        /// The path.
        path: PathBuf,
        /// What is missing or doubled.
        message: String,
    },
    /// The endpoint cannot be used.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// A charset or sign type is unknown.
    #[error("{0}")]
    Value(String),
    /// The keys or settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    app_id: String,
    endpoint: Option<String>,
    charset: Option<String>,
    sign_type: Option<String>,
    keys: Keys,
    #[serde(default)]
    tuning: Tuning,
    #[serde(default)]
    network: NetworkTable,
    dedup: Option<Dedup>,
}

/// `[dedup]`: a duplicate window shared by every instance of the service, on Redis
/// (docs/clusters.md). [`load_dedup`] reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dedup {
    /// `redis://[user:password@]host[:port][/db]`: the Redis of the shared window
    /// (`alipay-msg-redis`). It may hold a password: never print it.
    pub redis_url: String,
}

/// The `[dedup]` table of a configuration file, if it has one (the rest of the file is
/// checked by [`load_with_network`]).
pub fn load_dedup(path: &Path) -> Result<Option<Dedup>, ConfigFileError> {
    let text = read(path)?;
    let file: File = toml::from_str(&text).map_err(|e| toml_error(&text, path, &e))?;
    Ok(file.dedup)
}

/// `[network]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NetworkTable {
    /// `http://host:port`, or `none`; absent: the environment.
    proxy: Option<String>,
    /// Extra roots (PEM), trusted besides webpki's (or the system's).
    ca_file: Option<PathBuf>,
    /// Verify with the operating system's trust (feature `native-roots`).
    native_roots: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Keys {
    app_private_key: Option<String>,
    app_private_key_file: Option<PathBuf>,
    alipay_public_key: Option<String>,
    alipay_public_key_file: Option<PathBuf>,
    app_cert_file: Option<PathBuf>,
    alipay_cert_file: Option<PathBuf>,
    alipay_root_cert_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Tuning {
    heartbeat_interval_ms: Option<u64>,
    dead_after_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    send_timeout_ms: Option<u64>,
    shutdown_timeout_ms: Option<u64>,
    max_in_flight: Option<usize>,
    consumer_grace_ms: Option<u64>,
    check_parallelism: Option<usize>,
    max_pending_sends: Option<usize>,
    retry_on_auth_error: Option<bool>,
}

/// Reads a configuration file into a [`ClientConfig`] and the [`Network`] of its
/// `[network]` table (for [`alipay_msg_tokio::Client::connect_with_network`]).
pub fn load_with_network(path: &Path) -> Result<(ClientConfig, Network), ConfigFileError> {
    let text = read(path)?;
    parse_with_network(&text, path)
}

/// Parses configuration text; `path` locates relative key files and names errors.
#[cfg(test)]
fn parse(text: &str, path: &Path) -> Result<ClientConfig, ConfigFileError> {
    parse_with_network(text, path).map(|(config, _)| config)
}

/// Parses configuration text (`path` locates relative key files and names errors),
/// with the [`Network`] of `[network]`: the proxy (`"none"`, a URL, or
/// absent: the environment), and the TLS configuration when `ca_file` or
/// `native_roots` asks for one other than the default.
pub fn parse_with_network(
    text: &str,
    path: &Path,
) -> Result<(ClientConfig, Network), ConfigFileError> {
    let file: File = toml::from_str(text).map_err(|e| toml_error(text, path, &e))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let network = network_of(&file.network, base)?;
    let k = &file.keys;
    let inline_or_file =
        |name: &str, inline: &Option<String>, file: &Option<PathBuf>| match (inline, file) {
            (Some(text), None) => Ok(Some(text.clone())),
            (None, Some(f)) => read(&base.join(f)).map(Some),
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(ConfigFileError::Keys {
                path: path.to_owned(),
                message: format!("[keys] gives both {name} and {name}_file; keep one"),
            }),
        };
    let app_key = inline_or_file(
        "app_private_key",
        &k.app_private_key,
        &k.app_private_key_file,
    )?
    .ok_or_else(|| ConfigFileError::Keys {
        path: path.to_owned(),
        message: "[keys] needs app_private_key or app_private_key_file".into(),
    })?;
    let platform_key = inline_or_file(
        "alipay_public_key",
        &k.alipay_public_key,
        &k.alipay_public_key_file,
    )?;
    let certs = [
        &k.app_cert_file,
        &k.alipay_cert_file,
        &k.alipay_root_cert_file,
    ];
    let credentials = match (platform_key, certs) {
        (Some(platform_key), [None, None, None]) => Credentials::public_key(&app_key, &platform_key)?,
        (None, [Some(app), Some(platform), Some(root)]) => Credentials::certificate(
            &app_key,
            &read(&base.join(app))?,
            &read(&base.join(platform))?,
            &read(&base.join(root))?,
        )?,
        _ => {
            return Err(ConfigFileError::Keys {
                path: path.to_owned(),
                message: "[keys] needs either alipay_public_key(_file) (public-key mode) or all of app_cert_file, alipay_cert_file and alipay_root_cert_file (certificate mode)".into(),
            })
        }
    };
    let mut config = ClientConfig::new(file.app_id, credentials);
    if let Some(endpoint) = &file.endpoint {
        config.endpoint = Endpoint::parse(endpoint)?;
    }
    if let Some(charset) = &file.charset {
        config.charset = charset
            .parse()
            .map_err(|e| ConfigFileError::Value(format!("charset: {e}")))?;
    }
    if let Some(sign_type) = &file.sign_type {
        config.sign_type = sign_type
            .parse()
            .map_err(|e| ConfigFileError::Value(format!("sign_type: {e}")))?;
    }
    let t = &file.tuning;
    let ms = Duration::from_millis;
    if let Some(v) = t.heartbeat_interval_ms {
        config.heartbeat_interval = ms(v);
    }
    if let Some(v) = t.dead_after_ms {
        config.dead_after = ms(v);
    }
    if let Some(v) = t.connect_timeout_ms {
        config.connect_timeout = ms(v);
    }
    if let Some(v) = t.send_timeout_ms {
        config.send_timeout = ms(v);
    }
    if let Some(v) = t.shutdown_timeout_ms {
        config.shutdown_timeout = ms(v);
    }
    if let Some(v) = t.max_in_flight {
        config.max_in_flight = v;
    }
    if let Some(v) = t.consumer_grace_ms {
        config.consumer_grace = ms(v);
    }
    if let Some(v) = t.check_parallelism {
        config.check_parallelism = v;
    }
    if let Some(v) = t.max_pending_sends {
        config.max_pending_sends = v;
    }
    if let Some(v) = t.retry_on_auth_error {
        config.retry_on_auth_error = v;
    }
    Ok((config, network))
}

/// The [`Network`] of `[network]`; `base`: the configuration file's directory.
fn network_of(table: &NetworkTable, base: &Path) -> Result<Network, ConfigFileError> {
    let value = |field: &str, e: &dyn std::fmt::Display| {
        ConfigFileError::Value(format!("[network] {field}: {e}"))
    };
    let proxy = match table.proxy.as_deref().map(str::trim) {
        None => Proxy::FromEnv,
        Some(none) if none.eq_ignore_ascii_case("none") => Proxy::None,
        Some(url) => Proxy::http(url).map_err(|e| value("proxy", &e))?,
    };
    let extra = match &table.ca_file {
        Some(file) => {
            network::read_pem_certificates(&base.join(file)).map_err(|e| value("ca_file", &e))?
        }
        None => Vec::new(),
    };
    let tls = if table.native_roots == Some(true) {
        Some(native_tls_config(extra)?)
    } else if extra.is_empty() {
        None
    } else {
        let mut roots = network::webpki_roots();
        for cert in extra {
            roots.add(cert).map_err(|e| value("ca_file", &e))?;
        }
        Some(network::tls_config(roots))
    };
    let mut network = Network::default().proxy(proxy);
    network.tls = tls;
    Ok(network)
}

#[cfg(feature = "native-roots")]
fn native_tls_config(
    extra: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, ConfigFileError> {
    network::platform_tls_config(extra)
        .map_err(|e| ConfigFileError::Value(format!("[network] native_roots: {e}")))
}

#[cfg(not(feature = "native-roots"))]
fn native_tls_config(
    _extra: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> Result<std::sync::Arc<rustls::ClientConfig>, ConfigFileError> {
    Err(ConfigFileError::Value(
        "[network] native_roots: this alipay-msg was built without the native-roots feature".into(),
    ))
}

/// A line and column in a text, both from 1; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLocation {
    /// The line, from 1.
    pub line: usize,
    /// The column, in characters from 1.
    pub column: usize,
}

impl TextLocation {
    /// The location of byte `offset` of `text` (clamped to the text, and back to a
    /// character boundary).
    pub fn of(text: &str, offset: usize) -> Self {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        TextLocation {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

/// The error of the TOML parser with the place it points at: line, column and the field
/// there. The field is read from the text: the key of the line (`key = …`, before the
/// `=`), or the header of a `[table]` line, prefixed with the last `[table]` header above
/// it.
fn toml_error(text: &str, path: &Path, e: &toml::de::Error) -> ConfigFileError {
    let (location, field) = match e.span() {
        Some(span) => (
            Some(TextLocation::of(text, span.start)),
            field_at(text, span.start),
        ),
        None => (None, None),
    };
    ConfigFileError::Toml {
        path: path.to_owned(),
        location,
        field,
        message: e.message().trim_end().to_owned(),
    }
}

/// The field of the line holding byte `offset`; see [`toml_error`].
fn field_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[line_start..line_end].trim();
    if line.starts_with('[') {
        return Some(line.split('#').next().unwrap_or(line).trim().to_owned());
    }
    let key = line
        .split_once('=')?
        .0
        .trim()
        .trim_matches(|c| c == '"' || c == '\'');
    if key.is_empty() {
        return None;
    }
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.split('#').next().unwrap_or(l).trim());
    Some(match table {
        Some(table) => format!("{table} {key}"),
        None => key.to_owned(),
    })
}

fn read(path: &Path) -> Result<String, ConfigFileError> {
    std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/x.toml");

    #[test]
    fn public_key_mode_with_tuning() {
        let text = r#"
            app_id = "2021000000000001"
            endpoint = "127.0.0.1:7001"
            charset = "GBK"
            [keys]
            app_private_key_file = "keys/app_private_pkcs1.pem"
            alipay_public_key_file = "keys/alipay_public.pem"
            [tuning]
            max_in_flight = 8
            check_parallelism = 2
            dead_after_ms = 20000
        "#;
        let config = parse(text, Path::new(VECTORS)).unwrap();
        assert_eq!(config.endpoint, Endpoint::plain("127.0.0.1", 7001));
        assert_eq!(config.max_in_flight, 8);
        assert_eq!(config.check_parallelism, 2);
        assert_eq!(config.dead_after, Duration::from_secs(20));
        assert_eq!(config.charset, alipay_msg_core::charset::Charset::Gbk);
    }

    /// The README's configuration file parses as written (its key paths are relative to
    /// the repository root, as for a `client.toml` placed there).
    #[test]
    fn readme_configuration_file() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
        let fence = "```toml\napp_id";
        let start = readme
            .find(fence)
            .expect("the README shows a configuration file")
            + 8;
        let text = &readme[start..start + readme[start..].find("```").unwrap()];
        let config = parse(text, &Path::new(root).join("client.toml")).unwrap();
        assert_eq!(config.endpoint, Endpoint::plain("127.0.0.1", 7001));
        assert_eq!(config.app_id, "2021000000000001");
    }

    #[test]
    fn sandbox_endpoint() {
        let text = r#"
            app_id = "9021000000000001"
            endpoint = "sandbox"
            [keys]
            app_private_key_file = "keys/app_private_pkcs1.pem"
            alipay_public_key_file = "keys/alipay_public.pem"
        "#;
        let config = parse(text, Path::new(VECTORS)).unwrap();
        assert_eq!(config.endpoint, Endpoint::sandbox());
        assert_eq!(config.endpoint.host, "openchannel-sandbox.dl.alipaydev.com");
    }

    #[test]
    fn certificate_mode() {
        let text = r#"
            app_id = "2021000000000001"
            [keys]
            app_private_key_file = "keys/app_private_pkcs8.pem"
            app_cert_file = "certs/app_cert.crt"
            alipay_cert_file = "certs/alipay_cert.crt"
            alipay_root_cert_file = "certs/root_bundle_simple.crt"
        "#;
        let config = parse(text, Path::new(VECTORS)).unwrap();
        assert!(matches!(
            config.credentials,
            Credentials::Certificate { .. }
        ));
        assert_eq!(config.endpoint, Endpoint::production());
    }

    #[test]
    fn clear_errors() {
        let p = Path::new(VECTORS);
        let err = parse(
            "app_id = \"1\"\n[keys]\napp_private_key_file = \"keys/app_private_pkcs1.pem\"\n",
            p,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("either alipay_public_key"),
            "{err}"
        );
        let err = parse("app_id = \"1\"\nbogus = 1\n[keys]\n", p).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
        let err = parse("app_id = \"1\"\n[keys]\napp_private_key_file = \"nope.pem\"\nalipay_public_key = \"x\"\n", p).unwrap_err();
        assert!(err.to_string().contains("nope.pem"), "{err}");
        let err = parse("app_id = \"1\"\n[keys]\napp_private_key_file = \"keys/alipay_public.pem\"\nalipay_public_key_file = \"keys/alipay_public.pem\"\n", p).unwrap_err();
        assert_eq!(
            err.to_string(),
            "app private key: expected a private key, got a public key"
        );
    }

    /// A value of the wrong type: the message names the field, its table and the line.
    #[test]
    fn wrong_type_names_the_field_and_line() {
        let text =
            "app_id = \"1\"\n[keys]\nalipay_public_key = \"x\"\n[tuning]\nmax_in_flight = \"8\"\n";
        let err = parse(text, Path::new("client.toml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "client.toml:5:17: [tuning] max_in_flight: invalid type: string \"8\", expected usize"
        );
        let err = parse("app_id = 2021\n[keys]\n", Path::new("client.toml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "client.toml:1:10: app_id: invalid type: integer `2021`, expected a string"
        );
    }

    /// An unknown field is refused with its name, table and line.
    #[test]
    fn unknown_field_names_the_field_and_line() {
        let text = "app_id = \"1\"\n[keys]\napp_private_key_file = \"a.pem\"\nalipay_public_key_fle = \"b.pem\"\n";
        let err = parse(text, Path::new("client.toml")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("client.toml:4:1: [keys] alipay_public_key_fle: unknown field `alipay_public_key_fle`, expected one of"),
            "{text}"
        );
        // A syntax error has a line too.
        let err = parse("app_id = \"1\n", Path::new("client.toml")).unwrap_err();
        assert!(err.to_string().starts_with("client.toml:1:"), "{err}");
    }

    #[test]
    fn dedup_table() {
        let dir = std::env::temp_dir().join(format!("alipay-msg-dedup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.toml");
        let base = "app_id = \"2021000000000001\"\n[keys]\napp_private_key = \"x\"\nalipay_public_key = \"y\"\n";
        std::fs::write(&path, base).unwrap();
        assert_eq!(load_dedup(&path).unwrap(), None);
        std::fs::write(
            &path,
            format!("{base}[dedup]\nredis_url = \"redis://127.0.0.1:6379/0\"\n"),
        )
        .unwrap();
        assert_eq!(
            load_dedup(&path).unwrap(),
            Some(Dedup {
                redis_url: "redis://127.0.0.1:6379/0".into()
            })
        );
        std::fs::write(&path, format!("{base}[dedup]\nredis = \"x\"\n")).unwrap();
        let error = load_dedup(&path).unwrap_err().to_string();
        assert!(error.contains("[dedup]"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn network_table() {
        let dir = std::env::temp_dir().join(format!("alipay-msg-network-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let keys = format!(
            "app_id = \"2021000000000001\"\n[keys]\napp_private_key = \"{}\"\nalipay_public_key = \"{}\"\n",
            alipay_msg_simulator::test_keys::APP_PRIVATE_KEY.replace('\n', "\\n"),
            alipay_msg_simulator::test_keys::PLATFORM_PUBLIC_KEY.replace('\n', "\\n"),
        );
        let path = dir.join("config.toml");
        let (_, network) = parse_with_network(&keys, &path).unwrap();
        assert_eq!(network.proxy, Proxy::FromEnv);
        assert!(network.tls.is_none());

        let text = format!("{keys}[network]\nproxy = \"http://proxy.corp:3128\"\n");
        let (_, network) = parse_with_network(&text, &path).unwrap();
        assert_eq!(network.proxy, Proxy::http("proxy.corp:3128").unwrap());
        let text = format!("{keys}[network]\nproxy = \"none\"\n");
        assert_eq!(
            parse_with_network(&text, &path).unwrap().1.proxy,
            Proxy::None
        );

        let text = format!("{keys}[network]\nproxy = \"socks5://x:1\"\n");
        let err = parse_with_network(&text, &path).unwrap_err().to_string();
        assert!(err.contains("[network] proxy"), "{err}");

        // A CA file: webpki roots plus it.
        std::fs::write(
            dir.join("ca.pem"),
            include_str!("../../testdata/vectors/certs/root_ca.pem"),
        )
        .unwrap();
        let text = format!("{keys}[network]\nca_file = \"ca.pem\"\n");
        let (_, network) = parse_with_network(&text, &path).unwrap();
        assert!(network.tls.is_some());
        let text = format!("{keys}[network]\nca_file = \"missing.pem\"\n");
        let err = parse_with_network(&text, &path).unwrap_err().to_string();
        assert!(err.contains("[network] ca_file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
