"""The README's Python examples (examples/verify_notification.py, examples/listen_asyncio.py)
run as written, and the README shows exactly those files."""

import os
import subprocess
import sys

from conftest import REPO
from platform_simulator import LIMIT, Simulator

EXAMPLES = REPO / "bindings" / "python" / "examples"
EXAMPLE = EXAMPLES / "verify_notification.py"
LISTEN = EXAMPLES / "listen_asyncio.py"


def test_readme_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "20261120102126001 TRADE_SUCCESS 88.88\nsuccess\n"


def test_readme_shows_the_examples_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    for example in (EXAMPLE, LISTEN):
        block = "```python\n" + example.read_text().rstrip() + "\n```\n"
        assert block in readme, f"README.md's Python example differs from {example.name}"


def test_readme_asyncio_example_runs(simulator: Simulator) -> None:
    simulator.push({"mini_app_id": "2014072300007148"})
    env = dict(os.environ, ALIPAY_MSG_ENDPOINT=simulator.endpoint)
    done = subprocess.run(
        [sys.executable, str(LISTEN)], cwd=REPO, env=env, capture_output=True, text=True, timeout=LIMIT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "alipay.open.mini.version.audit.passed {'mini_app_id': '2014072300007148'}\n"
    simulator.wait_status("the ack", lambda s: s["acked"] == 1)
