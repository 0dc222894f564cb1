"""HTTP CONNECT proxies: the core's rules from a given environment mapping, the CONNECT
request and the answer reader, a proxy's failure reaching the session, and both clients
end to end through a CONNECT proxy (connect_proxy.py) to `alipay-msg simulate`."""

import base64
import socket
import threading
from typing import Dict, Iterator, List, Optional

import pytest

import alipay_msg
from alipay_msg.aio import Client
from alipay_msg.session import (
    Connect,
    ConnectAnswer,
    Connecting,
    Disconnected,
    Event,
    Input,
    ProxyRules,
    ProxyTunnel,
)
from connect_proxy import ConnectProxy
from platform_simulator import LIMIT, Simulator, client_config
from test_aio import of, run, status_until
from test_config import config
from test_session import NOW, drain, started

ENV = {
    "HTTPS_PROXY": "http://secure-proxy:3128",
    "HTTP_PROXY": "http://plain-proxy:8080",
}

# ----- the rules ---------------------------------------------------------------------


def via(rules: ProxyRules, host: str, port: int = 443, tls: bool = True) -> Optional[str]:
    """`proxy-host:port` for a target, or None when it is reached directly."""
    tunnel = rules.for_target(host, port, tls)
    return None if tunnel is None else f"{tunnel.host}:{tunnel.port}"


def test_tls_targets_use_the_https_variable_plain_ones_the_http_variable() -> None:
    rules = ProxyRules(None, ENV)
    assert via(rules, "openapi.alipay.com", 443, tls=True) == "secure-proxy:3128"
    assert via(rules, "openapi.alipay.com", 80, tls=False) == "plain-proxy:8080"
    # Lower case first; an empty variable is unset.
    lower = ProxyRules(None, {**ENV, "https_proxy": "lower:1", "http_proxy": " "})
    assert via(lower, "openapi.alipay.com") == "lower:1"
    assert via(lower, "openapi.alipay.com", 80, tls=False) == "plain-proxy:8080"
    only_https = ProxyRules(None, {"HTTPS_PROXY": "http://secure-proxy:3128"})
    assert via(only_https, "openapi.alipay.com", 80, tls=False) is None
    assert via(ProxyRules(None, {}), "openapi.alipay.com") is None


def test_no_proxy_lists_the_hosts_reached_directly() -> None:
    rules = ProxyRules(None, {**ENV, "NO_PROXY": "alipay.com, 10.0.0.0/8 ,sim.corp:7001"})
    assert via(rules, "openapi.alipay.com") is None
    assert via(rules, "alipay.com") is None
    assert via(rules, "notalipay.com") == "secure-proxy:3128"
    assert via(rules, "10.1.2.3") is None
    assert via(rules, "11.1.2.3") == "secure-proxy:3128"
    assert via(rules, "sim.corp", 7001) is None
    assert via(rules, "sim.corp", 443) == "secure-proxy:3128"
    assert via(ProxyRules(None, {**ENV, "no_proxy": "*"}), "openapi.alipay.com") is None


def test_loopback_is_direct_under_the_environment_not_under_an_explicit_url() -> None:
    from_env = ProxyRules(None, ENV)
    for host in ("127.0.0.1", "localhost", "::1", "127.8.9.10"):
        assert via(from_env, host) is None, host
        assert via(from_env, host, 80, tls=False) is None, host
    explicit = ProxyRules("http://mine:3128", ENV)
    assert via(explicit, "127.0.0.1", 7001, tls=False) == "mine:3128"
    assert via(explicit, "openapi.alipay.com") == "mine:3128"
    assert repr(explicit) == "ProxyRules(http://mine:3128)"


def test_none_connects_directly_whatever_the_environment() -> None:
    for none in ("none", "NONE", " None "):
        rules = ProxyRules(none, ENV)
        assert via(rules, "openapi.alipay.com") is None
        assert via(rules, "openapi.alipay.com", 80, tls=False) is None
    assert repr(ProxyRules("none", ENV)) == "ProxyRules(none)"
    # An invalid variable is not read when the environment is not asked.
    assert via(ProxyRules("none", {"HTTPS_PROXY": "socks5://x:1"}), "h.example") is None


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ("http://proxy:99999", "the port is not 0-65535"),
        ("http://proxy:3128/path", "a proxy URL has no path"),
        ("http://:3128", "no host"),
        ("https://proxy:443", 'unsupported proxy scheme "https"'),
        ("socks5://proxy:1080", 'unsupported proxy scheme "socks5"'),
    ],
)
def test_a_proxy_url_that_cannot_be_used_is_a_config_error_at_construction(proxy: str, message: str) -> None:
    with pytest.raises(alipay_msg.ConfigError, match="^proxy: .*" + message):
        ProxyRules(proxy, {})
    with pytest.raises(alipay_msg.ConfigError, match=message):
        Client(config(), proxy=proxy)
    with pytest.raises(alipay_msg.ConfigError, match=message):
        alipay_msg.Client(config(), proxy=proxy)


def test_an_environment_variable_that_cannot_be_used_is_named() -> None:
    with pytest.raises(alipay_msg.ConfigError, match='HTTPS_PROXY: unsupported proxy scheme "https"'):
        ProxyRules(None, {"https_proxy": "https://proxy:443"})
    with pytest.raises(alipay_msg.ConfigError, match="HTTP_PROXY: invalid proxy URL"):
        ProxyRules(None, {"HTTP_PROXY": "http://proxy:port"})
    with pytest.raises(TypeError, match="must be a str"):
        ProxyRules(None, {"HTTPS_PROXY": 3128})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="mapping"):
        ProxyRules(None, ["HTTPS_PROXY"])  # type: ignore[arg-type]


def test_the_environment_of_a_client_is_read_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("https_proxy", "http_proxy", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "ftp://proxy:21")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    with pytest.raises(alipay_msg.ConfigError, match="HTTPS_PROXY"):
        Client(config())
    # An explicit proxy (or "none") does not read the environment.
    Client(config(), proxy="none")
    Client(config(), proxy="http://proxy:3128")


def test_the_connect_request() -> None:
    tunnel = ProxyRules("http://proxy:3128", {}).for_target("openapi.alipay.com", 443, True)
    assert isinstance(tunnel, ProxyTunnel)
    assert (tunnel.host, tunnel.port) == ("proxy", 3128)
    assert tunnel.request == b"CONNECT openapi.alipay.com:443 HTTP/1.1\r\nHost: openapi.alipay.com:443\r\n\r\n"
    # Credentials percent-decoded, sent Basic (RFC 7617); never in repr.
    secret = ProxyRules("http://app%40corp:p%3Ass@[::1]:3128", {}).for_target("2001:db8::1", 443, True)
    assert secret is not None and (secret.host, secret.port) == ("::1", 3128)
    token = base64.b64encode(b"app@corp:p:ss").decode()
    assert secret.request == (
        b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\n"
        + f"Proxy-Authorization: Basic {token}\r\n\r\n".encode()
    )
    assert repr(secret) == "ProxyTunnel(http://[::1]:3128)"
    # A bare host:port is http://, port 80 by default.
    assert via(ProxyRules("proxy.corp:8080", {}), "h.example") == "proxy.corp:8080"
    assert via(ProxyRules("http://proxy.corp", {}), "h.example") == "proxy.corp:80"


# ----- the answer ----------------------------------------------------------------------


def feed_bytes(answer: ConnectAnswer, data: bytes) -> List[Optional[int]]:
    return [answer.feed(data[i : i + 1]) for i in range(len(data))]


def test_the_answer_is_read_byte_by_byte_up_to_its_end() -> None:
    text = b"HTTP/1.1 200 Connection established\r\nVia: 1.1 proxy\r\n\r\n"
    answer = ConnectAnswer()
    results = feed_bytes(answer, text)
    assert results == [None] * (len(text) - 1) + [1]
    assert answer.done and answer.feed(b"\x16\x03") == 0
    # Given more at once, it says which bytes were the answer's: the rest are the tunnel's.
    whole = ConnectAnswer()
    assert whole.feed(b"HTTP/1.0 200 OK\r\n\r\n\x16\x03\x01") == 19
    assert not ConnectAnswer().done


def test_a_refusal_raises_proxy_error_with_its_status() -> None:
    answer = ConnectAnswer()
    with pytest.raises(alipay_msg.ProxyError) as refused:
        feed_bytes(answer, b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n")
    assert isinstance(refused.value, alipay_msg.AlipayMsgError)
    assert (refused.value.status, refused.value.reason) == (407, "Proxy Authentication Required")
    assert str(refused.value) == "the proxy refused the tunnel: 407 Proxy Authentication Required"
    assert not answer.done
    with pytest.raises(alipay_msg.ProxyError, match="407"):
        answer.feed(b"more")  # failed for good


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "closed the connection before answering"),
        (b"HTTP/1.1 200 Conn", "closed the connection before answering"),
        (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", "malformed proxy answer"),
        (b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * ConnectAnswer.MAX_BYTES, "exceeds 8192 bytes"),
    ],
)
def test_what_is_not_a_2xx_answer_raises_proxy_error(data: bytes, message: str) -> None:
    answer = ConnectAnswer()
    with pytest.raises(alipay_msg.ProxyError, match=message) as failed:
        answer.feed(data)
        answer.feed(b"")  # the end of stream
    assert failed.value.status is None and failed.value.reason is None
    assert ConnectAnswer.MAX_BYTES == 8192


def test_a_proxy_failure_reaches_the_session_as_the_proxys() -> None:
    session = started()
    drain(session)
    with pytest.raises(alipay_msg.ProxyError) as refused:
        feed_bytes(ConnectAnswer(), b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
    failed = Input.connect_failed(1, refused.value)
    assert repr(failed) == "Input.connect_failed(1, <the proxy refused the tunnel: 407 Proxy Authentication Required>)"
    session.handle_input(failed, NOW + 0.5)
    disconnected = [o for o in drain(session) if isinstance(o, Disconnected)]
    assert len(disconnected) == 1 and disconnected[0].kind == "proxy"
    assert disconnected[0].reason == "the proxy refused the tunnel: 407 Proxy Authentication Required"
    # A ProxyError made by hand carries no proxy answer: an error like any other.
    session.handle_timeout(NOW + 0.5)
    connect = [o for o in drain(session) if isinstance(o, Connect)]
    handmade = alipay_msg.ProxyError("made by hand")
    assert handmade.status is None and handmade.reason is None
    session.handle_input(Input.connect_failed(connect[0].conn_id, handmade), NOW + 0.6)
    (other,) = [o for o in drain(session) if isinstance(o, Disconnected)]
    assert other.kind == "network"


# ----- end to end ----------------------------------------------------------------------


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    """An open CONNECT proxy on 127.0.0.1, stopped after the test."""
    started_proxy = ConnectProxy()
    try:
        yield started_proxy
    finally:
        started_proxy.stop()


def assert_one_connect_per_connection(proxy: ConnectProxy, sim: Simulator, events: List[Event]) -> None:
    """One attempt: register.do and the websocket, each through a tunnel of its own that
    began with one CONNECT to the simulator."""
    assert [e.attempt for e in of(events, Connecting)] == [1]
    assert proxy.accepted == 2 and proxy.tunnels == 2
    assert [r.line for r in proxy.requests] == [f"CONNECT {sim.endpoint} HTTP/1.1"] * 2
    assert all(r.headers["host"] == sim.endpoint for r in proxy.requests)


def test_messages_are_verified_handled_and_acked_through_the_proxy(
    simulator: Simulator, proxy: ConnectProxy
) -> None:
    events: List[Event] = []
    pushed = [simulator.push({"n": n}) for n in range(3)]

    async def scenario() -> List[str]:
        seen: List[str] = []
        async with Client(client_config(simulator), proxy=proxy.url, on_event=events.append) as client:
            async for msg in client.messages():
                assert msg.biz_content == {"n": len(seen)}
                seen.append(msg.msg_id)
                await msg.ack()
                if len(seen) == 3:
                    break
            await status_until(simulator, "three acks", lambda s: s["acked"] == 3)
            ack = await client.send("alipay.open.app.openbizmock.message.send", {"k": "v"})
            assert ack.is_success
        return seen

    assert run(scenario()) == pushed
    for msg_id in pushed:
        simulator.wait_lines(f"ack SUCCESS for {msg_id}")
    assert_one_connect_per_connection(proxy, simulator, events)
    assert "proxy-authorization" not in proxy.requests[0].headers


def test_credentials_in_the_url_are_sent_as_basic(simulator: Simulator) -> None:
    guarded = ConnectProxy("auth", credentials=("app@corp", "p:ss/w"))
    try:
        url = f"http://app%40corp:p%3Ass%2Fw@127.0.0.1:{guarded.port}"
        events: List[Event] = []

        async def scenario() -> None:
            async with Client(client_config(simulator), proxy=url, on_event=events.append) as client:
                assert client.connected

        run(scenario())
        token = base64.b64encode(b"app@corp:p:ss/w").decode()
        assert [r.headers.get("proxy-authorization") for r in guarded.requests] == [f"Basic {token}"] * 2
        assert_one_connect_per_connection(guarded, simulator, events)
    finally:
        guarded.stop()


def connect_fails(sim: Simulator, proxy_url: str, events: List[Event]) -> alipay_msg.ConnectTimeoutError:
    """Connects through `proxy_url` with a first_connect_timeout of 0.5 s; the error."""
    config = client_config(sim, first_connect_timeout=0.5)

    async def scenario() -> alipay_msg.ConnectTimeoutError:
        with pytest.raises(alipay_msg.ConnectTimeoutError) as failed:
            await Client(config, proxy=proxy_url, on_event=events.append).connect()
        return failed.value

    return run(scenario())


@pytest.mark.parametrize("mode", ["refuse", "auth"])
def test_a_proxy_that_refuses_fails_the_connect_naming_its_refusal(simulator: Simulator, mode: str) -> None:
    refusing = ConnectProxy(mode, credentials=("app", "secret") if mode == "auth" else None)
    try:
        events: List[Event] = []
        # "auth" without credentials in the URL: the proxy wants them.
        error = connect_fails(simulator, refusing.url, events)
        assert "the proxy refused the tunnel: 407 Proxy Authentication Required" in str(error)
        disconnected = of(events, Disconnected)
        assert disconnected and all(d.kind == "proxy" for d in disconnected)
        assert "407" in disconnected[0].reason
        assert refusing.requests and refusing.tunnels == 0
        assert all(r.target == simulator.endpoint for r in refusing.requests)
    finally:
        refusing.stop()


def test_a_proxy_that_hangs_up_fails_the_connect_without_hanging(simulator: Simulator) -> None:
    hanging_up = ConnectProxy("hangup")
    try:
        events: List[Event] = []
        error = connect_fails(simulator, hanging_up.url, events)
        assert "the proxy closed the connection before answering the CONNECT" in str(error)
        assert all(d.kind == "proxy" for d in of(events, Disconnected))
        assert hanging_up.requests and hanging_up.tunnels == 0
    finally:
        hanging_up.stop()


def test_a_proxy_that_is_not_listening_is_a_network_failure(simulator: Simulator) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    events: List[Event] = []
    error = connect_fails(simulator, f"http://127.0.0.1:{closed_port}", events)
    assert "refused" in str(error)
    assert all(d.kind == "network" for d in of(events, Disconnected))


def test_tls_runs_inside_the_tunnel_with_the_endpoints_name(proxy: ConnectProxy) -> None:
    # A plain TCP server as the TLS endpoint: it records what the client sends first.
    first_bytes: List[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        with server:
            server.settimeout(LIMIT)
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(LIMIT)
                first_bytes.append(connection.recv(4096))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    tls_config = config(
        endpoint=f"https://localhost:{port}", first_connect_timeout=0.5, backoff_base=0.2, backoff_cap=0.5
    )

    async def scenario() -> None:
        with pytest.raises(alipay_msg.ConnectTimeoutError):
            await Client(tls_config, proxy=proxy.url).connect()

    run(scenario())
    thread.join(LIMIT)
    assert proxy.requests[0].line == f"CONNECT localhost:{port} HTTP/1.1"
    # A TLS handshake record (ClientHello), naming the endpoint's host (SNI), not the proxy's.
    assert first_bytes and first_bytes[0][:2] == b"\x16\x03"
    assert b"localhost" in first_bytes[0]


def test_the_environment_never_proxies_loopback(
    simulator: Simulator, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("https_proxy", "http_proxy", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)

    async def scenario() -> None:
        async with Client(client_config(simulator)) as client:
            assert client.connected

    run(scenario())
    assert proxy.accepted == 0


def test_the_blocking_client_through_the_proxy(simulator: Simulator, proxy: ConnectProxy) -> None:
    events: List[Event] = []
    msg_id = simulator.push({"k": "v"})
    got: Dict[str, str] = {}
    with alipay_msg.Client(client_config(simulator), proxy=proxy.url, on_event=events.append) as client:
        for msg in client.messages():
            got[msg.msg_id] = msg.msg_api
            msg.ack()
            break
        simulator.wait_status("the ack", lambda s: s["acked"] == 1)
    assert list(got) == [msg_id]
    simulator.wait_lines(f"ack SUCCESS for {msg_id}")
    assert_one_connect_per_connection(proxy, simulator, events)
