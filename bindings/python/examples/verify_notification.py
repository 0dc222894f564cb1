# Verify a payment notification from its raw request body. Run from the repository
# root: python bindings/python/examples/verify_notification.py
from pathlib import Path

import alipay_msg

# Once, at start-up: the platform public key (PEM or bare base64), parsed once.
# Certificate mode: alipay_msg.load_cert_public_key(<alipayCertPublicKey_RSA2.crt text>).
platform_key = alipay_msg.load_public_key(
    Path("testdata/vectors/keys/alipay_public.pem").read_text()
)

# Per notification: the request body exactly as received, as bytes.
body = Path("testdata/notify/trade_notify_rsa2_v1.txt").read_bytes()
try:
    n = alipay_msg.verify_notification(body, alipay_public_key=platform_key, rule="v1")
except alipay_msg.SignatureError:
    answer = "fail"  # not from the platform, or altered: never act on it
except alipay_msg.MalformedError:
    answer = "fail"
else:
    if isinstance(n, alipay_msg.TradeNotification) and n.is_paid:
        # Check n.app_id, n.out_trade_no and n.total_amount against your order, and
        # record the payment durably (idempotently: the platform re-sends the same
        # n.notify_id until it gets "success").
        print(n.out_trade_no, n.trade_status, n.total_amount)  # 20261120102126001 TRADE_SUCCESS 88.88
    answer = "success"
print(answer)  # the HTTP response body: success
