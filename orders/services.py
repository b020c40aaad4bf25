"""Order business logic. Views validate and call one of these; tasks call the payments services.

Fulfilment leaves here through the outbox by task name (``payments.capture_payment``): the order
core names the work, the back office that runs it is not imported.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import TypedDict

from django.db import connection, transaction

from orders.events import Kind, record_event
from orders.models import Cake, Customer, Event, IdempotencyRecord, Order, OrderItem
from orders.outbox import enqueue


class OrderLine(TypedDict):
    """One line of an order to place: a cake and how many."""

    cake: Cake
    quantity: int


def _lock_customers_alone(customer_ids: list[uuid.UUID]) -> None:
    """The customers' transaction-scoped advisory locks, exclusively, taken in id order (so two resets
    of overlapping customers never deadlock). Every order INSERT takes its customer's lock shared, in a
    trigger (migration 0006), so a reset never runs while one of the customer's orders is half-placed,
    and an order placed during a reset is placed after it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_advisory_xact_lock(orders_customer_lock_key(id))) "
                       "FROM (SELECT unnest(%s::uuid[]) AS id ORDER BY 1) AS customers", [customer_ids])


# No savepoint of its own: inside a caller's transaction (the idempotency layer's) a failure
# here rolls the whole of it back anyway, and nobody catches one to carry on.
@transaction.atomic(savepoint=False)
def order_place(*, customer: Customer, items: list[OrderLine], note: str = "",
                idempotency_key: str | uuid.UUID | None = None,
                idempotent: bool = True) -> tuple[Order, list[OrderItem]]:
    """Store an order with its items and hand fulfilment to the back office, all in one transaction.

    ``items`` are ``{"cake": Cake, "quantity": int}``. The first fulfilment task is written to the
    outbox in this same transaction, so an order can never exist without its payment step.
    Returns the order and its items as written, so a caller can answer without reading them back.
    The order's INSERT takes the customer's lock shared (see ``_lock_customers_alone``).
    """
    total = sum((line["cake"].price * line["quantity"] for line in items), Decimal("0"))
    order = Order.objects.create(
        customer=customer, idempotency_key=idempotency_key, idempotent=idempotent, note=note, total=total
    )
    placed = OrderItem.objects.bulk_create(
        OrderItem(order=order, cake=line["cake"], quantity=line["quantity"], unit_price=line["cake"].price)
        for line in items
    )
    record_event(source=Event.Source.ORDER, kind=Kind.ORDER_STORED, key=idempotency_key or "", customer=customer,
                 order=order, cakes=sum(line["quantity"] for line in items))
    enqueue("payments.capture_payment", order.pk)
    return order, placed


def customer_save_identity(*, customer_id: uuid.UUID, label: str) -> None:
    """Make a customer of an identity handed out before its first write, under its id. Two
    first writes racing with the same identity make one row: the second INSERT waits for the first
    and then does nothing."""
    Customer.objects.bulk_create([Customer(id=customer_id, label=label)], ignore_conflicts=True)


def customer_set_idempotency(*, customer: Customer, enabled: bool) -> Customer:
    customer.idempotency_enabled = enabled
    customer.save(update_fields=["idempotency_enabled", "last_seen_at"])
    return customer


def customer_reset(*, customer: Customer) -> None:
    """"Reset my bakery": forget this customer's orders, charges, invoices, emails, keys and events."""
    customers_reset(customer_ids=[customer.pk])


@transaction.atomic
def customers_reset(*, customer_ids: Iterable[uuid.UUID]) -> None:
    """Reset these customers' bakeries (see :func:`customer_reset`) in one transaction. It takes one
    lock per customer: a caller with thousands resets them in batches, a transaction each.

    Charges, invoices and emails go with their orders (ON DELETE CASCADE). The fake provider's
    ledger is another company's and is left alone, as a real provider's would be.

    It cannot race the back office: it waits for orders being placed, then locks every order
    FOR UPDATE before deleting anything. A fulfilment step locks its order's row for
    as long as it writes about it, so the reset waits for a running step and deletes what it
    wrote, and a step that starts meanwhile finds no order and does nothing (payments/services.py).
    """
    ids = sorted(set(customer_ids))
    _lock_customers_alone(ids)
    orders = Order.objects.filter(customer_id__in=ids)
    list(orders.select_for_update().order_by("id").values_list("id", flat=True))
    Event.objects.filter(customer_id__in=ids).delete()
    IdempotencyRecord.objects.filter(owner__in=[str(customer_id) for customer_id in ids]).delete()
    orders.delete()
