"""The three fulfilment steps by name, and how a step marks its progress: the order's checkpoint
and the order's timeline. The steps themselves run in payments/services.py; the completer
(payments/completer.py) uses the same names and marks to resume or stop a stalled order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orders.events import record_event
from orders.models import Event, Order


@dataclass(frozen=True)
class Step:
    name: str
    scope: str  # the idempotency layer's scope
    source: Event.Source  # the timeline's source
    task: str  # the public Celery task name
    starts_at: Order.Status | None  # the checkpoint it needs first (None: any)
    done_at: Order.Status  # the checkpoint that shows it done


CAPTURE = Step("capture", "payments.capture", Event.Source.PAYMENT, "payments.capture_payment",
               None, Order.Status.PAID)
INVOICE = Step("invoice", "payments.invoice", Event.Source.INVOICE, "payments.issue_invoice",
               Order.Status.PAID, Order.Status.INVOICED)
EMAIL = Step("email", "payments.email", Event.Source.EMAIL, "payments.send_confirmation",
             Order.Status.INVOICED, Order.Status.NOTIFIED)
STEPS_BY_TASK = {step.task: step for step in (CAPTURE, INVOICE, EMAIL)}

PATH = [Order.Status.PLACED, Order.Status.PAID, Order.Status.INVOICED, Order.Status.NOTIFIED]


def checkpoint_reached(order: Order, status: Order.Status) -> bool:
    """The order stands at ``status`` or further along the happy path."""
    return order.status in PATH and PATH.index(Order.Status(order.status)) >= PATH.index(status)


def checkpoint_move(order: Order, status: Order.Status, *, failure_reason: str = "") -> None:
    # A checkpoint that moves gives the next step a fresh budget of completer resumptions.
    order.status, order.failure_reason, order.resumptions = status, failure_reason[:200], 0
    order.save(update_fields=["status", "failure_reason", "resumptions", "updated_at"])


def step_event(step: Step, order: Order, kind: Event.Kind, **detail: Any) -> Event:
    """One event on the order's timeline, labelled with the step and keyed by the fulfilment key."""
    event: Event = record_event(source=step.source, kind=kind, key=order.fulfilment_key,
                                customer_id=order.customer_id, order=order, step=step.name, scope=step.scope,
                                order_key=str(order.idempotency_key or ""), **detail)
    return event
