"""Per-customer counts across the order core and the back office: the one place they are computed.

The kitchen panel shows one customer's; the workshop dashboard shows every active learner's and
sums them for the room. Both read :func:`counts_by_customer`, in a fixed number of queries however
many customers are asked for.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, fields

from django.db.models import Count, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from orders.models import Event, Order, OrderItem
from payments.models import Charge, EmailReceipt, Invoice

# What an idempotency layer did instead of doing the work again: at the API (a replay, a 409) and
# in the back office (a redelivered task replayed or skipped, the provider returning its charge).
PREVENTED_KINDS = (Event.Kind.REPLAY, Event.Kind.CONFLICT, Event.Kind.DEDUPE)


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


def counts_by_customer(customer_ids) -> dict:
    """``{customer_id: Counts}`` for the given customers (every one of them, zeros included)."""
    ids = list(customer_ids)
    counts = {customer_id: Counts() for customer_id in ids}
    if not ids:
        return counts
    for item in Order.objects.filter(customer_id__in=ids).values("customer_id").annotate(n=Count("id")):
        counts[item["customer_id"]].orders = item["n"]
    cakes = OrderItem.objects.filter(order__customer_id__in=ids).values("order__customer_id")
    for item in cakes.annotate(n=Sum("quantity")):
        counts[item["order__customer_id"]].cakes = item["n"] or 0
    for customer_id, extra in duplicate_cakes_by_customer(ids).items():
        counts[customer_id].duplicate_cakes = extra
    done = {
        "charges": Charge.objects.filter(status=Charge.Status.SUCCEEDED),
        "invoices": Invoice.objects.all(),
        "emails": EmailReceipt.objects.all(),
    }
    for counter, rows in done.items():
        for item in rows.filter(order__customer_id__in=ids).values("order__customer_id").annotate(n=Count("id")):
            setattr(counts[item["order__customer_id"]], counter, item["n"])
    # A back-office step may label its event with the order only; the order still names the customer.
    prevented = (
        Event.objects.filter(kind__in=PREVENTED_KINDS)
        .annotate(learner=Coalesce("customer_id", "order__customer_id"))
        .filter(learner__in=ids)
        .values("learner", "kind", "source")
        .annotate(n=Count("id"))
    )
    for item in prevented:
        row = counts[item["learner"]]
        if item["source"] != "api":
            # A redelivered step leaves a layer REPLAY (or a 409 first) *and* one DEDUPE naming what
            # it skipped; counting only the DEDUPE counts each prevented duplicate once.
            row.dedupes += item["n"] if item["kind"] == Event.Kind.DEDUPE else 0
        elif item["kind"] == Event.Kind.REPLAY:
            row.replays += item["n"]
        elif item["kind"] == Event.Kind.CONFLICT:
            row.conflicts += item["n"]
    return counts


def duplicate_cakes_by_customer(customer_ids) -> dict:
    """Cakes baked again for an intent already baked: unguarded orders sharing a key, minus the first.

    With idempotency off the server ignores the key for deduplication but still stores it, so the
    key is exactly what tells "the customer wanted one" apart from "the customer wanted two".
    """
    rows = (
        Order.objects.filter(customer_id__in=customer_ids, idempotent=False, idempotency_key__isnull=False)
        .annotate(cakes=Coalesce(Sum("items__quantity"), 0))
        .order_by("created_at", "id")
        .values_list("customer_id", "idempotency_key", "cakes")
    )
    seen: set = set()
    duplicates: dict = defaultdict(int)
    for customer_id, key, cakes in rows:
        if (customer_id, key) in seen:
            duplicates[customer_id] += cakes
        seen.add((customer_id, key))
    return duplicates


def fulfilment_backlog(*, now=None) -> dict:
    """How many orders wait for the back office, and how long ago the oldest of them was placed (s)."""
    now = now or timezone.now()
    waiting = Order.objects.filter(status__in=[Order.Status.PLACED, Order.Status.PAID, Order.Status.INVOICED])
    oldest = waiting.order_by("created_at").values_list("created_at", flat=True).first()
    return {"waiting": waiting.count(), "oldest_seconds": int((now - oldest).total_seconds()) if oldest else 0}
