"""What the idempotency layer decided, and how long it took, in Prometheus text format (/metrics).

**Counts come from PostgreSQL.** Every decision of the layer is already a timeline event
(``KeyRef.event``, ``record_event``), written by whichever gunicorn or Celery process made it. So
``bakery_idempotency_decisions_total`` is not kept in any process: :class:`DecisionCollector`
counts ``orders_event`` by kind and scope at scrape time. That is exact however many web and worker
processes (or machines) there are, survives restarts, and agrees with the workshop dashboard,
which counts the same rows. Deleted events ("Reset my bakery") are folded into
``orders_decisiontally`` by a trigger first (migration 0003), so a counter never goes down.

**Durations are per process.** ``bakery_idempotency_layer_seconds`` is a histogram of the time a
first request (``new``: the claim, the handler inside the layer's transaction, the stored answer)
and a replay (``replay``: the lookup of the stored answer, or the wait on a running first
request) spend in the layer. It is observed in the process that did the work; with
``PROMETHEUS_MULTIPROC_DIR`` set (the entry points do it) every process writes its samples there and
a scrape sums them all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from django.conf import settings
from django.db import connection
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric

from orders.events import Kind
from orders.models import DecisionTally, Event

# What /metrics counts: the layer's own decisions, the unguarded orders of a customer whose switch
# is off (the bug, on purpose), and the back office's skipped duplicate deliveries.
COUNTED = (Kind.NEW, Kind.REPLAY, Kind.CONFLICT, Kind.MISMATCH, Kind.REJECTED, Kind.RELEASED, Kind.EXPIRED,
           Kind.DEDUPE, Kind.UNGUARDED)

LAYER_SECONDS = Histogram(
    "bakery_idempotency_layer_seconds",
    "Seconds a call spent in the idempotency layer: decision=new includes the handler, which runs "
    "inside the layer's transaction; decision=replay is the stored answer coming back.",
    ["decision", "scope"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=None,  # exported by exposition(): per process, or summed over the multiprocess folder
)


class _Scoped(Protocol):
    """What a layer entry point is called with first: a key's reference, which names its scope."""

    @property
    def scope(self) -> str: ...


class _Decided(Protocol):
    """What a layer entry point returns: an outcome, which names its decision."""

    @property
    def decision(self) -> str: ...


_Ref = TypeVar("_Ref", bound=_Scoped)
_Params = ParamSpec("_Params")
_Result = TypeVar("_Result", bound=_Decided | None)


def timed(entry: Callable[Concatenate[_Ref, _Params], _Result]) -> Callable[Concatenate[_Ref, _Params], _Result]:
    """The layer's one metrics hook: time a layer entry point that returns an ``Outcome`` (or None)."""

    @wraps(entry)
    def measured(guard: _Ref, /, *args: _Params.args, **kwargs: _Params.kwargs) -> _Result:
        started = time.perf_counter()
        outcome = entry(guard, *args, **kwargs)
        if outcome is not None:
            LAYER_SECONDS.labels(str(outcome.decision), guard.scope).observe(time.perf_counter() - started)
        return outcome

    return measured


def decision_counts() -> dict[tuple[str, str], int]:
    """(decision, scope) -> how many, from the timeline plus the tally of deleted events."""
    kinds = [str(kind) for kind in COUNTED]
    with connection.cursor() as cursor:
        # Keep the scope and weight expressions in step with the trigger in migration 0003.
        cursor.execute(
            f"""
            SELECT kind, scope, SUM(n) FROM (
                SELECT kind, COALESCE(detail->>'scope', source) AS scope,
                       CASE WHEN kind = 'expired' THEN COALESCE((detail->>'keys')::bigint, 0) ELSE 1 END AS n
                FROM {Event._meta.db_table} WHERE kind = ANY(%s)
                UNION ALL
                SELECT kind, scope, count FROM {DecisionTally._meta.db_table} WHERE kind = ANY(%s)
            ) AS decided
            GROUP BY kind, scope
            """,
            [kinds, kinds],
        )
        return {(kind, scope): int(count) for kind, scope, count in cursor.fetchall()}


class DecisionCollector:
    """``bakery_idempotency_decisions_total{decision, scope}``, counted in PostgreSQL at scrape time."""

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "bakery_idempotency_decisions",
            "Decisions of the idempotency layer (new, replay, conflict, mismatch, rejected, released, "
            "expired keys), unguarded orders and skipped duplicate task deliveries, by scope.",
            labels=["decision", "scope"],
        )
        for (decision, scope), count in sorted(decision_counts().items()):
            family.add_metric([decision, scope], count)
        yield family


class _ThisProcess:
    def collect(self) -> Iterator[Metric]:
        yield from LAYER_SECONDS.collect()


def exposition() -> bytes:
    """The whole /metrics page: counts from PostgreSQL, durations from every process."""
    registry = CollectorRegistry(auto_describe=False)
    if settings.PROMETHEUS_MULTIPROC_DIR:
        from prometheus_client import multiprocess

        # prometheus_client leaves MultiProcessCollector's __init__ unannotated.
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ThisProcess())
    registry.register(DecisionCollector())
    return generate_latest(registry)
