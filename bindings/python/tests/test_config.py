"""alipay_msg.Config: the core's defaults, every setting reaching the core, the errors a
misconfiguration gives (never with key material), keys as text or loaded."""

import dataclasses
import math
from typing import Any

import pytest

import alipay_msg
from alipay_msg import Config, ConfigError, _native
from alipay_msg.session import ClientSession
from conftest import read_text

PRIVATE = read_text("vectors/keys/app_private_pkcs1.pem")
PUBLIC = read_text("vectors/keys/alipay_public.pem")
CERTS = "vectors/certs/"


def config(**changes: Any) -> Config:
    base = Config(app_id="2021000000000001", app_private_key=PRIVATE, alipay_public_key=PUBLIC)
    return dataclasses.replace(base, **changes)


def test_the_defaults_are_the_cores() -> None:
    assert _native._effective_config(config()) == _native._config_defaults(PRIVATE, PUBLIC)


def test_every_setting_reaches_the_core() -> None:
    changed = {
        "heartbeat_interval": 2.5,
        "dead_after": 7.25,
        "connect_timeout": 3.0,
        "first_connect_timeout": None,
        "backoff_base": 0.5,
        "backoff_cap": 4.0,
        "backoff_reset_after": 12.0,
        "retry_on_auth_error": True,
        "max_clock_skew": None,
        "max_message_age": 3600.0,
        "duplicate_capacity": 10,
        "duplicate_max_age": 60.0,
        "max_in_flight": 7,
        "consumer_grace": 0.125,
        "check_parallelism": 3,
        "max_pending_sends": 9,
        "send_timeout": 1.5,
        "shutdown_timeout": 2.0,
        "max_frame_bytes": 4096,
        "max_register_response_bytes": 8192,
        "charset": "gbk",
        "sign_type": "RSA",
    }
    effective = _native._effective_config(config(endpoint="127.0.0.1:7001", **changed))
    assert effective["endpoint"] == "http://127.0.0.1:7001"
    assert effective["charset"] == "GBK"
    for name, value in changed.items():
        if name != "charset":
            assert effective[name] == value, name


def test_keys_may_be_loaded_once() -> None:
    loaded = config(
        app_private_key=alipay_msg.load_private_key(PRIVATE),
        alipay_public_key=alipay_msg.load_public_key(PUBLIC),
    )
    assert _native._effective_config(loaded) == _native._effective_config(config())
    ClientSession(loaded, now=0.0)


def test_certificate_mode() -> None:
    certificate = config(
        app_private_key=read_text("vectors/keys/app_private_pkcs8.pem"),
        alipay_public_key=None,
        app_cert=read_text(CERTS + "app_cert.crt"),
        alipay_cert=read_text(CERTS + "alipay_cert.crt"),
        alipay_root_cert=read_text(CERTS + "root_bundle_simple.crt"),
    )
    assert certificate.certificate_mode and not config().certificate_mode
    ClientSession(certificate, now=0.0)
    # The app key must belong to the app certificate.
    other = dataclasses.replace(certificate, app_private_key=read_text("vectors/keys/alipay_private_pkcs1.pem"))
    with pytest.raises(ConfigError):
        ClientSession(other, now=0.0)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"app_id": "not-a-number"}, "invalid app id"),
        ({"app_id": ""}, "it is empty"),
        ({"app_private_key": "nope"}, "app private key"),
        ({"alipay_public_key": "nope"}, "platform public key"),
        ({"alipay_public_key": None}, "give the platform key one way"),
        ({"app_cert": "x", "alipay_cert": "y", "alipay_root_cert": "z"}, "one way"),
        ({"endpoint": "ftp://example.com"}, "invalid endpoint"),
        ({"charset": "latin-1"}, "unsupported charset"),
        ({"sign_type": "rsa2"}, "RSA2"),
        ({"heartbeat_interval": -1.0}, "heartbeat_interval"),
        ({"send_timeout": math.nan}, "send_timeout"),
        ({"connect_timeout": math.inf}, "connect_timeout"),
        ({"dead_after": 5.0}, "dead_after"),
        ({"first_connect_timeout": 0.0}, "first_connect_timeout"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_pending_sends": -1}, "max_pending_sends"),
        ({"check_parallelism": 65}, "check_parallelism"),
        ({"shutdown_timeout": 400 * 86400.0}, "365 days"),
        ({"backoff_cap": 0.5}, "backoff.cap"),
    ],
)
def test_misconfigurations_are_config_errors(changes: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        ClientSession(config(**changes), now=0.0)
    assert isinstance(refused.value, alipay_msg.AlipayMsgError)
    assert "PRIVATE KEY" not in str(refused.value) and "MII" not in str(refused.value)


def test_wrong_types_are_type_errors() -> None:
    with pytest.raises(TypeError, match="heartbeat_interval"):
        ClientSession(config(heartbeat_interval="5"), now=0.0)
    with pytest.raises(TypeError, match="app_private_key"):
        ClientSession(config(app_private_key=b"bytes"), now=0.0)
    with pytest.raises(TypeError, match="certificate mode"):
        ClientSession(
            config(
                app_private_key=alipay_msg.load_private_key(PRIVATE),
                alipay_public_key=None,
                app_cert="x",
                alipay_cert="y",
                alipay_root_cert="z",
            ),
            now=0.0,
        )


def test_repr_leaves_the_keys_out() -> None:
    text = repr(config())
    assert "2021000000000001" in text and "PRIVATE" not in text and "PUBLIC" not in text
