"""`alipay-msg simulate` in a child process, for the client tests: started on a free port
(port 0; the chosen address is read from its first line), driven through its admin
HTTP endpoints (push, faults, PRODUCE failures, status), stopped or killed and started
again on the same port.

The binary is $ALIPAY_MSG_BIN, else <target>/debug/alipay-msg, <target> being
$CARGO_TARGET_DIR or the repository's target/ (build it with `cargo build --bin
alipay-msg`; .ci/run's earlier steps do).
"""

import atexit
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import alipay_msg

REPO = Path(__file__).resolve().parents[3]
KEYS = REPO / "testdata" / "vectors" / "keys"
APP_ID = "2021000000000001"
API = "alipay.open.mini.version.audit.passed"
PRODUCE_API = "alipay.open.app.openbizmock.message.send"

#: Seconds any wait of these tests allows before failing.
LIMIT = 20.0

_LISTENING = re.compile(r"listening on http://([^\s]+):(\d+) ")

#: Every simulator process started and not yet stopped: killed when the test run ends,
#: should a failed test have left one behind (e.g. a restart still under way when its
#: test timed out).
_RUNNING: "set[subprocess.Popen[bytes]]" = set()


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_RUNNING):
        if process.poll() is None:
            process.kill()
            process.wait()


def binary() -> Path:
    """The alipay-msg binary the tests run."""
    explicit = os.environ.get("ALIPAY_MSG_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    return Path(target) / "debug" / "alipay-msg"


def wait_for(what: str, condition: Callable[[], Any], limit: float = LIMIT) -> Any:
    """Polls `condition` until it returns something true; fails after `limit` s."""
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit} s waiting for {what}")
        time.sleep(0.02)


class Simulator:
    """One `alipay-msg simulate` process (restartable on its port)."""

    def __init__(self, *args: str) -> None:
        self.args = list(args)
        self.port = 0
        self.host = "127.0.0.1"
        self._log_dir = tempfile.TemporaryDirectory(prefix="alipay-msg-sim-")
        self._runs = 0
        self._process: Optional["subprocess.Popen[bytes]"] = None
        self._log: Optional[Path] = None
        self.start()

    def start(self) -> None:
        """Starts the process: on a free port the first time, on the same one after."""
        exe = binary()
        if not exe.exists():
            raise AssertionError(
                f"{exe} does not exist: build it with `cargo build --bin alipay-msg` or set "
                "ALIPAY_MSG_BIN"
            )
        self._runs += 1
        self._log = Path(self._log_dir.name) / f"run{self._runs}.log"
        with open(self._log, "wb") as out:
            self._process = subprocess.Popen(
                [str(exe), "simulate", "--listen", f"127.0.0.1:{self.port}", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        _RUNNING.add(self._process)

        def listening() -> Optional["re.Match[str]"]:
            assert self._process is not None
            if self._process.poll() is not None:
                raise AssertionError(f"the simulator exited: {self.output()}")
            return _LISTENING.search(self.output())

        found = wait_for("the simulator's address", listening)
        self.host, self.port = found.group(1), int(found.group(2))

    @property
    def endpoint(self) -> str:
        """The endpoint for Config (plain HOST:PORT)."""
        return f"{self.host}:{self.port}"

    def output(self) -> str:
        """Everything the current process printed."""
        return self._log.read_text(errors="replace") if self._log else ""

    def kill(self) -> None:
        """Kills the process at once (a platform crash: connections end without close)."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
                self._process.wait(LIMIT)
            _RUNNING.discard(self._process)

    def restart(self) -> None:
        """Kills the process and starts a new one on the same port (it knows nothing)."""
        self.kill()
        self.start()

    def stop(self) -> None:
        """Ctrl-C, as a person stops it; killed if it does not exit."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(LIMIT)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        self._log_dir.cleanup()

    # ----- the admin endpoints -----

    def _request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://{self.endpoint}{path}", data=data, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=LIMIT) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{method} {path}: {e.code} {e.read()!r}") from None

    def push(
        self, biz_content: Dict[str, Any], msg_api: str = API, *, forged: bool = False
    ) -> str:
        """Queues a message (or a forgery, signed over other content); returns its id."""
        body: Dict[str, Any] = {"msg_api": msg_api, "biz_content": biz_content}
        if forged:
            body["forged"] = True
        msg_id: str = self._request("POST", "/admin/push", body)["msg_id"]
        return msg_id

    def push_bulk(self, count: int, biz_content: Dict[str, Any], msg_api: str = API) -> None:
        """Queues `count` copies signed once."""
        self._request(
            "POST",
            "/admin/push-bulk",
            {"msg_api": msg_api, "biz_content": biz_content, "count": count},
        )

    def faults(self, **plan: int) -> Dict[str, Any]:
        """Arms faults (replacing the plan): duplicate_consumes=1, …"""
        armed: Dict[str, Any] = self._request("POST", "/admin/faults", plan)
        return armed

    def produce_failure(self, msg_api: str, failure: Optional[str]) -> None:
        """PRODUCEs of `msg_api` answered 20000/40000 (`None`: normally again)."""
        self._request("POST", "/admin/produce-failure", {"msg_api": msg_api, "failure": failure})

    def status(self) -> Dict[str, Any]:
        """GET /admin/status: connections, queued, in_flight, acked, forged_discarded …"""
        status: Dict[str, Any] = self._request("GET", "/admin/status")
        return status

    def wait_status(self, what: str, condition: Callable[[Dict[str, Any]], bool]) -> Dict[str, Any]:
        """Polls the status until `condition` holds."""
        found: Dict[str, Any] = wait_for(
            what, lambda: (lambda s: s if condition(s) else None)(self.status())
        )
        return found

    def lines(self, containing: str) -> List[str]:
        """The printed lines that contain `containing`, so far."""
        return [line for line in self.output().splitlines() if containing in line]

    def wait_lines(self, containing: str) -> List[str]:
        """The printed lines that contain `containing`, once there is one (the simulator
        prints its events shortly after they happen)."""
        found: List[str] = wait_for(f"a line with {containing!r}", lambda: self.lines(containing))
        return found


def client_config(sim: Simulator, **changes: Any) -> "alipay_msg.Config":
    """A Config for the simulator's test app with the test keys, quick to reconnect."""
    settings: Dict[str, Any] = {
        "app_id": APP_ID,
        "app_private_key": (KEYS / "app_private_pkcs1.pem").read_text(),
        "alipay_public_key": (KEYS / "alipay_public.pem").read_text(),
        "endpoint": sim.endpoint,
        "backoff_base": 0.2,
        "backoff_cap": 0.5,
        "first_connect_timeout": LIMIT,
    }
    settings.update(changes)
    return alipay_msg.Config(**settings)
