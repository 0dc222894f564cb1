"""Key loading: the formats the platform's tools produce, and the core's error messages
(which never contain key material)."""

import re
from typing import List

import pytest
from conftest import read_text

import alipay_msg


def pem_body(pem: str) -> str:
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


def key_material_chunks(pem: str) -> List[str]:
    body = pem_body(pem)
    return [body[i : i + 16] for i in range(0, len(body) - 16, 16)]


def test_public_key_pem_and_bare_base64() -> None:
    pem = read_text("vectors/keys/alipay_public.pem")
    key = alipay_msg.load_public_key(pem)
    assert key.modulus_bits == 2048 and key.warnings == []
    assert alipay_msg.load_public_key(pem_body(pem)) == key
    assert alipay_msg.load_public_key(read_text("vectors/keys/app_public.pem")) != key
    assert key != "not a key"
    assert repr(key) == "<alipay_msg.PublicKey RSA 2048 bits>"


@pytest.mark.parametrize("name", ["alipay_private_pkcs1.pem", "alipay_private_pkcs8.pem"])
def test_private_key_pkcs1_pkcs8_and_bare_base64(name: str) -> None:
    pem = read_text(f"vectors/keys/{name}")
    for text in (pem, pem_body(pem)):
        key = alipay_msg.load_private_key(text)
        assert key.modulus_bits == 2048 and key.warnings == []
        assert key.public_key == alipay_msg.load_public_key(read_text("vectors/keys/alipay_public.pem"))
        assert repr(key) == "<alipay_msg.PrivateKey RSA 2048 bits>"
        for chunk in key_material_chunks(pem):
            assert chunk not in repr(key)


def test_small_key_loads_with_a_warning() -> None:
    key = alipay_msg.load_private_key(read_text("keys/small_1024_pkcs1.pem"))
    assert key.modulus_bits == 1024
    assert len(key.warnings) == 1 and "1024 bits" in key.warnings[0]
    assert key.public_key.warnings == key.warnings


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "no key material"),
        ("   \n", "no key material"),
        ("not a key!", "not base64"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA", "PEM"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "got a certificate"),
    ],
)
def test_public_key_errors(text: str, message: str) -> None:
    with pytest.raises(alipay_msg.InvalidKeyError, match=message):
        alipay_msg.load_public_key(text)


@pytest.mark.parametrize("name", ["alipay_private_pkcs1.pem", "alipay_private_pkcs8.pem"])
def test_private_key_where_a_public_key_is_expected(name: str) -> None:
    pem = read_text(f"vectors/keys/{name}")
    with pytest.raises(alipay_msg.InvalidKeyError, match="expected a public key, got") as e:
        alipay_msg.load_public_key(pem)
    message = str(e.value)
    for chunk in key_material_chunks(pem):
        assert chunk not in message


def test_public_key_where_a_private_key_is_expected() -> None:
    with pytest.raises(alipay_msg.InvalidKeyError, match="expected a private key, got"):
        alipay_msg.load_private_key(read_text("vectors/keys/app_public.pem"))


def test_encrypted_private_key() -> None:
    pem = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjAp\n-----END ENCRYPTED PRIVATE KEY-----\n"
    with pytest.raises(alipay_msg.InvalidKeyError, match="encrypted"):
        alipay_msg.load_private_key(pem)


def test_certificate_is_not_a_key() -> None:
    with pytest.raises(alipay_msg.InvalidKeyError, match=re.compile("certificate", re.I)):
        alipay_msg.load_public_key(read_text("vectors/certs/alipay_cert.crt"))


def test_key_of_a_certificate() -> None:
    key = alipay_msg.load_cert_public_key(read_text("vectors/certs/alipay_cert.crt"))
    assert key == alipay_msg.load_public_key(read_text("vectors/keys/alipay_public.pem"))
    with pytest.raises(alipay_msg.CertificateError, match="no CERTIFICATE block"):
        alipay_msg.load_cert_public_key(read_text("vectors/keys/alipay_public.pem"))
