"""The completer: nothing stays stranded between two checkpoints.

A step's message can be lost after the outbox handed it to the broker: its task ran while
PostgreSQL was down and failed, its worker died and Redis lost the unacknowledged task, a bug
raised. The order then sits at its checkpoint and nothing else would ever move it. Beat runs
``stranded_complete`` every few seconds (``payments.complete_stranded``); it finds orders on their
way (placed, paid, invoiced) with no sign of life for ``FULFILMENT_STALL_SECONDS`` (no checkpoint,
no attempt, no retry on the timeline) and re-sends the next step through the outbox. The step
dedupes on the order's key like any redelivery, so a resumption that was not needed costs one
"duplicate skipped" and nothing else.

* Each resumption is a ``resumed`` event on the order's timeline, counted in ``order.resumptions``;
  the wait before the next one doubles (stall x 2^resumptions), and after
  ``FULFILMENT_MAX_RESUMPTIONS`` in vain the order stops in ``fulfilment_failed`` with the reason.
  Re-running the step by name reopens it (payments/services.py).
* An order whose next message is still pending in the outbox is the relay's (Redis is down), and
  one whose next message still waits in the broker's queue is merely behind a backlog: re-sending
  would only queue a second copy, and giving up would blame the order for the broker or the
  queue. While the broker cannot be asked what it holds, the completer waits.
* It is safe to run any number of times at once (beat, an operator): each run locks the orders
  it works on FOR UPDATE SKIP LOCKED, so two runs never resume the same order, and an order whose
  step is running right now (its row is locked by the step) is skipped too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.db.models.functions import Greatest
from django.utils import timezone

from orders import outbox
from orders.models import Event, Order, OutboxMessage
from payments.steps import CAPTURE, EMAIL, INVOICE, Step, checkpoint_move, step_event

NEXT_STEP: dict[str, Step] = {Order.Status.PLACED: CAPTURE, Order.Status.PAID: INVOICE, Order.Status.INVOICED: EMAIL}


@dataclass(frozen=True)
class CompleterRun:
    resumed: list[int]
    stopped: list[int]


def stranded_orders(*, now: datetime | None = None) -> QuerySet[Order]:
    """Orders on their way with no sign of life for FULFILMENT_STALL_SECONDS, oldest first."""
    now = now or timezone.now()
    quiet_since = now - timedelta(seconds=settings.FULFILMENT_STALL_SECONDS)
    last_event = Event.objects.filter(order=OuterRef("pk")).order_by("-created_at").values("created_at")[:1]
    return (
        Order.objects.filter(status__in=list(NEXT_STEP), updated_at__lt=quiet_since)
        .exclude(Exists(Event.objects.filter(order=OuterRef("pk"), created_at__gte=quiet_since)))
        .annotate(last_sign_of_life=Greatest("updated_at", Subquery(last_event)))
        .order_by("updated_at")
    )


def stranded_complete(*, now: datetime | None = None, limit: int = 100) -> CompleterRun:
    """Re-send the next step of every stranded order, or stop it after the last resumption."""
    now = now or timezone.now()
    stall = settings.FULFILMENT_STALL_SECONDS
    resumed: list[int] = []
    stopped: list[int] = []
    with transaction.atomic():
        candidates = list(stranded_orders(now=now).select_for_update(skip_locked=True, of=("self",))[:limit])
        if not candidates:
            return CompleterRun(resumed=resumed, stopped=stopped)
        queued = outbox.queued({step.task for step in NEXT_STEP.values()})
        if queued is None:
            return CompleterRun(resumed=resumed, stopped=stopped)
        waiting_for_relay = _orders_with_pending_messages([order.pk for order in candidates])
        for order in candidates:
            last_sign_of_life = cast(datetime | None, getattr(order, "last_sign_of_life", None))  # from stranded_orders
            quiet = (now - (last_sign_of_life or order.updated_at)).total_seconds()
            step = NEXT_STEP[order.status]
            if order.pk in waiting_for_relay or (step.task, order.pk) in queued or quiet < stall * 2**order.resumptions:
                continue
            if order.resumptions >= settings.FULFILMENT_MAX_RESUMPTIONS:
                reason = (f"The {step.name} step did not finish after {order.resumptions} resumptions "
                          f"(stopped at {order.status}); re-run {step.task} to try again.")
                step_event(step, order, Event.Kind.FAILED, reason=reason, by="completer", stopped_at=order.status)
                checkpoint_move(order, Order.Status.FULFILMENT_FAILED, failure_reason=reason)
                stopped.append(order.pk)
                continue
            order.resumptions += 1
            order.save(update_fields=["resumptions", "updated_at"])
            outbox.enqueue(step.task, order.pk)
            step_event(step, order, Event.Kind.RESUMED, by="completer", attempt=order.resumptions, task=step.task,
                       quiet_seconds=round(quiet, 1))
            resumed.append(order.pk)
    return CompleterRun(resumed=resumed, stopped=stopped)


def _orders_with_pending_messages(order_ids: list[int]) -> set[int]:
    if not order_ids:
        return set()
    pending = OutboxMessage.objects.filter(dispatched_at__isnull=True, task__in=[s.task for s in NEXT_STEP.values()])
    return {args[0] for args in pending.values_list("args", flat=True) if args and args[0] in set(order_ids)}
