# Type-checked (mypy --strict, tests/test_typing.py), never run: the stubs and the
# annotations give every name of the API its type.
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
