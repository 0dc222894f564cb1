"""alipay_msg.aio.Client against `alipay-msg simulate`: the scenarios of the Rust clients'
conformance suite that a Python application relies on."""

import asyncio
import dataclasses
import gc
import socket
import time
from typing import Any, Awaitable, Callable, Dict, List, TypeVar

import pytest

import alipay_msg
from alipay_msg import ProduceCode
from alipay_msg.aio import Client, Message
from alipay_msg.session import (
    Connected,
    Disconnected,
    Duplicate,
    Event,
    HandlerFailed,
    Rejected,
    ShutdownComplete,
)
from platform_simulator import API, KEYS, LIMIT, PRODUCE_API, Simulator, client_config

T = TypeVar("T")


def run(coroutine: Awaitable[T]) -> T:
    """Runs a test's coroutine on a fresh event loop, bounded by LIMIT seconds."""

    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, LIMIT)

    return asyncio.run(bounded())


async def until(what: str, condition: Callable[[], Any]) -> Any:
    """Waits (on the event loop) until `condition()` is true."""
    deadline = asyncio.get_running_loop().time() + LIMIT
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return condition()


async def status_until(sim: Simulator, what: str, condition: Callable[[Dict[str, Any]], bool]) -> Dict[str, Any]:
    """Waits until the simulator's status satisfies `condition` (polled off the loop)."""
    found: Dict[str, Any] = await asyncio.to_thread(sim.wait_status, what, condition)
    return found


def of(events: List[Event], kind: type) -> List[Any]:
    return [e for e in events if isinstance(e, kind)]


def test_messages_are_verified_handled_and_acked(simulator: Simulator) -> None:
    early = simulator.push({"mini_app_id": "2014072300007148", "n": 1})

    async def scenario() -> List[Message]:
        got: List[Message] = []
        async with Client(client_config(simulator)) as client:
            assert client.connected
            late = simulator.push({"mini_app_id": "2014072300007148", "n": 2, "big": 2**70})
            async for msg in client.messages():
                got.append(msg)
                await msg.ack()
                if len(got) == 2:
                    break
            assert [m.msg_id for m in got] == [early, late]
            await status_until(simulator, "both acked", lambda s: s["acked"] == 2)
        return got

    first, second = run(scenario())
    assert first.msg_api == API and first.app_id == "2021000000000001"
    assert first.biz_content == {"mini_app_id": "2014072300007148", "n": 1}
    assert second.biz_content["big"] == 2**70  # integers stay exact
    assert second.biz_content_text.startswith("{") and '"big"' in second.biz_content_text
    assert isinstance(first.timestamp_ms, int) and first.answered
    for msg_id in (early, second.msg_id):
        simulator.wait_lines(f"ack SUCCESS for {msg_id}")
    with pytest.raises(RuntimeError, match="already answered"):
        run(first.ack())


def test_run_acks_success_only_after_the_handler_returned(simulator: Simulator) -> None:
    async def scenario() -> None:
        release = asyncio.Event()
        started: List[str] = []

        async def handler(msg: Message) -> None:
            started.append(msg.msg_id)
            await release.wait()

        async with Client(client_config(simulator)) as client:
            runner = asyncio.ensure_future(client.run(handler))
            msg_id = simulator.push({"k": "v"})
            await until("the handler to start", lambda: started == [msg_id])
            status = await asyncio.to_thread(simulator.status)
            assert status["in_flight"] == 1 and status["acked"] == 0
            assert not simulator.lines(f"ack SUCCESS for {msg_id}")
            release.set()
            await status_until(simulator, "the ack", lambda s: s["acked"] == 1)
            await client.shutdown()
            await runner

    run(scenario())


def test_a_failing_handler_is_answered_fail_and_redelivered(simulator: Simulator) -> None:
    events: List[Event] = []

    async def scenario() -> List[str]:
        calls: List[str] = []

        async def handler(msg: Message) -> None:
            calls.append(msg.msg_id)
            if len(calls) == 1:
                raise ValueError("the database is down")

        async with Client(client_config(simulator), on_event=events.append) as client:
            runner = asyncio.ensure_future(client.run(handler))
            simulator.push({"k": "v"})
            # The platform redelivers a FAILed message after 1 s.
            await status_until(simulator, "the redelivery acked", lambda s: s["acked"] == 1)
            await client.shutdown()
            await runner
        return calls

    calls = run(scenario())
    assert len(calls) == 2 and calls[0] == calls[1]
    simulator.wait_lines(f"ack FAIL for {calls[0]}")
    simulator.wait_lines(f"ack SUCCESS for {calls[0]}")
    failed = of(events, HandlerFailed)
    assert [(e.msg_id, e.error) for e in failed] == [(calls[0], "ValueError: the database is down")]


def test_fail_from_messages_is_redelivered(simulator: Simulator) -> None:
    async def scenario() -> List[str]:
        seen: List[str] = []
        async with Client(client_config(simulator)) as client:
            simulator.push({"k": "v"})
            async for msg in client.messages():
                seen.append(msg.msg_id)
                if len(seen) == 1:
                    await msg.fail("not yet")
                else:
                    await msg.ack()
                    break
        return seen

    seen = run(scenario())
    assert seen[0] == seen[1]
    simulator.wait_lines(f"ack FAIL for {seen[0]}")


def test_forged_messages_never_reach_the_handler(simulator: Simulator) -> None:
    events: List[Event] = []

    async def scenario() -> List[str]:
        handled: List[str] = []

        async def handler(msg: Message) -> None:
            handled.append(msg.msg_id)

        async with Client(client_config(simulator), on_event=events.append) as client:
            runner = asyncio.ensure_future(client.run(handler))
            forged = simulator.push({"amount": "1000000"}, forged=True)
            # A genuine message whose first CONSUME has a corrupted x-sign: refused, then
            # handled when redelivered intact.
            simulator.faults(corrupt_consumes=1)
            genuine = simulator.push({"amount": "1"})
            await status_until(
                simulator,
                "the forgery discarded and the genuine message acked",
                lambda s: s["forged_discarded"] == 1 and s["acked"] == 1,
            )
            await client.shutdown()
            await runner
            assert handled == [genuine]
            return [forged, genuine]

    forged, genuine = run(scenario())
    status = simulator.status()
    assert status["forged_accepted"] == 0
    simulator.wait_lines(f"forged {forged} refused by the client (FAIL)")
    rejected = of(events, Rejected)
    assert {(e.msg_id, e.kind) for e in rejected} == {
        (forged, "bad_signature"),
        (genuine, "bad_signature"),
    }
    assert all("signature" in e.reason for e in rejected)


def test_duplicates_are_suppressed(simulator: Simulator) -> None:
    events: List[Event] = []

    async def scenario() -> List[str]:
        handled: List[str] = []

        async def handler(msg: Message) -> None:
            handled.append(msg.msg_id)
            await asyncio.sleep(0.05)

        async with Client(client_config(simulator), on_event=events.append) as client:
            runner = asyncio.ensure_future(client.run(handler))
            simulator.faults(duplicate_consumes=1)
            msg_id = simulator.push({"k": "v"})
            await status_until(simulator, "the ack", lambda s: s["acked"] == 1)
            await until("the duplicate", lambda: of(events, Duplicate))
            await client.shutdown()
            await runner
            assert handled == [msg_id]
            return handled

    (msg_id,) = run(scenario())
    assert [e.msg_id for e in of(events, Duplicate)] == [msg_id]
    simulator.wait_lines(f"deliver {msg_id}")


def test_produce_codes(simulator: Simulator) -> None:
    async def scenario() -> None:
        config = client_config(simulator, send_timeout=0.5, max_pending_sends=1)
        async with Client(config) as client:
            ack = await client.send(PRODUCE_API, {"shop_id": "1001"})
            assert ack.is_success and ack.result == ProduceCode.ACCEPTED
            assert ack.status == "SUCCESS" and ack.code == "10000" and ack.msg_id
            assert ack.result.code == "10000" and ack.result.advice == "accepted"

            ack = await client.send("nodot", {"shop_id": "1001"})
            assert (ack.status, ack.code, ack.error) == ("FAIL", "30000", "msg.invalid-msg-api")
            assert ack.result == ProduceCode.INVALID_REQUEST and not ack.is_retryable

            ack = await client.send(PRODUCE_API, "{}")
            assert (ack.code, ack.error) == ("30000", "msg.empty-content")

            simulator.produce_failure(PRODUCE_API, "service_unavailable")
            ack = await client.send(PRODUCE_API, {"shop_id": "1001"})
            assert ack.result == ProduceCode.SERVICE_UNAVAILABLE and ack.is_retryable
            assert (ack.code, ack.error) == ("20000", "msg.unknow-error")

            simulator.produce_failure(PRODUCE_API, "consumer_not_exist")
            ack = await client.send(PRODUCE_API, {"shop_id": "1001"})
            assert ack.result == ProduceCode.ABANDONED and not ack.is_success
            assert (ack.code, ack.error) == ("40000", "msg.consumer-not-exist")
            simulator.produce_failure(PRODUCE_API, None)

            with pytest.raises(alipay_msg.InvalidMessageError, match="JSON object"):
                await client.send(PRODUCE_API, "[1]")
            with pytest.raises(alipay_msg.InvalidMessageError, match="msg_api"):
                await client.send("", {"k": 1})
            with pytest.raises(TypeError):
                await client.send(PRODUCE_API, 5)  # type: ignore[arg-type]

            # No PRODUCE_ACK: a timeout after send_timeout; one pending at most.
            simulator.faults(withhold_produce_acks=2)
            pending = asyncio.ensure_future(client.send(PRODUCE_API, {"n": 1}))
            await asyncio.sleep(0)
            with pytest.raises(alipay_msg.TooManyPendingError):
                await client.send(PRODUCE_API, {"n": 2})
            with pytest.raises(alipay_msg.SendTimeoutError) as timed_out:
                await pending
            assert isinstance(timed_out.value, alipay_msg.SendError)

    run(scenario())
    simulator.wait_lines("produce nodot")


def test_gbk_app(simulator: Simulator) -> None:
    text = "杭州西湖店：已确认"

    async def scenario() -> Message:
        async with Client(client_config(simulator, charset="GBK")) as client:
            simulator.push({"shop_name": text})
            async for msg in client.messages():
                await msg.ack()
                ack = await client.send(PRODUCE_API, {"shop_name": text})
                assert ack.is_success, ack
                return msg
        raise AssertionError("no message")

    msg = run(scenario())
    assert msg.biz_content == {"shop_name": text}
    # The simulator decoded the PRODUCE from GBK and verified its signature over the
    # GBK bytes; it prints the content it read.
    simulator.wait_lines(text)


def test_rsa_sign_type_app(rsa_simulator: Simulator) -> None:
    async def scenario() -> None:
        async with Client(client_config(rsa_simulator, sign_type="RSA")) as client:
            rsa_simulator.push({"k": "v"})
            async for msg in client.messages():
                await msg.ack()
                break
            assert (await client.send(PRODUCE_API, {"k": 1})).is_success

    run(scenario())
    assert rsa_simulator.status()["acked"] == 1


def test_reconnects_after_the_simulator_restarts(simulator: Simulator) -> None:
    events: List[Event] = []

    async def scenario() -> List[str]:
        handled: List[str] = []

        async def handler(msg: Message) -> None:
            handled.append(msg.msg_id)

        async with Client(client_config(simulator), on_event=events.append) as client:
            runner = asyncio.ensure_future(client.run(handler))
            simulator.push({"n": 1})
            await until("the first message", lambda: len(handled) == 1)
            # The simulator numbers messages from the second it started: a new one
            # started within the same second would reuse the first id (and the client
            # would rightly answer it as a duplicate).
            await asyncio.sleep(1.01 - time.time() % 1)
            # The platform crashes and comes back on the same port, knowing nothing.
            await asyncio.to_thread(simulator.restart)
            await until("a disconnect", lambda: of(events, Disconnected))
            await until("the second connection", lambda: len(of(events, Connected)) == 2)
            assert client.connected
            simulator.push({"n": 2})
            await until("the message from the new platform", lambda: len(handled) == 2)
            await status_until(simulator, "its ack", lambda s: s["acked"] == 1)
            await client.shutdown()
            await runner
        return handled

    run(scenario())
    assert of(events, Disconnected)[0].retry_in is not None


def test_shutdown_drains_in_flight_messages(simulator: Simulator) -> None:
    events: List[Event] = []

    async def scenario() -> None:
        started: List[str] = []
        finished: List[str] = []

        async def handler(msg: Message) -> None:
            started.append(msg.msg_id)
            await asyncio.sleep(0.3)
            finished.append(msg.msg_id)

        client = Client(client_config(simulator), on_event=events.append)
        await client.connect()
        runner = asyncio.ensure_future(client.run(handler))
        for n in range(3):
            simulator.push({"n": n})
        await until("three handlers running", lambda: len(started) == 3)
        assert client.in_flight == 3
        await client.shutdown()
        # Every handler finished and its SUCCESS went out before the connection closed.
        assert sorted(finished) == sorted(started)
        assert simulator.status()["acked"] == 3
        assert of(events, ShutdownComplete)
        await runner
        with pytest.raises(alipay_msg.ClientClosedError):
            await client.send(PRODUCE_API, {"k": 1})
        await client.shutdown()  # again: nothing to do

    run(scenario())


def test_backpressure_bounds_messages_in_flight(simulator: Simulator) -> None:
    async def scenario() -> None:
        async with Client(client_config(simulator, max_in_flight=2)) as client:
            for n in range(5):
                simulator.push({"n": n})
            stream = client.messages().__aiter__()
            first = await stream.__anext__()
            second = await stream.__anext__()
            assert client.in_flight == 2
            # The client stops reading: nothing more is handed out until one is answered.
            pending = asyncio.ensure_future(stream.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=0.3)
            assert not done
            await first.ack()
            third = await pending
            assert client.in_flight == 2
            for msg in (second, third):
                await msg.ack()
            rest = [await stream.__anext__() for _ in range(2)]
            for msg in rest:
                await msg.ack()
            assert [m.biz_content["n"] for m in [first, second, third, *rest]] == [0, 1, 2, 3, 4]
            await status_until(simulator, "five acks", lambda s: s["acked"] == 5)

    run(scenario())


def test_a_client_that_only_sends_fails_pushes_for_redelivery(simulator: Simulator) -> None:
    events: List[Event] = []

    async def scenario() -> str:
        config = client_config(simulator, consumer_grace=0.1)
        async with Client(config, on_event=events.append) as client:
            assert (await client.send(PRODUCE_API, {"k": 1})).is_success
            msg_id = simulator.push({"k": "v"})
            await until("the push answered FAIL", lambda: of(events, Rejected))
            # Consuming now: the platform's redelivery is handed out.
            async for msg in client.messages():
                assert msg.msg_id == msg_id
                await msg.ack()
                break
        return msg_id

    msg_id = run(scenario())
    rejected = of(events, Rejected)
    assert [(e.msg_id, e.kind) for e in rejected] == [(msg_id, "no_consumer")]
    simulator.wait_lines(f"ack FAIL for {msg_id}")


def test_a_message_dropped_unanswered_is_failed(simulator: Simulator) -> None:
    async def scenario() -> str:
        async with Client(client_config(simulator)) as client:
            msg_id = simulator.push({"k": "v"})
            async for msg in client.messages():
                break
            del msg
            gc.collect()
            await until("the FAIL", lambda: simulator.lines(f"ack FAIL for {msg_id}"))
            async for again in client.messages():
                assert again.msg_id == msg_id
                await again.ack()
                break
        return msg_id

    run(scenario())


def test_refused_configuration(simulator: Simulator) -> None:
    # Signed with a key that is not the app's: the platform refuses register.do.
    wrong_key = (KEYS / "alipay_private_pkcs1.pem").read_text()
    config = dataclasses.replace(client_config(simulator), app_private_key=wrong_key)

    async def scenario() -> None:
        with pytest.raises(alipay_msg.RefusedError) as refused:
            await Client(config).connect()
        assert isinstance(refused.value, alipay_msg.ConnectError)

    run(scenario())


def test_connect_timeout_names_the_last_failure(simulator: Simulator) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config = client_config(simulator, endpoint=f"127.0.0.1:{closed_port}", first_connect_timeout=0.5)

    async def scenario() -> None:
        with pytest.raises(alipay_msg.ConnectTimeoutError, match="refused"):
            await Client(config).connect()

    run(scenario())


def test_misuse(simulator: Simulator) -> None:
    async def scenario() -> None:
        client = Client(client_config(simulator))
        with pytest.raises(RuntimeError, match="not connected"):
            await client.send(PRODUCE_API, {})
        async with client:
            with pytest.raises(RuntimeError, match="already called"):
                await client.connect()
            consuming = asyncio.ensure_future(client.run(_ack_all))
            await asyncio.sleep(0.05)
            with pytest.raises(RuntimeError, match="already being consumed"):
                await client.messages().__anext__()
            await client.shutdown()
            await consuming

    run(scenario())
    with pytest.raises(alipay_msg.ConfigError, match="app id"):
        run(Client(dataclasses.replace(client_config(simulator), app_id="not digits")).connect())


async def _ack_all(msg: Message) -> None:
    return None


def test_leaving_a_stream_detaches_at_once(simulator: Simulator) -> None:
    async def scenario() -> List[int]:
        seen: List[int] = []
        async with Client(client_config(simulator)) as client:
            for n in range(2):
                simulator.push({"n": n})
            async for msg in client.messages():
                seen.append(msg.biz_content["n"])
                await msg.ack()
                break
            # Another stream attaches right away; the second message, if it was handed
            # to the first stream, was answered FAIL and comes again.
            async for msg in client.messages():
                seen.append(msg.biz_content["n"])
                await msg.ack()
                break
            stream = client.messages()
            await stream.aclose()
            with pytest.raises(StopAsyncIteration):
                await stream.__anext__()
        return seen

    assert run(scenario()) == [0, 1]


def test_certificate_mode() -> None:
    certs = KEYS.parent / "certs"
    sim = Simulator(
        "--app-cert",
        str(certs / "app_cert.crt"),
        "--root-cert",
        str(certs / "root_bundle_simple.crt"),
        "--platform-cert",
        str(certs / "alipay_cert.crt"),
    )
    try:
        config = client_config(
            sim,
            app_private_key=(KEYS / "app_private_pkcs8.pem").read_text(),
            alipay_public_key=None,
            app_cert=(certs / "app_cert.crt").read_text(),
            alipay_cert=(certs / "alipay_cert.crt").read_text(),
            alipay_root_cert=(certs / "root_bundle_simple.crt").read_text(),
        )

        async def scenario() -> None:
            async with Client(config) as client:
                msg_id = sim.push({"k": "v"})
                async for msg in client.messages():
                    assert msg.msg_id == msg_id
                    await msg.ack()
                    break
                # The PRODUCE carries the SNs; the platform checks app_cert_sn.
                assert (await client.send(PRODUCE_API, {"k": 1})).is_success

        run(scenario())
        sim.wait_status("the ack", lambda s: s["acked"] == 1)
    finally:
        sim.stop()
