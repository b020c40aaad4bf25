"""The timeline: turn a customer's Event rows into a sequence diagram, one per order intent.

Events are grouped by the browser's idempotency key (one key = one intent). Each request that
reached the bakery left exactly one decision event (the layer's ``new``/``replay``/``conflict``/
``mismatch``, or ``unguarded``/``rejected`` from the API) or, when the tunnel ate it, a
``lost_request``: those start an attempt. ``order_stored`` and ``lost_response`` belong to an
attempt already started, and the Celery steps (sources payment/invoice/email) hang off the order
they work for. The diagram is drawn server-side from these rows, so what the learner sees is
what PostgreSQL recorded, not what the page hoped for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Q

from orders.models import Event, Order

Kind = Event.Kind

# (name, short name for a phone-wide diagram)
LANES = [
    ("browser", "phone"),
    ("API", "API"),
    ("idempotency layer", "layer"),
    ("order store", "store"),
    ("payment", "pay"),
    ("invoice", "invoice"),
    ("email", "email"),
]
BROWSER, API, LAYER, STORE, PAYMENT, INVOICE, EMAIL = range(len(LANES))
STEP_LANES = {"payment": PAYMENT, "invoice": INVOICE, "email": EMAIL}
HTTP_SOURCES = {"api", "layer", "tunnel", "order"}
DECISIONS = {Kind.NEW, Kind.REPLAY, Kind.CONFLICT, Kind.MISMATCH, Kind.UNGUARDED, Kind.REJECTED}

LAB = {
    "break": "lab-1-break-it",
    "fix": "lab-2-fix-it",
    "slow": "lab-3-slow-bakery",
    "worker": "lab-4-crashed-worker",
    "changed": "lab-5-changed-order",
}
# What the layer (or, for ``rejected``, the API) decided, drawn as one arrow:
# (label, short label, lab, tone, badge, what just happened). {fields} and {reason} come from the event.
DECISION_ROWS = {
    Kind.NEW: ("new key", "new", "fix", "", "new",
               "The idempotency layer had never seen this key, so it claimed it and let the order through."),
    Kind.REPLAY: ("seen it: replay", "seen", "fix", "saved", "replay",
                  "Same key, same order, already done: the layer returned the stored answer. "
                  "No new cake, no new charge."),
    Kind.CONFLICT: ("key still in use", "busy", "slow", "saved", "conflict",
                    "The first attempt with this key was still being baked, so this one waited, "
                    "then got 409 with Retry-After instead of baking a second cake."),
    Kind.MISMATCH: ("same key, other order", "other", "changed", "error", "mismatch",
                    "This key was first used for a different order ({fields} differ). "
                    "The bakery refused with 422 rather than guess."),
    Kind.UNGUARDED: ("switched off: no check", "off", "break", "warn", "idempotency off",
                     "Idempotency is off, so the API did not look at the key and went straight to the kitchen."),
    Kind.REJECTED: ("400 bad request", "400", "fix", "error", "rejected", "The API refused the request: {reason}"),
}
DEFAULT_DOCS_URL = "/docs/workshop/"  # docs/workshop.md, served by bakery.docs
STEP_DONE = {"payment": "payment captured", "invoice": "invoice issued", "email": "confirmation sent"}


def docs_url(anchor: str) -> str:
    return f"{getattr(settings, 'WORKSHOP_DOCS_URL', DEFAULT_DOCS_URL)}#{anchor}"


@dataclass
class Row:
    """One arrow of the diagram, from lane ``start`` to lane ``end`` (either way round)."""

    start: int
    end: int
    label: str
    said: str  # the plain-words "what just happened"
    lab: str
    at: datetime
    tone: str = ""  # "saved" (replay/dedupe), "baked", "lost", "warn", "error"
    badge: str = ""
    lost: bool = False
    short: str = ""  # the label on a phone, where a lane is 50 px wide

    @property
    def left(self) -> int:
        return min(self.start, self.end) + 1  # CSS grid lines are 1-based

    @property
    def span(self) -> int:
        """How many lanes the arrow's box covers: it runs from the middle of the first to the middle of the last."""
        return abs(self.end - self.start) + 1

    @property
    def rightward(self) -> bool:
        return self.end >= self.start

    @property
    def self_call(self) -> bool:
        return self.start == self.end

    @property
    def lab_url(self) -> str:
        return docs_url(self.lab)

    @property
    def lab_name(self) -> str:
        return f"Lab {self.lab.split('-')[1]}"


@dataclass
class Attempt:
    number: int
    started: Event
    decision: Event | None = None
    stored: Event | None = None
    lost_response: Event | None = None
    released: Event | None = None

    @property
    def lost_request(self) -> bool:
        return self.started.kind == Kind.LOST_REQUEST


@dataclass
class Intent:
    key: str
    events: list[Event] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    steps: list[Event] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    @property
    def short_key(self) -> str:
        return self.key[:8] if self.key else "no key"

    @property
    def started_at(self) -> datetime:
        return self.events[0].created_at

    @property
    def last_at(self) -> datetime:
        return self.events[-1].created_at

    @property
    def orders(self) -> int:
        return sum(1 for attempt in self.attempts if attempt.stored is not None)

    def count(self, *kinds) -> int:
        return sum(1 for event in self.events if event.kind in kinds)

    @property
    def replays(self) -> int:
        return self.count(Kind.REPLAY)

    @property
    def dedupes(self) -> int:
        return sum(1 for event in self.steps if event.kind == Kind.DEDUPE)

    @property
    def lost(self) -> int:
        return self.count(Kind.LOST_REQUEST, Kind.LOST_RESPONSE)

    @property
    def summary(self) -> str:
        attempts = len(self.attempts)
        if self.orders > 1:
            return f"{attempts} attempts baked {self.orders} orders for one intent: the tunnel bug."
        if self.orders == 1 and self.replays:
            return f"{attempts} attempts, one order: the idempotency layer replayed the answer {self.replays}×."
        if self.orders == 1:
            return f"{attempts} attempt{'s' if attempts != 1 else ''}, one order."
        return f"{attempts} attempt{'s' if attempts != 1 else ''}, nothing baked yet."


def timeline_events(*, customer, limit_intents: int = 6) -> tuple[list[Event], dict[str, int]]:
    """This customer's events for the most recent intents, oldest first, and which order each
    back-office key belongs to (the Celery steps key their events on the order's fulfilment key)."""
    mine = Event.objects.filter(Q(customer=customer) | Q(order__customer=customer))
    recent_keys = list(
        mine.filter(source__in=HTTP_SOURCES).values_list("key", flat=True).order_by("-created_at", "-id")[:500]
    )
    keys = list(dict.fromkeys(recent_keys))[:limit_intents]
    order_ids = mine.filter(kind=Kind.ORDER_STORED, key__in=keys).values_list("order_id", flat=True)
    fulfilment = {
        str(key): pk for pk, key in Order.objects.filter(pk__in=list(order_ids)).values_list("pk", "fulfilment_key")
    }
    events = mine.filter(Q(key__in=keys) | Q(order_id__in=list(order_ids)) | Q(key__in=list(fulfilment)))
    return list(events.order_by("created_at", "id")), fulfilment


def build_timeline(*, customer, limit_intents: int = 6) -> list[Intent]:
    """The intents newest first, each with its attempts and the rows of its diagram (none for a visitor)."""
    if customer is None:
        return []
    intents: dict[str, Intent] = {}
    order_intent: dict[int, Intent] = {}
    steps: list[Event] = []

    events, fulfilment = timeline_events(customer=customer, limit_intents=limit_intents)
    for event in events:
        if event.source in HTTP_SOURCES:
            intent = intents.setdefault(event.key, Intent(key=event.key))
            intent.events.append(event)
            _attach(intent, event)
            if event.kind == Kind.ORDER_STORED and event.order_id:
                order_intent[event.order_id] = intent
        elif event.kind not in (Kind.NEW, Kind.REPLAY):
            # A step's own NEW/REPLAY from the layer is followed by its STEP_DONE/DEDUPE, which
            # say the same thing in the order's words; one row per step is easier to read.
            steps.append(event)

    for event in steps:
        intent = order_intent.get(event.order_id or fulfilment.get(event.key))
        if intent is not None:
            intent.steps.append(event)
            intent.events.append(event)
    for intent in intents.values():
        intent.events.sort(key=lambda event: (event.created_at, event.id))
        intent.rows = _rows(intent)
    return sorted(intents.values(), key=lambda intent: intent.last_at, reverse=True)


def _attach(intent: Intent, event: Event) -> None:
    attempts = intent.attempts
    if event.kind == Kind.LOST_REQUEST or event.kind in DECISIONS:
        attempts.append(
            Attempt(
                number=len(attempts) + 1, started=event, decision=None if event.kind == Kind.LOST_REQUEST else event
            )
        )
    elif event.kind == Kind.ORDER_STORED:
        # Under a slow bakery a retry's 409 can come between the first attempt's "new" and its
        # stored order, so the order belongs to the latest attempt that ran the handler.
        for attempt in reversed(attempts):
            if attempt.decision and attempt.decision.kind in (Kind.NEW, Kind.UNGUARDED) and attempt.stored is None:
                attempt.stored = event
                return
    elif event.kind == Kind.LOST_RESPONSE:
        for attempt in reversed(attempts):
            if not attempt.lost_request and attempt.lost_response is None:
                attempt.lost_response = event
                return
    elif event.kind == Kind.RELEASED:
        for attempt in reversed(attempts):
            if attempt.decision and attempt.decision.kind == Kind.NEW and attempt.stored is None:
                attempt.released = event
                return


def _rows(intent: Intent) -> list[Row]:
    rows: list[tuple[datetime, int, Row]] = []
    order_no = 0
    starts = [attempt.started.created_at for attempt in intent.attempts]

    def add(event_time, row):
        rows.append((event_time, len(rows), row))

    for attempt in intent.attempts:
        n = attempt.number
        start = attempt.started.created_at
        if attempt.lost_request:
            add(
                start,
                Row(
                    BROWSER,
                    API,
                    f"attempt {n}: POST /api/orders/",
                    short=f"#{n}",
                    lab=LAB["break"],
                    at=start,
                    tone="lost",
                    badge="request lost",
                    lost=True,
                    said=f"Attempt {n} never reached the bakery: the tunnel swallowed the request. "
                    "Nothing was baked, so retrying is safe even without a key.",
                ),
            )
            continue
        decision = attempt.decision
        add(
            start,
            Row(
                BROWSER,
                API,
                f"attempt {n}: POST /api/orders/",
                short=f"#{n}",
                lab=LAB["fix"],
                at=start,
                said=f"Attempt {n} left the browser with key {intent.short_key}… and reached the API.",
            ),
        )
        kind = decision.kind
        label, short, lab, tone, badge, said = DECISION_ROWS[kind]
        add(
            start,
            Row(
                API,
                BROWSER if kind == Kind.REJECTED else LAYER,
                label,
                short=short,
                lab=LAB[lab],
                at=start,
                tone=tone,
                badge=badge,
                said=said.format(
                    fields=", ".join(decision.detail.get("fields") or []) or "the body",
                    reason=decision.detail.get("reason", "invalid"),
                ),
            ),
        )
        if kind == Kind.REJECTED:
            continue

        if attempt.stored is not None:
            order_no += 1
            stored = attempt.stored
            cakes = stored.detail.get("cakes", 1)
            extra = order_no > 1
            add(
                stored.created_at,
                Row(
                    LAYER,
                    STORE,
                    f"order #{stored.order_id} stored",
                    short=f"#{stored.order_id}",
                    lab=LAB["break"] if extra else LAB["fix"],
                    at=stored.created_at,
                    tone="error" if extra else "baked",
                    badge="another cake!" if extra else "baked",
                    said=(
                        f"A second order for the same intent: {cakes} more cake(s) baked. This is the tunnel bug."
                        if extra
                        else f"Order #{stored.order_id} was written to PostgreSQL with its key: "
                        f"{cakes} cake(s) to bake."
                    ),
                ),
            )
        if attempt.released is not None:
            add(
                attempt.released.created_at,
                Row(
                    LAYER,
                    LAYER,
                    "handler failed: key released",
                    lab=LAB["fix"],
                    at=attempt.released.created_at,
                    tone="warn",
                    said="The order failed and rolled back, key included, so a retry can succeed.",
                ),
            )

        answer = {
            Kind.NEW: "201 Created",
            Kind.UNGUARDED: "201 Created",
            Kind.REPLAY: "201 (Idempotent-Replayed)",
            Kind.CONFLICT: "409 + Retry-After",
            Kind.MISMATCH: "422 mismatch",
        }[kind]
        answered_at = (attempt.lost_response or attempt.stored or decision).created_at
        if attempt.lost_response is not None:
            add(
                answered_at,
                Row(
                    API,
                    BROWSER,
                    answer,
                    short=answer[:3],
                    lab=LAB["break"],
                    at=answered_at,
                    tone="lost",
                    badge="response lost",
                    lost=True,
                    said="The bakery answered, but the answer was lost in the tunnel. The phone "
                    "cannot tell whether the order went through.",
                ),
            )
        else:
            gave_up = any(start < other < answered_at for other in starts)
            add(
                answered_at,
                Row(
                    API,
                    BROWSER,
                    answer,
                    short=answer[:3],
                    lab=LAB["slow"] if gave_up else LAB["fix"],
                    at=answered_at,
                    tone="lost" if gave_up else "",
                    badge="too late" if gave_up else "",
                    lost=gave_up,
                    said=(
                        "The answer came back, but the browser had already given up waiting and retried."
                        if gave_up
                        else _answer_said(kind)
                    ),
                ),
            )

    for step in intent.steps:
        add(step.created_at, _step_row(step))

    rows.sort(key=lambda item: (item[0], item[1]))
    return [row for _, _, row in rows]


def _answer_said(kind) -> str:
    return {
        Kind.NEW: "The browser got its answer: the order is confirmed.",
        Kind.UNGUARDED: "The browser got its answer: the order is confirmed.",
        Kind.REPLAY: "The browser got the first attempt's answer, byte for byte, marked as a replay.",
        Kind.CONFLICT: "The browser was told to come back in a moment with the same key.",
        Kind.MISMATCH: "The browser was told the key belongs to a different order.",
    }[kind]


def _step_row(step: Event) -> Row:
    lane = STEP_LANES.get(step.source, PAYMENT)
    detail = step.detail or {}
    name = step.source
    if step.kind == Kind.DEDUPE:
        who = "the payment provider" if detail.get("by") == "provider" else f"the {name} step"
        return Row(
            lane - 1,
            lane,
            f"{name}: duplicate skipped",
            short="skip",
            lab=LAB["worker"],
            at=step.created_at,
            tone="saved",
            badge="dedupe",
            said=f"A repeated {name} request reached {who}, which saw the work already done for this "
            "order's key and did nothing again.",
        )
    if step.kind == Kind.RETRY:
        return Row(
            lane,
            lane,
            f"{name}: will retry",
            short="retry",
            lab=LAB["worker"],
            at=step.created_at,
            tone="warn",
            badge="retry",
            said=f"The {name} step hit a problem ({detail.get('reason') or detail.get('error') or 'transient'}) "
            "and will try again with backoff, with the same key.",
        )
    if step.kind == Kind.FAILED:
        return Row(
            lane,
            lane,
            f"{name}: failed",
            short="fail",
            lab=LAB["worker"],
            at=step.created_at,
            tone="error",
            badge="failed",
            said=f"The {name} step gave up: {detail.get('reason') or detail.get('error') or 'see the order'}.",
        )
    what = STEP_DONE.get(name, f"{name} done")
    extra = detail.get("invoice")
    return Row(
        lane - 1,
        lane,
        f"{what}{f' · {extra}' if extra else ''}",
        short={"payment": "paid", "invoice": "INV", "email": "sent"}.get(name, "done"),
        lab=LAB["worker"],
        at=step.created_at,
        tone="baked",
        badge="done",
        said={
            "payment": "The Celery worker charged the card once, with the order's key, so the provider "
            "would refuse to charge it twice.",
            "invoice": "The worker issued the invoice, numbered once and only once for this order.",
            "email": "The worker sent the confirmation email.",
        }.get(name, f"The {name} step finished."),
    )
