"""A big room made in a few SQL statements: thousands of learners who each played the tunnel scene once.

Made through the ORM, 20,000 learners would take minutes; here they take seconds. Every order INSERT
takes its customer's advisory lock (migration 0006), which is one lock per learner in a single
statement, more than PostgreSQL's lock table holds: the trigger is off while the rows are written
(nobody else orders during a test's seeding) and on again before this returns.
"""

from __future__ import annotations

from django.db import connection, transaction

LOCK_TRIGGER = "orders_order_hold_customer"


def seed_learners(count: int, *, cake, idempotent_share: float = 0.5) -> None:
    """``count`` learners active now, each with one notified order of one ``cake`` and its key's record,
    its ``order_stored`` event and a replay (the retry after the lost answer). Learners past
    ``idempotent_share`` have the switch off and a second order with the same key: one duplicate cake."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE orders_order DISABLE TRIGGER {LOCK_TRIGGER}")
        cursor.execute("""
            CREATE TEMPORARY TABLE seeded ON COMMIT DROP AS
            SELECT gen_random_uuid() AS id, n, gen_random_uuid() AS key, n > %s * %s AS careless
            FROM generate_series(1, %s) AS n""", [count, idempotent_share, count])
        cursor.execute("""
            INSERT INTO orders_customer (id, label, idempotency_enabled, last_scenario, created_at, last_seen_at)
            SELECT id, 'Learner ' || n, NOT careless, 'response-lost', now(), now() FROM seeded""")
        cursor.execute("""
            INSERT INTO orders_order (customer_id, idempotency_key, idempotent, key_expired, fulfilment_key, status,
                                      failure_reason, resumptions, note, total, created_at, updated_at)
            SELECT id, key, NOT careless, false, gen_random_uuid(), 'notified', '', 0, '', %s, now(), now()
            FROM seeded, generate_series(1, CASE WHEN careless THEN 2 ELSE 1 END)""", [cake.price])
        cursor.execute("""
            INSERT INTO orders_orderitem (order_id, cake_id, quantity, unit_price)
            SELECT o.id, %s, 1, %s FROM orders_order o JOIN seeded s ON s.id = o.customer_id""",
                       [cake.pk, cake.price])
        cursor.execute("""
            INSERT INTO orders_event (customer_id, key, order_id, source, kind, detail, created_at)
            SELECT o.customer_id, o.idempotency_key::text, o.id, 'order', 'order_stored', '{}'::jsonb, now()
            FROM orders_order o JOIN seeded s ON s.id = o.customer_id
            UNION ALL
            SELECT id, key::text, NULL, 'api', 'replay', '{}'::jsonb, now() FROM seeded WHERE NOT careless""")
        cursor.execute("""
            INSERT INTO orders_idempotencyrecord (scope, owner, key, fingerprint, request, response_status,
                                                  response_body, response_headers, created_at)
            SELECT 'orders.create', id::text, key::text, '', '{}', 201, '', '{}', now() FROM seeded
            WHERE NOT careless""")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred foreign key checks, before ALTER TABLE
        cursor.execute(f"ALTER TABLE orders_order ENABLE TRIGGER {LOCK_TRIGGER}")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
