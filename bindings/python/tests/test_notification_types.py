"""The typed results: Decimal amounts, TradeStatus, biz_content as a dict; malformed
bodies; misuse of the API."""

import dataclasses
from decimal import Decimal
from typing import Any, Dict, Literal

import pytest
from conftest import body_of, notify_vectors

import alipay_msg
from alipay_msg import _notification

CASES = {case["name"]: case for case in notify_vectors()}


def trade(platform_key: alipay_msg.PublicKey, name: str = "trade_notify_rsa2_v1") -> alipay_msg.TradeNotification:
    n = alipay_msg.verify_notification(body_of(CASES[name]), alipay_public_key=platform_key)
    assert isinstance(n, alipay_msg.TradeNotification)
    return n


def test_trade_fields(platform_key: alipay_msg.PublicKey) -> None:
    t = trade(platform_key)
    assert isinstance(t, alipay_msg.Notification)
    assert t.trade_status is alipay_msg.TradeStatus.TRADE_SUCCESS
    assert t.trade_status == "TRADE_SUCCESS" and str(t.trade_status) == "TRADE_SUCCESS"
    assert t.is_paid and t.trade_status.is_paid
    assert t.notify_type == "trade_status_sync"
    assert t.notify_time == "2026-11-20 10:21:35"
    assert t.trade_no == "2026112022001446881439488519"
    assert t.out_trade_no == "20261120102126001"
    assert t.subject == "测试订单 Test Order"
    assert t.buyer_id == "2088102177846880" and t.seller_id == "2088102177296610"
    assert t.gmt_create == "2026-11-20 10:21:33" and t.gmt_payment == "2026-11-20 10:21:34"
    assert t.gmt_refund is None and t.gmt_close is None and t.out_biz_no is None
    assert t.params["fund_bill_list"] == '[{"amount":"88.88","fundChannel":"ALIPAYACCOUNT"}]'
    assert t.params["sign_type"] == "RSA2" and "sign" in t.params


def test_amounts_are_exact_decimals(platform_key: alipay_msg.PublicKey) -> None:
    t = trade(platform_key)
    for amount in (t.total_amount, t.receipt_amount, t.buyer_pay_amount, t.invoice_amount):
        assert isinstance(amount, Decimal)
        assert amount == Decimal("88.88") and str(amount) == "88.88"
    assert t.point_amount == Decimal("0.00") and str(t.point_amount) == "0.00"
    assert t.refund_fee is None
    assert t.total_amount is not None and t.total_amount * 100 == 8888


def test_legacy_rsa_sign_type(platform_key: alipay_msg.PublicKey) -> None:
    assert trade(platform_key, "trade_notify_rsa_sha1_v1").sign_type == "RSA"


@pytest.mark.parametrize("name,rule", [("gateway_message_rsa2_v1", "v1"), ("gateway_message_rsa2_v2", "v2")])
def test_gateway_message(name: str, rule: Literal["v1", "v2"], platform_key: alipay_msg.PublicKey) -> None:
    m = alipay_msg.verify_notification(body_of(CASES[name]), alipay_public_key=platform_key, rule=rule)
    assert isinstance(m, alipay_msg.GatewayMessage)
    assert m.msg_method == "alipay.open.mini.merchant.confirmed"
    assert m.app_id == "2013121700999429"
    assert m.utc_timestamp == "1516797622752" and m.version == "1.1"
    assert m.notify_type is None
    assert m.biz_content == {
        "order_no": "2394834823942343",
        "out_order_no": "23948392483253534535",
        "min_app_id": "20218324729872",
        "status": "PROCESS",
        "pid": "2088002306330746",
    }


def test_results_are_frozen(platform_key: alipay_msg.PublicKey) -> None:
    t = trade(platform_key)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.trade_status = "TRADE_CLOSED"  # type: ignore[misc]
    assert "params" not in repr(t) and "88.88" in repr(t)


def raw_trade(**overrides: Any) -> Dict[str, Any]:
    """A native result as _native.verify returns it, for the conversion rules."""
    raw: Dict[str, Any] = {
        "kind": "trade",
        "params": [("notify_type", "trade_status_sync")],
        "charset": "UTF-8",
        "sign_type": "RSA2",
        "notify_id": "n",
        "notify_time": "t",
        "notify_type": "trade_status_sync",
        "app_id": "a",
        "trade_no": "tn",
        "out_trade_no": "otn",
        "trade_status": "TRADE_CLOSED",
    }
    raw.update({name: None for name in _notification._AMOUNT_FIELDS + _notification._TEXT_FIELDS})
    raw.update(overrides)
    return raw


def test_unknown_trade_status_is_kept_as_text() -> None:
    t = _notification._build(raw_trade(trade_status="TRADE_PENDING"))
    assert isinstance(t, alipay_msg.TradeNotification)
    assert t.trade_status == "TRADE_PENDING" and not isinstance(t.trade_status, alipay_msg.TradeStatus)
    assert not t.is_paid
    closed = _notification._build(raw_trade())
    assert isinstance(closed, alipay_msg.TradeNotification) and not closed.is_paid


@pytest.mark.parametrize("amount", ["NaN", "Infinity", "1e2", " 1.00", "1.", ".5", "１.00", "1,00", ""])
def test_amount_that_is_not_a_plain_decimal_is_malformed(amount: str) -> None:
    with pytest.raises(alipay_msg.MalformedError, match="refund_fee is not a decimal amount"):
        _notification._build(raw_trade(refund_fee=amount))


@pytest.mark.parametrize("amount", ["0", "0.01", "100000000.00", "-1.50"])
def test_plain_decimal_amounts(amount: str) -> None:
    t = _notification._build(raw_trade(total_amount=amount))
    assert isinstance(t, alipay_msg.TradeNotification)
    assert t.total_amount == Decimal(amount) and str(t.total_amount) == amount


def test_biz_content_must_be_an_object() -> None:
    raw: Dict[str, Any] = {
        "kind": "gateway_message",
        "params": [],
        "charset": "UTF-8",
        "sign_type": "RSA2",
        "notify_id": "n",
        "app_id": "a",
        "msg_method": "m",
        "utc_timestamp": None,
        "version": None,
    }
    with pytest.raises(alipay_msg.MalformedError, match="biz_content is a JSON list"):
        _notification._build(dict(raw, biz_content="[1]"))
    m = _notification._build(dict(raw, biz_content='{"n": 123456789012345678901234567890}'))
    assert isinstance(m, alipay_msg.GatewayMessage)
    assert m.biz_content["n"] == 123456789012345678901234567890


def test_other_notification() -> None:
    raw = {"kind": "other", "params": [("notify_type", "x_sync")], "charset": "GBK", "sign_type": "RSA2"}
    n = _notification._build(dict(raw, notify_id=None, app_id=None, notify_type="x_sync"))
    assert isinstance(n, alipay_msg.OtherNotification)
    assert n.notify_type == "x_sync" and n.notify_id is None and n.charset == "GBK"


@pytest.mark.parametrize(
    "change,what",
    [
        (lambda b: b + b"&total_amount=0.01", "occurs more than once"),
        (lambda b: b + b"&x=%G1", "percent escape"),
        (lambda b: b.replace(b"charset=utf-8", b"charset=latin1"), "charset"),
        (lambda b: b.replace(b"sign_type=RSA2", b"sign_type=SHA256"), "SHA256"),
        (lambda b: b.split(b"&sign=")[0], "sign"),
        (lambda b: b"x" * (64 * 1024 + 1), "exceeds the limit"),
    ],
)
def test_malformed_bodies(change: Any, what: str, platform_key: alipay_msg.PublicKey) -> None:
    from conftest import TESTDATA

    body = (TESTDATA / "notify" / "trade_notify_rsa2_v1.txt").read_bytes()
    with pytest.raises(alipay_msg.MalformedError, match=what) as e:
        alipay_msg.verify_notification(change(body), alipay_public_key=platform_key)
    assert not isinstance(e.value, alipay_msg.SignatureError)


def test_body_types(platform_key: alipay_msg.PublicKey) -> None:
    body = body_of(CASES["trade_notify_rsa2_v1"])
    with pytest.raises(TypeError, match="raw request body as bytes, not str"):
        alipay_msg.verify_notification(body.decode(), alipay_public_key=platform_key)  # type: ignore[arg-type]
    for view in (bytearray(body), memoryview(body)):
        n = alipay_msg.verify_notification(view, alipay_public_key=platform_key)  # type: ignore[arg-type]
        assert n.notify_id == "2026112000222102134003881455041399"


def test_key_arguments(platform_key: alipay_msg.PublicKey, platform_cert_pem: str) -> None:
    body = body_of(CASES["trade_notify_rsa2_v1"])
    with pytest.raises(TypeError, match="exactly one"):
        alipay_msg.verify_notification(body)
    with pytest.raises(TypeError, match="exactly one"):
        alipay_msg.verify_notification(body, alipay_public_key=platform_key, alipay_cert=platform_cert_pem)
    with pytest.raises(TypeError, match="alipay_public_key must be"):
        alipay_msg.verify_notification(body, alipay_public_key=b"key")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match='rule must be "v1" or "v2"'):
        alipay_msg.verify_notification(body, alipay_public_key=platform_key, rule="v3")  # type: ignore[arg-type]
    with pytest.raises(alipay_msg.InvalidKeyError, match="no key material"):
        alipay_msg.verify_notification(body, alipay_public_key="")
    with pytest.raises(alipay_msg.CertificateError, match="no CERTIFICATE block"):
        alipay_msg.verify_notification(body, alipay_cert="not a certificate")
    # A key for another signer: the signature does not verify.
    from conftest import read_text

    with pytest.raises(alipay_msg.SignatureError):
        alipay_msg.verify_notification(body, alipay_public_key=read_text("vectors/keys/app_public.pem"))


def test_verification_from_many_threads(platform_key: alipay_msg.PublicKey) -> None:
    from concurrent.futures import ThreadPoolExecutor

    body = body_of(CASES["trade_notify_rsa2_v1"])
    with ThreadPoolExecutor(8) as pool:
        ids = list(
            pool.map(
                lambda _: alipay_msg.verify_notification(body, alipay_public_key=platform_key).notify_id,
                range(64),
            )
        )
    assert ids == ["2026112000222102134003881455041399"] * 64
