"""RFC 9457 problem details with stable ``type`` URIs and a stable ``code`` member.

Every type is explained at /api/problems/. ``code`` lets a client branch on the kind of problem
without parsing a URI: it is the type's slug, except for the Idempotency-Key problems, whose codes
are the ones other implementations of the IETF draft answer with (``missing-key``, ``invalid-key``,
``fingerprint-mismatch``, ``request-in-flight``), so a client written for them understands ours.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import BadRequest, RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.http import require_GET
from rest_framework import exceptions
from rest_framework.views import exception_handler

from orders.parsers import UnstorableBody

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://freeds-bakery.example/problems/"

# slug -> (status, title). The slugs are part of the API: clients may branch on them.
PROBLEMS = {
    "idempotency-key-missing": (400, "Idempotency-Key header is required"),
    "idempotency-key-invalid": (400, "Idempotency-Key is not a valid key"),
    "idempotency-key-in-use": (409, "A request with this Idempotency-Key is still being processed"),
    "idempotency-key-reused": (422, "This Idempotency-Key was already used with a different request"),
    "invalid-order": (400, "The order is not valid"),
    "invalid-request": (400, "The request is not valid"),
    "malformed-json": (400, "The request body is not valid JSON"),
    "body-too-large": (413, "The request body is too large"),
    "request-timeout": (408, "The request did not arrive in time"),
    "not-found": (404, "Not found"),
    "csrf-failed": (403, "CSRF check failed"),
    "forbidden": (403, "Forbidden"),
    "method-not-allowed": (405, "Method not allowed"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "too-many-requests": (429, "Too many requests"),
    "tunnel-full": (429, "Too many requests in the tunnel at once"),
    "lost-in-tunnel": (504, "Lost in the tunnel"),
    "unknown-phone": (400, "X-Bakery-Phone names no phone of this browser"),
    "customer-missing": (400, "The request has no customer cookie to scope its Idempotency-Key"),
    "customer-gone": (409, "The customer this browser's cookie names no longer exists"),
    "server-error": (500, "The bakery had a problem"),
    "database-unavailable": (503, "The bakery's database is not answering"),
}

# What a client should do about each problem: served at /api/problems/ so every type URI is explained.
ADVICE = {
    "idempotency-key-missing": "Make a UUID once per order intent and send it in Idempotency-Key.",
    "idempotency-key-invalid": "Send a UUID, bare or as a quoted sf-string, at most 255 characters.",
    "idempotency-key-in-use": "The first request with this key has not finished. Wait Retry-After seconds and "
                              "retry with the same key: you will get its answer.",
    "idempotency-key-reused": "The key belongs to a different order. `fields` names what differs. Use a new key "
                              "for a new order; never change an order under the same key.",
    "invalid-order": "Fix what `detail`/`errors` name (unknown cake, quantity 1-50, note up to 500 characters). "
                     "Nothing was created and the key was not used.",
    "invalid-request": "Fix the request body as `detail` says.",
    "malformed-json": "Send a JSON object with Content-Type: application/json.",
    "body-too-large": "An order body may be at most 64 KiB.",
    "request-timeout": "Send the whole request at once; the connection was closed.",
    "not-found": "There is no such resource for this customer.",
    "csrf-failed": "Send the csrftoken cookie's value in the X-CSRFToken header (GET /api/me/ sets it).",
    "forbidden": "You may not do this.",
    "method-not-allowed": "Use one of the methods in the Allow header.",
    "unsupported-media-type": "Send Content-Type: application/json.",
    "too-many-requests": "This customer placed more orders than ORDER_BURST_RATE or ORDER_THROTTLE_RATE allow, or "
                         "this address made more new customers than CUSTOMER_CREATION_RATE allows. Wait Retry-After "
                         "seconds; a retry with the same key then gets its one order.",
    "tunnel-full": "This customer already has as many requests held in the tunnel as TUNNEL_MAX_HOLDS allows. "
                   "Wait Retry-After seconds for one to come out, then retry.",
    "lost-in-tunnel": "The tunnel simulator dropped this request; retry with the same key.",
    "customer-missing": "GET /api/me/ first with a cookie jar: it sets the bakery_customer and csrftoken cookies. "
                        "Send both with every write, and keep the jar across retries.",
    "customer-gone": "The answer set a new bakery_customer cookie: keep it in the jar and retry with the same key; "
                     "the order is placed once, for the new customer.",
    "unknown-phone": "Only the phones the compare page made for this browser's session can be named; open it again.",
    "server-error": "Nothing was half-written and the key was released: retry with the same key.",
    "database-unavailable": "PostgreSQL cannot be reached, so nothing was written and the key was not used. Wait "
                            "Retry-After seconds and retry with the same key: the order is taken exactly once.",
}

VALID_KEY_HINT = (
    "Send a UUID, e.g. Idempotency-Key: 2f1c6c1e-8a7b-4c1d-9e53-6a1b2c3d4e5f "
    '(bare or as a quoted string "…"), at most 255 characters, and reuse it on every retry '
    "of the same order."
)


# slug -> code where the code is not the slug itself.
CODES = {
    "idempotency-key-missing": "missing-key",
    "idempotency-key-invalid": "invalid-key",
    "idempotency-key-reused": "fingerprint-mismatch",
    "idempotency-key-in-use": "request-in-flight",
}


def code_of(slug: str) -> str:
    return CODES.get(slug, slug)


def problem(slug: str, detail: str, *, headers: dict[str, str] | None = None, status: int | None = None,
            **extra: Any) -> HttpResponse:
    default_status, title = PROBLEMS[slug]
    status = status or default_status
    body = {"type": TYPE_BASE + slug, "code": code_of(slug), "title": title, "status": status, "detail": detail,
            **extra}
    response = HttpResponse(json.dumps(body), status=status, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


class ProblemError(exceptions.APIException):
    """Raise from anywhere in an API view to answer with a problem document."""

    def __init__(self, slug: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        self.slug, self.problem_detail, self.headers, self.extra = slug, detail, headers or {}, extra
        self.status_code = PROBLEMS[slug][0]
        super().__init__(detail)


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    """DRF's exception handler, speaking problem+json for every error the API can give."""
    if isinstance(exc, ProblemError):
        return problem(exc.slug, exc.problem_detail, headers=exc.headers, **exc.extra)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        return problem("invalid-order", _flatten(exc.detail), errors=exc.detail)
    if isinstance(exc, UnstorableBody):
        return problem("invalid-request", str(exc.detail))
    if isinstance(exc, exceptions.Throttled):
        # DRF sets Throttled.wait (whole seconds, or None); its stubs leave the attribute out.
        wait = max(1, exc.wait or 1)  # type: ignore[attr-defined]
        return problem("too-many-requests", f"Too many orders from you in a short time. Retry in {wait} s.",
                       headers={"Retry-After": str(wait)})
    if isinstance(exc, exceptions.ParseError):
        return problem("malformed-json", str(exc.detail))
    if isinstance(exc, exceptions.NotFound):
        return problem("not-found", str(exc.detail))
    if isinstance(exc, exceptions.MethodNotAllowed):
        return problem("method-not-allowed", str(exc.detail), headers={"Allow": response.get("Allow", "")})
    if isinstance(exc, exceptions.UnsupportedMediaType):
        return problem("unsupported-media-type", str(exc.detail))
    if isinstance(exc, (exceptions.PermissionDenied, exceptions.NotAuthenticated)):
        slug = "csrf-failed" if "CSRF" in str(exc.detail) else "forbidden"
        return problem(slug, str(exc.detail))
    return response


def _flatten(detail: object, prefix: str = "") -> str:
    """Turn DRF's nested error dict into one readable sentence."""
    if isinstance(detail, dict):
        return "; ".join(
            _flatten(value, f"{prefix}{key}." if prefix or key != "non_field_errors" else "")
            for key, value in detail.items()
        )
    if isinstance(detail, list):
        return "; ".join(_flatten(value, prefix) for value in detail if value)
    return f"{prefix.rstrip('.')}: {detail}" if prefix else str(detail)


API_PREFIX = "/api/"
# What Django itself answers (a URL that matches nothing, a method a plain view refuses, a body
# Django will not parse) before any DRF view can speak problem+json.
STATUS_SLUGS = {400: "invalid-request", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
                413: "body-too-large", 415: "unsupported-media-type", 429: "too-many-requests"}


def _detail_for(request: HttpRequest, response: HttpResponse) -> str:
    if response.status_code == 404:
        return f"There is nothing at {request.path}."
    if response.status_code == 405:
        return f"{request.method} is not allowed here; use {response.get('Allow', 'another method')}."
    return f"The bakery could not take this request ({response.status_code})."


class ApiProblemMiddleware:
    """Every 4xx answer under /api/ is problem+json, whoever made it.

    DRF views already answer through :func:`problem_exception_handler`; this catches the rest
    (Django's URL resolver, its request parsing, plain views) so an API client never gets HTML.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (request.path.startswith(API_PREFIX) and 400 <= response.status_code < 500
                and not response.get("Content-Type", "").startswith(PROBLEM_CONTENT_TYPE)):
            status = response.status_code
            kept = {name: response[name] for name in ("Allow", "Retry-After") if response.has_header(name)}
            return problem(STATUS_SLUGS.get(status, "invalid-request"), _detail_for(request, response),
                           status=status, headers=kept)
        return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the API's problem for API paths, Django's page everywhere else."""
    if request.path.startswith(API_PREFIX):
        return problem("csrf-failed", f"CSRF Failed: {reason}")
    return django_csrf_failure(request, reason)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: API callers get problem+json, people get the styled page."""
    if request.path.startswith(API_PREFIX):
        return problem("server-error", "Something went wrong in the bakery. Nothing was half-written: "
                                       "retry with the same Idempotency-Key.")
    return render(request, "500.html", status=500)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler400: a request Django would not read (a form body not in UTF-8, too many fields, a
    forged Host) gets a 400, or a 413 for a body over DATA_UPLOAD_MAX_MEMORY_SIZE.

    Django's own 400 view wears ``requires_csrf_token``, whose CSRF check reads the form again and
    raises again: a 500. This one reads nothing of the request but its path (no body, no form, no
    Host), and renders its page without the request's context.
    """
    if isinstance(exception, RequestDataTooBig):
        slug, detail = "body-too-large", "The request body is over 64 KiB."
    elif isinstance(exception, BadRequest):  # Django's own words, e.g. "… must be UTF-8 encoded."
        slug, detail = "invalid-request", str(exception)
    else:
        slug, detail = "invalid-request", "The bakery could not read this request."
    if request.path.startswith(API_PREFIX):
        return problem(slug, detail)
    status = PROBLEMS[slug][0]
    return HttpResponse(render_to_string("400.html", {"status": status, "detail": detail}), status=status)


@require_GET
def problem_catalogue(request: HttpRequest) -> HttpResponse:
    """GET /api/problems/: every problem type this API answers with, and what to do about it."""
    return JsonResponse({"problems": [
        {"type": TYPE_BASE + slug, "code": code_of(slug), "status": status, "title": title, "advice": ADVICE[slug]}
        for slug, (status, title) in PROBLEMS.items()
    ]})
