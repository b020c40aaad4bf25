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

ONE = {"items": [{"cake": "strawberry-shortcake", "quantity": 1}]}


async def flood(url: str, *, what: str, concurrency: int, seconds: float | None) -> Counter:
    statuses: Counter = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        (await client.get("/api/me/")).raise_for_status()
        token = client.cookies["csrftoken"]
        (await client.patch("/api/me/", json={"idempotency": True}, headers={"X-CSRFToken": token})).raise_for_status()
        print("ready", flush=True)
        deadline = time.monotonic() + (seconds or 0)

        async def lane():
            while True:
                headers = {"Idempotency-Key": str(uuid.uuid4()), "X-CSRFToken": token}
                if what == "tunnel":
                    headers["X-Bakery-Tunnel"] = "request-lost"
                try:
                    response = await client.post("/api/orders/", json=ONE, headers=headers)
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
        from tests.processes import ROOT

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
