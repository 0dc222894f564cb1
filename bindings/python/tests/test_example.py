"""The READMEs' Python examples run as written: README.md shows
examples/listen_asyncio.py verbatim and bindings/python/README.md
examples/verify_notification.py; every other Python block of both compiles."""

import ast
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
    for readme, example in (
        (REPO / "README.md", LISTEN),
        (REPO / "bindings" / "python" / "README.md", EXAMPLE),
    ):
        block = "```python\n" + example.read_text().rstrip() + "\n```\n"
        assert block in readme.read_text(), f"{readme.name}'s example differs from {example.name}"


def test_every_python_block_of_the_readmes_compiles() -> None:
    for readme in (REPO / "README.md", REPO / "bindings" / "python" / "README.md"):
        text = readme.read_text()
        blocks = text.split("```python\n")[1:]
        assert blocks, f"no Python block in {readme}"
        for n, rest in enumerate(blocks):
            source = rest.split("\n```", 1)[0]
            # Blocks show `async with` / `await` at the top level, as in an async def.
            compile(source, f"{readme}: python block {n + 1}", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_readme_asyncio_example_runs(simulator: Simulator) -> None:
    simulator.push({"mini_app_id": "2014072300007148"})
    env = dict(os.environ, ALIPAY_MSG_ENDPOINT=simulator.endpoint)
    done = subprocess.run(
        [sys.executable, str(LISTEN)], cwd=REPO, env=env, capture_output=True, text=True, timeout=LIMIT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "alipay.open.mini.version.audit.passed {'mini_app_id': '2014072300007148'}\n"
    simulator.wait_status("the ack", lambda s: s["acked"] == 1)
