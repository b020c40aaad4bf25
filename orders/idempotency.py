"""The idempotency layer: one piece in front of a handler, used by the order API and the Celery steps.

How it keeps its promise, in the order things happen:

1. A finished key is replayed from its record with one SELECT and no transaction (the fast path).
2. Otherwise, in one transaction with the handler, the layer INSERTs the key's record with
   ``ON CONFLICT DO NOTHING``. PostgreSQL's unique index decides who owns the key. A second
   request with the same key blocks inside that INSERT until the first commits or rolls back.
   The wait is bounded by ``lock_timeout`` (IDEMPOTENCY_WAIT_SECONDS): past it the caller gets
   :class:`KeyInFlight` (HTTP 409 + Retry-After; a task retries later).
3. The handler runs inside the same transaction and its response is written into the record. If
   the handler raises, everything rolls back, the record included: the key is released and
   nothing is half-written, so a retry can succeed.

No lock ever expires: when a process dies mid-handler its connection closes, PostgreSQL rolls
the transaction back, and the key is free again.

Metrics (orders/metrics.py): each decision is a timeline event through :meth:`Guard.event`, and
/metrics counts those rows; the two entry points are timed by ``@timed``, the layer's only hook.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import OperationalError, connection, transaction

from orders.events import Kind, record_event
from orders.metrics import timed
from orders.models import IdempotencyRecord

LOCK_NOT_AVAILABLE = "55P03"


@dataclass(frozen=True)
class StoredResponse:
    """What a handler answered, kept byte for byte so a replay is indistinguishable."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self):
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class Outcome:
    decision: str  # Kind.NEW or Kind.REPLAY
    response: StoredResponse

    @property
    def replayed(self) -> bool:
        return self.decision == Kind.REPLAY


class KeyInFlight(Exception):
    """The same key is being handled right now; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int = 1):
        super().__init__("a request with this idempotency key is still being processed")
        self.retry_after = retry_after


class FingerprintMismatch(Exception):
    """The key was used before with a different request."""

    def __init__(self, fields: list[str]):
        super().__init__(f"this idempotency key was used with a different {', '.join(fields)}")
        self.fields = fields


def canonical_json(payload) -> str:
    """Same content, same text: key order and spacing do not change a fingerprint."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def fingerprint_of(payload) -> str:
    # surrogatepass: a caller that did not check its text (a lone surrogate) still gets a fingerprint.
    return hashlib.sha256(canonical_json(payload).encode("utf-8", "surrogatepass")).hexdigest()


def differing_fields(stored, new, path="") -> list[str]:
    """Name the fields that differ, as paths a person can read: ``items[0].quantity``, ``note``."""
    if isinstance(stored, dict) and isinstance(new, dict):
        found = []
        for name in sorted(set(stored) | set(new)):
            found += differing_fields(stored.get(name), new.get(name), f"{path}.{name}" if path else name)
        return found
    if isinstance(stored, list) and isinstance(new, list) and len(stored) == len(new):
        found = []
        for index, (old_item, new_item) in enumerate(zip(stored, new, strict=True)):
            found += differing_fields(old_item, new_item, f"{path}[{index}]")
        return found
    return [] if canonical_json(stored) == canonical_json(new) else [path or "body"]


@dataclass(frozen=True)
class Guard:
    """Who is asking: ``scope`` names the caller, ``owner`` scopes keys (one customer's key
    never replays another's answer), ``customer_id`` and ``key`` label the timeline events."""

    scope: str
    owner: str
    key: str
    source: str
    customer_id: object = None

    def event(self, kind: str, **detail):
        return record_event(source=self.source, kind=kind, key=self.key, customer_id=self.customer_id, **detail)


@timed
def replay_if_finished(guard: Guard, request: dict) -> Outcome | None:
    """The fast path alone: the stored answer for a finished key, or None for a new or running one.

    A caller may use it before its own validation, so that a replay costs one SELECT and
    nothing else (Stripe, too, answers a finished key before it validates again).
    Raises :class:`FingerprintMismatch` like :func:`run_once`.
    """
    return _replay_finished(guard, request)


def _replay_finished(guard: Guard, request: dict) -> Outcome | None:
    finished = _lookup(guard)
    if finished is None:
        return None
    return _replay(guard, finished, request, fingerprint_of(request))


@timed
def run_once(
    guard: Guard,
    request: dict,
    handler: Callable[[], StoredResponse],
    *,
    wait_seconds: float | None = None,
    checked_finished: bool = False,
) -> Outcome:
    """Run ``handler`` at most once per (scope, owner, key); replay its stored answer afterwards.

    Raises :class:`FingerprintMismatch` when the key comes back with a different request and
    :class:`KeyInFlight` when the first request is still running after the bounded wait.
    ``checked_finished=True`` skips the fast path when the caller just ran
    :func:`replay_if_finished` itself.
    """
    fingerprint = fingerprint_of(request)
    if not checked_finished:
        replayed = _replay_finished(guard, request)
        if replayed is not None:
            return replayed

    wait = settings.IDEMPOTENCY_WAIT_SECONDS if wait_seconds is None else wait_seconds
    try:
        with transaction.atomic():
            record_id = _claim(guard, request, fingerprint, wait)
            if record_id is None:
                # The first request finished while we waited on its row lock.
                return _replay(guard, _lookup(guard), request, fingerprint)
            guard.event(Kind.NEW, scope=guard.scope)
            response = handler()
            IdempotencyRecord.objects.filter(pk=record_id).update(
                response_status=response.status,
                response_body=response.body,
                response_headers=response.headers,
            )
    except KeyInFlight:
        guard.event(Kind.CONFLICT, scope=guard.scope, waited_seconds=wait)
        raise
    except FingerprintMismatch:
        raise
    except Exception as error:
        guard.event(Kind.RELEASED, scope=guard.scope, error=type(error).__name__)
        raise
    return Outcome(Kind.NEW, response)


def _lookup(guard: Guard) -> IdempotencyRecord | None:
    return (
        IdempotencyRecord.objects.filter(scope=guard.scope, owner=guard.owner, key=guard.key)
        .only("fingerprint", "request", "response_status", "response_body", "response_headers")
        .first()
    )


def _claim(guard: Guard, request: dict, fingerprint: str, wait: float) -> int | None:
    """Insert the key's record, or return None if another transaction committed it first."""
    table = IdempotencyRecord._meta.db_table
    with connection.cursor() as cursor:
        # SET cannot take a bind parameter; the value is a number we formatted ourselves.
        cursor.execute(f"SET LOCAL lock_timeout = '{max(1, int(wait * 1000))}ms'")
        try:
            cursor.execute(
                f"""
                INSERT INTO {table}
                    (scope, owner, key, fingerprint, request, response_body, response_headers, created_at)
                VALUES (%s, %s, %s, %s, %s, '', '{{}}', now())
                ON CONFLICT (scope, owner, key) DO NOTHING
                RETURNING id
                """,
                [guard.scope, guard.owner, guard.key, fingerprint, canonical_json(request)],
            )
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                raise KeyInFlight(retry_after=max(1, round(wait))) from error
            raise
        row = cursor.fetchone()
        # The handler's own statements must not inherit the short wait.
        cursor.execute("SET LOCAL lock_timeout = 0")
    return row[0] if row else None


def _replay(guard: Guard, record: IdempotencyRecord, request: dict, fingerprint: str) -> Outcome:
    if record.fingerprint != fingerprint:
        stored = json.loads(record.request) if isinstance(record.request, str) else record.request
        fields = differing_fields(stored, request)
        guard.event(Kind.MISMATCH, scope=guard.scope, fields=fields)
        raise FingerprintMismatch(fields or ["request"])
    guard.event(Kind.REPLAY, scope=guard.scope)
    return Outcome(
        Kind.REPLAY,
        StoredResponse(record.response_status, bytes(record.response_body), dict(record.response_headers)),
    )


__all__ = [
    "FingerprintMismatch",
    "Guard",
    "KeyInFlight",
    "Outcome",
    "StoredResponse",
    "canonical_json",
    "fingerprint_of",
    "run_once",
]
