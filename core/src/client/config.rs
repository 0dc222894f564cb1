//! Client configuration, validated once at start-up.

use std::time::Duration;

use crate::cert::{platform_cert, platform_cert_sn, root_cert_sn, CertError, Certificate};
use crate::charset::Charset;
use crate::crypto::Backend;
use crate::endpoint::Endpoint;
use crate::frame::FrameLimits;
use crate::http::DEFAULT_MAX_RESPONSE_BYTES;
use crate::key::{KeyError, KeyWarning, PrivateKey, PublicKey};
use crate::register::CertSns;
use crate::signature::{SignType, SignatureError, Signer, Verifier};

use super::backoff::BackoffConfig;
use crate::window::SharedWindowConfig;

/// The keys of an app: public-key mode or certificate mode (PROTOCOL §9).
#[derive(Debug, Clone)]
// Built once at start-up; boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Credentials {
    /// Public-key mode: the app private key and the platform public key.
    PublicKey {
        /// Signs register, upgrade and PRODUCE.
        app_private_key: PrivateKey,
        /// Verifies CONSUME and register answers.
        alipay_public_key: PublicKey,
    },
    /// Certificate mode: keys plus the three certificate files.
    Certificate {
        /// Signs register, upgrade and PRODUCE.
        app_private_key: PrivateKey,
        /// The app public-key certificate (`app_cert_sn`).
        app_cert: Certificate,
        /// The platform public-key certificate file (`alipay_cert_sn`, platform key).
        alipay_cert_chain: Vec<Certificate>,
        /// The platform root bundle (`alipay_root_cert_sn`).
        alipay_root_certs: Vec<Certificate>,
    },
}

impl Credentials {
    /// Public-key mode from key text (PEM or bare base64).
    pub fn public_key(app_private_key: &str, alipay_public_key: &str) -> Result<Self, ConfigError> {
        Ok(Credentials::PublicKey {
            app_private_key: PrivateKey::from_pem_or_base64(app_private_key).map_err(|source| {
                ConfigError::Key {
                    which: "app private key",
                    source,
                }
            })?,
            alipay_public_key: PublicKey::from_pem_or_base64(alipay_public_key).map_err(
                |source| ConfigError::Key {
                    which: "platform public key",
                    source,
                },
            )?,
        })
    }

    /// Certificate mode from key and certificate text (PEM). Checks that the app key and
    /// the app certificate are one pair.
    pub fn certificate(
        app_private_key: &str,
        app_cert: &str,
        alipay_cert: &str,
        alipay_root_cert: &str,
    ) -> Result<Self, ConfigError> {
        let cert = |which, text| {
            Certificate::all_from_pem(text)
                .map_err(|source| ConfigError::Certificate { which, source })
        };
        let credentials = Credentials::Certificate {
            app_private_key: PrivateKey::from_pem_or_base64(app_private_key).map_err(|source| {
                ConfigError::Key {
                    which: "app private key",
                    source,
                }
            })?,
            app_cert: Certificate::from_pem(app_cert).map_err(|source| {
                ConfigError::Certificate {
                    which: "app certificate",
                    source,
                }
            })?,
            alipay_cert_chain: cert("platform certificate", alipay_cert)?,
            alipay_root_certs: cert("platform root certificate", alipay_root_cert)?,
        };
        credentials.resolve()?;
        Ok(credentials)
    }

    /// The app private key.
    pub fn app_private_key(&self) -> &PrivateKey {
        match self {
            Credentials::PublicKey {
                app_private_key, ..
            }
            | Credentials::Certificate {
                app_private_key, ..
            } => app_private_key,
        }
    }

    /// Keys and SNs ready for use; checks key/certificate pairs.
    pub(crate) fn resolve(&self) -> Result<Resolved, ConfigError> {
        match self {
            Credentials::PublicKey {
                alipay_public_key, ..
            } => Ok(Resolved {
                platform_key: alipay_public_key.clone(),
                cert_sns: None,
                platform_cert_sn: None,
            }),
            Credentials::Certificate {
                app_private_key,
                app_cert,
                alipay_cert_chain,
                alipay_root_certs,
            } => {
                let app_cert_key =
                    app_cert
                        .public_key()
                        .map_err(|source| ConfigError::Certificate {
                            which: "app certificate",
                            source,
                        })?;
                app_private_key
                    .check_pair(&app_cert_key, "the app private key", "the app certificate")
                    .map_err(ConfigError::KeyCertificateMismatch)?;
                let platform = |source| ConfigError::Certificate {
                    which: "platform certificate",
                    source,
                };
                let platform_key = platform_cert(alipay_cert_chain)
                    .and_then(Certificate::public_key)
                    .map_err(platform)?;
                Ok(Resolved {
                    platform_key,
                    cert_sns: Some(CertSns {
                        app_cert_sn: app_cert.sn(),
                        alipay_root_cert_sn: root_cert_sn(alipay_root_certs).map_err(|source| {
                            ConfigError::Certificate {
                                which: "platform root certificate",
                                source,
                            }
                        })?,
                    }),
                    platform_cert_sn: Some(platform_cert_sn(alipay_cert_chain).map_err(platform)?),
                })
            }
        }
    }

    /// Warnings about the keys (e.g. a modulus under 2048 bits).
    pub fn warnings(&self) -> Vec<(&'static str, KeyWarning)> {
        let mut out: Vec<_> = self
            .app_private_key()
            .warnings()
            .into_iter()
            .map(|w| ("app private key", w))
            .collect();
        if let Ok(resolved) = self.resolve() {
            out.extend(
                resolved
                    .platform_key
                    .warnings()
                    .into_iter()
                    .map(|w| ("platform public key", w)),
            );
        }
        out
    }
}

/// What the session derives from [`Credentials`].
pub(crate) struct Resolved {
    pub(crate) platform_key: PublicKey,
    pub(crate) cert_sns: Option<CertSns>,
    pub(crate) platform_cert_sn: Option<String>,
}

/// Everything a [`super::ClientSession`] needs. Build with [`ClientConfig::new`] and
/// adjust the public fields; [`super::ClientSession::new`] validates the whole.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The app id (digits, as the platform issues them).
    pub app_id: String,
    /// Keys (and certificates in certificate mode).
    pub credentials: Credentials,
    /// Where the platform is (default: production over TLS).
    pub endpoint: Endpoint,
    /// Charset of signed content (default UTF-8).
    pub charset: Charset,
    /// Sign type of what the app signs (default RSA2).
    pub sign_type: SignType,
    /// RSA implementation (default: the fastest compiled in).
    pub backend: Backend,
    /// A websocket ping this often while connected (default 5 s).
    pub heartbeat_interval: Duration,
    /// No pong for this long: the connection is dead and is closed (default 15 s; the
    /// platform's Java client notices only after 60–90 s).
    pub dead_after: Duration,
    /// One attempt (register + upgrade) gives up after this long (default 10 s).
    pub connect_timeout: Duration,
    /// How long the clients' `connect` waits for the first connection, attempts and
    /// backoff included, before it gives up with `ClientError::ConnectTimeout` naming
    /// the last attempt's failure (default 30 s: the first attempt's `connect_timeout`
    /// and two more at the Java client's pace, PROTOCOL §8). `None` retries for as long
    /// as it takes. Once connected, reconnects go on for ever whatever this is.
    pub first_connect_timeout: Option<Duration>,
    /// Reconnect waits.
    pub backoff: BackoffConfig,
    /// Keep retrying after the platform refused the configuration (bad signature, app
    /// id, key/certificate mismatch). Off by default: such errors stop the client with a
    /// fatal event.
    pub retry_on_auth_error: bool,
    /// Reject CONSUMEs whose `x-timestamp` is further in the future than this
    /// (default 10 minutes; `None` turns the check off).
    pub max_clock_skew: Option<Duration>,
    /// Reject CONSUMEs whose `x-timestamp` is older than this (default 25 hours, the
    /// platform's retry horizon; `None` turns the check off).
    pub max_message_age: Option<Duration>,
    /// How many handled message ids are remembered for duplicate suppression
    /// (default 100 000).
    pub duplicate_capacity: usize,
    /// How long a handled message id is remembered (default 25 hours).
    pub duplicate_max_age: Duration,
    /// Deliveries awaiting completion before the session asks the adapter to stop
    /// reading (default 64).
    pub max_in_flight: usize,
    /// How long a verified message waits for a consumer while none is attached
    /// ([`super::ClientSession::set_consumer`]: the clients attach one when `run` or
    /// `deliveries` is called) before it is answered FAIL for the platform to redeliver
    /// to a connection that consumes (default 500 ms). It covers the moment between
    /// `connect` returning and `run` starting; a client that only sends answers every
    /// push FAIL after it.
    pub consumer_grace: Duration,
    /// How many frames the adapters check at once, each on a thread or task of its own
    /// ([`super::FrameChecker`]: parsing, and the CONSUME signature, nearly all of a
    /// message's cost): `0` (default) for one per core — per worker thread of the
    /// runtime — at most [`ClientConfig::AUTO_CHECK_PARALLELISM_MAX`]; `1` checks frames
    /// where they are read. At most [`ClientConfig::MAX_CHECK_PARALLELISM`]. Frames
    /// reach the session in the order they were read whatever this is.
    pub check_parallelism: usize,
    /// Unacknowledged PRODUCEs at most (default 200, as the platform's client).
    pub max_pending_sends: usize,
    /// A PRODUCE without its PRODUCE_ACK after this long fails (default 10 s).
    pub send_timeout: Duration,
    /// [`super::ClientSession::shutdown`] closes after this long even if deliveries are
    /// still in flight (default 30 s).
    pub shutdown_timeout: Duration,
    /// Frame limits.
    pub frame_limits: FrameLimits,
    /// Largest register answer accepted (default 64 KiB).
    pub max_register_response_bytes: usize,
    /// A duplicate window shared with the other instances of the service (default
    /// `None`: the local window alone, and no [`super::Output::Window`] ever). With it,
    /// each message is claimed in the shared store before delivery and recorded there
    /// before its SUCCESS ack (module [`crate::window`]); the local window still answers
    /// what this session handled.
    pub shared_window: Option<SharedWindowConfig>,
}

impl ClientConfig {
    /// Matches `shared_window` to whether the adapter was given a store for it: a store
    /// without the setting turns the setting on with its defaults; the setting without a
    /// store is refused ([`ConfigError::InvalidSetting`] naming `shared_window`), since
    /// the session would ask queries nobody answers. Every adapter calls this before
    /// [`super::ClientSession::new`].
    pub fn match_window_store(&mut self, has_store: bool) -> Result<(), ConfigError> {
        match (has_store, &self.shared_window) {
            (true, None) => self.shared_window = Some(SharedWindowConfig::default()),
            (false, Some(_)) => {
                return Err(ConfigError::InvalidSetting {
                    name: "shared_window",
                    reason: "needs a store: use Client::connect_with_window",
                })
            }
            _ => {}
        }
        Ok(())
    }

    /// Most checking lanes `check_parallelism: 0` picks, however many cores there are:
    /// beyond it the adapter's reading, not checking, limits a connection.
    pub const AUTO_CHECK_PARALLELISM_MAX: usize = 4;

    /// Longest duration any setting accepts: 365 days (a deadline is the current
    /// instant plus a setting, which must not overflow).
    pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

    /// Largest `check_parallelism` accepted.
    pub const MAX_CHECK_PARALLELISM: usize = 64;

    /// How many frames to check at once on a runtime with `workers` threads (cores, for
    /// the blocking adapter): `check_parallelism`, or when it is `0`, `workers` capped
    /// at [`ClientConfig::AUTO_CHECK_PARALLELISM_MAX`]. Never 0.
    ///
    /// ```
    /// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/keys");
    /// use alipay_msg_core::client::{ClientConfig, Credentials};
    ///
    /// let credentials = Credentials::public_key(
    ///     &std::fs::read_to_string(format!("{dir}/app_private_pkcs1.pem")).unwrap(),
    ///     &std::fs::read_to_string(format!("{dir}/alipay_public.pem")).unwrap(),
    /// ).unwrap();
    /// let mut config = ClientConfig::new("2021000000000001", credentials);
    /// assert_eq!(config.check_parallelism_for(2), 2);
    /// assert_eq!(config.check_parallelism_for(16), 4);
    /// config.check_parallelism = 1;
    /// assert_eq!(config.check_parallelism_for(16), 1);
    /// ```
    pub fn check_parallelism_for(&self, workers: usize) -> usize {
        match self.check_parallelism {
            0 => workers.clamp(1, Self::AUTO_CHECK_PARALLELISM_MAX),
            n => n.min(Self::MAX_CHECK_PARALLELISM),
        }
    }

    /// A configuration with every default, for `app_id` and `credentials`.
    pub fn new(app_id: impl Into<String>, credentials: Credentials) -> Self {
        ClientConfig {
            app_id: app_id.into(),
            credentials,
            endpoint: Endpoint::production(),
            charset: Charset::Utf8,
            sign_type: SignType::Rsa2,
            backend: Backend::default(),
            heartbeat_interval: Duration::from_secs(5),
            dead_after: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(10),
            first_connect_timeout: Some(Duration::from_secs(30)),
            backoff: BackoffConfig::default(),
            retry_on_auth_error: false,
            max_clock_skew: Some(Duration::from_secs(10 * 60)),
            max_message_age: Some(Duration::from_secs(25 * 3600)),
            duplicate_capacity: 100_000,
            duplicate_max_age: Duration::from_secs(25 * 3600),
            max_in_flight: 64,
            consumer_grace: Duration::from_millis(500),
            check_parallelism: 0,
            max_pending_sends: 200,
            send_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(30),
            frame_limits: FrameLimits::default(),
            max_register_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            shared_window: None,
        }
    }

    /// Checks the settings and prepares keys: the errors a misconfiguration gives at
    /// start-up.
    pub(crate) fn validate(&self) -> Result<Prepared, ConfigError> {
        check_app_id(&self.app_id)?;
        let setting = |name, ok: bool, reason| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::InvalidSetting { name, reason })
            }
        };
        setting(
            "heartbeat_interval",
            !self.heartbeat_interval.is_zero(),
            "must be more than zero",
        )?;
        setting(
            "dead_after",
            self.dead_after > self.heartbeat_interval,
            "must be longer than heartbeat_interval",
        )?;
        setting(
            "connect_timeout",
            !self.connect_timeout.is_zero(),
            "must be more than zero",
        )?;
        setting(
            "first_connect_timeout",
            self.first_connect_timeout != Some(Duration::ZERO),
            "must be more than zero (or none)",
        )?;
        setting(
            "send_timeout",
            !self.send_timeout.is_zero(),
            "must be more than zero",
        )?;
        setting(
            "max_in_flight",
            self.max_in_flight > 0,
            "must be at least 1",
        )?;
        setting(
            "check_parallelism",
            self.check_parallelism <= Self::MAX_CHECK_PARALLELISM,
            "must be at most 64",
        )?;
        setting(
            "max_pending_sends",
            self.max_pending_sends > 0,
            "must be at least 1",
        )?;
        setting(
            "backoff.cap",
            self.backoff.cap >= self.backoff.base,
            "must be at least backoff.base",
        )?;
        // Deadlines are the current instant plus these: bounded, they cannot overflow.
        for (name, duration) in [
            ("heartbeat_interval", Some(self.heartbeat_interval)),
            ("dead_after", Some(self.dead_after)),
            ("connect_timeout", Some(self.connect_timeout)),
            ("first_connect_timeout", self.first_connect_timeout),
            ("send_timeout", Some(self.send_timeout)),
            ("shutdown_timeout", Some(self.shutdown_timeout)),
            ("consumer_grace", Some(self.consumer_grace)),
            ("duplicate_max_age", Some(self.duplicate_max_age)),
            ("max_clock_skew", self.max_clock_skew),
            ("max_message_age", self.max_message_age),
            ("backoff.cap", Some(self.backoff.cap)),
            ("backoff.reset_after", Some(self.backoff.reset_after)),
        ] {
            setting(
                name,
                duration.is_none_or(|d| d <= Self::MAX_DURATION),
                "must be at most 365 days (none waits for ever where that is allowed)",
            )?;
        }
        if let Some(shared) = &self.shared_window {
            shared.check().map_err(|e| ConfigError::InvalidSetting {
                name: e.name,
                reason: e.reason,
            })?;
        }
        let resolved = self.credentials.resolve()?;
        let signer = Signer::with_backend(
            self.credentials.app_private_key(),
            self.sign_type,
            self.backend,
        )
        .map_err(|source| ConfigError::Crypto {
            which: "app private key",
            source,
        })?;
        let verifier =
            Verifier::with_backend(&resolved.platform_key, self.backend).map_err(|source| {
                ConfigError::Crypto {
                    which: "platform public key",
                    source,
                }
            })?;
        Ok(Prepared {
            signer,
            verifier: std::sync::Arc::new(verifier),
            cert_sns: resolved.cert_sns,
            platform_cert_sn: resolved.platform_cert_sn,
        })
    }
}

/// Keys ready for the session.
pub(crate) struct Prepared {
    pub(crate) signer: Signer,
    pub(crate) verifier: std::sync::Arc<Verifier>,
    pub(crate) cert_sns: Option<CertSns>,
    pub(crate) platform_cert_sn: Option<String>,
}

/// App ids are the decimal numbers the platform issues (16 digits today).
fn check_app_id(app_id: &str) -> Result<(), ConfigError> {
    let reason = if app_id.is_empty() {
        "it is empty"
    } else if app_id.len() > 32 {
        "it is longer than 32 characters"
    } else if !app_id.bytes().all(|b| b.is_ascii_digit()) {
        "it must be the decimal number the platform issued (e.g. 2021000000000001)"
    } else {
        return Ok(());
    };
    Err(ConfigError::InvalidAppId {
        app_id: app_id.chars().take(40).collect(),
        reason,
    })
}

/// A misconfiguration, reported at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The app id is not a platform app id.
    #[error("invalid app id {app_id:?}: {reason}")]
    InvalidAppId {
        /// The app id as given (truncated).
        app_id: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A key could not be loaded.
    #[error("{which}: {source}")]
    Key {
        /// Which key.
        which: &'static str,
        /// Why.
        source: KeyError,
    },
    /// A certificate could not be loaded or used.
    #[error("{which}: {source}")]
    Certificate {
        /// Which certificate.
        which: &'static str,
        /// Why.
        source: CertError,
    },
    /// The app private key does not belong to the app certificate.
    #[error("{0}")]
    KeyCertificateMismatch(KeyError),
    /// The crypto backend cannot use a key.
    #[error("{which}: {source}")]
    Crypto {
        /// Which key.
        which: &'static str,
        /// Why.
        source: SignatureError,
    },
    /// A tunable is out of range.
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting {
        /// The field.
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}
