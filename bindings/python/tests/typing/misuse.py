# Type-checked by tests/test_typing.py, never run: each line below must be an error.
import alipay_msg

key = alipay_msg.load_public_key("...")
alipay_msg.verify_notification("a str body", alipay_public_key=key)
alipay_msg.verify_notification(b"", alipay_public_key=key, rule="v3")
alipay_msg.verify_notification(b"", alipay_public_key=b"bytes")
alipay_msg.cert_sn(b"bytes")
bits: str = key.modulus_bits
config = alipay_msg.Config(app_id="1", app_private_key="k", heartbeat_interval="5")
alipay_msg.Client(config).send("a.b", [1])
alipay_msg.session.ClientSession(config).handle_timeout("now")
alipay_msg.session.Input.bytes(1, "text")
gate = alipay_msg.NotifyGate(alipay_public_key=key, app_id=1)
gate.complete(gate.check(b""), True)
gate.check("a str body")
alipay_msg.NotifyGate(alipay_public_key=key, app_id="1", rule="v3")
alipay_msg.Client(config, proxy=3128)
alipay_msg.session.ProxyRules(None, {"HTTPS_PROXY": 1})
alipay_msg.session.ConnectAnswer().feed("HTTP/1.1 200 OK")
alipay_msg.SharedWindowConfig(on_store_failure="ignore")
alipay_msg.Client(config, window=alipay_msg.Config)
alipay_msg.session.Input.window_answered(1, "maybe")
