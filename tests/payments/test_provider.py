"""The fake payment provider honours an idempotency key the way Stripe does."""

from decimal import Decimal

import pytest

from orders.models import Customer, Event
from payments import provider
from payments.models import ProviderCharge

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "provider"])


@pytest.fixture
def owner():
    return str(Customer.objects.create(label="provider test").pk)


def test_a_repeated_key_returns_the_original_charge_and_is_on_the_timeline(owner):
    first = provider.charge(idempotency_key="key-1", amount=Decimal("24.00"), owner=owner)
    again = provider.charge(idempotency_key="key-1", amount=Decimal("24.00"), owner=owner)

    assert again.charge_id == first.charge_id
    assert ProviderCharge.objects.using("provider").count() == 1
    [replay] = Event.objects.filter(kind=Event.Kind.DEDUPE, key="key-1")
    assert replay.detail["by"] == "provider" and replay.detail["charge_id"] == first.charge_id


def test_transient_failures_are_used_up_then_the_charge_succeeds(owner):
    provider.behaviour_set(owner=owner, transient_failures=2)
    for _ in range(2):
        with pytest.raises(provider.TransientProviderError):
            provider.charge(idempotency_key="key-2", amount=Decimal("5.00"), owner=owner)
    assert not ProviderCharge.objects.using("provider").exists()  # nothing charged by a failed call

    charge = provider.charge(idempotency_key="key-2", amount=Decimal("5.00"), owner=owner)
    assert charge.status == ProviderCharge.Status.SUCCEEDED


def test_a_decline_is_remembered_for_the_key(owner):
    provider.behaviour_set(owner=owner, decline=True)
    with pytest.raises(provider.Declined) as first:
        provider.charge(idempotency_key="key-3", amount=Decimal("5.00"), owner=owner)
    provider.behaviour_set(owner=owner, decline=False)  # the card is topped up...
    with pytest.raises(provider.Declined) as again:  # ...but the same key still answers the same
        provider.charge(idempotency_key="key-3", amount=Decimal("5.00"), owner=owner)
    assert again.value.charge_id == first.value.charge_id
    assert first.value.reason == "insufficient_funds"
