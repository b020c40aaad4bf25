"""Order business logic. Views validate and call one of these; tasks call the payments services.

Fulfilment leaves here through the outbox by task name (``payments.capture_payment``): the order
core names the work, the back office that runs it is not imported.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import connection, transaction

from orders.events import Kind, record_event
from orders.models import Customer, Event, IdempotencyRecord, Order, OrderItem
from orders.outbox import enqueue


def _hold_customer(customer: Customer, *, exclusive: bool) -> None:
    """A transaction-scoped advisory lock per customer: orders being placed share it, a reset
    takes it alone, so a reset never runs while one of the customer's orders is half-placed and
    an order placed during a reset is placed after it."""
    key = int.from_bytes(customer.pk.bytes[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_advisory_xact_lock{'' if exclusive else '_shared'}(%s)", [key])


@transaction.atomic
def order_place(*, customer: Customer, items: list[dict], note: str = "", idempotency_key=None,
                idempotent: bool = True) -> Order:
    """Store an order with its items and hand fulfilment to the back office, all in one transaction.

    ``items`` are ``{"cake": Cake, "quantity": int}``. The first fulfilment task is written to the
    outbox in this same transaction, so an order can never exist without its payment step.
    """
    _hold_customer(customer, exclusive=False)
    total = sum((line["cake"].price * line["quantity"] for line in items), Decimal("0"))
    order = Order.objects.create(
        customer=customer, idempotency_key=idempotency_key, idempotent=idempotent, note=note, total=total
    )
    OrderItem.objects.bulk_create(
        OrderItem(order=order, cake=line["cake"], quantity=line["quantity"], unit_price=line["cake"].price)
        for line in items
    )
    record_event(source="order", kind=Kind.ORDER_STORED, key=idempotency_key or "", customer=customer, order=order,
                 cakes=sum(line["quantity"] for line in items))
    enqueue("payments.capture_payment", order.pk)
    return order


def customer_set_idempotency(*, customer: Customer, enabled: bool) -> Customer:
    customer.idempotency_enabled = enabled
    customer.save(update_fields=["idempotency_enabled", "last_seen_at"])
    return customer


@transaction.atomic
def customer_reset(*, customer: Customer) -> None:
    """"Reset my bakery": forget this customer's orders, charges, invoices, emails, keys and events.

    Charges, invoices and emails go with their orders (ON DELETE CASCADE). The fake provider's
    ledger is another company's and is left alone, as a real provider's would be.

    It cannot race the back office: it waits for orders being placed, then locks every order
    FOR UPDATE before deleting anything. A fulfilment step holds its order's row (KEY SHARE) for
    as long as it writes about it, so the reset waits for a running step and deletes what it
    wrote, and a step that starts meanwhile finds no order and does nothing (payments/services.py).
    """
    _hold_customer(customer, exclusive=True)
    list(Order.objects.filter(customer=customer).select_for_update().order_by("id").values_list("id", flat=True))
    Event.objects.filter(customer=customer).delete()
    IdempotencyRecord.objects.filter(owner=str(customer.pk)).delete()
    customer.orders.all().delete()
