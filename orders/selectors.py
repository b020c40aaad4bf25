"""Reads of orders, kept apart from the services that change them."""

from django.db.models import QuerySet

from orders.models import Customer, Order


def order_list(*, customer: Customer | None) -> QuerySet[Order]:
    """``customer=None`` is a visitor who has not done anything yet: no orders."""
    if customer is None:
        return Order.objects.none()
    return (
        Order.objects.filter(customer=customer)
        .select_related("charge", "invoice", "email_receipt")
        .prefetch_related("items__cake")
        .order_by("-created_at", "-id")
    )


def order_get(*, customer: Customer | None, order_id: int) -> Order | None:
    return order_list(customer=customer).filter(pk=order_id).first()
