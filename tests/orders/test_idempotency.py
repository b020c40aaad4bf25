"""The HTTP contract of POST /api/orders/, one test per row of the README's order API table."""

import json
import threading
import uuid

import pytest
from django.db import connection, connections

from orders.customers import COOKIE
from orders.models import Customer, Event, IdempotencyRecord, Order
from tests.clients import BakeryClient
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db

ONE_SHORTCAKE = {"items": [{"cake": "strawberry-shortcake", "quantity": 1}], "note": "Happy birthday"}


def test_first_request_creates_one_order_with_location(customer_client, cake):
    key = uuid.uuid4()
    response = customer_client.order(key, body=ONE_SHORTCAKE)

    assert response.status_code == 201
    order = response.json()
    assert order["idempotency_key"] == str(key)
    assert order["status"] == "placed"
    assert order["total"] == "24.00"
    assert order["items"] == [{"cake": "strawberry-shortcake", "name": "Strawberry Shortcake",
                               "quantity": 1, "unit_price": "24.00"}]
    assert response["Location"].endswith(f"/api/orders/{order['id']}/")
    assert "Idempotent-Replayed" not in response
    assert Order.objects.count() == 1


def test_same_key_same_body_replays_byte_for_byte(customer_client, cake):
    key = uuid.uuid4()
    first = customer_client.order(key, body=ONE_SHORTCAKE)
    again = customer_client.order(key, body=ONE_SHORTCAKE)

    assert again.status_code == first.status_code == 201
    assert again.content == first.content
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1
    assert list(Event.objects.filter(source="api").values_list("kind", flat=True)) == ["new", "replay"]


def test_same_content_in_another_key_order_and_spacing_is_a_replay(customer_client, cake):
    key = uuid.uuid4()
    customer_client.order(key, body=ONE_SHORTCAKE)
    reordered = '{ "note" : "Happy birthday",\n  "items": [ {"quantity": 1, "cake": "strawberry-shortcake"} ] }'
    response = customer_client.post(
        "/api/orders/", reordered, content_type="application/json",
        headers={"Idempotency-Key": str(key), "X-CSRFToken": customer_client.cookies["csrftoken"].value},
    )
    assert response.status_code == 201
    assert response["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1


def test_same_key_different_body_is_422_naming_the_fields(customer_client, cake, other_cake):
    key = uuid.uuid4()
    customer_client.order(key, body=ONE_SHORTCAKE)
    changed = {"items": [{"cake": "lemon-drizzle", "quantity": 3}], "note": "Happy birthday"}
    response = customer_client.order(key, body=changed)

    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/idempotency-key-reused")
    assert problem["fields"] == ["items[0].cake", "items[0].quantity"]
    assert "items[0].cake" in problem["detail"]
    assert Order.objects.count() == 1


@pytest.mark.parametrize(
    "header, says",
    [
        (None, "needs an Idempotency-Key"),
        ("", "needs an Idempotency-Key"),
        ("order-42", "is not a UUID"),
        ("x" * 256, "256 characters long"),
        ('"' + "1" * 300 + '"', "characters long"),
    ],
)
def test_missing_or_malformed_key_is_400_that_explains_a_valid_key(customer_client, cake, header, says):
    response = customer_client.order(header, body=ONE_SHORTCAKE) if header is not None else customer_client.order(
        body=ONE_SHORTCAKE)
    assert response.status_code == 400
    problem = response.json()
    assert problem["type"].rsplit("/", 1)[1] in {"idempotency-key-missing", "idempotency-key-invalid"}
    assert says in problem["detail"]
    assert "Send a UUID" in problem["detail"]
    assert Order.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


def test_key_as_rfc8941_sf_string_is_the_same_key(customer_client, cake):
    key = uuid.uuid4()
    bare = customer_client.order(key, body=ONE_SHORTCAKE)
    quoted = customer_client.order(f'"{key}"', body=ONE_SHORTCAKE)
    assert quoted.status_code == 201
    assert quoted["Idempotent-Replayed"] == "true"
    assert quoted.content == bare.content


@pytest.mark.django_db(transaction=True)
def test_a_failure_at_commit_releases_the_key_and_writes_nothing(customer_client, cake):
    """The stored answer goes to PostgreSQL together with the COMMIT. When the COMMIT itself fails
    (here a deferred constraint trigger, which PostgreSQL checks only at COMMIT), nothing is kept,
    the key is released, and the retry succeeds."""
    with connections["default"].cursor() as cursor:
        cursor.execute("""
            CREATE FUNCTION refuse_at_commit() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'refused at commit'; END $$ LANGUAGE plpgsql;
            CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON orders_order
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit();
        """)
    customer_client.raise_request_exception = False
    key = uuid.uuid4()
    try:
        failed = customer_client.order(key, body=ONE_SHORTCAKE)
    finally:
        with connections["default"].cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse_at_commit ON orders_order; DROP FUNCTION refuse_at_commit();")
    assert failed.status_code == 500
    assert Order.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0
    assert Event.objects.filter(kind="released", key=str(key)).count() == 1

    retried = customer_client.order(key, body=ONE_SHORTCAKE)
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried
    assert Order.objects.count() == 1
    assert customer_client.order(key, body=ONE_SHORTCAKE)["Idempotent-Replayed"] == "true"


def test_handler_failure_releases_the_key_and_writes_nothing(customer_client, cake):
    """A server error mid-handler rolls back the order *and* the key; the retry then succeeds.

    The fault is real: a PostgreSQL trigger makes the outbox insert fail, after the order row
    was written in the same transaction, as a full disk or a lost connection would.
    """
    with connections["default"].cursor() as cursor:
        cursor.execute("""
            CREATE FUNCTION outbox_down() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'outbox unavailable'; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER outbox_down BEFORE INSERT ON payments_outboxmessage
                FOR EACH ROW EXECUTE FUNCTION outbox_down();
        """)
    customer_client.raise_request_exception = False
    key = uuid.uuid4()
    failed = customer_client.order(key, body=ONE_SHORTCAKE)
    assert failed.status_code == 500
    assert Order.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0
    assert Event.objects.filter(kind="released", key=str(key)).count() == 1

    with connections["default"].cursor() as cursor:
        cursor.execute("DROP TRIGGER outbox_down ON payments_outboxmessage; DROP FUNCTION outbox_down();")
    retried = customer_client.order(key, body=ONE_SHORTCAKE)
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried
    assert Order.objects.count() == 1


def test_same_key_from_another_customer_is_an_independent_order(cake):
    alice, bob = BakeryClient(), BakeryClient()
    alice.start()
    bob.start()
    key = uuid.uuid4()
    alices = alice.order(key, body=ONE_SHORTCAKE).json()
    bobs_response = bob.order(key, body={"items": [{"cake": "strawberry-shortcake", "quantity": 2}]})

    assert bobs_response.status_code == 201
    assert "Idempotent-Replayed" not in bobs_response
    bobs = bobs_response.json()
    assert bobs["id"] != alices["id"]
    assert bobs["items"][0]["quantity"] == 2
    assert Order.objects.count() == 2
    # And neither can read the other's order.
    assert bob.get(f"/api/orders/{alices['id']}/").status_code == 404
    assert [o["id"] for o in bob.get("/api/orders/").json()] == [bobs["id"]]


def test_switch_off_ignores_the_key_and_bakes_again(customer_client, cake):
    switched = customer_client.patch("/api/me/", {"idempotency": False}, format="json",
                                     headers={"X-CSRFToken": customer_client.cookies["csrftoken"].value})
    assert switched.json()["idempotency"] is False
    key = uuid.uuid4()
    first = customer_client.order(key, body=ONE_SHORTCAKE)
    second = customer_client.order(key, body=ONE_SHORTCAKE)
    no_key = customer_client.order(body=ONE_SHORTCAKE)

    assert [first.status_code, second.status_code, no_key.status_code] == [201, 201, 201]
    assert "Idempotent-Replayed" not in second
    assert Order.objects.filter(idempotency_key=key).count() == 2
    assert Order.objects.count() == 3
    assert customer_client.get("/api/me/").json()["idempotency"] is False


def test_me_sets_the_csrf_cookie_and_the_first_write_makes_the_customer(client, db):
    response = client.get("/api/me/")
    assert response.status_code == 200
    scope = response.json()
    assert uuid.UUID(scope["customer"]) and scope["label"] and scope["idempotency"] is True
    assert "csrftoken" in response.cookies and COOKIE in response.cookies  # the scope, before any write
    assert not Customer.objects.exists()  # reading made no customer

    switched = client.patch("/api/me/", {"idempotency": True}, content_type="application/json",
                            headers={"X-CSRFToken": response.cookies["csrftoken"].value})
    assert switched.status_code == 200 and COOKIE in switched.cookies
    assert "sessionid" not in switched.cookies  # a customer needs no server-side session
    me = client.get("/api/me/").json()
    assert me == switched.json() == scope  # the customer has the scope's id and name
    assert Customer.objects.get().pk == uuid.UUID(scope["customer"])


def test_patch_me_rejects_anything_but_a_boolean(customer_client):
    response = customer_client.patch("/api/me/", {"idempotency": "maybe"}, format="json",
                                     headers={"X-CSRFToken": customer_client.cookies["csrftoken"].value})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_in_flight_key_waits_on_the_first_request_then_409_with_retry_after(customer_client, cake, settings,
                                                                             transactional_db):
    """While the first request holds the key, a retry waits IDEMPOTENCY_WAIT_SECONDS, then gets 409."""
    from orders.idempotency import KeyInFlight, KeyRef, StoredResponse, run_once

    settings.IDEMPOTENCY_WAIT_SECONDS = 0.3
    key = str(uuid.uuid4())
    guard = KeyRef(scope="test.slow", owner="someone", key=key, source="api")
    inside, release = threading.Event(), threading.Event()

    def slow_handler():
        inside.set()
        release.wait(10)
        return StoredResponse(201, b'{"ok": true}', {})

    first = threading.Thread(target=lambda: (run_once(guard, {"a": 1}, slow_handler), connections.close_all()))
    first.start()
    assert inside.wait(10)
    with pytest.raises(KeyInFlight) as busy:
        run_once(guard, {"a": 1}, lambda: pytest.fail("the handler must not run twice"))
    assert busy.value.retry_after >= 1
    release.set()
    first.join(10)
    replay = run_once(guard, {"a": 1}, lambda: pytest.fail("the handler must not run twice"))
    assert replay.replayed and replay.response.json() == {"ok": True}


def test_a_retry_waiting_on_the_first_request_gets_its_answer(transactional_db, settings):
    """With a wait longer than the first request, the retry is replayed instead of refused."""
    from orders.idempotency import KeyRef, StoredResponse, run_once

    settings.IDEMPOTENCY_WAIT_SECONDS = 5
    guard = KeyRef(scope="test.wait", owner="someone", key=str(uuid.uuid4()), source="api")
    inside = threading.Event()

    def handler():
        inside.set()
        import time

        time.sleep(0.5)
        return StoredResponse(201, b'{"n": 1}', {})

    first = threading.Thread(target=lambda: (run_once(guard, {}, handler), connections.close_all()))
    first.start()
    assert inside.wait(10)
    outcome = run_once(guard, {}, lambda: pytest.fail("ran twice"))
    first.join(10)
    assert outcome.replayed and outcome.response.json() == {"n": 1}


def key_claimed_elsewhere() -> bool:
    """Another connection holds an uncommitted claim: its INSERT of a key's record, whose lock it keeps
    until the handler's transaction ends (the slow bakery sleeps inside it)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks JOIN pg_class ON pg_class.oid = pg_locks.relation "
                       "WHERE pg_class.relname = %s AND pg_locks.mode = 'RowExclusiveLock' "
                       "AND pg_locks.pid <> pg_backend_pid()", [IdempotencyRecord._meta.db_table])
        return cursor.fetchone()[0] > 0


def test_409_over_http_has_retry_after(customer_client, cake, settings, transactional_db):
    """The HTTP face of an in-flight key: problem+json 409 with a Retry-After header."""
    settings.IDEMPOTENCY_WAIT_SECONDS = 0.2
    settings.TUNNEL_SLOW_SECONDS = 1.5
    key = uuid.uuid4()
    results = {}

    def slow_first():
        results["first"] = customer_client.order(key, body=ONE_SHORTCAKE, headers={"X-Bakery-Tunnel": "slow"})
        connections.close_all()

    other_tab = BakeryClient()
    other_tab.cookies = customer_client.cookies  # same customer, second connection
    thread = threading.Thread(target=slow_first)
    thread.start()
    wait_for(key_claimed_elsewhere, timeout=10, message="the first request to claim its key")
    busy = other_tab.order(key, body=ONE_SHORTCAKE)
    thread.join(10)
    assert busy.status_code == 409
    assert busy["Retry-After"] == "1"
    assert json.loads(busy.content)["type"].endswith("/idempotency-key-in-use")
    assert results["first"].status_code == 201
    assert Order.objects.count() == 1
