"""PostgreSQL really stopped under a real gunicorn: every answer is a 503 at once, never a 500 or a
wait on the pool, and once it is back each retried key lands exactly once."""

from __future__ import annotations

import time
import uuid

import pytest

from orders.models import Order
from tests.chaos.drills import Intent, Shopper, embedded_engines_only, kill_postgres, revive_postgres
from tests.servers import BakeryServer

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "provider"])


@pytest.fixture
def server(cake):
    embedded_engines_only()
    running = BakeryServer(workers=2).start()
    yield running
    running.stop()


def test_while_postgresql_is_away_orders_and_pages_get_503_at_once_then_each_key_lands_once(server):
    shoppers = [Shopper(server.url) for _ in range(3)]
    intents = [Intent(uuid.uuid4()) for _ in shoppers]

    kill_postgres()
    answers, pages = [], []
    try:
        for _ in range(4):  # the same keys again and again, across both web processes
            for shopper, intent in zip(shoppers, intents, strict=True):
                started = time.monotonic()
                answers.append((shopper.attempt(intent.key), time.monotonic() - started))
        for path in ("/", "/cakes/strawberry-shortcake/", "/api/orders/"):
            started = time.monotonic()
            pages.append((path, shoppers[0].http.get(path), time.monotonic() - started))
    finally:
        revive_postgres()

    slowest = max(seconds for _, seconds in answers)
    assert [answer.status_code for answer, _ in answers] == [503] * len(answers)
    assert slowest < 2, f"an order waited {slowest:.1f} s for a database that was away"
    for answer, _ in answers:
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.json()["code"] == "database-unavailable"
        assert int(answer.headers["Retry-After"]) >= 1
    for path, page, seconds in pages:
        assert page.status_code == 503, path
        assert seconds < 2, path
        assert page.headers["Retry-After"]
        if path.startswith("/api/"):
            assert page.json()["code"] == "database-unavailable"
        else:
            assert "database is not answering" in page.text

    # Back: the same keys, retried as the phone does, each become one order.
    for shopper, intent in zip(shoppers, intents, strict=True):
        shopper.place(intent, give_up_at=time.monotonic() + 20)
        assert intent.accepted, intent.statuses
    keys = [intent.key for intent in intents]
    assert Order.objects.filter(idempotency_key__in=keys).count() == len(keys)
