"""The order API. Views parse and validate, call one service, and serialize (HackSoft style).

Placing an order reads top-down in :meth:`OrderListCreate.post`: who acts, the key under the
order API's policy, a finished key's answer, the order's validation, then the handler run once
under the key (orders/idempotent.py, orders/placing.py)."""

from __future__ import annotations

from django.http import HttpResponse
from django.middleware.csrf import get_token
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from orders import selectors, services
from orders.authentication import CustomerAPIView
from orders.customers import ActingAPIRequest, label_for
from orders.idempotent import KeyedWrite
from orders.keys import ORDER_KEY, ORDER_SCOPE
from orders.models import Customer
from orders.placing import order_answer, order_payload, validated_order
from orders.problems import ProblemError
from orders.serializers import OrderInSerializer, OrderSerializer
from orders.throttles import OrderBurstThrottle, OrderRateThrottle

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name="Idempotency-Key",
    type=OpenApiTypes.UUID,
    location=OpenApiParameter.HEADER,
    required=True,
    description=(
        "A UUID made by the client once per order intent and sent again, unchanged, on every retry "
        "of that intent (bare, or as a quoted sf-string). Kept for IDEMPOTENCY_KEY_TTL (default 24 h), "
        "then purged; after that it counts as new. Ignored when the customer's idempotency switch is off. "
        "Keys are scoped per customer: send the bakery_customer cookie that GET /api/me/ (or this page) set, "
        "so that a retry whose first answer was lost belongs to the same customer."
    ),
)


def _problem_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(description=description + " (application/problem+json, RFC 9457)")


class OrderListCreate(CustomerAPIView):
    throttle_classes = [OrderBurstThrottle, OrderRateThrottle]  # they count POSTs only

    @extend_schema(responses=OrderSerializer(many=True), summary="This customer's orders, newest first")
    def get(self, request: ActingAPIRequest) -> Response:
        orders = selectors.order_list(customer=request.acting.existing())
        return Response(OrderSerializer(orders, many=True).data)

    @extend_schema(
        summary="Place an order, safely retryable with an Idempotency-Key",
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        request=OrderInSerializer,
        examples=[OpenApiExample("One strawberry shortcake",
                                 value={"items": [{"cake": "strawberry-shortcake", "quantity": 1}],
                                        "note": "Happy birthday"},
                                 request_only=True)],
        responses={
            201: OpenApiResponse(OrderSerializer, description=(
                "Order placed. A retry with the same key and body gets this same status and body, "
                "byte for byte, with the header `Idempotent-Replayed: true`, and bakes nothing.")),
            400: _problem_response("Missing or malformed Idempotency-Key, no bakery_customer cookie (GET /api/me/ "
                                   "first: it sets the cookie that scopes your keys), malformed JSON, unknown "
                                   "cake, quantity outside 1-50 or a note over 500 characters; nothing created"),
            403: _problem_response("CSRF check failed: send the X-CSRFToken header with the csrftoken cookie"),
            409: _problem_response("The first request with this key is still running after the wait "
                                   "(IDEMPOTENCY_WAIT_SECONDS); retry after the `Retry-After` seconds"),
            413: _problem_response("Body over 64 KiB"),
            422: _problem_response("The key was used before with a different body; `fields` names what differs"),
            429: _problem_response("More orders than ORDER_BURST_RATE or ORDER_THROTTLE_RATE from this customer, "
                                   "or more requests held in the tunnel than TUNNEL_MAX_HOLDS; retry after "
                                   "`Retry-After` seconds"),
        },
    )
    def post(self, request: ActingAPIRequest) -> HttpResponse:
        customer = request.acting.customer()
        write = KeyedWrite(request, scope=ORDER_SCOPE, policy=ORDER_KEY, customer=customer,
                           idempotency_enabled=customer.idempotency_enabled)
        with write.refusals():
            write.read_key()
            write.payload = order_payload(request.data)
            answer = write.finished_answer()
            if answer is not None:
                return answer
            validated = validated_order(request.data)
        return write.answer_once(lambda: order_answer(request, customer=customer, validated=validated,
                                                      key=write.key, idempotent=write.idempotency_enabled))


class OrderDetail(CustomerAPIView):
    @extend_schema(responses={200: OrderSerializer, 404: _problem_response("No such order for this customer")},
                   summary="One of this customer's orders, with its payment, invoice and emails")
    def get(self, request: ActingAPIRequest, pk: int) -> Response:
        order = selectors.order_get(customer=request.acting.existing(), order_id=pk)
        if order is None:
            raise ProblemError("not-found", f"You have no order #{pk}.")
        return Response(OrderSerializer(order).data)


MeSerializer = inline_serializer("Me", {"customer": serializers.UUIDField(),
                                        "label": serializers.CharField(),
                                        "idempotency": serializers.BooleanField()})
MePatchSerializer = inline_serializer("MePatch", {"idempotency": serializers.BooleanField()})


class Me(CustomerAPIView):
    """Who am I? Sets the csrftoken cookie a script needs for writes, and the customer's scope.

    Reading creates nothing: a visitor without a cookie is handed a scope, a customer id in the
    ``bakery_customer`` cookie that becomes a customer with the first write (an order or this
    switch). Its keys belong to that id from the start, so a retry whose first answer was lost
    still gets the replay.
    """

    @extend_schema(responses=MeSerializer, summary="This browser's customer (its id before its first write too) "
                                                   "and its idempotency switch")
    def get(self, request: ActingAPIRequest) -> Response:
        get_token(request._request)  # sets the csrftoken cookie
        customer = request.acting.existing()
        if customer is None:
            identity = request.acting.identity
            return Response({"customer": str(identity.id), "label": label_for(identity.id),
                             "idempotency": identity.idempotency_enabled})
        return Response(self._as_json(customer))

    @extend_schema(request=MePatchSerializer, responses=MeSerializer,
                   summary="Turn idempotency off to reproduce the tunnel bug (this customer only)")
    def patch(self, request: ActingAPIRequest) -> Response:
        value = request.data.get("idempotency") if isinstance(request.data, dict) else None
        if not isinstance(value, bool):
            raise ProblemError("invalid-request", 'Send {"idempotency": true} or {"idempotency": false}.')
        customer = services.customer_set_idempotency(customer=request.acting.customer(), enabled=value)
        return Response(self._as_json(customer))

    @staticmethod
    def _as_json(customer: Customer) -> dict[str, str | bool]:
        return {"customer": str(customer.pk), "label": customer.label, "idempotency": customer.idempotency_enabled}
