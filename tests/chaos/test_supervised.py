"""Fault drills against `make demo`'s own supervisor: a part of a running demo is SIGKILLed while
shoppers order, and nothing but the supervisor brings it back (the test restarts nothing).

For each, the table (drills.RESULTS, artifacts/chaos.md) shows what the shoppers were answered
while it was away (codes and the slowest answer), how long until the terminal said it was back,
and the orders accepted, lost, duplicated and stranded (not notified or payment_failed within
RECOVERY_LIMIT_SECONDS of its return).
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import uuid
from collections import Counter

import httpx
import psycopg
import pytest

from bakery.engines import DATABASE_NAME
from tests.bakery.test_demo import STORY, Customer, Demo, demo_part_pid, serving_demo
from tests.chaos.drills import RECOVERY_LIMIT_SECONDS, RESULTS, DrillResult

pytestmark = [pytest.mark.worker, pytest.mark.chaos]

FINAL = ("notified", "payment_failed")


@pytest.fixture(scope="module")
def demo():
    # The shoppers order one after another for as long as a fault lasts: the throttles are off.
    with serving_demo("bakery-chaos-demo-", {"ORDER_THROTTLE_RATE": "off", "ORDER_BURST_RATE": "off"}) as running:
        yield running


class Shoppers:
    """Four customers ordering one after another, each intent retried with its key (honouring
    Retry-After) until it is taken; every attempt is kept as (start, seconds, status)."""

    def __init__(self, url: str, count: int = 4):
        self.customers = [Customer(url) for _ in range(count)]
        self.attempts: list[tuple[float, float, object]] = []
        self.taken: dict[tuple[str, str], int] = {}  # (customer, key) -> order id
        self.lock, self.stopping = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(c,), daemon=True) for c in self.customers]

    def run(self, customer: Customer) -> None:
        while not self.stopping.is_set():
            key, deadline = uuid.uuid4(), time.monotonic() + 120
            while time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    answer = customer.order(key, timeout=15)
                    status, wait = answer.status_code, float(answer.headers.get("Retry-After", 0.3))
                except httpx.HTTPError as error:
                    answer, status, wait = None, type(error).__name__, 0.5
                with self.lock:
                    self.attempts.append((started, time.monotonic() - started, status))
                if status == 201:
                    with self.lock:
                        self.taken[(customer.id, str(key))] = answer.json()["id"]
                    break
                time.sleep(wait)
            time.sleep(0.2)

    def start(self) -> Shoppers:
        for thread in self.threads:
            thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(150)


def demo_database(demo: Demo) -> psycopg.Connection:
    return psycopg.connect(host=str(demo.data / "postgres"), user="postgres", dbname=DATABASE_NAME, autocommit=True)


@pytest.mark.parametrize("part", ["PostgreSQL", "Redis", "The worker", "Beat", "The web"])
def test_a_part_of_the_demo_sigkilled_under_traffic_is_healed_by_the_supervisor_alone(demo, part):
    shoppers = Shoppers(demo.url).start()
    time.sleep(3)
    said_before = len(re.findall(rf"^  {STORY}{part} is back", demo.text(), re.M))
    os.kill(demo_part_pid(demo, part), signal.SIGKILL)
    killed_at = time.monotonic()
    demo.wait_for(rf"^  {STORY}{part} went away; starting it again$", timeout=30)
    deadline = killed_at + 120
    while len(re.findall(rf"^  {STORY}{part} is back", demo.text(), re.M)) == said_before:
        assert time.monotonic() < deadline, f"{part} was not back within 120 s:\n{demo.text()}"
        time.sleep(0.2)
    back_at = time.monotonic()
    healed = float(re.findall(rf"^  {STORY}{part} is back \((\d+) s\)", demo.text(), re.M)[-1])
    time.sleep(3)
    shoppers.stop()

    while_down = [(seconds, status) for started, seconds, status in shoppers.attempts
                  if killed_at <= started <= back_at]
    codes = Counter(str(status) for _, status in while_down)
    slowest = max((seconds for seconds, _ in while_down), default=0.0)
    ids = sorted(set(shoppers.taken.values()))
    with demo_database(demo) as database:
        deadline = back_at + RECOVERY_LIMIT_SECONDS
        while True:
            rows = dict(database.execute("SELECT id, status FROM orders_order WHERE id = ANY(%s)", [ids]).fetchall())
            waiting = [pk for pk in ids if rows.get(pk) not in FINAL]
            if not waiting or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        settled_after = time.monotonic() - back_at
        # Every intent's key is a fresh UUID: more than one order with it is a duplicate.
        per_key = database.execute(
            "SELECT count(*) FROM orders_order WHERE idempotency_key = ANY(%s::uuid[]) GROUP BY idempotency_key",
            [[key for _, key in shoppers.taken]]).fetchall()
    lost = [pk for pk in ids if pk not in rows]
    duplicated = sum(count - 1 for (count,) in per_key)
    answers = ", ".join(f"{code}×{n}" for code, n in sorted(codes.items()))
    result = DrillResult(f"make demo: {part} SIGKILLed under traffic, healed by the supervisor", len(ids),
                         len(lost), duplicated, len(waiting), round(settled_after, 1),
                         f"while away: {answers or 'no attempt'} (slowest {slowest:.2f} s); back after {healed:.0f} s")
    RESULTS.append(result)
    assert not lost and not duplicated and not waiting, result
    assert not any(str(status) == "500" for _, status in while_down), result
    assert slowest < 16, result  # never the pool's 10 s wait and a 500; a held request is cut at 15 s
