"""The README's Python example (examples/verify_notification.py) runs as written, and the
README shows exactly that file."""

import subprocess
import sys

from conftest import REPO

EXAMPLE = REPO / "bindings" / "python" / "examples" / "verify_notification.py"


def test_readme_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "20261120102126001 TRADE_SUCCESS 88.88\nsuccess\n"


def test_readme_shows_the_example_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    block = "```python\n" + EXAMPLE.read_text().rstrip() + "\n```\n"
    assert block in readme, "README.md's Python example differs from examples/verify_notification.py"
