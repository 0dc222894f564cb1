//! HTTP CONNECT proxies, over bytes: which connections go through a proxy (an explicit
//! one, or the `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` conventions), the `CONNECT`
//! request, and the proxy's answer.
//!
//! A client asks the proxy to open a tunnel with `CONNECT host:port HTTP/1.1` (RFC 9110
//! §9.3.6, formerly RFC 7231 §4.3.6); any 2xx answer means the proxy has connected, and
//! from the end of its header section on the connection carries the tunnel's bytes
//! (TLS, then `register.do` and the websocket, exactly as without a proxy). Anything
//! else is the proxy's refusal ([`ProxyError::Refused`] names its status).
//!
//! Nothing here opens sockets or reads the environment by itself: the adapters do
//! ([`Proxy::resolve`] takes the variable lookup), so each runtime tunnels identically.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;

/// The longest proxy answer to a `CONNECT` read, in bytes (status line and headers).
/// An answer whose header section does not end within this is refused
/// ([`ProxyError::TooLong`]): a tunnel answer is a few dozen bytes.
pub const MAX_CONNECT_RESPONSE: usize = 8 * 1024;

/// Headers parsed in a proxy's answer at most (more: [`ProxyError::Malformed`]).
const MAX_HEADERS: usize = 32;

/// Which proxy connections go through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Proxy {
    /// Connect directly, whatever the environment says.
    None,
    /// Every connection (`register.do` and the websocket, TLS or not) goes through this
    /// proxy, whatever the environment says.
    Http(ProxyServer),
    /// The conventions of curl and most HTTP clients (the default): `https_proxy` /
    /// `HTTPS_PROXY` for TLS endpoints, `http_proxy` / `HTTP_PROXY` for plain ones
    /// (lower case first), except hosts that `no_proxy` / `NO_PROXY` lists
    /// ([`NoProxy`]) and loopback hosts (`localhost`, `127.0.0.0/8`, `::1`), which are
    /// never proxied, as Go's `net/http` does. Unset or empty: direct.
    #[default]
    FromEnv,
}

impl Proxy {
    /// The proxy at `url` (`http://[user:password@]host[:port]`, port 80 by default; a
    /// bare `host:port` is taken as `http://`).
    pub fn http(url: &str) -> Result<Proxy, ProxyError> {
        ProxyServer::parse(url).map(Proxy::Http)
    }

    /// Which connections go through which proxy, reading the environment through `var`
    /// (for [`Proxy::FromEnv`]; e.g. `|name| std::env::var(name).ok()`).
    pub fn resolve(&self, var: impl Fn(&str) -> Option<String>) -> Result<ProxyRules, ProxyError> {
        match self {
            Proxy::None => Ok(ProxyRules::default()),
            Proxy::Http(server) => Ok(ProxyRules {
                https: Some(server.clone()),
                http: Some(server.clone()),
                no_proxy: NoProxy::default(),
                bypass_loopback: false,
            }),
            Proxy::FromEnv => {
                let var = |names: [&'static str; 2]| {
                    names
                        .into_iter()
                        .find_map(|name| var(name).filter(|v| !v.trim().is_empty()))
                };
                let server = |names: [&'static str; 2]| {
                    var(names)
                        .map(|url| {
                            ProxyServer::parse(&url).map_err(|e| ProxyError::Variable {
                                name: names[1],
                                error: Box::new(e),
                            })
                        })
                        .transpose()
                };
                Ok(ProxyRules {
                    https: server(["https_proxy", "HTTPS_PROXY"])?,
                    http: server(["http_proxy", "HTTP_PROXY"])?,
                    no_proxy: NoProxy::parse(&var(["no_proxy", "NO_PROXY"]).unwrap_or_default()),
                    bypass_loopback: true,
                })
            }
        }
    }
}

/// An HTTP proxy: where it listens and, optionally, the Basic credentials it wants
/// (RFC 9110 §11.7.2 `Proxy-Authorization`, RFC 7617).
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyServer {
    /// Host name or IP address (an IPv6 one without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User name and password.
    pub auth: Option<(String, String)>,
}

impl fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password stays out of logs.
        f.debug_struct("ProxyServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.auth.as_ref().map(|(user, _)| user))
            .finish()
    }
}

impl fmt::Display for ProxyServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "http://{}:{}", self.host, self.port)
        }
    }
}

impl ProxyServer {
    /// Parses `http://[user:password@]host[:port]` (a trailing `/` allowed; user and
    /// password percent-decoded); a bare `host:port` is taken as `http://`. A proxy
    /// spoken to over TLS (`https://`) is not supported.
    pub fn parse(url: &str) -> Result<ProxyServer, ProxyError> {
        let invalid = |why: &str| ProxyError::InvalidUrl {
            url: redacted(url),
            why: why.to_owned(),
        };
        let trimmed = url.trim();
        let rest = match trimmed.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(ProxyError::UnsupportedScheme(scheme.to_owned()));
            }
            None => trimmed,
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(invalid("a proxy URL has no path"));
        }
        let (auth, authority) = match rest.rsplit_once('@') {
            Some((userinfo, authority)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .map(|s| s.into_owned())
                        .map_err(|_| invalid("the credentials are not UTF-8"))
                };
                (Some((decode(user)?, decode(password)?)), authority)
            }
            None => (None, rest),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| invalid("an unclosed '['"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| invalid("junk after ']'"))?,
                    ),
                ),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        let port = match port {
            None => 80,
            Some(port) => port
                .parse()
                .map_err(|_| invalid("the port is not 0-65535"))?,
        };
        Ok(ProxyServer {
            host: host.to_owned(),
            port,
            auth,
        })
    }

    /// The `CONNECT` request for a tunnel to `host:port` (RFC 9110 §9.3.6: the target
    /// in authority form, also as `Host`), with `Proxy-Authorization: Basic` when the
    /// proxy has credentials.
    pub fn connect_request(&self, host: &str, port: u16) -> Vec<u8> {
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some((user, password)) = &self.auth {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request.push_str(&format!("Proxy-Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        request.into_bytes()
    }
}

/// `url` with the password of its credentials (`user:password@`) replaced by `***`: an
/// error message may end up in a log, the password must not.
fn redacted(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let authority_end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &url[start..start + at];
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{}{user}:***{}", &url[..start], &url[start + at..])
        }
        None => url.to_owned(),
    }
}

/// Which connections go through which proxy: [`Proxy::resolve`]d once per client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyRules {
    https: Option<ProxyServer>,
    http: Option<ProxyServer>,
    no_proxy: NoProxy,
    bypass_loopback: bool,
}

impl ProxyRules {
    /// The proxy for a connection to `host:port` (`tls`: an `https` endpoint), or
    /// `None` to connect directly.
    pub fn for_target(&self, host: &str, port: u16, tls: bool) -> Option<&ProxyServer> {
        let server = if tls { &self.https } else { &self.http };
        let server = server.as_ref()?;
        if self.bypass_loopback && is_loopback(host) {
            return None;
        }
        if self.no_proxy.matches(host, port) {
            return None;
        }
        Some(server)
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || unbracket(host)
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The hosts `NO_PROXY` exempts: a comma (or space) separated list, as curl and Go read
/// it. `*` alone exempts every host. Otherwise each entry is
///
/// - a domain name, with or without a leading `.`: that host and every host under it
///   (`example.com` and `.example.com` both match `example.com` and
///   `api.example.com`, not `badexample.com`);
/// - an IP address (IPv6 with or without brackets): that address;
/// - an IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`): addresses within it;
///
/// optionally followed by `:port` (only that port). Names compare case-insensitively;
/// no name is resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    entries: Vec<NoProxyEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum NoProxyEntry {
    Domain { suffix: String, port: Option<u16> },
    Ip { ip: IpAddr, port: Option<u16> },
    Network { ip: IpAddr, prefix: u8 },
}

impl NoProxy {
    /// Reads a `NO_PROXY` value. Entries it cannot read are skipped.
    pub fn parse(value: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for entry in value
            .split([',', ' ', '\t'])
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            if entry == "*" {
                no_proxy.all = true;
                continue;
            }
            if let Some((ip, prefix)) = entry.split_once('/') {
                if let (Ok(ip), Ok(prefix)) = (unbracket(ip).parse::<IpAddr>(), prefix.parse()) {
                    let max = if ip.is_ipv4() { 32 } else { 128 };
                    if prefix <= max {
                        no_proxy.entries.push(NoProxyEntry::Network { ip, prefix });
                    }
                }
                continue;
            }
            if let Ok(ip) = unbracket(entry).parse::<IpAddr>() {
                no_proxy.entries.push(NoProxyEntry::Ip { ip, port: None });
                continue;
            }
            // `host:port`, `[v6]:port`, `1.2.3.4:port`.
            let (host, port) = match entry.rsplit_once(':') {
                Some((host, port)) => match port.parse::<u16>() {
                    Ok(port) => (host, Some(port)),
                    Err(_) => continue,
                },
                None => (entry, None),
            };
            if let Ok(ip) = unbracket(host).parse::<IpAddr>() {
                no_proxy.entries.push(NoProxyEntry::Ip { ip, port });
                continue;
            }
            let suffix = host
                .trim_start_matches("*.")
                .trim_start_matches('.')
                .trim_end_matches('.')
                .to_ascii_lowercase();
            if !suffix.is_empty() {
                no_proxy.entries.push(NoProxyEntry::Domain { suffix, port });
            }
        }
        no_proxy
    }

    /// Whether a connection to `host:port` skips the proxy.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.all {
            return true;
        }
        let host = unbracket(host).trim_end_matches('.').to_ascii_lowercase();
        let ip = host.parse::<IpAddr>().ok();
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        self.entries.iter().any(|entry| match entry {
            NoProxyEntry::Domain { suffix, port } => {
                port_ok(port)
                    && ip.is_none()
                    && (host == *suffix
                        || host
                            .strip_suffix(suffix.as_str())
                            .is_some_and(|head| head.ends_with('.')))
            }
            NoProxyEntry::Ip { ip: entry, port } => port_ok(port) && ip == Some(*entry),
            NoProxyEntry::Network { ip: net, prefix } => {
                ip.is_some_and(|ip| in_network(ip, *net, *prefix))
            }
        })
    }
}

fn in_network(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let (ip, net, bits) = match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            (u128::from(u32::from(ip)), u128::from(u32::from(net)), 32u32)
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => (u128::from(ip), u128::from(net), 128),
        _ => return false,
    };
    let prefix = u32::from(prefix).min(bits);
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    (ip >> shift) == (net >> shift)
}

/// Reads the proxy's answer to a `CONNECT` from the bytes read so far: `Ok(None)` until
/// the header section is complete, then `Ok(Some(len))` — the answer's length; bytes
/// after it are the tunnel's — for a 2xx status, or the refusal. Errors once `bytes`
/// exceeds [`MAX_CONNECT_RESPONSE`] without a complete header section.
pub fn parse_connect_response(bytes: &[u8]) -> Result<Option<usize>, ProxyError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Partial) if bytes.len() >= MAX_CONNECT_RESPONSE => {
            Err(ProxyError::TooLong {
                limit: MAX_CONNECT_RESPONSE,
            })
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(len)) => {
            let status = response.code.unwrap_or(0);
            if (200..300).contains(&status) {
                Ok(Some(len))
            } else {
                Err(ProxyError::Refused {
                    status,
                    reason: response.reason.unwrap_or("").to_owned(),
                })
            }
        }
        Err(e) => Err(ProxyError::Malformed(e.to_string())),
    }
}

/// A proxy's answer to a `CONNECT`, taken one byte at a time so that nothing past its
/// header section is read (the tunnel's first bytes stay in the socket, for TLS): what
/// every client's tunnel code feeds the bytes it reads to. Holds at most
/// [`MAX_CONNECT_RESPONSE`] bytes.
#[derive(Debug, Default)]
pub struct ConnectAnswer {
    bytes: Vec<u8>,
}

impl ConnectAnswer {
    /// Takes the next byte of the answer: `Ok(true)` once the header section is complete
    /// with a 2xx status (the tunnel is open), `Ok(false)` while more is needed, the
    /// refusal or malformation otherwise ([`parse_connect_response`]).
    pub fn push(&mut self, byte: u8) -> Result<bool, ProxyError> {
        self.bytes.push(byte);
        // Only a line end can complete the header section; parse then (or at the limit).
        if byte == b'\n' || self.bytes.len() >= MAX_CONNECT_RESPONSE {
            return Ok(parse_connect_response(&self.bytes)?.is_some());
        }
        Ok(false)
    }
}

/// Why a proxy could not be configured or refused to tunnel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The proxy URL could not be read.
    #[error("invalid proxy URL {url:?}: {why}")]
    InvalidUrl {
        /// The URL as given, its password (if any) replaced by `***`.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// Only `http://` proxies are supported (the tunnel itself carries TLS).
    #[error("unsupported proxy scheme {0:?} (only http:// proxies)")]
    UnsupportedScheme(String),
    /// An environment variable names a proxy that cannot be used.
    #[error("{name}: {error}")]
    Variable {
        /// The variable (upper-case name).
        name: &'static str,
        /// What is wrong with its value.
        error: Box<ProxyError>,
    },
    /// The proxy answered the `CONNECT` with a status other than 2xx (e.g. 403, or 407:
    /// it wants credentials).
    #[error("the proxy refused the tunnel: {status} {reason}")]
    Refused {
        /// The proxy's status code.
        status: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// The proxy's answer is not HTTP/1.1.
    #[error("malformed proxy answer: {0}")]
    Malformed(String),
    /// The proxy's answer did not end within the limit.
    #[error("the proxy's answer exceeds {limit} bytes")]
    TooLong {
        /// [`MAX_CONNECT_RESPONSE`].
        limit: usize,
    },
    /// The proxy closed the connection before answering.
    #[error("the proxy closed the connection before answering the CONNECT")]
    Closed,
}

impl ProxyError {
    /// The [`std::io::ErrorKind`] a failed tunnel is reported with (a session learns
    /// only the kind): `PermissionDenied` for 407, `ConnectionRefused` for any other
    /// refusal, `UnexpectedEof` when the proxy hung up, `InvalidData` otherwise.
    pub fn io_kind(&self) -> std::io::ErrorKind {
        use std::io::ErrorKind;
        match self {
            ProxyError::Refused { status: 407, .. } => ErrorKind::PermissionDenied,
            ProxyError::Refused { .. } => ErrorKind::ConnectionRefused,
            ProxyError::Closed => ErrorKind::UnexpectedEof,
            ProxyError::InvalidUrl { .. }
            | ProxyError::UnsupportedScheme(_)
            | ProxyError::Variable { .. } => ErrorKind::InvalidInput,
            ProxyError::Malformed(_) | ProxyError::TooLong { .. } => ErrorKind::InvalidData,
        }
    }
}

impl From<ProxyError> for std::io::Error {
    fn from(error: ProxyError) -> std::io::Error {
        std::io::Error::new(error.io_kind(), error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    /// An invalid URL's error names it without the password (it may end up in a log).
    #[test]
    fn invalid_url_errors_hide_the_password() {
        for url in [
            "http://alice:s3cret@proxy:99999",
            "alice:s3cret@proxy:port",
            "http://alice:s3cret@proxy:3128/path",
        ] {
            let error = ProxyServer::parse(url).expect_err(url).to_string();
            assert!(!error.contains("s3cret"), "{error}");
            assert!(error.contains("alice:***@proxy"), "{error}");
        }
        let error = ProxyServer::parse("http://proxy:99999")
            .unwrap_err()
            .to_string();
        assert!(error.contains("\"http://proxy:99999\""), "{error}");
    }

    #[test]
    fn proxy_urls() {
        let p = ProxyServer::parse("http://proxy.corp:3128").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.auth),
            ("proxy.corp", 3128, None)
        );
        let p = ProxyServer::parse("proxy.corp:8080/").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.corp", 8080));
        let p = ProxyServer::parse("HTTP://u%40x:p%3Aw@[::1]:9").unwrap();
        assert_eq!(p.host, "::1");
        assert_eq!(p.port, 9);
        assert_eq!(p.auth, Some(("u@x".into(), "p:w".into())));
        assert_eq!(p.to_string(), "http://[::1]:9");
        assert!(!format!("{p:?}").contains("p:w"), "no password in Debug");
        assert_eq!(ProxyServer::parse("http://proxy").unwrap().port, 80);
        assert!(matches!(
            ProxyServer::parse("https://proxy:443"),
            Err(ProxyError::UnsupportedScheme(s)) if s == "https"
        ));
        assert!(ProxyServer::parse("http://proxy:99999").is_err());
        assert!(ProxyServer::parse("http://:80").is_err());
        assert!(ProxyServer::parse("http://proxy/path").is_err());
    }

    #[test]
    fn the_connect_request() {
        let p = ProxyServer::parse("http://user:pass@proxy:3128").unwrap();
        let request = p.connect_request("openapi.alipay.com", 443);
        assert_eq!(
            String::from_utf8(request).unwrap(),
            "CONNECT openapi.alipay.com:443 HTTP/1.1\r\nHost: openapi.alipay.com:443\r\n\
             Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n"
        );
        let p = ProxyServer::parse("proxy:3128").unwrap();
        let request = String::from_utf8(p.connect_request("2001:db8::1", 443)).unwrap();
        assert!(request.starts_with("CONNECT [2001:db8::1]:443 HTTP/1.1\r\n"));
    }

    #[test]
    fn a_connect_answer_byte_by_byte_stops_at_its_end() {
        let answer = b"HTTP/1.1 200 Connection established\r\nVia: p\r\n\r\n";
        let mut reader = ConnectAnswer::default();
        for (i, &b) in answer.iter().enumerate() {
            assert_eq!(reader.push(b), Ok(i == answer.len() - 1), "byte {i}");
        }
        let mut refused = ConnectAnswer::default();
        let result: Result<Vec<bool>, _> = b"HTTP/1.1 403 Forbidden\r\n\r\n"
            .iter()
            .map(|&b| refused.push(b))
            .collect();
        assert!(matches!(
            result,
            Err(ProxyError::Refused { status: 403, .. })
        ));
        let mut endless = ConnectAnswer::default();
        let mut long = b"HTTP/1.1 200 OK\r\nX-Padding: ".to_vec();
        long.resize(MAX_CONNECT_RESPONSE, b'a');
        let too_long = long.iter().map(|&b| endless.push(b)).find_map(Result::err);
        assert!(matches!(too_long, Some(ProxyError::TooLong { .. })));
    }

    #[test]
    fn the_connect_answer() {
        assert_eq!(parse_connect_response(b"HTTP/1.1 200 Conn"), Ok(None));
        let ok = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03";
        assert_eq!(parse_connect_response(ok), Ok(Some(ok.len() - 2)));
        assert_eq!(
            parse_connect_response(
                b"HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n"
            ),
            Err(ProxyError::Refused {
                status: 407,
                reason: "Proxy Authentication Required".into()
            })
        );
        let refused = ProxyError::Refused {
            status: 403,
            reason: "Forbidden".into(),
        };
        assert_eq!(refused.io_kind(), std::io::ErrorKind::ConnectionRefused);
        assert_eq!(
            refused.to_string(),
            "the proxy refused the tunnel: 403 Forbidden"
        );
        assert!(matches!(
            parse_connect_response(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(ProxyError::Malformed(_))
        ));
        let mut long = b"HTTP/1.1 200 OK\r\nX-Padding: ".to_vec();
        long.resize(MAX_CONNECT_RESPONSE, b'a');
        assert_eq!(
            parse_connect_response(&long),
            Err(ProxyError::TooLong {
                limit: MAX_CONNECT_RESPONSE
            })
        );
    }

    #[test]
    fn no_proxy_matches_suffixes_on_label_boundaries() {
        let no = NoProxy::parse("example.com, .internal ,10.0.0.0/8 ,[::1], 192.168.1.5:8443");
        assert!(no.matches("example.com", 443));
        assert!(no.matches("API.Example.com", 443));
        assert!(no.matches("example.com.", 443));
        assert!(!no.matches("badexample.com", 443));
        assert!(no.matches("svc.internal", 80));
        assert!(no.matches("internal", 80));
        assert!(no.matches("10.1.2.3", 443));
        assert!(!no.matches("11.1.2.3", 443));
        assert!(no.matches("::1", 443));
        assert!(no.matches("[::1]", 443));
        assert!(no.matches("192.168.1.5", 8443));
        assert!(!no.matches("192.168.1.5", 443));
        assert!(!no.matches("openapi.alipay.com", 443));
    }

    #[test]
    fn no_proxy_star_and_empty() {
        assert!(NoProxy::parse("*").matches("anything.example", 1));
        assert!(NoProxy::parse("localhost,*").matches("openapi.alipay.com", 443));
        assert!(!NoProxy::parse("").matches("openapi.alipay.com", 443));
        // `*.example.com` is read as `.example.com`.
        assert!(NoProxy::parse("*.example.com").matches("a.example.com", 443));
        let v6 = NoProxy::parse("fd00::/8");
        assert!(v6.matches("fd12::1", 443));
        assert!(!v6.matches("fe80::1", 443));
        assert!(!v6.matches("10.0.0.1", 443));
    }

    #[test]
    fn environment_conventions() {
        let vars = [
            ("HTTPS_PROXY", "http://secure-proxy:3128"),
            ("http_proxy", "http://plain-proxy:3128"),
            ("HTTP_PROXY", "http://ignored:1"),
            ("NO_PROXY", ".corp"),
        ];
        let rules = Proxy::FromEnv.resolve(env(&vars)).unwrap();
        let via = |host: &str, tls: bool| rules.for_target(host, 443, tls).map(|p| p.host.clone());
        assert_eq!(
            via("openapi.alipay.com", true).as_deref(),
            Some("secure-proxy")
        );
        assert_eq!(
            via("openapi.alipay.com", false).as_deref(),
            Some("plain-proxy")
        );
        assert_eq!(via("sim.corp", true), None);
        assert_eq!(via("127.0.0.1", true), None, "loopback is never proxied");
        assert_eq!(via("localhost", true), None);
        assert_eq!(via("[::1]", true), None);

        // Lower case wins; empty is unset.
        let vars = [
            ("https_proxy", "lower:1"),
            ("HTTPS_PROXY", "upper:2"),
            ("http_proxy", " "),
        ];
        let rules = Proxy::FromEnv.resolve(env(&vars)).unwrap();
        assert_eq!(
            rules.for_target("h.example", 443, true).unwrap().host,
            "lower"
        );
        assert_eq!(rules.for_target("h.example", 80, false), None);

        let none = Proxy::FromEnv.resolve(env(&[])).unwrap();
        assert_eq!(none.for_target("openapi.alipay.com", 443, true), None);

        let bad = Proxy::FromEnv.resolve(env(&[("HTTPS_PROXY", "socks5://x:1")]));
        assert!(matches!(
            bad,
            Err(ProxyError::Variable {
                name: "HTTPS_PROXY",
                ..
            })
        ));
    }

    #[test]
    fn explicit_and_none_ignore_the_environment() {
        let vars = [("HTTPS_PROXY", "http://env:1")];
        let explicit = Proxy::http("http://mine:3128").unwrap();
        let rules = explicit.resolve(env(&vars)).unwrap();
        // Explicit: everything, loopback included (a proxy the test starts locally).
        assert_eq!(
            rules.for_target("127.0.0.1", 8443, true).unwrap().host,
            "mine"
        );
        assert_eq!(
            rules.for_target("h.example", 80, false).unwrap().host,
            "mine"
        );
        let rules = Proxy::None.resolve(env(&vars)).unwrap();
        assert_eq!(rules.for_target("h.example", 443, true), None);
    }
}
