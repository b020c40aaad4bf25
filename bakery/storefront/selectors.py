"""What the storefront reads: the catalogue and a customer's kitchen."""

from __future__ import annotations

from django.db.models import QuerySet

from orders.models import Cake, Customer
from orders.selectors import order_list
from payments.selectors import Counts, counts_by_customer


def cakes_on_sale() -> QuerySet[Cake]:
    return Cake.objects.filter(is_available=True)


def kitchen_context(customer: Customer | None) -> dict:
    """What the kitchen panel shows: cakes baked, charges taken, invoices sent, the latest orders.
    A visitor who is not a customer yet (``None``) has an empty kitchen."""
    if customer is None:
        return {"counts": Counts(), "orders": []}
    return {"counts": counts_by_customer([customer.pk])[customer.pk], "orders": order_list(customer=customer)[:12]}
