"""The tunnel: a server-side layer that makes a lost connection real for the browser.

An attempt made "inside the tunnel" carries the header ``X-Bakery-Tunnel``:

* ``request-lost``: the order never reaches the bakery. The view is not called; the connection
  is held open until the client gives up (its timeout is shorter than the hold).
* ``response-lost``: the talk's tunnel. The bakery takes the order, commits it, and then holds
  the answer until the client has given up, so the answer is really never received.
* ``slow``: the handler is slow while it holds the key, so the client times out and retries
  while the first request is still running.

Nothing is painted over a successful call: the browser (or the tunnel CLI) sends a real
request and really aborts it when its timeout fires. A client that waits out the hold gets an
honest 504 for a lost request, and the (late) real answer for a lost response.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connections

from orders.api import ORDER_KEY, ORDER_SCOPE
from orders.events import Kind, record_event
from orders.problems import problem

HEADER = "X-Bakery-Tunnel"
REQUEST_LOST, RESPONSE_LOST, SLOW = "request-lost", "response-lost", "slow"
MODES = (REQUEST_LOST, RESPONSE_LOST, SLOW)


def mode_of(request) -> str | None:
    if not settings.TUNNEL_SIMULATOR_ENABLED:
        return None
    value = request.headers.get(HEADER, "").strip().lower()
    return value if value in MODES else None


def _key_of(request) -> str:
    return ORDER_KEY.parse_or_none(request.headers.get("Idempotency-Key")) or ""


class TunnelMiddleware:
    """Applies ``request-lost`` and ``response-lost`` around the order API."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        mode = mode_of(request)
        if mode is None or request.method != "POST" or not request.path.startswith("/api/orders"):
            return self.get_response(request)
        customer = request.customer
        if customer.last_scenario != mode:
            customer.last_scenario = mode
            customer.save(update_fields=["last_scenario", "last_seen_at"])
        if mode == REQUEST_LOST:
            record_event(source="tunnel", kind=Kind.LOST_REQUEST, key=_key_of(request), customer=customer)
            _hold()
            return problem("lost-in-tunnel", "This request was lost in the tunnel; the bakery never saw it.")
        response = self.get_response(request)
        if mode == RESPONSE_LOST:
            record_event(source="tunnel", kind=Kind.LOST_RESPONSE, key=_key_of(request), customer=customer,
                         status=response.status_code)
            _hold()
        return response


def _hold() -> None:
    """Keep the client waiting without keeping a database connection: the pooled connection goes
    back to the pool first, so a room full of tunnels does not starve the orders."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:  # (a test's transaction is never handed back)
            connection.close()
    time.sleep(settings.TUNNEL_HOLD_SECONDS)


def slow_bakery(sender, *, request, **kwargs) -> None:
    """Connected to ``orders.signals.idempotent_handler_starting``: while the order handler holds
    the key, the slow bakery is slow."""
    if sender == ORDER_SCOPE and mode_of(request) == SLOW:
        time.sleep(settings.TUNNEL_SLOW_SECONDS)
