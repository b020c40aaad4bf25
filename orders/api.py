"""The order API. Views parse and validate, call one service, and serialize (HackSoft style)."""

from __future__ import annotations

import uuid

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from bakery import tunnel
from orders import selectors, services
from orders.customers import known_customer
from orders.events import Kind, record_event
from orders.idempotency import (
    FingerprintMismatch,
    Guard,
    KeyInFlight,
    StoredResponse,
    replay_if_finished,
    run_once,
)
from orders.problems import VALID_KEY_HINT, ProblemError
from orders.serializers import OrderInSerializer, OrderSerializer
from orders.throttles import OrderBurstThrottle, OrderRateThrottle

MAX_KEY_LENGTH = 255
ORDER_SCOPE = "orders.create"


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


def parse_idempotency_key(header: str | None) -> uuid.UUID:
    """Accept a UUID bare or as an RFC 8941 sf-string ("…"), as the IETF draft writes it."""
    if header is None or not header.strip():
        raise ProblemError("idempotency-key-missing",
                           f"POST /api/orders/ needs an Idempotency-Key header. {VALID_KEY_HINT}")
    value = header.strip()
    if len(value) > MAX_KEY_LENGTH:
        raise ProblemError("idempotency-key-invalid", f"The key is {len(value)} characters long. {VALID_KEY_HINT}")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ProblemError("idempotency-key-invalid", f"'{value[:60]}' is not a UUID. {VALID_KEY_HINT}") from None


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
        "then purged; after that it counts as new. Ignored when the customer's idempotency switch is off."
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
            400: _problem_response("Missing or malformed Idempotency-Key, malformed JSON, unknown cake, "
                                   "quantity outside 1-50 or a note over 500 characters; nothing created"),
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
    def post(self, request):
        customer = request.customer
        guarded = customer.idempotency_enabled
        header = request.headers.get("Idempotency-Key")
        try:
            key = parse_idempotency_key(header) if guarded else _key_or_none(header)
            guard = Guard(scope=ORDER_SCOPE, owner=str(customer.pk), key=str(key), source="api",
                          customer_id=customer.pk)
            fingerprint_source = order_fingerprint_source(request.data)
            # A finished key is answered before validation: a replay then costs one SELECT.
            replayed = replay_if_finished(guard, fingerprint_source) if guarded else None
            if replayed is not None:
                return _as_http(replayed.response, replayed=True)
            incoming = OrderInSerializer(data=request.data)
            incoming.is_valid(raise_exception=True)
        except FingerprintMismatch as mismatch:
            raise _mismatch_problem(mismatch) from None
        except Exception as error:
            record_event(source="api", kind=Kind.REJECTED, key=_key_or_none(header) or "", customer=customer,
                         reason=str(getattr(error, "detail", error))[:300])
            raise

        def place() -> StoredResponse:
            tunnel.inside_handler(request)
            order = services.order_place(
                customer=customer, items=incoming.validated_data["items"], note=incoming.validated_data["note"],
                idempotency_key=key, idempotent=guarded,
            )
            stored = selectors.order_get(customer=customer, order_id=order.pk)
            body = JSONRenderer().render(OrderSerializer(stored).data)
            return StoredResponse(201, body, {"Content-Type": "application/json",
                                              "Location": request.build_absolute_uri(f"/api/orders/{order.pk}/")})

        if not guarded:
            record_event(source="api", kind=Kind.UNGUARDED, key=key or "", customer=customer)
            return _as_http(place(), replayed=False)

        try:
            outcome = run_once(guard, fingerprint_source, place, checked_finished=True)
        except FingerprintMismatch as mismatch:
            raise _mismatch_problem(mismatch) from None
        except KeyInFlight as busy:
            raise ProblemError("idempotency-key-in-use",
                               "The first request with this key is still being processed. "
                               f"Retry in {busy.retry_after} s with the same key to get its answer.",
                               headers={"Retry-After": str(busy.retry_after)}) from None
        return _as_http(outcome.response, replayed=outcome.replayed)


def order_fingerprint_source(data) -> dict:
    """What the layer compares between a first request and a retry: the parsed body's items and
    note (note defaults to ""), so key order, spacing and unknown extra fields never matter."""
    if not isinstance(data, dict):
        return {"body": data}
    items = data.get("items")
    if isinstance(items, list):
        items = [{"cake": i.get("cake"), "quantity": i.get("quantity")} if isinstance(i, dict) else i for i in items]
    return {"items": items, "note": data.get("note", "")}


def _mismatch_problem(mismatch: FingerprintMismatch) -> ProblemError:
    return ProblemError("idempotency-key-reused",
                        f"This key was first used with a different order ({', '.join(mismatch.fields)} differ). "
                        "Use a new key for a new order.", fields=mismatch.fields)


def _key_or_none(header: str | None):
    try:
        return parse_idempotency_key(header)
    except ProblemError:
        return None


def _as_http(stored: StoredResponse, *, replayed: bool) -> HttpResponse:
    response = HttpResponse(stored.body, status=stored.status)
    for name, value in stored.headers.items():
        response[name] = value
    if replayed:
        response["Idempotent-Replayed"] = "true"
    return response


class OrderDetail(CustomerAPIView):
    @extend_schema(responses={200: OrderSerializer, 404: _problem_response("No such order for this customer")},
                   summary="One of this customer's orders, with its payment, invoice and emails")
    def get(self, request, pk: int):
        order = selectors.order_get(customer=known_customer(request._request), order_id=pk)
        if order is None:
            raise ProblemError("not-found", f"You have no order #{pk}.")
        return Response(OrderSerializer(order).data)


MeSerializer = inline_serializer("Me", {"customer": serializers.UUIDField(allow_null=True),
                                        "label": serializers.CharField(),
                                        "idempotency": serializers.BooleanField()})
MePatchSerializer = inline_serializer("MePatch", {"idempotency": serializers.BooleanField()})


class Me(CustomerAPIView):
    """Who am I? Sets the csrftoken cookie a script needs for writes.

    Reading creates nothing: a visitor is ``{"customer": null}`` until its first write (an order
    or this switch) makes it a customer and sets the session cookie.
    """

    @extend_schema(responses=MeSerializer, summary="This browser's customer (null until its first write) "
                                                   "and its idempotency switch")
    def get(self, request):
        from django.middleware.csrf import get_token

        get_token(request._request)  # sets the csrftoken cookie
        customer = known_customer(request._request)
        if customer is None:
            return Response({"customer": None, "label": "", "idempotency": True})
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
