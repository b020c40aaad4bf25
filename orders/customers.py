"""Every browser is a customer, known by a signed cookie that names it (no sign-up).

The cookie holds the customer's id and its idempotency switch, signed with SECRET_KEY (Django's
signed cookies: an HMAC, salted for this use, timestamped and refused after COOKIE_AGE). So the
order API knows who is asking, and whether the switch is on, without a query and without Redis:
:func:`acting_customer`. ``request.customer`` is the whole Customer row, read (or created, with
its cookie) only when a view that writes asks for it.

A visitor becomes a customer when it first does something: orders, flips its idempotency switch,
or opens a cake page (the tunnel simulator). Reads (``GET /api/me/``, the kitchen, the timeline,
an invoice) look the customer up with :func:`known_customer` and create nothing, so a flood of
cookie-less requests leaves no rows behind and nothing on the workshop dashboard.

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

import random
import uuid

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError
from django.utils.functional import SimpleLazyObject

from orders.models import Customer
from orders.problems import problem

COOKIE = "bakery_customer"
PHONES_SESSION_KEY = "bakery_phones"
PHONE_HEADER = "X-Bakery-Phone"
_SALT = "orders.customers"
_FLAVOURS = ["Strawberry", "Lemon", "Carrot", "Chocolate", "Pistachio", "Coconut", "Raspberry", "Ginger",
             "Mango", "Hazelnut", "Blueberry", "Caramel", "Cherry", "Vanilla", "Matcha", "Plum"]
_BAKERS = ["Baker", "Whisk", "Crumb", "Sprinkle", "Muffin", "Scone", "Eclair", "Bun"]
# Cached on the HttpRequest: the whole customer the request acts for, and the one its cookie names.
_FULL, _KNOWN = "_bakery_customer", "_bakery_cookie_customer"


def _from_cookie(request) -> tuple[uuid.UUID, bool] | None:
    """(customer id, switch) from a valid cookie, or None."""
    value = request.get_signed_cookie(COOKIE, default=None, salt=_SALT, max_age=settings.SESSION_COOKIE_AGE)
    try:
        customer_id, switch = value.split(":")
        return uuid.UUID(customer_id), switch == "on"
    except (AttributeError, ValueError):
        return None


def _django(request):
    """The HttpRequest under a DRF Request: what the middleware sees is cached there."""
    return getattr(request, "_request", request)


def customer_for_request(request) -> Customer:
    """The browser's whole customer: read by the cookie's id, or created when there is none."""
    request = _django(request)
    if not hasattr(request, _FULL):
        named = _from_cookie(request)
        customer = Customer.objects.filter(pk=named[0]).first() if named else None
        if customer is None:
            customer = Customer.objects.create(label=f"{random.choice(_FLAVOURS)} {random.choice(_BAKERS)}")
        setattr(request, _FULL, customer)
    return getattr(request, _FULL)


def acting_customer(request) -> Customer:
    """The customer the request acts for, without a query when its cookie names it: only ``pk``
    and ``idempotency_enabled`` are loaded (another field reads the row). A phone's request acts
    for that phone; a request without a cookie for :func:`customer_for_request`."""
    request = _django(request)
    if hasattr(request, _FULL):
        return getattr(request, _FULL)
    if not hasattr(request, _KNOWN):
        named = _from_cookie(request)
        if named is None:
            return customer_for_request(request)
        setattr(request, _KNOWN, Customer.from_db(DEFAULT_DB_ALIAS, ["id", "idempotency_enabled"], list(named)))
    return getattr(request, _KNOWN)


def known_customer(request) -> Customer | None:
    """The customer this request speaks for (the phone it names, or the cookie's own) if it already
    exists, read whole; never creates a customer."""
    request = _django(request)
    phone = phone_of(request)
    if phone:
        return known_phone(request, phone)
    if not hasattr(request, _FULL):
        named = _from_cookie(request)
        customer = Customer.objects.filter(pk=named[0]).first() if named else None
        if customer is None:
            return None
        setattr(request, _FULL, customer)
    return getattr(request, _FULL)


def known_customer_id(request):
    """The id of the customer this request speaks for, or None for a visitor that is none yet:
    without a query when the cookie names it, and without checking that it still exists."""
    request = _django(request)
    if hasattr(request, _FULL):
        return getattr(request, _FULL).pk
    named = _from_cookie(request)
    return named[0] if named else None


def session_phone(request, name: str, *, label: str, idempotency: bool = True) -> Customer:
    """One of this browser's phones, created on first use with its idempotency switch as given
    (its label names the browser it belongs to, for the workshop dashboard)."""
    customer = known_phone(request, name)
    if customer is None:
        owner = customer_for_request(request)
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
        customer = getattr(request, _FULL, None)
        if customer is not None and _from_cookie(request) != (customer.pk, customer.idempotency_enabled):
            response.set_signed_cookie(
                COOKIE, f"{customer.pk}:{'on' if customer.idempotency_enabled else 'off'}", salt=_SALT,
                max_age=settings.SESSION_COOKIE_AGE, secure=settings.SESSION_COOKIE_SECURE, httponly=True,
                samesite=settings.SESSION_COOKIE_SAMESITE,
            )
        return response

    def process_view(self, request, view, args, kwargs):
        request._bakery_view = (view, args, kwargs)

    def process_exception(self, request, exception):
        """A cookie can outlive its customer (deleted in the admin, or a database made afresh): its
        writes then break a foreign key. Everything the view wrote has rolled back with it, so the
        view runs once more, as a new customer, and the browser gets that customer's cookie."""
        named = _from_cookie(request)
        if (not isinstance(exception, (IntegrityError, Customer.DoesNotExist)) or named is None or phone_of(request)
                or getattr(request, "_bakery_rerun", False) or Customer.objects.filter(pk=named[0]).exists()):
            return None
        request._bakery_rerun = True
        for cached in (_FULL, _KNOWN):
            request.__dict__.pop(cached, None)
        request.COOKIES.pop(COOKIE, None)
        request.customer = SimpleLazyObject(lambda: customer_for_request(request))
        customer_for_request(request)
        view, args, kwargs = request._bakery_view
        return view(request, *args, **kwargs)
