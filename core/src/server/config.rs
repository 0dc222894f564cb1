//! What the simulated platform knows and how it behaves: its key, the registered apps,
//! time windows, the redelivery schedule and the bounds on every table.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::frame::FrameLimits;
use crate::key::PrivateKey;
use crate::signature::{SignType, SignatureError, Signer, Verifier};

/// One app the platform knows (PROTOCOL §2, §9).
#[derive(Debug)]
pub struct AppRegistration {
    /// The app's public key (or the key inside its public-key certificate): verifies
    /// register and upgrade parameters and PRODUCE frames.
    pub verifier: Verifier,
    /// Certificate mode: the SN the `app_cert_sn` parameter (and the PRODUCE
    /// `data.header.app_cert_sn`) must equal. `None` = public-key mode.
    pub app_cert_sn: Option<String>,
    /// Certificate mode: when set, `alipay_root_cert_sn` must equal it; when `None` it
    /// only has to be present (in certificate mode).
    pub root_cert_sn: Option<String>,
    /// The message APIs this app may PRODUCE; `None` allows any. Others are answered
    /// `20001 msg.no-permission` (PROTOCOL §7).
    pub allowed_msg_apis: Option<HashSet<String>>,
    /// The app's sign type (default `RSA2`): the platform signs CONSUME frames to this
    /// app with it, `RSA` meaning SHA1withRSA (PROTOCOL §5). Register answers are signed
    /// with the sign type of the request, the one the client verifies with (§3).
    pub sign_type: SignType,
}

impl AppRegistration {
    /// A public-key-mode app allowed every message API.
    pub fn new(verifier: Verifier) -> Self {
        AppRegistration {
            verifier,
            app_cert_sn: None,
            root_cert_sn: None,
            allowed_msg_apis: None,
            sign_type: SignType::Rsa2,
        }
    }

    /// An app whose sign type is `sign_type` (`RSA` for apps created before RSA2).
    pub fn with_sign_type(mut self, sign_type: SignType) -> Self {
        self.sign_type = sign_type;
        self
    }

    /// Certificate mode: the app cert SN and (optionally) the root cert SN to require.
    pub fn with_cert_sns(mut self, app_cert_sn: &str, root_cert_sn: Option<&str>) -> Self {
        self.app_cert_sn = Some(app_cert_sn.to_owned());
        self.root_cert_sn = root_cert_sn.map(str::to_owned);
        self
    }

    /// Restricts PRODUCE to these message APIs.
    pub fn with_allowed_msg_apis<I, S>(mut self, apis: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_msg_apis = Some(apis.into_iter().map(Into::into).collect());
        self
    }
}

/// A failure the platform answers for a PRODUCE of a given message API, whatever the
/// frame says (so client tests can see each code class of PROTOCOL §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProduceFailure {
    /// `20000 msg.unknow-error`: service unavailable, retry later.
    ServiceUnavailable,
    /// `40000 msg.consumer-not-exist`: nobody subscribes.
    ConsumerNotExist,
    /// `40000 msg.sys-abort`: delivery abandoned.
    SysAbort,
}

impl ProduceFailure {
    /// `(x-code, x-error)` of this failure.
    pub const fn code_and_error(self) -> (&'static str, &'static str) {
        match self {
            ProduceFailure::ServiceUnavailable => ("20000", "msg.unknow-error"),
            ProduceFailure::ConsumerNotExist => ("40000", "msg.consumer-not-exist"),
            ProduceFailure::SysAbort => ("40000", "msg.sys-abort"),
        }
    }
}

/// Configuration of a [`super::ServerSession`]. Build with
/// [`ServerConfig::from_platform_key`], then adjust the public fields.
#[derive(Debug)]
pub struct ServerConfig {
    /// The platform private key signing `RSA2` (SHA256withRSA): register answers to
    /// requests whose `sign_type` is `RSA2`, CONSUMEs to apps whose sign type is `RSA2`.
    platform_signer_rsa2: Signer,
    /// The same key signing `RSA` (SHA1withRSA), for apps whose sign type is `RSA`
    /// (PROTOCOL §3, §5). Always present: an answer is never signed with another sign
    /// type than the one the app verifies with.
    platform_signer_rsa: Signer,
    /// Certificate mode: sent as `alipay_cert_sn` in register answers.
    pub platform_cert_sn: Option<String>,
    /// The registered apps, by app id.
    pub apps: HashMap<String, AppRegistration>,
    /// How far `timestamp` / `x-timestamp` may be from the platform's wall clock, either
    /// way (default 10 minutes, PROTOCOL §2 and §7).
    pub timestamp_window: Duration,
    /// How long a link token from register.do stays usable (default 60 s). Tokens are
    /// single use.
    pub link_token_ttl: Duration,
    /// Most link tokens remembered; the oldest are forgotten first (default 10 000).
    pub max_link_tokens: usize,
    /// Zone set in `Set-Cookie: zone=Z; Path=/; HttpOnly` on a successful register
    /// answer (default `SIM01`; `None` sets no cookie). PROTOCOL §3.
    pub zone: Option<String>,
    /// Refuse upgrades whose `cookie` header does not carry `zone=<zone>` (default
    /// false: the cookie is only reported in [`super::ServerEvent::Connected`]).
    pub require_zone_cookie: bool,
    /// How long a CONSUME may stay unacknowledged before it counts as failed and is
    /// redelivered (default 10 s). PROTOCOL §6.
    pub ack_timeout: Duration,
    /// Waits before attempt 2, 3, …; the last value repeats (default 1, 2, 4, 8, 16 s).
    /// An empty schedule redelivers at once.
    pub redelivery: Vec<Duration>,
    /// After this many failed attempts a message is abandoned
    /// ([`super::ServerEvent::Abandoned`]); `None` retries forever (default `None`).
    pub max_attempts: Option<u32>,
    /// Bounds on frames received from clients.
    pub limits: FrameLimits,
    /// Most messages not yet settled (queued, waiting for redelivery or in flight);
    /// pushing more is [`super::PushError::QueueFull`] (default 100 000).
    pub max_queued: usize,
    /// Most open connections per app; more upgrades are refused with HTTP 429 (default
    /// 4). PROTOCOL §8.
    pub max_connections_per_app: usize,
    /// TCP connections open at once, request heads being read plus websockets
    /// ([`super::ServerSession::accept`] refuses more; default 4096).
    pub max_links: usize,
    /// Most unacknowledged CONSUMEs per connection; further messages wait (default 1024).
    pub max_in_flight_per_connection: usize,
    /// Most events waiting in the output queue; further events are counted and dropped
    /// (sends and closes are never dropped). Default 65 536.
    pub max_pending_events: usize,
    /// Most settled messages remembered for [`super::ServerSession::message_state`] and
    /// [`super::ServerSession::acked_messages`] (default 100 000; oldest forgotten first).
    pub max_settled_records: usize,
    /// `from-sys` header line of CONSUME frames (default `openchannel`).
    pub from_sys: String,
    /// `from-sys-ip` header line of CONSUME frames (default `127.0.0.1`).
    pub from_sys_ip: String,
    /// PRODUCEs of these message APIs are answered with the given failure once they
    /// pass every other check.
    pub produce_failures: HashMap<String, ProduceFailure>,
    /// A redelivery goes to another open connection of the app than the message's last
    /// attempt, when one has window space (default `false`: round robin, which may pick
    /// the same connection). With several instances of a service connected, this is the
    /// platform's redelivery reaching another instance. Also
    /// [`super::ServerSession::set_redeliver_elsewhere`].
    pub redeliver_elsewhere: bool,
}

impl ServerConfig {
    /// The defaults documented on each field, with no apps registered, signing with
    /// `key` in both sign types.
    ///
    /// Fails when either signer cannot be made (the key is refused), so a platform that
    /// could not answer an `RSA` app in its own sign type does not start.
    pub fn from_platform_key(key: &PrivateKey) -> Result<Self, SignatureError> {
        Ok(ServerConfig {
            platform_signer_rsa2: Signer::new(key, SignType::Rsa2)?,
            platform_signer_rsa: Signer::new(key, SignType::Rsa)?,
            platform_cert_sn: None,
            apps: HashMap::new(),
            timestamp_window: Duration::from_secs(600),
            link_token_ttl: Duration::from_secs(60),
            max_link_tokens: 10_000,
            zone: Some("SIM01".to_owned()),
            require_zone_cookie: false,
            ack_timeout: Duration::from_secs(10),
            redelivery: [1, 2, 4, 8, 16].map(Duration::from_secs).to_vec(),
            max_attempts: None,
            limits: FrameLimits::default(),
            max_queued: 100_000,
            max_connections_per_app: 4,
            max_links: 4096,
            max_in_flight_per_connection: 1024,
            max_pending_events: 65_536,
            max_settled_records: 100_000,
            from_sys: "openchannel".to_owned(),
            from_sys_ip: "127.0.0.1".to_owned(),
            produce_failures: HashMap::new(),
            redeliver_elsewhere: false,
        })
    }

    /// Registers an app.
    pub fn with_app(mut self, app_id: &str, app: AppRegistration) -> Self {
        self.apps.insert(app_id.to_owned(), app);
        self
    }

    /// The wait before attempt `attempts + 1`, after `attempts` (≥ 1) attempts failed.
    pub(crate) fn redelivery_wait(&self, attempts: u32) -> Duration {
        let index = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        self.redelivery
            .get(index)
            .or(self.redelivery.last())
            .copied()
            .unwrap_or(Duration::ZERO)
    }

    /// The platform key's signer for `sign_type` (`RSA2`: SHA256withRSA, `RSA`:
    /// SHA1withRSA): exactly that sign type, never another. What the platform signs
    /// register answers and CONSUMEs with (PROTOCOL §3, §5), and what a simulator signs
    /// HTTP notifications with (PROTOCOL §10).
    pub fn platform_signer(&self, sign_type: SignType) -> &Signer {
        match sign_type {
            SignType::Rsa2 => &self.platform_signer_rsa2,
            SignType::Rsa => &self.platform_signer_rsa,
        }
    }
}
