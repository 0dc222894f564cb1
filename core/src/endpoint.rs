//! Where the platform is reached (PROTOCOL §1).

use std::fmt;

/// The production host of the message channel.
pub const PRODUCTION_HOST: &str = "openchannel.alipay.com";

/// A platform endpoint: TLS (`https`/`wss`) or plain (`http`/`ws`, used for the local
/// simulator).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// TLS or not.
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// An endpoint string that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint {input:?}: {reason}; expected `HOST:PORT` (plain), `http://HOST[:PORT]`, `https://HOST[:PORT]` or `wss://HOST[:PORT]`")]
pub struct EndpointError {
    /// The input (truncated).
    pub input: String,
    /// What was wrong.
    pub reason: &'static str,
}

impl Endpoint {
    /// `openchannel.alipay.com` over TLS, port 443.
    pub fn production() -> Self {
        Endpoint {
            tls: true,
            host: PRODUCTION_HOST.to_owned(),
            port: 443,
        }
    }

    /// A plain (no TLS) `host:port`, e.g. the simulator on `127.0.0.1:7001`.
    pub fn plain(host: impl Into<String>, port: u16) -> Self {
        Endpoint {
            tls: false,
            host: host.into(),
            port,
        }
    }

    /// Parses `HOST:PORT` (plain), `http://…`/`ws://…` (plain) or `https://…`/`wss://…`
    /// (TLS). A trailing `/` is allowed; any other path is not.
    ///
    /// ```
    /// use alipay_msg_core::endpoint::Endpoint;
    /// assert_eq!(Endpoint::parse("127.0.0.1:7001").unwrap(), Endpoint::plain("127.0.0.1", 7001));
    /// assert_eq!(Endpoint::parse("https://openchannel.alipay.com").unwrap(), Endpoint::production());
    /// assert!(Endpoint::parse("ftp://x").is_err());
    /// ```
    pub fn parse(input: &str) -> Result<Self, EndpointError> {
        let err = |reason| EndpointError {
            input: input.chars().take(100).collect(),
            reason,
        };
        let input_trimmed = input.trim();
        let (tls, rest, explicit_scheme) = if let Some(r) = input_trimmed.strip_prefix("https://") {
            (true, r, true)
        } else if let Some(r) = input_trimmed.strip_prefix("wss://") {
            (true, r, true)
        } else if let Some(r) = input_trimmed.strip_prefix("http://") {
            (false, r, true)
        } else if let Some(r) = input_trimmed.strip_prefix("ws://") {
            (false, r, true)
        } else if input_trimmed.contains("://") {
            return Err(err("unknown scheme"));
        } else {
            (false, input_trimmed, false)
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(err("a path, query or user part is not allowed"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, _)) if !h.ends_with(']') && h.contains(':') => (rest, None), // bare IPv6
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        if host.is_empty() {
            return Err(err("empty host"));
        }
        let port = match port {
            Some(p) => p
                .parse()
                .map_err(|_| err("the port is not a number 0-65535"))?,
            None if explicit_scheme => {
                if tls {
                    443
                } else {
                    80
                }
            }
            None => return Err(err("a plain endpoint needs a port")),
        };
        Ok(Endpoint {
            tls,
            host: host.to_owned(),
            port,
        })
    }

    /// `host` or `host:port` when the port is not the scheme's default (the `Host`
    /// header and URL authority).
    pub fn authority(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `https://AUTHORITY/websocket/register.do` or the `http` form.
    pub fn register_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/websocket/register.do", self.authority())
    }

    /// `wss://AUTHORITY/websocket` or the `ws` form.
    pub fn websocket_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}/websocket", self.authority())
    }
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint::production()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority())
    }
}
