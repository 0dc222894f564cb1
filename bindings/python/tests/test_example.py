"""The README's Python example (examples/verify_notification.py) runs as written."""

import subprocess
import sys

from conftest import REPO


def test_readme_example_runs() -> None:
    example = REPO / "bindings" / "python" / "examples" / "verify_notification.py"
    done = subprocess.run(
        [sys.executable, str(example)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "20261120102126001 TRADE_SUCCESS 88.88\nsuccess\n"
