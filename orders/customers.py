"""Every browser is a customer, known by a signed cookie that names it (no sign-up).

The cookie holds the customer's identity (its id and its idempotency switch), signed with
SECRET_KEY (Django's signed cookies: an HMAC, salted for this use, timestamped and refused after
COOKIE_AGE). Who a request acts for is asked in one place, ``request.acting`` (:class:`Acting`): a
write knows its customer and whether the switch is on without a query and without Redis.

A visitor's keys have an identity before its first write: every answer that hands out a CSRF token
(any page, ``GET /api/me/``, Swagger UI) also hands a visitor without a cookie an identity, a new id
in the cookie marked ``new`` and no row. The first write makes the customer a row under that id, so
a retry whose first answer was lost has the same identity and gets the replay, and two first writes
at the same moment make one order. A write without any cookie is refused (``customer-missing``)
rather than given to a customer only its own answer would name. Reads (``GET /api/me/``, the kitchen,
the timeline, an invoice) create nothing, so a flood of cookie-less requests leaves no rows behind
and nothing on the workshop dashboard. A cake page (the tunnel simulator) shows a visitor its
identity (its id, its name, its switch, an empty kitchen) and makes no row either.

Customers are not free: each is a row, and each has its own order throttles and tunnel holds. So
one client address makes at most ``CUSTOMER_CREATION_RATE`` new customers (``120/min``) by
:func:`admit_new_customers`, counted in the cache like the order throttles (and, like them, let
through when the cache cannot count). Past it, a write that would make a customer is answered
``429 too-many-requests`` with ``Retry-After`` and makes nothing. The address is the connection's
(``REMOTE_ADDR``; no ``X-Forwarded-For`` is trusted), and the bakery's own machine is not counted
(``CUSTOMER_CREATION_UNCOUNTED``: the facilitator's tunnel CLI makes a room of learners). A phone
on the room's Wi-Fi has an address of its own and makes one customer, three with the compare page:
a script minting customers to multiply its throttles and holds is held to two a second.

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
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, IntegrityError
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.template.loader import render_to_string
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from orders.models import Customer
from orders.problems import API_PREFIX, PROBLEMS, ProblemError, problem
from orders.services import customer_save_identity

COOKIE = "bakery_customer"
PHONES_SESSION_KEY = "bakery_phones"
PHONE_HEADER = "X-Bakery-Phone"
_SALT = "orders.customers"
_FLAVOURS = ["Strawberry", "Lemon", "Carrot", "Chocolate", "Pistachio", "Coconut", "Raspberry", "Ginger",
             "Mango", "Hazelnut", "Blueberry", "Caramel", "Cherry", "Vanilla", "Matcha", "Plum"]
_BAKERS = ["Baker", "Whisk", "Crumb", "Sprinkle", "Muffin", "Scone", "Eclair", "Bun"]
CUSTOMER_GONE = ("The customer this browser's cookie names no longer exists (removed by the facilitator, or a "
                 "database made afresh). This answer gives the browser a new customer: retry with the same key.")
CUSTOMER_MISSING = ("This request has no bakery_customer cookie, so its Idempotency-Key has no customer to belong "
                    "to, and a retry whose answer was lost would be somebody else. GET /api/me/ first with a cookie "
                    "jar (it sets bakery_customer and csrftoken), then send both cookies with every order.")


@dataclass(frozen=True)
class Identity:
    """What a valid cookie says: the customer's id (whose keys are its own), its idempotency switch,
    and whether the customer is a row yet (``saved``). An identity is handed out before the first
    write, so a retry whose first answer was lost, and so never set the cookie, still has the same one."""

    id: uuid.UUID
    idempotency_enabled: bool
    saved: bool

    def cookie_value(self) -> str:
        return f"{self.id}:{'on' if self.idempotency_enabled else 'off'}{'' if self.saved else ':new'}"


def cookie_identity(request: HttpRequest) -> Identity | None:
    """The identity a valid cookie names, or None."""
    value = request.get_signed_cookie(COOKIE, default=None, salt=_SALT, max_age=settings.SESSION_COOKIE_AGE)
    if value is None:
        return None
    try:
        customer_id, switch, *new = value.split(":")
        if new not in ([], ["new"]):
            return None
        return Identity(uuid.UUID(customer_id), switch == "on", saved=not new)
    except ValueError:
        return None


_RATE_OFF = {"", "off", "none"}
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def admit_new_customers(request: HttpRequest, count: int = 1) -> None:
    """Count ``count`` new customers against the request's client address; raise
    ``ProblemError("too-many-requests")`` (with ``Retry-After``) when the address is over
    ``CUSTOMER_CREATION_RATE`` in this window, before anything is made. A fixed window counted with
    one atomic ``INCR``, as the order throttles count (orders/throttles.py); refused attempts count
    too. When the cache cannot count, the customer is made."""
    rate = (settings.CUSTOMER_CREATION_RATE or "").strip().lower()
    if rate in _RATE_OFF:
        return
    number, period = rate.split("/")
    allowed, duration = int(number), _PERIODS[period[0]]
    # REMOTE_ADDR: NUM_PROXIES is 0. get_ident reads only META, which Django's request has too.
    address = BaseThrottle().get_ident(_django(request))  # type: ignore[arg-type]
    if address in settings.CUSTOMER_CREATION_UNCOUNTED:
        return
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


def refusal(request: HttpRequest, refused: ProblemError) -> HttpResponse:
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
    """A friendly name drawn from the id, so an identity has the name its customer row will have."""
    return f"{_FLAVOURS[customer_id.int % len(_FLAVOURS)]} {_BAKERS[(customer_id.int >> 8) % len(_BAKERS)]}"


def _django(request: HttpRequest) -> HttpRequest:
    """The HttpRequest under a DRF Request: what the middleware sees is cached there."""
    django_request: HttpRequest = getattr(request, "_request", request)
    return django_request


class Acting:
    """Who a request acts for: the one place that answers it, as ``request.acting`` (put there by
    :class:`CustomerMiddleware`). The browser's own customer, or the phone ``X-Bakery-Phone`` names.

    * :meth:`customer` for a write: the row the write belongs to, made from the cookie's identity
      when it is not one yet. No query when the cookie names a saved customer (only ``pk`` and
      ``idempotency_enabled`` are loaded; another field reads the row).
    * :meth:`existing` for a read: the whole row if it exists; never makes one.
    * :attr:`identity` for a page that shows a visitor who it is before its first write.
    * :attr:`counted_id` for a counter: the id the cookie names, saved or not, without a query.
    """

    def __init__(self, request: HttpRequest, *, phone: Customer | None = None) -> None:
        self._request = request
        self.phone = request.headers.get(PHONE_HEADER, "")
        self._customer: Customer | None = phone  # the whole row, once read
        self._light: Customer | None = None  # pk and switch from the cookie, once a write asked
        self._identity: Identity | None = None

    @property
    def identity(self) -> Identity:
        """The identity of this browser's keys: its cookie's, or a new one handed out now (no row:
        it becomes a customer with the first write, under this id). The middleware sets its cookie."""
        if self._identity is None:
            self._identity = cookie_identity(self._request) or Identity(uuid.uuid4(), True, saved=False)
        return self._identity

    @property
    def counted_id(self) -> uuid.UUID | None:
        """Whose requests these are, for a counter: the customer's id, or the identity's that becomes
        it with the first write, or None without a valid cookie. A phone whose first order's answer
        was lost in the tunnel still holds the cookie of an identity, and its retries are its own:
        not counted by the address they would share with a whole room behind one Wi-Fi. (Minting
        identities to dodge a counter ends at the customers an address may make:
        :func:`admit_new_customers`.)"""
        if self._customer is not None:
            return self._customer.pk
        named = cookie_identity(self._request)
        return named.id if named else None

    def customer(self, *, new_allowed: bool = False) -> Customer:
        """The customer a write acts for. A cookie that holds only an identity makes its customer a
        row first, under that id (one INSERT, which a racing first write shares).

        Without any cookie the write is refused with ``ProblemError("customer-missing")``: a key
        without an identity would belong to a customer that only this request's answer names, and a
        retry whose answer was lost would be somebody else. A page that makes things for a visitor
        (``new_allowed``, the compare page's phones) makes the customer it hands out instead.
        """
        if self._customer is not None:
            return self._customer
        if self._light is None:
            named = cookie_identity(self._request) or (self.identity if new_allowed else None)
            if named is None:
                raise ProblemError("customer-missing", CUSTOMER_MISSING)
            if not named.saved:
                admit_new_customers(self._request)
                customer_save_identity(customer_id=named.id, label=label_for(named.id))
            self._light = Customer.from_db(DEFAULT_DB_ALIAS, ["id", "idempotency_enabled"],
                                           [named.id, named.idempotency_enabled])
        return self._light

    def existing(self) -> Customer | None:
        """The customer this request speaks for, read whole, if it exists; never makes one."""
        if self._customer is None:
            named = cookie_identity(self._request)
            self._customer = Customer.objects.filter(pk=named.id).first() if named and named.saved else None
        return self._customer

    def phone_named(self, name: str, *, label: str = "", idempotency_enabled: bool = True,
                    make: bool = False) -> Customer | None:
        """One of this browser's phones (kept in its Django session). ``make`` creates it on first use,
        with its switch as given and a label naming the browser it belongs to (for the dashboard)."""
        session = self._request.session
        customer_id = session.get(PHONES_SESSION_KEY, {}).get(name)
        phone = Customer.objects.filter(pk=customer_id).first() if customer_id else None
        if phone is None and make:
            owner = self.customer(new_allowed=True)
            admit_new_customers(self._request)
            phone = Customer.objects.create(label=f"{label_for(owner.pk)} · {label}"[:60],
                                            idempotency_enabled=idempotency_enabled)
            session[PHONES_SESSION_KEY] = {**session.get(PHONES_SESSION_KEY, {}), name: str(phone.pk)}
        return phone

    def identity_to_keep(self) -> Identity | None:
        """What the browser's cookie should say after this request: the customer it acted as, or the
        identity this request handed out. A response that hands out a CSRF token (a page, ``GET
        /api/me/``, Swagger UI) hands out an identity too, so whoever can write has one before writing."""
        customer = self._customer or self._light
        if customer is not None:
            return Identity(customer.pk, customer.idempotency_enabled, saved=True)
        if self._request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
            return self.identity
        return self._identity


class ActingRequest(HttpRequest):
    """A request as the views see it once :class:`CustomerMiddleware` has run (for type checkers)."""

    acting: Acting


class ActingAPIRequest(Request):
    """A DRF request in an order API view: DRF hands ``acting`` over from the request under it (for type checkers)."""

    acting: Acting


class CustomerMiddleware:
    """Puts :class:`Acting` on every request as ``request.acting`` and keeps the browser's cookie in
    step with whom the request acted for. A request that names a phone acts for that phone, and
    never changes the browser's own cookie."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: ActingRequest) -> HttpResponseBase:
        name = request.headers.get(PHONE_HEADER, "")
        if name:
            request.acting = Acting(request)
            phone = request.acting.phone_named(name)
            if phone is None:
                return problem("unknown-phone", f"This browser has no phone called {name[:40]!r}. "
                                                "Open the compare page again: it sets up this browser's phones.")
            request.acting = Acting(request, phone=phone)
            return self.get_response(request)
        request.acting = acting = Acting(request)
        response = self.get_response(request)
        wanted = acting.identity_to_keep()
        if wanted is not None and wanted != cookie_identity(request):
            set_identity_cookie(response, wanted)
        return response

    def process_exception(self, request: ActingRequest, exception: Exception) -> HttpResponse | None:
        """A refusal raised outside an API view (one customer too many from this address, a cookie
        whose customer is gone) is answered here: see :func:`admit_new_customers`, :func:`gone`."""
        if isinstance(exception, ProblemError):
            return refusal(request, exception)
        if isinstance(exception, IntegrityError):
            return gone(request)
        return None


def set_identity_cookie(response: HttpResponseBase, identity: Identity) -> None:
    response.set_signed_cookie(
        COOKIE, identity.cookie_value(), salt=_SALT, max_age=settings.SESSION_COOKIE_AGE,
        secure=settings.SESSION_COOKIE_SECURE, httponly=True, samesite=settings.SESSION_COOKIE_SAMESITE,
    )


def gone(request: ActingRequest) -> HttpResponse | None:
    """A cookie can outlive its customer (deleted in the admin, or a database made afresh): its
    write then breaks a foreign key, and everything it wrote has rolled back. The answer says so
    (``409 customer-gone``) and hands the browser a new identity, so its retry, with the same key,
    is placed as a new customer's. None when the exception was something else."""
    named = cookie_identity(request)
    if named is None or request.acting.phone or Customer.objects.filter(pk=named.id).exists():
        return None
    response = refusal(request, ProblemError("customer-gone", CUSTOMER_GONE, headers={"Retry-After": "0"}))
    set_identity_cookie(response, Identity(uuid.uuid4(), named.idempotency_enabled, saved=False))
    return response
