"""``@idempotent``: the whole HTTP side of the Idempotency-Key protocol, put on any view.

The core (:mod:`orders.idempotency`) runs a handler at most once per key. This decorator is what
an HTTP endpoint needs around it, in the order a request meets it:

1. the ``Idempotency-Key`` header is read and checked against the endpoint's :class:`KeyPolicy`
   (missing or invalid: ``400``);
2. a finished key is replayed at once, before any validation (one statement);
3. the view's own validation runs; its errors are answered and neither stored nor spend the key;
4. the key is claimed in the handler's transaction, waiting a bounded time for a first request
   that is still running (then ``409`` with ``Retry-After``); a key used with another request is
   ``422`` naming the fields that differ;
5. the handler runs once; its answer, ``2xx`` to ``4xx``, is stored and replayed byte for byte
   with ``Idempotent-Replayed: true`` and ``Idempotency-Replayed: true``. A ``5xx`` or an
   exception is never stored: everything rolls back, the key included, so a retry can succeed.

Keys are scoped per endpoint (``scope``) and per customer (the cookie's customer, :func:`acting_customer`),
and every decision lands on the timeline through :meth:`Guard.event`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from orders.customers import acting_customer
from orders.events import Kind
from orders.idempotency import (
    FingerprintMismatch,
    Guard,
    KeyInFlight,
    StoredResponse,
    replay_if_finished,
    run_once,
)
from orders.problems import ProblemError, problem, problem_exception_handler
from orders.signals import idempotent_handler_starting

HEADER = "Idempotency-Key"
REPLAY_HEADERS = {"Idempotent-Replayed": "true", "Idempotency-Replayed": "true"}
MAX_KEY_LENGTH = 255
# The key guards requests that change something; a GET or HEAD is served as usual, key or not.
SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}
# Headers that belong to the response that carried them, not to the answer a replay gives back.
NOT_STORED_HEADERS = {"set-cookie", "content-length", "connection", "vary"}


def sf_string(value: str) -> str:
    """The text of an RFC 8941 sf-string (``"…"`` with ``\\"`` and ``\\\\`` escapes, printable ASCII)."""
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        raise ValueError("is not a quoted string")
    text, index, end = [], 1, len(value) - 1
    while index < end:
        char = value[index]
        if char == "\\":
            index += 1
            if index >= end or value[index] not in '"\\':
                raise ValueError("has a backslash that escapes nothing")
            char = value[index]
        elif char == '"':
            raise ValueError("has a quote inside that is not escaped")
        elif not " " <= char <= "~":
            raise ValueError("has a character outside printable ASCII")
        text.append(char)
        index += 1
    return "".join(text)


@dataclass(frozen=True)
class KeyPolicy:
    """What an endpoint accepts as its key: the format is the endpoint's choice, not the layer's.

    ``convert`` turns the header's text into the key (or raises ``ValueError`` saying why not);
    ``bare`` also accepts a value without quotes; ``hint`` tells a client what a valid key looks like.
    """

    hint: str
    convert: Callable[[str], str] = str
    bare: bool = False

    def parse(self, header: str | None, *, endpoint: str = "This endpoint") -> str:
        """The key, or a ``400`` problem that says what a valid key looks like."""
        if header is None or not header.strip():
            raise ProblemError("idempotency-key-missing", f"{endpoint} needs an {HEADER} header. {self.hint}")
        value = header.strip()
        if len(value) > MAX_KEY_LENGTH + 2:  # room for the quotes of an sf-string
            raise ProblemError("idempotency-key-invalid", f"The key is {len(value)} characters long. {self.hint}")
        try:
            text = sf_string(value) if value.startswith('"') or not self.bare else _bare_token(value)
        except ValueError as why:
            raise ProblemError("idempotency-key-invalid", f"The key {why}. {self.hint}") from None
        if not text or len(text) > MAX_KEY_LENGTH:
            raise ProblemError("idempotency-key-invalid", f"The key is {len(text)} characters long. {self.hint}")
        try:
            return self.convert(text)
        except ValueError as why:
            raise ProblemError("idempotency-key-invalid", f"'{text[:60]}' {why}. {self.hint}") from None

    def parse_or_none(self, header: str | None) -> str | None:
        """The key when the header holds a valid one; for labels where a bad key is no error."""
        try:
            return self.parse(header)
        except ProblemError:
            return None


def _bare_token(value: str) -> str:
    if not all("!" <= char <= "~" for char in value):
        raise ValueError("has a character outside printable ASCII, or a space")
    return value


def _uuid_text(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ValueError("is not a UUID") from None


ANY_SF_STRING = KeyPolicy(hint="Send a quoted string of 1 to 255 printable characters, e.g. "
                               f'{HEADER}: "8e03978e-40d5-43e8-bc93-6894a57f9324", and reuse it on every retry.')


def uuid_key(hint: str) -> KeyPolicy:
    """A UUID, bare or as an sf-string; the key is its canonical lower-case text."""
    return KeyPolicy(hint=hint, convert=_uuid_text, bare=True)


@dataclass(frozen=True)
class Idempotency:
    """What the decorator hands the handler as ``request.idempotency``."""

    key: str | None  # None only when the endpoint is switched off and the header held no valid key
    guarded: bool  # False when ``enabled`` said no: the handler runs on every request
    validated: object = None  # what the view's ``validate`` returned


def request_fingerprint(request) -> dict:
    """The default fingerprint: method, path and body (JSON content compared as JSON, anything else by hash)."""
    body = request.body
    try:
        content = json.loads(body) if body else None
    except ValueError:
        content = {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
    return {"method": request.method, "path": request.get_full_path(), "body": content}


def customer_owner(request) -> tuple[str, object]:
    """Keys are scoped per customer: one customer's key never replays another's answer. The
    customer comes from its cookie, without a query (orders/customers.py)."""
    customer = acting_customer(request)
    return str(customer.pk), customer.pk


def idempotent(
    *,
    scope: str,
    key: KeyPolicy = ANY_SF_STRING,
    fingerprint: Callable[[object], object] = request_fingerprint,
    validate: Callable[[object], object] | None = None,
    enabled: Callable[[object], bool] | None = None,
    owner: Callable[[object], tuple[str, object]] = customer_owner,
    source: str = "api",
    wait_seconds: Callable[[], float] | None = None,
):
    """Make a view run once per ``Idempotency-Key`` and replay its answer to every retry.

    Put it on a plain Django view or on a DRF ``APIView`` method; the view gets
    ``request.idempotency`` (:class:`Idempotency`) and returns an ``HttpResponse`` (a DRF
    ``Response`` is rendered as JSON)::

        from orders.idempotent import idempotent, uuid_key

        def validate_refund(request) -> dict:
            incoming = RefundInSerializer(data=request.data)
            incoming.is_valid(raise_exception=True)  # 400 problem; the key stays unspent
            return incoming.validated_data

        class Refunds(APIView):
            @idempotent(scope="refunds.create", key=uuid_key("Send a UUID."), validate=validate_refund)
            def post(self, request):
                refund = services.refund_make(customer=request.customer, **request.idempotency.validated)
                return JsonResponse({"id": refund.pk}, status=201)

        @require_POST
        @idempotent(scope="labels.print")  # any sf-string key, the whole request fingerprinted
        def print_label(request):
            return HttpResponse(services.label_print(request.body), status=201)

    ``scope`` names the endpoint (keys of two endpoints never meet); ``key`` is the endpoint's key
    format (default: any sf-string of at most 255 characters); ``fingerprint(request)`` is what a
    retry must repeat (default: method, path and body); ``validate(request)`` runs after the fast
    path and before the claim, and may raise ``ProblemError`` or a DRF ``APIException``;
    ``enabled(request)`` returning False skips the layer (the handler runs every time, with the key
    still read when valid); ``owner(request)`` gives the scope's owner and the timeline's customer;
    ``wait_seconds()`` is how long a retry waits for a first request still running before its
    ``409`` (default: ``IDEMPOTENCY_WAIT_SECONDS``). A safe method (GET, HEAD) passes straight through.
    """

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            request = args[0] if isinstance(args[0], (HttpRequest, Request)) else args[1]
            if request.method in SAFE_METHODS:
                return view(*args, **kwargs)
            try:
                owner_key, customer_id = owner(request)
            except ProblemError as refused:  # no scope for the key (customer-missing): nothing is claimed
                return problem(refused.slug, refused.problem_detail, headers=refused.headers, **refused.extra)
            guarded = enabled is None or enabled(request)
            header = request.headers.get(HEADER)
            endpoint = f"{request.method} {request.path}"
            try:
                claimed = key.parse(header, endpoint=endpoint) if guarded else key.parse_or_none(header)
                guard = Guard(scope=scope, owner=owner_key, key=claimed or "", source=source, customer_id=customer_id)
                fingerprint_source = fingerprint(request)
                # A finished key is answered before validation: a replay costs one statement.
                replayed = replay_if_finished(guard, fingerprint_source) if guarded else None
                if replayed is not None:
                    return _as_http(replayed.response, replayed=True)
                validated = validate(request) if validate is not None else None
            except FingerprintMismatch as mismatch:
                return _mismatch_problem(mismatch)
            except Exception as error:
                rejected = Guard(scope=scope, owner=owner_key, key=key.parse_or_none(header) or "", source=source,
                                 customer_id=customer_id)
                rejected.event(Kind.REJECTED, scope=scope, reason=str(getattr(error, "detail", error))[:300])
                if isinstance(error, APIException):
                    return _rendered(problem_exception_handler(error, {}))
                raise
            request.idempotency = Idempotency(key=claimed, guarded=guarded, validated=validated)
            answered: list[HttpResponse] = []

            def handler() -> StoredResponse:
                idempotent_handler_starting.send(sender=scope, request=request)
                response = _rendered(view(*args, **kwargs))
                if response.status_code >= 500:
                    raise _ServerErrorAnswer(response)  # rolls back: the key is released, nothing stored
                answered.append(response)
                return StoredResponse(response.status_code, bytes(response.content),
                                      {name: value for name, value in response.headers.items()
                                       if name.lower() not in NOT_STORED_HEADERS})

            try:
                if not guarded:
                    guard.event(Kind.UNGUARDED, scope=scope)
                    handler()
                    return answered[0]
                outcome = run_once(guard, fingerprint_source, handler, checked_finished=True,
                                   wait_seconds=wait_seconds() if wait_seconds is not None else None)
            except FingerprintMismatch as mismatch:
                return _mismatch_problem(mismatch)
            except KeyInFlight as busy:
                return problem("idempotency-key-in-use",
                               "The first request with this key is still being processed. "
                               f"Retry in {busy.retry_after} s with the same key to get its answer.",
                               headers={"Retry-After": str(busy.retry_after)})
            except _ServerErrorAnswer as failed:
                return failed.response
            # A replay here means the first request finished while this one waited for its lock.
            return _as_http(outcome.response, replayed=True) if outcome.replayed else answered[0]

        return wrapper

    return decorate


class _ServerErrorAnswer(Exception):
    """A handler answered 5xx: raised through the layer so that its transaction rolls back."""

    def __init__(self, response: HttpResponse):
        super().__init__(f"the handler answered {response.status_code}")
        self.response = response


def _rendered(response) -> HttpResponse:
    if isinstance(response, StreamingHttpResponse):
        raise TypeError("@idempotent stores the answer byte for byte, so it cannot wrap a streaming response")
    if isinstance(response, Response) and not response.is_rendered:
        response.accepted_renderer, response.accepted_media_type = JSONRenderer(), "application/json"
        response.renderer_context = {}
        response.render()
    return response


def _mismatch_problem(mismatch: FingerprintMismatch) -> HttpResponse:
    return problem("idempotency-key-reused",
                   f"This key was first used with a different request ({', '.join(mismatch.fields)} differ). "
                   "Use a new key for a new request.", fields=mismatch.fields)


def _as_http(stored: StoredResponse, *, replayed: bool) -> HttpResponse:
    response = HttpResponse(stored.body, status=stored.status)
    for name, value in stored.headers.items():
        response[name] = value
    if replayed:
        for name, value in REPLAY_HEADERS.items():
            response[name] = value
    return response
