"""What the facilitator's dashboard reads: who is in the room, their counts, the room's address."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max
from django.db.models.functions import Coalesce, Greatest
from django.http.request import split_domain_port
from django.utils import timezone

from bakery.demo import lan_address
from orders.models import Customer
from payments.selectors import Counts, counts_by_customer, fulfilment_backlog

# A learner counts as "in the room" while they did something in the last half hour: long enough
# to cover a lab's discussion, short enough that yesterday's run of the workshop drops out.
ACTIVE_WINDOW = timedelta(minutes=30)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


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


def active_customers(*, now: datetime | None = None, window: timedelta = ACTIVE_WINDOW):
    """Customers seen, or with a timeline event, inside the window; most recently active first."""
    since = (now or timezone.now()) - window
    return (
        Customer.objects.annotate(last_event_at=Max("events__created_at"))
        .annotate(active_at=Greatest("last_seen_at", Coalesce("last_event_at", "last_seen_at")))
        .filter(active_at__gte=since)
        .order_by("-active_at", "label")
    )


def learner_rows(*, now: datetime | None = None, window: timedelta = ACTIVE_WINDOW) -> list[LearnerRow]:
    """One row per active learner with their counts, in a fixed number of queries (not one per learner)."""
    customers = list(active_customers(now=now, window=window))
    counts = counts_by_customer(customer.pk for customer in customers)
    return [
        LearnerRow(customer_id=str(customer.pk), label=str(customer), idempotency_enabled=customer.idempotency_enabled,
                   last_scenario=customer.last_scenario, active_at=customer.active_at, **vars(counts[customer.pk]))
        for customer in customers
    ]


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
    hostname, port = split_domain_port(request.get_host())
    if hostname not in LOOPBACK_HOSTS:
        return request.build_absolute_uri("/"), ""
    lan = lan_address()
    if lan and (lan in settings.ALLOWED_HOSTS or "*" in settings.ALLOWED_HOSTS):
        return f"{request.scheme}://{lan}:{port or request.get_port()}/", ""
    return request.build_absolute_uri("/"), (
        "This bakery answers on this machine only. Restart it with `make demo HOST=0.0.0.0` so the room can join."
    )


def dashboard_context() -> dict:
    rows = learner_rows()
    return {"learners": rows, "totals": room_totals(rows), "active_minutes": int(ACTIVE_WINDOW.total_seconds() // 60),
            "refreshed_at": timezone.now(), "backlog": fulfilment_backlog()}
