# Type-checked (mypy --strict, tests/test_typing.py), never run: the stubs and the
# annotations give every name of the API its type.
import time
from decimal import Decimal
from typing import Any, Dict, List, Optional, Union

import alipay_msg
from alipay_msg import GatewayMessage, OtherNotification, TradeNotification, TradeStatus

key: alipay_msg.PublicKey = alipay_msg.load_public_key("...")
cert_key: alipay_msg.PublicKey = alipay_msg.load_cert_public_key("...")
private: alipay_msg.PrivateKey = alipay_msg.load_private_key("...")
bits: int = private.public_key.modulus_bits + key.modulus_bits
warnings: List[str] = private.warnings + key.warnings
sns: str = alipay_msg.cert_sn("...") + alipay_msg.root_cert_sn("...")

n: alipay_msg.Notification = alipay_msg.verify_notification(b"", alipay_public_key=key)
n = alipay_msg.verify_notification(b"", alipay_public_key="PEM or base64", rule="v2")
n = alipay_msg.verify_notification(b"", alipay_cert="PEM", rule="v1")
n = alipay_msg.verify_notification(b"", alipay_cert=cert_key)
notify_id: Optional[str] = n.notify_id
app_id: Optional[str] = n.app_id
params: Dict[str, str] = n.params
charset: str = n.charset + n.sign_type
if isinstance(n, TradeNotification):
    required: str = n.notify_id + n.app_id + n.out_trade_no + n.trade_no + n.notify_time
    amount: Optional[Decimal] = n.total_amount
    status: Union[TradeStatus, str] = n.trade_status
    paid: bool = n.is_paid
elif isinstance(n, GatewayMessage):
    method: str = n.msg_method
    biz: Dict[str, Any] = n.biz_content
    ts: Optional[str] = n.utc_timestamp
elif isinstance(n, OtherNotification):
    notify_type: Optional[str] = n.notify_type

try:
    pass
except alipay_msg.SignatureError as e:
    base: alipay_msg.AlipayMsgError = e
except (alipay_msg.MalformedError, alipay_msg.InvalidKeyError, alipay_msg.CertificateError):
    pass
also_paid: bool = TradeStatus.TRADE_SUCCESS.is_paid

gate = alipay_msg.NotifyGate(alipay_public_key=key, app_id="2021000000000001")
gate = alipay_msg.NotifyGate(
    alipay_cert="PEM",
    app_id="2021000000000001",
    rule="v2",
    duplicate_capacity=1000,
    duplicate_max_age=3600.0,
    freshness=600,
    max_in_progress=16,
    claim_timeout=60,
)
verdict: alipay_msg.Verdict = gate.check(b"", content_type=None, now=time.monotonic(), unix_ms=0)
answer: str
if isinstance(verdict, alipay_msg.HandleVerdict):
    handled: alipay_msg.Notification = verdict.notification
    claim: alipay_msg.NotifyClaim = verdict.claim
    claimed_id: str = verdict.notify_id + claim.notify_id
    answer = gate.complete(verdict, True)
    answer = gate.complete(verdict, False, now=time.monotonic())
else:
    answer = verdict.immediate_response
    if isinstance(verdict, alipay_msg.RefusedVerdict):
        why: str = verdict.kind + verdict.message
        forged: bool = verdict.is_signature_failure
    else:
        duplicate_id: str = verdict.notify_id
counts: int = gate.handled_len + gate.in_progress_len
gate_rule: str = gate.rule + gate.app_id + alipay_msg.FORM_CONTENT_TYPE

# The message channel: configuration, the asyncio and blocking clients, the sans-IO session.
import asyncio

from alipay_msg import aio, session

config = alipay_msg.Config(
    app_id="2021000000000001",
    app_private_key=private,
    alipay_public_key="PEM",
    endpoint="127.0.0.1:7001",
    charset="GBK",
    first_connect_timeout=None,
    max_in_flight=8,
)
seconds: float = config.heartbeat_interval + config.dead_after
cert_mode: bool = config.certificate_mode


async def consume() -> None:
    async with aio.Client(config, on_event=print, proxy=None) as client:
        async for msg in client.messages():
            biz_content: Dict[str, Any] = msg.biz_content
            text: str = msg.biz_content_text + msg.msg_api + msg.msg_id
            ts: Optional[int] = msg.timestamp_ms
            await msg.ack()
            await msg.fail("why")
        ack: alipay_msg.ProduceAck = await client.send("a.b", {"k": 1})
        code: alipay_msg.ProduceCode = ack.result
        retry: bool = ack.is_retryable and ack.is_success and code == alipay_msg.ProduceCode.ACCEPTED
        x_code: Optional[str] = ack.code

        async def handler(msg: aio.Message) -> None:
            pass

        await client.run(handler)
        stream: aio.MessageStream = client.messages()
        await stream.aclose()
        await client.shutdown()


asyncio.run(consume())

with alipay_msg.Client(config, proxy="http://proxy.corp:3128") as blocking:
    for message in blocking.messages():
        message.ack()

    def sync_handler(msg: alipay_msg.Message) -> None:
        msg.fail()

    blocking.run(sync_handler, workers=2)
    produced: alipay_msg.ProduceAck = blocking.send("a.b", '{"k":1}')

s = session.ClientSession(config, now=time.monotonic(), seed=bytes(32))
out: session.Output = s.poll_output()
if isinstance(out, session.Connect):
    s.handle_input(session.Input.connected(out.conn_id), time.monotonic())
elif isinstance(out, session.Write):
    data: bytes = out.data
elif isinstance(out, session.Message):
    s.complete(out, True, time.monotonic())
elif isinstance(out, session.Timeout):
    s.handle_timeout(out.at)
elif isinstance(out, session.Disconnected):
    retry_in: Optional[float] = out.retry_in
elif isinstance(out, session.ProduceAnswer):
    error: Optional[alipay_msg.SendError] = out.error
deadline: Optional[float] = s.poll_timeout()
stream_id: str = s.send("a.b", "{}", time.monotonic())
failure: Optional[alipay_msg.AlipayMsgError] = s.error
try:
    pass
except alipay_msg.SendTimeoutError as e:
    send_error: alipay_msg.SendError = e
except alipay_msg.RefusedError as e:
    connect_error: alipay_msg.ConnectError = e
except alipay_msg.ProxyError as e:
    refused_status: Optional[int] = e.status
    refused_reason: Optional[str] = e.reason

# Behind a proxy, a driver of its own: the rules, the tunnel, the answer.
import os

rules = session.ProxyRules(None, os.environ)
rules = session.ProxyRules("none", {"HTTPS_PROXY": "http://proxy.corp:3128"})
tunnel: Optional[session.ProxyTunnel] = rules.for_target("openapi.alipay.com", 443, True)
if tunnel is not None:
    proxy_address: str = f"{tunnel.host}:{tunnel.port}"
    request: bytes = tunnel.request
    reader = session.ConnectAnswer()
    used: Optional[int] = reader.feed(b"H")
    opened: bool = reader.done
    limit: int = session.ConnectAnswer.MAX_BYTES

# A duplicate window shared by the instances of a service: Redis, or a store of one's own.
from alipay_msg import WindowAnswer, WindowQuery


class Memory:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def answer(self, query: WindowQuery) -> WindowAnswer:
        key: str = query.key.render("svc")
        token: Optional[str] = query.token
        if query.op == "claim":
            return "claimed"
        return "recorded" if query.op == "record" else "released"


shared = alipay_msg.SharedWindowConfig(lease=30.0, on_store_failure="local_window")
windowed = alipay_msg.Config(app_id="1", app_private_key="k", shared_window=shared)
redis_store = alipay_msg.RedisWindow("redis://127.0.0.1:6379/0", prefix="svc", timeout=0.5)
alipay_msg.Client(windowed, window=redis_store)
alipay_msg.aio.Client(windowed, window=Memory())
redis_answer: WindowAnswer = redis_store.answer(
    WindowQuery(1, alipay_msg.WindowKey("1", "msg", "m"), "claim", token="t", lease=1.0)
)
answered = session.Input.window_answered(1, redis_answer)
answered_error = session.Input.window_answered(1, alipay_msg.WindowError("down"))
out2 = s.poll_output()
if isinstance(out2, session.WindowQuery):
    query_id: int = out2.id
    lease: Optional[float] = out2.lease
elif isinstance(out2, session.SharedWindowFailed):
    fell_back: bool = out2.fallback
