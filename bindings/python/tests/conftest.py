"""Shared paths, loaders and fixtures: every test reads the repository's testdata/; the
client tests run against `alipay-msg simulate` (platform_simulator.py)."""

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Literal
from urllib.parse import urlencode

import pytest

import alipay_msg
from platform_simulator import Simulator

REPO = Path(__file__).resolve().parents[3]
TESTDATA = REPO / "testdata"
VECTORS = TESTDATA / "vectors"


def read_text(relative: str) -> str:
    return (TESTDATA / relative).read_text()


def notify_vectors() -> List[Dict[str, Any]]:
    cases: List[Dict[str, Any]] = json.loads((VECTORS / "notify_vectors.json").read_text())
    assert len(cases) >= 5
    return cases


def body_of(case: Dict[str, Any]) -> bytes:
    """The case's params as a UTF-8 form body, in reverse key order (as
    core/tests/notify_vectors.rs builds it), so the sign content has to sort them."""
    params = sorted(case["params"].items(), reverse=True)
    return urlencode(params).encode("ascii")


def rule_of(case: Dict[str, Any]) -> Literal["v1", "v2"]:
    mode: str = case["verify_mode"]
    assert mode[:2] in ("V1", "V2"), mode
    return "v1" if mode.startswith("V1") else "v2"


@pytest.fixture(scope="session")
def platform_key() -> alipay_msg.PublicKey:
    return alipay_msg.load_public_key(read_text("vectors/keys/alipay_public.pem"))


@pytest.fixture(scope="session")
def platform_cert_pem() -> str:
    return read_text("vectors/certs/alipay_cert.crt")


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """`alipay-msg simulate` on a free port, stopped after the test."""
    sim = Simulator()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def rsa_simulator() -> Iterator[Simulator]:
    """The simulator for an app whose sign type is RSA (SHA1withRSA, legacy apps)."""
    sim = Simulator("--sign-type", "RSA")
    try:
        yield sim
    finally:
        sim.stop()
