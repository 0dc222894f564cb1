"""Every notification vector of testdata/ gets its expected verdict (PROTOCOL §10), with
the platform key given every way: a loaded key, key text, certificate text, a
certificate's loaded key."""

from typing import Any, Callable, Dict, Literal

import pytest
from conftest import TESTDATA, body_of, notify_vectors, read_text, rule_of

import alipay_msg

KeyArgs = Callable[[], Dict[str, Any]]

KEY_MODES: Dict[str, KeyArgs] = {
    "public_key_object": lambda: {
        "alipay_public_key": alipay_msg.load_public_key(read_text("vectors/keys/alipay_public.pem"))
    },
    "public_key_text": lambda: {"alipay_public_key": read_text("vectors/keys/alipay_public.pem")},
    "cert_text": lambda: {"alipay_cert": read_text("vectors/certs/alipay_cert.crt")},
    "cert_key_object": lambda: {
        "alipay_cert": alipay_msg.load_cert_public_key(read_text("vectors/certs/alipay_cert.crt"))
    },
}
CASES = {case["name"]: case for case in notify_vectors()}


@pytest.mark.parametrize("mode", sorted(KEY_MODES))
@pytest.mark.parametrize("name", sorted(CASES))
def test_vector_verdict(name: str, mode: str) -> None:
    case = CASES[name]
    body = body_of(case)
    if case["expect_valid"]:
        n = alipay_msg.verify_notification(body, rule=rule_of(case), **KEY_MODES[mode]())
        assert n.params == case["params"]
        assert n.sign_type == case["sign_type"]
        assert n.notify_id == case["params"]["notify_id"]
        assert n.app_id == case["params"]["app_id"]
        assert n.charset == "UTF-8"
    else:
        with pytest.raises(alipay_msg.SignatureError, match="signature"):
            alipay_msg.verify_notification(body, rule=rule_of(case), **KEY_MODES[mode]())


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c["expect_valid"]))
def test_valid_vectors_fail_under_the_other_rule(name: str, platform_key: alipay_msg.PublicKey) -> None:
    case = CASES[name]
    other: Literal["v1", "v2"] = "v2" if rule_of(case) == "v1" else "v1"
    with pytest.raises(alipay_msg.SignatureError, match="does not verify"):
        alipay_msg.verify_notification(body_of(case), alipay_public_key=platform_key, rule=other)


@pytest.mark.parametrize("path", sorted(p.name for p in (TESTDATA / "notify").glob("*.txt")))
def test_raw_body_files(path: str, platform_key: alipay_msg.PublicKey) -> None:
    """testdata/notify/*.txt are the vectors as raw bodies (the platform's parameter order,
    `+` for spaces), as a web framework hands them over."""
    case = CASES[path[: -len(".txt")]]
    body = (TESTDATA / "notify" / path).read_bytes()
    if case["expect_valid"]:
        n = alipay_msg.verify_notification(body, alipay_public_key=platform_key, rule=rule_of(case))
        assert n.params == case["params"]
        # Body order is kept.
        assert list(n.params)[:2] == [pair.split("=")[0] for pair in body.decode().split("&")[:2]]
    else:
        with pytest.raises(alipay_msg.SignatureError):
            alipay_msg.verify_notification(body, alipay_public_key=platform_key, rule=rule_of(case))


def test_rule_is_case_insensitive(platform_key: alipay_msg.PublicKey) -> None:
    case = CASES["gateway_message_rsa2_v2"]
    n = alipay_msg.verify_notification(body_of(case), alipay_public_key=platform_key, rule="V2")  # type: ignore[arg-type]
    assert isinstance(n, alipay_msg.GatewayMessage)
