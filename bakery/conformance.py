"""The fixture routes of the anyonce conformance suite, behind the bakery's idempotency layer.

The suite (tests/conformance) is a public, language-neutral set of HTTP vectors for the IETF
Idempotency-Key draft. It drives a small fixture whose handlers count their own invocations:

* ``POST /echo``: 201 with the request body and its Content-Type;
* ``POST /status/{code}``: ``{code}`` with ``status:{code}`` as text/plain;
* ``POST /slow?ms=N``: 200 ``slept:N`` after N ms;
* ``POST /large?bytes=N``: 200 with N bytes of ``x``;
* ``GET /counter``: ``{"count": n}``, behind the layer, which must ignore a key on a GET;
* ``POST /reset``: 204, the counter back to 0, outside the layer.

The counter lives in Redis, one per session customer, so every gunicorn process counts the same
invocations and two runs never count each other's. The routes are session customers with CSRF
like every other write (a runner first calls ``GET /api/me/``). They are served under
``/conformance/`` only with ``CONFORMANCE_FIXTURE=1`` (bakery/urls.py). ``fixture_urls`` builds
them around any guard, so the conformance run puts the peer packages on the very same handlers.
"""

from __future__ import annotations

import hashlib
import re
import time
from functools import cache

import redis
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import path
from rest_framework.parsers import BaseParser

from orders.api import CustomerAPIView
from orders.events import Kind, record_event
from orders.idempotency import FingerprintMismatch, Guard, KeyInFlight, StoredResponse, run_once
from orders.problems import problem

SCOPE = "conformance"
MAX_KEY_LENGTH = 255
SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}
# RFC 9651 sf-string: printable ASCII between double quotes, with only \" and \\ escaped.
SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
BARE_KEY = re.compile(r"[\x21-\x7e]+")
KEY_HINT = ('Send a key of 1 to 255 printable characters, as an sf-string ("…") or bare, and the same key '
            "on every retry of the same request.")
# Headers a replay gives back; cookies and framing belong to the response that carried them.
NOT_STORED_HEADERS = {"set-cookie", "content-length", "connection", "vary"}


# --- the invocation counter ----------------------------------------------------------------------


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _counter_name(request) -> str:
    return f"conformance:count:{request.customer.pk}"


def _invoked(request) -> None:
    _redis().incr(_counter_name(request))


# --- the handlers: no idempotency of their own ---------------------------------------------------


def echo(request):
    _invoked(request)
    return HttpResponse(request.body, status=201,
                        content_type=request.headers.get("Content-Type") or "application/octet-stream")


def status(request, code: int):
    if not 200 <= code <= 599:
        return HttpResponse("invalid status code", status=400, content_type="text/plain")
    _invoked(request)
    return HttpResponse(f"status:{code}", status=code, content_type="text/plain")


def slow(request):
    _invoked(request)
    milliseconds = _number(request.GET.get("ms"))
    time.sleep(milliseconds / 1000)
    return HttpResponse(f"slept:{request.GET.get('ms', '0')}", status=200, content_type="text/plain")


def large(request):
    _invoked(request)
    return HttpResponse(b"x" * int(_number(request.GET.get("bytes"))), status=200,
                        content_type="application/octet-stream")


def counter(request):
    return JsonResponse({"count": int(_redis().get(_counter_name(request)) or 0)})


def _number(text) -> float:
    try:
        return max(0.0, float(text or 0))
    except ValueError:
        return 0.0


# --- the bakery's layer over HTTP ----------------------------------------------------------------


class _NotStored(Exception):
    """A 5xx answer: the layer rolls the key back, and the client still gets the answer."""

    def __init__(self, response: StoredResponse):
        super().__init__(response.status)
        self.response = response


class _BadKey(Exception):
    def __init__(self, slug: str, detail: str):
        super().__init__(detail)
        self.slug, self.detail = slug, detail


def parse_key(header: str | None) -> str:
    """Any key the draft allows: an sf-string of at most 255 characters (a bare value is taken too)."""
    if header is None or not header.strip():
        raise _BadKey("idempotency-key-missing", f"This request needs an Idempotency-Key header. {KEY_HINT}")
    value = header.strip()
    if value.startswith('"'):
        quoted = SF_STRING.fullmatch(value)
        if quoted is None:
            raise _BadKey("idempotency-key-invalid", f"The key is not a valid sf-string. {KEY_HINT}")
        key = re.sub(r'\\(["\\])', r"\1", quoted.group(1))
    elif BARE_KEY.fullmatch(value):
        key = value
    else:
        raise _BadKey("idempotency-key-invalid", f"The key has characters a key cannot have. {KEY_HINT}")
    if not key:
        raise _BadKey("idempotency-key-invalid", f"The key is empty. {KEY_HINT}")
    if len(key) > MAX_KEY_LENGTH:
        raise _BadKey("idempotency-key-invalid", f"The key is {len(key)} characters long. {KEY_HINT}")
    return key


def idempotent(handler, *, scope: str = SCOPE):
    """Put the bakery's layer (``run_once``) in front of ``handler(request, **kwargs)``, speaking the draft.

    A safe method passes straight through. Otherwise: a missing or invalid key is 400, the same key
    with another request is 422, the same key while the first still runs is 409 with Retry-After
    (after ``CONFORMANCE_WAIT_SECONDS``), a finished key replays its stored answer (a 4xx too) with
    ``Idempotent-Replayed: true`` and ``Idempotency-Replayed: true``, and a 5xx is never stored.
    """

    def guarded(request, **kwargs):
        if request.method in SAFE_METHODS:
            return handler(request, **kwargs)
        customer = request.customer
        header = request.headers.get("Idempotency-Key")
        try:
            key = parse_key(header)
        except _BadKey as bad:
            record_event(source=SCOPE, kind=Kind.REJECTED, key=(header or "")[:MAX_KEY_LENGTH], customer=customer,
                         scope=scope, reason=bad.detail[:300])
            return problem(bad.slug, bad.detail)
        guard = Guard(scope=scope, owner=str(customer.pk), key=key, source=SCOPE, customer_id=customer.pk)
        # What a retry must repeat: the method, the target and the exact body bytes.
        fingerprint_source = {"method": request.method, "target": request.get_full_path(),
                              "content_type": request.headers.get("Content-Type", ""),
                              "body": hashlib.sha256(request.body).hexdigest()}

        def run() -> StoredResponse:
            response = handler(request, **kwargs)
            answer = StoredResponse(response.status_code, bytes(response.content),
                                    {name: value for name, value in response.items()
                                     if name.lower() not in NOT_STORED_HEADERS})
            if answer.status >= 500:
                raise _NotStored(answer)
            return answer

        try:
            outcome = run_once(guard, fingerprint_source, run, wait_seconds=settings.CONFORMANCE_WAIT_SECONDS)
        except _NotStored as failed:
            return _as_http(failed.response, replayed=False)
        except FingerprintMismatch as mismatch:
            return problem("idempotency-key-reused",
                           f"This key was first used with a different request ({', '.join(mismatch.fields)} "
                           "differ). Use a new key for a new request.",
                           fields=mismatch.fields)
        except KeyInFlight as busy:
            return problem("idempotency-key-in-use",
                           f"The first request with this key is still running. Retry in {busy.retry_after} s "
                           "with the same key to get its answer.",
                           headers={"Retry-After": str(busy.retry_after)})
        return _as_http(outcome.response, replayed=outcome.replayed)

    return guarded


def _as_http(stored: StoredResponse, *, replayed: bool) -> HttpResponse:
    response = HttpResponse(stored.body, status=stored.status)
    for name, value in stored.headers.items():
        response[name] = value
    if replayed:
        response["Idempotent-Replayed"] = "true"  # Stripe's name
        response["Idempotency-Replayed"] = "true"  # the draft discussion's name
    return response


# --- the routes ----------------------------------------------------------------------------------


class AnyBody(BaseParser):
    """The vectors send text/plain: every body is accepted as bytes (the CSRF check reads the form)."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read() if stream else b""


class Reset(CustomerAPIView):
    """The suite's only control route, outside any layer."""

    parser_classes = [AnyBody]

    def post(self, request):
        _redis().delete(_counter_name(request))
        return HttpResponse(status=204)


def fixture_urls(guard=idempotent, base=CustomerAPIView, wrap_view=None) -> list:
    """The fixture's routes with ``guard(handler)`` in front of each handler, as ``base`` views.

    ``wrap_view`` wraps each finished view (for a package that marks views with a decorator).
    """

    def route(pattern: str, handler, method: str):
        guarded = guard(handler)

        def serve(self, request, **kwargs):
            return guarded(request, **kwargs)

        members = {method: serve, "parser_classes": [AnyBody]}
        view = type(f"Fixture{handler.__name__.title()}", (base,), members).as_view()
        return path(pattern, wrap_view(view) if wrap_view else view)

    return [
        path("reset", Reset.as_view()),
        route("echo", echo, "post"),
        route("status/<int:code>", status, "post"),
        route("slow", slow, "post"),
        route("large", large, "post"),
        route("counter", counter, "get"),
    ]


urlpatterns = fixture_urls()
