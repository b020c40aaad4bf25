"""One session flooding the bakery, as a learner's script would, from a process of its own.

``python -m tests.flood URL --what orders|tunnel --concurrency 100 [--seconds S]`` becomes one
customer, then keeps ``concurrency`` requests in flight from that one session: orders with new
keys, or ``request-lost`` tunnel holds. ``--what customers`` is a script that mints customers
instead: each lane drops its cookies, reads ``/api/me/`` for a new scope and becomes a customer by
flipping its switch (``PATCH /api/me/``, counted as ``me-<status>``), again and again: each one a
customer with order throttles and tunnel holds of its own.
Without ``--seconds`` each lane sends one request (100 at once); with it, lanes keep sending until
the time is up. ``--local-address`` binds its sockets to that address (e.g. ``127.0.0.2``), so the
bakery sees it as another client than the tests. Prints one JSON line: the statuses.
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

from bakery.client import CSRF_COOKIE, OrderClient, order_headers
from tests.processes import ROOT


async def flood(url: str, *, what: str, concurrency: int, seconds: float | None,
                local_address: str | None = None) -> Counter:
    if what == "customers":
        return await mint(url, concurrency=concurrency, seconds=seconds, local_address=local_address)
    statuses: Counter = Counter()
    tunnel = {"X-Bakery-Tunnel": "request-lost"} if what == "tunnel" else None
    async with OrderClient(url, timeout=60, connections=concurrency, local_address=local_address) as client:
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


async def mint(url: str, *, concurrency: int, seconds: float | None, local_address: str | None) -> Counter:
    statuses: Counter = Counter()
    deadline = time.monotonic() + (seconds or 0)

    async def lane():
        transport = httpx.AsyncHTTPTransport(local_address=local_address)
        async with httpx.AsyncClient(base_url=url, timeout=60, transport=transport) as client:
            while True:
                client.cookies.clear()  # a new visitor every time
                try:
                    await client.get("/api/me/")
                    minted = await client.patch("/api/me/", json={"idempotency": True},
                                                headers=order_headers(client.cookies.get(CSRF_COOKIE)))
                    statuses[f"me-{minted.status_code}"] += 1
                except httpx.HTTPError as error:
                    statuses[type(error).__name__] += 1
                if seconds is None or time.monotonic() >= deadline:
                    return

    print("ready", flush=True)
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return statuses


class Flood:
    """The flooder as a child process: ``start()`` returns once its customer exists and it is sending."""

    def __init__(self, url: str, *, what: str, concurrency: int = 100, seconds: float | None = None,
                 local_address: str | None = None):
        args = [sys.executable, "-m", "tests.flood", url, "--what", what, "--concurrency", str(concurrency)]
        self.args = (args + (["--seconds", str(seconds)] if seconds else [])
                     + (["--local-address", local_address] if local_address else []))

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
    parser.add_argument("--what", choices=["orders", "tunnel", "customers"], default="orders")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--local-address", default=None)
    args = parser.parse_args()
    statuses = asyncio.run(flood(args.url, what=args.what, concurrency=args.concurrency, seconds=args.seconds,
                                 local_address=args.local_address))
    print(json.dumps({str(status): count for status, count in statuses.items()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
