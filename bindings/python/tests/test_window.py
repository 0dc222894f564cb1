"""The duplicate window shared by the instances of a service (Config.shared_window),
from Python: the asyncio and blocking clients against `alipay-msg simulate` with a store
in memory (claim / record / release as the Rust tests' MemStore), the configuration
rules, the sans-IO query and answer types, and RedisWindow (against a real Redis only
when ALIPAY_MSG_REDIS_URL is set, as the Rust tests)."""

import asyncio
import contextlib
import dataclasses
import os
import socket
import threading
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional

import pytest

import alipay_msg
from alipay_msg import SharedWindowConfig, WindowAnswer, WindowKey, WindowQuery
from alipay_msg.aio import Client, Message
from alipay_msg.session import (
    Duplicate,
    Event,
    Input,
    Rejected,
    SharedWindowFailed,
    SharedWindowRestored,
)
from platform_simulator import APP_ID, LIMIT, Simulator, client_config
from test_aio import of, run, until

HANDLED = "handled"


class MemStore:
    """Keys to values, no expiry (the tests are short), as the Rust tests' MemStore:
    ``down`` raises on every query; ``handled_elsewhere`` / ``held_elsewhere`` make
    every claim find the id recorded / claimed by another instance."""

    def __init__(self) -> None:
        self.values: Dict[str, str] = {}
        self.ops: List[str] = []
        self.down = False
        self.handled_elsewhere = False
        self.held_elsewhere = False
        self._lock = threading.Lock()

    def answer(self, query: WindowQuery) -> WindowAnswer:
        # Never on the event loop: the client asks on worker threads.
        assert threading.current_thread().name.startswith("alipay-msg-window"), (
            threading.current_thread().name
        )
        with self._lock:
            self.ops.append(query.op)
            if self.down:
                raise ConnectionRefusedError("connection refused")
            key = query.key.render("test")
            if self.handled_elsewhere:
                self.values[key] = HANDLED
            if self.held_elsewhere:
                self.values[key] = "another-instance-token"
            if query.op == "claim":
                held = self.values.get(key)
                if held is None:
                    assert query.token is not None and query.lease is not None
                    self.values[key] = query.token
                    return "claimed"
                return "handled" if held == HANDLED else "held"
            if query.op == "record":
                assert query.window is not None
                self.values[key] = HANDLED
                return "recorded"
            if self.values.get(key) == query.token:
                del self.values[key]
            return "released"


def msg_key(msg_id: str) -> str:
    return f"test:{APP_ID}:msg:{msg_id}"


def windowed(sim: Simulator, **window: Any) -> alipay_msg.Config:
    return client_config(sim, shared_window=SharedWindowConfig(**window))


@contextlib.asynccontextmanager
async def running(
    config: alipay_msg.Config, handler: Callable[[Message], Awaitable[None]], **options: Any
) -> AsyncIterator[Client]:
    """A connected client running ``handler`` (Client.run on a task); shut down, and its
    run awaited, when the block ends."""
    async with Client(config, **options) as client:
        task = asyncio.create_task(client.run(handler))
        yield client
        await client.shutdown()
        await task


# ----- the asyncio client with a store in memory ----------------------------------------


def test_a_message_is_claimed_handled_once_and_recorded(simulator: Simulator) -> None:
    store = MemStore()
    handled: List[str] = []

    async def main() -> None:
        async def handler(msg: Message) -> None:
            # Claimed before the handler runs, recorded only after it returned.
            assert store.values.get(msg_key(msg.msg_id)) not in (None, HANDLED)
            handled.append(msg.msg_id)

        async with running(windowed(simulator), handler, window=store):
            msg_id = simulator.push({"k": "v"})
            await asyncio.to_thread(simulator.wait_lines, f"ack SUCCESS for {msg_id}")

    run(main())
    assert len(handled) == 1
    assert store.values == {msg_key(handled[0]): HANDLED}
    assert store.ops == ["claim", "record"]


def test_a_message_handled_elsewhere_is_acked_without_the_handler(
    simulator: Simulator,
) -> None:
    store = MemStore()
    store.handled_elsewhere = True
    events: List[Event] = []
    handled: List[str] = []

    async def main() -> str:
        async def handler(msg: Message) -> None:
            handled.append(msg.msg_id)

        async with running(windowed(simulator), handler, window=store, on_event=events.append):
            msg_id = simulator.push({"k": "v"})
            await asyncio.to_thread(simulator.wait_lines, f"ack SUCCESS for {msg_id}")
        return msg_id

    msg_id = run(main())
    assert handled == []
    assert [d.msg_id for d in of(events, Duplicate)] == [msg_id]
    assert store.ops == ["claim"]


def test_a_message_held_elsewhere_is_answered_fail_then_handled_here(
    simulator: Simulator,
) -> None:
    store = MemStore()
    store.held_elsewhere = True
    events: List[Event] = []
    handled: List[str] = []

    async def main() -> str:
        async def handler(msg: Message) -> None:
            handled.append(msg.msg_id)

        async with running(windowed(simulator), handler, window=store, on_event=events.append):
            msg_id = simulator.push({"k": "v"})
            await asyncio.to_thread(simulator.wait_lines, f"ack FAIL for {msg_id}")
            assert handled == []
            # The other instance gave its claim up: the redelivery is ours.
            store.held_elsewhere = False
            store.values.clear()
            await asyncio.to_thread(simulator.wait_lines, f"ack SUCCESS for {msg_id}")
        return msg_id

    msg_id = run(main())
    assert handled == [msg_id]
    rejected = of(events, Rejected)
    assert rejected and {r.kind for r in rejected} == {"claimed_elsewhere"}
    assert store.values == {msg_key(msg_id): HANDLED}


def test_a_failed_handler_releases_its_claim(simulator: Simulator) -> None:
    store = MemStore()
    calls: List[str] = []

    async def main() -> str:
        async def handler(msg: Message) -> None:
            calls.append(msg.msg_id)
            if len(calls) == 1:
                raise RuntimeError("first attempt fails")

        async with running(windowed(simulator), handler, window=store):
            msg_id = simulator.push({"k": "v"})
            await asyncio.to_thread(simulator.wait_lines, f"ack SUCCESS for {msg_id}")
        return msg_id

    msg_id = run(main())
    assert calls == [msg_id, msg_id]
    assert store.ops == ["claim", "release", "claim", "record"]
    assert store.values == {msg_key(msg_id): HANDLED}


def test_a_store_that_raises_fails_the_message_until_it_answers(
    simulator: Simulator,
) -> None:
    store = MemStore()
    store.down = True
    events: List[Event] = []
    handled: List[str] = []

    async def main() -> str:
        async def handler(msg: Message) -> None:
            handled.append(msg.msg_id)

        async with running(windowed(simulator), handler, window=store, on_event=events.append):
            msg_id = simulator.push({"k": "v"})
            await asyncio.to_thread(simulator.wait_lines, f"ack FAIL for {msg_id}")
            assert handled == []
            store.down = False
            await asyncio.to_thread(simulator.wait_lines, f"ack SUCCESS for {msg_id}")
        return msg_id

    msg_id = run(main())
    assert handled == [msg_id]
    failed = of(events, SharedWindowFailed)
    assert failed and failed[0].msg_id == msg_id and failed[0].op == "claim"
    assert not failed[0].fallback
    assert "ConnectionRefusedError: connection refused" in failed[0].error
    assert of(events, SharedWindowRestored)


def test_a_store_that_raises_falls_back_to_the_local_window_when_configured(
    simulator: Simulator,
) -> None:
    store = MemStore()
    store.down = True
    events: List[Event] = []
    handled: List[str] = []

    async def main() -> str:
        async def handler(msg: Message) -> None:
            handled.append(msg.msg_id)

        config = windowed(simulator, on_store_failure="local_window")
        async with running(config, handler, window=store, on_event=events.append):
            msg_id = simulator.push({"k": "v"})
            await asyncio.to_thread(simulator.wait_lines, f"ack SUCCESS for {msg_id}")
        return msg_id

    msg_id = run(main())
    assert handled == [msg_id]
    failed = of(events, SharedWindowFailed)
    assert [f.op for f in failed][:2] == ["claim", "record"]
    assert all(f.fallback and f.msg_id == msg_id for f in failed)


def test_an_answer_that_is_not_one_counts_as_a_store_failure(simulator: Simulator) -> None:
    class Wrong:
        def answer(self, query: WindowQuery) -> Any:
            return "maybe"

    events: List[Event] = []

    async def main() -> str:
        async def handler(msg: Message) -> None:
            raise AssertionError("never delivered")

        async with running(
            windowed(simulator),
            handler,
            window=Wrong(),
            on_event=events.append,
        ):
            msg_id = simulator.push({"k": "v"})
            await asyncio.to_thread(simulator.wait_lines, f"ack FAIL for {msg_id}")
            await until("the event", lambda: of(events, SharedWindowFailed))
        return msg_id

    msg_id = run(main())
    failed = of(events, SharedWindowFailed)[0]
    assert failed.msg_id == msg_id and "maybe" in failed.error


def test_queries_still_out_at_shutdown_are_abandoned(simulator: Simulator) -> None:
    release = threading.Event()
    asked = threading.Event()

    class Slow:
        def answer(self, query: WindowQuery) -> WindowAnswer:
            asked.set()
            release.wait(LIMIT)
            return "claimed"

    async def main() -> None:
        config = dataclasses.replace(windowed(simulator), shutdown_timeout=1.0)
        client = Client(config, window=Slow())
        await client.connect()
        task = asyncio.create_task(client.run(lambda msg: asyncio.sleep(0)))
        simulator.push({"k": "v"})
        await asyncio.to_thread(asked.wait, LIMIT)
        await client.shutdown()
        await task

    try:
        run(main())
    finally:
        release.set()


# ----- the blocking client --------------------------------------------------------------


def test_the_blocking_client_shares_the_window(simulator: Simulator) -> None:
    store = MemStore()
    with alipay_msg.Client(windowed(simulator), window=store) as client:
        msg_id = simulator.push({"k": "v"})
        for msg in client.messages():
            assert msg.msg_id == msg_id
            msg.ack()
            break
        simulator.wait_lines(f"ack SUCCESS for {msg_id}")
    assert store.values == {msg_key(msg_id): HANDLED}
    assert store.ops == ["claim", "record"]


# ----- configuration --------------------------------------------------------------------


def test_a_shared_window_needs_a_store(simulator: Simulator) -> None:
    with pytest.raises(alipay_msg.ConfigError, match="shared_window"):
        Client(windowed(simulator))
    with pytest.raises(alipay_msg.ConfigError, match="shared_window"):
        alipay_msg.Client(windowed(simulator))
    with pytest.raises(TypeError, match="answer"):
        Client(windowed(simulator), window=object())  # type: ignore[arg-type]


def test_a_store_without_the_setting_turns_it_on_with_its_defaults(
    simulator: Simulator,
) -> None:
    store = MemStore()

    async def main() -> str:
        async with running(
            client_config(simulator),
            lambda msg: asyncio.sleep(0),
            window=store,
        ):
            msg_id = simulator.push({"k": "v"})
            await asyncio.to_thread(simulator.wait_lines, f"ack SUCCESS for {msg_id}")
        return msg_id

    msg_id = run(main())
    assert store.ops == ["claim", "record"]
    assert store.values == {msg_key(msg_id): HANDLED}


def test_settings_reach_the_core_and_are_checked(simulator: Simulator) -> None:
    from alipay_msg import _native

    config = windowed(
        simulator, lease=12.5, window=3600.0, on_store_failure="local_window", record_retry=0.25
    )
    assert _native._effective_config(config)["shared_window"] == {
        "lease": 12.5,
        "window": 3600.0,
        "on_store_failure": "local_window",
        "record_retry": 0.25,
    }
    assert _native._effective_config(client_config(simulator))["shared_window"] is None
    defaults = _native._effective_config(windowed(simulator))["shared_window"]
    assert defaults == {
        "lease": 60.0,
        "window": 90000.0,
        "on_store_failure": "fail",
        "record_retry": 1.0,
    }
    for bad, name in [
        ({"lease": 0.0}, "shared_window.lease"),
        ({"window": 366 * 24 * 3600.0}, "shared_window.window"),
        ({"record_retry": -1.0}, "shared_window.record_retry"),
        ({"on_store_failure": "ignore"}, "shared_window.on_store_failure"),
    ]:
        with pytest.raises(alipay_msg.ConfigError, match=name):
            alipay_msg.session.ClientSession(windowed(simulator, **bad), now=0.0)


# ----- the sans-IO types ----------------------------------------------------------------


def test_queries_keys_and_answers() -> None:
    key = WindowKey(APP_ID, "msg", "m1")
    assert key.render() == f"alipay-msg:{APP_ID}:msg:m1"
    assert key.render("p") == f"p:{APP_ID}:msg:m1"
    assert key == WindowKey(APP_ID, "msg", "m1") and key != WindowKey(APP_ID, "notify", "m1")
    assert len({key, WindowKey(APP_ID, "msg", "m1")}) == 1
    claim = WindowQuery(7, key, "claim", token="t-1", lease=1.5)
    assert (claim.id, claim.op, claim.token, claim.lease, claim.window) == (7, "claim", "t-1", 1.5, None)
    assert claim.key == key
    record = WindowQuery(8, key, "record", window=60.0)
    assert (record.token, record.window) == (None, 60.0)
    with pytest.raises(ValueError):
        WindowKey(APP_ID, "mail", "m1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        WindowQuery(9, key, "claim", token="t")  # no lease
    with pytest.raises(ValueError):
        WindowQuery(9, key, "record", window=0.0)

    answered = Input.window_answered(7, "claimed")
    assert (answered.kind, answered.conn_id) == ("window_answered", None)
    assert "claimed" in repr(answered)
    assert "down" in repr(Input.window_answered(7, OSError("down")))
    with pytest.raises(ValueError, match="claimed"):
        Input.window_answered(7, "maybe")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Input.window_answered(7, 1)  # type: ignore[arg-type]


def test_the_sans_io_session_asks_only_with_the_setting(simulator: Simulator) -> None:
    """An answer for a query the session never asked is ignored."""
    session = alipay_msg.session.ClientSession(client_config(simulator), now=0.0)
    session.handle_input(Input.window_answered(1, "claimed"), 0.0)
    outputs = []
    while True:
        out = session.poll_output()
        outputs.append(out)
        if isinstance(out, alipay_msg.session.Timeout):
            break
    assert not any(isinstance(o, WindowQuery) for o in outputs)


# ----- RedisWindow ----------------------------------------------------------------------


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_redis_window_settings_are_checked() -> None:
    window = alipay_msg.RedisWindow("redis://127.0.0.1:6379/0", prefix="svc", timeout=0.25)
    assert (window.prefix, window.timeout) == ("svc", 0.25)
    with pytest.raises(alipay_msg.ConfigError):
        alipay_msg.RedisWindow("http://127.0.0.1/")
    with pytest.raises(alipay_msg.ConfigError, match="prefix"):
        alipay_msg.RedisWindow("redis://127.0.0.1/", prefix="a:b")
    with pytest.raises(alipay_msg.ConfigError, match="timeout"):
        alipay_msg.RedisWindow("redis://127.0.0.1/", timeout=0.0)
    with pytest.raises(TypeError):
        window.answer("claim")  # type: ignore[arg-type]


def test_an_unreachable_redis_is_a_window_error_and_fails_the_message(
    simulator: Simulator,
) -> None:
    window = alipay_msg.RedisWindow(
        f"redis://:secret@127.0.0.1:{closed_port()}/0", timeout=0.5
    )
    query = WindowQuery(1, WindowKey(APP_ID, "msg", "m1"), "claim", token="t", lease=5.0)
    with pytest.raises(alipay_msg.WindowError) as raised:
        window.answer(query)
    assert "secret" not in str(raised.value)
    with pytest.raises(alipay_msg.WindowError):
        window.ping()

    events: List[Event] = []

    async def main() -> str:
        async with running(
            windowed(simulator),
            lambda msg: asyncio.sleep(0),
            window=window,
            on_event=events.append,
        ):
            msg_id = simulator.push({"k": "v"})
            await asyncio.to_thread(simulator.wait_lines, f"ack FAIL for {msg_id}")
        return msg_id

    msg_id = run(main())
    failed = of(events, SharedWindowFailed)
    assert failed and failed[0].msg_id == msg_id and "Redis" in failed[0].error


def redis_url() -> Optional[str]:
    """ALIPAY_MSG_REDIS_URL, as alipay_msg_redis::redis_url_from_env: the test is skipped
    without it, and fails under CI (CI must start a Redis)."""
    url = os.environ.get("ALIPAY_MSG_REDIS_URL")
    if url:
        return url
    if "CI" in os.environ:
        pytest.fail("CI is set but ALIPAY_MSG_REDIS_URL is not: CI must start a Redis for these tests")
    pytest.skip("ALIPAY_MSG_REDIS_URL is not set (start redis-server and set it, as .ci/run does)")


def test_redis_claims_records_and_releases() -> None:
    url = redis_url()
    assert url is not None
    prefix = f"pytest-{uuid.uuid4().hex}"
    one = alipay_msg.RedisWindow(url, prefix=prefix)
    other = alipay_msg.RedisWindow(url, prefix=prefix)
    one.ping()
    key = WindowKey(APP_ID, "msg", "m1")
    assert one.answer(WindowQuery(1, key, "claim", token="a", lease=30.0)) == "claimed"
    assert other.answer(WindowQuery(2, key, "claim", token="b", lease=30.0)) == "held"
    # Only the holder's release deletes the claim.
    assert other.answer(WindowQuery(3, key, "release", token="b")) == "released"
    assert other.answer(WindowQuery(4, key, "claim", token="b", lease=30.0)) == "held"
    assert one.answer(WindowQuery(5, key, "release", token="a")) == "released"
    assert other.answer(WindowQuery(6, key, "claim", token="b", lease=30.0)) == "claimed"
    assert other.answer(WindowQuery(7, key, "record", window=30.0)) == "recorded"
    assert one.answer(WindowQuery(8, key, "claim", token="c", lease=30.0)) == "handled"
    # Another prefix is another namespace.
    elsewhere = alipay_msg.RedisWindow(url, prefix=prefix + "-other")
    assert elsewhere.answer(WindowQuery(9, key, "claim", token="d", lease=1.0)) == "claimed"


def test_two_clients_on_one_redis_handle_each_message_once(simulator: Simulator) -> None:
    url = redis_url()
    assert url is not None
    prefix = f"pytest-{uuid.uuid4().hex}"
    handled: Dict[str, List[str]] = {"a": [], "b": []}

    async def main() -> List[str]:
        config = windowed(simulator, window=600.0)
        async with Client(config, window=alipay_msg.RedisWindow(url, prefix=prefix)) as a, Client(
            config, window=alipay_msg.RedisWindow(url, prefix=prefix)
        ) as b:

            def handler(name: str) -> Any:
                async def handle(msg: Message) -> None:
                    handled[name].append(msg.msg_id)

                return handle

            tasks = [
                asyncio.create_task(a.run(handler("a"))),
                asyncio.create_task(b.run(handler("b"))),
            ]
            ids = [simulator.push({"n": n}) for n in range(6)]
            for msg_id in ids:
                await asyncio.to_thread(simulator.wait_lines, f"ack SUCCESS for {msg_id}")
            await a.shutdown()
            await b.shutdown()
            await asyncio.gather(*tasks)
        return ids

    ids = run(main())
    every = handled["a"] + handled["b"]
    assert sorted(every) == sorted(ids)
    # Each id is recorded as handled: a third instance's claim finds it.
    check = alipay_msg.RedisWindow(url, prefix=prefix)
    for n, msg_id in enumerate(ids):
        query = WindowQuery(n, WindowKey(APP_ID, "msg", msg_id), "claim", token="x", lease=1.0)
        assert check.answer(query) == "handled"


def test_a_redelivery_to_another_instance_is_not_handled_again(simulator: Simulator) -> None:
    """A message another instance handled and recorded (its SUCCESS lost on the way,
    so the platform redelivers it here) is acked SUCCESS without the handler."""
    url = redis_url()
    assert url is not None
    prefix = f"pytest-{uuid.uuid4().hex}"
    first = alipay_msg.RedisWindow(url, prefix=prefix)
    msg_id = simulator.push({"k": "v"})
    # "Another instance" handled it and recorded it; its SUCCESS never reached the
    # platform, which redelivers it here.
    key = WindowKey(APP_ID, "msg", msg_id)
    assert first.answer(WindowQuery(1, key, "claim", token="a", lease=30.0)) == "claimed"
    assert first.answer(WindowQuery(2, key, "record", window=60.0)) == "recorded"
    events: List[Event] = []
    handled: List[str] = []

    async def main() -> None:
        async def handle(msg: Message) -> None:
            handled.append(msg.msg_id)

        config = windowed(simulator, window=600.0)
        window = alipay_msg.RedisWindow(url, prefix=prefix)
        async with running(config, handle, window=window, on_event=events.append):
            await asyncio.to_thread(simulator.wait_lines, f"ack SUCCESS for {msg_id}")

    run(main())
    assert handled == []
    assert [d.msg_id for d in of(events, Duplicate)] == [msg_id]

