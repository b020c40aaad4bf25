"""Both worlds side by side: the compare page plays the tunnel scene on two phones at once.

Each phone is its own customer, kept in the browser's session (``request.acting.phone_named``)
and named on every request by ``X-Bakery-Phone``: one bakery checks the key, the other has
idempotency switched off. Same cake, same tunnel, same retry policy; only the switch differs, so
whatever differs at the end is what idempotency did. The contrast is read from the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from orders import services
from orders.models import Customer, Order
from payments.selectors import Counts, counts_by_customer


@dataclass(frozen=True)
class PhoneSpec:
    name: str  # the X-Bakery-Phone value
    title: str
    idempotency_enabled: bool


PHONES = (PhoneSpec("with", "With idempotency", True), PhoneSpec("without", "Without idempotency", False))
# An order still on its way through the back office; any other status is where it ends.
IN_PROGRESS = (Order.Status.PLACED, Order.Status.PAID, Order.Status.INVOICED)


@dataclass
class PhoneView:
    spec: PhoneSpec
    customer: Customer | None  # None: this browser has not opened the compare page yet
    counts: Counts
    timeline: dict = field(default_factory=dict)  # the phone's timeline panel, when the page shows it


def phones_of(request, *, make: bool = False) -> list[PhoneView]:
    """This browser's two phones and what each one's bakery did. Opening the page (``make``) gives the
    browser its phones; the page's polls only read, and create nothing."""
    customers = [request.acting.phone_named(spec.name, label=spec.title.lower(),
                                            idempotency_enabled=spec.idempotency_enabled, make=make) for spec in PHONES]
    counts = counts_by_customer([customer.pk for customer in customers if customer is not None])
    return [PhoneView(spec, customer, counts.get(customer.pk, Counts()) if customer else Counts())
            for spec, customer in zip(PHONES, customers, strict=True)]


@transaction.atomic
def compare_start(*, phones: list[PhoneView]) -> None:
    """A new scene: both phones' bakeries emptied, each switch as its phone says."""
    for phone in phones:
        if phone.customer is None:
            continue
        services.customer_reset(customer=phone.customer)
        if phone.customer.idempotency_enabled != phone.spec.idempotency_enabled:
            services.customer_set_idempotency(customer=phone.customer, enabled=phone.spec.idempotency_enabled)


def settled(phones: list[PhoneView]) -> bool:
    """Every order of both phones has come to the end of the back office."""
    customers = [phone.customer for phone in phones if phone.customer is not None]
    return not Order.objects.filter(customer__in=customers, status__in=IN_PROGRESS).exists()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def contrast(phones: list[PhoneView]) -> tuple[str, str]:
    """The scene's ending in plain words, from the real counts: what happened, then what it means."""
    by_name = {phone.spec.name: phone.counts for phone in phones}
    with_key, without = by_name["with"], by_name["without"]
    said = (f"With idempotency: {_plural(with_key.cakes, 'cake')}, {_plural(with_key.charges, 'charge')}, "
            f"{_plural(with_key.invoices, 'invoice')}. "
            f"Without: {without.cakes}, {without.charges}, {without.invoices}.")
    if (with_key.cakes, with_key.charges, with_key.invoices) == (without.cakes, without.charges, without.invoices):
        meaning = ("No difference this time: no order reached the bakery twice, so the key had nothing to "
                   "prevent. Try Response lost or Slow bakery.")
    else:
        meaning = ("Same cake, same tunnel, same retries: without the key the bakery cannot tell a retry from a "
                   "new order, so it baked, charged and invoiced again.")
    return said, meaning
