"""The fixture routes of the anyonce conformance suite, behind the bakery's idempotency layer.

The suite (tests/conformance) is a public, language-neutral set of HTTP vectors for the IETF
Idempotency-Key draft. It drives a small fixture whose handlers count their own invocations:

* ``POST /echo``: 201 with the request body and its Content-Type;
* ``POST /status/{code}``: ``{code}`` with ``status:{code}`` as text/plain;
* ``POST /slow?ms=N``: 200 ``slept:N`` after N ms (0 to 10,000);
* ``POST /large?bytes=N``: 200 with N bytes of ``x`` (0 to 2 MiB);
* ``GET /counter``: ``{"count": n}``, behind the layer, which must ignore a key on a GET;
* ``POST /reset``: 204, the counter back to 0, outside the layer.

The counter lives in Redis, one per session customer, so every gunicorn process counts the same
invocations and two runs never count each other's. The routes are session customers with CSRF
like every other write (a runner first calls ``GET /api/me/``, then ``PATCH /api/me/`` to become
one). They are served under ``/conformance/`` only with ``CONFORMANCE_FIXTURE=1`` (bakery/urls.py).
``fixture_urls`` builds them around any guard, so the conformance run puts the peer packages on
the very same handlers.
"""

from __future__ import annotations

import functools
import hashlib
import time
from functools import cache

import redis
from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import path
from rest_framework.parsers import BaseParser

from orders.authentication import CustomerAPIView
from orders.idempotent import KeyPolicy
from orders.idempotent import idempotent as layer
from orders.models import Event
from orders.problems import ProblemError

SCOPE = "conformance"
KEY_HINT = ('Send a key of 1 to 255 printable characters, as an sf-string ("…") or bare, and the same key '
            "on every retry of the same request.")


# --- the invocation counter ----------------------------------------------------------------------


@cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def _counter_name(request) -> str:
    return f"conformance:count:{request.acting.customer().pk}"


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
    time.sleep(_bounded(request, "ms") / 1000)
    return HttpResponse(f"slept:{request.GET.get('ms', '0')}", status=200, content_type="text/plain")


def large(request):
    _invoked(request)
    return HttpResponse(b"x" * _bounded(request, "bytes"), status=200, content_type="application/octet-stream")


def counter(request):
    return JsonResponse({"count": int(_redis().get(_counter_name(request)) or 0)})


# The fixture's numbers are bounded: the vectors ask for 1500 ms and 1 MiB + 1 byte at most, and any
# customer may call these routes, so an unbounded sleep or body would hold a web thread forever or grow
# a worker by gigabytes. Each route that reads a number checks it before its guard runs (a bad one
# neither counts as an invocation nor uses the key).
BOUNDS = {"ms": 10_000, "bytes": 2 * 1024 * 1024}


def _bounded(request, name: str) -> int:
    """The query parameter ``name`` as a whole number from 0 to ``BOUNDS[name]``, or a 400 problem."""
    text = request.GET.get(name) or "0"
    if not (text.isascii() and text.isdigit() and len(text) <= 12 and int(text) <= BOUNDS[name]):
        raise ProblemError("invalid-request", f"{name} must be a whole number from 0 to {BOUNDS[name]}.")
    return int(text)


# --- the bakery's layer over HTTP ----------------------------------------------------------------


def fixture_payload(request) -> dict:
    """What a retry must repeat: the method, the target, the Content-Type and the exact body bytes."""
    return {"method": request.method, "target": request.get_full_path(),
            "content_type": request.headers.get("Content-Type", ""),
            "body": hashlib.sha256(request.body).hexdigest()}


def idempotent(handler):
    """The bakery's ``@idempotent`` in front of ``handler(request, **kwargs)``, as the suite expects it:
    any key of 1 to 255 printable characters (sf-string or bare), and a duplicate in flight answered
    after ``CONFORMANCE_WAIT_SECONDS`` (0: at once, the draft's ``409``)."""
    keyed = layer(scope=SCOPE, key=KeyPolicy(hint=KEY_HINT, bare=True), payload=fixture_payload,
                  source=Event.Source.CONFORMANCE, wait_seconds=lambda: settings.CONFORMANCE_WAIT_SECONDS)
    return functools.wraps(handler)(keyed(handler))


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

    def route(pattern: str, handler, method: str, numbers: tuple[str, ...] = ()):
        guarded = guard(handler)

        def serve(self, request, **kwargs):
            for name in numbers:
                _bounded(request, name)
            return guarded(request, **kwargs)

        members = {method: serve, "parser_classes": [AnyBody]}
        view = type(f"Fixture{handler.__name__.title()}", (base,), members).as_view()
        return path(pattern, wrap_view(view) if wrap_view else view)

    return [
        path("reset", Reset.as_view()),
        route("echo", echo, "post"),
        route("status/<int:code>", status, "post"),
        route("slow", slow, "post", numbers=("ms",)),
        route("large", large, "post", numbers=("bytes",)),
        route("counter", counter, "get"),
    ]


urlpatterns = fixture_urls()
