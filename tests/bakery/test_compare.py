"""The compare page without a browser: two phones per browser session, each its own customer, named by
X-Bakery-Phone; a new scene empties both; the ending is computed from what PostgreSQL holds."""

from __future__ import annotations

import uuid

import pytest
from django.core.management import call_command

from orders.models import Customer, Order
from payments import services
from tests.clients import BakeryClient

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "provider"])
COMPARE = "/cakes/strawberry-shortcake/compare/"


@pytest.fixture
def browser(db):
    call_command("loaddata", "cakes", verbosity=0)
    client = BakeryClient()
    client.start()
    return client


def phone_of(client: BakeryClient, name: str) -> Customer:
    return Customer.objects.get(pk=client.session["bakery_phones"][name])


def place(client: BakeryClient, phone: str, key, **headers):
    return client.order(key, headers={"X-Bakery-Phone": phone, **headers})


def run_back_office() -> None:
    for order in Order.objects.order_by("id"):
        services.payment_capture(order_id=order.pk)
        services.invoice_issue(order_id=order.pk)
        services.confirmation_send(order_id=order.pk)


def test_every_cake_page_links_to_its_compare_page(browser):
    html = browser.get("/cakes/victoria-sponge/").content.decode()
    assert '<a class="compare-link" href="/cakes/victoria-sponge/compare/">Compare with and without idempotency</a>' \
        in html


def test_the_page_makes_two_phones_each_its_own_customer_with_its_switch(browser):
    html = browser.get(COMPARE).content.decode()
    assert "With idempotency" in html and "Without idempotency" in html and "Place order on both phones" in html
    for label in ("For 1 attempt", "For 3 attempts", "Until I switch it off", "Response lost"):
        assert label in html
    assert 'id="timeline-with"' in html and 'id="timeline-without"' in html
    assert """hx-headers='{"X-Bakery-Phone": "with"}'""" in html
    assert "<script>" not in html and " onclick=" not in html  # the Content-Security-Policy forbids both

    with_key, without = phone_of(browser, "with"), phone_of(browser, "without")
    me = Customer.objects.get(pk=browser.customer_id)
    assert len({me.pk, with_key.pk, without.pk}) == 3
    assert (with_key.idempotency_enabled, without.idempotency_enabled) == (True, False)
    assert with_key.label.startswith(me.label)  # the facilitator sees whose phones they are
    browser.get(COMPARE)
    assert Customer.objects.count() == 3  # a second visit keeps the same phones


def test_a_phone_orders_as_its_own_customer(browser):
    browser.get(COMPARE)
    key = uuid.uuid4()
    for phone in ("with", "without"):
        place(browser, phone, key)
        place(browser, phone, key)  # a retry with the same key

    assert phone_of(browser, "with").orders.count() == 1
    assert phone_of(browser, "without").orders.count() == 2
    assert not Order.objects.filter(customer_id=browser.customer_id).exists()
    timeline = browser.get("/timeline/", headers={"X-Bakery-Phone": "without", "HX-Request": "true"})
    assert 'id="timeline-without"' in timeline.content.decode() and "another cake!" in timeline.content.decode()


def test_a_phone_this_browser_does_not_have_is_refused_and_nothing_is_made(browser):
    browser.get(COMPARE)
    response = place(browser, "someone-else", uuid.uuid4())
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "unknown-phone"

    stranger = BakeryClient()  # another browser: its session has no phones, so it cannot use mine
    stranger.start()
    assert place(stranger, "with", uuid.uuid4()).json()["code"] == "unknown-phone"
    assert Order.objects.count() == 0


def test_a_new_scene_empties_both_phones_and_sets_their_switches_back(browser):
    browser.get(COMPARE)
    place(browser, "with", uuid.uuid4())
    place(browser, "without", uuid.uuid4())
    mine = browser.order(uuid.uuid4())  # the browser's own bakery is not part of the scene
    assert browser.patch("/api/me/", {"idempotency": True}, format="json", headers={
        "X-Bakery-Phone": "without", "X-CSRFToken": browser.cookies["csrftoken"].value}).status_code == 200

    assert browser.post("/compare/start/").status_code == 403  # CSRF
    response = browser.post("/compare/start/", headers={"X-CSRFToken": browser.cookies["csrftoken"].value})

    assert response.status_code == 204
    assert list(Order.objects.values_list("pk", flat=True)) == [mine.json()["id"]]
    assert phone_of(browser, "without").idempotency_enabled is False


def test_the_ending_is_told_from_the_real_counts_once_the_back_office_settled(browser):
    browser.get(COMPARE)
    key = uuid.uuid4()
    for phone in ("with", "without"):
        place(browser, phone, key)
        place(browser, phone, key)

    waiting = browser.get("/compare/contrast/").content.decode()
    assert 'data-settled="false"' in waiting and "With idempotency:" not in waiting
    run_back_office()

    ending = browser.get("/compare/contrast/").content.decode()
    assert 'data-settled="true"' in ending
    assert "With idempotency: 1 cake, 1 charge, 1 invoice. Without: 2, 2, 2." in ending
    kitchens = browser.get("/compare/kitchens/").content.decode()
    assert kitchens.count('data-counter="cakes"') == 2


def test_the_ending_says_when_there_was_nothing_to_prevent(browser):
    browser.get(COMPARE)
    for phone in ("with", "without"):
        place(browser, phone, uuid.uuid4())
    run_back_office()

    ending = browser.get("/compare/contrast/").content.decode()
    assert "With idempotency: 1 cake, 1 charge, 1 invoice. Without: 1, 1, 1." in ending
    assert "No difference this time" in ending


def test_the_pages_polls_create_no_customer(db):
    """Only opening the page gives a browser its phones; the kitchens and the ending only read."""
    stranger = BakeryClient()
    assert stranger.get("/compare/kitchens/").status_code == 200
    assert 'data-settled="true"' in stranger.get("/compare/contrast/").content.decode()
    assert Customer.objects.count() == 0
