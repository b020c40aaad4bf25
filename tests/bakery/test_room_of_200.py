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
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from bakery.demo import WORKER_CONCURRENCY
from bakery.models import TunnelHold
from tests.bakery.test_room_guard import customer_session, order_request
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


def sent(send) -> httpx.Response:
    with httpx.Client(timeout=30) as client:
        return send(client)


def threads_of(pid: int) -> int:
    return int(next(line.split()[1] for line in open(f"/proc/{pid}/status") if line.startswith("Threads:")))


@pytest.mark.django_db(transaction=True)
def test_a_hundred_held_answers_cost_no_thread_and_no_connection(cake):
    """A hundred learners' requests held in the tunnel at once on one web process of the demo's web
    tier: the process has no more threads than it had idle, PostgreSQL has no connection of it busy,
    and the holds are really there, one row each, until every answer has come out."""
    from django.db import connection

    server = BakeryServer({"TUNNEL_HOLD_SECONDS": "8"}, workers=1).start()
    try:
        learners = [customer_session(server.url) for _ in range(100)]
        [web_process] = psutil.Process(server.process.pid).children()
        idle_threads = threads_of(web_process.pid)
        with ThreadPoolExecutor(100) as room:
            answers = [room.submit(sent, order_request(server.url, cookies, token, tunnel="request-lost"))
                       for cookies, token, _ in learners]
            deadline = time.monotonic() + 6
            while TunnelHold.objects.count() < 100 and time.monotonic() < deadline:
                time.sleep(0.1)
            held = TunnelHold.objects.count()
            time.sleep(2)  # Django is done with every one of them; their answers are still held (8 s)
            threads_while_held = threads_of(web_process.pid)
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND state <> 'idle' AND pid <> pg_backend_pid()")
                [busy_connections] = cursor.fetchone()
            statuses = [answer.result().status_code for answer in answers]
    finally:
        server.stop()
    assert held == 100, "every request was held at once"
    # One thread per hold would be a hundred more; a few are Django's, for requests just finished.
    assert threads_while_held < idle_threads + 20, (idle_threads, threads_while_held)
    assert busy_connections == 0
    assert statuses == [504] * 100  # lost in the tunnel: the bakery never saw the order
    assert not TunnelHold.objects.exists(), "every hold was released"


def client_backends() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
        return int(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_a_web_process_opens_its_warm_connections_before_the_room_arrives():
    """A pool grows one connection at a time, each waiting its turn for a busy process: a cold demo met
    by a room of 200 kept requests waiting up to 2.7 s for a connection. A web process opens
    DATABASE_POOL_WARM of them as it starts, with nobody asking yet, and keeps them."""
    before = client_backends()
    server = BakeryServer({"DATABASE_POOL_WARM": "24"}, workers=1).start()
    try:
        deadline = time.monotonic() + 20
        while client_backends() - before < 24 and time.monotonic() < deadline:
            time.sleep(0.2)
        opened = client_backends() - before
        time.sleep(2)
        kept = client_backends() - before
    finally:
        server.stop()
    # (the server's readiness check may have opened one of its own before the warm-up began)
    assert 24 <= opened <= 25 and kept == opened, (opened, kept)
