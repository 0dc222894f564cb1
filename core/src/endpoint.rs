//! Where the platform is reached (PROTOCOL §1).

use std::fmt;

/// The production host of the message channel.
pub const PRODUCTION_HOST: &str = "openchannel.alipay.com";

/// The host of the message channel in the platform's sandbox, as the sandbox
/// documentation gives it. This project has not been run against it (no machine it is
/// developed on reaches the platform).
pub const SANDBOX_HOST: &str = "openchannel-sandbox.dl.alipaydev.com";

/// A platform endpoint: TLS (`https`/`wss`) or plain (`http`/`ws`, used for the local
/// simulator).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// TLS or not.
    pub tls: bool,
    /// Host name or address, an IPv6 address without brackets (`::1`): what the socket
    /// connects to and the TLS server name. [`Endpoint::authority`] adds the brackets
    /// where URLs and the `Host` header need them.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// An endpoint string that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint {input:?}: {reason}; expected `HOST:PORT` (plain), `http://HOST[:PORT]`, `https://HOST[:PORT]` or `wss://HOST[:PORT]`, an IPv6 HOST in brackets")]
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

    /// The sandbox: [`SANDBOX_HOST`] over TLS, port 443. `Endpoint::parse("sandbox")`
    /// gives the same.
    pub fn sandbox() -> Self {
        Endpoint {
            tls: true,
            host: SANDBOX_HOST.to_owned(),
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

    /// Parses `production`, `sandbox`, `HOST:PORT` (plain), `http://…`/`ws://…` (plain) or `https://…`/`wss://…`
    /// (TLS), with [`http::Uri`] (RFC 3986 authority syntax). An IPv6 address is written
    /// in brackets (`[::1]:7001`, `https://[2001:db8::7]`) and kept without them in
    /// [`Endpoint::host`]. The port defaults to the scheme's (80 or 443); a plain
    /// `HOST:PORT` needs one. A trailing `/` is allowed; any other path, a query, a
    /// fragment or user information is not.
    ///
    /// ```
    /// use alipay_msg_core::endpoint::Endpoint;
    /// assert_eq!(Endpoint::parse("127.0.0.1:7001").unwrap(), Endpoint::plain("127.0.0.1", 7001));
    /// assert_eq!(Endpoint::parse("[::1]:7001").unwrap(), Endpoint::plain("::1", 7001));
    /// assert_eq!(Endpoint::parse("https://openchannel.alipay.com").unwrap(), Endpoint::production());
    /// assert!(Endpoint::parse("ftp://x").is_err());
    /// // The two named endpoints:
    /// assert_eq!(Endpoint::parse("production").unwrap(), Endpoint::production());
    /// assert_eq!(Endpoint::parse("sandbox").unwrap().host, "openchannel-sandbox.dl.alipaydev.com");
    /// ```
    pub fn parse(input: &str) -> Result<Self, EndpointError> {
        match input.trim() {
            "production" => return Ok(Endpoint::production()),
            "sandbox" => return Ok(Endpoint::sandbox()),
            _ => {}
        }
        const EXTRA: &str = "a path, query, fragment or user part is not allowed";
        let err = |reason| EndpointError {
            input: input.chars().take(100).collect(),
            reason,
        };
        let trimmed = input.trim();
        if trimmed.contains('#') {
            // `http::Uri` drops a fragment silently.
            return Err(err(EXTRA));
        }
        let explicit_scheme = trimmed.contains("://");
        let uri: http::Uri = if explicit_scheme {
            trimmed.parse()
        } else {
            // `HOST:PORT`: an authority alone.
            format!("http://{trimmed}").parse()
        }
        .map_err(|_| err("not a URL or HOST:PORT"))?;
        let tls = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("https" | "wss") => true,
            Some("http" | "ws") => false,
            _ => return Err(err("unknown scheme")),
        };
        let authority = uri.authority().ok_or(err("empty host"))?;
        if authority.as_str().contains('@')
            || !matches!(uri.path(), "" | "/")
            || uri.query().is_some()
        {
            return Err(err(EXTRA));
        }
        let host = match authority.host().strip_prefix('[') {
            Some(bracketed) => {
                let inside = bracketed.strip_suffix(']').ok_or(err("unclosed `[`"))?;
                inside
                    .parse::<std::net::Ipv6Addr>()
                    .map_err(|_| err("not an IPv6 address inside `[…]`"))?;
                inside
            }
            None if authority.host().contains(':') => {
                return Err(err("an IPv6 address must be written in brackets, `[::1]`"))
            }
            None => authority.host(),
        };
        if host.is_empty() {
            return Err(err("empty host"));
        }
        let port = match authority.port() {
            Some(p) => p
                .as_str()
                .parse::<u16>()
                .map_err(|_| err("the port is not a number 0-65535"))?,
            // `host:` with nothing after the colon.
            None if authority.as_str().ends_with(':') => {
                return Err(err("the port is not a number 0-65535"))
            }
            None if !explicit_scheme => return Err(err("a plain endpoint needs a port")),
            None if tls => 443,
            None => 80,
        };
        Ok(Endpoint {
            tls,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// `host` or `host:port` when the port is not the scheme's default (the `Host`
    /// header and URL authority), with an IPv6 host in brackets (`[::1]:7001`). The
    /// socket connection and the TLS server name use [`Endpoint::host`] as it is.
    pub fn authority(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(input: &str) -> (bool, String, u16) {
        let e = Endpoint::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        (e.tls, e.host, e.port)
    }

    #[test]
    fn named_endpoints() {
        assert_eq!(
            parsed("sandbox"),
            (true, "openchannel-sandbox.dl.alipaydev.com".into(), 443)
        );
        assert_eq!(
            Endpoint::sandbox().register_url(),
            "https://openchannel-sandbox.dl.alipaydev.com/websocket/register.do"
        );
        assert_eq!(parsed(" production "), (true, PRODUCTION_HOST.into(), 443));
        // Only the exact names: anything else is a host and needs a port.
        assert!(Endpoint::parse("Sandbox").is_err());
    }

    #[test]
    fn ipv4_and_names() {
        assert_eq!(parsed("127.0.0.1:7001"), (false, "127.0.0.1".into(), 7001));
        assert_eq!(parsed("http://127.0.0.1"), (false, "127.0.0.1".into(), 80));
        assert_eq!(
            parsed("ws://localhost:7001/"),
            (false, "localhost".into(), 7001)
        );
        assert_eq!(
            parsed("https://openchannel.alipay.com"),
            (true, PRODUCTION_HOST.into(), 443)
        );
        assert_eq!(
            parsed("wss://openchannel.alipay.com:8443"),
            (true, PRODUCTION_HOST.into(), 8443)
        );
        assert_eq!(
            parsed(" HTTPS://Example.COM:443 "),
            (true, "example.com".into(), 443)
        );
    }

    #[test]
    fn ipv6_hosts_lose_their_brackets() {
        assert_eq!(parsed("[::1]:7001"), (false, "::1".into(), 7001));
        assert_eq!(parsed("http://[::1]"), (false, "::1".into(), 80));
        assert_eq!(parsed("https://[::1]:8443"), (true, "::1".into(), 8443));
        assert_eq!(
            parsed("wss://[2001:db8::7]/"),
            (true, "2001:db8::7".into(), 443)
        );
    }

    #[test]
    fn ipv6_authorities_and_urls_have_brackets() {
        let e = Endpoint::plain("::1", 7001);
        assert_eq!(e.authority(), "[::1]:7001");
        assert_eq!(e.to_string(), "http://[::1]:7001");
        assert_eq!(e.register_url(), "http://[::1]:7001/websocket/register.do");
        assert_eq!(e.websocket_url(), "ws://[::1]:7001/websocket");
        let tls = Endpoint::parse("https://[2001:db8::7]").unwrap();
        assert_eq!(tls.authority(), "[2001:db8::7]");
        assert_eq!(tls.websocket_url(), "wss://[2001:db8::7]/websocket");
        // The printed form parses back to the same endpoint.
        assert_eq!(Endpoint::parse(&e.to_string()).unwrap(), e);
        assert_eq!(Endpoint::parse(&tls.to_string()).unwrap(), tls);
    }

    #[test]
    fn ipv4_and_name_authorities() {
        assert_eq!(
            Endpoint::plain("127.0.0.1", 7001).authority(),
            "127.0.0.1:7001"
        );
        assert_eq!(Endpoint::plain("127.0.0.1", 80).authority(), "127.0.0.1");
        assert_eq!(Endpoint::production().authority(), PRODUCTION_HOST);
        assert_eq!(
            Endpoint::production().register_url(),
            "https://openchannel.alipay.com/websocket/register.do"
        );
    }

    #[test]
    fn garbage_is_refused() {
        for input in [
            "",
            "   ",
            "7001",
            "localhost",
            ":7001",
            "ftp://x",
            "https://",
            "https://::1:8443",
            "::1:7001",
            "::1",
            "[::1]",
            "[::1",
            "::1]:7001",
            "[not-an-address]:7001",
            "host:99999",
            "host:port",
            "host:-1",
            "http://host/path",
            "http://host?q=1",
            "http://user@host:1",
            "http://host:1#frag",
            "http://ho st:1",
            "http://[::1]:7001/websocket",
        ] {
            assert!(Endpoint::parse(input).is_err(), "{input:?} was accepted");
        }
    }
}
