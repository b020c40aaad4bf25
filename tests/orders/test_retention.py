"""Keys are kept for IDEMPOTENCY_KEY_TTL, then purged in batches; after that a key counts as new."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from orders.keys import purge_expired_keys
from orders.models import IdempotencyRecord, Order

pytestmark = pytest.mark.django_db


def age_all_keys(seconds):
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(seconds=seconds))


def test_key_younger_than_ttl_is_kept_and_replays(customer_client, cake, settings):
    key = uuid.uuid4()
    customer_client.order(key)
    age_all_keys(settings.IDEMPOTENCY_KEY_TTL - 60)
    assert purge_expired_keys() == 0
    assert customer_client.order(key)["Idempotent-Replayed"] == "true"
    assert Order.objects.count() == 1


def test_expired_key_is_purged_then_counts_as_new(customer_client, cake, settings):
    key = uuid.uuid4()
    first = customer_client.order(key).json()
    age_all_keys(settings.IDEMPOTENCY_KEY_TTL + 60)

    assert purge_expired_keys() == 1
    assert Order.objects.get(pk=first["id"]).key_expired is True
    again = customer_client.order(key)
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again
    assert again.json()["id"] != first["id"]
    assert Order.objects.filter(idempotency_key=key).count() == 2


def test_purge_works_in_batches_and_leaves_fresh_keys(customer_client, cake, settings):
    old = [uuid.uuid4() for _ in range(7)]
    for key in old:
        customer_client.order(key)
    age_all_keys(settings.IDEMPOTENCY_KEY_TTL + 1)
    fresh = uuid.uuid4()
    customer_client.order(fresh)

    assert purge_expired_keys(batch_size=3) == 7
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == [str(fresh)]


def test_purge_is_scheduled_on_beat(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE
    entry = next(e for e in schedule.values() if e["task"] == "orders.purge_expired_keys")
    assert 0 < entry["schedule"] <= 3600
    from bakery.celery import app

    app.loader.import_default_modules()
    assert "orders.purge_expired_keys" in app.tasks
