"""The fake payment provider: part of the product, and it behaves like a real one (Stripe).

* It is "another company": it keeps its own ledger (:class:`ProviderCharge`) and writes it
  through its own database connection (``DATABASES["provider"]``), so money it took stays taken
  even when the bakery's transaction rolls back, exactly the situation idempotency keys exist for.
* It honours an idempotency key: a repeated key returns the original charge, or the original
  decline, and never charges twice. The replay is recorded on the timeline.
* :class:`ProviderBehaviour` switches, per customer, make it misbehave for the simulator and the
  tests: ``decline`` (a final answer, not worth retrying), ``transient_failures`` (time out that
  many times, then work), ``delay_seconds`` (answer slowly).
"""

from __future__ import annotations

import secrets
import time
from decimal import Decimal

from django.db.models import F

from orders.events import record_event
from orders.models import Event
from payments.models import ProviderBehaviour, ProviderCharge

DB = "provider"
# How /metrics labels the provider's own dedupes (it honours the key like Stripe does).
SCOPE = "provider.charge"


class ProviderError(Exception):
    """Anything the provider answers other than a successful charge."""


class TransientProviderError(ProviderError):
    """A timeout or 503: nothing was charged, and the same call may be retried with the same key."""


class Declined(ProviderError):
    """The card was declined. Retrying will not help, so this is final."""

    def __init__(self, reason: str, charge_id: str):
        super().__init__(f"card declined: {reason}")
        self.reason = reason
        self.charge_id = charge_id


def charge(*, idempotency_key: str, amount: Decimal, owner: str) -> ProviderCharge:
    """Take ``amount`` once per ``idempotency_key``; raise :class:`Declined` or :class:`TransientProviderError`."""
    key = str(idempotency_key)
    behaviour = ProviderBehaviour.objects.using(DB).filter(owner=owner).first()
    if behaviour is not None and behaviour.delay_seconds > 0:
        time.sleep(behaviour.delay_seconds)

    existing = ProviderCharge.objects.using(DB).filter(idempotency_key=key).first()
    if existing is not None:
        record_event(source=Event.Source.PAYMENT, kind=Event.Kind.DEDUPE, key=key, customer_id=owner, by="provider",
                     scope=SCOPE, charge_id=existing.charge_id, status=existing.status)
        return _answer(existing)

    # One UPDATE decides whether this call fails: concurrent calls never both use the same failure.
    if behaviour is not None and ProviderBehaviour.objects.using(DB).filter(
        pk=behaviour.pk, transient_failures__gt=0
    ).update(transient_failures=F("transient_failures") - 1):
        raise TransientProviderError("the payment provider timed out (simulated)")

    declined = behaviour is not None and behaviour.decline
    # The unique key decides a race between two calls: the loser gets the winner's charge.
    made, _ = ProviderCharge.objects.using(DB).get_or_create(
        idempotency_key=key,
        defaults={
            "charge_id": f"ch_{secrets.token_hex(12)}",
            "amount": amount,
            "status": ProviderCharge.Status.DECLINED if declined else ProviderCharge.Status.SUCCEEDED,
            "decline_reason": "insufficient_funds" if declined else "",
        },
    )
    return _answer(made)


def _answer(provider_charge: ProviderCharge) -> ProviderCharge:
    if provider_charge.status == ProviderCharge.Status.DECLINED:
        raise Declined(provider_charge.decline_reason, provider_charge.charge_id)
    return provider_charge


def behaviour_set(*, owner: str, decline: bool = False, transient_failures: int = 0,
                  delay_seconds: float = 0) -> ProviderBehaviour:
    """Set how the provider treats one customer (simulator switches and tests)."""
    behaviour, _ = ProviderBehaviour.objects.using(DB).update_or_create(
        owner=str(owner),
        defaults={"decline": decline, "transient_failures": transient_failures, "delay_seconds": delay_seconds},
    )
    return behaviour
