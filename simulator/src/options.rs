//! What the simulator is started with: where it listens, which app it serves, the
//! platform key, the [`ServerConfig`] tunables of the platform state machine, and how
//! HTTP notifications are sent.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use alipay_msg_core::cert::{root_cert_sn, CertError, Certificate};
use alipay_msg_core::key::{PrivateKey, PublicKey};
use alipay_msg_core::server::{AppRegistration, ServerConfig};
use alipay_msg_core::signature::{SignType, SignatureError, Verifier};

use super::notifier::NotifyOptions;

/// The repository's test keys (copies of `testdata/vectors/keys` in this crate's
/// `keys/`, checked equal by the conformance tests), embedded in the binary so the
/// simulator and `alipay-msg demo` work from any directory. **Never use them for
/// anything but local tests: they are public.**
pub mod test_keys {
    /// The test app's private key (PKCS#1 PEM): what a client signs with.
    pub const APP_PRIVATE_KEY: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/keys/app_private_pkcs1.pem"
    ));
    /// The test app's public key (PEM): what the simulator verifies with.
    pub const APP_PUBLIC_KEY: &str =
        include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/keys/app_public.pem"));
    /// The test platform private key (PKCS#1 PEM): what the simulator signs with.
    pub const PLATFORM_PRIVATE_KEY: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/keys/alipay_private_pkcs1.pem"
    ));
    /// The test platform public key (PEM): what a client verifies with.
    pub const PLATFORM_PUBLIC_KEY: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/keys/alipay_public.pem"
    ));
    /// The app id the simulator serves by default.
    pub const APP_ID: &str = "2021000000000001";
}

/// How the simulated platform knows the app (PROTOCOL §2, §9).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AppKey {
    /// Public-key mode: the app's public key.
    PublicKey(PublicKey),
    /// Certificate mode: the key inside the app public-key certificate, and the SNs the
    /// app must send (`app_cert_sn`, and `alipay_root_cert_sn` when given; without it
    /// any root SN is accepted).
    Certificate {
        /// The key inside the app certificate.
        public_key: PublicKey,
        /// SN of the app certificate.
        app_cert_sn: String,
        /// SN of the platform root bundle the app sends.
        root_cert_sn: Option<String>,
    },
}

impl AppKey {
    /// Certificate mode from the app public-key certificate (PEM) and, optionally, the
    /// platform root certificate bundle (PEM) the app is configured with.
    pub fn from_certificates(
        app_cert_pem: &str,
        root_bundle_pem: Option<&str>,
    ) -> Result<Self, CertError> {
        let app = Certificate::from_pem(app_cert_pem)?;
        let root_cert_sn = match root_bundle_pem {
            Some(pem) => Some(root_cert_sn(&Certificate::all_from_pem(pem)?)?),
            None => None,
        };
        Ok(AppKey::Certificate {
            public_key: app.public_key()?,
            app_cert_sn: app.sn(),
            root_cert_sn,
        })
    }

    fn registration(&self) -> Result<AppRegistration, SignatureError> {
        Ok(match self {
            AppKey::PublicKey(key) => AppRegistration::new(Verifier::new(key)?),
            AppKey::Certificate {
                public_key,
                app_cert_sn,
                root_cert_sn,
            } => AppRegistration::new(Verifier::new(public_key)?)
                .with_cert_sns(app_cert_sn, root_cert_sn.as_deref()),
        })
    }
}

/// Options of [`super::Simulator::start`].
///
/// ```
/// use std::time::Duration;
/// use alipay_msg_simulator::SimulatorOptions;
///
/// let mut options = SimulatorOptions::with_test_keys();
/// options.server.ack_timeout = Duration::from_secs(2);
/// options.server.redelivery = vec![Duration::from_millis(100)];
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct SimulatorOptions {
    /// Address to listen on; the default `127.0.0.1:0` picks a free port (see
    /// [`super::Simulator::local_addr`]).
    pub listen: SocketAddr,
    /// The app [`super::Simulator::push`] pushes to. It is registered in
    /// [`SimulatorOptions::server`] by the constructors.
    pub app_id: String,
    /// The platform state machine's configuration: platform key, registered apps
    /// (`apps`), and tunables (`ack_timeout`, `redelivery`, `max_attempts`,
    /// `max_connections_per_app`, `zone`, `platform_cert_sn`, …).
    pub server: ServerConfig,
    /// Messages to push at start, one JSON object a line (`{"msg_api": …,
    /// "biz_content": {…}}`, the format of `testdata/examples/platform_messages.jsonl`).
    pub push_file: Option<PathBuf>,
    /// Seed of the link-token generator (`None`: random).
    pub seed: Option<u64>,
    /// Most TCP connections served at once; further ones are closed at once
    /// (default 256).
    pub max_connections: usize,
    /// Most frames queued for one websocket connection; a connection that falls
    /// further behind is closed by the platform, and its messages redelivered
    /// (default 4096).
    pub max_queued_frames: usize,
    /// Events kept for each subscriber of [`super::Simulator::events`]; one that falls
    /// further behind misses the oldest (default 4096).
    pub event_queue: usize,
    /// Serve TLS with this configuration ([`SimulatorOptions::tls`]; `None`: plain).
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// How HTTP notifications are sent ([`super::Simulator::notify`]): the time scale of
    /// the retry schedule, concurrency, bounds, timeout.
    pub notify: NotifyOptions,
}

impl SimulatorOptions {
    /// A simulator serving `app_id`, known by `app_key`, signing with `platform_key`.
    pub fn new(
        app_id: &str,
        app_key: &AppKey,
        platform_key: &PrivateKey,
    ) -> Result<Self, SignatureError> {
        let server = ServerConfig::from_platform_key(platform_key)?
            .with_app(app_id, app_key.registration()?);
        Ok(SimulatorOptions {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            app_id: app_id.to_owned(),
            server,
            push_file: None,
            seed: None,
            max_connections: 256,
            max_queued_frames: 4096,
            event_queue: 4096,
            tls: None,
            notify: NotifyOptions::default(),
        })
    }

    /// App [`test_keys::APP_ID`] with the embedded [`test_keys`], listening on
    /// `127.0.0.1:0`. A client connects with [`test_keys::APP_PRIVATE_KEY`] and
    /// [`test_keys::PLATFORM_PUBLIC_KEY`].
    pub fn with_test_keys() -> Self {
        // The embedded keys are valid 2048-bit RSA keys (tested), so none of this fails.
        let app = PublicKey::from_pem_or_base64(test_keys::APP_PUBLIC_KEY)
            .expect("embedded app public key");
        let platform = PrivateKey::from_pem_or_base64(test_keys::PLATFORM_PRIVATE_KEY)
            .expect("embedded platform key");
        SimulatorOptions::new(test_keys::APP_ID, &AppKey::PublicKey(app), &platform)
            .expect("embedded keys sign")
    }

    /// Listens on `addr` instead.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Certificate mode: the SN sent as `alipay_cert_sn` in register answers.
    pub fn platform_cert_sn(mut self, sn: impl Into<String>) -> Self {
        self.server.platform_cert_sn = Some(sn.into());
        self
    }

    /// The sign type of the served app (default `RSA2`): with `RSA`, the platform signs
    /// its CONSUMEs with SHA1withRSA (PROTOCOL §5). Register answers always follow the
    /// sign type of the request.
    pub fn app_sign_type(mut self, sign_type: SignType) -> Self {
        if let Some(app) = self.server.apps.get_mut(&self.app_id) {
            app.sign_type = sign_type;
        }
        self
    }

    /// Serves TLS (1.2 and 1.3, ring provider) with this certificate chain (the
    /// server's certificate first) and its private key, so that
    /// [`super::Simulator::endpoint`] is `https`: for testing clients' TLS, e.g. with a
    /// certificate for `127.0.0.1` from a test CA. Fails when the key does not suit.
    pub fn tls(
        mut self,
        cert_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<Self, rustls::Error> {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(cert_chain, key)?;
        self.tls = Some(std::sync::Arc::new(config));
        Ok(self)
    }

    /// Scales the waits of the HTTP notifications' retry schedule
    /// ([`super::NOTIFY_RETRY_SCHEDULE`]) by `scale`, in (0, 1]: 0.001 makes the first
    /// retry come after 240 ms instead of 4 min, so tests see the whole schedule in
    /// seconds ([`NotifyOptions::time_scale`]).
    pub fn notify_time_scale(mut self, scale: f64) -> Self {
        self.notify.time_scale = scale;
        self
    }

    /// Pushes the messages of this JSON-lines file at start.
    pub fn push_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.push_file = Some(path.into());
        self
    }
}
