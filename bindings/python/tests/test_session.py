"""alipay_msg.session.ClientSession, the sans-IO core: its outputs for given inputs and
times (no sockets), and a whole exchange with `alipay-msg simulate` driven by a dozen
lines of plain sockets and select()."""

import dataclasses
import math
import select
import socket
import time
from typing import Callable, Dict, List

import pytest

import alipay_msg
from alipay_msg.session import (
    ClientSession,
    Close,
    Connect,
    Connected,
    Connecting,
    Disconnected,
    Done,
    Fatal,
    GaveUp,
    Input,
    Message,
    Output,
    ShutdownComplete,
    Timeout,
    Write,
)
from platform_simulator import KEYS, LIMIT, Simulator, client_config
from test_config import config

NOW = 1000.0


def drain(session: ClientSession) -> List[Output]:
    """Every output up to (and with) the Timeout or Done."""
    out: List[Output] = []
    while True:
        item = session.poll_output()
        out.append(item)
        if isinstance(item, (Timeout, Done)):
            return out


def started(**changes: object) -> ClientSession:
    return ClientSession(
        config(endpoint="127.0.0.1:7001", **changes), now=NOW, unix_ms=1_795_430_400_000, seed=bytes(32)
    )


def test_a_new_session_connects_for_register_do() -> None:
    session = started()
    connecting, connect, timeout = drain(session)
    assert isinstance(connecting, Connecting) and connecting.attempt == 1
    assert str(connecting) == "connecting (attempt 1)"
    assert isinstance(connect, Connect)
    assert (connect.conn_id, connect.host, connect.port, connect.tls) == (1, "127.0.0.1", 7001, False)
    # The attempt's deadline: connect_timeout (10 s) after now, on the monotonic clock.
    assert isinstance(timeout, Timeout) and timeout.at == NOW + 10.0
    assert session.poll_timeout() == NOW + 10.0
    assert not session.is_connected and not session.wants_read and session.in_flight == 0

    session.handle_input(Input.connected(1), NOW + 0.001)
    write, _ = drain(session)
    assert isinstance(write, Write) and write.conn_id == 1
    assert write.data.startswith(b"GET /websocket/register.do?") and b"app_id=2021000000000001" in write.data
    assert write.data.endswith(b"\r\n\r\n")

    # Input for a connection that is not the session's is ignored.
    session.handle_input(Input.bytes(99, b"HTTP/1.1 200 OK\r\n\r\n"), NOW + 0.002)
    assert [type(o) for o in drain(session)] == [Timeout]


def test_a_failed_attempt_is_retried_with_backoff_then_given_up() -> None:
    session = started(first_connect_timeout=3.0)
    drain(session)
    session.handle_input(Input.connect_failed(1, ConnectionRefusedError()), NOW + 0.5)
    close, disconnected, timeout = drain(session)
    assert isinstance(close, Close) and close.conn_id == 1
    assert isinstance(disconnected, Disconnected)
    assert disconnected.kind == "network" and "refused" in disconnected.reason
    assert disconnected.retry_in == 0.0  # the first retry is immediate
    assert isinstance(timeout, Timeout) and timeout.at == NOW + 0.5
    session.handle_timeout(NOW + 0.5)
    connecting, connect, timeout = drain(session)
    assert isinstance(connecting, Connecting) and connecting.attempt == 2
    assert isinstance(connect, Connect) and connect.conn_id == 2
    assert isinstance(timeout, Timeout) and timeout.at == NOW + 3.0  # first_connect_timeout
    session.handle_input(Input.closed(2, ConnectionResetError()), NOW + 0.6)
    (close, disconnected, *rest) = drain(session)
    assert isinstance(disconnected, Disconnected) and disconnected.retry_in is not None
    assert 0.0 <= disconnected.retry_in <= 1.0  # jittered, up to backoff_base
    session.handle_timeout(NOW + 3.0)
    outputs = drain(session)
    gave_up = [o for o in outputs if isinstance(o, GaveUp)]
    assert len(gave_up) == 1 and gave_up[0].waited == 3.0 and "reset" in (gave_up[0].last or "")
    assert isinstance(outputs[-1], Done)
    assert isinstance(session.error, alipay_msg.ConnectTimeoutError)
    assert session.poll_timeout() is None


def test_shutdown_before_connecting_closes_and_ends() -> None:
    session = started()
    drain(session)
    session.shutdown(NOW + 1)
    outputs = drain(session)
    assert [type(o) for o in outputs] == [Close, ShutdownComplete, Done]
    assert session.error is None
    with pytest.raises(alipay_msg.ShuttingDownError):
        session.send("a.b", "{}", NOW + 2)


def test_sending_needs_a_connection() -> None:
    session = started()
    with pytest.raises(alipay_msg.NotConnectedError) as refused:
        session.send("alipay.a.b", '{"k":1}', NOW)
    assert isinstance(refused.value, alipay_msg.SendError)


def test_time_and_inputs_are_checked() -> None:
    session = started()
    for bad in (math.nan, math.inf, NOW + 1e12):
        with pytest.raises(ValueError, match="now"):
            session.handle_timeout(bad)
    # A time before the session's start counts as its start.
    session.handle_timeout(NOW - 5)
    with pytest.raises(ValueError, match="32 bytes"):
        ClientSession(config(), seed=b"short")
    with pytest.raises(TypeError):
        Input.bytes(1, "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Input.closed(1, "reset")  # type: ignore[arg-type]
    assert Input.bytes(3, bytearray(b"ab")).kind == "bytes"
    assert repr(Input.closed(4)) == "Input.closed(4)"
    assert Input.connect_failed(5, 111).conn_id == 5


def test_a_refused_register_is_fatal(simulator: Simulator) -> None:
    # A key that is not the app's: the platform refuses the register signature.
    wrong_key = alipay_msg.load_private_key((KEYS / "alipay_private_pkcs1.pem").read_text())
    wrong = dataclasses.replace(client_config(simulator), app_private_key=wrong_key)
    session = ClientSession(wrong)
    outputs = drive(session, lambda _: False)
    fatal = [o for o in outputs if isinstance(o, Fatal)]
    assert len(fatal) == 1 and fatal[0].kind == "refused" and "isv.invalid-signature" in fatal[0].error
    assert isinstance(session.error, alipay_msg.RefusedError)


@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_plain_sockets_can_drive_it(simulator: Simulator, lanes: int) -> None:
    """The whole exchange, any check_parallelism: messages in the order pushed, each
    completed, acked SUCCESS."""
    ids = [simulator.push({"n": n}) for n in range(12)]
    session = ClientSession(client_config(simulator, check_parallelism=lanes, max_in_flight=5))
    assert session.check_parallelism == lanes
    delivered: List[Message] = []

    def handle(out: Output) -> bool:
        if isinstance(out, Message):
            assert session.in_flight <= 5
            delivered.append(out)
            session.complete(out, True, time.monotonic())
            if len(delivered) == len(ids):
                # The acks and a close frame go out, then the session ends (Done).
                session.shutdown(time.monotonic())
        return False

    outputs = drive(session, handle)
    assert [m.msg_id for m in delivered] == ids
    assert [m.biz_content["n"] for m in delivered] == list(range(12))
    assert any(isinstance(o, Connected) for o in outputs)
    assert any(isinstance(o, ShutdownComplete) for o in outputs)
    simulator.wait_status("every ack", lambda s: s["acked"] == len(ids))
    assert session.poll_timeout() is None


def drive(session: ClientSession, stop: Callable[[Output], bool]) -> List[Output]:
    """A minimal driver: blocking sockets and select(), until `stop(output)` or Done."""
    sockets: Dict[int, socket.socket] = {}
    seen: List[Output] = []
    deadline = time.monotonic() + LIMIT
    while time.monotonic() < deadline:
        out = session.poll_output()
        seen.append(out)
        if stop(out) or isinstance(out, Done):
            for sock in sockets.values():
                sock.close()
            return seen
        if isinstance(out, Connect):
            try:
                sockets[out.conn_id] = socket.create_connection((out.host, out.port), timeout=LIMIT)
                session.handle_input(Input.connected(out.conn_id), time.monotonic())
            except OSError as e:
                session.handle_input(Input.connect_failed(out.conn_id, e), time.monotonic())
        elif isinstance(out, Write):
            sockets[out.conn_id].sendall(out.data)
        elif isinstance(out, Close):
            linger(sockets.pop(out.conn_id))
        elif isinstance(out, Timeout):
            # The websocket is read only while the session wants bytes (backpressure).
            readable = list(sockets.values()) if not session.is_connected or session.wants_read else []
            wait = max(0.0, min(out.at - time.monotonic(), 0.5))
            ready, _, _ = select.select(readable, [], [], wait)
            if not ready:
                session.handle_timeout(time.monotonic())
            for sock in ready:
                conn_id = next(c for c, s in sockets.items() if s is sock)
                data = sock.recv(65536)
                item = Input.bytes(conn_id, data) if data else Input.closed(conn_id)
                session.handle_input(item, time.monotonic())
    raise AssertionError(f"not done within {LIMIT} s: {seen[-5:]}")



def linger(sock: socket.socket) -> None:
    """Closes after the peer has read everything: our end first, then read to its end
    (closing with unread bytes would reset the connection, losing the last acks)."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(1.0)
        while sock.recv(65536):
            pass
    except OSError:
        pass
    finally:
        sock.close()
