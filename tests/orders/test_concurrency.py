"""Concurrency claims proved with real concurrency: threads, separate connections, the same key at once."""

import threading
import uuid
from collections import Counter

import httpx
import pytest
from django.db import connections
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from orders.models import Customer, Order
from tests.clients import BakeryClient, fire_at_once
from tests.servers import BakeryServer

ONE = {"items": [{"cake": "strawberry-shortcake", "quantity": 1}]}


@pytest.mark.django_db(transaction=True)
def test_32_simultaneous_requests_with_one_key_make_one_order(cake):
    """32 threads, each with its own HTTP connection, fire the same key at the same instant at
    gunicorn with 3 worker processes (so separate database connections). Exactly one order;
    every answer is the 201, a replay of it byte for byte, or a 409 with Retry-After."""
    # One customer firing 32 at once is exactly what the burst throttle refuses; here it is off so
    # that every request reaches the idempotency layer.
    server = BakeryServer({"IDEMPOTENCY_WAIT_SECONDS": "5", "ORDER_BURST_RATE": "off"}).start()
    try:
        answers = _fire_32(server.url)
    finally:
        server.stop()

    assert len(answers) == 32
    assert Order.objects.count() == 1
    created = [r for r in answers if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
    replays = [r for r in answers if r.status_code == 201 and r.headers.get("Idempotent-Replayed") == "true"]
    conflicts = [r for r in answers if r.status_code == 409]
    assert len(created) == 1
    assert len(created) + len(replays) + len(conflicts) == 32
    assert replays, "with a 5 s wait, retries racing the first request get its answer"
    assert all(r.content == created[0].content for r in replays)
    assert all(r.headers.get("Retry-After") for r in conflicts)


def _fire_32(url):
    setup = httpx.Client(base_url=url)
    setup.get("/api/me/")
    setup.patch("/api/me/", json={"idempotency": True}, headers={"X-CSRFToken": setup.cookies["csrftoken"]})
    cookies, token, key = dict(setup.cookies), setup.cookies["csrftoken"], str(uuid.uuid4())

    def send(client):
        client.cookies.update(cookies)
        return client.post(f"{url}/api/orders/", json=ONE, headers={"Idempotency-Key": key, "X-CSRFToken": token})

    return [response for _, response in fire_at_once(32, send)]


# --- A property: whatever the interleaving, at most one order per (customer, key) ---------------

requests_strategy = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 2), st.integers(1, 2)),  # customer, key, quantity
    min_size=2, max_size=10,
)


@pytest.mark.django_db(transaction=True)
@hypothesis_settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(requests_strategy, min_size=1, max_size=3))
def test_any_interleaving_of_repeats_makes_at_most_one_order_per_customer_key(cake, settings, batches):
    settings.ORDER_BURST_RATE = "off"  # up to ten racing requests from one customer: all must reach the layer
    Order.objects.all().delete()
    customers = [BakeryClient(), BakeryClient()]
    for customer in customers:
        customer.start()
    keys = [uuid.uuid4() for _ in range(3)]
    statuses = Counter()

    for batch in batches:  # the requests of one batch race each other on separate connections
        barrier = threading.Barrier(len(batch))

        def send(customer_index, key_index, quantity, barrier=barrier):
            barrier.wait()
            body = {"items": [{"cake": "strawberry-shortcake", "quantity": quantity}]}
            response = customers[customer_index].order(keys[key_index], body=body)
            statuses[response.status_code] += 1
            connections.close_all()

        threads = [threading.Thread(target=send, args=request) for request in batch]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    per_pair = Counter(Order.objects.values_list("customer_id", "idempotency_key"))
    assert all(count == 1 for count in per_pair.values())
    sent_pairs = {(customers[c].customer_id, str(keys[k])) for batch in batches for c, k, _ in batch}
    assert {(str(c), str(k)) for c, k in per_pair} == sent_pairs  # every pair got its one order
    assert set(statuses) <= {201, 409, 422}
    assert Customer.objects.count() >= 2
