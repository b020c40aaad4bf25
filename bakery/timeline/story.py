"""The timeline's interpretation: a customer's events become a sequence diagram, one per order intent.

Events are grouped by the browser's idempotency key (one key = one intent). Each request that
reached the bakery left exactly one decision event (the layer's ``new``/``replay``/``conflict``/
``mismatch``, or ``unguarded``/``rejected`` from the API) or, when the tunnel ate it, a
``lost_request``: those start an attempt. ``order_stored`` and ``lost_response`` belong to an
attempt already started, and the Celery steps (sources payment/invoice/email) hang off the order
they work for. The diagram is drawn server-side from these rows, so what the learner sees is
what PostgreSQL recorded, not what the page hoped for. The query is :mod:`.query`; every word
shown is in :mod:`.words`.

After a long drive through the tunnel an intent has many attempts that all went the same way.
Identical attempts between the first and the last fold into one :class:`Fold` ("Attempts 3–7:
the layer replayed the stored answer; each answer was lost in the tunnel"), which the page shows
as a ``<details>`` group that opens on click; the first and the last attempt always stay open.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bakery.timeline import words
from bakery.timeline.query import HTTP_SOURCES, timeline_events
from bakery.timeline.words import LAB, LANES, Words, docs_url
from orders.events import Kind
from orders.models import Event

BROWSER, API, LAYER, STORE, PAYMENT, INVOICE, EMAIL = range(len(LANES))
STEP_LANES = {"payment": PAYMENT, "invoice": INVOICE, "email": EMAIL}
DECISIONS = set(words.DECISION_ROWS)


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
    words: Words | None = None  # the table entry it was written from: two attempts alike have the same

    folded = False

    @classmethod
    def saying(cls, start: int, end: int, at: datetime, said: Words, **values) -> Row:
        """The arrow with ``said``'s words, their ``{fields}`` filled in from ``values``."""
        return cls(start, end, said.label.format(**values), said.said.format(**values), LAB[said.lab], at,
                   tone=said.tone, badge=said.badge, lost=said.lost, short=said.short.format(**values), words=said)

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
class Fold:
    """Attempts ``first`` to ``last`` went exactly the same way: one line says how, the rows wait inside."""

    first: int
    last: int
    summary: str
    rows: list[Row]

    folded = True

    @property
    def at(self) -> datetime:
        return self.rows[0].at


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
    rows: list[Row] = field(default_factory=list)  # every arrow, in the order it happened
    entries: list[Row | Fold] = field(default_factory=list)  # the same, identical attempts folded

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
            which = "tunnel bug"
        elif self.orders == 1:
            which = "replayed" if self.replays else "one order"
        else:
            which = "nothing yet"
        return words.SUMMARIES[which].format(attempts=attempts, orders=self.orders, replays=self.replays,
                                             s="s" if attempts != 1 else "")


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
        intent.rows, intent.entries = _rows(intent)
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


def _rows(intent: Intent) -> tuple[list[Row], list[Row | Fold]]:
    """Every arrow of the intent in the order it happened (ties keep the order they were made in),
    and the same with identical middle attempts folded."""
    starts = [attempt.started.created_at for attempt in intent.attempts]
    per_attempt, orders_before = [], 0
    for attempt in intent.attempts:
        per_attempt.append(_attempt_rows(intent, attempt, starts, extra_order=orders_before > 0))
        orders_before += attempt.stored is not None
    steps = [_step_row(step) for step in intent.steps]
    rows = sorted([row for rows in per_attempt for row in rows] + steps, key=lambda row: row.at)  # stable
    entries: list[Row | Fold] = list(steps)
    for first, last in _alike(per_attempt):
        if first == last:
            entries += per_attempt[first]
        else:
            entries.append(_fold(intent.attempts[first], intent.attempts[last], per_attempt[first:last + 1]))
    return rows, sorted(entries, key=lambda entry: entry.at)


def _alike(per_attempt: list[list[Row]]) -> list[tuple[int, int]]:
    """Runs of attempts (indexes, inclusive) that went the same way; the first and the last attempt
    are runs of their own, so the story's beginning and end are never hidden."""
    def signature(rows: list[Row]):
        return tuple((row.start, row.end, row.words) for row in rows)

    runs: list[tuple[int, int]] = []
    for index, rows in enumerate(per_attempt):
        middle = 0 < index < len(per_attempt) - 1
        if runs and middle and 0 < runs[-1][0] and signature(per_attempt[runs[-1][0]]) == signature(rows):
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    return runs


def _fold(first: Attempt, last: Attempt, rows: list[list[Row]]) -> Fold:
    sample = rows[0]
    did = words.FOLD_LOST_REQUEST if first.lost_request else words.FOLD_DECISIONS[first.decision.kind]
    answer = next((words.FOLD_ANSWERS[row.words] for row in sample if row.words in words.FOLD_ANSWERS), "")
    summary = words.FOLD.format(first=first.number, last=last.number, did=did)
    return Fold(first.number, last.number, f"{summary}; {answer}" if answer else summary,
                sorted((row for attempt_rows in rows for row in attempt_rows), key=lambda row: row.at))


def _attempt_rows(intent: Intent, attempt: Attempt, starts: list[datetime], *, extra_order: bool) -> list[Row]:
    n, start = attempt.number, attempt.started.created_at
    if attempt.lost_request:
        return [Row.saying(BROWSER, API, start, words.REQUEST_LOST, n=n)]
    decision = attempt.decision
    kind = decision.kind
    rows = [
        Row.saying(BROWSER, API, start, words.REQUEST_ARRIVED, n=n, key=intent.short_key),
        Row.saying(API, BROWSER if kind == Kind.REJECTED else LAYER, start, words.DECISION_ROWS[kind],
                   fields=", ".join(decision.detail.get("fields") or []) or "the body",
                   reason=decision.detail.get("reason", "invalid")),
    ]
    if kind == Kind.REJECTED:
        return rows
    if (stored := attempt.stored) is not None:
        said = words.ORDER_STORED_AGAIN if extra_order else words.ORDER_STORED
        rows.append(Row.saying(LAYER, STORE, stored.created_at, said, order=stored.order_id,
                               cakes=stored.detail.get("cakes", 1)))
    if attempt.released is not None:
        rows.append(Row.saying(LAYER, LAYER, attempt.released.created_at, words.KEY_RELEASED))

    answer = words.ANSWERS[kind]
    answered_at = (attempt.lost_response or attempt.stored or decision).created_at
    if attempt.lost_response is not None:
        said = words.ANSWER_LOST
    elif any(start < other < answered_at for other in starts):
        said = words.ANSWER_TOO_LATE  # the browser had given up and retried before this answer came
    else:
        said = answer._replace(label="{answer}", short="{short}")
    rows.append(Row.saying(API, BROWSER, answered_at, said, answer=answer.label, short=answer.label[:3]))
    return rows


def _step_row(step: Event) -> Row:
    lane = STEP_LANES.get(step.source, PAYMENT)
    detail = step.detail or {}
    name, at = step.source, step.created_at
    if step.kind == Kind.DEDUPE:
        who = "the payment provider" if detail.get("by") == "provider" else f"the {name} step"
        return Row.saying(lane - 1, lane, at, words.STEP_ROWS[Kind.DEDUPE], name=name, who=who)
    if step.kind == Kind.RESUMED:
        return Row.saying(lane - 1, lane, at, words.STEP_ROWS[Kind.RESUMED], name=name,
                          quiet=detail.get("quiet_seconds", "?"), attempt=detail.get("attempt", 1))
    if step.kind in (Kind.RETRY, Kind.FAILED):
        reason = detail.get("reason") or detail.get("error") or words.STEP_REASON_UNKNOWN[step.kind]
        return Row.saying(lane, lane, at, words.STEP_ROWS[step.kind], name=name, reason=reason)
    done = words.STEP_DONE.get(name, words.STEP_DONE_OTHER)
    row = Row.saying(lane - 1, lane, at, done, name=name)
    if detail.get("invoice"):
        row.label = f"{row.label} · {detail['invoice']}"
    return row
