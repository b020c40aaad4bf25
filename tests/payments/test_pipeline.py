"""The fulfilment pipeline on a real Celery worker process and real Redis and PostgreSQL.

placed -> paid -> invoiced -> notified (or payment_failed): each step dedupes on the order's
fulfilment key, survives a SIGKILL, and nothing is lost while Redis is down.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import pytest
from django.db import connections

from bakery.celery import app
from orders.models import Event, Order, OutboxMessage
from payments import provider, stalls
from payments.models import Charge, EmailReceipt, Invoice, InvoiceCounter, ProviderCharge
from tests.clients import BakeryClient
from tests.waiting import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True, databases=["default", "provider"])]


def place(client: BakeryClient, new_key) -> dict:
    response = client.order(new_key())
    assert response.status_code == 201, response.content
    return response.json()


def order_reaches(client: BakeryClient, order_id: int, status: str, timeout: float = 60) -> dict:
    def current():
        body = client.get(f"/api/orders/{order_id}/").json()
        return body if body["status"] == status else None

    return wait_for(current, timeout=timeout, message=f"order #{order_id} to reach {status}")


def events(order_id: int, kind: str, source: str | None = None):
    found = Event.objects.filter(order_id=order_id, kind=kind)
    return found.filter(source=source) if source else found


def test_an_order_is_paid_invoiced_and_confirmed_once(customer_client, cake, new_key, start_worker, mailbox):
    start_worker()
    order = place(customer_client, new_key)
    assert order["status"] == "placed"

    done = order_reaches(customer_client, order["id"], "notified")

    assert done["payment"]["status"] == "succeeded"
    assert done["payment"]["attempts"] == 1
    assert done["payment"]["provider_charge_id"].startswith("ch_")
    assert done["invoice"]["number"] == "INV-000001"
    assert done["invoice"]["total"] == "24.00"
    assert done["emails_sent"] == 1
    [email] = mailbox.messages()
    assert f"order #{order['id']} is confirmed (INV-000001)" in email
    assert "/invoices/INV-000001/" in email
    steps = list(Event.objects.filter(order_id=order["id"], kind=Event.Kind.STEP_DONE).values_list("source", flat=True))
    assert steps == ["payment", "invoice", "email"]

    page = customer_client.get(done["invoice"]["url"])
    assert page.status_code == 200
    assert b"Invoice INV-000001" in page.content and b"Strawberry Shortcake" in page.content
    stranger = BakeryClient()
    stranger.start()
    assert stranger.get(done["invoice"]["url"]).status_code == 404


def test_every_task_delivered_five_times_gives_one_charge_one_invoice_one_email(
    customer_client, cake, new_key, start_worker, mailbox
):
    start_worker(concurrency=3)
    order = place(customer_client, new_key)  # the outbox delivers capture_payment once...
    for _ in range(4):  # ...and the queue delivers it four times more, at the same moment
        app.send_task("payments.capture_payment", args=[order["id"]], ignore_result=True)
    order_reaches(customer_client, order["id"], "notified")
    # The pipeline delivered invoice and email once each; deliver them four times more.
    for task in ("payments.issue_invoice", "payments.send_confirmation"):
        for _ in range(4):
            app.send_task(task, args=[order["id"]], ignore_result=True)

    wait_for(lambda: events(order["id"], Event.Kind.DEDUPE).count() == 12, message="12 dedupe events")
    fulfilment_key = str(Order.objects.get(pk=order["id"]).fulfilment_key)
    for source in ("payment", "invoice", "email"):
        dedupes = events(order["id"], Event.Kind.DEDUPE, source)
        assert dedupes.count() == 4
        assert set(dedupes.values_list("key", flat=True)) == {fulfilment_key}
    assert Charge.objects.count() == 1
    assert ProviderCharge.objects.using("provider").filter(idempotency_key=fulfilment_key).count() == 1
    assert Invoice.objects.count() == 1
    assert EmailReceipt.objects.count() == 1
    assert mailbox.count() == 1
    body = customer_client.get(f"/api/orders/{order['id']}/").json()
    assert body["payment"]["attempts"] == 1 and body["emails_sent"] == 1


def test_a_delivery_while_the_step_is_still_running_waits_then_is_deduped(
    customer_client, cake, new_key, start_worker
):
    provider.behaviour_set(owner=customer_client.customer_id, delay_seconds=3)  # a slow provider
    start_worker()
    order = place(customer_client, new_key)
    app.send_task("payments.capture_payment", args=[order["id"]], ignore_result=True)

    done = order_reaches(customer_client, order["id"], "notified")
    wait_for(lambda: events(order["id"], Event.Kind.DEDUPE, "payment").exists(), message="the capture dedupe")
    # The second delivery waited on the key's row lock (IDEMPOTENCY_WAIT_SECONDS, shorter than the
    # provider's 3 s), got KeyInFlight and retried later, as often as the first was still running.
    in_flight = list(events(order["id"], Event.Kind.RETRY, "payment"))
    assert in_flight and all(retry.detail["reason"].startswith("KeyInFlight") for retry in in_flight)
    assert done["payment"]["attempts"] == 1
    assert ProviderCharge.objects.using("provider").count() == 1


def test_a_worker_killed_inside_the_invoice_step_is_redelivered_and_invoices_once(
    customer_client, cake, new_key, start_worker
):
    stalls.arm("invoice", 60)  # the next invoice stops after its number is taken
    doomed = start_worker("doomed")
    order = place(customer_client, new_key)
    stall = wait_for(lambda: stalls.taken("invoice"), timeout=30, message="the worker to be inside the invoice step")
    assert stall.order_id == order["id"]
    # Inside the step: the invoice row and its number exist only in the step's open transaction.
    assert Order.objects.get(pk=order["id"]).status == "paid"
    assert Invoice.objects.count() == 0

    doomed.kill()
    time.sleep(3)  # the visibility timeout below: Redis now hands the unacknowledged task out again
    rescuer = start_worker("rescuer", CELERY_VISIBILITY_TIMEOUT=3)

    done = order_reaches(customer_client, order["id"], "notified", timeout=60)
    assert "payments.issue_invoice" in rescuer.log_path.read_text()  # redelivered to the new worker
    # The stall was the killed worker's alone: the new worker ran the step from the start, straight through.
    assert stalls.taken("invoice").taken_at == stall.taken_at
    assert Invoice.objects.count() == 1
    # The killed attempt's number rolled back with it: the first invoice is still INV-000001.
    assert done["invoice"]["number"] == "INV-000001"
    assert InvoiceCounter.objects.get().last_sequence == 1
    assert Charge.objects.count() == 1 and done["payment"]["attempts"] == 1  # resumed after payment
    assert EmailReceipt.objects.count() == 1


def test_an_order_placed_while_redis_is_down_completes_when_it_is_back(
    customer_client, cake, new_key, own_redis, start_worker, start_beat
):
    start_worker(REDIS_URL=own_redis.url)
    start_beat(REDIS_URL=own_redis.url)
    own_redis.stop()

    started = time.monotonic()
    order = place(customer_client, new_key)
    assert time.monotonic() - started < 2.5, "the customer must not wait for the broker"
    [message] = OutboxMessage.objects.filter(task="payments.capture_payment", args=[order["id"]])
    # The worker's relay heard of the order at once, could not publish it, and left it pending.
    wait_for(lambda: "Error" in OutboxMessage.objects.get(pk=message.pk).last_error, timeout=15,
             message="the relay to try the broker")
    message.refresh_from_db()
    assert message.dispatched_at is None
    time.sleep(2)
    assert Order.objects.get(pk=order["id"]).status == "placed"

    own_redis.start()
    done = order_reaches(customer_client, order["id"], "notified", timeout=90)
    assert done["emails_sent"] == 1
    message.refresh_from_db()
    assert message.dispatched_at is not None
    assert not OutboxMessage.objects.filter(dispatched_at__isnull=True).exists()


def test_two_transient_failures_are_retried_with_the_same_key(customer_client, cake, new_key, start_worker):
    provider.behaviour_set(owner=customer_client.customer_id, transient_failures=2)
    start_worker()
    order = place(customer_client, new_key)

    done = order_reaches(customer_client, order["id"], "notified")
    assert done["payment"]["attempts"] == 3
    assert done["payment"]["status"] == "succeeded"
    assert ProviderCharge.objects.using("provider").count() == 1
    assert Charge.objects.count() == 1
    retries = events(order["id"], Event.Kind.RETRY, "payment")
    assert list(retries.values_list("detail__attempt", flat=True)) == [1, 2]


def test_a_provider_down_past_the_retry_limit_fails_the_payment_with_the_reason(
    customer_client, cake, new_key, start_worker, mailbox
):
    provider.behaviour_set(owner=customer_client.customer_id, transient_failures=100)
    start_worker()
    order = place(customer_client, new_key)

    failed = order_reaches(customer_client, order["id"], "payment_failed", timeout=60)
    assert failed["failure_reason"].startswith("Payment provider unavailable after 5 attempts")
    assert failed["payment"]["attempts"] == 5  # the first call and max_retries=4 retries
    assert failed["payment"]["status"] == "failed"
    assert failed["invoice"] is None and failed["emails_sent"] == 0
    assert not ProviderCharge.objects.using("provider").exists()
    assert events(order["id"], Event.Kind.RETRY, "payment").count() == 4
    assert mailbox.count() == 0


def test_a_decline_fails_the_payment_without_retrying(customer_client, cake, new_key, start_worker, mailbox):
    provider.behaviour_set(owner=customer_client.customer_id, decline=True)
    start_worker()
    order = place(customer_client, new_key)

    failed = order_reaches(customer_client, order["id"], "payment_failed")
    assert failed["failure_reason"] == "Payment declined: insufficient_funds"
    time.sleep(1.5)  # longer than the first retry's backoff: a retry would show by now
    failed = customer_client.get(f"/api/orders/{order['id']}/").json()
    assert failed["payment"]["attempts"] == 1
    assert failed["invoice"] is None and failed["emails_sent"] == 0
    assert not Invoice.objects.exists() and not EmailReceipt.objects.exists() and mailbox.count() == 0
    assert not events(order["id"], Event.Kind.RETRY).exists()
    assert events(order["id"], Event.Kind.FAILED, "payment").count() == 1


def test_twenty_orders_at_once_get_twenty_gap_free_invoice_numbers(cake, new_key, start_worker):
    start_worker(concurrency=4)
    customers = [BakeryClient() for _ in range(20)]
    for customer in customers:
        customer.start()
    together = Barrier(len(customers))

    def order_now(customer):
        together.wait()
        try:
            return place(customer, new_key)["id"]
        finally:
            connections.close_all()  # this thread's own database connections

    with ThreadPoolExecutor(len(customers)) as pool:
        order_ids = list(pool.map(order_now, customers))

    wait_for(lambda: Order.objects.filter(pk__in=order_ids, status="notified").count() == 20,
             timeout=90, message="20 orders notified")
    numbers = sorted(Invoice.objects.values_list("sequence", flat=True))
    assert numbers == list(range(1, 21))
    assert len({invoice.number for invoice in Invoice.objects.all()}) == 20
    assert InvoiceCounter.objects.get().last_sequence == 20
