"""The timeline's queries: which of a customer's events make up their most recent order intents, and
for the demo terminal (:mod:`.feed`), the events committed since it last looked and their orders."""

from __future__ import annotations

import uuid

from django.db.models import Q

from orders.models import Event, Order

# Sources of the HTTP side of an intent (the rest are the Celery steps, hung off the order).
HTTP_SOURCES = {Event.Source.API, Event.Source.LAYER, Event.Source.TUNNEL, Event.Source.ORDER}


def timeline_events(*, customer, limit_intents: int = 6) -> tuple[list[Event], dict[str, int]]:
    """This customer's events for the most recent intents, oldest first, and which order each
    back-office key belongs to (the Celery steps key their events on the order's fulfilment key)."""
    mine = Event.objects.filter(Q(customer=customer) | Q(order__customer=customer))
    recent_keys = list(
        mine.filter(source__in=HTTP_SOURCES).values_list("key", flat=True).order_by("-created_at", "-id")[:500]
    )
    keys = list(dict.fromkeys(recent_keys))[:limit_intents]
    order_ids = mine.filter(kind=Event.Kind.ORDER_STORED, key__in=keys).values_list("order_id", flat=True)
    fulfilment = {
        str(key): pk for pk, key in Order.objects.filter(pk__in=list(order_ids)).values_list("pk", "fulfilment_key")
    }
    events = mine.filter(Q(key__in=keys) | Q(order_id__in=list(order_ids)) | Q(key__in=list(fulfilment)))
    return list(events.order_by("created_at", "id")), fulfilment


def events_after(last_id: int, *, also: list[int] = ()) -> list[Event]:
    """Every event after ``last_id``, and those of ``also`` (ids skipped earlier), in id order."""
    return list(Event.objects.filter(Q(id__gt=last_id) | Q(id__in=list(also))).order_by("id"))


def last_event_id() -> int:
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


def order_of(event: Event) -> Order | None:
    """The order an event speaks of: its own, the order of a back-office key, or the customer's latest
    order with the browser's key made before the event (with idempotency off there may be several)."""
    orders = Order.objects.prefetch_related("items__cake")
    if event.order_id:
        return orders.filter(pk=event.order_id).first()
    if not event.key:
        return None
    found = orders.filter(fulfilment_key=event.key).first() if _is_uuid(event.key) else None
    if found is None and event.customer_id and _is_uuid(event.key):
        found = (orders.filter(customer_id=event.customer_id, idempotency_key=event.key,
                               created_at__lte=event.created_at).order_by("-created_at", "-id").first())
    return found


def earlier_order_with_key(order: Order) -> Order | None:
    """The first order of the same customer with the same browser key, if this one is not it."""
    if order.idempotency_key is None:
        return None
    return (Order.objects.filter(customer_id=order.customer_id, idempotency_key=order.idempotency_key)
            .exclude(pk=order.pk).filter(Q(created_at__lt=order.created_at) | Q(created_at=order.created_at,
                                                                                 pk__lt=order.pk))
            .order_by("created_at", "id").first())


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(str(text))
    except ValueError:
        return False
    return True
