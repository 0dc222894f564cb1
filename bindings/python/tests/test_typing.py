"""The installed package's stubs and annotations, checked with mypy --strict: correct use
type-checks, misuse is caught."""

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mypy", reason="mypy is in requirements-ci.txt")
    return tmp_path_factory.mktemp("mypy-cache")


def mypy(cache: Path, *files: Path) -> "subprocess.CompletedProcess[str]":
    # Run outside the source tree, so that mypy reads the installed package.
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(cache)]
        + [str(f) for f in files],
        cwd=cache,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_correct_use_type_checks(cache: Path) -> None:
    examples = HERE.parent / "examples"
    done = mypy(
        cache,
        HERE / "typing" / "usage.py",
        examples / "verify_notification.py",
        examples / "listen_asyncio.py",
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_misuse_is_caught(cache: Path) -> None:
    done = mypy(cache, HERE / "typing" / "misuse.py")
    lines = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert [int(line.split(":")[1]) for line in lines] == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23], done.stdout


def test_the_package_type_checks(cache: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", str(cache)]
        + ["-p", "alipay_msg"],
        cwd=cache,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
