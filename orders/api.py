"""The order API. Views parse and validate, call one service, and serialize (HackSoft style)."""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.middleware.csrf import get_token
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from orders import selectors, services
from orders.customers import acting_customer, customer_scope, known_customer, label_for
from orders.idempotent import idempotent, uuid_key
from orders.problems import VALID_KEY_HINT, ProblemError
from orders.serializers import OrderInSerializer, OrderSerializer, PlacedOrderSerializer
from orders.throttles import OrderBurstThrottle, OrderRateThrottle

ORDER_SCOPE = "orders.create"
# The order API's key policy: a UUID, bare or as an sf-string ("…").
ORDER_KEY = uuid_key(VALID_KEY_HINT)


class CustomerSessionAuthentication(SessionAuthentication):
    """Every caller is a session customer, so every write must pass Django's CSRF check.

    DRF's own SessionAuthentication checks CSRF only for logged-in users; the bakery has no
    sign-up, so it checks for everyone, exactly as a Django form would.
    """

    def authenticate(self, request):
        read_body(request)  # the CSRF check reads the body, so the size limit comes first
        self.enforce_csrf(request)
        return (request._request.user, None)


class CustomerSessionScheme(SessionScheme):
    """The OpenAPI schema describes the customer's session cookie as DRF's session scheme would."""

    target_class = CustomerSessionAuthentication


class CustomerAPIView(APIView):
    authentication_classes = [CustomerSessionAuthentication]


def read_body(request) -> None:
    """Read the body once through Django, which enforces DATA_UPLOAD_MAX_MEMORY_SIZE (64 KiB)."""
    try:
        request._request.body  # noqa: B018 - reading it is the check
    except RequestDataTooBig:
        raise ProblemError("body-too-large", "An order body may be at most 64 KiB.") from None


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


def _problem_response(description: str):
    return OpenApiResponse(description=description + " (application/problem+json, RFC 9457)")


class OrderListCreate(CustomerAPIView):
    throttle_classes = [OrderBurstThrottle, OrderRateThrottle]  # they count POSTs only

    @extend_schema(responses=OrderSerializer(many=True), summary="This customer's orders, newest first")
    def get(self, request):
        orders = selectors.order_list(customer=known_customer(request._request))
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
    @idempotent(scope=ORDER_SCOPE, key=ORDER_KEY, fingerprint=lambda request: order_fingerprint_source(request.data),
                validate=lambda request: validated_order(request.data),
                enabled=lambda request: acting_customer(request).idempotency_enabled)
    def post(self, request):
        claim = request.idempotency
        return order_placed(request, validated=claim.validated, idempotency_key=claim.key, idempotent=claim.guarded)


def order_placed(request, *, validated: dict, idempotency_key, idempotent: bool) -> HttpResponse:
    """The order handler: place the order and answer 201 with it, serialized from what was just
    written (the bench's peers protect this same handler)."""
    order, items = services.order_place(customer=acting_customer(request), items=validated["items"],
                                        note=validated["note"], idempotency_key=idempotency_key,
                                        idempotent=idempotent)
    body = PlacedOrderSerializer(order, items=items).data
    return HttpResponse(JSONRenderer().render(body), status=201, content_type="application/json",
                        headers={"Location": request.build_absolute_uri(f"/api/orders/{order.pk}/")})


def validated_order(data) -> dict:
    """The order's own validation: runs before the key is claimed, so its 400 does not spend the key."""
    incoming = OrderInSerializer(data=data)
    incoming.is_valid(raise_exception=True)
    return incoming.validated_data


def order_fingerprint_source(data) -> dict:
    """What the layer compares between a first request and a retry: the parsed body's items and
    note (note defaults to ""), so key order, spacing and unknown extra fields never matter."""
    if not isinstance(data, dict):
        return {"body": data}
    items = data.get("items")
    if isinstance(items, list):
        items = [{"cake": i.get("cake"), "quantity": i.get("quantity")} if isinstance(i, dict) else i for i in items]
    return {"items": items, "note": data.get("note", "")}


class OrderDetail(CustomerAPIView):
    @extend_schema(responses={200: OrderSerializer, 404: _problem_response("No such order for this customer")},
                   summary="One of this customer's orders, with its payment, invoice and emails")
    def get(self, request, pk: int):
        order = selectors.order_get(customer=known_customer(request._request), order_id=pk)
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
    def get(self, request):
        get_token(request._request)  # sets the csrftoken cookie
        customer = known_customer(request._request)
        if customer is None:
            scope = customer_scope(request)
            return Response({"customer": str(scope.id), "label": label_for(scope.id), "idempotency": scope.idempotency})
        return Response(self._as_json(customer))

    @extend_schema(request=MePatchSerializer, responses=MeSerializer,
                   summary="Turn idempotency off to reproduce the tunnel bug (this customer only)")
    def patch(self, request):
        value = request.data.get("idempotency") if isinstance(request.data, dict) else None
        if not isinstance(value, bool):
            raise ProblemError("invalid-request", 'Send {"idempotency": true} or {"idempotency": false}.')
        customer = services.customer_set_idempotency(customer=request.customer, enabled=value)
        return Response(self._as_json(customer))

    @staticmethod
    def _as_json(customer) -> dict:
        return {"customer": str(customer.pk), "label": customer.label, "idempotency": customer.idempotency_enabled}
