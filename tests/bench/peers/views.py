"""The order endpoint each peer protects, and the login one of them needs."""

from __future__ import annotations

import uuid

from django.contrib.auth import get_user_model, login
from django.http import HttpResponse
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from bakery import tunnel
from orders import selectors, services
from orders.api import CustomerAPIView
from orders.serializers import OrderInSerializer, OrderSerializer


def _key(request):
    try:
        return uuid.UUID(request.headers.get("Idempotency-Key", "").strip().strip('"'))
    except ValueError:
        return None


class PlainOrderCreate(CustomerAPIView):
    """The bakery's order handler without the bakery's idempotency layer."""

    def post(self, request):
        incoming = OrderInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        tunnel.inside_handler(request)  # the configurable slow handler (X-Bakery-Tunnel: slow)
        order = services.order_place(
            customer=request.customer, items=incoming.validated_data["items"], note=incoming.validated_data["note"],
            idempotency_key=_key(request), idempotent=False,
        )
        # Rendered here, as the bakery's own view does: drf-idempotency's decorator stores the response
        # before DRF would render a Response (it fails with ".accepted_renderer not set").
        body = JSONRenderer().render(OrderSerializer(selectors.order_get(customer=request.customer,
                                                                         order_id=order.pk)).data)
        response = HttpResponse(body, status=201, content_type="application/json")
        response["Location"] = request.build_absolute_uri(f"/api/orders/{order.pk}/")
        return response


class BenchLogin(CustomerAPIView):
    """drf-idempotencykey only guards authenticated users, so its customers log in as a user each."""

    def post(self, request):
        user, _ = get_user_model().objects.get_or_create(username=str(request.customer.pk))
        login(request._request, user)
        return Response({"user": user.username})
