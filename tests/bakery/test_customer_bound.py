"""Customers are not free: a cake page makes none, and one address makes at most CUSTOMER_CREATION_RATE
of them, so a script cannot multiply its order throttles, tunnel holds and back-office work by minting
customers. The concurrency claim runs against the real web tier and a real worker."""

from __future__ import annotations

import random
import time
import uuid

import httpx
import pytest
import redis
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.test import Client

from orders.customers import label_for
from orders.models import Customer, Order
from tests.flood import Flood
from tests.servers import BakeryServer, RedisServer
from tests.waiting import clear_of_a_window_edge

ONE = {"items": [{"cake": "strawberry-shortcake", "quantity": 1}]}


def fresh_address() -> str:
    return f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"  # a counter of its own per run


def visitor(address: str) -> Client:
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=address)
    client.get("/api/me/")
    return client


def first_order(client: Client, **headers):
    return client.post("/api/orders/", ONE, content_type="application/json",
                       headers={"Idempotency-Key": str(uuid.uuid4()), "X-CSRFToken": client.cookies["csrftoken"].value,
                                **headers})


@pytest.mark.django_db
def test_a_cake_page_shows_the_visitors_scope_and_makes_no_customer(cake):
    browser = Client()
    page = browser.get("/cakes/strawberry-shortcake/")
    assert page.status_code == 200
    scope = uuid.UUID(browser.get("/api/me/").json()["customer"])  # the scope the page handed out
    assert page.context["customer"].pk == scope and page.context["customer"].label == label_for(scope)
    assert b'id="idempotency" checked' in page.content
    assert page.context["counts"].cakes == 0 and page.context["intents"] == []
    for _ in range(5):
        assert Client().get("/cakes/strawberry-shortcake/").status_code == 200
    assert not Customer.objects.exists() and not Session.objects.exists()


@pytest.mark.django_db
def test_one_address_makes_at_most_the_rate_of_new_customers_then_429_and_nothing_made(cake, settings):
    settings.CUSTOMER_CREATION_RATE = "3/min"
    clear_of_a_window_edge()
    address = fresh_address()
    # a made-up proxy header does not make a script someone else
    visitors = [visitor(address) for _ in range(4)]
    answers = [first_order(one, **{"X-Forwarded-For": f"203.0.113.{n}"}) for n, one in enumerate(visitors, 1)]
    assert [answer.status_code for answer in answers] == [201, 201, 201, 429]
    refused = answers[-1]
    assert refused["Content-Type"] == "application/problem+json"
    assert refused.json()["code"] == "too-many-requests"
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert Customer.objects.count() == 3 and Order.objects.count() == 3

    switch = visitor(address)
    refused_switch = switch.patch("/api/me/", {"idempotency": False}, content_type="application/json",
                                  headers={"X-CSRFToken": switch.cookies["csrftoken"].value})
    assert refused_switch.status_code == 429 and refused_switch.json()["code"] == "too-many-requests"
    tunnel = first_order(visitor(address), **{"X-Bakery-Tunnel": "request-lost"})
    assert tunnel.status_code == 429 and tunnel.json()["code"] == "too-many-requests"
    compare = Client(REMOTE_ADDR=address).get("/cakes/strawberry-shortcake/compare/")
    assert compare.status_code == 429 and "Retry-After" in compare
    assert Customer.objects.count() == 3 and Order.objects.count() == 3

    assert first_order(visitor(fresh_address())).status_code == 201, "another address is not counted with it"
    assert first_order(visitors[0]).status_code == 201, "a customer already made keeps ordering from there"
    assert Customer.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_a_script_minting_customers_from_one_address_leaves_another_address_its_order(cake, celery_worker):
    """A learner's script on another laptop (127.0.0.2 to the bakery) keeps 50 new visitors becoming
    customers (their switch flipped) for 6 s. It gets at most CUSTOMER_CREATION_RATE customers; a
    learner on 127.0.0.1, who opens the shop in the middle of it, has its order answered within a
    second and notified within a few."""
    cache = redis.Redis.from_url(django_settings.REDIS_URL)
    cache.delete(*cache.keys("*customers-made-127.0.0.2-*") or ["none"])  # an earlier run's count
    server = BakeryServer({"CUSTOMER_CREATION_RATE": "120/min"}, workers=2).start()
    try:
        began = time.time()
        flood = Flood(server.url, what="customers", concurrency=50, seconds=6, local_address="127.0.0.2").start()
        time.sleep(2)  # in full swing
        key = str(uuid.uuid4())
        with httpx.Client(base_url=server.url, timeout=30,
                          transport=httpx.HTTPTransport(local_address="127.0.0.1")) as learner:
            learner.get("/api/me/")
            started = time.monotonic()
            placed = learner.post("/api/orders/", json=ONE,
                                  headers={"Idempotency-Key": key, "X-CSRFToken": learner.cookies["csrftoken"]})
            answered = time.monotonic() - started
        deadline = time.monotonic() + 10
        while not Order.objects.filter(idempotency_key=key, status=Order.Status.NOTIFIED).exists():
            assert time.monotonic() < deadline, "the other learner's order was not notified within 10 s"
            time.sleep(0.1)
        notified = time.monotonic() - started
        flooded = flood.join()
        minutes = int(time.time() // 60) - int(began // 60) + 1  # counted per minute: it may span two
    finally:
        server.stop()
    assert placed.status_code == 201, placed.text
    assert answered < 1.0, answered
    assert flooded["me-429"] > 100, f"the script did flood: {flooded}"
    made = Customer.objects.count() - 1
    assert flooded["me-200"] == made <= 120 * minutes, (flooded, made, minutes)
    print(f"answered in {answered:.3f} s, notified in {notified:.1f} s; flood {dict(flooded)}")


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_new_customers_are_made(cake, tmp_path):
    """The counters live in the cache; a bakery whose Redis is gone still lets every visitor in."""
    redis_server = RedisServer(tmp_path).start()
    server = BakeryServer({"REDIS_URL": redis_server.url, "CUSTOMER_CREATION_RATE": "2/min"}).start()

    def become_a_customer() -> int:  # from a laptop in the room: the bakery's own machine is not counted
        with httpx.Client(base_url=server.url, timeout=30,
                          transport=httpx.HTTPTransport(local_address="127.0.0.3")) as newcomer:
            newcomer.get("/api/me/")
            return newcomer.patch("/api/me/", json={"idempotency": True},
                                  headers={"X-CSRFToken": newcomer.cookies["csrftoken"]}).status_code

    try:
        clear_of_a_window_edge()
        assert [become_a_customer() for _ in range(3)] == [200, 200, 429], "with Redis the bound counts"
        redis_server.stop()
        assert [become_a_customer() for _ in range(3)] == [200] * 3
    finally:
        server.stop()
        redis_server.stop()
    assert Customer.objects.count() == 5


@pytest.mark.django_db
def test_the_bakerys_own_machine_makes_a_room_of_learners_unbounded(cake, settings):
    """The facilitator's tunnel CLI runs beside `make demo` and makes a learner per participant."""
    settings.CUSTOMER_CREATION_RATE = "3/min"
    placed = [first_order(visitor("127.0.0.1")).status_code for _ in range(6)]
    assert placed == [201] * 6 and Customer.objects.count() == 6
    elsewhere = [first_order(visitor(fresh_address())).status_code for _ in range(2)]
    assert elsewhere == [201, 201]  # each from its own address: one customer each
