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


def order_get(*, customer: Customer | None, order_id) -> Order | None:
    return order_list(customer=customer).filter(pk=order_id).first()


def kitchen_counts(*, customer: Customer | None) -> dict:
    """What the kitchen panel shows: cakes baked, charges taken, invoices and emails sent."""
    from django.db.models import Count, Q, Sum

    from payments.models import Charge

    if customer is None:
        return {"orders": 0, "cakes": 0, "charges": 0, "invoices": 0, "emails": 0}

    orders = Order.objects.filter(customer=customer).aggregate(
        orders=Count("id", distinct=True),
        cakes=Sum("items__quantity"),
    )
    extra = Order.objects.filter(customer=customer).aggregate(
        charges=Count("charge", filter=Q(charge__status=Charge.Status.SUCCEEDED)),
        invoices=Count("invoice"),
        emails=Count("email_receipt"),
    )
    return {"orders": orders["orders"], "cakes": orders["cakes"] or 0, **extra}
