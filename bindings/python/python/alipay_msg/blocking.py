"""The message channel for scripts: alipay_msg.Client, with blocking methods.

::

    with alipay_msg.Client(config) as client:
        for msg in client.messages():
            handle(msg.msg_api, msg.biz_content)
            msg.ack()                # or msg.fail("why")

or ``client.run(handler)`` (handlers on a thread pool; SUCCESS once ``handler(msg)``
returned, FAIL when it raised) and ``client.send(msg_api, {...})``.

It is the asyncio client (alipay_msg.aio.Client) on an event loop of its own, in a
thread named ``alipay-msg-io``: the same session, connections, backpressure, reconnects
and graceful shutdown, with the same guarantees; each method waits for its answer.
"""

import asyncio
import concurrent.futures
import threading
from types import TracebackType
from typing import (
    Any,
    Callable,
    Coroutine,
    Dict,
    Iterator,
    Mapping,
    Optional,
    Type,
    TypeVar,
    Union,
)
import ssl

from . import aio
from ._config import Config
from ._message import MessageFields
from ._native import ProduceAck
from ._window import WindowStore
from .session import Event

__all__ = ["Client", "Message"]

T = TypeVar("T")


class Message(MessageFields):
    """A verified platform message from alipay_msg.Client: answer it once, with ack()
    when handled or fail(). Garbage-collected unanswered, it is answered FAIL.

    Attributes:
        msg_id: ``x-msgId`` (str), the same across redeliveries.
        msg_api: The message type (str).
        app_id: The app the message is for (str).
        timestamp_ms: ``x-timestamp`` (int, milliseconds since the Unix epoch) or None.
        biz_content: The verified business content (dict).
        biz_content_text: Its exact verified text (str).
        answered: Whether ack() or fail() was called (bool).
    """

    __slots__ = ("_client", "_message")
    _message: aio.Message

    def __init__(self, client: "Client", message: aio.Message) -> None:
        self._client = client
        self._message = message

    @property
    def answered(self) -> bool:
        return self._message.answered

    def ack(self) -> None:
        """Handled: ack SUCCESS. Raises RuntimeError when already answered."""
        self._client._call(self._message.ack())

    def fail(self, reason: str = "failed by the application") -> None:
        """Not handled: ack FAIL; the platform delivers it again later. Raises
        RuntimeError when already answered."""
        self._client._call(self._message.fail(reason))

    def __repr__(self) -> str:
        state = "answered" if self.answered else "unanswered"
        return f"<alipay_msg.Message msg_id={self.msg_id!r} msg_api={self.msg_api!r} {state}>"


class Client:
    """The message channel client with blocking methods, for scripts. Create it with a
    Config, then ``with client:`` (or ``client.connect()`` … ``client.shutdown()``).

    Args:
        config: The configuration (alipay_msg.Config).
        ssl_context: TLS settings for a TLS endpoint; by default
            ssl.create_default_context().
        on_event: Called with every event (alipay_msg.session.Event), on the client's
            I/O thread: it must not block nor call the client. Without it events go to
            the ``alipay_msg`` logger.
        proxy: The HTTP CONNECT proxy, as for aio.Client: ``"http://[user:password@]
            host[:port]"``, ``"none"`` (direct), or None (the default: HTTPS_PROXY /
            HTTP_PROXY / NO_PROXY of os.environ, read once here; loopback direct).
        window: The store of the duplicate window shared with the service's other
            instances, as for aio.Client (a RedisWindow, or any object with an
            ``answer(query)`` method): required with ``config.shared_window``, which it
            turns on with its defaults when unset. Asked on worker threads of its own.

    Raises ConfigError for a ``proxy`` (or a proxy variable of the environment) that
    is not an ``http://`` URL, and for ``config.shared_window`` without a ``window``;
    TypeError for a ``window`` without an ``answer`` method. Methods may be called from any thread but the I/O thread
    (RuntimeError there).
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
        self._client = aio.Client(
            config, ssl_context=ssl_context, on_event=on_event, proxy=proxy, window=window
        )
        self._max_in_flight = config.max_in_flight
        # The I/O thread and its event loop, from connect() on.
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Runs `coroutine` on the I/O thread and waits for its result."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None or not thread.is_alive():
            coroutine.close()
            raise RuntimeError("the client is not connected: call connect() or use with")
        if threading.current_thread() is thread:
            coroutine.close()
            raise RuntimeError("alipay_msg.Client methods cannot be called on its I/O thread")
        future = asyncio.run_coroutine_threadsafe(coroutine, loop)
        try:
            return future.result()
        except BaseException:
            # Interrupted (Ctrl-C) or failed: nothing more to wait for on the loop.
            future.cancel()
            raise

    def connect(self) -> None:
        """Starts the I/O thread and returns once the first connection is open. Raises
        as aio.Client.connect does (ConfigError, RefusedError, ConnectTimeoutError);
        RuntimeError when called twice."""
        if self._thread is not None:
            raise RuntimeError("connect() was already called on this client")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="alipay-msg-io", daemon=True
        )
        self._thread.start()
        try:
            self._call(self._client.connect())
        except BaseException:
            self._stop_thread()
            raise

    def shutdown(self) -> None:
        """Graceful shutdown (aio.Client.shutdown): no new messages, the ones in flight
        finish and their acks go out, the connection closes; then the I/O thread ends.
        Safe to call more than once."""
        if self._closed:
            return
        if self._thread is not None and self._thread.is_alive():
            self._call(self._client.shutdown())
        self._stop_thread()

    close = shutdown

    def _stop_thread(self) -> None:
        self._closed = True
        thread, loop = self._thread, self._loop
        if thread is not None and loop is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
        if loop is not None and not loop.is_closed():
            loop.close()

    def __enter__(self) -> "Client":
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.shutdown()

    @property
    def connected(self) -> bool:
        """Whether the websocket is open now (bool)."""
        return self._client.connected

    def messages(self) -> Iterator[Message]:
        """The verified messages, one by one (blocking), until the client shuts down;
        answer each with ack() or fail(). Leaving the loop detaches (messages delivered
        meanwhile are answered FAIL for redelivery). Raises as aio.Client.messages
        does."""
        stream = self._client.messages()
        try:
            while True:
                try:
                    message = self._call(_next(stream))
                except StopAsyncIteration:
                    return
                yield Message(self, message)
        finally:
            if self._thread is not None and self._thread.is_alive():
                self._call(_close(stream))

    def run(self, handler: Callable[[Message], Any], *, workers: Optional[int] = None) -> None:
        """Runs ``handler(msg)`` for every verified message until the client shuts down
        (from another thread, or Ctrl-C: KeyboardInterrupt shuts down gracefully, then
        is raised again), on a pool of ``workers`` threads (default: max_in_flight, at
        most 32). Returning acks SUCCESS; raising acks FAIL. Raises as aio.Client.run
        does."""
        count = workers if workers is not None else min(32, self._max_in_flight)
        if count < 1:
            raise ValueError(f"workers must be at least 1, not {count}")
        pool = concurrent.futures.ThreadPoolExecutor(count, thread_name_prefix="alipay-msg-handler")

        async def call(message: aio.Message) -> None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(pool, handler, Message(self, message))

        try:
            self._call(self._client.run(call))
        except KeyboardInterrupt:
            self.shutdown()
            raise
        finally:
            pool.shutdown(wait=True)

    def send(self, msg_api: str, biz_content: Union[Mapping[str, Any], str]) -> ProduceAck:
        """Sends a PRODUCE and waits for its PRODUCE_ACK (aio.Client.send; the same
        arguments, result and errors)."""
        return self._call(self._client.send(msg_api, biz_content))


async def _next(stream: aio.MessageStream) -> aio.Message:
    return await stream.__anext__()


async def _close(stream: aio.MessageStream) -> None:
    await stream.aclose()
