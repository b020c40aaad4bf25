"""(h) The room: 50 to 400 learners press at once (within the CLI's default --spread of 1.5 s) in the
default scene, against the default `make demo`.

The demo runs exactly as a facilitator starts it (``python -m bakery.demo``, no tuning, engines of
its own in a folder of its own); each room is ``manage.py tunnel --mode response-lost
--participants N --expect one`` (the tunnel for one attempt, idempotency on), and meanwhile another
customer, not in the tunnel, places a plain order every 1.5 s and its answers are timed. The
learners, the CLI, the other customer, the demo and its engines all share the machine's cores.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

from bakery.client import OrderClient, percentile
from tests.bench import stack
from tests.processes import ROOT

ROOM_SIZES = (50, 100, 200, 400)
QUICK_ROOM_SIZES = (50, 200)
# Under the product's ORDER_THROTTLE_RATE (60/min per customer), so the other customer is never refused.
OTHER_PACE_SECONDS = 1.5
# The demo's own variables, so that it starts its own engines exactly as `make demo` does.
NOT_INHERITED = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR",
                 "BAKERY_DATA_DIR", "LOG_LEVEL", "EMAIL_BACKEND", "DATABASE_POOL_SIZE")


def demo_environment(data_dir: Path) -> dict:
    env = {name: value for name, value in os.environ.items() if name not in NOT_INHERITED}
    return {**env, "BAKERY_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}


class Demo:
    """`python -m bakery.demo` on a free port with a data folder of its own; Ctrl-C (SIGINT) stops it."""

    def __init__(self, log_dir: Path):
        self.data_dir = Path(tempfile.mkdtemp(prefix="bench-room-"))
        self.port = stack.unused_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.env = demo_environment(self.data_dir)
        self.log_path = log_dir / "room-demo.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 240) -> Demo:
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "bakery.demo", "--port", str(self.port)],
                                            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while "What happens, one line each" not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"make demo did not start; see {self.log_path}")
            time.sleep(0.5)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class OtherCustomer(threading.Thread):
    """A customer outside the tunnel placing a plain order every 1.5 s until stopped; each answer timed."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.latencies: list[float] = []
        self.statuses: dict[int | str, int] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._orders())

    async def _orders(self) -> None:
        async with OrderClient(self.url) as client:
            await client.start()
            while not self.stopping.is_set():
                started = time.perf_counter()
                try:
                    status: int | str = (await client.order(uuid.uuid4())).status_code
                except httpx.HTTPError as error:
                    status = type(error).__name__
                self.latencies.append(time.perf_counter() - started)
                self.statuses[status] = self.statuses.get(status, 0) + 1
                await asyncio.sleep(max(0.0, OTHER_PACE_SECONDS - (time.perf_counter() - started)))

    def finish(self) -> dict:
        self.stopping.set()
        self.join(30)
        return {"orders": len(self.latencies), "statuses": self.statuses,
                "p50": percentile(self.latencies, 50), "max": max(self.latencies, default=float("nan"))}


SUMMARY = {
    "exact": r"per learner: (\d+)/\d+ as expected",
    "outside_attempts": r"timeouts outside the tunnel: (\d+) attempts",
    "outside_learners": r"timeouts outside the tunnel: \d+ attempts, (\d+) of",
    "last_sent": r"first attempts sent: .*?, the last ([\d.]+) s",
    "answer_p50": r"answer latency .*?p50 ([\d.]+) s",
    "answer_p99": r"answer latency .*?p99 ([\d.]+) s",
    "office_p50": r"to back office done: p50 ([\d.]+) s",
    "office_p99": r"to back office done: .*?p99 ([\d.]+) s",
    "wall": r"order requests in ([\d.]+) s",
}


def summary(output: str) -> dict:
    found = {}
    for name, pattern in SUMMARY.items():
        match = re.search(pattern, output)
        found[name] = float(match.group(1)) if match else None
    found["unknown"] = output.count("UNKNOWN")
    return found


def one_room(demo: Demo, participants: int, log_dir: Path, mode: str = "response-lost",
             idempotency: str = "on") -> dict:
    other = OtherCustomer(demo.url)
    other.start()
    time.sleep(1)  # the other customer is ordering before the room presses
    expect = "one" if idempotency == "on" else "many"
    finished = subprocess.run(
        [sys.executable, "manage.py", "tunnel", "--url", demo.url, "--mode", mode, "--idempotency", idempotency,
         "--participants", str(participants), "--expect", expect],
        cwd=ROOT, env=demo.env, capture_output=True, text=True, timeout=900)
    output = finished.stdout + finished.stderr
    (log_dir / f"room-{mode}-{idempotency}-{participants}.txt").write_text(output)
    return {"participants": participants, "mode": mode, "idempotency": idempotency,
            "status": finished.returncode, **summary(output), "other": other.finish()}


def rooms(log_dir: Path, sizes=ROOM_SIZES, log=print) -> list[dict]:
    demo = Demo(log_dir).start()
    results = []
    try:
        for participants in sizes:
            row = one_room(demo, participants, log_dir)
            results.append(row)
            log(f"(h) room of {participants}: {row['exact']} exact, timeouts outside the tunnel: "
                f"{row['outside_learners']} learners, answer p50 {row['answer_p50']} s p99 {row['answer_p99']} s, "
                f"other customer max {row['other']['max']:.2f} s {row['other']['statuses']}, exit {row['status']}")
    finally:
        demo.stop()
    return results


if __name__ == "__main__":  # python -m tests.bench.room [N ...]: the rooms alone, into artifacts/
    folder = ROOT / "artifacts" / "room"
    folder.mkdir(parents=True, exist_ok=True)
    chosen = tuple(int(n) for n in sys.argv[1:]) or ROOM_SIZES
    rooms(folder, chosen)
