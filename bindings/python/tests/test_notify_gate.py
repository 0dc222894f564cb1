"""alipay_msg.NotifyGate, the core's notification endpoint decision (PROTOCOL §10), on the
bodies of testdata/notify/: Handle → complete → Duplicate, the in-progress refusal,
release on failure, refusals (forged, foreign app, content type, freshness, busy), the V2
rule, claims and their timeout, and several threads checking the same body."""

import inspect
import threading
import time
from typing import List

import pytest

import alipay_msg
from alipay_msg import _native
from conftest import TESTDATA

APP = "2021000000000001"
FORM = "application/x-www-form-urlencoded; charset=utf-8"
# 2026-11-20 10:21:35 in Beijing time (UTC+8), the notify_time of the trade bodies.
NOTIFY_TIME_MS = 1_795_141_295_000


def body(name: str) -> bytes:
    return (TESTDATA / "notify" / name).read_bytes()


TRADE = body("trade_notify_rsa2_v1.txt")
TRADE_ID = "2026112000222102134003881455041399"
# Another notification for the same app (RSA, SHA1withRSA): another notify_id.
OTHER_TRADE = body("trade_notify_rsa_sha1_v1.txt")


@pytest.fixture
def gate(platform_key: alipay_msg.PublicKey) -> alipay_msg.NotifyGate:
    return alipay_msg.NotifyGate(alipay_public_key=platform_key, app_id=APP)


def handle(verdict: alipay_msg.Verdict) -> alipay_msg.HandleVerdict:
    assert isinstance(verdict, alipay_msg.HandleVerdict), verdict
    return verdict


def refused(verdict: alipay_msg.Verdict) -> alipay_msg.RefusedVerdict:
    assert isinstance(verdict, alipay_msg.RefusedVerdict), verdict
    return verdict


def test_handle_complete_then_duplicate(gate: alipay_msg.NotifyGate) -> None:
    verdict = handle(gate.check(TRADE, content_type=FORM))
    assert verdict.immediate_response is None
    assert verdict.notify_id == TRADE_ID
    n = verdict.notification
    assert isinstance(n, alipay_msg.TradeNotification)
    assert (n.notify_id, n.app_id, n.out_trade_no) == (TRADE_ID, APP, "20261120102126001")
    assert (gate.in_progress_len, gate.handled_len) == (1, 0)

    assert gate.complete(verdict, True) == "success"
    assert verdict.claim.completed
    assert (gate.in_progress_len, gate.handled_len) == (0, 1)

    again = gate.check(TRADE, content_type=FORM)
    assert again == alipay_msg.DuplicateVerdict(TRADE_ID)
    assert again.immediate_response == "success"
    # Another notify_id is handled.
    other = handle(gate.check(OTHER_TRADE))
    assert other.notify_id != TRADE_ID
    assert gate.complete(other, True) == "success"


def test_in_progress_is_refused(gate: alipay_msg.NotifyGate) -> None:
    first = handle(gate.check(TRADE))
    second = refused(gate.check(TRADE))
    assert second.kind == "in_progress"
    assert second.immediate_response == "fail"
    assert TRADE_ID in second.message and "being handled" in second.message
    assert not second.is_signature_failure
    assert gate.complete(first, True) == "success"
    assert isinstance(gate.check(TRADE), alipay_msg.DuplicateVerdict)


def test_handler_failure_releases_the_notify_id(gate: alipay_msg.NotifyGate) -> None:
    verdict = handle(gate.check(TRADE))
    assert gate.complete(verdict, False) == "fail"
    assert (gate.in_progress_len, gate.handled_len) == (0, 0)
    # The platform's retry is handled again, and only its success is remembered.
    retry = handle(gate.check(TRADE))
    assert gate.complete(retry, True) == "success"
    assert isinstance(gate.check(TRADE), alipay_msg.DuplicateVerdict)


def test_forged_is_refused_even_after_the_genuine_was_handled(
    gate: alipay_msg.NotifyGate,
) -> None:
    forged = body("trade_notify_tampered_amount.txt")
    verdict = refused(gate.check(forged))
    assert verdict.kind == "bad_signature" and verdict.is_signature_failure
    assert verdict.immediate_response == "fail"
    assert "signature" in verdict.message
    # Same notify_id as TRADE: once TRADE is handled, the forgery is still refused, never
    # answered success as a duplicate (the signature is checked first).
    assert gate.complete(handle(gate.check(TRADE)), True) == "success"
    assert refused(gate.check(forged)).kind == "bad_signature"
    assert gate.handled_len == 1


def test_wrong_app_id_is_refused(platform_key: alipay_msg.PublicKey) -> None:
    gate = alipay_msg.NotifyGate(alipay_public_key=platform_key, app_id="2021999999999999")
    verdict = refused(gate.check(TRADE))
    assert verdict.kind == "foreign_app_id"
    assert APP in verdict.message
    assert gate.in_progress_len == 0


def test_v2_rule_for_gateway_messages(platform_key: alipay_msg.PublicKey) -> None:
    message = body("gateway_message_rsa2_v2.txt")
    gate = alipay_msg.NotifyGate(
        alipay_public_key=platform_key, app_id="2013121700999429", rule="v2"
    )
    assert gate.rule == "v2"
    verdict = handle(gate.check(message))
    n = verdict.notification
    assert isinstance(n, alipay_msg.GatewayMessage)
    assert n.msg_method == "alipay.open.mini.merchant.confirmed"
    assert n.biz_content["status"] == "PROCESS"
    assert gate.complete(verdict, True) == "success"
    # Under the V1 rule (the default) the same body does not verify.
    v1 = alipay_msg.NotifyGate(alipay_public_key=platform_key, app_id="2013121700999429")
    assert v1.rule == "v1"
    assert refused(v1.check(message)).kind == "bad_signature"


def test_several_threads_checking_the_same_body_get_one_handle(
    gate: alipay_msg.NotifyGate,
) -> None:
    threads = 8
    start = threading.Barrier(threads)
    verdicts: List[alipay_msg.Verdict] = []
    lock = threading.Lock()

    def check() -> None:
        start.wait()
        verdict = gate.check(TRADE)
        with lock:
            verdicts.append(verdict)

    workers = [threading.Thread(target=check) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    handles = [v for v in verdicts if isinstance(v, alipay_msg.HandleVerdict)]
    others = [v for v in verdicts if not isinstance(v, alipay_msg.HandleVerdict)]
    assert len(verdicts) == threads
    assert len(handles) == 1
    assert {refused(v).kind for v in others} == {"in_progress"}
    assert gate.complete(handles[0], True) == "success"

    # Once handled, every thread gets the duplicate.
    def check_again() -> None:
        verdict = gate.check(TRADE)
        with lock:
            verdicts.append(verdict)

    verdicts.clear()
    workers = [threading.Thread(target=check_again) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert verdicts == [alipay_msg.DuplicateVerdict(TRADE_ID)] * threads


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/json"])
def test_content_type_other_than_the_form_is_refused(
    gate: alipay_msg.NotifyGate, content_type: "str | None"
) -> None:
    assert refused(gate.check(TRADE, content_type=content_type)).kind == "content_type"


def test_content_type_in_any_case_with_parameters(gate: alipay_msg.NotifyGate) -> None:
    verdict = gate.check(TRADE, content_type="Application/X-WWW-Form-URLEncoded; charset=GBK")
    assert isinstance(verdict, alipay_msg.HandleVerdict)
    assert alipay_msg.FORM_CONTENT_TYPE == "application/x-www-form-urlencoded"


def test_malformed_and_too_large(gate: alipay_msg.NotifyGate) -> None:
    assert refused(gate.check(b"a=%zz")).kind == "malformed"
    assert refused(gate.check(b"a" * (64 * 1024 + 1))).kind == "too_large"
    json_body = body("gateway_message_rsa2_v1_as_json.json")
    assert refused(gate.check(json_body)).kind == "malformed"
    assert (gate.in_progress_len, gate.handled_len) == (0, 0)


def test_freshness_window(platform_key: alipay_msg.PublicKey) -> None:
    gate = alipay_msg.NotifyGate(alipay_public_key=platform_key, app_id=APP, freshness=600)
    late = refused(gate.check(TRADE, unix_ms=NOTIFY_TIME_MS + 600_001))
    assert late.kind == "stale" and "notify_time" in late.message
    early = refused(gate.check(TRADE, unix_ms=NOTIFY_TIME_MS - 600_001))
    assert early.kind == "stale"
    handle(gate.check(TRADE, unix_ms=NOTIFY_TIME_MS + 600_000))


def test_duplicate_window_age(platform_key: alipay_msg.PublicKey) -> None:
    gate = alipay_msg.NotifyGate(
        alipay_public_key=platform_key, app_id=APP, duplicate_max_age=60.0
    )
    t0 = time.monotonic()
    assert gate.complete(handle(gate.check(TRADE, now=t0)), True, now=t0) == "success"
    assert isinstance(gate.check(TRADE, now=t0 + 59), alipay_msg.DuplicateVerdict)
    # Forgotten after duplicate_max_age: handled again.
    handle(gate.check(TRADE, now=t0 + 61))


def test_lost_claim_times_out_and_in_progress_is_bounded(
    platform_key: alipay_msg.PublicKey,
) -> None:
    gate = alipay_msg.NotifyGate(
        alipay_public_key=platform_key, app_id=APP, max_in_progress=1, claim_timeout=5.0
    )
    t0 = time.monotonic()
    lost = handle(gate.check(TRADE, now=t0))
    busy = refused(gate.check(OTHER_TRADE, now=t0))
    assert busy.kind == "busy" and "1 notifications" in busy.message
    assert refused(gate.check(TRADE, now=t0 + 4.9)).kind == "in_progress"
    fresh = handle(gate.check(TRADE, now=t0 + 5))
    # The lost claim's late completion leaves the new claim in place.
    assert gate.complete(lost, False, now=t0 + 6) == "fail"
    assert gate.in_progress_len == 1
    assert refused(gate.check(TRADE, now=t0 + 6)).kind == "in_progress"
    assert gate.complete(fresh, True, now=t0 + 6) == "success"
    assert gate.in_progress_len == 0


def test_claims_are_given_back_once_to_their_own_gate(
    gate: alipay_msg.NotifyGate, platform_key: alipay_msg.PublicKey
) -> None:
    verdict = handle(gate.check(TRADE))
    other_gate = alipay_msg.NotifyGate(alipay_public_key=platform_key, app_id=APP)
    with pytest.raises(ValueError, match="another NotifyGate"):
        other_gate.complete(verdict, True)
    assert not verdict.claim.completed
    assert gate.complete(verdict, True) == "success"
    with pytest.raises(RuntimeError, match="completed already"):
        gate.complete(verdict, True)
    with pytest.raises(TypeError):
        gate.complete(alipay_msg.DuplicateVerdict(TRADE_ID), True)  # type: ignore[arg-type]


def test_certificate_mode_and_body_types(platform_cert_pem: str) -> None:
    gate = alipay_msg.NotifyGate(alipay_cert=platform_cert_pem, app_id=APP)
    verdict = handle(gate.check(bytearray(TRADE)))
    assert gate.complete(verdict, True) == "success"
    assert isinstance(gate.check(memoryview(TRADE)), alipay_msg.DuplicateVerdict)
    with pytest.raises(TypeError, match="bytes"):
        gate.check(TRADE.decode())  # type: ignore[arg-type]


def test_settings_are_checked(platform_key: alipay_msg.PublicKey) -> None:
    with pytest.raises(TypeError, match="exactly one"):
        alipay_msg.NotifyGate(app_id=APP)
    with pytest.raises(TypeError, match="exactly one"):
        alipay_msg.NotifyGate(alipay_public_key=platform_key, alipay_cert="PEM", app_id=APP)
    with pytest.raises(ValueError, match="rule"):
        alipay_msg.NotifyGate(alipay_public_key=platform_key, app_id=APP, rule="v3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="app_id"):
        alipay_msg.NotifyGate(alipay_public_key=platform_key, app_id="")
    for name, value in [
        ("duplicate_capacity", -1),
        ("duplicate_max_age", 0.0),
        ("duplicate_max_age", float("nan")),
        ("freshness", -1.0),
        ("freshness", 366 * 86400.0),
        ("max_in_progress", 0),
        ("claim_timeout", float("inf")),
    ]:
        with pytest.raises(ValueError, match=name):
            alipay_msg.NotifyGate(
                alipay_public_key=platform_key, app_id=APP, **{name: value}  # type: ignore[arg-type]
            )
    with pytest.raises(alipay_msg.InvalidKeyError):
        alipay_msg.NotifyGate(alipay_public_key="not a key", app_id=APP)


def test_defaults_are_the_cores() -> None:
    parameters = inspect.signature(alipay_msg.NotifyGate.__init__).parameters
    defaults = {
        name: parameters[name].default
        for name in ("duplicate_capacity", "duplicate_max_age", "freshness",
                     "max_in_progress", "claim_timeout")
    }
    assert defaults == _native._gate_defaults()
    assert parameters["rule"].default == "v1"
