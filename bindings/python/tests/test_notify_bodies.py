"""The raw notification bodies of testdata/notify/ that are not vectors (*.form, *.json):
GB2312 and GB18030 bodies verify and decode in their own charset, and the two mistakes a
web framework invites — a body already URL-decoded, the parameters as JSON — are
refused (PROTOCOL §10)."""

from decimal import Decimal

import pytest

import alipay_msg
from conftest import TESTDATA


@pytest.mark.parametrize(
    "file, subject, charset",
    [
        ("trade_notify_gb2312_v1.form", "测试订单 Test Order", "gb2312"),
        ("trade_notify_gb18030_v1.form", "测试订单 😀", "GB18030"),
    ],
)
def test_gbk_family_bodies_verify_in_their_own_charset(
    file: str, subject: str, charset: str, platform_key: alipay_msg.PublicKey
) -> None:
    body = (TESTDATA / "notify" / file).read_bytes()
    n = alipay_msg.verify_notification(body, alipay_public_key=platform_key)
    assert isinstance(n, alipay_msg.TradeNotification)
    assert n.subject == subject
    assert n.params["charset"] == charset
    assert n.total_amount == Decimal("66.60")
    tampered = body.replace(b"66.60", b"66.61")
    with pytest.raises(alipay_msg.SignatureError):
        alipay_msg.verify_notification(tampered, alipay_public_key=platform_key)


def test_an_already_decoded_body_does_not_verify(platform_key: alipay_msg.PublicKey) -> None:
    body = (TESTDATA / "notify" / "trade_notify_rsa2_v1_url_decoded.form").read_bytes()
    with pytest.raises(alipay_msg.SignatureError):
        alipay_msg.verify_notification(body, alipay_public_key=platform_key)


def test_json_is_not_a_notification_body(platform_key: alipay_msg.PublicKey) -> None:
    body = (TESTDATA / "notify" / "gateway_message_rsa2_v1_as_json.json").read_bytes()
    with pytest.raises(alipay_msg.MalformedError):
        alipay_msg.verify_notification(body, alipay_public_key=platform_key)
