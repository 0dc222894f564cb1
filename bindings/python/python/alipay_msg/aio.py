"""The message channel on asyncio: alipay_msg.aio.Client, a byte pump around the core's
ClientSession (alipay_msg.session) over asyncio streams (``ssl`` for TLS).

::

    async with Client(config) as client:
        async for msg in client.messages():
            handle(msg.msg_api, msg.biz_content)
            await msg.ack()          # or: await msg.fail("why")

or ``await client.run(handler)`` (SUCCESS once ``handler(msg)`` returned, FAIL when it
raised), and ``await client.send(msg_api, {...})`` for a PRODUCE.

The guarantees are the Rust clients', because the decisions are the same core's: a
handler never sees an unverified message (unsigned, forged, another app's, outside the
timestamp window: answered FAIL and reported as a Rejected event), nothing is acked
SUCCESS before the handler succeeded, a redelivery of a message already handled is
acked without delivering it again (Duplicate), at most ``max_in_flight`` messages are
out at once (past that the client stops reading the socket and the platform holds the
rest), lost connections are re-established with the core's backoff, and shutdown lets
the messages in flight finish and their acks go out before the connection closes.
Connections go through an HTTP CONNECT proxy when ``Client(config, proxy=...)`` names one
or, by default, when the environment does (``HTTPS_PROXY`` / ``HTTP_PROXY`` /
``NO_PROXY``, as curl reads them): the rules of the Rust clients, from the same core.
With ``Client(config, window=RedisWindow(url))`` the instances of a service share one
duplicate window (Config.shared_window): a message handled by one is not handled again
by another it is redelivered to.
"""

import asyncio
import dataclasses
import errno
import json
import logging
import os
import socket
import ssl
import time
from collections import deque
from types import TracebackType
from typing import (
    Any,
    Awaitable,
    Callable,
    Deque,
    Dict,
    Mapping,
    Optional,
    Set,
    Type,
    Union,
)

from ._config import Config, SharedWindowConfig
from ._message import MessageFields
from ._native import (
    ClientClosedError,
    ClientSession,
    Close,
    ConfigError,
    Connect,
    ConnectAnswer,
    Connected,
    Disconnected,
    Done,
    Fatal,
    GaveUp,
    HandlerFailed,
    Input,
    KeyWarning,
    ProduceAck,
    ProduceAnswer,
    ProxyRules,
    ProxyTunnel,
    Rejected,
    SharedWindowFailed,
    Timeout,
    UnknownDeliveryError,
    WindowQuery,
    Write,
)
from ._native import Message as SessionMessage
from ._window import QUEUE_PER_IN_FLIGHT, WindowAsker, WindowStore, check_store
from .session import Event

__all__ = ["Client", "Message", "MessageStream"]

log = logging.getLogger("alipay_msg")

#: Bytes asked of a connection per read.
READ_BYTES = 64 * 1024
#: A connection whose unsent bytes exceed this (and twice max_frame_bytes) is closed:
#: the peer does not read, and the buffer would grow without bound.
WRITE_BUFFER_LIMIT = 4 * 1024 * 1024
#: Seconds a closing connection gets to send what is queued and see the peer's end.
CLOSE_FLUSH = 1.0
#: Timers fire this much after the deadline (s), so that an event loop whose clock is
#: coarser than time.monotonic() does not wake just before it.
TIMER_SLACK = 0.0005


class Message(MessageFields):
    """A verified platform message, delivered by Client.messages() or to run()'s
    handler: answer it once, with ``await ack()`` when handled or ``await fail()``.

    A message that is garbage-collected unanswered is answered FAIL (the platform
    delivers it again later), as is one still in flight when the client closes after
    ``shutdown_timeout``.

    Attributes:
        msg_id: ``x-msgId`` (str), the same across redeliveries.
        msg_api: The message type (str), e.g. ``"alipay.open.mini.version.audit.passed"``.
        app_id: The app the message is for (str, the client's).
        timestamp_ms: ``x-timestamp`` (int, milliseconds since the Unix epoch) or None.
        biz_content: The verified business content (dict, read with json.loads once).
        biz_content_text: Its exact verified text (str).
        answered: Whether ack() or fail() was called (bool).
    """

    __slots__ = ("_client", "_message", "_answered")
    _message: SessionMessage

    def __init__(self, client: "Client", message: SessionMessage) -> None:
        self._answered = False
        self._message = message
        self._client: Optional[Client] = client

    @property
    def answered(self) -> bool:
        return self._answered

    async def ack(self) -> None:
        """Handled: ack SUCCESS; the msg_id is remembered, a redelivery is not delivered
        again. Raises RuntimeError when the message was already answered."""
        self._answer(True, None)

    async def fail(self, reason: str = "failed by the application") -> None:
        """Not handled: ack FAIL; the platform delivers it again later (after 1 s, 2 s,
        4 s … up to about 25 hours). ``reason`` goes to the HandlerFailed event. Raises
        RuntimeError when the message was already answered."""
        self._answer(False, reason)

    def _answer(self, success: bool, reason: Optional[str]) -> None:
        if self._answered:
            raise RuntimeError(f"message {self.msg_id} was already answered")
        self._settle(success, reason)

    def _settle(self, success: bool, reason: Optional[str]) -> None:
        """Answers unless already answered (run()'s automatic answer)."""
        if self._answered:
            return
        self._answered = True
        client, self._client = self._client, None
        if client is not None:
            client._complete(self._message, success, reason)

    def __del__(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None and not self._answered:
            client._dropped(self._message)

    def __repr__(self) -> str:
        state = "answered" if self._answered else "unanswered"
        return f"<alipay_msg.aio.Message msg_id={self.msg_id!r} msg_api={self.msg_api!r} {state}>"


class _Conn:
    """One connection the session asked for: its task (connect, then read) and streams."""

    __slots__ = ("conn_id", "task", "reader", "writer", "failed")

    def __init__(self, conn_id: int) -> None:
        self.conn_id = conn_id
        self.task: Optional["asyncio.Task[None]"] = None
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None
        #: The peer stopped reading: later writes are dropped (the session closes it).
        self.failed = False


Handler = Callable[[Message], Awaitable[Any]]


class _StreamToken:
    """What a Client holds for the MessageStream attached to it (not the stream itself,
    which then goes as soon as its reader drops it)."""

    __slots__ = ()


class MessageStream:
    """The verified messages of a Client (Client.messages()): an async iterator that
    attaches to the client when first read and detaches when closed (aclose(), or
    dropped, e.g. by leaving an ``async for`` loop). One task reads it at a time."""

    __slots__ = ("_client", "_state", "_token")

    def __init__(self, client: "Client") -> None:
        self._client = client
        self._state = "new"  # "new" → "attached" → "closed"
        self._token = _StreamToken()

    def __aiter__(self) -> "MessageStream":
        return self

    async def __anext__(self) -> Message:
        client = self._client
        if self._state == "closed":
            raise StopAsyncIteration
        if self._state == "new":
            client._attach(self._token)
            self._state = "attached"
        inner = await client._next_delivery()
        if inner is None:
            self._close()
            client._raise_fatal()
            raise StopAsyncIteration
        return Message(client, inner)

    async def aclose(self) -> None:
        """Detaches: messages delivered and not taken are answered FAIL for redelivery."""
        self._close()

    def _close(self) -> None:
        if self._state == "attached":
            self._client._detach(self._token)
        self._state = "closed"

    def __del__(self) -> None:
        if getattr(self, "_state", None) != "attached":
            return
        self._state = "closed"
        loop = self._client._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._client._detach(self._token)
        else:
            try:
                loop.call_soon_threadsafe(self._client._detach, self._token)
            except RuntimeError:
                pass


class Client:
    """The message channel client on asyncio. Create it with a Config, then
    ``async with client:`` (or ``await client.connect()`` … ``await client.shutdown()``).

    Args:
        config: The configuration (alipay_msg.Config).
        ssl_context: TLS settings for a TLS endpoint (production and sandbox are); by
            default ssl.create_default_context() (the system's trusted roots).
        on_event: Called on the event loop with every event (alipay_msg.session.Event:
            Connecting, Connected, Disconnected, Rejected, Duplicate, HandlerFailed …;
            ``str(event)`` is one human line); it must not block. Without it events go
            to the ``alipay_msg`` logger. An exception it raises is logged.
        proxy: The HTTP CONNECT proxy (RFC 9110 §9.3.6) for register.do and the
            websocket alike: ``"http://[user:password@]host[:port]"`` (port 80 by
            default; credentials go as ``Proxy-Authorization: Basic``) for every
            connection, loopback included; ``"none"`` to connect directly whatever the
            environment says; None (the default) for the environment, read once here
            from os.environ as curl reads it: ``https_proxy`` / ``HTTPS_PROXY`` for TLS
            endpoints, ``http_proxy`` / ``HTTP_PROXY`` for plain ones, except the hosts
            ``no_proxy`` / ``NO_PROXY`` lists and loopback hosts (see
            alipay_msg.session.ProxyRules). TLS runs inside the tunnel, to the
            endpoint's host. A proxy that refuses a tunnel (e.g. 407 without the right
            credentials) fails that attempt: the session retries, and
            ConnectTimeoutError names "the proxy refused the tunnel: 407 …".
        window: The store of the duplicate window shared with the service's other
            instances: a RedisWindow, or any object with an ``answer(query)`` method
            (alipay_msg.WindowStore). Required when ``config.shared_window`` is set;
            given without it, the shared window is on with SharedWindowConfig's defaults
            (the Rust clients' rule, ``ClientConfig::match_window_store``). Each query is
            answered on one of 4 worker threads (``alipay-msg-window``), never on the
            event loop, at most ``2 × max_in_flight`` out at once (past that: answered as
            a store failure); queries still out at shutdown are abandoned.

    Raises ConfigError for a ``proxy`` (or a proxy variable of the environment) that
    is not an ``http://`` URL (the message names it), and for ``config.shared_window``
    without a ``window``; TypeError for a ``window`` without an ``answer`` method.
    """

    def __init__(
        self,
        config: Config,
        *,
        ssl_context: Optional[ssl.SSLContext] = None,
        on_event: Optional[Callable[[Event], None]] = None,
        proxy: Optional[str] = None,
        window: Optional[WindowStore] = None,
    ) -> None:
        self._proxy = ProxyRules(proxy, os.environ)
        if window is None and config.shared_window is not None:
            raise ConfigError(
                "invalid setting shared_window: needs a store: give Client(config, window=...)"
            )
        if window is not None:
            check_store(window)
            if config.shared_window is None:
                config = dataclasses.replace(config, shared_window=SharedWindowConfig())
        self._window = window
        self._asker: Optional[WindowAsker] = None
        self._config = config
        self._ssl = ssl_context
        self._on_event = on_event
        self._write_limit = max(WRITE_BUFFER_LIMIT, 2 * config.max_frame_bytes)
        self._session: Optional[ClientSession] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._conns: Dict[int, _Conn] = {}
        self._closers: Set["asyncio.Task[None]"] = set()
        self._timer: Optional[asyncio.TimerHandle] = None
        self._armed_at: Optional[float] = None
        self._pumping = False
        self._pump_scheduled = False
        self._reading = True
        self._read_gate: Optional[asyncio.Event] = None
        self._connected: Optional["asyncio.Future[None]"] = None
        self._done: Optional["asyncio.Future[None]"] = None
        self._sends: Dict[str, "asyncio.Future[ProduceAck]"] = {}
        # Deliveries for messages(); at most max_in_flight (the session's bound).
        self._inbox: Deque[SessionMessage] = deque()
        self._inbox_waiter: Optional["asyncio.Future[None]"] = None
        # Who takes deliveries: nobody, a run() handler, or the MessageStream attached.
        self._consumer: Union[None, _StreamToken, Handler] = None
        self._handlers: Set["asyncio.Task[None]"] = set()

    # ----- lifecycle ------------------------------------------------------------------

    async def connect(self) -> None:
        """Starts the session and returns once the first connection is open.

        Raises ConfigError (before any connection) for a configuration the core refuses,
        RefusedError when the platform refuses it (or this client refuses the platform's
        answer), ConnectTimeoutError when no connection opened within
        ``first_connect_timeout`` (naming the last attempt's failure), RuntimeError when
        called twice. Cancelling it stops the attempts.
        """
        if self._session is not None:
            raise RuntimeError("connect() was already called on this client")
        loop = asyncio.get_running_loop()
        session = ClientSession(self._config)
        # No consumer until messages() or run(): a client that only sends answers the
        # platform's pushes FAIL after consumer_grace instead of holding them.
        session.set_consumer(False, time.monotonic())
        self._loop, self._session = loop, session
        if self._window is not None:
            self._asker = WindowAsker(
                self._window,
                loop,
                QUEUE_PER_IN_FLIGHT * max(1, self._config.max_in_flight),
                self._input,
            )
        self._read_gate = asyncio.Event()
        self._read_gate.set()
        self._connected = loop.create_future()
        self._done = loop.create_future()
        self._pump()
        try:
            await asyncio.shield(self._connected)
        except BaseException:
            self._begin_shutdown()
            if self._done.done():
                await self._wait_closed()
            raise

    async def shutdown(self) -> None:
        """Graceful shutdown: takes no new messages (the platform's are answered FAIL),
        lets the handlers in flight finish and their acks go out (up to
        ``shutdown_timeout``), closes the connection, and returns once every connection
        is closed and every run() handler has returned. Safe to call more than once, and
        on a client that never connected."""
        if self._session is None or self._done is None:
            return
        self._begin_shutdown()
        await asyncio.shield(self._done)
        current = asyncio.current_task()
        handlers = [t for t in self._handlers if t is not current]
        if handlers:
            await asyncio.wait(handlers)
        await self._wait_closed()

    async def __aenter__(self) -> "Client":
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.shutdown()

    @property
    def connected(self) -> bool:
        """Whether the websocket is open now (bool)."""
        return self._session is not None and self._session.is_connected

    @property
    def in_flight(self) -> int:
        """Messages delivered and not answered yet (int)."""
        return 0 if self._session is None else self._session.in_flight

    # ----- consuming ------------------------------------------------------------------

    def messages(self) -> "MessageStream":
        """The verified messages, one by one, until the client shuts down: ``async for
        msg in client.messages()``. Answer each with ``await msg.ack()`` or ``await
        msg.fail()``; at most ``max_in_flight`` are out unanswered (then the client stops
        reading until one is answered).

        The stream attaches when first read and detaches when the loop is left (break,
        an exception: at once, when the stream is dropped) or on ``await
        stream.aclose()``; messages delivered to it and not taken are then answered FAIL
        for redelivery. Reading raises RuntimeError when run() or another stream is
        consuming, ClientClosedError when the client has shut down, and at the end
        RefusedError when the platform refused the configuration on a reconnect.
        """
        return MessageStream(self)

    async def run(self, handler: Handler) -> None:
        """Runs ``await handler(msg)`` for every verified message until the client shuts
        down, up to ``max_in_flight`` at once, each in a task of its own. Returning acks
        SUCCESS; raising (or being cancelled) acks FAIL and the platform delivers the
        message again later (the exception goes to the HandlerFailed event). A handler
        may answer ``msg`` itself first; then nothing more is sent.

        Returns after shutdown, once every handler has returned. Raises RuntimeError
        when another consumer is attached, ClientClosedError when the client has shut
        down, RefusedError when the platform refused the configuration on a reconnect.
        Cancelling it detaches the handler (the handlers running finish).
        """
        self._attach(handler)
        try:
            assert self._done is not None
            await asyncio.shield(self._done)
        finally:
            self._detach(handler)
        current = asyncio.current_task()
        handlers = [t for t in self._handlers if t is not current]
        if handlers:
            await asyncio.wait(handlers)
        self._raise_fatal()

    def _attach(self, consumer: Union[_StreamToken, Handler]) -> None:
        session = self._open_session()
        if self._consumer is not None:
            raise RuntimeError(
                "messages are already being consumed (run() or messages() is active)"
            )
        self._consumer = consumer
        session.set_consumer(True, time.monotonic())
        self._pump()

    def _detach(self, consumer: Union[_StreamToken, Handler]) -> None:
        if self._consumer is not consumer:
            return
        self._consumer = None
        session = self._session
        if session is None or self._done is None or self._done.done():
            return
        session.set_consumer(False, time.monotonic())
        while self._inbox:
            self._complete(self._inbox.popleft(), False, "no consumer any more")
        self._pump()

    async def _next_delivery(self) -> Optional[SessionMessage]:
        assert self._loop is not None and self._done is not None
        while not self._inbox:
            if self._done.done():
                return None
            if self._inbox_waiter is not None and not self._inbox_waiter.done():
                raise RuntimeError("a message stream is read by one task at a time")
            waiter = self._loop.create_future()
            self._inbox_waiter = waiter
            await waiter
        return self._inbox.popleft()

    def _wake_consumer(self) -> None:
        waiter, self._inbox_waiter = self._inbox_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _handle(self, handler: Handler, message: Message) -> None:
        try:
            await handler(message)
        except Exception as e:
            message._settle(False, f"{type(e).__name__}: {e}")
        except BaseException:
            message._settle(False, "handler cancelled")
            raise
        else:
            message._settle(True, None)

    # ----- sending ------------------------------------------------------------------

    async def send(self, msg_api: str, biz_content: Union[Mapping[str, Any], str]) -> ProduceAck:
        """Sends a message to the platform (a PRODUCE, PROTOCOL §7) and returns its
        PRODUCE_ACK: accepted or not, see ``ack.result`` (a ProduceCode) and
        ``ack.is_retryable``.

        ``biz_content`` is a mapping (written as compact JSON, non-ASCII kept as is: the
        app's charset encodes it) or the text of one JSON object. Raises
        NotConnectedError (between reconnects), TooManyPendingError, ShuttingDownError,
        InvalidMessageError (nothing was sent), SendTimeoutError (no answer within
        ``send_timeout``) or ConnectionLostError (the connection closed first; the
        platform may or may not have the message) — all SendError —,
        ClientClosedError after shutdown, TypeError for a biz_content that is neither.
        """
        session = self._open_session()
        assert self._loop is not None
        if isinstance(biz_content, str):
            text = biz_content
        elif isinstance(biz_content, Mapping):
            text = json.dumps(dict(biz_content), ensure_ascii=False, separators=(",", ":"))
        else:
            raise TypeError(
                f"biz_content must be a mapping or a JSON object's text, not {type(biz_content).__name__}"
            )
        stream_id = session.send(msg_api, text, time.monotonic())
        answer: "asyncio.Future[ProduceAck]" = self._loop.create_future()
        self._sends[stream_id] = answer
        self._pump()
        try:
            return await answer
        finally:
            self._sends.pop(stream_id, None)

    # ----- the pump -----------------------------------------------------------------

    def _open_session(self) -> ClientSession:
        if self._session is None:
            raise RuntimeError("the client is not connected: call connect() or use async with")
        if self._done is not None and self._done.done():
            raise ClientClosedError("the client has shut down")
        return self._session

    def _raise_fatal(self) -> None:
        error = None if self._session is None else self._session.error
        if error is not None:
            raise error

    def _begin_shutdown(self) -> None:
        if self._session is not None and self._done is not None and not self._done.done():
            self._session.shutdown(time.monotonic())
            self._pump()

    def _complete(self, inner: SessionMessage, success: bool, reason: Optional[str]) -> None:
        """Answers a delivery; the acks of one loop turn go out in one write."""
        session = self._session
        if session is None:
            return
        try:
            session.complete(inner, success, time.monotonic(), reason)
        except UnknownDeliveryError:
            # Forgotten: the session closed after shutdown_timeout.
            return
        if not self._pump_scheduled and self._loop is not None:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def _dropped(self, inner: SessionMessage) -> None:
        """A Message was garbage-collected unanswered (from any thread): FAIL it."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._complete, inner, False, "message dropped unanswered")
        except RuntimeError:
            pass

    def _input(self, item: Input) -> None:
        session = self._session
        if session is None:
            return
        session.handle_input(item, time.monotonic())
        self._pump()

    def _pump(self) -> None:
        """Carries out everything the session asks for, up to its next deadline."""
        self._pump_scheduled = False
        session = self._session
        if self._pumping or session is None:
            # Outputs of a nested call are taken by the loop running below.
            return
        self._pumping = True
        try:
            while True:
                out = session.poll_output()
                if isinstance(out, Write):
                    self._write(out)
                elif isinstance(out, SessionMessage):
                    self._deliver(out)
                elif isinstance(out, Timeout):
                    self._arm(out.at)
                    break
                elif isinstance(out, Connect):
                    self._open(out)
                elif isinstance(out, Close):
                    self._close(out.conn_id)
                elif isinstance(out, ProduceAnswer):
                    self._answer(out)
                elif isinstance(out, WindowQuery):
                    self._ask(out)
                elif isinstance(out, Done):
                    self._finish()
                    break
                else:
                    self._event(out)
            reading = session.wants_read or not session.is_connected
            if reading != self._reading and self._read_gate is not None:
                self._reading = reading
                if reading:
                    self._read_gate.set()
                else:
                    self._read_gate.clear()
        finally:
            self._pumping = False

    def _deliver(self, inner: SessionMessage) -> None:
        consumer = self._consumer
        if consumer is None:
            # Handed out just before the consumer went: nobody will take it.
            self._complete(inner, False, "no consumer any more")
            return
        if isinstance(consumer, _StreamToken):
            self._inbox.append(inner)
            self._wake_consumer()
            return
        assert self._loop is not None
        task = self._loop.create_task(self._handle(consumer, Message(self, inner)))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    def _ask(self, query: WindowQuery) -> None:
        asker = self._asker
        if asker is None:
            # Unreachable: the session asks only with shared_window, which needs a store.
            self._input(Input.window_answered(query.id, ConfigError("no window store")))
            return
        asker.ask(query)

    def _answer(self, out: ProduceAnswer) -> None:
        answer = self._sends.pop(out.stream_id, None)
        if answer is None or answer.done():
            return
        if out.ack is not None:
            answer.set_result(out.ack)
        elif out.error is not None:
            answer.set_exception(out.error)

    def _event(self, event: Event) -> None:
        if isinstance(event, Connected) and self._connected is not None:
            if not self._connected.done():
                self._connected.set_result(None)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                log.exception("alipay_msg: on_event raised")
        elif isinstance(event, (KeyWarning, Fatal, GaveUp, SharedWindowFailed)):
            log.warning("%s", event)
        elif isinstance(event, (Rejected, HandlerFailed, Disconnected)):
            log.info("%s", event)
        else:
            log.debug("%s", event)

    def _finish(self) -> None:
        """The session is done: settle everything that waits on it."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._asker is not None:
            self._asker.close()
        for conn_id in list(self._conns):
            self._close(conn_id)
        assert self._session is not None
        error = self._session.error
        for answer in self._sends.values():
            if not answer.done():
                answer.set_exception(ClientClosedError("the client has shut down"))
        if self._connected is not None and not self._connected.done():
            self._connected.set_exception(error or ClientClosedError("shut down before connecting"))
            # Retrieved by connect() when it waits; not worth a warning otherwise.
            self._connected.exception()
        if self._done is not None and not self._done.done():
            self._done.set_result(None)
        if self._read_gate is not None:
            self._read_gate.set()
        self._wake_consumer()

    # ----- time -----------------------------------------------------------------------

    def _arm(self, at: float) -> None:
        if at == self._armed_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._armed_at = at
        delay = max(0.0, at - time.monotonic()) + TIMER_SLACK
        self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._armed_at = None
        session = self._session
        if session is None:
            return
        now = time.monotonic()
        # Timestamps the session signs follow the wall clock, adjustments included.
        session.update_wall_clock(now, int(time.time() * 1000))
        session.handle_timeout(now)
        self._pump()

    # ----- connections ------------------------------------------------------------------

    def _open(self, out: Connect) -> None:
        assert self._loop is not None
        conn = _Conn(out.conn_id)
        self._conns[out.conn_id] = conn
        conn.task = self._loop.create_task(self._run_conn(conn, out.host, out.port, out.tls))

    async def _run_conn(self, conn: _Conn, host: str, port: int, tls: bool) -> None:
        """Connects (through the proxy's tunnel when the rules name one), then reads until
        the end of stream, while the session wants bytes."""
        try:
            context: Optional[ssl.SSLContext] = None
            if tls:
                if self._ssl is None:
                    self._ssl = ssl.create_default_context()
                context = self._ssl
            tunnel = self._proxy.for_target(host, port, tls)
            if tunnel is None:
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=context, server_hostname=host if tls else None
                )
            else:
                sock = await _open_tunnel(tunnel)
                try:
                    reader, writer = await asyncio.open_connection(
                        sock=sock, ssl=context, server_hostname=host if tls else None
                    )
                except BaseException:
                    sock.close()
                    raise
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._input(Input.connect_failed(conn.conn_id, e))
            return
        conn.reader, conn.writer = reader, writer
        self._input(Input.connected(conn.conn_id))
        gate = self._read_gate
        assert gate is not None
        try:
            while True:
                if not gate.is_set():
                    await gate.wait()
                data = await reader.read(READ_BYTES)
                if not data:
                    self._input(Input.closed(conn.conn_id))
                    return
                self._input(Input.bytes(conn.conn_id, data))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._input(Input.closed(conn.conn_id, e))

    def _write(self, out: Write) -> None:
        conn = self._conns.get(out.conn_id)
        if conn is None or conn.writer is None or conn.failed:
            return
        conn.writer.write(out.data)
        if conn.writer.transport.get_write_buffer_size() > self._write_limit:
            # The peer does not read: the session drops the connection (and reconnects).
            conn.failed = True
            assert self._loop is not None
            error = BlockingIOError(errno.EAGAIN, "the peer does not read")
            self._loop.call_soon(self._input, Input.closed(conn.conn_id, error))

    def _close(self, conn_id: int) -> None:
        conn = self._conns.pop(conn_id, None)
        if conn is None:
            return
        if conn.task is not None:
            conn.task.cancel()
        if conn.writer is not None and conn.reader is not None:
            assert self._loop is not None
            closer = self._loop.create_task(self._linger(conn.reader, conn.writer))
            self._closers.add(closer)
            closer.add_done_callback(self._closers.discard)

    @staticmethod
    async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Sends what is queued, ends the sending side, and reads (discarding) until the
        peer's end, at most CLOSE_FLUSH seconds: closing with unread bytes would reset
        the connection, and the peer could lose the last frames (acks, the close)."""
        try:
            await asyncio.wait_for(_drain_and_discard(reader, writer), CLOSE_FLUSH)
        except (asyncio.TimeoutError, OSError, ssl.SSLError, RuntimeError):
            pass
        finally:
            if writer.transport.get_write_buffer_size():
                writer.transport.abort()
            else:
                writer.close()

    async def _wait_closed(self) -> None:
        while self._closers:
            await asyncio.wait(list(self._closers))


async def _drain_and_discard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
        while await reader.read(READ_BYTES):
            pass


async def _open_tunnel(tunnel: ProxyTunnel) -> socket.socket:
    """Connects to the proxy (each of its addresses in turn, as open_connection does),
    sends the CONNECT request and reads the answer one byte at a time, so that no byte
    of the tunnel is taken from the socket; returns the socket, non-blocking, once the
    proxy answered 2xx. Raises OSError (resolution, connect, a read or write) or
    ProxyError (refused, closed before answering, a malformed or too long answer); the
    socket is closed then, and when cancelled."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(tunnel.host, tunnel.port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"getaddrinfo gave no address for the proxy {tunnel!r}")
    failure: Optional[OSError] = None
    for family, kind, proto, _, address in infos:
        try:
            sock = socket.socket(family, kind, proto)
        except OSError as e:
            # An address family this host cannot open (IPv6 turned off): the next one.
            failure = e
            continue
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except OSError as e:
            sock.close()
            failure = e
            continue
        except BaseException:
            sock.close()
            raise
        break
    else:
        assert failure is not None
        raise failure
    try:
        await loop.sock_sendall(sock, tunnel.request)
        answer = ConnectAnswer()
        while answer.feed(await loop.sock_recv(sock, 1)) is None:
            pass
    except BaseException:
        sock.close()
        raise
    return sock
