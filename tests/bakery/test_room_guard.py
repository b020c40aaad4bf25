"""Nobody spoils the room: the tunnel is a guarded write, reads create no learners, and a flood from one
session leaves everybody else's order answered. The concurrency claims run against real gunicorn."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client

from bakery.client import tls_context
from bakery.models import TunnelHold
from bakery.workshop.selectors import learner_rows
from orders.customers import COOKIE
from orders.models import Customer, Event, Order
from tests.clients import fire_at_once
from tests.flood import Flood
from tests.servers import BakeryServer

ONE = {"items": [{"cake": "strawberry-shortcake", "quantity": 1}]}


# --- the tunnel is a write like any other --------------------------------------------------------


@pytest.mark.django_db
def test_the_tunnel_checks_csrf_before_it_holds_anything(customer_client, cake):
    response = customer_client.post("/api/orders/", ONE, format="json",
                                    headers={"Idempotency-Key": str(uuid.uuid4()), "X-Bakery-Tunnel": "request-lost"})
    assert response.status_code == 403
    assert response.json()["type"].endswith("/csrf-failed")
    assert not Event.objects.filter(kind=Event.Kind.LOST_REQUEST).exists()
    assert Customer.objects.get(pk=customer_client.customer_id).last_scenario == ""


@pytest.mark.django_db
def test_the_tunnel_is_for_customers_not_for_a_script_that_drops_its_customer_cookie(cake):
    script = Client(enforce_csrf_checks=True)
    script.get("/api/me/")
    del script.cookies[COOKIE]  # it keeps the CSRF token and throws the customer's scope away
    response = script.post("/api/orders/", ONE, content_type="application/json",
                           headers={"Idempotency-Key": str(uuid.uuid4()), "X-Bakery-Tunnel": "request-lost",
                                    "X-CSRFToken": script.cookies["csrftoken"].value})
    assert response.status_code == 400 and response.json()["code"] == "customer-missing"
    assert "GET /api/me/" in response.json()["detail"]
    assert Customer.objects.count() == 0 and not Event.objects.exists()


def customer_session(url: str) -> tuple[dict, str, str]:
    """A customer's cookies, CSRF token and id, as a browser that opened the shop has them."""
    with httpx.Client(base_url=url) as setup:
        setup.get("/api/me/")
        token = setup.cookies["csrftoken"]
        me = setup.patch("/api/me/", json={"idempotency": True}, headers={"X-CSRFToken": token})
        return dict(setup.cookies), token, me.raise_for_status().json()["customer"]


def order_request(url, cookies, token, *, tunnel: str | None = None, key: str | None = None):
    headers = {"Idempotency-Key": key or str(uuid.uuid4()), "X-CSRFToken": token}
    if tunnel:
        headers["X-Bakery-Tunnel"] = tunnel
    def send(client):
        client.cookies.update(cookies)
        return client.post(f"{url}/api/orders/", json=ONE, headers=headers)

    return send


@pytest.mark.django_db(transaction=True)
def test_one_customer_holds_at_most_three_requests_in_the_tunnel(cake):
    server = BakeryServer({"TUNNEL_HOLD_SECONDS": "4", "TUNNEL_MAX_HOLDS": "3"}).start()
    try:
        cookies, token, _ = customer_session(server.url)
        lost = order_request(server.url, cookies, token, tunnel="request-lost")
        held: list[httpx.Response] = []

        def hold():
            with httpx.Client(timeout=30) as client:
                held.append(lost(client))

        holders = []
        for _ in range(3):  # three attempts, one after another, each held in the tunnel
            holders.append(threading.Thread(target=hold))
            holders[-1].start()
            time.sleep(0.3)
        # While those three wait, nine more at the same instant: each refused at once.
        refused = fire_at_once(9, lost)
        assert held == [], "the refusals came before any hold ended"
        assert [response.status_code for _, response in refused] == [429] * 9
        assert all(r.json()["type"].endswith("/tunnel-full") and r.headers["Retry-After"] for _, r in refused)
        assert "3 requests held in the tunnel" in refused[0][1].json()["detail"]
        for thread in holders:
            thread.join(30)
        assert [response.status_code for response in held] == [504] * 3
        assert Event.objects.filter(kind=Event.Kind.LOST_REQUEST).count() == 3
        # The holds end with their requests: the next attempt goes into the tunnel again.
        with httpx.Client(timeout=30) as client:
            assert lost(client).status_code == 504
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_a_hold_costs_no_thread_so_a_room_of_holds_waits_side_by_side(cake):
    """200 holds of 15 s from 200 customers wait at once on the demo's web tier (2 processes; threads
    would allow a few dozen), though each phone gives up after 2 s; meanwhile another customer's order
    is answered within a second. The holds end when their time is up, and the same customers go
    straight back into the tunnel."""
    server = BakeryServer({"TUNNEL_HOLD_SECONDS": "15"}, workers=2).start()
    try:
        sessions = [customer_session(server.url) for _ in range(200)]
        sends = [order_request(server.url, cookies, token, tunnel="request-lost") for cookies, token, _ in sessions]

        def give_up_after_2_s(send):
            with httpx.Client(timeout=2, verify=tls_context()) as client:  # 200 clients: one TLS context
                try:
                    return send(client).status_code
                except httpx.TimeoutException:
                    return "gave up"

        results: list = []
        threads = [threading.Thread(target=lambda s=send: results.append(give_up_after_2_s(s))) for send in sends]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        deadline = started + 12
        while TunnelHold.objects.count() < 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert TunnelHold.objects.count() == 200, "all 200 held at once"
        cookies, token, _ = customer_session(server.url)
        with httpx.Client(timeout=30) as client:
            began = time.monotonic()
            assert order_request(server.url, cookies, token)(client).status_code == 201
            assert time.monotonic() - began < 1
        for thread in threads:
            thread.join(30)
        assert results == ["gave up"] * 200
        assert Event.objects.filter(kind=Event.Kind.LOST_REQUEST).count() == 200
        deadline = started + 25
        while TunnelHold.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not TunnelHold.objects.exists(), "the holds ended when their time was up"
        first_cookies, first_token, _ = sessions[0]
        with httpx.Client(timeout=1) as client, pytest.raises(httpx.TimeoutException):
            order_request(server.url, first_cookies, first_token, tunnel="request-lost")(client)  # held, not 429
    finally:
        server.stop()


# --- a visitor becomes a customer when it does something -------------------------------------------


READS = ["/", "/api/me/", "/kitchen/", "/timeline/", "/api/orders/", "/api/orders/1/", "/invoices/INV-000001/",
         "/docs/workshop/", "/api/problems/", "/kitchen/?hx=1", "/nope/"]


@pytest.mark.django_db
def test_a_flood_of_cookie_less_requests_creates_no_customer_and_no_learner(cake):
    for index in range(330):
        Client().get(READS[index % len(READS)])
    for _ in range(10):  # writes without a session and a token are refused before they create anything
        Client(enforce_csrf_checks=True).post("/api/orders/", ONE, content_type="application/json",
                                              headers={"Idempotency-Key": str(uuid.uuid4())})
        Client(enforce_csrf_checks=True).patch("/api/me/", {"idempotency": False}, content_type="application/json")
    assert Customer.objects.count() == 0
    assert Session.objects.count() == 0
    assert learner_rows() == []
    staff = Client()
    staff.force_login(get_user_model().objects.create_user("facilitator", password=uuid.uuid4().hex, is_staff=True))
    assert b"No learners yet" in staff.get("/workshop/").content


@pytest.mark.django_db
@pytest.mark.parametrize("first_write", ["order", "switch"])
def test_doing_something_makes_the_visitor_a_customer(cake, first_write):
    visitor = Client(enforce_csrf_checks=True)
    scope = visitor.get("/api/me/").json()["customer"]  # handed out before the first write, as no row
    assert not Customer.objects.exists()
    token = {"X-CSRFToken": visitor.cookies["csrftoken"].value}
    if first_write == "order":
        visitor.post("/api/orders/", ONE, content_type="application/json",
                     headers={**token, "Idempotency-Key": str(uuid.uuid4())})
    elif first_write == "switch":
        visitor.patch("/api/me/", {"idempotency": False}, content_type="application/json", headers=token)
    assert visitor.get("/api/me/").json()["customer"] == scope
    assert Customer.objects.filter(pk=scope).exists() and Customer.objects.count() == 1


# --- one session flooding leaves the others their bakery --------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("what", ["tunnel", "orders"])
def test_another_customer_is_answered_within_a_second_while_one_session_floods(cake, what):
    """A learner's script, from a process of its own: one session keeps 100 requests in flight for 4 s,
    each a tunnel hold or an order. Another learner's orders, sent in the middle of it, still get their
    201 within a second each (a generous bound: undisturbed they take milliseconds)."""
    server = BakeryServer(workers=2).start()  # the demo's web tier: 2 processes
    try:
        flood = Flood(server.url, what=what, concurrency=100, seconds=4).start()
        other_cookies, other_token, other_id = customer_session(server.url)
        time.sleep(1)  # the flood is in full swing
        answers = []
        with httpx.Client(timeout=30) as client:
            for _ in range(3):
                started = time.monotonic()
                response = order_request(server.url, other_cookies, other_token)(client)
                answers.append((response.status_code, round(time.monotonic() - started, 3)))
                time.sleep(0.3)
        flooded = flood.join()
    finally:
        server.stop()
    assert flooded[429] > 100, f"the flood did flood: {flooded}"
    assert [status for status, _ in answers] == [201, 201, 201], answers
    assert max(seconds for _, seconds in answers) < 1.0, answers
    assert Order.objects.filter(customer_id=other_id).count() == 3


# --- a chunked order body ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_chunked_order_body_is_read_and_a_chunked_giant_is_413(bakery_server, cake):
    cookies, token, _ = customer_session(bakery_server.url)

    def chunks(body: bytes, size: int = 7):
        yield from (body[i:i + size] for i in range(0, len(body), size))

    body = b'{"items": [{"cake": "strawberry-shortcake", "quantity": 2}], "note": "in pieces"}'
    headers = {"Idempotency-Key": str(uuid.uuid4()), "X-CSRFToken": token, "Content-Type": "application/json"}
    with httpx.Client(base_url=bakery_server.url, cookies=cookies, timeout=30) as client:
        placed = client.post("/api/orders/", content=chunks(body), headers=headers)
        assert placed.request.headers["Transfer-Encoding"] == "chunked"
        assert placed.status_code == 201, placed.text
        assert placed.json()["items"][0]["quantity"] == 2 and placed.json()["note"] == "in pieces"

        giant = b'{"items": [{"cake": "strawberry-shortcake", "quantity": 1}], "note": "' + b"x" * 70_000 + b'"}'
        refused = client.post("/api/orders/", content=chunks(giant, 4096),
                              headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
        assert refused.status_code == 413 and refused.json()["type"].endswith("/body-too-large")
    assert Order.objects.count() == 1
