"""What the facilitator can change: reset one learner, or the whole room."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from orders.models import Customer, Event, Order
from orders.services import customers_reset

# The room is reset this many learners to a transaction: each takes one lock per learner (the lock
# a learner's own reset takes), and PostgreSQL's lock table holds a few thousand at most, shared by
# every connection. A single transaction for a room of 13,000 ran out of it after 148 s.
ROOM_RESET_BATCH = 200
# A press resets batches until this long has passed, then answers how far it got; pressing again
# continues. Well inside what a browser waits for an answer.
ROOM_RESET_SECONDS = 20.0


@dataclass(frozen=True)
class RoomReset:
    reset: int  # learners reset by this press
    total: int  # learners who had something to reset when it began

    @property
    def finished(self) -> bool:
        return self.reset >= self.total


def _reset(ids: list) -> None:
    """Give these learners an empty bakery; their sessions, names and switches stay as they are."""
    with transaction.atomic():
        customers_reset(customer_ids=ids)
        # update(), not save(): a reset by the facilitator is not the learner being active.
        Customer.objects.filter(pk__in=ids).update(last_scenario="")


def workshop_reset_learner(*, customer: Customer) -> None:
    _reset([customer.pk])


def workshop_reset_room(*, batch: int | None = None, seconds: float | None = None) -> RoomReset:
    """Reset every learner who has anything to reset, ``batch`` learners to a transaction, for about
    ``seconds`` (at least one batch); say how many were reset of how many there were. Each batch
    commits on its own, so a press that stops early (or a database that fails mid-way) leaves whole
    learners reset and the rest untouched, and the next press carries on with the rest."""
    batch, seconds = batch or ROOM_RESET_BATCH, ROOM_RESET_SECONDS if seconds is None else seconds
    has_something = (Exists(Order.objects.filter(customer=OuterRef("pk")))
                     | Exists(Event.objects.filter(customer=OuterRef("pk"))) | ~Q(last_scenario=""))
    waiting = Customer.objects.filter(has_something).order_by("pk").values_list("pk", flat=True)
    total = waiting.count()
    deadline = time.monotonic() + seconds
    done, after = 0, None
    while done < total:
        ids = list((waiting if after is None else waiting.filter(pk__gt=after))[:batch])
        if not ids:
            break
        _reset(ids)
        done, after = done + len(ids), ids[-1]
        if time.monotonic() >= deadline:
            break
    return RoomReset(reset=min(done, total), total=total)
