"""Slow clients, as a script would be one, from a process of its own: half-sent requests kept open.

``python -m tests.bench.halves URL --heads 100 --bodies 100 --seconds S [--local-address 127.0.0.2]``
opens ``heads`` connections that send a request line and half a header, and ``bodies`` that send
whole headers and half of a 100-byte body, then wait. Whenever the server closes one, it opens
another in its place, so that many are open until the time is up. Prints ``ready`` once all are
open, then one JSON line: what the server did with them (``408``, ``closed`` without an answer,
another status) and how many were still open at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from collections import Counter

import httpx

from tests.processes import ROOT


def half_request(what: str, host: str) -> bytes:
    if what == "heads":
        return f"GET / HTTP/1.1\r\nHost: {host}\r\nX-Half: ".encode()
    return (f"POST /api/orders/ HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            'Content-Length: 100\r\n\r\n{"items": ').encode()


async def hold(url: str, *, heads: int, bodies: int, seconds: float, local_address: str | None) -> Counter:
    address = httpx.URL(url)
    loop = asyncio.get_running_loop()
    counted: Counter = Counter()
    deadline = loop.time() + seconds
    opened, all_open = 0, asyncio.Event()

    async def lane(what: str) -> None:
        nonlocal opened
        request = half_request(what, f"{address.host}:{address.port}")
        while loop.time() < deadline:
            reader, writer = await asyncio.open_connection(
                address.host, address.port, local_addr=(local_address, 0) if local_address else None)
            writer.write(request)
            opened += 1
            if opened == heads + bodies:
                all_open.set()
            try:
                answer = await asyncio.wait_for(reader.read(), timeout=max(0.0, deadline - loop.time()))
            except TimeoutError:
                counted["open at the end"] += 1
                answer = None
            except ConnectionError:
                answer = b""
            writer.close()
            if answer is not None:
                counted[f"{what} " + (answer.split(b" ", 2)[1].decode() if answer else "closed")] += 1

    lanes = [asyncio.create_task(lane(what)) for what in ["heads"] * heads + ["bodies"] * bodies]
    await all_open.wait()
    print("ready", flush=True)
    await asyncio.gather(*lanes)
    return counted


class Halves:
    """The slow clients as a child process: ``start()`` returns once all of them are open."""

    def __init__(self, url: str, *, heads: int, bodies: int, seconds: float, local_address: str | None = None):
        self.args = [sys.executable, "-m", "tests.bench.halves", url, "--heads", str(heads), "--bodies",
                     str(bodies), "--seconds", str(seconds)] + (["--local-address", local_address]
                                                                  if local_address else [])

    def start(self) -> Halves:
        self.process = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        ready = self.process.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"the slow clients did not start: {ready}{self.process.stderr.read()[-2000:]}")
        return self

    def join(self, timeout: float = 120) -> Counter:
        out, err = self.process.communicate(timeout=timeout)
        if self.process.returncode != 0:
            raise RuntimeError(f"the slow clients failed: {err[-2000:]}")
        return Counter(json.loads(out.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.halves", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--heads", type=int, default=100)
    parser.add_argument("--bodies", type=int, default=100)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--local-address", default=None)
    args = parser.parse_args()
    counted = asyncio.run(hold(args.url, heads=args.heads, bodies=args.bodies, seconds=args.seconds,
                               local_address=args.local_address))
    print(json.dumps(counted), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
