"""The facilitator's dashboard with 20,000 learners in the database: the polled part stays one page of
learners with the room's totals summed in PostgreSQL, and "Reset the whole room" resets everyone.

The room is made with bulk SQL (tests/room.py). The figures go to artifacts/workshop-scale.txt.
"""

from __future__ import annotations

import re
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bakery.workshop.selectors import PAGE_SIZE
from tests.conftest import ARTIFACTS
from tests.room import seed_learners

LEARNERS = 20_000
PARTIAL = "/workshop/learners/"


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
