"""Every browser is a customer, known by a signed cookie that names it (no sign-up).

The cookie holds the customer's id and its idempotency switch, signed with SECRET_KEY (Django's
signed cookies: an HMAC, salted for this use, timestamped and refused after COOKIE_AGE). So the
order API knows who is asking, and whether the switch is on, without a query and without Redis:
:func:`acting_customer`. ``request.customer`` is the whole Customer row, read (or created, with
its cookie) only when a view that writes asks for it.

A visitor's keys have a scope before its first write: every answer that hands out a CSRF token
(any page, ``GET /api/me/``, Swagger UI) also hands a visitor without a cookie a scope, a new id in
the cookie marked ``new`` and no row (:func:`customer_scope`). The first write makes the customer a
row under that id (:func:`acting_customer`), so a retry whose first answer was lost has the same
scope and gets the replay, and two first writes at the same moment make one order. A write without
any cookie is refused (``customer-missing``) rather than scoped to a customer only its own answer
would name. Reads (``GET /api/me/``, the kitchen, the timeline, an invoice) look the customer up
with :func:`known_customer` and create nothing, so a flood of cookie-less requests leaves no rows
behind and nothing on the workshop dashboard. A cake page (the tunnel simulator) shows a visitor its
scope (its id, its name, its switch, an empty kitchen) and makes no row either.

Customers are not free: each is a row, and each has its own order throttles and tunnel holds. So
one client address makes at most ``CUSTOMER_CREATION_RATE`` new customers (``120/min``) by
:func:`admit_new_customers`, counted in the cache like the order throttles (and, like them, let
through when the cache cannot count). Past it, a write that would make a customer is answered
``429 too-many-requests`` with ``Retry-After`` and makes nothing. The address is the connection's
(``REMOTE_ADDR``; no ``X-Forwarded-For`` is trusted). A phone on the room's Wi-Fi has an address of
its own and makes one customer, three with the compare page: a script minting customers to
multiply its throttles and holds is held to two a second.

What the cookie gives up against a server-side session: it cannot be revoked before it expires,
and its owner can read it (an id and a switch, nothing secret). It grants a cake customer's
bakery, nothing more; staff logins stay in Django's sessions, which a logout does revoke.

The switch is changed through the cookie's own browser (``PATCH /api/me/``), which sets the
cookie again; a change made elsewhere (the admin) reaches the cookie the next time the browser
reads its whole customer (any page, ``GET /api/me/``).

A page that shows several phones side by side (the compare page) gives the browser a few more
customers, one per phone, each with its own orders, keys and idempotency switch, kept in the
browser's Django session. A request speaks for one of them with the header
``X-Bakery-Phone: <name>``; only phones kept in this session can be named, so a browser can never
act as another browser's customer.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, IntegrityError
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils.functional import SimpleLazyObject
from rest_framework.throttling import BaseThrottle

from orders.models import Customer
from orders.problems import API_PREFIX, PROBLEMS, ProblemError, problem
from orders.services import customer_save_scope

COOKIE = "bakery_customer"
PHONES_SESSION_KEY = "bakery_phones"
PHONE_HEADER = "X-Bakery-Phone"
_SALT = "orders.customers"
_FLAVOURS = ["Strawberry", "Lemon", "Carrot", "Chocolate", "Pistachio", "Coconut", "Raspberry", "Ginger",
             "Mango", "Hazelnut", "Blueberry", "Caramel", "Cherry", "Vanilla", "Matcha", "Plum"]
_BAKERS = ["Baker", "Whisk", "Crumb", "Sprinkle", "Muffin", "Scone", "Eclair", "Bun"]
# Cached on the HttpRequest: the whole customer the request acts for, the one its cookie names, its scope.
_FULL, _KNOWN, _SCOPE = "_bakery_customer", "_bakery_cookie_customer", "_bakery_scope"
CUSTOMER_MISSING = ("This request has no bakery_customer cookie, so its Idempotency-Key has no customer to belong "
                    "to, and a retry whose answer was lost would be somebody else. GET /api/me/ first with a cookie "
                    "jar (it sets bakery_customer and csrftoken), then send both cookies with every order.")


@dataclass(frozen=True)
class Scope:
    """What a valid cookie says: the customer's id (the scope of its keys), its switch, and whether
    the customer is a row yet (``saved``). A scope is handed out before the first write, so a retry
    whose first answer was lost, and so never set the cookie, still has the same scope."""

    id: uuid.UUID
    idempotency: bool
    saved: bool

    def cookie_value(self) -> str:
        return f"{self.id}:{'on' if self.idempotency else 'off'}{'' if self.saved else ':new'}"


def cookie_scope(request) -> Scope | None:
    """The scope a valid cookie names, or None."""
    value = request.get_signed_cookie(COOKIE, default=None, salt=_SALT, max_age=settings.SESSION_COOKIE_AGE)
    try:
        customer_id, switch, *new = value.split(":")
        if new not in ([], ["new"]):
            return None
        return Scope(uuid.UUID(customer_id), switch == "on", saved=not new)
    except (AttributeError, ValueError):
        return None


def customer_scope(request) -> Scope:
    """The scope of this browser's keys: its cookie's, or a new one for a visitor without (no row:
    it becomes a customer with its first write, under this id). The middleware sets its cookie."""
    request = _django(request)
    if not hasattr(request, _SCOPE):
        setattr(request, _SCOPE, cookie_scope(request) or Scope(uuid.uuid4(), True, saved=False))
    return getattr(request, _SCOPE)


_RATE_OFF = {"", "off", "none"}
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def admit_new_customers(request, count: int = 1) -> None:
    """Count ``count`` new customers against the request's client address; raise
    ``ProblemError("too-many-requests")`` (with ``Retry-After``) when the address is over
    ``CUSTOMER_CREATION_RATE`` in this window, before anything is made. A fixed window counted with
    one atomic ``INCR``, as the order throttles count (orders/throttles.py); refused attempts count
    too. When the cache cannot count, the customer is made."""
    rate = (settings.CUSTOMER_CREATION_RATE or "").strip().lower()
    if rate in _RATE_OFF:
        return
    allowed, period = rate.split("/")
    allowed, duration = int(allowed), _PERIODS[period[0]]
    address = BaseThrottle().get_ident(_django(request))  # REMOTE_ADDR: NUM_PROXIES is 0
    now = time.time()
    window = int(now // duration)
    counter = f"customers-made-{address}-{window}"
    try:
        cache.add(counter, 0, timeout=duration + 1)
        made = cache.incr(counter, count)
    except ValueError:  # the cache did not keep the counter: nothing counts
        return
    if isinstance(made, int) and made > allowed:
        wait = max(1, math.ceil((window + 1) * duration - now))
        raise ProblemError("too-many-requests", f"Too many new customers from your address ({address}) in a short "
                                                f"time: at most {rate}. Keep your cookies, or retry in {wait} s.",
                           headers={"Retry-After": str(wait)})


def refusal(request, refused: ProblemError):
    """A ProblemError raised outside an API view's handler: problem+json under /api/, a small page elsewhere."""
    request = _django(request)
    if request.path.startswith(API_PREFIX):
        return problem(refused.slug, refused.problem_detail, headers=refused.headers, **refused.extra)
    status = PROBLEMS[refused.slug][0]
    response = HttpResponse(render_to_string("400.html", {"status": status, "detail": refused.problem_detail}),
                            status=status)
    for name, value in refused.headers.items():
        response[name] = value
    return response


def label_for(customer_id: uuid.UUID) -> str:
    """A friendly name drawn from the id, so a scope has the name its customer row will have."""
    return f"{_FLAVOURS[customer_id.int % len(_FLAVOURS)]} {_BAKERS[(customer_id.int >> 8) % len(_BAKERS)]}"


def _django(request):
    """The HttpRequest under a DRF Request: what the middleware sees is cached there."""
    return getattr(request, "_request", request)


def customer_for_request(request) -> Customer:
    """The browser's whole customer: read by the cookie's id (made into a row under that id if it is
    only a scope yet), or created when there is no cookie."""
    request = _django(request)
    if not hasattr(request, _FULL):
        named = cookie_scope(request)
        if named is not None and not named.saved:
            admit_new_customers(request)
            customer_save_scope(customer_id=named.id, label=label_for(named.id))
        customer = Customer.objects.filter(pk=named.id).first() if named else None
        if customer is None:
            admit_new_customers(request)
            new_id = uuid.uuid4()
            customer = Customer.objects.create(id=new_id, label=label_for(new_id))
        setattr(request, _FULL, customer)
    return getattr(request, _FULL)


def acting_customer(request) -> Customer:
    """The customer a write acts for, without a query when its cookie names a saved customer: only
    ``pk`` and ``idempotency_enabled`` are loaded (another field reads the row). A cookie that holds
    only a scope makes its customer a row first, under the scope's id (one INSERT, which a racing
    first write shares). A phone's request acts for that phone.

    Raises ``ProblemError("customer-missing")`` when there is no cookie at all: a key without a scope
    would belong to a customer that only this request's answer names, and a retry whose answer was
    lost would be somebody else.
    """
    request = _django(request)
    if hasattr(request, _FULL):
        return getattr(request, _FULL)
    if not hasattr(request, _KNOWN):
        named = cookie_scope(request)
        if named is None:
            raise ProblemError("customer-missing", CUSTOMER_MISSING)
        if not named.saved:
            admit_new_customers(request)
            customer_save_scope(customer_id=named.id, label=label_for(named.id))
        setattr(request, _KNOWN, Customer.from_db(DEFAULT_DB_ALIAS, ["id", "idempotency_enabled"],
                                                  [named.id, named.idempotency]))
    return getattr(request, _KNOWN)


def known_customer(request) -> Customer | None:
    """The customer this request speaks for (the phone it names, or the cookie's own) if it already
    exists, read whole; never creates a customer."""
    request = _django(request)
    phone = phone_of(request)
    if phone:
        return known_phone(request, phone)
    if not hasattr(request, _FULL):
        named = cookie_scope(request)
        customer = Customer.objects.filter(pk=named.id).first() if named else None
        if customer is None:
            return None
        setattr(request, _FULL, customer)
    return getattr(request, _FULL)


def known_customer_id(request):
    """The id of the customer this request speaks for, or None for a visitor that is none yet (no
    cookie, or one that holds only a scope): without a query, and without checking that it exists."""
    request = _django(request)
    if hasattr(request, _FULL):
        return getattr(request, _FULL).pk
    named = cookie_scope(request)
    return named.id if named and named.saved else None


def session_phone(request, name: str, *, label: str, idempotency: bool = True) -> Customer:
    """One of this browser's phones, created on first use with its idempotency switch as given
    (its label names the browser it belongs to, for the workshop dashboard)."""
    customer = known_phone(request, name)
    if customer is None:
        owner = customer_for_request(request)
        admit_new_customers(request)
        customer = Customer.objects.create(label=f"{owner.label} · {label}"[:60], idempotency_enabled=idempotency)
        request.session[PHONES_SESSION_KEY] = {**request.session.get(PHONES_SESSION_KEY, {}), name: str(customer.pk)}
    return customer


def known_phone(request, name: str) -> Customer | None:
    """One of this browser's phones if it has one; never creates anything."""
    customer_id = request.session.get(PHONES_SESSION_KEY, {}).get(name)
    return Customer.objects.filter(pk=customer_id).first() if customer_id else None


def phone_of(request) -> str:
    """The phone this request speaks for, or "" for the browser's own customer."""
    return request.headers.get(PHONE_HEADER, "")


class CustomerMiddleware:
    """Puts ``request.customer`` on every request: the phone the request names, or the browser's own
    customer, created only when a view that writes asks for it; and keeps the browser's cookie in
    step with it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        phone = phone_of(request)
        if phone:
            customer = known_phone(request, phone)
            if customer is None:
                return problem("unknown-phone", f"This browser has no phone called {phone[:40]!r}. "
                                                "Open the compare page again: it sets up this browser's phones.")
            request.customer = customer
            setattr(request, _FULL, customer)
            return self.get_response(request)  # the browser's own cookie is not the phone's
        request.customer = SimpleLazyObject(lambda: customer_for_request(request))
        response = self.get_response(request)
        wanted = self._scope_to_keep(request)
        if wanted is not None and wanted != cookie_scope(request):
            response.set_signed_cookie(
                COOKIE, wanted.cookie_value(), salt=_SALT, max_age=settings.SESSION_COOKIE_AGE,
                secure=settings.SESSION_COOKIE_SECURE, httponly=True, samesite=settings.SESSION_COOKIE_SAMESITE,
            )
        return response

    @staticmethod
    def _scope_to_keep(request) -> Scope | None:
        """What the browser's cookie should say after this request: the customer it acted as, or the
        scope this request handed out. A response that hands out a CSRF token (a page, ``GET
        /api/me/``, Swagger UI) hands out a scope too, so whoever can write has one before writing."""
        customer = getattr(request, _FULL, None) or getattr(request, _KNOWN, None)
        if customer is not None:
            return Scope(customer.pk, customer.idempotency_enabled, saved=True)
        if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
            return customer_scope(request)
        return getattr(request, _SCOPE, None)

    def process_view(self, request, view, args, kwargs):
        request._bakery_view = (view, args, kwargs)

    def process_exception(self, request, exception):
        """A view that would make one customer too many from its address (a compare page) is
        refused: see :func:`admit_new_customers`.

        A cookie can outlive its customer (deleted in the admin, or a database made afresh): its
        writes then break a foreign key. Everything the view wrote has rolled back with it, so the
        view runs once more, as a new customer, and the browser gets that customer's cookie."""
        if isinstance(exception, ProblemError):
            return refusal(request, exception)
        named = cookie_scope(request)
        if (not isinstance(exception, (IntegrityError, Customer.DoesNotExist)) or named is None or phone_of(request)
                or getattr(request, "_bakery_rerun", False) or Customer.objects.filter(pk=named.id).exists()):
            return None
        request._bakery_rerun = True
        for cached in (_FULL, _KNOWN, _SCOPE):
            request.__dict__.pop(cached, None)
        request.COOKIES.pop(COOKIE, None)
        request.customer = SimpleLazyObject(lambda: customer_for_request(request))
        try:
            customer_for_request(request)
        except ProblemError as refused:
            return refusal(request, refused)
        view, args, kwargs = request._bakery_view
        return view(request, *args, **kwargs)
