"""Placing an order over HTTP: what the order view validates, what a retry must repeat, and the
handler that places the order and answers. The bench's peers protect this same handler."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.utils.module_loading import import_string
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from orders import services
from orders.models import Customer
from orders.serializers import OrderInSerializer, PlacedOrderSerializer


def validated_order(data: object) -> dict[str, Any]:
    """The order's own validation: runs before the key is claimed, so its 400 does not spend the key."""
    incoming = OrderInSerializer(data=data)
    incoming.is_valid(raise_exception=True)
    validated: dict[str, Any] = incoming.validated_data
    return validated


def order_payload(data: object) -> dict[str, Any]:
    """What a retry must repeat, compared with the first request's: the parsed body's items and note
    (note defaults to ""), so key order, spacing and unknown extra fields never matter."""
    if not isinstance(data, dict):
        return {"body": data}
    items = data.get("items")
    if isinstance(items, list):
        items = [{"cake": i.get("cake"), "quantity": i.get("quantity")} if isinstance(i, dict) else i for i in items]
    return {"items": items, "note": data.get("note", "")}


def order_answer(request: Request, *, customer: Customer, validated: dict[str, Any], key: str | None,
                 idempotent: bool) -> HttpResponse:
    """The order handler, run while the key is claimed: place the order and answer 201 with it,
    serialized from what was just written.

    First it calls each of ``settings.ORDER_HANDLER_HOOKS`` with the request: the site's extension
    point inside the handler (the tunnel simulator's slow bakery is slow here, while the key is
    really in use)."""
    for hook in settings.ORDER_HANDLER_HOOKS:
        import_string(hook)(request)
    order, items = services.order_place(customer=customer, items=validated["items"], note=validated["note"],
                                        idempotency_key=key, idempotent=idempotent)
    body = PlacedOrderSerializer(order, items=items).data
    return HttpResponse(JSONRenderer().render(body), status=201, content_type="application/json",
                        headers={"Location": request.build_absolute_uri(f"/api/orders/{order.pk}/")})
