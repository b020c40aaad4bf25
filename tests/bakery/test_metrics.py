"""/metrics: who may read it, that it counts every decision of the layer by scope and times first
requests and replays, that the counts are exact across processes and never go down, and that they
agree with the workshop dashboard's room totals."""

from __future__ import annotations

import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from orders.idempotency import KeyInFlight, KeyRef, StoredResponse, run_once
from orders.keys import purge_expired_keys
from orders.models import IdempotencyRecord
from tests.clients import BakeryClient
from tests.factories import CakeFactory
from tests.servers import BakeryServer, CeleryWorker

ORDERS = "orders.create"


def samples(text: str) -> dict:
    """{(sample name, ((label, value), ...)): value} for every sample on the page."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def decisions(text: str) -> dict[tuple[str, str], float]:
    return {(dict(labels)["decision"], dict(labels)["scope"]): value
            for (name, labels), value in samples(text).items() if name == "bakery_idempotency_decisions_total"}


def timed_calls(text: str) -> dict[tuple[str, str], float]:
    return {(dict(labels)["decision"], dict(labels)["scope"]): value
            for (name, labels), value in samples(text).items() if name == "bakery_idempotency_layer_seconds_count"}


def staff_user(name: str = "operator"):
    return get_user_model().objects.create_user(name, password=uuid.uuid4().hex, is_staff=True)


@pytest.fixture
def staff(db) -> Client:
    client = Client()
    client.force_login(staff_user())
    return client


def read(client: Client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


# --- who may read it -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_are_for_staff_and_allowed_scrapers_only(settings, staff):
    assert Client().get("/metrics").status_code == 403
    learner = BakeryClient()
    learner.start()
    assert learner.get("/metrics").status_code == 403

    page = staff.get("/metrics")
    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/plain; version=")  # the Prometheus text format
    assert "# TYPE bakery_idempotency_decisions_total counter" in page.content.decode()

    settings.METRICS_ALLOWED_IPS = ["10.1.2.3"]
    assert Client(REMOTE_ADDR="10.1.2.3").get("/metrics").status_code == 200
    assert Client(REMOTE_ADDR="10.1.2.4").get("/metrics").status_code == 403


# --- what it counts --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_each_decision_of_the_order_api_is_counted_in_its_scope(staff, customer_client, cake):
    before = decisions(read(staff))
    key = uuid.uuid4()
    assert customer_client.order(key).status_code == 201  # new
    assert customer_client.order(key).status_code == 201  # replay
    assert customer_client.order(key).status_code == 201  # replay
    changed = {"items": [{"cake": cake.slug, "quantity": 2}]}
    assert customer_client.order(key, body=changed).status_code == 422  # mismatch
    assert customer_client.order(None).status_code == 400  # rejected: no key
    customer_client.patch("/api/me/", {"idempotency": False}, format="json",
                          headers={"X-CSRFToken": customer_client.cookies["csrftoken"].value})
    assert customer_client.order(uuid.uuid4()).status_code == 201  # unguarded

    after = decisions(read(staff))
    grew = {labels: after[labels] - before.get(labels, 0) for labels in after if after[labels] != before.get(labels)}
    assert grew == {("new", ORDERS): 1, ("replay", ORDERS): 2, ("mismatch", ORDERS): 1, ("rejected", ORDERS): 1,
                    ("unguarded", ORDERS): 1}


@pytest.mark.django_db(transaction=True)
def test_a_conflict_a_released_key_and_expired_keys_are_counted(staff):
    scope = "metrics.test"
    before = decisions(read(staff))
    holding, release = threading.Event(), threading.Event()

    def slow() -> StoredResponse:
        holding.set()
        release.wait(10)
        return StoredResponse(200, b"done")

    def first():
        try:
            run_once(KeyRef(scope=scope, owner="o", key="k1", source="layer"), {"n": 1}, slow)
        finally:
            connection.close()

    runner = threading.Thread(target=first)
    runner.start()
    assert holding.wait(10)
    with pytest.raises(KeyInFlight):  # the same key from another connection while the first still runs
        run_once(KeyRef(scope=scope, owner="o", key="k1", source="layer"), {"n": 1}, slow, wait_seconds=0.1)
    release.set()
    runner.join(10)

    def broken() -> StoredResponse:
        raise RuntimeError("the handler failed")

    with pytest.raises(RuntimeError):
        run_once(KeyRef(scope=scope, owner="o", key="k2", source="layer"), {"n": 2}, broken)
    run_once(KeyRef(scope=scope, owner="o", key="k3", source="layer"), {"n": 3}, lambda: StoredResponse(200, b""))
    IdempotencyRecord.objects.filter(scope=scope).update(created_at=timezone.now() - timedelta(days=30))
    assert purge_expired_keys() == 2  # k1 and k3; k2 was released, so it was never kept

    after = decisions(read(staff))
    grew = {labels: after[labels] - before.get(labels, 0) for labels in after if after[labels] != before.get(labels)}
    assert grew == {("new", scope): 2, ("conflict", scope): 1, ("released", scope): 1, ("expired", scope): 2}


@pytest.mark.django_db
def test_first_requests_and_replays_are_timed_in_the_layer(staff, customer_client, cake):
    before = timed_calls(read(staff))
    key = uuid.uuid4()
    customer_client.order(key)
    customer_client.order(key)
    customer_client.order(key)

    page = read(staff)
    after = timed_calls(page)
    assert after[("new", ORDERS)] - before.get(("new", ORDERS), 0) == 1
    assert after[("replay", ORDERS)] - before.get(("replay", ORDERS), 0) == 2
    spent = samples(page)[("bakery_idempotency_layer_seconds_sum", (("decision", "replay"), ("scope", ORDERS)))]
    assert spent > 0


@pytest.mark.django_db
def test_resetting_a_bakery_or_the_room_never_makes_a_counter_go_down(staff, cake):
    learner = BakeryClient()
    learner.start()
    key = uuid.uuid4()
    learner.order(key)
    learner.order(key)
    counted = decisions(read(staff))

    reset = learner.post("/reset/", headers={"X-CSRFToken": learner.cookies["csrftoken"].value})
    assert reset.status_code in (200, 302)
    assert decisions(read(staff)) == counted
    learner.order(key)  # the key was forgotten with the orders: new again
    assert staff.post("/workshop/reset/").status_code == 302

    after = decisions(read(staff))
    assert after[("new", ORDERS)] == counted[("new", ORDERS)] + 1
    assert after[("replay", ORDERS)] == counted[("replay", ORDERS)]


# --- across processes, and against the workshop dashboard -------------------------------------------


def staff_cookies(server_url: str) -> httpx.Cookies:
    """A staff session made in the test database, which the gunicorn processes share."""
    client = Client()
    client.force_login(staff_user(f"staff-{uuid.uuid4().hex[:6]}"))
    cookies = httpx.Cookies()
    cookies.set("sessionid", client.cookies["sessionid"].value, domain="127.0.0.1")
    return cookies


class Learner:
    """A browser-like customer of a running bakery: session cookie, CSRF token."""

    def __init__(self, url: str, *, idempotency: bool = True):
        self.http = httpx.Client(base_url=url, timeout=30)
        self.http.get("/api/me/").raise_for_status()
        self.http.patch("/api/me/", json={"idempotency": idempotency}, headers=self.csrf()).raise_for_status()

    def csrf(self) -> dict:
        return {"X-CSRFToken": self.http.cookies["csrftoken"]}

    def order(self, key, **headers) -> httpx.Response:
        return self.http.post("/api/orders/", json={"items": [{"cake": "strawberry-shortcake", "quantity": 1}]},
                              headers={**self.csrf(), "Idempotency-Key": str(key), **headers})


@pytest.mark.django_db(transaction=True)
def test_counts_and_durations_are_exact_across_gunicorn_processes():
    CakeFactory(slug="strawberry-shortcake", name="Strawberry Shortcake", price="24.00")
    # 41 requests from one customer within a second: the burst throttle would refuse most of them.
    server = BakeryServer({"METRICS_ALLOWED_IPS": "127.0.0.1", "ORDER_BURST_RATE": "off"}, workers=3).start()
    try:
        learner = Learner(server.url)
        key = uuid.uuid4()
        assert learner.order(key).status_code == 201
        with ThreadPoolExecutor(8) as pool:
            retries = list(pool.map(lambda _: learner.order(key), range(40)))
        assert [r.headers.get("Idempotent-Replayed") for r in retries] == ["true"] * 40
        page = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()

    assert decisions(page)[("replay", ORDERS)] == 40
    assert timed_calls(page)[("replay", ORDERS)] == 40
    assert timed_calls(page)[("new", ORDERS)] == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_workshop_room_totals_and_the_metrics_agree():
    import redis
    from django.conf import settings

    from bakery.celery import app

    CakeFactory(slug="strawberry-shortcake", name="Strawberry Shortcake", price="24.00")
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    worker = CeleryWorker("metrics").start()
    server = BakeryServer({"TUNNEL_SLOW_SECONDS": "1.5", "IDEMPOTENCY_WAIT_SECONDS": "0.2"}).start()
    try:
        careful = Learner(server.url)
        key = uuid.uuid4()
        placed = careful.order(key).json()
        for _ in range(2):  # two replays
            assert careful.order(key).headers["Idempotent-Replayed"] == "true"

        patient = Learner(server.url)
        slow_key = uuid.uuid4()
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(patient.order, slow_key, **{"X-Bakery-Tunnel": "slow"})
            time.sleep(0.5)
            assert patient.order(slow_key).status_code == 409  # a conflict
            assert first.result().status_code == 201

        reckless = Learner(server.url, idempotency=False)
        twice = uuid.uuid4()
        for _ in range(2):  # two cakes for one intent
            assert reckless.order(twice).status_code == 201

        staff = httpx.Client(base_url=server.url, cookies=staff_cookies(server.url), timeout=30)

        def dedupes() -> float:
            return sum(v for (kind, _), v in decisions(staff.get("/metrics").text).items() if kind == "dedupe")

        deadline = time.monotonic() + 60
        while careful.http.get(f"/api/orders/{placed['id']}/").json()["status"] != "notified":
            assert time.monotonic() < deadline, "the first order never reached notified"
            time.sleep(0.3)
        app.send_task("payments.capture_payment", args=[placed["id"]], ignore_result=True)  # redelivered
        while dedupes() < 1:
            assert time.monotonic() < deadline, "the redelivered payment was never deduped"
            time.sleep(0.3)

        dashboard = staff.get("/workshop/").text
        counted = decisions(staff.get("/metrics").text)
    finally:
        server.stop()
        worker.stop()

    totals = dict(re.findall(r'<dd data-total="([\w-]+)">([^<]*)</dd>', dashboard))
    replays, conflicts, task_dedupes = map(int, re.search(
        r"(\d+) replays · (\d+) × 409 · (\d+) task dedupes", dashboard).groups())
    assert (replays, conflicts) == (2, 1)
    assert replays == counted[("replay", ORDERS)]
    assert conflicts == counted[("conflict", ORDERS)]
    assert task_dedupes == sum(v for (kind, _), v in counted.items() if kind == "dedupe") >= 1
    assert int(totals["prevented"]) == replays + conflicts + task_dedupes
    assert int(totals["orders"]) == counted[("new", ORDERS)] + counted[("unguarded", ORDERS)] == 4
