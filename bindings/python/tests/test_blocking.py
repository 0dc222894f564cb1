"""alipay_msg.Client, the blocking client for scripts, against `alipay-msg simulate`."""

import threading
import time
from typing import List

import pytest

import alipay_msg
from alipay_msg import Client, Message, ProduceCode
from alipay_msg.session import Event, Rejected
from platform_simulator import PRODUCE_API, Simulator, client_config, wait_for


def test_messages_send_and_close(simulator: Simulator) -> None:
    first = simulator.push({"n": 1})
    with Client(client_config(simulator)) as client:
        assert client.connected
        second = simulator.push({"n": 2})
        got: List[Message] = []
        for msg in client.messages():
            got.append(msg)
            msg.ack()
            if len(got) == 2:
                break
        ack = client.send(PRODUCE_API, {"shop_id": "1001"})
        assert ack.is_success and ack.result == ProduceCode.ACCEPTED
        with pytest.raises(RuntimeError, match="already answered"):
            got[0].fail()
    assert [(m.msg_id, m.biz_content["n"], m.answered) for m in got] == [
        (first, 1, True),
        (second, 2, True),
    ]
    assert simulator.status()["acked"] == 2
    client.shutdown()  # again: nothing to do
    with pytest.raises(RuntimeError):
        client.send(PRODUCE_API, {"k": 1})


def test_run_fails_a_raising_handler_and_the_message_comes_again(simulator: Simulator) -> None:
    calls: List[str] = []
    lock = threading.Lock()

    def handler(msg: Message) -> None:
        with lock:
            calls.append(msg.msg_id)
            if len(calls) == 1:
                raise RuntimeError("not now")

    client = Client(client_config(simulator))
    client.connect()
    runner = threading.Thread(target=client.run, args=(handler,), kwargs={"workers": 2})
    runner.start()
    msg_id = simulator.push({"k": "v"})
    simulator.wait_status("the redelivery acked", lambda s: s["acked"] == 1)
    client.shutdown()
    runner.join(10)
    assert not runner.is_alive()
    assert calls == [msg_id, msg_id]
    simulator.wait_lines(f"ack FAIL for {msg_id}")
    simulator.wait_lines(f"ack SUCCESS for {msg_id}")


def test_shutdown_drains_running_handlers(simulator: Simulator) -> None:
    started: List[str] = []
    finished: List[str] = []

    def handler(msg: Message) -> None:
        started.append(msg.msg_id)
        time.sleep(0.3)
        finished.append(msg.msg_id)

    client = Client(client_config(simulator))
    client.connect()
    runner = threading.Thread(target=client.run, args=(handler,), kwargs={"workers": 4})
    runner.start()
    for n in range(3):
        simulator.push({"n": n})
    wait_for("three handlers", lambda: len(started) == 3)
    client.shutdown()
    assert sorted(finished) == sorted(started)
    assert simulator.status()["acked"] == 3
    runner.join(10)
    assert not runner.is_alive()


def test_forgeries_are_refused(simulator: Simulator) -> None:
    events: List[Event] = []
    with Client(client_config(simulator), on_event=events.append) as client:
        forged = simulator.push({"amount": "999"}, forged=True)
        genuine = simulator.push({"amount": "1"})
        for msg in client.messages():
            assert msg.msg_id == genuine
            msg.ack()
            break
        simulator.wait_status("the forgery discarded", lambda s: s["forged_discarded"] == 1)
    assert [(e.msg_id, e.kind) for e in events if isinstance(e, Rejected)] == [(forged, "bad_signature")]


def test_reconnects_after_the_simulator_restarts(simulator: Simulator) -> None:
    with Client(client_config(simulator)) as client:
        # The simulator numbers messages from the second it started (see test_aio).
        time.sleep(1.01 - time.time() % 1)
        simulator.restart()
        msg_id = simulator.push({"k": "v"})
        for msg in client.messages():
            assert msg.msg_id == msg_id
            msg.ack()
            break
        assert client.connected


def test_connect_errors(simulator: Simulator) -> None:
    client = Client(client_config(simulator, app_id="x"))
    with pytest.raises(alipay_msg.ConfigError):
        client.connect()
    with pytest.raises(RuntimeError, match="already called"):
        client.connect()
