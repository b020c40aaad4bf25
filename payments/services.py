"""The fulfilment pipeline: placed -> paid -> invoiced -> notified, or payment_failed with a reason.

Each step is one service, called by a Celery task with the order id (payments/tasks.py). The queue
delivers at least once, so every step goes through the same idempotency layer as the order API
(``orders.idempotency.run_once``), keyed by the order's ``fulfilment_key``:

* the step's work, its checkpoint (``order.status``) and the outbox message for the next step are
  written in one transaction, so a crash anywhere resumes from the last checkpoint and loses nothing;
* a delivery of a finished step replays the stored answer and is recorded as a DEDUPE event;
* unique constraints on ``Charge``/``Invoice``/``EmailReceipt.idempotency_key`` (and one row per
  order) are the backstop: PostgreSQL, not this code, makes a second charge, invoice or email impossible;
* every write about an order happens while the order's row is locked, so "Reset my bakery" (which
  locks the customer's orders FOR UPDATE first) either waits for a running step or makes the step
  find no order and do nothing: a reset never fails, and no task fails on a missing order.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core import mail
from django.db import transaction
from django.db.models import F
from django.urls import reverse

from orders import outbox
from orders.events import Kind, record_event
from orders.idempotency import KeyRef, Outcome, StoredResponse, run_once
from orders.models import Order
from payments import provider
from payments.models import Charge, EmailReceipt, Invoice, InvoiceCounter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    name: str
    scope: str  # the idempotency layer's scope
    source: str  # the timeline's source
    task: str  # the public Celery task name


CAPTURE = Step("capture", "payments.capture", "payment", "payments.capture_payment")
INVOICE = Step("invoice", "payments.invoice", "invoice", "payments.issue_invoice")
EMAIL = Step("email", "payments.email", "email", "payments.send_confirmation")
STEPS_BY_TASK = {step.task: step for step in (CAPTURE, INVOICE, EMAIL)}


def payment_capture(*, order_id: int) -> Outcome | None:
    """Take the money once. Transient provider errors propagate, so Celery retries with backoff."""
    order = _order_or_none(order_id)
    if order is None:
        return None

    def capture() -> StoredResponse:
        locked = _lock(order)
        if _past(locked, Order.Status.PAID):
            return _done_by_checkpoint(CAPTURE, locked)
        charge, _ = Charge.objects.get_or_create(
            order=locked,
            defaults={"idempotency_key": locked.fulfilment_key, "amount": locked.total,
                      "status": Charge.Status.PENDING},
        )
        charge.attempts += 1
        try:
            taken = provider.charge(idempotency_key=str(locked.fulfilment_key), amount=locked.total,
                                    owner=str(locked.customer_id))
        except provider.Declined as declined:
            # A decline is an answer, not an error: it is stored, and the key is spent on it.
            charge.status, charge.provider_charge_id = Charge.Status.FAILED, declined.charge_id
            charge.failure_reason = str(declined)
            charge.save()
            _checkpoint(locked, Order.Status.PAYMENT_FAILED, failure_reason=f"Payment declined: {declined.reason}")
            _event(CAPTURE, locked, Kind.FAILED, reason=locked.failure_reason, attempts=charge.attempts)
            return _answer(402, charge=declined.charge_id, status="declined")
        _pause_here_for_tests(CAPTURE, locked)  # the provider has charged; the bakery has not committed
        charge.status, charge.provider_charge_id, charge.failure_reason = Charge.Status.SUCCEEDED, taken.charge_id, ""
        charge.save()
        _checkpoint(locked, Order.Status.PAID)
        outbox.enqueue(INVOICE.task, locked.pk)
        _event(CAPTURE, locked, Kind.STEP_DONE, charge=taken.charge_id, attempts=charge.attempts)
        return _answer(200, charge=taken.charge_id, status="succeeded")

    try:
        return _run_step(CAPTURE, order, capture)
    except provider.TransientProviderError as error:
        _count_failed_attempt(order.pk, error)
        raise


def payment_give_up(*, order_id: int, reason: str) -> None:
    """After the last retry: the order ends in payment_failed with the reason (called by the task)."""
    with transaction.atomic():
        order = Order.objects.select_for_update().filter(pk=order_id).first()
        if order is None or order.status != Order.Status.PLACED:
            return
        Charge.objects.filter(order=order).update(status=Charge.Status.FAILED, failure_reason=reason[:200])
        _checkpoint(order, Order.Status.PAYMENT_FAILED, failure_reason=reason)
        _event(CAPTURE, order, Kind.FAILED, reason=order.failure_reason)


def invoice_issue(*, order_id: int) -> Outcome | None:
    """Give a paid order the next invoice number: no gaps, no duplicates, even under concurrency."""
    order = _order_or_none(order_id)
    if order is None or not _reached(order, Order.Status.PAID, INVOICE):
        return None

    def issue() -> StoredResponse:
        locked = _lock(order)
        if _past(locked, Order.Status.INVOICED):
            return _done_by_checkpoint(INVOICE, locked)
        invoice = Invoice.objects.create(
            order=locked, idempotency_key=locked.fulfilment_key, sequence=_next_invoice_sequence(), total=locked.total
        )
        _pause_here_for_tests(INVOICE, locked)
        _checkpoint(locked, Order.Status.INVOICED)
        outbox.enqueue(EMAIL.task, locked.pk)
        _event(INVOICE, locked, Kind.STEP_DONE, invoice=invoice.number)
        return _answer(201, invoice=invoice.number)

    return _run_step(INVOICE, order, issue)


def confirmation_send(*, order_id: int) -> Outcome | None:
    """Send the one confirmation email through Django's email backend."""
    order = _order_or_none(order_id)
    if order is None or not _reached(order, Order.Status.INVOICED, EMAIL):
        return None

    def send() -> StoredResponse:
        locked = _lock(order, Order.objects.select_related("invoice"))
        if _past(locked, Order.Status.NOTIFIED):
            return _done_by_checkpoint(EMAIL, locked)
        invoice = locked.invoice
        to = f"customer-{str(locked.customer_id)[:8]}@customers.freeds-bakery.example"
        subject = f"Your Freed's Bakery order #{locked.pk} is confirmed ({invoice.number})"
        receipt = EmailReceipt.objects.create(order=locked, idempotency_key=locked.fulfilment_key, to=to,
                                              subject=subject)
        lines = [f"{item.quantity} x {item.cake.name}  £{item.unit_price}" for item in
                 locked.items.select_related("cake")]
        body = "\n".join([
            "Thank you for your order. It is paid and we are baking it now.", "", *lines, "",
            f"Total: £{locked.total}", f"Invoice {invoice.number}: {reverse('invoice-detail', args=[invoice.number])}",
            "", "Baked once, whatever the tunnel does.", "Freed's Bakery",
        ])
        _pause_here_for_tests(EMAIL, locked)  # the receipt is written, the email not sent yet
        # Sent inside the step's transaction: if sending fails, the receipt rolls back and the key
        # is released, so a retry sends it. (A crash between sending and COMMIT could still send a
        # second email: SMTP itself has no idempotency key, so this is at-least-once at the edge.)
        mail.send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to])
        _checkpoint(locked, Order.Status.NOTIFIED)
        _event(EMAIL, locked, Kind.STEP_DONE, to=to)
        return _answer(200, email=receipt.pk, to=to)

    return _run_step(EMAIL, order, send)


def step_retrying(*, task: str, order_id, error: BaseException, attempt: int) -> None:
    """A step failed this time and Celery will run it again: show it on the timeline."""
    if task not in STEPS_BY_TASK:
        return
    with order_held(order_id) as order:
        if order is not None:
            _event(STEPS_BY_TASK[task], order, Kind.RETRY, attempt=attempt, reason=_reason(error))


def step_failed(*, task: str, order_id, error: BaseException) -> None:
    """A step gave up. A payment that stayed unreachable through every retry fails the order."""
    if task not in STEPS_BY_TASK:
        return
    if isinstance(error, provider.TransientProviderError):
        attempts = Charge.objects.filter(order_id=order_id).values_list("attempts", flat=True).first() or 0
        payment_give_up(order_id=order_id,
                        reason=f"Payment provider unavailable after {attempts} attempts: {error}")
        return
    # Anything else is a bug or an outage (PostgreSQL gone mid-step): the order stays at its
    # checkpoint, and the completer (payments/completer.py) re-sends the step once it has stalled.
    with order_held(order_id) as order:
        if order is not None:
            _event(STEPS_BY_TASK[task], order, Kind.FAILED, reason=_reason(error))


# --- helpers ----------------------------------------------------------------------------------


@contextmanager
def order_held(order_id):
    """The order, locked FOR KEY SHARE until the block ends, or None if a reset deleted it.

    KEY SHARE conflicts with the FOR UPDATE that "Reset my bakery" (and the completer) take, and
    with nothing a step does: two deliveries of one step both get here and meet at the
    idempotency key as before (the second waits, then replays or gets KeyInFlight).
    """
    with transaction.atomic():
        found = Order.objects.raw(f"SELECT * FROM {Order._meta.db_table} WHERE id = %s FOR KEY SHARE", [order_id])
        yield next(iter(found), None)


def _lock(order: Order, queryset=None) -> Order:
    """Lock the order for the step's own update. NO KEY UPDATE, so it never blocks another
    delivery's KEY SHARE (that one then waits on the idempotency key instead, which is bounded)."""
    return (queryset or Order.objects).select_for_update(no_key=True, of=("self",)).get(pk=order.pk)


def _run_step(step: Step, order: Order, handler) -> Outcome | None:
    """Run the step through the idempotency layer while holding the order (see ``order_held``):
    everything it writes, the layer's events included, commits with the order still there."""
    guard = KeyRef(scope=step.scope, owner=str(order.customer_id), key=str(order.fulfilment_key),
                  source=step.source, customer_id=order.customer_id)
    with order_held(order.pk) as held:
        if held is None:
            logger.info("fulfilment: order %s was deleted before %s ran", order.pk, step.task)
            return None
        outcome = run_once(guard, {"order": order.pk}, handler)
        if outcome.replayed:
            # The layer has recorded its REPLAY; this names what was skipped, on the order's timeline.
            _event(step, held, Kind.DEDUPE, task=step.task, skipped=f"{step.name} already done")
    return outcome


def _order_or_none(order_id) -> Order | None:
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        # Deleted by "Reset my bakery" while its task waited in the queue: nothing left to do.
        logger.info("fulfilment: order %s no longer exists", order_id)
    elif order.status == Order.Status.FULFILMENT_FAILED:
        order = _reopen(order)
    return order


def _reopen(order: Order) -> Order | None:
    """An operator re-runs a step of an order the completer gave up on: put the order back at the
    checkpoint its records prove (charge, invoice, email), with a fresh budget of resumptions."""
    with transaction.atomic():
        locked = Order.objects.select_for_update(no_key=True).filter(pk=order.pk).first()
        if locked is None or locked.status != Order.Status.FULFILMENT_FAILED:
            return locked
        _checkpoint(locked, _proven_checkpoint(locked))
    return locked


def _proven_checkpoint(order: Order) -> str:
    if EmailReceipt.objects.filter(order=order).exists():
        return Order.Status.NOTIFIED
    if Invoice.objects.filter(order=order).exists():
        return Order.Status.INVOICED
    if Charge.objects.filter(order=order, status=Charge.Status.SUCCEEDED).exists():
        return Order.Status.PAID
    return Order.Status.PLACED


PATH = [Order.Status.PLACED, Order.Status.PAID, Order.Status.INVOICED, Order.Status.NOTIFIED]


def _past(order: Order, status: str) -> bool:
    return order.status in PATH and PATH.index(order.status) >= PATH.index(status)


def _reached(order: Order, status: str, step: Step) -> bool:
    """A step runs only after the previous checkpoint; an early or stray delivery does nothing
    and, because it never reaches the layer, does not spend the key."""
    if _past(order, status):
        return True
    logger.info("fulfilment: %s skipped for order #%s at %s", step.task, order.pk, order.status)
    return False


def _done_by_checkpoint(step: Step, order: Order) -> StoredResponse:
    """The key's record is gone (purged after IDEMPOTENCY_KEY_TTL) but the checkpoint shows the
    step done: do nothing again. The unique constraints would refuse a second row anyway."""
    _event(step, order, Kind.DEDUPE, task=step.task, skipped=f"{step.name} already done", by="checkpoint")
    return _answer(200, already=order.status)


def _checkpoint(order: Order, status: str, *, failure_reason: str = "") -> None:
    # A checkpoint that moves gives the next step a fresh budget of completer resumptions.
    order.status, order.failure_reason, order.resumptions = status, failure_reason[:200], 0
    order.save(update_fields=["status", "failure_reason", "resumptions", "updated_at"])


def _count_failed_attempt(order_id: int, error: BaseException) -> None:
    """The step's transaction rolled back, but the call to the provider happened: count it."""
    with order_held(order_id) as order:
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


def _event(step: Step, order: Order, kind: str, **detail):
    return record_event(source=step.source, kind=kind, key=order.fulfilment_key, customer_id=order.customer_id,
                        order=order, step=step.name, scope=step.scope, order_key=str(order.idempotency_key or ""),
                        **detail)


def _answer(http_status: int, **body) -> StoredResponse:
    return StoredResponse(http_status, json.dumps(body).encode(), {"Content-Type": "application/json"})


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:200]


def _pause_here_for_tests(step: Step, order: Order) -> None:
    """TEST HOOK, never set in production: with BAKERY_TEST_PAUSE_IN=<step name> (capture,
    invoice or email) the step writes "<order id> <pid>" to BAKERY_TEST_PAUSE_FILE and sleeps
    BAKERY_TEST_PAUSE_SECONDS (default 60) inside its transaction, in the middle of its work, so a
    test can SIGKILL the worker process there."""
    if os.environ.get("BAKERY_TEST_PAUSE_IN") != step.name:
        return
    if marker := os.environ.get("BAKERY_TEST_PAUSE_FILE"):
        Path(marker).write_text(f"{order.pk} {os.getpid()}")
    time.sleep(float(os.environ.get("BAKERY_TEST_PAUSE_SECONDS", 60)))
