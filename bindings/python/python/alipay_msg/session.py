"""The sans-IO client: the Rust core's ClientSession, driven by any Python I/O framework.

The session does the whole protocol — register.do, the websocket upgrade and RFC 6455
framing, signatures, heartbeats and dead connections, reconnect backoff, duplicate
suppression, the ack decision (PROTOCOL §1–8) — over bytes, and owns no socket, timer or
thread. Its driver (alipay_msg.aio.Client and alipay_msg.Client are two) does this::

    session = ClientSession(config)                  # raises ConfigError
    while True:
        out = session.poll_output()
        if isinstance(out, Connect):   open out.host:out.port (TLS if out.tls), then
                                       session.handle_input(Input.connected(out.conn_id), now)
                                       or Input.connect_failed(out.conn_id, exc)
        elif isinstance(out, Write):   write out.data on out.conn_id
        elif isinstance(out, Close):   close out.conn_id after its writes
        elif isinstance(out, Message): handle it, later session.complete(out, ok, now)
        elif isinstance(out, Timeout): wait for I/O until out.at, feeding what comes:
                                       Input.bytes(conn_id, data) (read the websocket only
                                       while session.wants_read), Input.closed(conn_id,
                                       exc or None), or session.handle_timeout(now)
        elif isinstance(out, WindowQuery): (Config.shared_window only) ask the shared
                                       store off the driving thread, then
                                       session.handle_input(Input.window_answered(
                                       out.id, answer or exc), now)
        elif isinstance(out, Done):    break
        else:                          an event (Connected, Disconnected, Rejected …)

``now`` is always ``time.monotonic()``; after every call that changes the session, poll
until Timeout or Done. Only verified messages are delivered; nothing is acknowledged
SUCCESS before ``complete(message, True, now)``. Signature checks run in Rust without
the GIL.

Behind an HTTP CONNECT proxy, a driver resolves ``ProxyRules(proxy, os.environ)`` once
and, for each Connect, asks ``rules.for_target(out.host, out.port, out.tls)``: None
connects directly; a ProxyTunnel names the proxy to connect to and the CONNECT request
to send it, whose answer is read byte by byte into a ConnectAnswer until ``feed``
returns a count (the tunnel is open: TLS to ``out.host`` inside it, if ``out.tls``) or
raises ProxyError, which goes to ``Input.connect_failed`` like any other failure.
"""

from typing import Union

from ._native import (
    ClientSession,
    Close,
    Connect,
    ConnectAnswer,
    Connected,
    Connecting,
    Disconnected,
    Done,
    Duplicate,
    Fatal,
    GaveUp,
    HandlerFailed,
    Input,
    KeyWarning,
    Message,
    ProduceAnswer,
    ProxyRules,
    ProxyTunnel,
    Rejected,
    SharedWindowFailed,
    SharedWindowRestored,
    ShutdownComplete,
    Timeout,
    WindowKey,
    WindowQuery,
    Write,
)

#: What the session reports besides messages, transmits and deadlines.
Event = Union[
    Connecting,
    Connected,
    Disconnected,
    Duplicate,
    Rejected,
    ProduceAnswer,
    Fatal,
    GaveUp,
    KeyWarning,
    HandlerFailed,
    SharedWindowFailed,
    SharedWindowRestored,
    ShutdownComplete,
]

#: What ClientSession.poll_output returns.
Output = Union[Connect, Write, Close, Message, WindowQuery, Event, Timeout, Done]

__all__ = [
    "ClientSession",
    "Close",
    "Connect",
    "ConnectAnswer",
    "Connected",
    "Connecting",
    "Disconnected",
    "Done",
    "Duplicate",
    "Event",
    "Fatal",
    "GaveUp",
    "HandlerFailed",
    "Input",
    "KeyWarning",
    "Message",
    "Output",
    "ProduceAnswer",
    "ProxyRules",
    "ProxyTunnel",
    "Rejected",
    "SharedWindowFailed",
    "SharedWindowRestored",
    "ShutdownComplete",
    "Timeout",
    "WindowKey",
    "WindowQuery",
    "Write",
]
