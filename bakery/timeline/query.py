"""The timeline's query: which of a customer's events make up their most recent order intents."""

from __future__ import annotations

from django.db.models import Q

from orders.models import Event, Order

# Sources of the HTTP side of an intent (the rest are the Celery steps, hung off the order).
HTTP_SOURCES = {"api", "layer", "tunnel", "order"}


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
