"""The order endpoint each peer protects, and the login one of them needs."""

from __future__ import annotations

from django.contrib.auth import get_user_model, login
from rest_framework.response import Response

from orders.authentication import CustomerAPIView
from orders.keys import ORDER_KEY
from orders.placing import order_answer, validated_order


class PlainOrderCreate(CustomerAPIView):
    """The bakery's order handler without the bakery's idempotency layer."""

    def post(self, request):
        validated = validated_order(request.data)
        # The bakery's own handler (with its hooks: the slow bakery), answering an HttpResponse:
        # drf-idempotency's decorator stores the response before DRF would render a Response (it
        # fails with ".accepted_renderer not set").
        return order_answer(request, customer=request.acting.customer(), validated=validated,
                            key=ORDER_KEY.parse_or_none(request.headers.get("Idempotency-Key")), idempotent=False)


class BenchLogin(CustomerAPIView):
    """drf-idempotencykey only guards authenticated users, so its customers log in as a user each."""

    def post(self, request):
        user, _ = get_user_model().objects.get_or_create(username=str(request.acting.customer().pk))
        # The bakery has two backends (django-axes first), so login() must be told which one vouches.
        login(request._request, user, backend="django.contrib.auth.backends.ModelBackend")
        return Response({"user": user.username})
