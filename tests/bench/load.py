"""The load generator: a fixed number of requests, a bounded number in flight.

The shoppers are :class:`bakery.client.OrderClient` customers (cookie, CSRF token, idempotency
switch). Their timed requests go out through :class:`Wire`, one keep-alive HTTP/1.1 connection per
request in flight, as bytes built once per request: httpx spends 1 to 2 ms of CPU on a request,
as much as the server spends on a replay, and on two shared cores the figures would measure the
client. A wire spends about 0.3 to 0.6 ms, and every implementation gets the same one.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from bakery.client import OrderClient, is_replay, order_body, order_headers, percentile

ORDER_BODY = order_body()
OTHER_BODY = order_body(quantity=2)


@dataclass
class Result:
    """What one batch of requests gave: wall time, latencies (ms), and the answers by status."""

    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    replayed: int = 0
    bodies: list = field(default_factory=list)
    cpu: Counter = field(default_factory=Counter)  # CPU seconds by role: web, db, client

    def cpu_ms(self, role: str) -> float:
        """CPU milliseconds per request spent by ``role`` (``web``, ``db``, ``client``)."""
        return self.cpu[role] / self.count * 1000 if self.count and role in self.cpu else float("nan")

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.count / self.elapsed if self.elapsed else float("nan")

    @property
    def ok_throughput(self) -> float:
        """Answers in the 2xx range per second: a 409 or 423 is an answer, but no order and no replay."""
        ok = sum(count for status, count in self.statuses.items() if 200 <= status < 300)
        return ok / self.elapsed if self.elapsed else float("nan")

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)

    def merge(self, other: Result) -> Result:
        return Result(self.elapsed + other.elapsed, self.latencies + other.latencies,
                      self.statuses + other.statuses, self.replayed + other.replayed, self.bodies + other.bodies,
                      self.cpu + other.cpu)


async def shoppers(base_url: str, order_url: str, count: int, *, connections: int = 8, idempotency: bool = True,
                   login: bool = False) -> list[OrderClient]:
    """``count`` customers, each with its own session (and, when ``login``, its own user)."""
    made = [OrderClient(base_url, order_path=order_url, timeout=120, connections=connections) for _ in range(count)]
    await asyncio.gather(*(shopper.start(idempotency=idempotency, login_path="/bench/login/" if login else None)
                           for shopper in made))
    return made


@dataclass
class Answer:
    """What a wire got back: enough of an ``httpx.Response`` for the bench."""

    status_code: int
    headers: httpx.Headers
    content: bytes

    def json(self):
        return json.loads(self.content)


class Wire:
    """One keep-alive HTTP/1.1 connection to a server that sends any shopper's orders on it.

    A request carries the shopper's cookies and CSRF token as :func:`order_headers` writes them;
    a response is read by its Content-Length (Django always sends one). Cookies a response sets are
    not kept: the bench's shoppers are customers already, and an order changes none of them.
    """

    def __init__(self, base_url: str):
        address = httpx.URL(base_url)
        self.host, self.port = address.host, address.port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def order(self, shopper: OrderClient, key, body: dict | None = None) -> Answer:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        content = json.dumps(body or ORDER_BODY, separators=(",", ":")).encode()
        headers = {"Host": f"{self.host}:{self.port}", "Accept": "application/json",
                   "Content-Type": "application/json", "Content-Length": str(len(content)),
                   "Cookie": "; ".join(f"{name}={value}" for name, value in shopper.http.cookies.items()),
                   **order_headers(shopper.csrf_token, key)}
        head = f"POST {shopper.order_path} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers.items())
        self.writer.write(head.encode("latin-1") + b"\r\n" + content)
        status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        answer = httpx.Headers([line.split(": ", 1) for line in lines if line])
        if "content-length" not in answer:
            raise RuntimeError(f"{status_line}: the server sent no Content-Length")
        body_bytes = await self.reader.readexactly(int(answer["content-length"]))
        if answer.get("connection", "").lower() == "close":
            await self.close()
        return Answer(int(status_line.split(" ", 2)[1]), answer, body_bytes)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def drive(calls: list[tuple[OrderClient, uuid.UUID | None, dict]], concurrency: int,
                keep_bodies: bool = False, meter: Callable[[], dict[str, float]] | None = None) -> Result:
    """Send ``calls`` (shopper, key, body) with at most ``concurrency`` in flight; time each one.
    ``meter`` returns CPU seconds by role (e.g. the web server's and PostgreSQL's): what it and
    this process (the load generator) spent during the batch goes into ``Result.cpu``."""
    result = Result()
    before = (meter() if meter else {}), time.process_time()
    queue: asyncio.Queue = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)

    async def lane(wire: Wire):
        while True:
            try:
                shopper, key, body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return await wire.close()
            started = time.perf_counter()
            response = await wire.order(shopper, key, body)
            result.latencies.append((time.perf_counter() - started) * 1000)
            result.statuses[response.status_code] += 1
            result.replayed += is_replay(response.headers)
            if keep_bodies:
                result.bodies.append((key, response.status_code, response.content))

    base_url = str(calls[0][0].http.base_url) if calls else ""
    started = time.perf_counter()
    await asyncio.gather(*(lane(Wire(base_url)) for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    if meter:
        after = meter()
        result.cpu.update({role: after[role] - before[0][role] for role in after})
        result.cpu["client"] = time.process_time() - before[1]
    return result
