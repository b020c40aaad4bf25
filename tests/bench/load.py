"""The load generator: a fixed number of requests, a bounded number in flight, through bakery.client."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from bakery.client import OrderClient, is_replay, order_body, percentile

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


async def shoppers(base_url: str, order_url: str, count: int, *, connections: int = 8, idempotency: bool = True,
                   login: bool = False) -> list[OrderClient]:
    """``count`` customers, each with its own session (and, when ``login``, its own user)."""
    made = [OrderClient(base_url, order_path=order_url, timeout=120, connections=connections) for _ in range(count)]
    await asyncio.gather(*(shopper.start(idempotency=idempotency, login_path="/bench/login/" if login else None)
                           for shopper in made))
    return made


async def drive(calls: list[tuple[OrderClient, uuid.UUID | None, dict]], concurrency: int,
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
            result.replayed += is_replay(response.headers)
            if keep_bodies:
                result.bodies.append((key, response.status_code, response.content))

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    result.elapsed = time.perf_counter() - started
    return result
