"""The step services called in this process (no worker), for the cases that need a clock or an order.

Emails go to Django's locmem backend here (``mail.outbox``), as pytest-django configures it.
"""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from orders.keys import purge_expired_keys
from orders.models import Event, IdempotencyRecord, Order
from payments import services
from payments.models import Charge, EmailReceipt, Invoice

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "provider"])


def run_pipeline(order_id: int) -> None:
    services.payment_capture(order_id=order_id)
    services.invoice_issue(order_id=order_id)
    services.confirmation_send(order_id=order_id)


def test_a_step_delivered_before_its_checkpoint_does_nothing_and_keeps_the_key(customer_client, cake, new_key):
    order = customer_client.order(new_key()).json()

    assert services.invoice_issue(order_id=order["id"]) is None  # not paid yet
    assert services.confirmation_send(order_id=order["id"]) is None
    assert not Invoice.objects.exists() and not EmailReceipt.objects.exists()
    assert not IdempotencyRecord.objects.filter(scope__startswith="payments.").exists()

    run_pipeline(order["id"])  # the key was not spent: the real deliveries still work
    assert Order.objects.get(pk=order["id"]).status == "notified"
    assert len(mail.outbox) == 1


def test_after_the_keys_are_purged_the_checkpoint_still_stops_a_second_charge_invoice_email(
    customer_client, cake, new_key
):
    order = customer_client.order(new_key()).json()
    run_pipeline(order["id"])
    assert purge_expired_keys(now=timezone.now() + timedelta(days=2)) >= 3

    run_pipeline(order["id"])  # a very late redelivery of every step

    assert Order.objects.get(pk=order["id"]).status == "notified"
    assert Charge.objects.get().attempts == 1
    assert Invoice.objects.count() == 1 and EmailReceipt.objects.count() == 1
    assert len(mail.outbox) == 1
    by_checkpoint = Event.objects.filter(order_id=order["id"], kind=Event.Kind.DEDUPE, detail__by="checkpoint")
    assert sorted(by_checkpoint.values_list("source", flat=True)) == ["email", "invoice", "payment"]


def test_an_order_deleted_by_reset_while_its_task_waited_is_skipped(customer_client, cake, new_key):
    order = customer_client.order(new_key()).json()
    Order.objects.filter(pk=order["id"]).delete()

    assert services.payment_capture(order_id=order["id"]) is None
    assert not Charge.objects.exists()
