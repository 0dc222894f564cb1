"""The duplicate window shared by every instance of a service (module
``alipay_msg_core::window``, PROTOCOL §6): what a store is, and how a client asks it.

A store answers the session's WindowQuery objects: RedisWindow (the Rust
``alipay_msg_redis::RedisWindow``), or any object with an ``answer(query)`` method
returning one of the WindowAnswer texts or raising when it cannot answer. A client calls
it on a few worker threads of its own, never on its event loop.
"""

import asyncio
import concurrent.futures
from typing import Callable, Literal, Optional, Protocol, Set

from ._native import Input, WindowError, WindowQuery

__all__ = ["WindowAnswer", "WindowStore"]

#: A store's answer: "claimed", "handled" or "held" to a claim, "recorded" to a record,
#: "released" to a release.
WindowAnswer = Literal["claimed", "handled", "held", "recorded", "released"]

#: Threads that ask the store at once, per client (as the Rust blocking client's
#: ``alipay-msg-window`` threads): each holds one call.
WINDOW_THREADS = 4

#: Queries out at once per ``max_in_flight``: the session asks at most about one per
#: message in flight, plus the few releases and background records it counts against
#: the same bound; a query past this is answered with an error at once (FAIL, the
#: platform redelivers).
QUEUE_PER_IN_FLIGHT = 2


class WindowStore(Protocol):
    """What a client needs of a shared window store (RedisWindow is one): ``answer``
    does one query atomically (see WindowQuery for what each op must do) and returns
    its answer, or raises when it cannot (the client then follows
    SharedWindowConfig.on_store_failure). It is called on worker threads, several at
    once: it must be thread-safe and should end within a short timeout of its own."""

    def answer(self, query: WindowQuery) -> WindowAnswer: ...


def check_store(window: object) -> None:
    """Raises TypeError when ``window`` has no callable ``answer``."""
    if not callable(getattr(window, "answer", None)):
        raise TypeError(
            f"window must be a store with an answer(query) method (e.g. RedisWindow), "
            f"not {type(window).__name__}"
        )


class WindowAsker:
    """Asks one client's store on WINDOW_THREADS worker threads and hands each answer,
    as an Input, to ``deliver`` on the event loop. At most ``capacity`` queries are out;
    past that a query is answered with a WindowError at once. ``close()`` abandons the
    queries still out: their answers are dropped."""

    def __init__(
        self,
        store: WindowStore,
        loop: asyncio.AbstractEventLoop,
        capacity: int,
        deliver: Callable[[Input], None],
    ) -> None:
        self._store = store
        self._loop = loop
        self._capacity = max(1, capacity)
        self._deliver = deliver
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = (
            concurrent.futures.ThreadPoolExecutor(
                max_workers=WINDOW_THREADS, thread_name_prefix="alipay-msg-window"
            )
        )
        self._out: Set["asyncio.Future[WindowAnswer]"] = set()

    @property
    def out(self) -> int:
        """Queries asked and not answered yet (int)."""
        return len(self._out)

    def ask(self, query: WindowQuery) -> None:
        """Puts ``query`` to the store off the event loop (never blocks)."""
        query_id = query.id
        if self._executor is None:
            self._deliver(
                Input.window_answered(query_id, WindowError("the client has shut down"))
            )
            return
        if len(self._out) >= self._capacity:
            self._deliver(
                Input.window_answered(
                    query_id, WindowError("too many shared-window queries waiting")
                )
            )
            return
        future = self._loop.run_in_executor(self._executor, self._store.answer, query)
        self._out.add(future)
        future.add_done_callback(lambda done: self._answered(query_id, done))

    def _answered(self, query_id: int, done: "asyncio.Future[WindowAnswer]") -> None:
        self._out.discard(done)
        if self._executor is None or done.cancelled():
            return  # abandoned at shutdown
        error = done.exception()
        try:
            item = Input.window_answered(query_id, error if error is not None else done.result())
        except (TypeError, ValueError) as e:
            # The store returned something that is not an answer: it did not answer.
            item = Input.window_answered(query_id, WindowError(f"the store's answer: {e}"))
        self._deliver(item)

    def close(self) -> None:
        """Abandons the queries still out; the worker threads end after their current
        call (bounded by the store's own timeout)."""
        executor, self._executor = self._executor, None
        for future in list(self._out):
            future.cancel()
        self._out.clear()
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
