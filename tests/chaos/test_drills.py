"""Fault drills against the real processes and the engines every part uses (`make chaos`).

Each drill breaks one thing while shoppers are ordering, repairs it, and ends with the same
assertion (drills.settle): every accepted order is notified (or payment_failed with a reason)
with exactly one charge, one invoice and one email, within RECOVERY_LIMIT_SECONDS of the repair,
and nothing was lost, duplicated or stranded. Each adds its line to the table printed at the end.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import uuid

import httpx
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from orders.models import Event, IdempotencyRecord, Order, OutboxMessage
from payments import stalls
from payments.models import Charge
from tests.chaos.drills import (
    Intent,
    Shopper,
    Traffic,
    gunicorn_workers,
    kill_postgres,
    kill_redis,
    revive_postgres,
    revive_redis,
    settle,
    wait_until,
    worker_processes,
)

pytestmark = [pytest.mark.worker, pytest.mark.chaos,
              pytest.mark.django_db(transaction=True, databases=["default", "provider"])]

CHECKPOINT_BEFORE = {"capture": "placed", "invoice": "paid", "email": "invoiced"}
STAFF_PASSWORD = "drill-only-" + uuid.uuid4().hex


def staff_session(url: str) -> httpx.Client:
    """A facilitator logged in through the admin login form of the real web tier."""
    get_user_model().objects.create_user("facilitator", password=STAFF_PASSWORD, is_staff=True)
    staff = httpx.Client(base_url=url, timeout=15)
    staff.get("/admin/login/")
    response = staff.post("/admin/login/?next=/workshop/", data={
        "username": "facilitator", "password": STAFF_PASSWORD, "next": "/workshop/",
        "csrfmiddlewaretoken": staff.cookies["csrftoken"]}, headers={"Referer": url + "/admin/login/"})
    assert response.status_code == 302, response.text[:500]
    return staff


def test_redis_killed_while_orders_arrive(drill_stack):
    url = drill_stack.web.url
    traffic = Traffic(url).start()
    wait_until(lambda: traffic.accepted_count() >= 3, timeout=30, message="orders before the fault")

    kill_redis()
    down_at = time.monotonic()
    before = traffic.accepted_count()
    # With the broker and the cache gone: a brand-new visitor gets a session, orders get their 201
    # at once, every page renders, and the dashboard shows the back office waiting.
    newcomer = httpx.Client(base_url=url, timeout=15)
    assert newcomer.get("/api/me/").status_code == 200
    started = time.monotonic()
    mine = Shopper(url).place(Intent(uuid.uuid4()), give_up_at=time.monotonic() + 10)
    assert mine.statuses == [201], mine.statuses
    assert time.monotonic() - started < 1.5, "an order must not wait for the broker"
    for page in ("/", "/cakes/strawberry-shortcake/", "/kitchen/", "/timeline/", "/api/orders/"):
        assert newcomer.get(page).status_code == 200, page
    staff = staff_session(url)
    dashboard = staff.get("/workshop/")
    assert dashboard.status_code == 200
    waiting = int(re.search(r'data-backlog="waiting">(\d+)<', dashboard.text).group(1))
    assert waiting >= 1
    wait_until(lambda: traffic.accepted_count() >= before + 5, timeout=30, message="orders during the outage")
    time.sleep(max(0.0, 4 - (time.monotonic() - down_at)))

    revive_redis()
    recovered_at = time.monotonic()
    intents = traffic.stop() + [mine]
    failed = [intent.statuses for intent in intents if any(status != 201 for status in intent.statuses)]
    assert not failed, f"answers other than 201 while Redis was down: {failed}"
    result = settle(drill_stack, "Redis SIGKILLed with orders arriving, then restarted", intents,
                    recovered_at=recovered_at, note=f"{traffic.accepted_count() - before} placed while down")
    assert result.accepted >= 10
    assert not OutboxMessage.objects.filter(dispatched_at__isnull=True).exists()


def test_postgres_postmaster_killed_mid_traffic(drill_stack):
    traffic = Traffic(drill_stack.web.url, shoppers=6, pause=0.05).start()
    wait_until(lambda: traffic.accepted_count() >= 20, timeout=30, message="orders before the fault")

    kill_postgres()
    time.sleep(3)  # requests fail now (the shoppers retry with their keys); steps fail mid-flight
    revive_postgres()
    recovered_at, back_at = time.monotonic(), timezone.now()
    time.sleep(2)
    intents = traffic.stop()

    result = settle(drill_stack, "PostgreSQL postmaster SIGKILLed mid-traffic, then restarted", intents,
                    recovered_at=recovered_at)
    resumed = Event.objects.filter(kind=Event.Kind.RESUMED, order_id__in=[i.order_id for i in intents])
    last = resumed.order_by("-created_at").values_list("created_at", flat=True).first()
    result.note = (f"the completer resumed {resumed.values('order_id').distinct().count()} orders, the last "
                   f"{(last - back_at).total_seconds():.1f} s after PostgreSQL was back" if last else "none stranded")


def test_a_worker_killed_inside_each_step(drill_stack):
    """Three workers, each stopped inside a different step (capture after the provider charged,
    email before it is sent, invoice after the number was taken) by a stall armed for that step,
    are SIGKILLed at once, parent and children; a fresh worker and the completer finish every order
    exactly once. The invoice step goes last: while it holds the invoice counter no other order can
    be invoiced."""
    drill_stack.worker.stop()
    shopper = Shopper(drill_stack.web.url)
    intents, doomed = [], []
    for step in ("capture", "email", "invoice"):
        worker = drill_stack.start_worker(f"doomed-{step}", concurrency=1)
        doomed.append(worker)
        # Armed once this step's worker is the only free one, so the stall stops it and no other.
        stalls.arm(step, 120)
        deadline, placed_at = time.monotonic() + 30, 0.0
        while (stall := stalls.taken(step)) is None:
            assert time.monotonic() < deadline, f"no worker stopped inside the {step} step"
            if time.monotonic() - placed_at > 5:
                intents.append(shopper.place(Intent(uuid.uuid4()), give_up_at=time.monotonic() + 10))
                placed_at = time.monotonic()
            time.sleep(0.25)
        assert stall.pid in worker_processes(worker)
        # Inside the step: its work is in an open transaction, so the checkpoint has not moved.
        assert Order.objects.get(pk=stall.order_id).status == CHECKPOINT_BEFORE[step]
    for worker in doomed:
        drill_stack.kill_worker(worker)
    drill_stack.start_worker()
    recovered_at = time.monotonic()

    settle(drill_stack, "worker SIGKILLed inside capture, email and invoice", intents,
           recovered_at=recovered_at, note="3 workers killed, parent and children")


def test_a_web_worker_killed_with_requests_in_flight(drill_stack):
    shoppers = [Shopper(drill_stack.web.url) for _ in range(8)]
    intents = [Intent(uuid.uuid4()) for _ in shoppers]
    # Slow bakery: each request holds its key inside the handler for TUNNEL_SLOW_SECONDS.
    threads = [threading.Thread(target=shopper.place, args=(intent,),
                                kwargs={"give_up_at": time.monotonic() + 60, "X-Bakery-Tunnel": "slow"})
               for shopper, intent in zip(shoppers, intents, strict=True)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    victim = gunicorn_workers(drill_stack.web)[0]  # the one holding most of the requests
    os.kill(victim, signal.SIGKILL)
    recovered_at = time.monotonic()
    for thread in threads:
        thread.join(90)
    cut = sum(1 for intent in intents if intent.statuses and not isinstance(intent.statuses[0], int))
    assert cut >= 1, "no request was in flight in the killed worker"
    assert wait_until(lambda: len(gunicorn_workers(drill_stack.web)) == 2, timeout=30, message="a new web worker")

    settle(drill_stack, "web worker SIGKILLed with requests in flight", intents, recovered_at=recovered_at,
           note=f"{cut} requests cut off, retried with their keys")


def test_order_then_reset_at_once_twenty_times(drill_stack):
    url = drill_stack.web.url
    shopper = Shopper(url)
    resets, placed = [], []
    log_start = drill_stack.worker.log_path.stat().st_size

    def reset():
        answer = shopper.http.post("/reset/", data={"csrfmiddlewaretoken": shopper.http.cookies["csrftoken"]},
                                   headers={"HX-Request": "true"})
        resets.append(answer.status_code)

    for attempt in range(20):
        intent = Intent(uuid.uuid4())
        if attempt % 2:
            # Both at the same moment: either may win, and neither may fail.
            together = threading.Thread(target=reset)
            together.start()
            placed.append(shopper.place(intent, give_up_at=time.monotonic() + 10))
            together.join(30)
        else:
            placed.append(shopper.place(intent, give_up_at=time.monotonic() + 10))
            time.sleep(attempt * 0.003)  # 0 to 57 ms: the payment step is starting or running
            reset()
    recovered_at = time.monotonic()
    assert resets == [200] * 20, resets
    assert all(intent.statuses == [201] for intent in placed)

    survivors = [intent for intent in placed if Order.objects.filter(pk=intent.order_id).exists()]
    result = settle(drill_stack, "order then reset at once, 20 times", survivors, recovered_at=recovered_at,
                    note=f"{len(placed) - len(survivors)} wiped whole by their reset, {len(survivors)} placed "
                    "after it and completed")
    result.accepted = len(placed)
    time.sleep(3)  # any task still queued for a wiped order runs now
    customer = shopper.http.get("/api/me/").json()["customer"]
    kept = Order.objects.filter(pk__in=[intent.order_id for intent in survivors])
    assert Charge.objects.filter(order__customer_id=customer).count() == len(survivors)
    # Nothing about a wiped order was left behind, or written after its reset.
    theirs = {str(intent.key) for intent in survivors}
    theirs |= {str(key) for key in kept.values_list("fulfilment_key", flat=True)}
    strays = Event.objects.filter(customer_id=customer).exclude(key__in=theirs)
    assert not strays.exists(), list(strays.values("source", "kind", "key"))
    assert not IdempotencyRecord.objects.filter(owner=customer).exclude(key__in=theirs).exists()
    with open(drill_stack.worker.log_path) as log:
        log.seek(log_start)
        written = log.read()
    assert "Traceback" not in written and "ERROR" not in written, "a task failed on a wiped order"
