"""A small HTTP CONNECT proxy (RFC 9110 §9.3.6) for the proxy tests, on asyncio in a
thread of its own (so that asyncio and blocking clients alike can use it): listens on
127.0.0.1:0, reads each connection's request head, records its request line and headers,
and — by its mode — opens the tunnel (connects to the target, answers 200 and pipes bytes
both ways until both ends have closed), refuses it with 407, requires Basic credentials,
or closes the connection before answering."""

import asyncio
import base64
import dataclasses
import threading
from typing import Dict, List, Optional, Set, Tuple

from platform_simulator import LIMIT

#: What the proxy does with a CONNECT.
MODES = ("open", "refuse", "hangup", "auth")

#: Bytes asked of a socket per read while piping.
PIPE_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Request:
    """One connection's request head: its request line and headers (names lower-cased)."""

    line: str
    headers: Dict[str, str]

    @property
    def target(self) -> str:
        """The request target (``host:port`` for a CONNECT)."""
        parts = self.line.split(" ")
        return parts[1] if len(parts) == 3 else ""


class ConnectProxy:
    """The proxy, started at construction and stopped by stop().

    Args:
        mode: "open" (tunnel every CONNECT), "refuse" (answer 407 Proxy Authentication
            Required), "hangup" (close the connection without answering) or "auth"
            (tunnel only with ``Proxy-Authorization: Basic`` of ``credentials``, else
            answer 407).
        credentials: (user, password) for mode "auth".
    """

    def __init__(self, mode: str = "open", credentials: Optional[Tuple[str, str]] = None) -> None:
        assert mode in MODES, mode
        assert (mode == "auth") == (credentials is not None)
        self.mode = mode
        self._expected: Optional[str] = None
        if credentials is not None:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode("ascii")
            self._expected = f"Basic {token}"
        self._lock = threading.Lock()
        self._requests: List[Request] = []
        self._accepted = 0
        self._tunnels = 0
        self._writers: Set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="test-connect-proxy", daemon=True
        )
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(LIMIT)
        self.port: int = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:port``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> List[Request]:
        """The request head of each connection that sent one, in order."""
        with self._lock:
            return list(self._requests)

    @property
    def accepted(self) -> int:
        """Connections accepted."""
        with self._lock:
            return self._accepted

    @property
    def tunnels(self) -> int:
        """Tunnels opened (answered 200)."""
        with self._lock:
            return self._tunnels

    def stop(self) -> None:
        """Stops listening, closes every connection and ends the thread."""

        async def close() -> None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(LIMIT)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(LIMIT)
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self._accepted += 1
        self._writers.add(writer)
        try:
            await self._tunnel(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        line, *fields = head[: -len("\r\n\r\n")].split("\r\n")
        headers: Dict[str, str] = {}
        for field in fields:
            name, _, value = field.partition(":")
            headers[name.strip().lower()] = value.strip()
        request = Request(line, headers)
        with self._lock:
            self._requests.append(request)
        if self.mode == "hangup":
            return
        if not line.startswith("CONNECT "):
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        if self.mode == "refuse" or (
            self.mode == "auth" and headers.get("proxy-authorization") != self._expected
        ):
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
            )
            await writer.drain()
            return
        host, _, port = request.target.rpartition(":")
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                host.strip("[]"), int(port)
            )
        except (OSError, ValueError):
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        self._writers.add(upstream_writer)
        try:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            with self._lock:
                self._tunnels += 1
            await asyncio.gather(
                _pipe(reader, upstream_writer), _pipe(upstream_reader, writer)
            )
        finally:
            self._writers.discard(upstream_writer)
            upstream_writer.transport.abort()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copies `source` to `sink` until its end, then ends `sink`'s sending side."""
    try:
        while True:
            data = await source.read(PIPE_BYTES)
            if not data:
                break
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except OSError:
        sink.transport.abort()
