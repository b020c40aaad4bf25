"""The demo terminal's story (bakery.timeline.feed): one line for each thing a person cares about.

The events come from the real order API, tunnel and back-office services, run in this process; the
demo itself (a real supervisor printing these lines) is tested in test_demo.py.
"""

from __future__ import annotations

import re
import threading
import uuid
from datetime import timedelta

import pytest
import redis
from django.db import connections, transaction
from django.utils import timezone

from bakery.timeline.feed import Feed
from orders import outbox
from orders.events import Kind, record_event
from orders.models import OutboxMessage
from payments import completer, provider, services

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "provider"])
TUNNEL = "X-Bakery-Tunnel"


@pytest.fixture
def instant_tunnel(settings):
    settings.TUNNEL_HOLD_SECONDS = 0
    settings.TUNNEL_SLOW_SECONDS = 0


def said(feed: Feed) -> list[str]:
    """The lines without their clock time."""
    lines = feed.poll()
    for line in lines:
        assert re.match(r"^\d\d:\d\d:\d\d  ", line), line
    return [line[10:] for line in lines]


def run_back_office(order_id: int) -> None:
    services.payment_capture(order_id=order_id)
    services.invoice_issue(order_id=order_id)
    services.confirmation_send(order_id=order_id)


def test_an_order_is_one_line_once_it_is_notified(customer_client, cake):
    feed = Feed()
    order = customer_client.order(uuid.uuid4(), body={"items": [{"cake": cake.slug, "quantity": 2}]}).json()
    assert said(feed) == []  # placing it is not news yet
    services.payment_capture(order_id=order["id"])
    services.invoice_issue(order_id=order["id"])
    outbox.relay()  # the periodic relay, with nothing left to do
    assert said(feed) == []
    services.confirmation_send(order_id=order["id"])

    [line] = said(feed)
    assert re.fullmatch(rf"#{order['id']} Strawberry Shortcake ×2: placed → paid → invoiced → notified "
                        r"\(\d+\.\d s\)", line), line


def test_a_lost_answer_a_replay_and_a_duplicate_delivery(customer_client, cake, instant_tunnel):
    feed = Feed()
    key = uuid.uuid4()
    order = customer_client.order(key, headers={TUNNEL: "response-lost"}).json()
    assert customer_client.order(key).status_code == 201
    run_back_office(order["id"])
    services.invoice_issue(order_id=order["id"])  # the same task delivered again

    lines = said(feed)
    n = order["id"]
    assert lines[:2] == [f"#{n} answer lost in the tunnel", f"#{n} replayed to a retry"]
    assert lines[3:] == [f"#{n} invoice step: duplicate delivery skipped"]
    assert lines[2].startswith(f"#{n} Strawberry Shortcake ×1: placed → paid → invoiced → notified")


def test_a_second_cake_with_idempotency_off_and_a_lost_request(customer_client, cake, instant_tunnel):
    customer_client.patch("/api/me/", {"idempotency": False}, format="json",
                          headers={"X-CSRFToken": customer_client.cookies["csrftoken"].value})
    feed = Feed()
    key = uuid.uuid4()
    first = customer_client.order(key, headers={TUNNEL: "response-lost"}).json()
    second = customer_client.order(key).json()
    lost = uuid.uuid4()
    customer_client.order(lost, headers={TUNNEL: "request-lost"})

    assert said(feed) == [
        f"#{first['id']} answer lost in the tunnel",
        f"#{second['id']} baked again for the key of #{first['id']}: idempotency is off",
        f"key {str(lost)[:8]}: request lost in the tunnel, nothing baked",
    ]


def test_a_declined_payment(customer_client, cake):
    provider.behaviour_set(owner=customer_client.customer_id, decline=True)
    feed = Feed()
    order = customer_client.order(uuid.uuid4()).json()
    services.payment_capture(order_id=order["id"])

    assert said(feed) == [f"#{order['id']} payment declined (insufficient_funds)"]


def test_an_event_committed_late_under_a_lower_id_is_still_told(customer_client, cake):
    """Ids are handed out at INSERT and seen at COMMIT: a slow transaction (the slow bakery holds its
    key for seconds) can commit an id below one the terminal has already read."""
    feed = Feed()
    inserted, release = threading.Event(), threading.Event()

    def slow_transaction():
        try:
            with transaction.atomic():
                record_event(source="tunnel", kind=Kind.LOST_REQUEST, key="aaaaaaaa-slow")
                inserted.set()
                release.wait(10)
        finally:
            connections.close_all()

    slow = threading.Thread(target=slow_transaction)
    slow.start()
    assert inserted.wait(10)
    record_event(source="tunnel", kind=Kind.LOST_REQUEST, key="bbbbbbbb-fast")
    assert said(feed) == ["key bbbbbbbb: request lost in the tunnel, nothing baked"]
    release.set()
    slow.join(10)

    assert said(feed) == ["key aaaaaaaa: request lost in the tunnel, nothing baked"]
    assert said(feed) == []


def test_a_stranded_order_resumed_by_the_completer(customer_client, cake, settings):
    settings.FULFILMENT_STALL_SECONDS = 10
    order = customer_client.order(uuid.uuid4()).json()
    # The broker lost the payment step (no worker runs here): the order sits at "placed".
    OutboxMessage.objects.update(dispatched_at=timezone.now())
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    feed = Feed()

    completer.stranded_complete(now=timezone.now() + timedelta(seconds=11))

    [line] = said(feed)
    assert re.fullmatch(rf"#{order['id']} payment step resumed by the completer, 1\d\.\d s without a sign of life",
                        line), line
