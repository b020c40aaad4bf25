"""Writing the timeline: one function every part of the bakery uses to say what happened."""

from __future__ import annotations

import uuid
from typing import Any

from orders.models import Customer, Event, Order

Kind = Event.Kind


def record_event(*, source: str, kind: str, key: str | uuid.UUID | None = "", customer: Customer | None = None,
                 customer_id: uuid.UUID | str | None = None, order: Order | None = None, order_id: int | None = None,
                 **detail: Any) -> Event:
    """Store one timeline event. Keys are stored as text so HTTP and task keys look alike."""
    return Event.objects.create(
        source=source,
        kind=kind,
        key=str(key or ""),
        customer_id=customer_id or (customer.pk if customer is not None else None),
        order_id=order_id or (order.pk if order is not None else None),
        detail=detail,
    )
