"""Stalls: the back office told to stop in the middle of a step for a while.

A real back office is kept waiting mid-step: a provider that charged answers late, a mail server
takes its time. Then its worker can die with the step half done, which is what the fulfilment
pipeline must survive. ``arm("invoice", 120)`` makes the next run of that step wait 120 s at that
point, inside its transaction (the capture once the provider has charged, the invoice once its
number is taken, the email with its receipt written and the email not sent), so a drill can kill
the worker there and watch the order finish exactly once anyway.

One run takes an armed stall, and only one: the next delivery of the step runs straight through.
The stall row is written and taken through the provider's connection, in autocommit, so
:func:`taken` shows the order and the worker process stopped there while the step's own
transaction is still open.
"""

from __future__ import annotations

import logging
import os
import time

from django.utils import timezone

from orders.models import Order
from payments.models import Stall

logger = logging.getLogger(__name__)

DB = "provider"  # outside the step's transaction (see the module docstring)


def arm(step: str, seconds: float) -> Stall:
    """Make the next run of ``step`` (capture, invoice or email) stop ``seconds`` mid-step."""
    stall, _ = Stall.objects.using(DB).update_or_create(
        step=Stall.Step(step),
        defaults={"seconds": seconds, "armed_at": timezone.now(), "order_id": None, "pid": None, "taken_at": None},
    )
    return stall


def disarm(step: str) -> None:
    """Take back an armed stall that no run has taken yet (a taken one is already running out)."""
    Stall.objects.using(DB).filter(step=step, taken_at__isnull=True).delete()


def taken(step: str) -> Stall | None:
    """The stall of ``step`` once a run has taken it (its order and worker process), else None."""
    return Stall.objects.using(DB).filter(step=step, taken_at__isnull=False).first()


def wait_if_armed(step: str, order: Order) -> None:
    """Called at the stall point of each step: take the step's armed stall, if any, and wait it out."""
    armed = Stall.objects.using(DB).filter(step=step, taken_at__isnull=True).values_list("pk", "seconds").first()
    if armed is None:
        return
    pk, seconds = armed
    # One UPDATE decides who takes it: of two runs at the same moment, one waits and one goes on.
    if not Stall.objects.using(DB).filter(pk=pk, taken_at__isnull=True).update(
        order_id=order.pk, pid=os.getpid(), taken_at=timezone.now()
    ):
        return
    logger.warning("fulfilment: order %s stalls in %s for %s s (armed stall)", order.pk, step, seconds)
    time.sleep(seconds)
