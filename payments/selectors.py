"""Per-customer counts across the order core and the back office: the one place they are computed.

The kitchen panel shows one customer's; the workshop dashboard shows every active learner's and
sums them for the room. Both are the same aggregates (:func:`_counters`), grouped by customer for
:func:`counts_by_customer` and summed in PostgreSQL for :func:`counts_total`, in a fixed number of
queries however many customers are asked for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from orders.models import Event, Order, OrderItem
from payments.models import Charge, EmailReceipt, Invoice

# What an idempotency layer did instead of doing the work again: at the API (a replay, a 409) and
# in the back office (a redelivered task replayed or skipped, the provider returning its charge).
PREVENTED_KINDS = (Event.Kind.REPLAY, Event.Kind.CONFLICT, Event.Kind.DEDUPE)

# Customers by id: a list of them, or a queryset of ids that stays a subquery.
Customers = Iterable[UUID] | QuerySet[Any]


@dataclass(kw_only=True)
class Counts:
    """What a customer's bakery did, or the same summed over a room."""

    orders: int = 0
    cakes: int = 0
    duplicate_cakes: int = 0
    replays: int = 0
    conflicts: int = 0
    dedupes: int = 0
    charges: int = 0
    invoices: int = 0
    emails: int = 0

    @property
    def prevented(self) -> int:
        return self.replays + self.conflicts + self.dedupes

    def add(self, other: Counts) -> None:
        for counter in fields(Counts):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))


def _counters(customers: Customers) -> list[tuple[QuerySet[Any], str, dict[str, Any]]]:
    """Every counter as ``(rows, customer, {counter: aggregate})``: the rows of the given customers
    (a list of ids or a queryset of them, which stays a subquery), the path from a row to its
    customer, and what to aggregate. Grouped by customer or summed over all, it is the same SQL."""
    prevented = Q(kind__in=PREVENTED_KINDS)
    return [
        (Order.objects.filter(customer_id__in=customers), "customer_id", {"orders": Count("id")}),
        (OrderItem.objects.filter(order__customer_id__in=customers), "order__customer_id",
         {"cakes": Sum("quantity")}),
        (_duplicate_orders(customers), "customer_id", {"duplicate_cakes": Sum("items__quantity")}),
        (Charge.objects.filter(status=Charge.Status.SUCCEEDED, order__customer_id__in=customers),
         "order__customer_id", {"charges": Count("id")}),
        (Invoice.objects.filter(order__customer_id__in=customers), "order__customer_id", {"invoices": Count("id")}),
        (EmailReceipt.objects.filter(order__customer_id__in=customers), "order__customer_id", {"emails": Count("id")}),
        # A back-office step may label its event with the order only; the order still names the customer.
        # A redelivered step leaves a layer REPLAY (or a 409 first) *and* one DEDUPE naming what it
        # skipped; counting only the DEDUPE counts each prevented duplicate once.
        (Event.objects.filter(prevented).annotate(learner=Coalesce("customer_id", "order__customer_id"))
         .filter(learner__in=customers), "learner", {
             "replays": Count("id", filter=Q(source="api", kind=Event.Kind.REPLAY)),
             "conflicts": Count("id", filter=Q(source="api", kind=Event.Kind.CONFLICT)),
             "dedupes": Count("id", filter=~Q(source="api") & Q(kind=Event.Kind.DEDUPE)),
         }),
    ]


def _duplicate_orders(customers: Customers) -> QuerySet[Order]:
    """Orders that baked again for an intent already baked: an unguarded order whose customer already
    had an unguarded order with the same key (earlier, or as early with a smaller id).

    With idempotency off the server ignores the key for deduplication but still stores it, so the
    key is exactly what tells "the customer wanted one" apart from "the customer wanted two".
    """
    unguarded = Order.objects.filter(idempotent=False, idempotency_key__isnull=False)
    earlier = unguarded.filter(customer_id=OuterRef("customer_id"), idempotency_key=OuterRef("idempotency_key")).filter(
        Q(created_at__lt=OuterRef("created_at")) | Q(created_at=OuterRef("created_at"), id__lt=OuterRef("id")))
    return unguarded.filter(customer_id__in=customers).filter(Exists(earlier))


def counts_by_customer(customer_ids: Iterable[UUID]) -> dict[UUID, Counts]:
    """``{customer_id: Counts}`` for the given customers (every one of them, zeros included)."""
    ids = list(customer_ids)
    counts = {customer_id: Counts() for customer_id in ids}
    if not ids:
        return counts
    for rows, customer, aggregates in _counters(ids):
        for item in rows.order_by().values(customer).annotate(**aggregates):
            for counter in aggregates:
                setattr(counts[item[customer]], counter, item[counter] or 0)
    return counts


def counts_total(customers: Customers) -> Counts:
    """The counts of all ``customers`` (a queryset of ids) summed in PostgreSQL, however many they are."""
    total = Counts()
    for rows, _customer, aggregates in _counters(customers):
        for counter, value in rows.order_by().aggregate(**aggregates).items():
            setattr(total, counter, value or 0)
    return total


def customers_with_duplicates(customers: Customers) -> int:
    """How many of ``customers`` (a queryset of ids) had a cake baked twice."""
    return _duplicate_orders(customers).order_by().values("customer_id").distinct().count()


def fulfilment_backlog(*, now: datetime | None = None) -> dict[str, int]:
    """How many orders wait for the back office, and how long ago the oldest of them was placed (s)."""
    now = now or timezone.now()
    waiting = Order.objects.filter(status__in=[Order.Status.PLACED, Order.Status.PAID, Order.Status.INVOICED])
    oldest = waiting.order_by("created_at").values_list("created_at", flat=True).first()
    return {"waiting": waiting.count(), "oldest_seconds": int((now - oldest).total_seconds()) if oldest else 0}
