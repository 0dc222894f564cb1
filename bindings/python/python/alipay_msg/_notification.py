"""HTTP notifications (PROTOCOL §10): verify_notification and its typed results."""

import functools
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Dict, List, Literal, Optional, Tuple, Union, cast

from . import _native
from ._native import MalformedError, PublicKey

__all__ = [
    "GatewayMessage",
    "Notification",
    "OtherNotification",
    "TradeNotification",
    "TradeStatus",
    "verify_notification",
]


class TradeStatus(str, Enum):
    """The ``trade_status`` of a payment notification (PROTOCOL §10).

    A ``str`` subclass: ``TradeStatus.TRADE_SUCCESS == "TRADE_SUCCESS"``.
    """

    #: The trade was created and waits for the buyer to pay.
    WAIT_BUYER_PAY = "WAIT_BUYER_PAY"
    #: Paid; a refund is still possible.
    TRADE_SUCCESS = "TRADE_SUCCESS"
    #: Paid and final: no refund is possible any more.
    TRADE_FINISHED = "TRADE_FINISHED"
    #: Closed unpaid (timed out), or fully refunded.
    TRADE_CLOSED = "TRADE_CLOSED"

    @property
    def is_paid(self) -> bool:
        """Whether the buyer has paid: TRADE_SUCCESS or TRADE_FINISHED."""
        return self in (TradeStatus.TRADE_SUCCESS, TradeStatus.TRADE_FINISHED)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Notification:
    """A verified notification; base class of the three kinds verify_notification returns.

    Verified means sent by the holder of the platform key and unaltered: not necessarily
    new (the platform re-sends until it gets ``success``) nor meant for this app. Check
    ``app_id``, handle a repeated ``notify_id`` idempotently, and answer ``success`` only
    after handling it.

    Attributes:
        notify_id: The ``notify_id`` (str), or None when absent or empty.
        app_id: The ``app_id`` (str) the notification is for, or None.
        notify_type: The ``notify_type`` (str, e.g. ``"trade_status_sync"``), or None.
        charset: The charset the body was decoded and verified in (str, canonical name,
            e.g. ``"UTF-8"``, ``"GBK"``): the body's ``charset`` parameter, UTF-8 when it
            has none.
        sign_type: The ``sign_type`` (str): ``"RSA2"`` (SHA256withRSA) or ``"RSA"``
            (SHA1withRSA).
        params: Every form parameter, decoded once (dict of str to str, body order),
            ``sign`` and ``sign_type`` included.
    """

    notify_id: Optional[str]
    app_id: Optional[str]
    notify_type: Optional[str]
    charset: str
    sign_type: str
    params: Dict[str, str] = field(repr=False)


@dataclass(frozen=True)
class TradeNotification(Notification):
    """A payment notification (``notify_type=trade_status_sync``, PROTOCOL §10).

    Amounts are ``decimal.Decimal`` in yuan (CNY), exactly as sent (e.g.
    ``Decimal("88.88")``), or None when absent or empty. Times are the platform's text,
    ``"yyyy-MM-dd HH:mm:ss"`` in Beijing time (UTC+8). Parameters without an attribute
    (``fund_bill_list``, ``passback_params``, ``buyer_logon_id`` …) are in ``params``.

    Attributes:
        notify_id: The notification's id (str); the platform re-sends with the same one.
        app_id: The app the trade belongs to (str).
        notify_type: ``"trade_status_sync"``.
        notify_time: When the notification was sent (str, ``yyyy-MM-dd HH:mm:ss``, UTC+8).
        trade_no: The platform's trade number (str).
        out_trade_no: The merchant's order number (str).
        trade_status: A TradeStatus for the four documented statuses; any other value the
            platform sends is kept as the plain str.
        total_amount: The order amount (Decimal, yuan).
        receipt_amount: What the merchant received (Decimal, yuan).
        buyer_pay_amount: What the buyer paid (Decimal, yuan).
        invoice_amount: The amount that can be invoiced (Decimal, yuan).
        point_amount: Paid with points (Decimal, yuan).
        refund_fee: The total refunded so far (Decimal, yuan).
        out_biz_no: The merchant's refund request number (str).
        buyer_id: The buyer's user id (str, 2088…).
        seller_id: The seller's user id (str, 2088…).
        subject: The order title (str).
        gmt_create: When the trade was created (str, ``yyyy-MM-dd HH:mm:ss``, UTC+8).
        gmt_payment: When it was paid (str, same format).
        gmt_refund: When it was refunded (str, same format, with milliseconds).
        gmt_close: When it was closed (str, same format).
    """

    notify_id: str
    app_id: str
    notify_type: str
    notify_time: str
    trade_no: str
    out_trade_no: str
    trade_status: Union[TradeStatus, str]
    total_amount: Optional[Decimal]
    receipt_amount: Optional[Decimal]
    buyer_pay_amount: Optional[Decimal]
    invoice_amount: Optional[Decimal]
    point_amount: Optional[Decimal]
    refund_fee: Optional[Decimal]
    out_biz_no: Optional[str]
    buyer_id: Optional[str]
    seller_id: Optional[str]
    subject: Optional[str]
    gmt_create: Optional[str]
    gmt_payment: Optional[str]
    gmt_refund: Optional[str]
    gmt_close: Optional[str]

    @property
    def is_paid(self) -> bool:
        """Whether the buyer has paid: trade_status is TRADE_SUCCESS or TRADE_FINISHED."""
        return isinstance(self.trade_status, TradeStatus) and self.trade_status.is_paid


@dataclass(frozen=True)
class GatewayMessage(Notification):
    """A message pushed to the app's gateway over HTTP (has a ``msg_method``, PROTOCOL §10).

    Attributes:
        notify_id: The message's id (str); the platform re-sends with the same one.
        app_id: The app the message is for (str).
        msg_method: The message type (str), e.g. ``"alipay.open.mini.merchant.confirmed"``.
        utc_timestamp: When it was sent (str, milliseconds since the Unix epoch), or None.
        version: The message version (str, e.g. ``"1.1"``), or None.
        biz_content: The message body, the verified ``biz_content`` JSON object read with
            ``json.loads`` (dict; integers of any size exact, fractions as float).
    """

    notify_id: str
    app_id: str
    msg_method: str
    utc_timestamp: Optional[str]
    version: Optional[str]
    biz_content: Dict[str, Any]


@dataclass(frozen=True)
class OtherNotification(Notification):
    """Any other verified notification: see ``notify_type`` and ``params``."""


_Key = Union[str, PublicKey]

# A plain decimal number: no exponent, NaN, infinity, whitespace or non-ASCII digits.
_AMOUNT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def verify_notification(
    body: bytes,
    *,
    alipay_public_key: Optional[_Key] = None,
    alipay_cert: Optional[_Key] = None,
    rule: Literal["v1", "v2"] = "v1",
) -> Notification:
    """Verify an HTTP notification from its raw request body (PROTOCOL §10).

    Pass the body exactly as received (``bytes``): Flask ``request.get_data()``, Django
    ``request.body``, Starlette/FastAPI ``await request.body()``. Not the framework's
    parsed form (``request.form``, ``request.POST``): the signature covers the values
    decoded once, from percent-escapes, in the notification's own ``charset`` (``utf-8``,
    ``gbk`` …). A framework decodes them as UTF-8 or Latin-1 whatever the charset, may
    already have turned ``+`` into a space, or decoded a value twice — and then a
    genuine notification fails, or a crafted one shows values that differ from the
    signed ones.

    Give the platform key one way:

    * ``alipay_public_key``: the platform public key, a PublicKey from load_public_key()
      or its text (PEM or bare base64);
    * ``alipay_cert``: certificate mode, the platform public-key certificate
      (alipayCertPublicKey_RSA2.crt) as PEM text, or a PublicKey from
      load_cert_public_key().

    Key text is parsed once and remembered (keys are public); a loaded PublicKey skips
    even that. The signature check runs without the GIL.

    Args:
        body: The raw request body (bytes; bytearray and memoryview are copied).
        alipay_public_key: The platform public key (PublicKey or str).
        alipay_cert: The platform public-key certificate (str PEM or PublicKey).
        rule: ``"v1"`` (default; upper case is accepted too): the signed content leaves out ``sign`` and
            ``sign_type``, as the platform SDKs' rsaCheckV1 — payment notifications;
            ``"v2"``: only ``sign`` is left out (rsaCheckV2).

    Returns:
        A TradeNotification (``notify_type=trade_status_sync``), a GatewayMessage (has a
        ``msg_method``) or an OtherNotification — all Notification.

    Raises:
        SignatureError: The body is well formed but the signature does not verify with
            the platform key (forged, altered, or signed under the other rule).
        MalformedError: The body cannot be checked or used: larger than 64 KiB or 256
            parameters, a bad percent escape, a duplicate parameter, an unsupported
            charset or sign_type, ``sign``/``sign_type`` or a required field missing, a
            ``biz_content`` that is not a JSON object, an amount that is not a decimal.
        InvalidKeyError: The key text does not load. CertificateError: the certificate
            text does not load.
        TypeError: ``body`` is not bytes (e.g. a str, already decoded), or not exactly
            one of ``alipay_public_key`` and ``alipay_cert`` is given.
        ValueError: ``rule`` is neither ``"v1"`` nor ``"v2"``.

    Both SignatureError and MalformedError are AlipayMsgError: answer ``fail`` (the
    platform retries for about 25 hours).
    """
    body = _raw_body(body)
    key = _platform_key(alipay_public_key, alipay_cert)
    return _build(_native.verify(body, key, _rule(rule)))


def _raw_body(body: Any) -> bytes:
    """The raw request body as bytes (bytearray and memoryview copied); TypeError else."""
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if not isinstance(body, bytes):
        raise TypeError(
            f"body must be the raw request body as bytes, not {type(body).__name__}"
            " (a str has already been decoded once; the signature covers the values"
            " decoded in the notification's own charset)"
        )
    return body


def _platform_key(alipay_public_key: Optional[_Key], alipay_cert: Optional[_Key]) -> PublicKey:
    """The platform key given one of the two ways; TypeError for neither or both."""
    if (alipay_public_key is None) == (alipay_cert is None):
        raise TypeError("pass exactly one of alipay_public_key= and alipay_cert=")
    if alipay_public_key is not None:
        return _key(alipay_public_key, _public_key_from_text, "alipay_public_key")
    return _key(cast(_Key, alipay_cert), _cert_key_from_text, "alipay_cert")


def _rule(rule: Any) -> str:
    """``"v1"`` or ``"v2"`` (any letter case accepted); ValueError else."""
    if not isinstance(rule, str) or rule.lower() not in ("v1", "v2"):
        raise ValueError(f'rule must be "v1" or "v2", not {rule!r}')
    return rule.lower()


@functools.lru_cache(maxsize=16)
def _public_key_from_text(text: str) -> PublicKey:
    return _native.load_public_key(text)


@functools.lru_cache(maxsize=16)
def _cert_key_from_text(pem: str) -> PublicKey:
    return _native.load_cert_public_key(pem)


def _key(value: _Key, load: Any, name: str) -> PublicKey:
    if isinstance(value, PublicKey):
        return value
    if isinstance(value, str):
        return cast(PublicKey, load(value))
    raise TypeError(f"{name} must be a str or an alipay_msg.PublicKey, not {type(value).__name__}")


def _build(raw: Dict[str, Any]) -> Notification:
    params = dict(cast(List[Tuple[str, str]], raw["params"]))
    common: Dict[str, Any] = {
        "charset": raw["charset"],
        "sign_type": raw["sign_type"],
        "params": params,
    }
    kind = raw["kind"]
    if kind == "trade":
        status: Union[TradeStatus, str] = raw["trade_status"]
        try:
            status = TradeStatus(status)
        except ValueError:
            pass
        fields: Dict[str, Any] = {name: raw[name] for name in _REQUIRED_TRADE_FIELDS}
        fields.update((name, _amount(name, raw[name])) for name in _AMOUNT_FIELDS)
        fields.update((name, raw[name]) for name in _TEXT_FIELDS)
        return TradeNotification(**common, **fields, trade_status=status)
    if kind == "gateway_message":
        return GatewayMessage(
            **common,
            notify_id=raw["notify_id"],
            app_id=raw["app_id"],
            notify_type=params.get("notify_type") or None,
            msg_method=raw["msg_method"],
            utc_timestamp=raw["utc_timestamp"],
            version=raw["version"],
            biz_content=_json_object(raw["biz_content"]),
        )
    return OtherNotification(
        **common,
        notify_id=raw["notify_id"],
        app_id=raw["app_id"],
        notify_type=raw["notify_type"],
    )


_REQUIRED_TRADE_FIELDS = (
    "notify_id",
    "app_id",
    "notify_type",
    "notify_time",
    "trade_no",
    "out_trade_no",
)
_AMOUNT_FIELDS = (
    "total_amount",
    "receipt_amount",
    "buyer_pay_amount",
    "invoice_amount",
    "point_amount",
    "refund_fee",
)
_TEXT_FIELDS = (
    "out_biz_no",
    "buyer_id",
    "seller_id",
    "subject",
    "gmt_create",
    "gmt_payment",
    "gmt_refund",
    "gmt_close",
)


def _amount(name: str, value: Optional[str]) -> Optional[Decimal]:
    if value is None:
        return None
    if not _AMOUNT.fullmatch(value):
        raise MalformedError(f"{name} is not a decimal amount: {value[:64]!r}")
    return Decimal(value)


def _json_object(text: str) -> Dict[str, Any]:
    # The core has already checked that the text is JSON; Python's reader accepts all
    # of it (and keeps integers exact), short of nesting beyond the recursion limit.
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise MalformedError(f"biz_content cannot be read as JSON: {e}") from None
    if not isinstance(value, dict):
        raise MalformedError(f"biz_content is a JSON {type(value).__name__}, not an object")
    return value
