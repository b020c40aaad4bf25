"""Writing the timeline: one function every part of the bakery uses to say what happened."""

from orders.models import Event

Kind = Event.Kind


def record_event(*, source: str, kind: str, key="", customer=None, customer_id=None, order=None, order_id=None,
                 **detail):
    """Store one timeline event. Keys are stored as text so HTTP and task keys look alike."""
    return Event.objects.create(
        source=source,
        kind=kind,
        key=str(key or ""),
        customer_id=customer_id or (customer.pk if customer is not None else None),
        order_id=order_id or (order.pk if order is not None else None),
        detail=detail,
    )
