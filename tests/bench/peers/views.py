"""The order endpoint each peer protects, and the login one of them needs."""

from __future__ import annotations

from django.contrib.auth import get_user_model, login
from django.http import HttpResponse
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from orders import selectors, services
from orders.api import ORDER_KEY, ORDER_SCOPE, CustomerAPIView
from orders.serializers import OrderInSerializer, OrderSerializer
from orders.signals import idempotent_handler_starting


class PlainOrderCreate(CustomerAPIView):
    """The bakery's order handler without the bakery's idempotency layer."""

    def post(self, request):
        incoming = OrderInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        # The configurable slow handler (X-Bakery-Tunnel: slow), as in the bakery's own handler.
        idempotent_handler_starting.send(sender=ORDER_SCOPE, request=request)
        order = services.order_place(
            customer=request.customer, items=incoming.validated_data["items"], note=incoming.validated_data["note"],
            idempotency_key=ORDER_KEY.parse_or_none(request.headers.get("Idempotency-Key")),
            idempotent=False,
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
        # The bakery has two backends (django-axes first), so login() must be told which one vouches.
        login(request._request, user, backend="django.contrib.auth.backends.ModelBackend")
        return Response({"user": user.username})
