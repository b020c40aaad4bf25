"""The completer: a stalled order has its next step re-sent, once per run however many runs there are,
with doubling waits, and stops in fulfilment_failed with the reason after the last resumption."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from threading import Barrier

import pytest
import redis
from django.conf import settings
from django.db import connections
from django.utils import timezone

from orders.models import Event, Order, OutboxMessage
from payments import completer, services
from payments.models import Charge, EmailReceipt, Invoice
from tests.clients import BakeryClient

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "provider"])


def place(client: BakeryClient, new_key) -> Order:
    response = client.order(new_key())
    assert response.status_code == 201, response.content
    lose_the_queue()
    return Order.objects.get(pk=response.json()["id"])


def lose_the_queue():
    """The outbox handed its messages to the broker, and the broker lost them (no worker runs here)."""
    OutboxMessage.objects.filter(dispatched_at__isnull=True).update(dispatched_at=timezone.now())
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def resumed_events(order: Order):
    return Event.objects.filter(order=order, kind=Event.Kind.RESUMED)


def test_a_stalled_order_has_its_next_step_resent_through_the_outbox(customer_client, cake, new_key, settings):
    settings.FULFILMENT_STALL_SECONDS = 10
    order = place(customer_client, new_key)

    assert completer.stranded_complete(now=later(5)).resumed == []  # still inside the threshold
    run = completer.stranded_complete(now=later(11))

    assert run.resumed == [order.pk]
    order.refresh_from_db()
    assert order.resumptions == 1 and order.status == "placed"
    assert OutboxMessage.objects.filter(task="payments.capture_payment", args=[order.pk]).count() == 2
    [event] = resumed_events(order)
    assert event.source == "payment" and event.detail["attempt"] == 1 and event.detail["by"] == "completer"
    # The re-sent step runs through the same idempotent path and finishes the order once.
    services.payment_capture(order_id=order.pk)
    services.invoice_issue(order_id=order.pk)
    services.confirmation_send(order_id=order.pk)
    order.refresh_from_db()
    assert order.status == "notified" and order.resumptions == 0  # a moved checkpoint resets the count
    assert Charge.objects.count() == Invoice.objects.count() == EmailReceipt.objects.count() == 1
    assert "resumed by the completer" in customer_client.get("/timeline/").content.decode()


def test_each_resumption_waits_twice_as_long_then_the_order_stops_with_the_reason(
    customer_client, cake, new_key, settings
):
    settings.FULFILMENT_STALL_SECONDS = 10
    settings.FULFILMENT_MAX_RESUMPTIONS = 2
    order = place(customer_client, new_key)
    services.payment_capture(order_id=order.pk)  # paid; its invoice message is lost
    lose_the_queue()

    # Quiet seconds are counted from the last sign of life, a resumption included.
    assert completer.stranded_complete(now=later(11)).resumed == [order.pk]
    lose_the_queue()  # each re-sent message is lost too
    assert completer.stranded_complete(now=later(15)).resumed == []  # the second waits 20 s
    assert completer.stranded_complete(now=later(21)).resumed == [order.pk]
    lose_the_queue()
    assert completer.stranded_complete(now=later(35)).stopped == []  # the stop waits 40 s
    assert completer.stranded_complete(now=later(41)).stopped == [order.pk]

    order.refresh_from_db()
    assert order.status == "fulfilment_failed"
    assert order.failure_reason.startswith("The invoice step did not finish after 2 resumptions (stopped at paid)")
    assert "payments.issue_invoice" in order.failure_reason
    assert resumed_events(order).count() == 2
    kitchen = customer_client.get("/kitchen/").content.decode()
    assert "Fulfilment stopped" in kitchen and "did not finish after 2 resumptions" in kitchen

    # The operator re-runs the step by name: the order reopens at the checkpoint its charge proves.
    services.invoice_issue(order_id=order.pk)
    order.refresh_from_db()
    assert order.status == "invoiced" and order.failure_reason == "" and Invoice.objects.count() == 1


def test_an_order_whose_message_waits_in_the_outbox_is_left_to_the_relay(customer_client, cake, new_key, settings):
    settings.FULFILMENT_STALL_SECONDS = 10
    order = place(customer_client, new_key)
    OutboxMessage.objects.update(dispatched_at=None)  # Redis is down: the relay has not sent it yet

    assert completer.stranded_complete(now=later(3600)).resumed == []
    assert Order.objects.get(pk=order.pk).resumptions == 0


def test_an_order_whose_step_waits_in_the_queue_behind_a_backlog_is_left_alone(
    customer_client, cake, new_key, settings
):
    settings.FULFILMENT_STALL_SECONDS = 10
    order = place(customer_client, new_key)
    assert completer.stranded_complete(now=later(11)).resumed == [order.pk]  # its message was lost...

    # ...and the re-sent one sits in Redis behind other work (no worker consumes here).
    assert completer.stranded_complete(now=later(3600)).resumed == []
    assert Order.objects.get(pk=order.pk).resumptions == 1
    lose_the_queue()
    assert completer.stranded_complete(now=later(3600)).resumed == [order.pk]


def test_finished_and_failed_orders_are_never_touched(customer_client, cake, new_key, settings):
    settings.FULFILMENT_STALL_SECONDS = 10
    done = place(customer_client, new_key)
    for step in (services.payment_capture, services.invoice_issue, services.confirmation_send):
        step(order_id=done.pk)
    declined = place(customer_client, new_key)
    Order.objects.filter(pk=declined.pk).update(status="payment_failed", failure_reason="Payment declined")

    assert completer.stranded_complete(now=later(3600)).resumed == []


def test_two_completers_at_the_same_moment_resume_each_order_once(cake, new_key, settings):
    settings.FULFILMENT_STALL_SECONDS = 10
    customers = [BakeryClient() for _ in range(6)]
    orders = []
    for customer in customers:
        customer.start()
        orders.append(place(customer, new_key).pk)
    together = Barrier(2)

    def run_now(_):
        together.wait()
        try:
            return completer.stranded_complete(now=later(11)).resumed
        finally:
            connections.close_all()  # this thread's own connection

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(run_now, range(2))

    assert sorted(first + second) == sorted(orders)
    assert not set(first) & set(second)
    assert Event.objects.filter(kind=Event.Kind.RESUMED).count() == len(orders)
    assert set(Order.objects.values_list("resumptions", flat=True)) == {1}


def test_the_workshop_dashboard_shows_the_back_office_backlog(customer_client, cake, new_key, admin_client):
    place(customer_client, new_key)
    place(customer_client, new_key)

    page = admin_client.get("/workshop/").content.decode()
    assert 'data-backlog="waiting">2<' in page
