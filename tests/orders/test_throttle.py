"""Orders are throttled per customer: 429 problem+json with Retry-After, and nobody else is slowed."""

from __future__ import annotations

import random
import uuid

import httpx
import pytest
from django.test import Client

from orders.models import Customer, IdempotencyRecord, Order
from tests.clients import BakeryClient
from tests.servers import BakeryServer, RedisServer
from tests.waiting import clear_of_a_window_edge

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_a_minute(settings):
    settings.ORDER_THROTTLE_RATE = "3/min"
    clear_of_a_window_edge()


def test_the_fourth_order_in_a_minute_is_a_429_with_retry_after_and_creates_nothing(customer_client, cake,
                                                                                    three_a_minute):
    assert [customer_client.order(uuid.uuid4()).status_code for _ in range(3)] == [201, 201, 201]
    refused = customer_client.order(uuid.uuid4())
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/too-many-requests")
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert Order.objects.count() == 3 and IdempotencyRecord.objects.count() == 3

    neighbour = BakeryClient()
    neighbour.start()
    assert neighbour.order(uuid.uuid4()).status_code == 201, "one customer's throttle is theirs alone"


def test_retries_count_too_so_a_replay_flood_is_throttled(customer_client, cake, three_a_minute):
    key = uuid.uuid4()
    answers = [customer_client.order(key) for _ in range(4)]
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    assert Order.objects.count() == 1


def test_reads_are_not_throttled(customer_client, cake, three_a_minute):
    assert all(customer_client.get("/api/orders/").status_code == 200 for _ in range(6))


def test_a_script_dropping_its_session_each_time_meets_the_bound_on_new_customers(cake, three_a_minute, settings):
    """Each fresh cookie is a new customer, and one address makes at most CUSTOMER_CREATION_RATE of them,
    so dropping the cookie does not multiply the order throttle."""
    settings.CUSTOMER_CREATION_RATE = "3/min"
    address = f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"  # a fresh address per run
    statuses = []
    for _ in range(4):
        script = Client(enforce_csrf_checks=True, REMOTE_ADDR=address)  # no session: a new visitor each time
        script.get("/api/me/")
        statuses.append(script.post("/api/orders/", {"items": [{"cake": "strawberry-shortcake", "quantity": 1}]},
                                    content_type="application/json",
                                    headers={"Idempotency-Key": str(uuid.uuid4()),
                                             "X-CSRFToken": script.cookies["csrftoken"].value,
                                             # a made-up proxy header does not make it someone else
                                             "X-Forwarded-For": f"203.0.113.{random.randrange(1, 255)}"},
                                    ).status_code)
    assert statuses == [201, 201, 201, 429]
    assert Customer.objects.count() == 3


def test_phones_behind_one_wifi_whose_first_answer_was_lost_are_throttled_each_on_their_own(cake, three_a_minute):
    """A room behind one address: each phone's first order is taken but its answer (and so the cookie
    that says it is a customer now) never arrives. Its retries still count as its own, not as the
    address's, so five phones retrying three times each all get their order back."""
    address = f"198.18.{random.randrange(256)}.{random.randrange(1, 255)}"
    body = {"items": [{"cake": "strawberry-shortcake", "quantity": 1}]}
    phones = []
    for _ in range(5):
        phone = Client(enforce_csrf_checks=True, REMOTE_ADDR=address)
        phone.get("/api/me/")
        phones.append((phone, phone.cookies["bakery_customer"].value, uuid.uuid4()))
    answers = []
    for _ in range(3):
        for phone, visitor_cookie, key in phones:
            phone.cookies["bakery_customer"] = visitor_cookie  # every answer lost: the cookie stays a visitor's
            answers.append(phone.post("/api/orders/", body, content_type="application/json",
                                      headers={"Idempotency-Key": str(key),
                                               "X-CSRFToken": phone.cookies["csrftoken"].value}))
    assert [answer.status_code for answer in answers] == [201] * 15
    assert sum(answer.headers.get("Idempotent-Replayed") == "true" for answer in answers) == 10
    assert Order.objects.count() == 5 and Customer.objects.count() == 5

    phone, visitor_cookie, key = phones[0]
    phone.cookies["bakery_customer"] = visitor_cookie
    fourth = phone.post("/api/orders/", body, content_type="application/json",
                        headers={"Idempotency-Key": str(key), "X-CSRFToken": phone.cookies["csrftoken"].value})
    assert fourth.status_code == 429, "each phone still has its own throttle"


def test_the_throttle_can_be_turned_off(customer_client, cake, settings):
    settings.ORDER_THROTTLE_RATE = "off"
    assert all(customer_client.order(uuid.uuid4()).status_code == 201 for _ in range(5))


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_the_throttle_lets_orders_through(cake, tmp_path):
    """The counters live in the cache; a bakery whose Redis is gone still takes every order."""
    redis_server = RedisServer(tmp_path).start()
    server = BakeryServer({"REDIS_URL": redis_server.url, "ORDER_THROTTLE_RATE": "3/min"}).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as customer:
            customer.get("/api/me/")
            token = {"X-CSRFToken": customer.cookies["csrftoken"]}
            customer.patch("/api/me/", json={"idempotency": True}, headers=token).raise_for_status()

            def order() -> int:
                return customer.post("/api/orders/", json={"items": [{"cake": "strawberry-shortcake", "quantity": 1}]},
                                     headers={**token, "Idempotency-Key": str(uuid.uuid4())}).status_code

            clear_of_a_window_edge()
            assert [order() for _ in range(4)] == [201, 201, 201, 429], "with Redis the throttle counts"
            redis_server.stop()
            assert [order() for _ in range(4)] == [201] * 4
    finally:
        server.stop()
        redis_server.stop()
    assert Order.objects.count() == 7
