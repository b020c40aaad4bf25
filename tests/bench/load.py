"""The load generator: asyncio + httpx, a fixed number of requests, a bounded number in flight."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

ORDER_BODY = {"items": [{"cake": "strawberry-shortcake", "quantity": 1}], "note": ""}
OTHER_BODY = {"items": [{"cake": "strawberry-shortcake", "quantity": 2}], "note": ""}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class Result:
    """What one batch of requests gave: wall time, latencies (ms), and the answers by status."""

    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)
    replayed: int = 0
    bodies: list = field(default_factory=list)

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
                      self.statuses + other.statuses, self.replayed + other.replayed, self.bodies + other.bodies)


class Shopper:
    """One customer: a cookie jar (session + csrftoken), like a browser."""

    def __init__(self, base_url: str, order_url: str, connections: int = 8):
        self.order_url = order_url
        self.client = httpx.AsyncClient(
            base_url=base_url, timeout=httpx.Timeout(120),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            headers={"Accept": "application/json"},
        )

    async def start(self, *, idempotency: bool = True, login: bool = False) -> Shopper:
        (await self.client.get("/api/me/")).raise_for_status()  # the csrftoken cookie
        if login:
            response = await self.client.post("/bench/login/", headers=self._csrf())
            response.raise_for_status()
        # The first write makes the session a customer.
        response = await self.client.patch("/api/me/", json={"idempotency": idempotency}, headers=self._csrf())
        response.raise_for_status()
        self.customer_id = response.json()["customer"]
        return self

    def _csrf(self) -> dict:
        return {"X-CSRFToken": self.client.cookies.get("csrftoken")}

    async def order(self, key: uuid.UUID | None, body: dict = ORDER_BODY, extra_headers: dict | None = None):
        headers = self._csrf()
        if key is not None:
            headers["Idempotency-Key"] = str(key)
        headers.update(extra_headers or {})
        return await self.client.post(self.order_url, json=body, headers=headers)

    async def close(self) -> None:
        await self.client.aclose()


async def shoppers(base_url: str, order_url: str, count: int, *, connections: int = 8, **start) -> list[Shopper]:
    made = [Shopper(base_url, order_url, connections) for _ in range(count)]
    await asyncio.gather(*(shopper.start(**start) for shopper in made))
    return made


async def drive(calls: list[tuple[Shopper, uuid.UUID | None, dict]], concurrency: int,
                keep_bodies: bool = False) -> Result:
    """Send ``calls`` (shopper, key, body) with at most ``concurrency`` in flight; time each one."""
    result = Result()
    queue: asyncio.Queue = asyncio.Queue()
    for call in calls:
        queue.put_nowait(call)

    async def lane():
        while True:
            try:
                shopper, key, body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            response = await shopper.order(key, body or ORDER_BODY)
            result.latencies.append((time.perf_counter() - started) * 1000)
            result.statuses[response.status_code] += 1
            result.replayed += response.headers.get("Idempotent-Replayed") == "true"
            if keep_bodies:
                result.bodies.append((key, response.status_code, response.content))

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result
