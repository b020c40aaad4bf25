"""The kitchen catches fire: the facilitator's panel on /workshop/ against a real `make demo` supervisor.

The facilitator presses the panel over HTTP as staff; the demo's own supervisor takes PostgreSQL or
Redis away (or kills the worker inside a capture step) and brings it back; learners order meanwhile,
retrying with their keys; the terminal and the dashboard say what the room got.
"""

from __future__ import annotations

import re
import time
import uuid

import httpx
import psycopg
import pytest
from django.test import Client

from bakery import kitchen_fire
from bakery.engines import DATABASE_NAME
from tests.bakery.test_demo import STORY, Customer, Demo, serving_demo

pytestmark = [pytest.mark.worker]

FIRE = "/workshop/fire/"


@pytest.fixture(scope="module")
def demo():
    with serving_demo("bakery-fire-demo-") as running:
        yield running


class Facilitator:
    """The staff login, through the admin's own form, with its cookie jar."""

    def __init__(self, demo: Demo):
        found = re.search(r"user '(\w+)'  password '([^']+)'", demo.manage("manage.py", "facilitator_password"))
        user, password = found.groups()
        self.http = httpx.Client(base_url=demo.url, timeout=30)
        self.http.get("/admin/login/")
        login = self.http.post("/admin/login/", data={"username": user, "password": password, "next": "/workshop/",
                                                      "csrfmiddlewaretoken": self.http.cookies["csrftoken"]})
        assert login.status_code == 302 and login.headers["Location"] == "/workshop/", login.text

    def press(self, part: str, seconds, *, csrf: bool = True) -> httpx.Response:
        form = {"part": part, "seconds": str(seconds)}
        if csrf:
            form["csrfmiddlewaretoken"] = self.http.cookies["csrftoken"]
        return self.http.post(FIRE, data=form)

    def summary(self) -> dict[str, str]:
        page = self.http.get("/workshop/learners/")
        assert page.status_code == 200
        return dict(re.findall(r'<dd data-fire="([\w-]+)">([^<]*)</dd>', page.text))


@pytest.fixture(scope="module")
def facilitator(demo):
    return Facilitator(demo)


def demo_database(demo: Demo) -> psycopg.Connection:
    return psycopg.connect(host=str(demo.data / "postgres"), user="postgres", dbname=DATABASE_NAME, autocommit=True)


def order_through(customer: Customer, key, within: float = 60) -> tuple[int, list]:
    """One intent retried with its key, honouring Retry-After, until it is taken: (order id, answers)."""
    deadline, answers = time.monotonic() + within, []
    while time.monotonic() < deadline:
        try:
            answer = customer.order(key)
        except httpx.TransportError:  # a kept-alive connection the server closed as it was reused
            time.sleep(0.2)
            continue
        answers.append(answer)
        if answer.status_code == 201:
            return answer.json()["id"], answers
        assert answer.status_code in (409, 503), (answer.status_code, answer.text)
        time.sleep(float(answer.headers.get("Retry-After", 1)))
    pytest.fail(f"not taken within {within} s: {[a.status_code for a in answers]}")


def wait_for_summary(facilitator: Facilitator, within: float = 120, **expected: str) -> dict[str, str]:
    deadline = time.monotonic() + within
    while (summary := facilitator.summary()) and any(summary.get(k) != v for k, v in expected.items()):
        assert time.monotonic() < deadline, f"the dashboard says {summary}, not {expected}"
        time.sleep(1)
    return summary


def test_postgres_down_for_3_s_orders_get_503_then_are_taken_once_and_the_room_sees_it(demo, facilitator):
    panel = facilitator.http.get("/workshop/").text
    assert 'data-testid="fire-panel"' in panel and "fire-unavailable" not in panel
    learners = [Customer(demo.url), Customer(demo.url)]
    keys = [uuid.uuid4(), uuid.uuid4()]

    pressed = facilitator.press("postgres", 3)
    assert pressed.status_code == 302 and pressed.headers["Location"] == "/workshop/"
    demo.wait_for(rf"^  {STORY}PostgreSQL went away \(kitchen fire, 3 s\)$", timeout=10)
    for learner, key in zip(learners, keys, strict=True):
        first = learner.order(key)
        assert first.status_code == 503 and first.headers["Retry-After"] == "2"
        assert first.json()["type"].endswith("/database-unavailable")
    taken = [order_through(learner, key) for learner, key in zip(learners, keys, strict=True)]

    back = demo.wait_for(rf"^  {STORY}PostgreSQL is back \((\d+) s\); 2 orders waited$", timeout=60)
    assert 3 <= int(back.group(1)) <= 15
    assert order_through(learners[0], keys[0])[0] == taken[0][0]  # the same key again: the same order
    with demo_database(demo) as database:
        per_key = database.execute("SELECT count(*) FROM orders_order WHERE idempotency_key = ANY(%s)",
                                   [keys]).fetchone()[0]
    assert per_key == 2  # one order for each key, not one per attempt

    for order_id, _ in taken:
        demo.wait_for(rf"^  {STORY}#{order_id} Strawberry Shortcake ×1: placed → paid → invoiced → notified",
                      timeout=90)
    summary = wait_for_summary(facilitator, accepted="2", duplicates="0", stranded="0")
    waited = float(summary["longest-wait"].removesuffix(" s"))
    assert 2 <= waited <= 30  # from the first 503 to the order taken
    page = facilitator.http.get("/workshop/learners/").text
    assert "After the kitchen fire</strong> (PostgreSQL, 3 s" in page and "2 orders waited for it" in page
    assert "0 still on their way" in page


def test_redis_stops_for_3_s_and_comes_back_and_orders_still_reach_notified(demo, facilitator):
    learner = Customer(demo.url)
    assert facilitator.press("redis", 3).status_code == 302
    again = facilitator.press("postgres", 3)  # one fire at a time
    assert again.status_code == 409 and "A fire is already burning" in again.text
    demo.wait_for(rf"^  {STORY}Redis went away \(kitchen fire, 3 s\)$", timeout=10)
    order_id, answers = order_through(learner, uuid.uuid4())
    assert [answer.status_code for answer in answers] == [201]  # taken at once: the outbox holds its task
    demo.wait_for(rf"^  {STORY}Redis is back \(\d+ s\)", timeout=60)
    demo.wait_for(rf"^  {STORY}#{order_id} Strawberry Shortcake ×1: placed → paid → invoiced → notified", timeout=120)
    wait_for_summary(facilitator, accepted="1", duplicates="0", stranded="0")


def test_the_worker_dies_inside_a_capture_step_and_the_order_is_charged_once(demo, facilitator):
    learner = Customer(demo.url)
    assert facilitator.press("worker", 3).status_code == 302
    demo.wait_for(rf"^  {STORY}The worker will die inside the next order's capture step \(kitchen fire, 3 s\)$",
                  timeout=10)
    order_id, _ = order_through(learner, uuid.uuid4())
    demo.wait_for(rf"^  {STORY}The worker went away inside #{order_id}'s capture step \(kitchen fire, 3 s\)$",
                  timeout=90)
    demo.wait_for(rf"^  {STORY}The worker is back \(\d+ s\)", timeout=90)
    demo.wait_for(rf"^  {STORY}#{order_id} Strawberry Shortcake ×1: placed → paid → invoiced → notified", timeout=120)
    demo.wait_for(rf"^  {STORY}#{order_id} payment step resumed by the completer", timeout=10)
    with demo_database(demo) as database:
        charges = database.execute("SELECT count(*) FROM payments_charge WHERE order_id = %s AND status = 'succeeded'",
                                   [order_id]).fetchone()[0]
    assert charges == 1
    wait_for_summary(facilitator, accepted="1", duplicates="0", stranded="0")
    assert "Traceback" not in demo.text()


def test_only_staff_with_a_csrf_token_and_a_bounded_time_can_start_a_fire(demo, facilitator):
    fires_before = demo.text().count("(kitchen fire, ")
    learner = Customer(demo.url)
    token = learner.http.cookies["csrftoken"]
    refused = learner.http.post(FIRE, data={"part": "postgres", "seconds": "3", "csrfmiddlewaretoken": token})
    assert refused.status_code == 302 and refused.headers["Location"].startswith("/admin/login/")
    assert facilitator.press("postgres", 3, csrf=False).status_code == 403
    for seconds in ("0", "61", "ten", "", "-3", "2.5"):
        bad = facilitator.press("postgres", seconds)
        assert bad.status_code == 400, seconds
        assert "How long: a whole number of seconds from 1 to 60" in bad.text
    bad_part = facilitator.press("oven", 3)
    assert bad_part.status_code == 400 and "Which part: one of postgres, redis, worker" in bad_part.text
    assert facilitator.http.get(FIRE).status_code == 405
    time.sleep(1.5)  # a turn or two of the supervisor's loop: nothing was asked of it
    assert demo.text().count("(kitchen fire, ") == fires_before
    assert not (demo.data / "kitchen-fire" / "command.json").exists()


@pytest.mark.django_db
def test_without_a_demo_supervisor_the_panel_says_why_and_refuses(admin_user, tmp_path, monkeypatch):
    """docker compose runs no supervisor beside the web: the panel is there, greyed, with the reason."""
    monkeypatch.setenv("BAKERY_DATA_DIR", str(tmp_path))
    staff = Client()
    staff.force_login(admin_user)
    page = staff.get("/workshop/").content.decode()
    assert 'data-testid="fire-unavailable"' in page and "<fieldset disabled>" in page
    assert "docker compose kill postgres" in page
    answer = staff.post(FIRE, {"part": "postgres", "seconds": "3"})
    assert answer.status_code == 409 and "Only `make demo` can set the kitchen on fire" in answer.content.decode()
    # A supervisor that has stopped left its file behind: still unavailable, and said so.
    (tmp_path / "kitchen-fire").mkdir()
    (tmp_path / "kitchen-fire" / "supervisor.pid").write_text("999999999")
    assert "the last one has stopped" in kitchen_fire.unavailable_reason()
    assert staff.post(FIRE, {"part": "postgres", "seconds": "3"}).status_code == 409
    assert not (tmp_path / "kitchen-fire" / "command.json").exists()
