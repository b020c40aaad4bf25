"""One session flooding the bakery, as a learner's script would, from a process of its own.

``python -m tests.flood URL --what orders|tunnel --concurrency 100 [--seconds S]`` becomes one
customer, then keeps ``concurrency`` requests in flight from that one session: orders with new
keys, or ``request-lost`` tunnel holds. Without ``--seconds`` each lane sends one request (100 at
once); with it, lanes keep sending until the time is up. Prints one JSON line: the statuses.
Used by the tests (tests/bakery/test_room_guard.py) and the bench (tests/bench).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections import Counter

import httpx

from bakery.client import OrderClient
from tests.processes import ROOT


async def flood(url: str, *, what: str, concurrency: int, seconds: float | None) -> Counter:
    statuses: Counter = Counter()
    tunnel = {"X-Bakery-Tunnel": "request-lost"} if what == "tunnel" else None
    async with OrderClient(url, timeout=60, connections=concurrency) as client:
        await client.start()
        print("ready", flush=True)
        deadline = time.monotonic() + (seconds or 0)

        async def lane():
            while True:
                try:
                    response = await client.order(uuid.uuid4(), extra_headers=tunnel)
                    statuses[response.status_code] += 1
                except httpx.HTTPError as error:
                    statuses[type(error).__name__] += 1
                if seconds is None or time.monotonic() >= deadline:
                    return

        await asyncio.gather(*(lane() for _ in range(concurrency)))
    return statuses


class Flood:
    """The flooder as a child process: ``start()`` returns once its customer exists and it is sending."""

    def __init__(self, url: str, *, what: str, concurrency: int = 100, seconds: float | None = None):
        args = [sys.executable, "-m", "tests.flood", url, "--what", what, "--concurrency", str(concurrency)]
        self.args = args + (["--seconds", str(seconds)] if seconds else [])

    def start(self) -> Flood:
        self.process = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        ready = self.process.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"the flood did not start: {ready}{self.process.stderr.read()[-2000:]}")
        return self

    def join(self, timeout: float = 120) -> Counter:
        out, err = self.process.communicate(timeout=timeout)
        if self.process.returncode != 0:
            raise RuntimeError(f"the flood failed: {err[-2000:]}")
        counted = json.loads(out.strip().splitlines()[-1])
        return Counter({int(status) if status.isdigit() else status: n for status, n in counted.items()})


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.flood", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--what", choices=["orders", "tunnel"], default="orders")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    statuses = asyncio.run(flood(args.url, what=args.what, concurrency=args.concurrency, seconds=args.seconds))
    print(json.dumps({str(status): count for status, count in statuses.items()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
