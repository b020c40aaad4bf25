"""The fulfilment pipeline: placed -> paid -> invoiced -> notified, or payment_failed with a reason.

Each step is one service, called by a Celery task with the order id (payments/tasks.py). The queue
delivers at least once, so every step goes through the same idempotency layer as the order API
(``orders.idempotency.run_once``), keyed by the order's ``fulfilment_key``:

* the step's work, its checkpoint (``order.status``) and the outbox message for the next step are
  written in one transaction, so a crash anywhere resumes from the last checkpoint and loses nothing;
* a delivery of a finished step replays the stored answer and is recorded as a DEDUPE event;
* unique constraints on ``Charge``/``Invoice``/``EmailReceipt.idempotency_key`` (and one row per
  order) are the backstop: PostgreSQL, not this code, makes a second charge, invoice or email impossible.

Each step reads top-down: ``payment_capture`` runs ``_capture`` through ``_run_step``, and so on.

Locking: one row lock, the order's
-----------------------------------
* Everything a step writes about an order (its work, its checkpoint, its timeline events, the
  idempotency layer's record and events) and everything written about a step's retry or failure
  happens inside :func:`order_locked`: one transaction that first locks the order's row FOR KEY SHARE
  and reads it. If the order is gone, nothing is written.
* Whatever changes an order from outside a running step locks its row FOR UPDATE, which KEY SHARE
  excludes: "Reset my bakery" (orders.services) waits for a running step and deletes what it wrote,
  and a step that starts after the reset finds no order and does nothing, so a reset never fails
  and no task fails on a missing order; giving up on a payment and reopening a stopped order
  (below) wait for the step too; the completer skips the order (SKIP LOCKED).
* KEY SHARE is the weakest lock that does this, on purpose: two deliveries of one step both take it
  and meet at the idempotency key, where the second waits at most IDEMPOTENCY_WAIT_SECONDS, then
  replays or gets KeyInFlight and retries later. A stronger lock on the row would make it wait for
  the whole step, unbounded. A step's own UPDATE of its checkpoint needs no more than KEY SHARE allows.
* So a step never locks or reads its order again: while it has the row locked, only another step can
  move the checkpoint, and none can move it from under this one. Deliveries of the same step pass
  the key one at a time (a later one replays what an earlier one committed), and each step moves
  the order on only from the checkpoint before it.

The invoice counter's row lock (payments/models.py) is about gap-free numbers, not about orders.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from django.conf import settings
from django.core import mail
from django.db import transaction
from django.db.models import F
from django.urls import reverse

from orders import outbox
from orders.idempotency import KeyRef, Outcome, StoredResponse, run_once
from orders.models import Event, Order
from payments import provider, stalls
from payments.models import Charge, EmailReceipt, Invoice, InvoiceCounter
from payments.steps import (
    CAPTURE,
    EMAIL,
    INVOICE,
    STEPS_BY_TASK,
    Step,
    checkpoint_move,
    checkpoint_reached,
    step_event,
)

logger = logging.getLogger(__name__)


def payment_capture(*, order_id: int) -> Outcome | None:
    """Take the money once. Transient provider errors propagate, so Celery retries with backoff."""
    try:
        return _run_step(CAPTURE, order_id, _capture)
    except provider.TransientProviderError as error:
        _count_failed_attempt(order_id, error)
        raise


def _capture(order: Order) -> StoredResponse:
    charge, _ = Charge.objects.get_or_create(
        order=order,
        defaults={"idempotency_key": order.fulfilment_key, "amount": order.total, "status": Charge.Status.PENDING},
    )
    charge.attempts += 1
    try:
        taken = provider.charge(idempotency_key=str(order.fulfilment_key), amount=order.total,
                                owner=str(order.customer_id))
    except provider.Declined as declined:
        # A decline is an answer, not an error: it is stored, and the key is spent on it.
        charge.status, charge.provider_charge_id = Charge.Status.FAILED, declined.charge_id
        charge.failure_reason = str(declined)
        charge.save()
        checkpoint_move(order, Order.Status.PAYMENT_FAILED, failure_reason=f"Payment declined: {declined.reason}")
        step_event(CAPTURE, order, Event.Kind.FAILED, reason=order.failure_reason, attempts=charge.attempts)
        return _answer(402, charge=declined.charge_id, status="declined")
    stalls.wait_if_armed(CAPTURE.name, order)  # the provider has charged; the bakery has not committed
    charge.status, charge.provider_charge_id, charge.failure_reason = Charge.Status.SUCCEEDED, taken.charge_id, ""
    charge.save()
    checkpoint_move(order, Order.Status.PAID)
    outbox.enqueue(INVOICE.task, order.pk)
    step_event(CAPTURE, order, Event.Kind.STEP_DONE, charge=taken.charge_id, attempts=charge.attempts)
    return _answer(200, charge=taken.charge_id, status="succeeded")


def payment_give_up(*, order_id: int, reason: str) -> None:
    """After the last retry: the order ends in payment_failed with the reason (called by the task)."""
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(pk=order_id).first()
        if order is None or order.status != Order.Status.PLACED:
            return
        Charge.objects.filter(order=order).update(status=Charge.Status.FAILED, failure_reason=reason[:200])
        checkpoint_move(order, Order.Status.PAYMENT_FAILED, failure_reason=reason)
        step_event(CAPTURE, order, Event.Kind.FAILED, reason=order.failure_reason)


def invoice_issue(*, order_id: int) -> Outcome | None:
    """Give a paid order the next invoice number: no gaps, no duplicates, even under concurrency."""
    return _run_step(INVOICE, order_id, _issue)


def _issue(order: Order) -> StoredResponse:
    invoice = Invoice.objects.create(
        order=order, idempotency_key=order.fulfilment_key, sequence=_next_invoice_sequence(), total=order.total
    )
    stalls.wait_if_armed(INVOICE.name, order)  # the number is taken; the bakery has not committed
    checkpoint_move(order, Order.Status.INVOICED)
    outbox.enqueue(EMAIL.task, order.pk)
    step_event(INVOICE, order, Event.Kind.STEP_DONE, invoice=invoice.number)
    return _answer(201, invoice=invoice.number)


def confirmation_send(*, order_id: int) -> Outcome | None:
    """Send the one confirmation email through Django's email backend."""
    return _run_step(EMAIL, order_id, _send)


def _send(order: Order) -> StoredResponse:
    invoice = Invoice.objects.get(order=order)
    to = f"customer-{str(order.customer_id)[:8]}@customers.freeds-bakery.example"
    subject = f"Your Freed's Bakery order #{order.pk} is confirmed ({invoice.number})"
    receipt = EmailReceipt.objects.create(order=order, idempotency_key=order.fulfilment_key, to=to, subject=subject)
    lines = [f"{item.quantity} x {item.cake.name}  £{item.unit_price}" for item in order.items.select_related("cake")]
    body = "\n".join([
        "Thank you for your order. It is paid and we are baking it now.", "", *lines, "",
        f"Total: £{order.total}", f"Invoice {invoice.number}: {reverse('invoice-detail', args=[invoice.number])}",
        "", "Baked once, whatever the tunnel does.", "Freed's Bakery",
    ])
    stalls.wait_if_armed(EMAIL.name, order)  # the receipt is written, the email not sent yet
    # Sent inside the step's transaction: if sending fails, the receipt rolls back and the key
    # is released, so a retry sends it. (A crash between sending and COMMIT could still send a
    # second email: SMTP itself has no idempotency key, so this is at-least-once at the edge.)
    mail.send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to])
    checkpoint_move(order, Order.Status.NOTIFIED)
    step_event(EMAIL, order, Event.Kind.STEP_DONE, to=to)
    return _answer(200, email=receipt.pk, to=to)


def step_retrying(*, task: str, order_id: int | None, error: BaseException, attempt: int) -> None:
    """A step failed this time and Celery will run it again: show it on the timeline."""
    if task not in STEPS_BY_TASK:
        return
    with order_locked(order_id) as order:
        if order is not None:
            step_event(STEPS_BY_TASK[task], order, Event.Kind.RETRY, attempt=attempt, reason=_reason(error))


def step_failed(*, task: str, order_id: int | None, error: BaseException) -> None:
    """A step gave up. A payment that stayed unreachable through every retry fails the order."""
    if task not in STEPS_BY_TASK or order_id is None:
        return
    if isinstance(error, provider.TransientProviderError):
        attempts = Charge.objects.filter(order_id=order_id).values_list("attempts", flat=True).first() or 0
        payment_give_up(order_id=order_id,
                        reason=f"Payment provider unavailable after {attempts} attempts: {error}")
        return
    # Anything else is a bug or an outage (PostgreSQL gone mid-step): the order stays at its
    # checkpoint, and the completer (payments/completer.py) re-sends the step once it has stalled.
    with order_locked(order_id) as order:
        if order is not None:
            step_event(STEPS_BY_TASK[task], order, Event.Kind.FAILED, reason=_reason(error))


# --- the step runner --------------------------------------------------------------------------


@contextmanager
def order_locked(order_id: int | None) -> Iterator[Order | None]:
    """The order, locked FOR KEY SHARE until the block ends, or None if a reset deleted it: the
    one lock of the pipeline (see "Locking" above)."""
    with transaction.atomic():
        found = Order.objects.raw(f"SELECT * FROM {Order._meta.db_table} WHERE id = %s FOR KEY SHARE", [order_id])
        yield next(iter(found), None)


def _run_step(step: Step, order_id: int, work: Callable[[Order], StoredResponse]) -> Outcome | None:
    """Run ``work`` once per order through the idempotency layer, locking the order all along."""
    _reopen_if_stopped(order_id, step)
    with order_locked(order_id) as order:
        if order is None:
            # Deleted by "Reset my bakery" while its task waited in the queue: nothing left to do.
            logger.info("fulfilment: order %s no longer exists for %s", order_id, step.task)
            return None
        if step.starts_at is not None and not checkpoint_reached(order, step.starts_at):
            # An early or stray delivery does nothing and, as it never reaches the layer, keeps the key.
            logger.info("fulfilment: %s skipped for order #%s at %s", step.task, order.pk, order.status)
            return None
        ref = KeyRef(scope=step.scope, owner=str(order.customer_id), key=str(order.fulfilment_key),
                 source=step.source, customer_id=order.customer_id)
        outcome: Outcome = run_once(ref, {"order": order.pk}, partial(_unless_done, step, order, work))
        if outcome.replayed:
            # The layer has recorded its REPLAY; this names what was skipped, on the order's timeline.
            step_event(step, order, Event.Kind.DEDUPE, task=step.task, skipped=f"{step.name} already done")
    return outcome


def _unless_done(step: Step, order: Order, work: Callable[[Order], StoredResponse]) -> StoredResponse:
    """The key's record is gone (purged after IDEMPOTENCY_KEY_TTL) but the checkpoint may show the
    step done: then do nothing again. The unique constraints would refuse a second row anyway."""
    if checkpoint_reached(order, step.done_at):
        step_event(step, order, Event.Kind.DEDUPE, task=step.task, skipped=f"{step.name} already done",
                   by="checkpoint")
        return _answer(200, already=order.status)
    return work(order)


def _reopen_if_stopped(order_id: int, step: Step) -> None:
    """An operator re-runs a step of an order the completer gave up on: put the order back at the
    checkpoint its records prove (charge, invoice, email), with a fresh budget of resumptions.
    Committed on its own, before the step: a step that then fails leaves the order reopened."""
    if not Order.objects.filter(pk=order_id, status=Order.Status.FULFILMENT_FAILED).exists():
        return
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(pk=order_id).first()
        if order is None or order.status != Order.Status.FULFILMENT_FAILED:
            return
        checkpoint_move(order, _proven_checkpoint(order))
    logger.info("fulfilment: order %s reopened at %s to run %s", order_id, order.status, step.task)


def _proven_checkpoint(order: Order) -> Order.Status:
    if EmailReceipt.objects.filter(order=order).exists():
        return Order.Status.NOTIFIED
    if Invoice.objects.filter(order=order).exists():
        return Order.Status.INVOICED
    if Charge.objects.filter(order=order, status=Charge.Status.SUCCEEDED).exists():
        return Order.Status.PAID
    return Order.Status.PLACED


def _count_failed_attempt(order_id: int, error: BaseException) -> None:
    """The step's transaction rolled back, but the call to the provider happened: count it."""
    with order_locked(order_id) as order:
        if order is None:
            return
        charge, _ = Charge.objects.get_or_create(
            order=order,
            defaults={"idempotency_key": order.fulfilment_key, "amount": order.total, "status": Charge.Status.PENDING},
        )
        Charge.objects.filter(pk=charge.pk).update(attempts=F("attempts") + 1, failure_reason=_reason(error))


def _next_invoice_sequence() -> int:
    """Lock the single counter row until this transaction ends; concurrent invoices take turns."""
    InvoiceCounter.objects.bulk_create([InvoiceCounter(pk=1)], ignore_conflicts=True)
    counter = InvoiceCounter.objects.select_for_update().get(pk=1)
    counter.last_sequence += 1
    counter.save(update_fields=["last_sequence"])
    return counter.last_sequence


def _answer(http_status: int, **body: Any) -> StoredResponse:
    return StoredResponse(http_status, json.dumps(body).encode(), {"Content-Type": "application/json"})


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:200]
