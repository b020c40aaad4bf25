"""The facilitator's dashboard: only staff get in, the counts match what learners did, resets work."""

from __future__ import annotations

import re
import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client
from django.utils import timezone

from bakery.network import lan_address
from bakery.workshop.selectors import learner_rows
from orders.events import Kind, record_event
from orders.models import Customer, Event, IdempotencyRecord, Order
from tests.clients import BakeryClient

DASHBOARD = "/workshop/"
PARTIAL = "/workshop/learners/"
ROOM_RESET = "/workshop/reset/"


def learner_reset_url(customer_id) -> str:
    return f"/workshop/learners/{customer_id}/reset/"


def staff_post(client: Client, url: str, **extra):
    return client.post(url, {"csrfmiddlewaretoken": client.cookies["csrftoken"].value}, **extra)


def learner(*, idempotency: bool = True) -> BakeryClient:
    client = BakeryClient()
    client.start()
    client.patch("/api/me/", {"idempotency": idempotency}, format="json",
                 headers={"X-CSRFToken": client.cookies["csrftoken"].value})
    return client


def row_of(html: str, customer_id: str) -> dict[str, int]:
    row = re.search(rf'<tr data-learner="{customer_id}".*?</tr>', html, re.S)
    assert row, f"learner {customer_id} is not on the dashboard"
    return {name: int(value) for name, value in re.findall(r'data-col="(\w+)">(\d+)<', row.group(0))}


def totals_of(html: str) -> dict[str, str]:
    return dict(re.findall(r'<dd data-total="([\w-]+)">([^<]*)</dd>', html))


# --- access control ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", [DASHBOARD, PARTIAL])
def test_anonymous_visitor_is_sent_to_the_admin_login(url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={url}"


@pytest.mark.django_db
def test_a_learner_cannot_see_the_dashboard_or_reset_anything(cake):
    snooper = learner()
    assert snooper.order(uuid.uuid4()).status_code == 201
    for url in (DASHBOARD, PARTIAL):
        response = snooper.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    token = snooper.cookies["csrftoken"].value  # a valid CSRF token is not a staff login
    for url in (ROOM_RESET, learner_reset_url(snooper.customer_id)):
        response = snooper.post(url, {"csrfmiddlewaretoken": token})
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_a_logged_in_user_who_is_not_staff_is_refused():
    user = get_user_model().objects.create_user("learner", password=uuid.uuid4().hex, is_staff=False)
    client = Client()
    client.force_login(user)
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_staff_login_through_the_admin_form_reaches_the_dashboard(staff_client, staff_password):
    client = Client()
    login = client.post("/admin/login/?next=/workshop/", {"username": "facilitator", "password": staff_password,
                                                          "next": "/workshop/"})
    assert login.status_code == 302 and login["Location"] == DASHBOARD
    page = client.get(DASHBOARD)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'hx-get="/workshop/learners/"' in html and 'hx-trigger="every 3s"' in html
    assert "js/htmx.min.js" in html
    assert "<svg" in html and 'class="segno"' in html  # the room's QR code, inline


@pytest.mark.django_db
def test_the_dashboard_does_not_make_the_facilitator_a_learner(staff_client):
    staff_client.get(DASHBOARD)
    staff_client.get(PARTIAL)
    assert Customer.objects.count() == 0


@pytest.mark.django_db
def test_resets_need_post_and_a_csrf_token(staff_client, cake):
    someone = learner()
    someone.order(uuid.uuid4())
    assert staff_client.get(ROOM_RESET).status_code == 405
    assert staff_client.post(ROOM_RESET).status_code == 403  # no token
    assert Order.objects.count() == 1


# --- counts ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_counts_match_a_known_scenario(cake, settings):
    """Three learners: one breaks it (switch off), one is saved by the key, one is idle."""
    settings.TUNNEL_SLOW_SECONDS = 1.0
    settings.IDEMPOTENCY_WAIT_SECONDS = 0.2
    settings.TUNNEL_HOLD_SECONDS = 0.1

    breaker = learner(idempotency=False)
    lost = uuid.uuid4()
    assert breaker.order(lost, headers={"X-Bakery-Tunnel": "response-lost"}).status_code == 201
    assert breaker.order(lost).status_code == 201  # the retry: a second cake
    assert breaker.order(lost).status_code == 201  # and a third
    assert breaker.order(uuid.uuid4()).status_code == 201  # a genuinely new order is no duplicate

    fixer = learner(idempotency=True)
    key = uuid.uuid4()
    assert fixer.order(key, headers={"X-Bakery-Tunnel": "response-lost"}).status_code == 201
    replay = fixer.order(key)
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    # The slow bakery: a retry arrives while the first attempt still holds the key.
    slow_key, answers = uuid.uuid4(), {}
    first = threading.Thread(target=lambda: (answers.setdefault(
        "first", fixer.order(slow_key, headers={"X-Bakery-Tunnel": "slow"}).status_code), connections.close_all()))
    first.start()
    # The middleware commits the scenario before the handler takes the key (and sleeps holding it).
    while Customer.objects.get(pk=fixer.customer_id).last_scenario != "slow":
        time.sleep(0.02)
    time.sleep(0.3)
    assert fixer.order(slow_key).status_code == 409
    first.join()
    assert answers["first"] == 201
    assert fixer.order(key, body={"items": [{"cake": cake.slug, "quantity": 2}]}).status_code == 422  # not counted
    fixer_order = Order.objects.filter(customer_id=fixer.customer_id).first()
    # A redelivered back-office task labels its event with the order only.
    record_event(source="payment", kind=Kind.DEDUPE, key=str(fixer_order.fulfilment_key), order=fixer_order)

    idle = learner()
    staff = get_user_model().objects.create_user("facilitator", password=uuid.uuid4().hex, is_staff=True)
    client = Client()
    client.force_login(staff)
    html = client.get(PARTIAL).content.decode()

    assert row_of(html, breaker.customer_id) == {
        "orders": 4, "cakes": 4, "duplicate_cakes": 2, "prevented": 0, "charges": 0, "invoices": 0}
    assert row_of(html, fixer.customer_id) == {
        "orders": 2, "cakes": 2, "duplicate_cakes": 0, "prevented": 3, "charges": 0, "invoices": 0}
    assert row_of(html, idle.customer_id) == {
        "orders": 0, "cakes": 0, "duplicate_cakes": 0, "prevented": 0, "charges": 0, "invoices": 0}
    assert totals_of(html) == {"learners": "3", "orders": "6", "cakes": "6", "duplicate_cakes": "2",
                               "prevented": "3", "charges-invoices": "0 · 0"}
    fixer_row = next(row for row in learner_rows() if row.customer_id == fixer.customer_id)
    assert (fixer_row.replays, fixer_row.conflicts, fixer_row.dedupes) == (1, 1, 1)
    assert fixer_row.last_scenario == "slow"
    assert "response-lost × 1" in html and "slow × 1" in html


@pytest.mark.django_db
def test_only_learners_active_recently_are_listed(staff_client):
    gone = learner()
    here = learner()
    Customer.objects.filter(pk=gone.customer_id).update(last_seen_at=timezone.now() - timedelta(hours=2))
    ids = {row.customer_id for row in learner_rows()}
    assert ids == {here.customer_id}
    # A timeline event makes a quiet customer active again.
    record_event(source="api", kind=Kind.ATTEMPT, customer_id=gone.customer_id)
    assert {row.customer_id for row in learner_rows()} == {here.customer_id, gone.customer_id}


# --- resets ------------------------------------------------------------------------------------


def _two_busy_learners(cake):
    first, second = learner(idempotency=False), learner()
    for client in (first, second):
        key = uuid.uuid4()
        client.order(key, headers={"X-Bakery-Tunnel": "response-lost"})
        client.order(key)
    return first, second


@pytest.mark.django_db
def test_reset_one_learner_empties_only_their_bakery(staff_client, cake, settings):
    settings.TUNNEL_HOLD_SECONDS = 0
    first, second = _two_busy_learners(cake)
    response = staff_post(staff_client, learner_reset_url(first.customer_id))
    assert response.status_code == 302 and response["Location"] == DASHBOARD

    assert not Order.objects.filter(customer_id=first.customer_id).exists()
    assert not Event.objects.filter(customer_id=first.customer_id).exists()
    assert not IdempotencyRecord.objects.filter(owner=first.customer_id).exists()
    assert Customer.objects.get(pk=first.customer_id).last_scenario == ""
    assert Order.objects.filter(customer_id=second.customer_id).count() == 1
    html = staff_client.get(PARTIAL).content.decode()
    assert row_of(html, first.customer_id)["orders"] == 0
    assert row_of(html, second.customer_id)["prevented"] == 1
    # The learner keeps their session and carries on with a fresh bakery.
    assert first.order(uuid.uuid4()).status_code == 201


@pytest.mark.django_db
def test_reset_the_room_empties_every_bakery(staff_client, cake, settings):
    settings.TUNNEL_HOLD_SECONDS = 0
    _two_busy_learners(cake)
    response = staff_post(staff_client, ROOM_RESET, headers={"HX-Request": "true"})
    assert response.status_code == 200  # htmx gets the fresh partial
    assert Order.objects.count() == 0 and Event.objects.count() == 0 and IdempotencyRecord.objects.count() == 0
    assert totals_of(response.content.decode())["orders"] == "0"


@pytest.mark.django_db
def test_reset_of_an_unknown_learner_is_404(staff_client):
    assert staff_post(staff_client, learner_reset_url(uuid.uuid4())).status_code == 404


# --- joining the room --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_qr_code_points_at_the_lan_address_when_the_room_can_reach_it(staff_client, settings):
    lan = lan_address()
    if lan is None:
        pytest.skip("this machine has no non-loopback IPv4 address to show in the QR code")
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, lan]
    html = staff_client.get(DASHBOARD, HTTP_HOST="127.0.0.1:8000").content.decode()
    assert f'data-room-url="http://{lan}:8000/"' in html
    assert "HOST=0.0.0.0" not in html


@pytest.mark.django_db
def test_a_loopback_only_bakery_tells_the_facilitator_how_to_open_it_to_the_room(staff_client, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
    html = staff_client.get(DASHBOARD, HTTP_HOST="127.0.0.1:8000").content.decode()
    assert 'data-room-url="http://127.0.0.1:8000/"' in html
    assert "make demo HOST=0.0.0.0" in html


@pytest.mark.worker
def test_a_redelivered_task_counts_once_as_a_prevented_duplicate(celery_worker, cake):
    """A real worker: the order goes all the way through, then its payment task is delivered again."""
    from bakery.celery import app

    someone = learner()
    assert someone.order(uuid.uuid4()).status_code == 201
    order = Order.objects.get()
    wait_for(lambda: Order.objects.get(pk=order.pk).status == Order.Status.NOTIFIED)

    app.send_task("payments.capture_payment", args=[order.pk])  # a redelivery, as after a crash
    wait_for(lambda: Event.objects.filter(order=order, kind=Kind.DEDUPE).exists())

    (row,) = learner_rows()
    assert (row.orders, row.charges, row.invoices) == (1, 1, 1)
    assert (row.replays, row.conflicts, row.dedupes, row.prevented) == (0, 0, 1, 1)


def wait_for(condition, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the back office did not get there in time"
        time.sleep(0.1)
