"""alipay_msg: the payment open platform's message channel and HTTP notifications, on the
alipay-msg Rust core.

The message channel (a websocket the platform pushes messages on, PROTOCOL §1–8):

* alipay_msg.aio.Client: the asyncio client (``async with Client(config) as c: async for
  msg in c.messages(): … await msg.ack()``; ``await c.run(handler)``; ``await
  c.send(msg_api, biz)``);
* alipay_msg.Client: the same with blocking methods, for scripts;
* alipay_msg.session.ClientSession: the core's sans-IO state machine, for any other I/O
  framework;
* Config, the configuration of all three; ProduceAck and ProduceCode, a send's answer;
* SharedWindowConfig and RedisWindow (or any WindowStore): a duplicate window shared
  by the instances of a service (``Client(config, window=RedisWindow(url))``).

Offline functions, no I/O:

* verify_notification(body, alipay_public_key=... | alipay_cert=..., rule="v1") checks a
  notification's raw request body and returns a TradeNotification, GatewayMessage or
  OtherNotification (PROTOCOL §10);
* NotifyGate(alipay_public_key=... | alipay_cert=..., app_id=...) is the whole
  notification endpoint decision, shared by a web server's threads: ``check(body)``
  gives a HandleVerdict (run the handler, then ``complete(verdict, success)``), a
  DuplicateVerdict (answer ``success``) or a RefusedVerdict (answer ``fail``);
* load_public_key / load_private_key / load_cert_public_key load RSA keys once
  (PEM or bare base64; a certificate's key), with the core's error messages;
* cert_sn / root_cert_sn give the certificate SNs of certificate mode (PROTOCOL §9).

Errors are AlipayMsgError: SignatureError, MalformedError, InvalidKeyError,
CertificateError; ConfigError; ConnectError (RefusedError, ConnectTimeoutError);
ProxyError (an HTTP proxy did not open a tunnel); SendError (NotConnectedError,
TooManyPendingError, ShuttingDownError, InvalidMessageError, SendTimeoutError,
ConnectionLostError); UnknownDeliveryError; ClientClosedError; WindowError (the shared
window's store could not answer). Messages never contain key material.
"""

from ._native import (
    AlipayMsgError,
    CertificateError,
    ClientClosedError,
    ConfigError,
    ConnectError,
    ConnectionLostError,
    ConnectTimeoutError,
    InvalidKeyError,
    InvalidMessageError,
    MalformedError,
    NotConnectedError,
    PrivateKey,
    ProduceAck,
    ProduceCode,
    ProxyError,
    PublicKey,
    RefusedError,
    SendError,
    SendTimeoutError,
    ShuttingDownError,
    SignatureError,
    TooManyPendingError,
    UnknownDeliveryError,
    RedisWindow,
    WindowError,
    WindowKey,
    WindowQuery,
    cert_sn,
    load_cert_public_key,
    load_private_key,
    load_public_key,
    root_cert_sn,
)
from ._config import Config, SharedWindowConfig
from ._window import WindowAnswer, WindowStore
from ._gate import (
    FORM_CONTENT_TYPE,
    DuplicateVerdict,
    HandleVerdict,
    NotifyClaim,
    NotifyGate,
    RefusedVerdict,
    Verdict,
)
from ._notification import (
    GatewayMessage,
    Notification,
    OtherNotification,
    TradeNotification,
    TradeStatus,
    verify_notification,
)
from . import aio, session
from .blocking import Client, Message

__all__ = [
    "AlipayMsgError",
    "CertificateError",
    "Client",
    "ClientClosedError",
    "Config",
    "ConfigError",
    "ConnectError",
    "ConnectTimeoutError",
    "ConnectionLostError",
    "DuplicateVerdict",
    "FORM_CONTENT_TYPE",
    "GatewayMessage",
    "HandleVerdict",
    "InvalidKeyError",
    "InvalidMessageError",
    "MalformedError",
    "Message",
    "NotConnectedError",
    "Notification",
    "NotifyClaim",
    "NotifyGate",
    "OtherNotification",
    "PrivateKey",
    "ProduceAck",
    "ProduceCode",
    "ProxyError",
    "PublicKey",
    "RedisWindow",
    "RefusedError",
    "RefusedVerdict",
    "SendError",
    "SendTimeoutError",
    "SharedWindowConfig",
    "ShuttingDownError",
    "SignatureError",
    "TooManyPendingError",
    "TradeNotification",
    "TradeStatus",
    "UnknownDeliveryError",
    "Verdict",
    "WindowAnswer",
    "WindowError",
    "WindowKey",
    "WindowQuery",
    "WindowStore",
    "aio",
    "cert_sn",
    "load_cert_public_key",
    "load_private_key",
    "load_public_key",
    "root_cert_sn",
    "session",
    "verify_notification",
]
