"""The tunnel: a server-side layer that makes a lost connection real for the browser.

An attempt made "inside the tunnel" carries the header ``X-Bakery-Tunnel``:

* ``request-lost``: the order never reaches the bakery. The view is not called; the connection
  is held open until the client gives up (its timeout is shorter than the hold).
* ``response-lost``: the talk's tunnel. The bakery takes the order, commits it, and then holds
  the answer until the client has given up, so the answer is really never received.
* ``slow``: the handler is slow while the key is claimed (:func:`slow_bakery`, called by the order
  handler as one of ``settings.ORDER_HANDLER_HOOKS``), so the client times out and retries while the
  first request is still running.

Nothing is painted over a successful call: the browser (or the tunnel CLI) sends a real
request and really aborts it when its timeout fires. A client that waits out the hold gets an
honest 504 for a lost request, and the (late) real answer for a lost response.

A hold costs no web thread and no database connection: :class:`TunnelMiddleware` decides (the
CSRF check, the customer, the hold's row, the timeline's events) and hands its answer back with
the time to hold it. Under ASGI (`make demo`, the tests' servers) :class:`TunnelHoldApp`, around
Django, keeps the answer once Django is done and awaits ``asyncio.sleep``, so hundreds of holds wait
side by side on one event loop; under WSGI (the bench's common configuration, the in-process test
server) :class:`TunnelHoldMiddleware` sleeps in the request's thread.

A hold still takes a place in the room, so the tunnel is guarded like any write and more:

* the header is honoured only after Django's CSRF check passes, and only for a visitor with a
  customer cookie (a cookie-less script would otherwise be a new customer every time);
* one customer holds at most ``TUNNEL_MAX_HOLDS`` requests in the tunnel at once; past that an
  attempt is answered at once with ``429`` (``tunnel-full``) instead of being held.
  The holds are rows in PostgreSQL (``bakery.models.TunnelHold``), taken under the customer's row
  lock in one short transaction, so they count exactly across every web process, and no database
  connection is kept while a request waits. A hold whose process died stops counting at its
  ``until``; Redis is not involved, so an outage of it changes nothing here.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from datetime import timedelta

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import connections, transaction
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone

from bakery.models import TunnelHold
from orders.customers import CUSTOMER_MISSING, cookie_identity, refusal
from orders.events import Kind, record_event
from orders.keys import ORDER_KEY
from orders.models import Customer, Event
from orders.problems import ProblemError, problem

HEADER = "X-Bakery-Tunnel"
# The key of the ASGI scope by which TunnelHoldApp lends its Handover to the request.
SCOPE_HANDOVER = "bakery.tunnel_handover"
REQUEST_LOST, RESPONSE_LOST, SLOW = "request-lost", "response-lost", "slow"
MODES = (REQUEST_LOST, RESPONSE_LOST, SLOW)


def mode_of(request) -> str | None:
    if not settings.TUNNEL_SIMULATOR_ENABLED:
        return None
    value = request.headers.get(HEADER, "").strip().lower()
    return value if value in MODES else None


def _key_of(request) -> str:
    return ORDER_KEY.parse_or_none(request.headers.get("Idempotency-Key")) or ""


def csrf_refusal(request):
    """Django's own CSRF check, run before the tunnel holds anything: None when it passes,
    else the refusal (CSRF_FAILURE_VIEW, a csrf-failed problem under /api/)."""
    try:
        # The check may parse a form body from the stream; read it whole first (within the size
        # limit) so the order view can still read it afterwards.
        request.body  # noqa: B018
    except RequestDataTooBig:
        return problem("body-too-large", "An order body may be at most 64 KiB.")
    check = CsrfViewMiddleware(lambda _request: None)
    check.process_request(request)
    return check.process_view(request, None, (), {})


def tunnel_hold_take(*, customer: Customer) -> int | None:
    """One of the customer's TUNNEL_MAX_HOLDS holds, or None when all are taken. The customer's
    row lock makes concurrent attempts take turns, so two never both get the last one; an attempt
    that finds the row locked (the same customer taking a hold this very moment) does not queue
    for it but is refused at once, so a flood from one session never piles up waiting threads."""
    now = timezone.now()
    # Long enough for any honest request (a slow handler, then the held answer); only a hold
    # whose process died ever reaches it.
    lifetime = timedelta(seconds=settings.TUNNEL_HOLD_SECONDS + settings.TUNNEL_SLOW_SECONDS
                         + settings.IDEMPOTENCY_WAIT_SECONDS + 30)
    with transaction.atomic():
        if not list(Customer.objects.select_for_update(skip_locked=True).filter(pk=customer.pk).values_list("pk")):
            return None
        holds = TunnelHold.objects.filter(customer=customer)
        holds.filter(until__lte=now).delete()
        if holds.count() >= settings.TUNNEL_MAX_HOLDS:
            return None
        return TunnelHold.objects.create(customer=customer, until=now + lifetime).pk


def tunnel_hold_release(hold: int) -> None:
    TunnelHold.objects.filter(pk=hold).delete()


class Handover:
    """A hold passed from :class:`TunnelMiddleware` (in a request's thread) to whoever waits it out:
    :class:`TunnelHoldApp` under ASGI, :class:`TunnelHoldMiddleware` under WSGI.

    Under ASGI a cancelled request (a web process shutting down) may be cancelled while Django is
    still running it in its thread: whichever side comes second releases the hold, so none is left
    behind. (A client that gives up does not cancel its request: see bakery.asgi.)"""

    def __init__(self):
        self.lock = threading.Lock()
        self.hold: int | None = None
        self.seconds = 0.0
        self.abandoned = False

    def give(self, hold: int, seconds: float) -> bool:
        """From the inner chain: False when the outer side has already gone (the caller releases)."""
        with self.lock:
            if self.abandoned:
                return False
            self.hold, self.seconds = hold, seconds
            return True

    def take_back(self) -> int | None:
        """From the outer side, once it is done (answered, or cancelled): the hold to release, if any."""
        with self.lock:
            self.abandoned = True
            hold, self.hold = self.hold, None
            return hold


class TunnelHoldMiddleware:
    """The outermost middleware: it lends each request the :class:`Handover` its hold goes into.

    Under ASGI the handover comes from :class:`TunnelHoldApp`, around Django, which does the waiting
    once Django is done with the request; under WSGI (the bench's common configuration, the
    in-process test server) this middleware waits itself, asleep in the request's thread."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        lent = getattr(request, "scope", {}).get(SCOPE_HANDOVER)
        if lent is not None:
            request.tunnel_handover = lent
            return self.get_response(request)
        request.tunnel_handover = handover = Handover()
        try:
            response = self.get_response(request)
            if handover.hold is not None:
                _hand_back_connections()
                time.sleep(handover.seconds)
            return response
        finally:
            hold = handover.take_back()
            if hold is not None:
                tunnel_hold_release(hold)


class TunnelHoldApp:
    """The ASGI application around Django that holds a tunnelled answer on the event loop.

    Django runs the request to its end: its thread finishes and its pooled connections go back. The
    answer it sends is kept here for the seconds :class:`TunnelMiddleware` asked, then sent, and the
    hold's row released. So a hold is an ``asyncio.sleep`` and a few kept messages: no thread, no
    database connection. (Django's own async middleware would not do: below it the bakery's
    middleware is synchronous, so Django would run it synchronously, asleep in a thread.)"""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        handover = Handover()
        kept: list[dict] = []

        async def keep_if_held(message):
            if handover.hold is None:
                await send(message)
            else:
                kept.append(message)

        try:
            await self.app({**scope, SCOPE_HANDOVER: handover}, receive, keep_if_held)
            if kept:
                await asyncio.sleep(handover.seconds)
                for message in kept:
                    await send(message)
        finally:
            hold = handover.take_back()
            if hold is not None:
                # Shielded: a cancelled request still releases its hold. Not thread-sensitive: this is
                # no request's thread any more, and the release closes the connection it used.
                await asyncio.shield(sync_to_async(_release_and_hand_back, thread_sensitive=False)(hold))


def _release_and_hand_back(hold: int) -> None:
    tunnel_hold_release(hold)
    _hand_back_connections()


class TunnelMiddleware:
    """Applies the tunnel around the order API (``slow`` acts inside the handler, see :func:`slow_bakery`);
    the waiting itself is :class:`TunnelHoldMiddleware`'s."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        mode = mode_of(request)
        if mode is None or request.method != "POST" or not request.path.startswith("/api/orders"):
            return self.get_response(request)
        refused = csrf_refusal(request)
        if refused is not None:
            return refused
        if cookie_identity(request) is None and not request.acting.phone:  # else a new customer every time
            return problem("customer-missing", CUSTOMER_MISSING)
        try:
            customer = request.acting.customer()  # an identity handed out before becomes its customer here
        except ProblemError as refused:  # one new customer too many from this address
            return refusal(request, refused)
        hold = tunnel_hold_take(customer=customer)
        if hold is None:
            wait = math.ceil(max(settings.TUNNEL_HOLD_SECONDS, settings.TUNNEL_SLOW_SECONDS))
            return problem("tunnel-full", f"You already have {settings.TUNNEL_MAX_HOLDS} requests held in the "
                                          f"tunnel, the most one customer may have at once. Retry in {wait} s, "
                                          "when one has come out.", headers={"Retry-After": str(wait)})
        handed_over = False
        try:
            response = self._through_the_tunnel(request, mode, customer)
            if mode in (REQUEST_LOST, RESPONSE_LOST):  # the answer is held outside, by TunnelHoldMiddleware
                handed_over = request.tunnel_handover.give(hold, settings.TUNNEL_HOLD_SECONDS)
            return response
        finally:
            if not handed_over:
                tunnel_hold_release(hold)

    def _through_the_tunnel(self, request, mode, customer):
        if customer.last_scenario != mode:
            customer.last_scenario = mode
            customer.save(update_fields=["last_scenario", "last_seen_at"])
        if mode == REQUEST_LOST:
            record_event(source=Event.Source.TUNNEL, kind=Kind.LOST_REQUEST, key=_key_of(request), customer=customer)
            return problem("lost-in-tunnel", "This request was lost in the tunnel; the bakery never saw it.")
        response = self.get_response(request)
        if mode == RESPONSE_LOST:
            record_event(source=Event.Source.TUNNEL, kind=Kind.LOST_RESPONSE, key=_key_of(request), customer=customer,
                         status=response.status_code)
        return response


def _hand_back_connections() -> None:
    """The pooled connections go back to the pool before a wait, so a room full of tunnels does
    not starve the orders."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:  # (a test's transaction is never handed back)
            connection.close()


def slow_bakery(request) -> None:
    """One of settings.ORDER_HANDLER_HOOKS: the order handler calls it while the order's key is
    claimed (orders/placing.py), and the slow bakery is slow there."""
    if mode_of(request) == SLOW:
        time.sleep(settings.TUNNEL_SLOW_SECONDS)
