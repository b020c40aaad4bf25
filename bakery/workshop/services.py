"""What the facilitator can change: reset one learner, or the whole room."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from orders.models import Customer
from orders.services import customer_reset


@transaction.atomic
def workshop_reset_learner(*, customer: Customer) -> None:
    """Give one learner an empty bakery; their session, name and switch stay as they are."""
    customer_reset(customer=customer)
    # update(), not save(): a reset by the facilitator is not the learner being active.
    Customer.objects.filter(pk=customer.pk).update(last_scenario="")


@transaction.atomic
def workshop_reset_room() -> int:
    """Reset every learner who has anything to reset; return how many were reset."""
    customers = Customer.objects.filter(
        Q(orders__isnull=False) | Q(events__isnull=False) | ~Q(last_scenario="")
    ).distinct()
    count = 0
    for customer in customers:
        workshop_reset_learner(customer=customer)
        count += 1
    return count
