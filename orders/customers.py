"""Every browser is a customer, known by its Django session (no sign-up).

A visitor becomes a customer when it first does something: orders, flips its idempotency
switch, or opens a cake page (the tunnel simulator). Reads (``GET /api/me/``, the kitchen, the
timeline, an invoice) look the customer up with :func:`known_customer` and create nothing, so a
flood of cookie-less requests leaves no rows behind and nothing on the workshop dashboard.
"""

import random

from django.utils.functional import SimpleLazyObject

from orders.models import Customer

SESSION_KEY = "bakery_customer_id"
_FLAVOURS = ["Strawberry", "Lemon", "Carrot", "Chocolate", "Pistachio", "Coconut", "Raspberry", "Ginger",
             "Mango", "Hazelnut", "Blueberry", "Caramel", "Cherry", "Vanilla", "Matcha", "Plum"]
_BAKERS = ["Baker", "Whisk", "Crumb", "Sprinkle", "Muffin", "Scone", "Eclair", "Bun"]
_KNOWN = "_bakery_known_customer"


def known_customer(request) -> Customer | None:
    """The session's customer if it already has one; never creates a customer or a session."""
    if not hasattr(request, _KNOWN):
        customer_id = request.session.get(SESSION_KEY)
        setattr(request, _KNOWN, Customer.objects.filter(pk=customer_id).first() if customer_id else None)
    return getattr(request, _KNOWN)


def customer_for_session(request) -> Customer:
    """Return the session's customer, creating both the session and the customer on first use."""
    customer = known_customer(request)
    if customer is None:
        customer = Customer.objects.create(label=f"{random.choice(_FLAVOURS)} {random.choice(_BAKERS)}")
        request.session[SESSION_KEY] = str(customer.pk)
        setattr(request, _KNOWN, customer)
    return customer


class CustomerMiddleware:
    """Puts ``request.customer`` on every request, created only when a view that writes asks for it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.customer = SimpleLazyObject(lambda: customer_for_session(request))
        return self.get_response(request)
