"""Every browser is a customer, known by its Django session (no sign-up).

A visitor becomes a customer when it first does something: orders, flips its idempotency
switch, or opens a cake page (the tunnel simulator). Reads (``GET /api/me/``, the kitchen, the
timeline, an invoice) look the customer up with :func:`known_customer` and create nothing, so a
flood of cookie-less requests leaves no rows behind and nothing on the workshop dashboard.

A page that shows several phones side by side (the compare page) gives the browser's session a few
more customers, one per phone, each with its own orders, keys and idempotency switch. A request
speaks for one of them with the header ``X-Bakery-Phone: <name>``; only phones kept in this
session can be named, so a browser can never act as another browser's customer.
"""

import random

from django.utils.functional import SimpleLazyObject

from orders.models import Customer
from orders.problems import problem

SESSION_KEY = "bakery_customer_id"
PHONES_SESSION_KEY = "bakery_phones"
PHONE_HEADER = "X-Bakery-Phone"
_FLAVOURS = ["Strawberry", "Lemon", "Carrot", "Chocolate", "Pistachio", "Coconut", "Raspberry", "Ginger",
             "Mango", "Hazelnut", "Blueberry", "Caramel", "Cherry", "Vanilla", "Matcha", "Plum"]
_BAKERS = ["Baker", "Whisk", "Crumb", "Sprinkle", "Muffin", "Scone", "Eclair", "Bun"]
_SESSION_CUSTOMER = "_bakery_session_customer"


def _session_customer(request) -> Customer | None:
    """The session's own customer if it has one (looked up once per request); creates nothing."""
    if not hasattr(request, _SESSION_CUSTOMER):
        customer_id = request.session.get(SESSION_KEY)
        setattr(request, _SESSION_CUSTOMER, Customer.objects.filter(pk=customer_id).first() if customer_id else None)
    return getattr(request, _SESSION_CUSTOMER)


def known_customer(request) -> Customer | None:
    """The customer this request speaks for (the phone it names, or the session's own) if it
    already exists; never creates a customer or a session."""
    phone = phone_of(request)
    return known_phone(request, phone) if phone else _session_customer(request)


def customer_for_session(request) -> Customer:
    """Return the session's customer, creating both the session and the customer on first use."""
    customer = _session_customer(request)
    if customer is None:
        customer = Customer.objects.create(label=f"{random.choice(_FLAVOURS)} {random.choice(_BAKERS)}")
        request.session[SESSION_KEY] = str(customer.pk)
        setattr(request, _SESSION_CUSTOMER, customer)
    return customer


def session_phone(request, name: str, *, label: str, idempotency: bool = True) -> Customer:
    """One of this session's phones, created on first use with its idempotency switch as given
    (its label names the browser it belongs to, for the workshop dashboard)."""
    customer = known_phone(request, name)
    if customer is None:
        owner = customer_for_session(request)
        customer = Customer.objects.create(label=f"{owner.label} · {label}"[:60], idempotency_enabled=idempotency)
        request.session[PHONES_SESSION_KEY] = {**request.session.get(PHONES_SESSION_KEY, {}), name: str(customer.pk)}
    return customer


def known_phone(request, name: str) -> Customer | None:
    """One of this session's phones if it has one; never creates anything."""
    customer_id = request.session.get(PHONES_SESSION_KEY, {}).get(name)
    return Customer.objects.filter(pk=customer_id).first() if customer_id else None


def phone_of(request) -> str:
    """The phone this request speaks for, or "" for the browser's own customer."""
    return request.headers.get(PHONE_HEADER, "")


class CustomerMiddleware:
    """Puts ``request.customer`` on every request: the phone the request names, or the session's own
    customer, created only when a view that writes asks for it."""

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
        else:
            request.customer = SimpleLazyObject(lambda: customer_for_session(request))
        return self.get_response(request)
