"""What the facilitator's dashboard reads: who is in the room, their counts, the room's address, and
what the room got through the last kitchen fire."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Count, Exists, Min, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.http.request import split_domain_port
from django.utils import timezone

from bakery import kitchen_fire
from bakery.kitchen_fire import Fire
from bakery.network import lan_address
from orders.models import Customer, Event, Order
from payments.selectors import Counts, counts_by_customer, counts_total, customers_with_duplicates, fulfilment_backlog

# A learner counts as "in the room" while they did something in the last half hour: long enough
# to cover a lab's discussion, short enough that yesterday's run of the workshop drops out.
ACTIVE_WINDOW = timedelta(minutes=30)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
# Learners listed per page of the dashboard: a room fits on one or two; a page of 20,000 rows took
# seconds to render and weighed 21 MB, every 3 s.
PAGE_SIZE = 50


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
    """Customers seen, or with a timeline event, inside the window; most recently active first.

    Whether a customer is active is an EXISTS on their events (the events' customer index), so the
    room's count and totals use it as a subquery; ``active_at``, for the order, is read per row.
    """
    since = (now or timezone.now()) - window
    recent_event = Event.objects.filter(customer=OuterRef("pk"), created_at__gte=since)
    last_event = Event.objects.filter(customer=OuterRef("pk")).order_by("-created_at").values("created_at")[:1]
    return (
        Customer.objects.filter(Q(last_seen_at__gte=since) | Exists(recent_event))
        .annotate(active_at=Greatest("last_seen_at", Coalesce(Subquery(last_event), "last_seen_at")))
        .order_by("-active_at", "label", "pk")
    )


def learner_rows(customers=None) -> list[LearnerRow]:
    """One row per customer of ``customers`` (a slice of :func:`active_customers`, all of them by
    default) with their counts, in a fixed number of queries (not one per learner)."""
    customers = list(active_customers() if customers is None else customers)
    counts = counts_by_customer(customer.pk for customer in customers)
    return [
        LearnerRow(customer_id=str(customer.pk), label=str(customer), idempotency_enabled=customer.idempotency_enabled,
                   last_scenario=customer.last_scenario, active_at=customer.active_at, **vars(counts[customer.pk]))
        for customer in customers
    ]


def learner_page(number=1, *, now: datetime | None = None, window: timedelta = ACTIVE_WINDOW) -> Page:
    """Page ``number`` of the active learners (PAGE_SIZE rows; a number out of range is the nearest page),
    its ``object_list`` their rows."""
    page = Paginator(active_customers(now=now, window=window), PAGE_SIZE).get_page(number)
    page.object_list = learner_rows(page.object_list)
    return page


def room_totals(*, now: datetime | None = None, window: timedelta = ACTIVE_WINDOW) -> RoomTotals:
    """The active learners' counts summed, and their last scenarios counted, in PostgreSQL."""
    active = active_customers(now=now, window=window)
    ids = active.order_by().values("pk")
    totals = RoomTotals(learners=active.count(), learners_with_duplicates=customers_with_duplicates(ids),
                        **vars(counts_total(ids)))
    scenarios = active.exclude(last_scenario="").order_by("last_scenario").values("last_scenario")
    totals.scenarios = {row["last_scenario"]: row["n"] for row in scenarios.annotate(n=Count("pk"))}
    return totals


# An order placed this long ago and still not notified (nor declined) is stranded: far past the
# completer's first resumption (FULFILMENT_STALL_SECONDS) and its backoff, as far as a fire goes.
STRANDED_AFTER = timedelta(minutes=2)
FINAL = (Order.Status.NOTIFIED, Order.Status.PAYMENT_FAILED)
SUMMARY_ORDERS = 5000  # the orders of a fire's window whose waits are measured, most recent first


@dataclass(kw_only=True)
class FireSummary:
    """What the room got since the last kitchen fire began."""

    fire: Fire
    accepted: int  # orders taken since it began
    duplicates: int  # orders baked again for a key that already had one
    on_their_way: int  # not notified yet, placed within STRANDED_AFTER
    stranded: int  # not notified (nor declined) STRANDED_AFTER after they were placed
    longest_wait: float | None  # seconds from an intent's first attempt to its order being taken

    @property
    def burning(self) -> bool:
        return self.fire.back is None


def fire_summary(*, now: datetime | None = None) -> FireSummary | None:
    """The last kitchen fire and the orders since it began; None before the first fire."""
    fire = kitchen_fire.last_fire()
    if fire is None:
        return None
    now = now or timezone.now()
    orders = Order.objects.filter(created_at__gte=datetime.fromtimestamp(fire.started, tz=UTC))
    keyed = orders.exclude(idempotency_key=None).order_by()
    twice = keyed.values("customer_id", "idempotency_key").annotate(n=Count("id")).filter(n__gt=1)
    unfinished = orders.exclude(status__in=FINAL)
    stranded = unfinished.filter(created_at__lt=now - STRANDED_AFTER).count()
    return FireSummary(fire=fire, accepted=orders.count(), duplicates=sum(row["n"] - 1 for row in twice),
                       on_their_way=unfinished.count() - stranded, stranded=stranded,
                       longest_wait=longest_wait(orders, fire))


def longest_wait(orders, fire: Fire) -> float | None:
    """The longest time from an intent's first attempt to its order being taken, in seconds. Its first
    attempt is the earliest of its timeline's events and its first 503 while PostgreSQL was away
    (those were never written to PostgreSQL: the web wrote them down beside the demo, bakery/kitchen_fire.py)."""
    taken = dict(orders.exclude(idempotency_key=None).order_by("-created_at")
                 .values_list("idempotency_key", "created_at")[:SUMMARY_ORDERS])
    if not taken:
        return None
    first = {key: datetime.fromtimestamp(at, tz=UTC) for at, key in reversed(kitchen_fire.waits())
             if at >= fire.started}
    seen = Event.objects.filter(key__in=[str(key) for key in taken]).values("key").annotate(at=Min("created_at"))
    for row in seen:
        first[row["key"]] = min(row["at"], first.get(row["key"], row["at"]))
    return max((taken_at - first.get(str(key), taken_at)).total_seconds() for key, taken_at in taken.items())


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


def dashboard_context(page_number=1) -> dict:
    page = learner_page(page_number)
    return {"learners": page.object_list, "page": page, "totals": room_totals(),
            "active_minutes": int(ACTIVE_WINDOW.total_seconds() // 60), "refreshed_at": timezone.now(),
            "backlog": fulfilment_backlog(), "fire": fire_summary(),
            "fire_unavailable": kitchen_fire.unavailable_reason(), "fire_parts": kitchen_fire.PARTS,
            "fire_seconds": (kitchen_fire.MIN_SECONDS, kitchen_fire.MAX_SECONDS)}
