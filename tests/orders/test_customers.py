"""Who is ordering: a browser's customer lives in a signed cookie, which nobody can forge and which
recovers when its customer is gone; and a placed order answers with what GET shows."""

import uuid

import pytest
from django.db import connection

from orders.customers import COOKIE
from orders.idempotency import KeyRef, StoredResponse, run_once
from orders.models import Customer, Event, Order
from tests.clients import BakeryClient

pytestmark = pytest.mark.django_db


def test_a_cookie_edited_by_hand_is_a_stranger_not_the_customer_it_names(customer_client, cake):
    victim = customer_client.customer_id
    customer_client.order(uuid.uuid4())
    forger = BakeryClient()
    forger.start()
    # The value is readable ("<id>:on" before its timestamp and signature): put the victim's id in it.
    value = forger.cookies[COOKIE].value
    forger.cookies[COOKIE] = value.replace(value.split(":")[0], victim, 1)

    stranger = forger.get("/api/me/").json()["customer"]  # the signature no longer matches: a new scope
    assert stranger not in (victim, forger.customer_id)
    assert forger.get("/api/orders/").json() == []
    assert forger.order(uuid.uuid4()).status_code == 201  # its first write makes the scope a customer
    assert Order.objects.filter(customer_id=victim).count() == 1
    assert forger.get("/api/me/").json()["customer"] == stranger


def test_the_switch_travels_in_the_cookie_and_a_change_in_the_admin_reaches_it(customer_client, cake):
    csrf = {"X-CSRFToken": customer_client.cookies["csrftoken"].value}
    off = customer_client.patch("/api/me/", {"idempotency": False}, format="json", headers=csrf)
    assert off.json()["idempotency"] is False
    key = uuid.uuid4()
    assert "Idempotent-Replayed" not in customer_client.order(key)
    assert "Idempotent-Replayed" not in customer_client.order(key)  # off: the retry bakes again
    assert Order.objects.filter(idempotency_key=key).count() == 2

    Customer.objects.filter(pk=customer_client.customer_id).update(idempotency_enabled=True)  # the admin
    assert customer_client.get("/api/me/").json()["idempotency"] is True  # reading the customer syncs the cookie
    again = uuid.uuid4()
    customer_client.order(again)
    assert customer_client.order(again)["Idempotent-Replayed"] == "true"


@pytest.mark.django_db(transaction=True)
def test_a_cookie_whose_customer_is_gone_is_told_so_and_its_retry_orders_as_a_new_customer(customer_client, cake):
    key = uuid.uuid4()
    first = customer_client.order(key)
    assert first.status_code == 201
    Customer.objects.filter(pk=customer_client.customer_id).delete()  # the admin, or a database made afresh

    gone = customer_client.order(key)  # a retry from the browser that kept its cookie
    assert gone.status_code == 409 and gone.json()["code"] == "customer-gone", gone.content
    assert gone["Retry-After"] == "0"  # the client's own retry policy sends it again, with the same key
    assert not Customer.objects.exists() and not Order.objects.exists()  # nothing half-written

    again = customer_client.order(key)  # with the new cookie that answer set
    assert again.status_code == 201, again.content
    assert "Idempotent-Replayed" not in again  # a new customer: the key is theirs, unused
    successor = Customer.objects.get()
    assert Order.objects.get().customer_id == successor.pk
    assert customer_client.get("/api/me/").json()["customer"] == str(successor.pk)
    assert customer_client.order(key)["Idempotent-Replayed"] == "true"
    assert list(Event.objects.filter(source="api").values_list("kind", flat=True)) == ["new", "replay"]


def test_a_placed_order_answers_with_what_get_shows(customer_client, cake, other_cake):
    body = {"items": [{"cake": cake.slug, "quantity": 2}, {"cake": other_cake.slug, "quantity": 1}],
            "note": "Happy birthday"}
    placed = customer_client.order(uuid.uuid4(), body=body)
    assert placed.status_code == 201
    shown = customer_client.get(placed["Location"])
    assert placed.json() == shown.json()
    assert placed.json()["total"] == "64.50"


@pytest.mark.django_db(transaction=True)
def test_the_claims_short_wait_never_reaches_the_handlers_own_statements():
    def handler():
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('lock_timeout')")
            inside = cursor.fetchone()[0]
        return StoredResponse(200, inside.encode())

    outcome = run_once(KeyRef(scope="test.wait", owner="o", key=str(uuid.uuid4()), source="layer"), {}, handler,
                       wait_seconds=0.5)
    assert outcome.response.body == b"0"
