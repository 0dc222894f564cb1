"""alipay_msg: the payment open platform's HTTP notifications, verified by the Rust core.

Offline functions, no I/O:

* verify_notification(body, alipay_public_key=... | alipay_cert=..., rule="v1") checks a
  notification's raw request body and returns a TradeNotification, GatewayMessage or
  OtherNotification (PROTOCOL §10);
* load_public_key / load_private_key / load_cert_public_key load RSA keys once
  (PEM or bare base64; a certificate's key), with the core's error messages;
* cert_sn / root_cert_sn give the certificate SNs of certificate mode (PROTOCOL §9).

Errors are AlipayMsgError: SignatureError, MalformedError, InvalidKeyError,
CertificateError. Messages never contain key material.
"""

from ._native import (
    AlipayMsgError,
    CertificateError,
    InvalidKeyError,
    MalformedError,
    PrivateKey,
    PublicKey,
    SignatureError,
    cert_sn,
    load_cert_public_key,
    load_private_key,
    load_public_key,
    root_cert_sn,
)
from ._notification import (
    GatewayMessage,
    Notification,
    OtherNotification,
    TradeNotification,
    TradeStatus,
    verify_notification,
)

__all__ = [
    "AlipayMsgError",
    "CertificateError",
    "GatewayMessage",
    "InvalidKeyError",
    "MalformedError",
    "Notification",
    "OtherNotification",
    "PrivateKey",
    "PublicKey",
    "SignatureError",
    "TradeNotification",
    "TradeStatus",
    "cert_sn",
    "load_cert_public_key",
    "load_private_key",
    "load_public_key",
    "root_cert_sn",
    "verify_notification",
]
