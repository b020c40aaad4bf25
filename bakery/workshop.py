"""The facilitator's dashboard: who in the room is baking, and what idempotency saved them from.

Reads are selectors (``learner_rows``, ``room_totals``, ``room_url``), writes are services
(``workshop_reset_learner``, ``workshop_reset_room``), and the views only check the caller is staff,
call one of them and render. Learners are anonymous session customers, so "staff only" also means
"learners cannot reach it": the admin login is the only way in.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.db import transaction
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import Coalesce, Greatest
from django.http.request import split_domain_port
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from bakery.qr import qr_svg
from orders.models import Customer, Event, Order, OrderItem
from orders.services import customer_reset

# A learner counts as "in the room" while they did something in the last half hour: long enough
# to cover a lab's discussion, short enough that yesterday's run of the workshop drops out.
ACTIVE_WINDOW = timedelta(minutes=30)
# What an idempotency layer did instead of doing the work again: at the API (a replay, a 409) and
# in the back office (a redelivered task replayed or skipped, the provider returning its charge).
PREVENTED_KINDS = (Event.Kind.REPLAY, Event.Kind.CONFLICT, Event.Kind.DEDUPE)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


@dataclass(kw_only=True)
class Counts:
    """What the dashboard counts, for one learner or summed over the room."""

    orders: int = 0
    cakes: int = 0
    duplicate_cakes: int = 0
    replays: int = 0
    conflicts: int = 0
    dedupes: int = 0
    charges: int = 0
    invoices: int = 0

    @property
    def prevented(self) -> int:
        return self.replays + self.conflicts + self.dedupes

    def add(self, other: Counts) -> None:
        for counter in fields(Counts):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))


@dataclass(kw_only=True)
class LearnerRow(Counts):
    customer_id: str
    label: str
    idempotency_enabled: bool
    last_scenario: str
    active_at: datetime


@dataclass(kw_only=True)
class RoomTotals(Counts):
    learners: int = 0
    learners_with_duplicates: int = 0
    scenarios: dict[str, int] = field(default_factory=dict)


# --- selectors ---------------------------------------------------------------------------------


def active_customers(*, now: datetime | None = None, window: timedelta = ACTIVE_WINDOW):
    """Customers seen, or with a timeline event, inside the window; most recently active first."""
    since = (now or timezone.now()) - window
    return (
        Customer.objects.annotate(last_event_at=Max("events__created_at"))
        .annotate(active_at=Greatest("last_seen_at", Coalesce("last_event_at", "last_seen_at")))
        .filter(active_at__gte=since)
        .order_by("-active_at", "label")
    )


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


def learner_rows(*, now: datetime | None = None, window: timedelta = ACTIVE_WINDOW) -> list[LearnerRow]:
    """One row per active learner with their counts, in a fixed number of queries (not one per learner)."""
    from payments.models import Charge, Invoice  # payments depends on orders; the dashboard reads both

    rows = {
        customer.pk: LearnerRow(
            customer_id=str(customer.pk), label=str(customer), idempotency_enabled=customer.idempotency_enabled,
            last_scenario=customer.last_scenario, active_at=customer.active_at,
        )
        for customer in active_customers(now=now, window=window)
    }
    ids = list(rows)
    if not ids:
        return []
    for item in Order.objects.filter(customer_id__in=ids).values("customer_id").annotate(n=Count("id")):
        rows[item["customer_id"]].orders = item["n"]
    cakes = (OrderItem.objects.filter(order__customer_id__in=ids)
             .values("order__customer_id").annotate(n=Sum("quantity")))
    for item in cakes:
        rows[item["order__customer_id"]].cakes = item["n"] or 0
    for customer_id, extra in duplicate_cakes_by_customer(ids).items():
        rows[customer_id].duplicate_cakes = extra
    charges = (Charge.objects.filter(order__customer_id__in=ids, status=Charge.Status.SUCCEEDED)
               .values("order__customer_id").annotate(n=Count("id")))
    for item in charges:
        rows[item["order__customer_id"]].charges = item["n"]
    invoices = Invoice.objects.filter(order__customer_id__in=ids).values("order__customer_id").annotate(n=Count("id"))
    for item in invoices:
        rows[item["order__customer_id"]].invoices = item["n"]
    # A back-office step may label its event with the order only; the order still names the learner.
    prevented = (
        Event.objects.filter(kind__in=PREVENTED_KINDS)
        .annotate(learner=Coalesce("customer_id", "order__customer_id"))
        .filter(learner__in=ids)
        .values("learner", "kind", "source")
        .annotate(n=Count("id"))
    )
    for item in prevented:
        row = rows[item["learner"]]
        if item["source"] != "api":
            # A redelivered step leaves a layer REPLAY (or a 409 first) *and* one DEDUPE naming what
            # it skipped; counting only the DEDUPE counts each prevented duplicate once.
            row.dedupes += item["n"] if item["kind"] == Event.Kind.DEDUPE else 0
        elif item["kind"] == Event.Kind.REPLAY:
            row.replays += item["n"]
        elif item["kind"] == Event.Kind.CONFLICT:
            row.conflicts += item["n"]
    return list(rows.values())


def room_totals(rows: list[LearnerRow]) -> RoomTotals:
    totals = RoomTotals(learners=len(rows))
    scenarios: dict[str, int] = defaultdict(int)
    for row in rows:
        totals.add(row)
        totals.learners_with_duplicates += row.duplicate_cakes > 0
        if row.last_scenario:
            scenarios[row.last_scenario] += 1
    totals.scenarios = dict(sorted(scenarios.items()))
    return totals


def room_url(request) -> tuple[str, str]:
    """The address learners type (or scan), and a warning when the room cannot reach it.

    A facilitator usually opens the dashboard on the laptop itself (127.0.0.1), which is no use to
    a phone, so a loopback request is answered with the machine's LAN address when this server
    accepts that host (``make demo HOST=0.0.0.0`` adds it to ALLOWED_HOSTS).
    """
    from bakery.demo import lan_address

    hostname, port = split_domain_port(request.get_host())
    if hostname not in LOOPBACK_HOSTS:
        return request.build_absolute_uri("/"), ""
    lan = lan_address()
    if lan and (lan in settings.ALLOWED_HOSTS or "*" in settings.ALLOWED_HOSTS):
        return f"{request.scheme}://{lan}:{port or request.get_port()}/", ""
    return request.build_absolute_uri("/"), (
        "This bakery answers on this machine only. Restart it with `make demo HOST=0.0.0.0` so the room can join."
    )


def dashboard_context(request) -> dict:
    rows = learner_rows()
    from payments.completer import fulfilment_backlog

    return {"learners": rows, "totals": room_totals(rows), "active_minutes": int(ACTIVE_WINDOW.total_seconds() // 60),
            "refreshed_at": timezone.now(), "backlog": fulfilment_backlog()}


# --- services ----------------------------------------------------------------------------------


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


# --- views -------------------------------------------------------------------------------------


@require_GET
@staff_member_required
def dashboard(request):
    url, warning = room_url(request)
    context = {**dashboard_context(request), "room_url": url, "room_warning": warning, "room_qr": qr_svg(url)}
    if request.htmx:
        return render(request, "workshop/_learners.html", context)
    return render(request, "workshop/dashboard.html", context)


@require_GET
@staff_member_required
def learners(request):
    """The live part of the dashboard, polled by htmx; a plain page of its own without JS."""
    return render(request, "workshop/_learners.html", dashboard_context(request))


@require_POST
@staff_member_required
def reset_learner(request, customer_id):
    workshop_reset_learner(customer=get_object_or_404(Customer, pk=customer_id))
    return _after_reset(request)


@require_POST
@staff_member_required
def reset_room(request):
    workshop_reset_room()
    return _after_reset(request)


def _after_reset(request):
    if request.htmx:
        return render(request, "workshop/_learners.html", dashboard_context(request))
    return redirect("workshop-dashboard")

