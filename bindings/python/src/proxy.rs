//! HTTP CONNECT proxies for the Python clients: the core's rules
//! ([`alipay_msg_core::proxy`]) — which connections go through which proxy (an explicit
//! `http://` proxy, none, or the `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` conventions),
//! the `CONNECT` request (RFC 9110 §9.3.6) and the proxy's answer, read so that no byte
//! of the tunnel is consumed — for a Python driver that opens the sockets
//! (`alipay_msg.aio.Client` does, as `adapter-async/src/transport.rs` does in Rust).
//!
//! Nothing here opens a socket or reads `os.environ` by itself: the caller passes the
//! environment mapping, and feeds the bytes it reads.

use alipay_msg_core::proxy::{
    ConnectAnswer as CoreAnswer, Proxy, ProxyError as CoreProxyError, ProxyRules as CoreRules,
    MAX_CONNECT_RESPONSE,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::errors::{ConfigError, ProxyError};

/// The environment variables the conventions read, in the order the core asks for them
/// (lower case first).
const VARIABLES: [&str; 6] = [
    "https_proxy",
    "HTTPS_PROXY",
    "http_proxy",
    "HTTP_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// The attribute of a `ProxyError` instance holding the core's error, so that
/// `Input.connect_failed` hands the session exactly what the reader found.
const DETAIL: &str = "_proxy_error";

/// The core's [`CoreProxyError`], kept on the Python exception it was raised as.
#[pyclass(frozen, module = "alipay_msg.session", name = "_ProxyErrorDetail")]
pub(crate) struct ProxyErrorDetail(CoreProxyError);

/// The Python `ProxyError` for a tunnel the proxy did not open: the core's message,
/// `status` and `reason` set when the proxy refused (else None), and the core's error
/// kept for [`proxy_error_of`].
pub(crate) fn proxy_error(py: Python<'_>, error: CoreProxyError) -> PyErr {
    let err = ProxyError::new_err(error.to_string());
    let (status, reason) = match &error {
        CoreProxyError::Refused { status, reason } => (Some(*status), Some(reason.clone())),
        _ => (None, None),
    };
    let value = err.value(py);
    let set = value
        .setattr("status", status)
        .and_then(|()| value.setattr("reason", reason))
        .and_then(|()| value.setattr(DETAIL, ProxyErrorDetail(error)));
    match set {
        Ok(()) => err,
        Err(e) => e,
    }
}

/// The core's error behind a Python `ProxyError` raised by this module, or `None` for
/// any other object (a `ProxyError` made by hand included).
pub(crate) fn proxy_error_of(error: &Bound<'_, PyAny>) -> Option<CoreProxyError> {
    if !error.is_instance_of::<ProxyError>() {
        return None;
    }
    let detail = error.getattr(DETAIL).ok()?;
    let detail = detail.cast::<ProxyErrorDetail>().ok()?;
    Some(detail.get().0.clone())
}

/// Reads one variable of the mapping: its value when it is a str, None when absent.
fn variable(environ: &Bound<'_, PyAny>, name: &str) -> PyResult<Option<String>> {
    if !environ.hasattr("get")? {
        return Err(PyTypeError::new_err(format!(
            "environ must be a mapping (os.environ), not {}",
            environ.get_type().name()?
        )));
    }
    let value = environ.call_method1("get", (name,))?;
    if value.is_none() {
        return Ok(None);
    }
    match value.cast::<PyString>() {
        Ok(text) => Ok(Some(text.to_cow()?.into_owned())),
        Err(_) => Err(PyTypeError::new_err(format!(
            "environ[{name:?}] must be a str, not {}",
            value.get_type().name()?
        ))),
    }
}

/// ProxyRules(proxy: str | None, environ: Mapping[str, str])
///
/// Which connections go through which HTTP CONNECT proxy, resolved once (the core's
/// ProxyRules). `proxy` is
///
/// - None: the environment's conventions, read from `environ` (pass os.environ), as
///   curl reads them: `https_proxy` / `HTTPS_PROXY` for TLS endpoints, `http_proxy` /
///   `HTTP_PROXY` for plain ones (lower case first; empty is unset), except the hosts
///   `no_proxy` / `NO_PROXY` lists (comma-separated domains, matching subdomains; IP
///   addresses; CIDR networks; optional `:port`; `*` for all) and loopback hosts
///   (`localhost`, 127.0.0.0/8, ::1), which are never proxied;
/// - "none" (any case): every connection direct, whatever the environment says;
/// - a proxy URL, `http://[user:password@]host[:port]` (port 80 by default; a bare
///   `host:port` is taken as http://; user and password percent-decoded, sent as
///   `Proxy-Authorization: Basic`, RFC 7617): every connection through it, loopback
///   included.
///
/// Raises ConfigError, with the core's message prefixed "proxy: ", for a URL that
/// cannot be read, a proxy spoken to over TLS (`https://`: unsupported scheme) or
/// another scheme, and a variable of the environment that holds such a URL (the
/// message names it); TypeError for an `environ` without `get` or a value that is not
/// a str.
#[pyclass(frozen, module = "alipay_msg.session", name = "ProxyRules")]
pub struct ProxyRules {
    rules: CoreRules,
    /// What the rules were made from, for repr (never the credentials).
    source: String,
}

#[pymethods]
impl ProxyRules {
    #[new]
    fn new(proxy: Option<&str>, environ: &Bound<'_, PyAny>) -> PyResult<Self> {
        let config_error = |e: CoreProxyError| ConfigError::new_err(format!("proxy: {e}"));
        let (proxy, source) = match proxy.map(str::trim) {
            None => (Proxy::FromEnv, "environment".to_owned()),
            Some(none) if none.eq_ignore_ascii_case("none") => (Proxy::None, "none".to_owned()),
            Some(url) => {
                let proxy = Proxy::http(url).map_err(config_error)?;
                let source = match &proxy {
                    Proxy::Http(server) => server.to_string(),
                    _ => String::new(),
                };
                (proxy, source)
            }
        };
        let mut values = Vec::with_capacity(VARIABLES.len());
        if proxy == Proxy::FromEnv {
            for name in VARIABLES {
                if let Some(value) = variable(environ, name)? {
                    values.push((name, value));
                }
            }
        }
        let rules = proxy
            .resolve(|name| {
                values
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
            })
            .map_err(config_error)?;
        Ok(ProxyRules { rules, source })
    }

    /// for_target(host: str, port: int, tls: bool) -> ProxyTunnel | None
    ///
    /// How to reach `host:port` (`host` a name or an IP address, an IPv6 one without
    /// brackets, as Connect gives it; `tls`: an https/wss endpoint, Connect.tls): None
    /// to connect directly, else the proxy to connect to and the CONNECT request to send
    /// it.
    fn for_target(&self, host: &str, port: u16, tls: bool) -> Option<ProxyTunnel> {
        let server = self.rules.for_target(host, port, tls)?;
        Some(ProxyTunnel {
            host: server.host.clone(),
            port: server.port,
            request: server.connect_request(host, port),
            proxy: server.to_string(),
        })
    }

    fn __repr__(&self) -> String {
        format!("ProxyRules({})", self.source)
    }
}

/// A tunnel to open (ProxyRules.for_target): connect to the proxy at `host:port`, send
/// `request`, then read the answer with a ConnectAnswer; once it is done the connection
/// carries the target's bytes (TLS to the target, with the target's name, when its
/// endpoint is TLS).
///
/// Attributes:
///     host (str): The proxy's host name or IP address (an IPv6 one without brackets).
///     port (int): The proxy's TCP port.
///     request (bytes): The CONNECT request for the target, ASCII (RFC 9110 §9.3.6:
///         `CONNECT host:port HTTP/1.1`, Host, and Proxy-Authorization: Basic when the
///         proxy URL has credentials).
#[pyclass(frozen, module = "alipay_msg.session", name = "ProxyTunnel")]
pub struct ProxyTunnel {
    #[pyo3(get)]
    host: String,
    #[pyo3(get)]
    port: u16,
    request: Vec<u8>,
    /// `http://host:port`, without credentials.
    proxy: String,
}

#[pymethods]
impl ProxyTunnel {
    #[getter]
    fn request<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.request)
    }

    fn __repr__(&self) -> String {
        // The request holds the credentials: it stays out.
        format!("ProxyTunnel({})", self.proxy)
    }
}

#[derive(Debug)]
enum AnswerState {
    Reading(CoreAnswer),
    Open,
    Failed(CoreProxyError),
}

/// ConnectAnswer()
///
/// The proxy's answer to a CONNECT, fed the bytes read from the proxy: read them one
/// byte at a time (e.g. loop.sock_recv(sock, 1)) so that nothing past the answer's
/// header section is taken from the socket — the bytes after it are the tunnel's (the
/// target's TLS handshake). Holds at most ConnectAnswer.MAX_BYTES (8192) bytes.
#[pyclass(module = "alipay_msg.session", name = "ConnectAnswer")]
pub struct ConnectAnswer {
    state: AnswerState,
}

#[pymethods]
impl ConnectAnswer {
    /// The longest answer read, in bytes (8192: the core's MAX_CONNECT_RESPONSE).
    #[classattr]
    const MAX_BYTES: usize = MAX_CONNECT_RESPONSE;

    #[new]
    fn new() -> Self {
        ConnectAnswer {
            state: AnswerState::Reading(CoreAnswer::default()),
        }
    }

    /// feed(data: bytes) -> int | None
    ///
    /// Takes the next bytes read from the proxy; empty `data` means the proxy closed
    /// the connection (end of stream). Returns None while the header section is
    /// incomplete; once it is complete with a 2xx status (the tunnel is open), how many
    /// bytes of `data` were the answer's (the rest, `data[n:]`, are the tunnel's), and
    /// 0 for any later call.
    ///
    /// Raises ProxyError: the proxy refused (a status other than 2xx: `status` and
    /// `reason` set, e.g. 407 when it wants credentials), closed the connection before
    /// answering, answered something that is not HTTP/1.x, or sent MAX_BYTES (8192)
    /// bytes without ending its header section; once raised, every later call
    /// raises it again. TypeError for data that is not bytes.
    fn feed(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<Option<usize>> {
        let answer = match &mut self.state {
            AnswerState::Open => return Ok(Some(0)),
            AnswerState::Failed(error) => return Err(proxy_error(py, error.clone())),
            AnswerState::Reading(answer) => answer,
        };
        let outcome = if data.is_empty() {
            Err(CoreProxyError::Closed)
        } else {
            data.iter()
                .enumerate()
                .find_map(|(i, &byte)| match answer.push(byte) {
                    Ok(true) => Some(Ok(i + 1)),
                    Ok(false) => None,
                    Err(e) => Some(Err(e)),
                })
                .transpose()
        };
        match outcome {
            Ok(None) => Ok(None),
            Ok(Some(used)) => {
                self.state = AnswerState::Open;
                Ok(Some(used))
            }
            Err(error) => {
                self.state = AnswerState::Failed(error.clone());
                Err(proxy_error(py, error))
            }
        }
    }

    /// Whether the answer was complete with a 2xx status: the tunnel is open (bool).
    #[getter]
    fn done(&self) -> bool {
        matches!(self.state, AnswerState::Open)
    }

    fn __repr__(&self) -> &'static str {
        match self.state {
            AnswerState::Reading(_) => "<ConnectAnswer reading>",
            AnswerState::Open => "<ConnectAnswer open>",
            AnswerState::Failed(_) => "<ConnectAnswer failed>",
        }
    }
}
