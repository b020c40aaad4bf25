"""The facilitator's dashboard with 20,000 learners in the database: the polled part stays one page of
learners with the room's totals summed in PostgreSQL, and "Reset the whole room" resets everyone.

The room is made with bulk SQL (tests/room.py). The figures go to artifacts/workshop-scale.txt.
"""

from __future__ import annotations

import re
import threading
import time
import uuid

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from bakery.workshop import services
from bakery.workshop.selectors import PAGE_SIZE
from orders.models import Customer, Event, IdempotencyRecord, Order
from tests.clients import BakeryClient
from tests.processes import ARTIFACTS
from tests.room import seed_learners

LEARNERS = 20_000
PARTIAL = "/workshop/learners/"
ROOM_RESET = "/workshop/reset/"


def totals_of(html: str) -> dict[str, str]:
    return dict(re.findall(r'<dd data-total="([\w-]+)">([^<]*)</dd>', html))


def rows_of(html: str) -> int:
    return html.count("<tr data-learner=")


def record(line: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACTS / "workshop-scale.txt", "a") as figures:
        figures.write(line + "\n")


@pytest.mark.django_db
def test_the_polled_dashboard_is_one_page_of_learners_with_the_whole_room_summed(staff_client, cake):
    seed_learners(LEARNERS, cake=cake)  # half with idempotency (a replay each), half without (a second cake each)
    staff_client.get(PARTIAL)  # warm
    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(PARTIAL)
    seconds = time.monotonic() - started
    html = response.content.decode()
    record(f"poll at {LEARNERS} learners: {seconds:.2f} s, {len(response.content)} bytes, {rows_of(html)} rows, "
           f"{len(queries)} queries")

    assert response.status_code == 200
    assert rows_of(html) == PAGE_SIZE
    assert len(response.content) < 100_000  # 21 MB when it listed every learner
    assert len(queries) < 30
    half = LEARNERS // 2
    assert totals_of(html) == {"learners": str(LEARNERS), "orders": str(LEARNERS + half),
                               "cakes": str(LEARNERS + half), "duplicate_cakes": str(half),
                               "prevented": str(half), "charges-invoices": "0 · 0"}
    assert "response-lost × 20000" in html
    assert f"Learners 1–{PAGE_SIZE} of {LEARNERS}" in html


@pytest.mark.django_db
def test_the_page_links_work_without_javascript_and_with_htmx(staff_client, cake):
    seed_learners(3 * PAGE_SIZE - 7, cake=cake)
    html = staff_client.get("/workshop/").content.decode()
    link = re.search(r'<a href="/workshop/\?page=2" hx-get="/workshop/learners/\?page=2"[^>]*>', html)
    assert link and 'hx-target="#workshop-learners"' in link.group(0)
    second = staff_client.get("/workshop/?page=2").content.decode()  # what the link loads without JS
    assert rows_of(second) == PAGE_SIZE and f"Learners {PAGE_SIZE + 1}–{2 * PAGE_SIZE} of" in second
    assert 'hx-get="/workshop/learners/?page=2" hx-trigger="every 3s"' in second  # the poll stays on page 2
    last = staff_client.get(PARTIAL + "?page=3").content.decode()
    assert rows_of(last) == PAGE_SIZE - 7
    first_ids = set(re.findall(r'<tr data-learner="([^"]+)"', html))
    assert first_ids.isdisjoint(re.findall(r'<tr data-learner="([^"]+)"', second))
    for odd in ("abc", "0", "-1", "99999", "1e9"):  # nonsense is the nearest page, never an error
        assert rows_of(staff_client.get(PARTIAL + f"?page={odd}").content.decode()) > 0


@pytest.mark.django_db
def test_a_room_of_one_page_has_no_page_links(staff_client, cake):
    seed_learners(3, cake=cake)
    html = staff_client.get(PARTIAL).content.decode()
    assert rows_of(html) == 3 and "learner-pages" not in html


def room_left() -> tuple[int, int, int, int]:
    return (Order.objects.count(), Event.objects.exclude(customer=None).count(), IdempotencyRecord.objects.count(),
            Customer.objects.exclude(last_scenario="").count())


@pytest.mark.django_db(transaction=True)
def test_reset_the_whole_room_of_20000_learners(staff_client, cake):
    """One press resets a room of 20,000 on this machine in well under ROOM_RESET_SECONDS; on a busy
    one a press may stop early and say so, and the facilitator presses again."""
    seed_learners(LEARNERS, cake=cake)
    token = staff_client.cookies["csrftoken"].value
    started, presses, said = time.monotonic(), 0, ""
    while "every bakery in the room is empty" not in said:
        presses += 1
        assert presses <= 5, said
        response = staff_client.post(ROOM_RESET, {"csrfmiddlewaretoken": token})
        assert response.status_code == 302 and response["Location"] == "/workshop/"
        page = staff_client.get(response["Location"]).content.decode()
        said = re.search(r'data-testid="room-reset">([^<]*)<', page).group(1)
        if presses == 1:
            assert re.match(rf"Reset \d+ of {LEARNERS} learners", said), said
    seconds = time.monotonic() - started
    record(f"reset the whole room at {LEARNERS} learners: {seconds:.1f} s in {presses} press(es)")

    assert room_left() == (0, 0, 0, 0)
    assert Customer.objects.count() == LEARNERS  # the learners stay, with empty bakeries
    assert totals_of(page)["orders"] == "0"


@pytest.mark.django_db(transaction=True)
def test_a_press_that_stops_early_says_how_far_it_got_and_the_next_press_continues(staff_client, cake, monkeypatch):
    seed_learners(450, cake=cake, idempotent_share=1)
    monkeypatch.setattr(services, "ROOM_RESET_SECONDS", 0)  # one batch a press
    monkeypatch.setattr(services, "ROOM_RESET_BATCH", 200)
    token = staff_client.cookies["csrftoken"].value

    first = staff_client.post(ROOM_RESET, {"csrfmiddlewaretoken": token}, headers={"HX-Request": "true"})
    said = re.search(r'data-testid="room-reset">([^<]*)<', first.content.decode()).group(1)
    assert said.startswith("Reset 200 of 450 learners, then stopped") and "again" in said
    assert Order.objects.values("customer").distinct().count() == 250  # whole learners reset, the rest untouched
    assert IdempotencyRecord.objects.count() == 250

    second = staff_client.post(ROOM_RESET, {"csrfmiddlewaretoken": token}, follow=True).content.decode()
    assert "Reset 200 of 250 learners, then stopped" in second
    third = staff_client.post(ROOM_RESET, {"csrfmiddlewaretoken": token}, follow=True).content.decode()
    assert "Reset 50 of 50 learners: every bakery in the room is empty." in third
    assert room_left() == (0, 0, 0, 0)


@pytest.mark.django_db(transaction=True)
def test_the_room_reset_and_orders_placed_meanwhile_take_turns(cake, settings):
    """Learners keep ordering while the room is reset a few at a time: every order is answered 201, and
    each one was either wiped whole by the reset or placed after it and left whole."""
    settings.ORDER_THROTTLE_RATE = settings.ORDER_BURST_RATE = "off"
    seed_learners(60, cake=cake)
    shoppers = [BakeryClient() for _ in range(4)]
    for shopper in shoppers:
        shopper.start()
    answers, resetting = [], threading.Event()

    def keep_ordering(shopper):
        try:
            while not resetting.is_set():
                answers.append(shopper.order(uuid.uuid4()).status_code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=keep_ordering, args=(shopper,)) for shopper in shoppers]
    for thread in threads:
        thread.start()
    try:
        while len(answers) < 8:
            time.sleep(0.01)
        done = services.workshop_reset_room(batch=5)
    finally:
        resetting.set()
        for thread in threads:
            thread.join(30)

    assert done.finished and done.total >= 60
    assert answers and set(answers) == {201}, answers
    for order in Order.objects.all():  # what is left is whole: its items and its key's record
        assert order.items.exists(), order
        assert IdempotencyRecord.objects.filter(owner=str(order.customer_id), key=str(order.idempotency_key)).exists()
    orphans = IdempotencyRecord.objects.exclude(key__in=[str(k) for k in Order.objects.values_list("idempotency_key",
                                                                                                   flat=True)])
    assert not orphans.exists()
