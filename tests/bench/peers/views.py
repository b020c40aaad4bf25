"""The order endpoint each peer protects, and the login one of them needs."""

from __future__ import annotations

from django.contrib.auth import get_user_model, login
from rest_framework.response import Response

from orders.api import ORDER_KEY, ORDER_SCOPE, CustomerAPIView, order_placed
from orders.serializers import OrderInSerializer
from orders.signals import idempotent_handler_starting


class PlainOrderCreate(CustomerAPIView):
    """The bakery's order handler without the bakery's idempotency layer."""

    def post(self, request):
        incoming = OrderInSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        # The configurable slow handler (X-Bakery-Tunnel: slow), as in the bakery's own handler.
        idempotent_handler_starting.send(sender=ORDER_SCOPE, request=request)
        # The bakery's own handler, answering an HttpResponse: drf-idempotency's decorator stores the
        # response before DRF would render a Response (it fails with ".accepted_renderer not set").
        return order_placed(request, validated=incoming.validated_data,
                            idempotency_key=ORDER_KEY.parse_or_none(request.headers.get("Idempotency-Key")),
                            idempotent=False)


class BenchLogin(CustomerAPIView):
    """drf-idempotencykey only guards authenticated users, so its customers log in as a user each."""

    def post(self, request):
        user, _ = get_user_model().objects.get_or_create(username=str(request.customer.pk))
        # The bakery has two backends (django-axes first), so login() must be told which one vouches.
        login(request._request, user, backend="django.contrib.auth.backends.ModelBackend")
        return Response({"user": user.username})
