"""What already held when the room was tried, kept true: text a learner sends is escaped wherever it is
shown, one customer never reaches another's bakery, and every session write needs the CSRF token."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from orders.models import Customer, Event, Order
from payments import services
from tests.clients import BakeryClient

ATTACK = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def instant_tunnel(settings):
    settings.TUNNEL_HOLD_SECONDS = 0


@pytest.mark.django_db(transaction=True, databases=["default", "provider"])
def test_a_note_a_slug_and_a_key_carrying_html_are_escaped_everywhere(customer_client, cake, instant_tunnel):
    placed = customer_client.order(uuid.uuid4(), body={"items": [{"cake": cake.slug, "quantity": 1}], "note": ATTACK})
    assert placed.status_code == 201
    customer_client.order(uuid.uuid4(), body={"items": [{"cake": ATTACK, "quantity": 1}]})  # rejected, on the timeline
    customer_client.order(ATTACK, headers={"X-Bakery-Tunnel": "request-lost"})  # a key that is no UUID
    assert Event.objects.filter(kind=Event.Kind.LOST_REQUEST).exists()
    services.payment_capture(order_id=placed.json()["id"])
    services.invoice_issue(order_id=placed.json()["id"])

    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("facilitator", "f@example.com", uuid.uuid4().hex))
    pages = {
        "cake page": customer_client.get("/cakes/strawberry-shortcake/"),
        "kitchen": customer_client.get("/kitchen/"),
        "timeline": customer_client.get("/timeline/"),
        "timeline partial": customer_client.get("/timeline/", headers={"HX-Request": "true"}),
        "invoice": customer_client.get("/invoices/INV-000001/"),
        "workshop": staff.get("/workshop/"),
        "admin orders": staff.get("/admin/orders/order/"),
        "admin order": staff.get(f"/admin/orders/order/{placed.json()['id']}/change/"),
        "admin events": staff.get("/admin/orders/event/"),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        html = response.content.decode()
        assert "<script>alert" not in html and "<img src=x" not in html, name
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in pages["timeline"].content.decode()
    assert "&lt;script&gt;" in pages["invoice"].content.decode()


@pytest.mark.django_db(transaction=True, databases=["default", "provider"])
def test_another_customers_orders_invoices_timeline_and_reset_are_out_of_reach(cake):
    owner, stranger = BakeryClient(), BakeryClient()
    owner.start()
    stranger.start()
    key = uuid.uuid4()
    order = owner.order(key).json()
    services.payment_capture(order_id=order["id"])
    services.invoice_issue(order_id=order["id"])

    assert stranger.get(f"/api/orders/{order['id']}/").status_code == 404
    assert stranger.get("/api/orders/").json() == []
    assert stranger.get("/invoices/INV-000001/").status_code == 404
    assert str(key) not in stranger.get("/timeline/").content.decode()
    assert stranger.get("/kitchen/").context["counts"].cakes == 0
    # The same key from the stranger is their own new order, never the owner's answer replayed.
    theirs = stranger.order(key)
    assert theirs.status_code == 201 and theirs.json()["id"] != order["id"]
    stranger.post("/reset/", {"csrfmiddlewaretoken": stranger.cookies["csrftoken"].value})
    assert Order.objects.filter(customer_id=owner.customer_id).count() == 1
    assert owner.get(f"/api/orders/{order['id']}/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("write", ["order", "switch", "reset", "tunnel", "workshop reset", "admin logout"])
def test_every_session_write_needs_the_csrf_token(cake, write):
    browser = BakeryClient()
    browser.start()
    staff = get_user_model().objects.create_user("facilitator", password=uuid.uuid4().hex, is_staff=True)
    browser.force_login(staff)
    browser.order(uuid.uuid4())
    orders_before = Order.objects.count()
    requests = {
        "order": lambda: browser.post("/api/orders/", {"items": [{"cake": cake.slug, "quantity": 1}]}, format="json",
                                      headers={"Idempotency-Key": str(uuid.uuid4())}),
        "switch": lambda: browser.patch("/api/me/", {"idempotency": False}, format="json"),
        "reset": lambda: browser.post("/reset/"),
        "tunnel": lambda: browser.post("/api/orders/", {"items": []}, format="json",
                                       headers={"X-Bakery-Tunnel": "response-lost"}),
        "workshop reset": lambda: browser.post("/workshop/reset/"),
        "admin logout": lambda: browser.post("/admin/logout/"),
    }
    assert requests[write]().status_code == 403
    assert Order.objects.count() == orders_before
    assert Customer.objects.get(pk=browser.customer_id).idempotency_enabled is True
    assert browser.get("/workshop/").status_code == 200, "still logged in"
