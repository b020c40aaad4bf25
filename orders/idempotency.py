"""The idempotency layer: one piece in front of a handler, used by the order API and the Celery steps.

How it keeps its promise, in the order things happen:

1. A finished key is replayed from its record by one statement in autocommit, which reads the
   record and writes the replay's timeline event together (the fast path: one round trip).
2. Otherwise, in one transaction with the handler, the layer INSERTs the key's record with
   ``ON CONFLICT DO NOTHING`` (and its ``new`` event, in the same statement). PostgreSQL's unique
   index decides who owns the key. A second request with the same key blocks inside that INSERT
   until the first commits or rolls back. The wait is bounded by ``lock_timeout``
   (IDEMPOTENCY_WAIT_SECONDS), set by that same statement for itself alone: past it the caller
   gets :class:`KeyInFlight` (HTTP 409 + Retry-After; a task retries later).
3. The handler runs inside the same transaction and its response is written into the record (sent
   with the COMMIT, in one round trip). If the handler raises, or the COMMIT fails, everything rolls
   back, the record and its event included: the key is released and nothing is half-written, so a
   retry can succeed.

No lock ever expires: when a process dies mid-handler its connection closes, PostgreSQL rolls
the transaction back, and the key is free again.

Metrics (orders/metrics.py): each decision is a timeline event (:meth:`KeyRef.event`, or written by
the statement that made the decision), and /metrics counts those rows; the two entry points are
timed by ``@timed``, the layer's only hook.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self, cast

import psycopg
from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone
from psycopg.abc import Params, Query

from orders.events import Kind, record_event
from orders.metrics import timed
from orders.models import Event, IdempotencyRecord

LOCK_NOT_AVAILABLE = "55P03"


@dataclass(frozen=True)
class StoredResponse:
    """What a handler answered, kept byte for byte so a replay is indistinguishable."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
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


def canonical_json(payload: object) -> str:
    """Same content, same text: key order and spacing do not change a fingerprint."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def fingerprint_of(payload: object) -> str:
    # surrogatepass: a caller that did not check its text (a lone surrogate) still gets a fingerprint.
    return hashlib.sha256(canonical_json(payload).encode("utf-8", "surrogatepass")).hexdigest()


def differing_fields(stored: object, new: object, path: str = "") -> list[str]:
    """Name the fields that differ, as paths a person can read: ``items[0].quantity``, ``note``."""
    found: list[str] = []
    if isinstance(stored, dict) and isinstance(new, dict):
        for name in sorted(set(stored) | set(new)):
            found += differing_fields(stored.get(name), new.get(name), f"{path}.{name}" if path else name)
        return found
    if isinstance(stored, list) and isinstance(new, list) and len(stored) == len(new):
        for index, (old_item, new_item) in enumerate(zip(stored, new, strict=True)):
            found += differing_fields(old_item, new_item, f"{path}[{index}]")
        return found
    return [] if canonical_json(stored) == canonical_json(new) else [path or "body"]


@dataclass(frozen=True)
class KeyRef:
    """Which key: ``scope`` names the endpoint (or task) it belongs to, ``owner`` whose it is (one
    customer's key never replays another's answer), ``key`` the key itself; ``source`` and
    ``customer_id`` label the timeline events written about it."""

    scope: str
    owner: str
    key: str
    source: str
    customer_id: uuid.UUID | str | None = None

    def event(self, kind: str, **detail: Any) -> Event:
        return record_event(source=self.source, kind=kind, key=self.key, customer_id=self.customer_id, **detail)


@timed
def replay_if_finished(ref: KeyRef, payload: object) -> Outcome | None:
    """The fast path alone: the stored answer for a finished key, or None for a new or running one.

    A caller may use it before its own validation, so that a replay costs one statement and
    nothing else (Stripe, too, answers a finished key before it validates again).
    Raises :class:`FingerprintMismatch` like :func:`run_once`.
    """
    return _replay_finished(ref, payload, fingerprint_of(payload))


@timed
def run_once(
    ref: KeyRef,
    payload: object,
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
    fingerprint = fingerprint_of(payload)
    if not checked_finished:
        replayed = _replay_finished(ref, payload, fingerprint)
        if replayed is not None:
            return replayed

    wait = settings.IDEMPOTENCY_WAIT_SECONDS if wait_seconds is None else wait_seconds
    # The layer's transaction is usually the outermost one (a request's); then its COMMIT can go
    # out with the stored answer. Inside a caller's transaction it is a savepoint and must not;
    # nor without pipeline mode (a libpq older than 14).
    commit_with_answer = not connection.in_atomic_block and psycopg.Pipeline.is_supported()
    try:
        with transaction.atomic():
            record_id = _claim(ref, payload, fingerprint, wait)
            if record_id is None:
                # The first request finished while we waited on its row lock: its record is there.
                return cast(Outcome, _replay_finished(ref, payload, fingerprint))
            response = handler()
            _store(record_id, response, commit=commit_with_answer)
    except KeyInFlight:
        ref.event(Kind.CONFLICT, scope=ref.scope, waited_seconds=wait)
        raise
    except FingerprintMismatch:
        raise
    except Exception as error:
        ref.event(Kind.RELEASED, scope=ref.scope, error=type(error).__name__)
        raise
    return Outcome(Kind.NEW, response)


RECORDS, EVENTS = IdempotencyRecord._meta.db_table, Event._meta.db_table

# One statement: the finished key's record, and (when the request matches it) the replay's
# timeline event. A data-modifying WITH runs to completion whatever the outer SELECT reads.
# The event alone is committed without waiting for the disk (synchronous_commit off for this
# statement's transaction): a replay changes nothing, so its answer need not wait for a flush of
# its log line. What that gives up: if PostgreSQL itself crashes, the replay events of the last
# few hundred milliseconds (3 x wal_writer_delay at most) may be missing from the timeline and
# from /metrics. Orders, keys and answers are never committed that way.
REPLAY_SQL = f"""
WITH finished AS (
    SELECT fingerprint, request, response_status, response_body, response_headers FROM {RECORDS}
    WHERE scope = %(scope)s AND owner = %(owner)s AND key = %(key)s
), noted AS (
    INSERT INTO {EVENTS} (customer_id, key, source, kind, detail, created_at)
    SELECT %(customer)s, %(key)s, %(source)s, '{Kind.REPLAY}', %(detail)s::jsonb, %(now)s
    FROM finished, (SELECT set_config('synchronous_commit', 'off', true)) AS unhurried
    WHERE fingerprint = %(fingerprint)s
)
SELECT fingerprint, request, response_status, response_body, response_headers FROM finished
"""

# One statement: the claim, bounded by its own lock_timeout, and the ``new`` event when it won.
# set_config(..., true) is SET LOCAL: the FROM item runs before the row is inserted (so before any
# wait on a running first request), RETURNING after it, so the handler's own statements do not
# inherit the short wait. A conflict returns no row and writes no event.
CLAIM_SQL = f"""
WITH claimed AS (
    INSERT INTO {RECORDS} (scope, owner, key, fingerprint, request, response_body, response_headers, created_at)
    SELECT %(scope)s, %(owner)s, %(key)s, %(fingerprint)s, %(payload)s::jsonb, ''::bytea, '{{}}'::jsonb, %(now)s
    FROM (SELECT set_config('lock_timeout', %(wait)s, true)) AS bounded_wait
    ON CONFLICT (scope, owner, key) DO NOTHING
    RETURNING id, set_config('lock_timeout', '0', true)
), noted AS (
    INSERT INTO {EVENTS} (customer_id, key, source, kind, detail, created_at)
    SELECT %(customer)s, %(key)s, %(source)s, '{Kind.NEW}', %(detail)s::jsonb, %(now)s FROM claimed
)
SELECT id FROM claimed
"""

# The handler's answer, kept byte for byte in the record the claim inserted.
STORE_SQL = f"""
UPDATE {RECORDS} SET response_status = %s, response_body = %s, response_headers = %s::jsonb WHERE id = %s
"""


class _PreparedCursor(psycopg.Cursor[tuple[Any, ...]]):
    """Binds on the server and prepares each statement once per connection: the layer runs the same
    three statements on every request, and planning the replay's took longer than running it.
    Django turns psycopg's preparing off unless OPTIONS["prepare_threshold"] is set, so settings
    set it (bakery/settings.py); Django's own cursors bind on the client and prepare nothing, for
    the sake of poolers such as PgBouncer (one in transaction mode needs max_prepared_statements
    set for these three)."""

    def execute(self, query: Query, params: Params | None = None, **options: bool | None) -> Self:
        # psycopg's overloads keep a template apart from params; its execute() takes both.
        super().execute(query, params, prepare=True)  # type: ignore[arg-type]
        if self._query is None and connection.queries_logged:
            # A prepared statement is sent by its name alone; Django's query log (and
            # CaptureQueriesContext) reads the statement's text from ``_query``.
            self._query = self._convert_query(query, params)
        return self


def _statement() -> CursorWrapper:
    """A Django cursor (its error translation, its query log) over a :class:`_PreparedCursor`."""
    connection.ensure_connection()
    prepared = _PreparedCursor(connection.connection)
    # django-stubs want a CursorWrapper here; Django wraps the DB-API cursor it is given.
    return (connection.make_debug_cursor(prepared) if connection.queries_logged  # type: ignore[arg-type]
            else connection.make_cursor(prepared))  # type: ignore[arg-type]


def _statement_values(ref: KeyRef, **values: object) -> dict[str, Any]:
    """What both statements bind: the key, and the event row as ``KeyRef.event`` would write it."""
    return {"scope": ref.scope, "owner": ref.owner, "key": ref.key, "customer": ref.customer_id,
            "source": ref.source, "detail": canonical_json({"scope": ref.scope}), "now": timezone.now(),
            **values}


def _replay_finished(ref: KeyRef, payload: object, fingerprint: str) -> Outcome | None:
    with _statement() as cursor:
        cursor.execute(REPLAY_SQL, _statement_values(ref, fingerprint=fingerprint))
        row = cursor.fetchone()
    if row is None:
        return None
    stored_fingerprint, stored_payload, status, body, headers = row
    if stored_fingerprint != fingerprint:
        fields = differing_fields(_json(stored_payload), payload)
        ref.event(Kind.MISMATCH, scope=ref.scope, fields=fields)
        raise FingerprintMismatch(fields or ["request"])
    return Outcome(Kind.REPLAY, StoredResponse(status, bytes(body), _json(headers)))


def _json(value: object) -> Any:
    # A raw cursor hands jsonb over as text (Django decodes it only for model fields).
    return json.loads(value) if isinstance(value, str) else value


def _store(record_id: int, response: StoredResponse, *, commit: bool) -> None:
    """Write the handler's answer into the record the claim inserted.

    With ``commit``, the UPDATE and the transaction's COMMIT go to PostgreSQL together, in one
    round trip (psycopg's pipeline mode), instead of two. Django's own commit at the end of the
    ``atomic`` block then finds the transaction finished and sends nothing (its query log still
    lists that COMMIT, where it belongs). An error in either (a deferred constraint that fails at
    COMMIT, say) is raised here, inside the block, so everything rolls back and the key is released
    exactly as when the handler fails.
    """
    values: list[int | bytes | str] = [response.status, response.body, json.dumps(response.headers), record_id]
    with _statement() as cursor:
        if not commit:
            cursor.execute(STORE_SQL, values)
            return
        with connection.wrap_database_errors, connection.connection.pipeline():
            cursor.execute(STORE_SQL, values)
            connection.connection.execute("COMMIT")


def _claim(ref: KeyRef, payload: object, fingerprint: str, wait: float) -> int | None:
    """Insert the key's record, or return None if another transaction committed it first."""
    values = _statement_values(ref, fingerprint=fingerprint, payload=canonical_json(payload),
                               wait=f"{max(1, int(wait * 1000))}ms")
    with _statement() as cursor:
        try:
            cursor.execute(CLAIM_SQL, values)
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE:
                raise KeyInFlight(retry_after=max(1, round(wait))) from error
            raise
        row: tuple[int] | None = cursor.fetchone()
    return row[0] if row else None


__all__ = [
    "FingerprintMismatch",
    "KeyRef",
    "KeyInFlight",
    "Outcome",
    "StoredResponse",
    "canonical_json",
    "fingerprint_of",
    "run_once",
]
