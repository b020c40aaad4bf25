"""The demo terminal's story: one line for each thing a person cares about, read from the events.

``make demo`` (bakery/demo.py) keeps its web, worker and beat logs in files and prints this
instead: an order that went all the way through (``#58 Strawberry Shortcake ×1: placed → paid →
invoiced → notified (0.9 s)``), a replay, a lost answer, a second cake baked with idempotency off,
a duplicate delivery skipped, a decline. Everything else (an order's intermediate steps, a periodic
task that found nothing to do) prints nothing.

It reads the same Event rows as the timeline, from PostgreSQL, so it tells what happened in every
web and worker process. The words are in :mod:`.words`.
"""

from __future__ import annotations

import time

from django.utils import timezone

from bakery.timeline import words
from bakery.timeline.query import earlier_order_with_key, events_after, last_event_id, order_of
from orders.events import Kind
from orders.keys import ORDER_SCOPE
from orders.models import Event, Order

STEP_SOURCES = {"payment", "invoice", "email"}
# Ids are handed out when a row is inserted and become visible when its transaction commits, so an
# id below one already seen can still appear (a slow bakery commits 4 s late). Missing ids are asked
# for again for this long; after that they were rolled back or deleted.
GAP_SECONDS = 60


class Feed:
    """Follows the events from now on, across processes, and turns the interesting ones into lines."""

    def __init__(self):
        self.last = last_event_id()  # what happened before the demo started is not news
        self.gaps: dict[int, float] = {}

    def poll(self) -> list[str]:
        now = time.monotonic()
        lines = []
        for event in events_after(self.last, also=list(self.gaps)):
            self.gaps.pop(event.id, None)
            if event.id > self.last:
                self.gaps.update(dict.fromkeys(range(self.last + 1, event.id), now))
                self.last = event.id
            if line := line_for(event):
                lines.append(f"{timezone.localtime(event.created_at):%H:%M:%S}  {line}")
        self.gaps = {event_id: seen for event_id, seen in self.gaps.items() if now - seen < GAP_SECONDS}
        return lines


def line_for(event: Event) -> str | None:
    """What the terminal says about one event, or None when it is not worth a line."""
    detail = event.detail or {}
    if event.source == Event.Source.API and detail.get("scope", ORDER_SCOPE) != ORDER_SCOPE:
        return None  # another endpoint wearing the idempotency layer, not an order
    if event.source == Event.Source.EMAIL and event.kind == Kind.STEP_DONE:
        return _fulfilled(event)
    if event.source == Event.Source.ORDER and event.kind == Kind.ORDER_STORED:
        return _baked_again(event)
    source = "step" if event.source in STEP_SOURCES else event.source
    said = words.FEED.get((source, event.kind))
    if said is None:
        return None
    order = order_of(event)
    values = {"who": _who(order, event), "step": event.source, "reason": detail.get("reason", ""),
              "fields": ", ".join(detail.get("fields") or []) or "the body", "quiet": detail.get("quiet_seconds", "?")}
    if event.kind == Kind.DEDUPE and detail.get("by") == "provider":
        said = words.FEED_PROVIDER_DEDUPE
    elif event.kind == Kind.FAILED and event.source == Event.Source.PAYMENT and order is not None and \
            order.failure_reason.startswith("Payment declined"):
        said = words.FEED_DECLINED
        values["reason"] = order.failure_reason.split(":", 1)[-1].strip()
    return said.format(**values)


def _fulfilled(event: Event) -> str | None:
    order = order_of(event)
    if order is None:
        return None  # reset before its email went out
    items = ", ".join(words.FEED_ITEM.format(name=item.cake.name, quantity=item.quantity)
                      for item in order.items.all())
    seconds = (event.created_at - order.created_at).total_seconds()
    return words.FEED_FULFILLED.format(who=f"#{order.pk}", items=items, seconds=seconds)


def _baked_again(event: Event) -> str | None:
    order = order_of(event)
    first = earlier_order_with_key(order) if order is not None and not order.idempotent else None
    if first is None:
        return None  # a first order is told when it is fulfilled
    return words.FEED_BAKED_AGAIN.format(who=f"#{order.pk}", first=f"#{first.pk}")


def _who(order: Order | None, event: Event) -> str:
    if order is not None:
        return f"#{order.pk}"
    return f"key {event.key[:8]}" if event.key else "an order"
