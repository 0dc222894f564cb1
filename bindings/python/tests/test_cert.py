"""cert_sn / root_cert_sn against testdata/vectors/cert_vectors.json (PROTOCOL §9)."""

import json
from typing import Any, Dict, List

import pytest
from conftest import VECTORS, read_text

import alipay_msg

CASES: List[Dict[str, Any]] = json.loads((VECTORS / "cert_vectors.json").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_cert_vector(case: Dict[str, Any]) -> None:
    pem = read_text("vectors/" + case["file"])
    if case.get("root"):
        assert alipay_msg.root_cert_sn(pem) == case["sn"]
    else:
        sn = alipay_msg.cert_sn(pem)
        assert sn == case["sn"]
        assert len(sn) == 32 and sn == sn.lower()
    if "public_key_matches" in case:
        assert alipay_msg.load_cert_public_key(pem) == alipay_msg.load_public_key(
            read_text("vectors/" + case["public_key_matches"])
        )


def test_root_sn_of_a_single_rsa_certificate_is_its_sn() -> None:
    pem = read_text("vectors/certs/root_ca.pem")
    assert alipay_msg.root_cert_sn(pem) == alipay_msg.cert_sn(pem)


@pytest.mark.parametrize("function", [alipay_msg.cert_sn, alipay_msg.root_cert_sn])
def test_certificate_errors(function: Any) -> None:
    with pytest.raises(alipay_msg.CertificateError, match="no CERTIFICATE block"):
        function("")
    with pytest.raises(alipay_msg.CertificateError, match="(?i)certificate"):
        function("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(alipay_msg.CertificateError, match="no CERTIFICATE block"):
        function(read_text("vectors/keys/alipay_public.pem"))
