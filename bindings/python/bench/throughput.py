"""Throughput of the asyncio client (alipay_msg.aio.Client) against `alipay-msg simulate`,
as a ratio of the Rust tokio client's, measured in the same run.

    python bindings/python/bench/throughput.py [--messages N] [--in-flight K] [--runs R]

Each run starts a fresh simulator, a client in a child process of its own with a
handler that only counts, waits until it is connected, queues N copies of one message
signed once (POST /admin/push-bulk: the platform's signing is not what is measured),
and times from the queueing until the simulator has received N SUCCESS acks (polling
GET /admin/status every 2 ms). The Python client and the Rust tokio client
(`alipay-msg bench-client --adapter tokio`, the client of `alipay-msg bench`) take turns,
R runs each, against the same simulator setup; the medians give the ratio. Each run
also prints the client's CPU time per message (the Python child's from its connection
on, without the interpreter's start-up) and its peak RSS. For
reference the script also runs `alipay-msg bench --adapter tokio --messages N --runs 1`
(its own in-process simulator, no printing) and prints that figure and ratio too.

Use release builds: `cargo build --release --bin alipay-msg` and a wheel from
`maturin build --release`. The binary is --bin, else $ALIPAY_MSG_BIN, else
<target>/release/alipay-msg ($CARGO_TARGET_DIR or the repository's target/).
"""

import argparse
import asyncio
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[3]
KEYS = REPO / "testdata" / "vectors" / "keys"
APP_ID = "2021000000000001"
API = "alipay.open.mini.version.audit.passed"
BIZ = {"mini_app_id": "2014072300007148", "audit_reason": "ok", "version": "1.0.3"}
LIMIT = 300.0


def default_binary() -> Path:
    explicit = os.environ.get("ALIPAY_MSG_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    return Path(target) / "release" / "alipay-msg"


class Simulator:
    """`alipay-msg simulate` on a free port, its output to a file."""

    def __init__(self, binary: Path) -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="alipay-msg-bench-", suffix=".log")
        self.process = subprocess.Popen(
            [str(binary), "simulate", "--listen", "127.0.0.1:0"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            text = Path(self.log.name).read_text(errors="replace")
            found = re.search(r"listening on http://([^\s]+) ", text)
            if found:
                self.endpoint = found.group(1)
                return
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the simulator did not start: {text}")
            time.sleep(0.01)

    def request(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://{self.endpoint}{path}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def status(self) -> Dict[str, Any]:
        status: Dict[str, Any] = self.request("GET", "/admin/status")
        return status

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def one_run(binary: Path, client: str, messages: int, in_flight: int) -> Tuple[float, Dict[str, Any]]:
    """One timed run: messages per second as the simulator saw them, and the client's
    report."""
    sim = Simulator(binary)
    try:
        if client == "python":
            command = [sys.executable, __file__, "--client", "--endpoint", sim.endpoint]
        else:
            command = [str(binary), "bench-client", "--adapter", "tokio", "--backend", "ring",
                       "--endpoint", sim.endpoint]
        command += ["--messages", str(messages), "--in-flight", str(in_flight)]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while sim.status()["connections"] < 1:
                if child.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the {client} client did not connect")
                time.sleep(0.01)
            started = time.monotonic()
            sim.request("POST", "/admin/push-bulk", {"msg_api": API, "biz_content": BIZ, "count": messages})
            deadline = started + LIMIT
            while True:
                status = sim.status()
                if status["acked"] >= messages:
                    elapsed = time.monotonic() - started
                    break
                if child.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the {client} client stopped after {status['acked']} acks")
                time.sleep(0.002)
            out, _ = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        if status["waiting_retry"] or status["abandoned"]:
            raise SystemExit(f"messages were not acked at once: {status}")
        report: Dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return messages / elapsed, report
    finally:
        sim.stop()


def rust_bench(binary: Path, messages: int, in_flight: int) -> Tuple[float, str]:
    """`alipay-msg bench --adapter tokio`: its throughput line."""
    done = subprocess.run(
        [str(binary), "bench", "--adapter", "tokio", "--backend", "ring", "--messages", str(messages),
         "--in-flight", str(in_flight), "--runs", "1", "--crypto-secs", "1"],
        capture_output=True, text=True, timeout=LIMIT, check=True,
    )
    line = next(line for line in done.stdout.splitlines() if "adapter=tokio" in line)
    found = re.search(r"throughput=([0-9.]+)/s", line)
    if not found:
        raise SystemExit(f"no throughput in: {line}")
    return float(found.group(1)), line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bin", type=Path, default=None)
    # The child's side (hidden): the Python client.
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(client(args.endpoint, args.messages, args.in_flight))
        return
    binary = args.bin or default_binary()
    if not binary.exists():
        raise SystemExit(f"{binary} does not exist: cargo build --release --bin alipay-msg, or --bin")
    import alipay_msg

    print(f"throughput: {os.cpu_count()} cores, messages={args.messages} in_flight={args.in_flight} "
          f"runs={args.runs}, python {sys.version.split()[0]}, alipay_msg from {Path(alipay_msg.__file__).parent}")
    rates: Dict[str, List[float]] = {"python": [], "tokio": []}
    for run in range(args.runs):
        for name in ("python", "tokio"):
            rate, report = one_run(binary, name, args.messages, args.in_flight)
            rates[name].append(rate)
            cpu = report.get("cpu_ms")
            cpu_us = f"{cpu * 1000 / args.messages:.1f}" if cpu is not None else "n/a"
            rss = report.get("peak_rss_kb")
            rss_mb = f"{rss / 1024:.1f}" if rss is not None else "n/a"
            print(f"throughput: run={run + 1} client={name} {rate:.0f}/s "
                  f"client_cpu_us_per_msg={cpu_us} peak_rss_mb={rss_mb}")
    python = statistics.median(rates["python"])
    tokio = statistics.median(rates["tokio"])
    print(f"throughput: python-asyncio median={python:.0f}/s (min {min(rates['python']):.0f}, max {max(rates['python']):.0f})")
    print(f"throughput: rust-tokio median={tokio:.0f}/s (min {min(rates['tokio']):.0f}, max {max(rates['tokio']):.0f})")
    print(f"throughput: ratio python/tokio={python / tokio:.2f} (same simulator, same timing)")
    bench_rate, line = rust_bench(binary, args.messages, args.in_flight)
    print(f"throughput: alipay-msg bench: {line.removeprefix('bench: ')}")
    print(f"throughput: ratio python/tokio={python / bench_rate:.2f} (against alipay-msg bench's figure)")


async def client(endpoint: str, messages: int, in_flight: int) -> None:
    """The child: the asyncio client with a handler that only counts; shuts down (the
    last acks go out) once `messages` handlers returned, then reports itself."""
    import alipay_msg
    from alipay_msg.aio import Client, Message

    config = alipay_msg.Config(
        app_id=APP_ID,
        app_private_key=(KEYS / "app_private_pkcs1.pem").read_text(),
        alipay_public_key=(KEYS / "alipay_public.pem").read_text(),
        endpoint=endpoint,
        max_in_flight=in_flight,
        duplicate_capacity=max(100_000, messages),
    )
    handled = 0
    finished = asyncio.Event()

    async def handler(msg: Message) -> None:
        nonlocal handled
        handled += 1
        if handled == messages:
            finished.set()

    async with Client(config) as c:
        # CPU time from here on: the interpreter's start-up and imports are not the
        # client's cost per message.
        cpu_at_start = time.process_time()
        runner = asyncio.ensure_future(c.run(handler))
        await finished.wait()
    await runner
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "handled": handled,
        "cpu_ms": round((time.process_time() - cpu_at_start) * 1000),
        "peak_rss_kb": usage.ru_maxrss,
    }), flush=True)


if __name__ == "__main__":
    main()
