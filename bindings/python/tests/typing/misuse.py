# Type-checked by tests/test_typing.py, never run: each line below must be an error.
import alipay_msg

key = alipay_msg.load_public_key("...")
alipay_msg.verify_notification("a str body", alipay_public_key=key)
alipay_msg.verify_notification(b"", alipay_public_key=key, rule="v3")
alipay_msg.verify_notification(b"", alipay_public_key=b"bytes")
alipay_msg.cert_sn(b"bytes")
bits: str = key.modulus_bits
