"""A room of 200 on the demo's own web tier: what a facilitator sees when everybody presses at once.

The web tier runs as `make demo` runs it (ASGI, 2 processes, its pool), with the product's own tunnel
timings (5 s holds, the phone's 2.5 s timeout) and a worker like the demo's (2 processes); the tunnel CLI
runs as a command of its own, as a facilitator runs it. Everything shares the machine's cores.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest

from bakery.demo import WORKER_CONCURRENCY
from bakery.models import TunnelHold
from tests.bakery.test_room_guard import customer_session
from tests.bakery.test_tunnel_cli import fulfilled_per_customer
from tests.processes import ARTIFACTS, ROOT
from tests.servers import BakeryServer, CeleryWorker, worker_environment

pytestmark = [pytest.mark.worker]


@pytest.mark.django_db(transaction=True)
def test_a_room_of_200_pressing_at_once_each_get_one_cake_and_another_customer_is_served(cake):
    """200 holds wait side by side without a thread each: every learner ends with exactly one cake, one
    charge and one invoice, and another customer's plain orders are all taken meanwhile. How long the
    answers took is measured by `make bench` (the room), not asserted here: the cores are shared."""
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    worker = CeleryWorker(name="room", concurrency=WORKER_CONCURRENCY).start()
    server = BakeryServer(workers=2).start()
    try:
        cookies, token, other_id = customer_session(server.url)
        other: list[tuple[int, float]] = []
        room_done = threading.Event()

        def other_customer():
            with httpx.Client(base_url=server.url, cookies=cookies, timeout=30) as client:
                while not room_done.is_set():
                    started = time.monotonic()
                    response = client.post("/api/orders/", json={"items": [{"cake": cake.slug, "quantity": 1}]},
                                           headers={"X-CSRFToken": token, "Idempotency-Key": str(uuid.uuid4())})
                    other.append((response.status_code, time.monotonic() - started))
                    time.sleep(1.5)  # a person's pace, under ORDER_THROTTLE_RATE

        lane = threading.Thread(target=other_customer)
        lane.start()
        try:
            finished = subprocess.run(
                [sys.executable, "manage.py", "tunnel", "--url", server.url + "/", "--mode", "response-lost",
                 "--idempotency", "on", "--participants", "200", "--expect", "one"],
                cwd=ROOT, env=worker_environment(), capture_output=True, text=True, timeout=400)
        finally:
            room_done.set()
            lane.join(30)
    finally:
        server.stop()
        worker.stop()
    output = finished.stdout + finished.stderr
    (ARTIFACTS / "tunnel-room-200.txt").write_text(output)
    assert finished.returncode == 0, output
    assert "200/200 as expected" in output
    assert other and {status for status, _ in other} == {201}, other
    counts = fulfilled_per_customer()
    assert counts.pop(other_id)[0] == len(other)  # the other customer: one cake per order it placed
    assert set(counts.values()) == {(1, 1, 1)} and len(counts) == 200
    assert not TunnelHold.objects.exists(), "every hold was released"
