"""Round trips are part of the contract: a later change cannot add statements unnoticed.

The statements are those a real request sends (the test runs outside a test transaction, so BEGIN
and COMMIT are the driver's own), listed by what each does. The customer comes from its signed
cookie and costs no statement; Django's session is never read for a customer.
"""

import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

pytestmark = pytest.mark.django_db(transaction=True)


def what(sql: str) -> str:
    """A statement as its verb and table: ``INSERT orders_order``, ``WITH claimed``, ``BEGIN``."""
    sql = " ".join(sql.split())
    if sql.startswith("WITH"):
        return " ".join(sql.split()[:2])
    verb = sql.split()[0]
    table = re.search(r'(?:FROM|INTO|UPDATE) "?(\w+)"?', sql)
    return f"{verb} {table.group(1)}" if table and verb != table.group(1) else verb


def statements(client, key) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.order(key)
    assert response.status_code == 201, response.content
    return [what(query["sql"]) for query in captured.captured_queries]


def test_a_first_request_is_ten_statements_in_one_transaction(customer_client, cake):
    customer_client.order(uuid.uuid4())  # the first order of a process loads content types and the like
    assert statements(customer_client, uuid.uuid4()) == [
        "WITH finished",  # the layer: is the key finished? (no: nothing is replayed or written)
        "SELECT bakery_cake",  # the view's validation
        "BEGIN",
        "WITH claimed",  # the layer: claim the key, bounded wait, and its "new" event
        "INSERT orders_order",
        "INSERT orders_orderitem",
        "INSERT orders_event",  # order_stored
        "INSERT payments_outboxmessage",  # the payment step, relayed after COMMIT by the worker
        "UPDATE orders_idempotencyrecord",  # the layer: the stored answer, sent together with the COMMIT
        "COMMIT",
    ]


def test_a_replay_is_one_statement(customer_client, cake):
    key = uuid.uuid4()
    customer_client.order(key)
    # The record and the replay's timeline event, together; no validation: the key answers first.
    assert statements(customer_client, key) == ["WITH finished"]


def test_without_idempotency_an_order_is_eight_statements(customer_client, cake):
    customer_client.patch("/api/me/", {"idempotency": False}, format="json",
                          headers={"X-CSRFToken": customer_client.cookies["csrftoken"].value})
    customer_client.order(uuid.uuid4())
    assert statements(customer_client, uuid.uuid4()) == [
        "SELECT bakery_cake",
        "INSERT orders_event",  # unguarded
        "BEGIN",
        "INSERT orders_order",
        "INSERT orders_orderitem",
        "INSERT orders_event",
        "INSERT payments_outboxmessage",
        "COMMIT",
    ]


def test_the_layers_statements_are_prepared_on_each_connection(customer_client, cake):
    """The layer's three statements are prepared once per connection, so PostgreSQL does not parse
    them again on every request (Django turns psycopg's preparing off unless the settings ask for
    it, and then nothing here would be prepared)."""
    for _ in range(3):
        key = uuid.uuid4()
        customer_client.order(key)
        customer_client.order(key)
    with connection.cursor() as cursor:  # the connection those requests returned to the pool
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = {what(statement) for (statement,) in cursor.fetchall()}
    assert prepared == {"WITH finished", "WITH claimed", "UPDATE orders_idempotencyrecord"}
