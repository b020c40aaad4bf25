"""Round trips are part of the contract: a later change cannot add statements unnoticed.

Counts include the test transaction's SAVEPOINT/RELEASE statements (2 pairs on a first request,
which in production are a BEGIN/COMMIT pair the driver sends and Django does not log). The
session is read from PostgreSQL (so it works with Redis down): one SELECT on every request.
"""

import uuid

import pytest

pytestmark = pytest.mark.django_db


def test_first_request_statement_count(customer_client, cake, django_assert_num_queries):
    customer_client.order(uuid.uuid4())  # warm the session
    # session, customer | layer: lookup | cake | layer: savepoint, SET, INSERT key, SET, event | handler:
    # savepoint, customer's advisory lock, order, items, event, outbox, release | serialize: order, items,
    # cakes | layer: store response, release
    with django_assert_num_queries(21):
        assert customer_client.order(uuid.uuid4()).status_code == 201


def test_replay_statement_count(customer_client, cake, django_assert_num_queries):
    key = uuid.uuid4()
    customer_client.order(key)
    # session, customer | layer: lookup finished key, replay event. No validation: the key answers first.
    with django_assert_num_queries(4):
        assert customer_client.order(key)["Idempotent-Replayed"] == "true"
