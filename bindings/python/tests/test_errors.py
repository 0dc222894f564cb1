"""One exception hierarchy."""

from typing import Literal, Union, get_origin

import pytest

import alipay_msg


@pytest.mark.parametrize(
    "cls",
    [alipay_msg.SignatureError, alipay_msg.MalformedError, alipay_msg.InvalidKeyError, alipay_msg.CertificateError],
)
def test_every_error_is_an_alipay_msg_error(cls: type) -> None:
    assert issubclass(cls, alipay_msg.AlipayMsgError)
    assert issubclass(alipay_msg.AlipayMsgError, Exception)
    assert cls.__module__ == "alipay_msg"
    assert cls.__doc__


def test_signature_and_malformed_are_distinct() -> None:
    assert not issubclass(alipay_msg.SignatureError, alipay_msg.MalformedError)
    assert not issubclass(alipay_msg.MalformedError, alipay_msg.SignatureError)


def test_public_api() -> None:
    for name in alipay_msg.__all__:
        obj = getattr(alipay_msg, name)
        if get_origin(obj) in (Union, Literal):
            # A type alias (Verdict, WindowAnswer): documented by the #: comment above it.
            continue
        assert obj.__doc__, name
