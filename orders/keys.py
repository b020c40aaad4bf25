"""The order API's keys: their policy and scope, and their retention. Finished keys are kept for
IDEMPOTENCY_KEY_TTL, then purged in batches.

After the purge a key counts as new (as in Stripe and the IETF draft): the same key makes a
new order. Orders keep the key they were made with, marked ``key_expired`` so the unique
constraint no longer holds it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from orders.events import Kind, record_event
from orders.idempotent import uuid_key
from orders.models import Event, IdempotencyRecord, Order
from orders.problems import VALID_KEY_HINT

# Keys of the order API belong to this endpoint scope (each customer's apart).
ORDER_SCOPE = "orders.create"
# The order API's key policy: a UUID, bare or as an sf-string ("…").
ORDER_KEY = uuid_key(VALID_KEY_HINT)


def purge_expired_keys(*, now: datetime | None = None, batch_size: int | None = None, max_batches: int = 1000) -> int:
    """Delete expired keys, ``batch_size`` rows per short transaction; return how many went."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.IDEMPOTENCY_KEY_TTL)
    batch_size = batch_size or settings.IDEMPOTENCY_PURGE_BATCH
    table = IdempotencyRecord._meta.db_table
    order_table = Order._meta.db_table
    purged = 0
    for _ in range(max_batches):
        with transaction.atomic(), connection.cursor() as cursor:
            # One statement per batch: delete the oldest expired keys and retire them on their
            # orders. SKIP LOCKED never waits on (or blocks) a request using one of these keys.
            cursor.execute(
                f"""
                WITH gone AS (
                    DELETE FROM {table} WHERE id IN (
                        SELECT id FROM {table} WHERE created_at < %s
                        ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED
                    )
                    RETURNING scope, owner, key
                ), retired AS (
                    UPDATE {order_table} AS o SET key_expired = true
                    FROM (SELECT owner::uuid AS customer_id, key::uuid AS key FROM gone WHERE scope = %s) AS g
                    WHERE o.customer_id = g.customer_id AND o.idempotency_key = g.key
                      AND o.idempotent AND NOT o.key_expired
                    RETURNING 1
                )
                SELECT scope, count(*) FROM gone GROUP BY scope
                """,
                [cutoff, batch_size, ORDER_SCOPE],
            )
            by_scope = cursor.fetchall()
            for scope, keys in by_scope:
                # One event per scope and batch, not per key: /metrics counts its ``keys``.
                record_event(source=Event.Source.LAYER, kind=Kind.EXPIRED, scope=scope, keys=keys)
        deleted = sum(keys for _scope, keys in by_scope)
        purged += deleted
        if deleted < batch_size:
            break
    return purged
