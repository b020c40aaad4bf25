"""The web tier's answer while PostgreSQL is away: 503 at once, never a 500 or a wait on the pool.

API paths get ``database-unavailable`` problem+json, pages a short page in words, both with
Retry-After. The mark that decides it is per process (bakery/database/__init__.py). Beside `make demo`,
each order attempt answered so is written to a file, so that its supervisor can say how many orders
waited for PostgreSQL (bakery/kitchen_fire.py).
"""

from __future__ import annotations

import sys

from django.db import connections
from django.http import HttpResponse
from django.template.loader import render_to_string

from bakery import database, kitchen_fire
from bakery.client import KEY_HEADER, ORDERS_PATH
from orders.problems import API_PREFIX, problem, server_error

DETAIL = ("The bakery's database is not answering right now. Nothing was written: retry with the same "
          "Idempotency-Key in {after} s and the order is taken exactly once.")


def unavailable(request) -> HttpResponse:
    after = str(database.RETRY_AFTER_SECONDS)
    if request.method == "POST" and request.path == ORDERS_PATH:
        kitchen_fire.count_wait(request.headers.get(KEY_HEADER))
    if request.path.startswith(API_PREFIX):
        return problem("database-unavailable", DETAIL.format(after=after), headers={"Retry-After": after})
    # Rendered without the request: its context would read the session from the database.
    response = HttpResponse(render_to_string("503.html", {"retry_after": after}), status=503)
    response["Retry-After"] = after
    return response


class DatabaseOutageMiddleware:
    """While this process knows PostgreSQL is away, answer 503 before anything touches it; when a
    view finds it away, answer 503 instead of a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if database.down_since() is not None:
            try:
                database.admit(connections["default"].get_connection_params())
            except database.DatabaseUnavailable:
                return unavailable(request)
        return self.get_response(request)

    def process_exception(self, request, exception):
        return unavailable(request) if database.noticed(exception) else None


def server_error_or_unavailable(request) -> HttpResponse:
    """handler500: a database that went away (found by a middleware, outside any view) is a 503 too."""
    error = sys.exc_info()[1]
    if error is not None and database.noticed(error):
        return unavailable(request)
    return server_error(request)
