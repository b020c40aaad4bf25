"""Every browser is a customer, known by its Django session (no sign-up)."""

import random

from django.utils.functional import SimpleLazyObject

from orders.models import Customer

SESSION_KEY = "bakery_customer_id"
_FLAVOURS = ["Strawberry", "Lemon", "Carrot", "Chocolate", "Pistachio", "Coconut", "Raspberry", "Ginger",
             "Mango", "Hazelnut", "Blueberry", "Caramel", "Cherry", "Vanilla", "Matcha", "Plum"]
_BAKERS = ["Baker", "Whisk", "Crumb", "Sprinkle", "Muffin", "Scone", "Eclair", "Bun"]


def customer_for_session(request) -> Customer:
    """Return the session's customer, creating both the session and the customer on first use."""
    customer_id = request.session.get(SESSION_KEY)
    customer = Customer.objects.filter(pk=customer_id).first() if customer_id else None
    if customer is None:
        customer = Customer.objects.create(label=f"{random.choice(_FLAVOURS)} {random.choice(_BAKERS)}")
        request.session[SESSION_KEY] = str(customer.pk)
    return customer


class CustomerMiddleware:
    """Puts ``request.customer`` on every request, looked up only when a view asks for it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.customer = SimpleLazyObject(lambda: customer_for_session(request))
        return self.get_response(request)
