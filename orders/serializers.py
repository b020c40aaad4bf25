from typing import Any, TypedDict

from django.core.validators import slug_re
from django.urls import reverse
from rest_framework import serializers

from orders.models import Cake, Order, OrderItem
from orders.services import OrderLine

MAX_QUANTITY = 50
MAX_NOTE = 500


class OrderIn(TypedDict):
    """An order as :class:`OrderInSerializer` validates it."""

    items: list[OrderLine]
    note: str


class CakeField(serializers.SlugRelatedField[Cake]):
    """A cake by its slug. Only something shaped like a slug is looked up, so text the database
    cannot compare (a NUL, a dict) is "no such cake", never a database error."""

    def to_internal_value(self, data: object) -> Cake:
        if not isinstance(data, str) or not slug_re.match(data):
            self.fail("does_not_exist", slug_name=self.slug_field, value=str(data)[:80])
        return super().to_internal_value(data)


class OrderLineInSerializer(serializers.Serializer[OrderLine]):
    cake = CakeField(
        slug_field="slug",
        queryset=Cake.objects.filter(is_available=True),
        error_messages={"does_not_exist": "There is no cake called '{value}' on the menu."},
    )
    quantity = serializers.IntegerField(
        min_value=1,
        max_value=MAX_QUANTITY,
        error_messages={
            "min_value": "Order at least 1 of each cake.",
            "max_value": f"At most {MAX_QUANTITY} of one cake per order.",
        },
    )


class OrderInSerializer(serializers.Serializer[OrderIn]):
    # many=True makes a ListSerializer, which takes max_length; the stubs type the call as the child's.
    items = OrderLineInSerializer(many=True, allow_empty=False, max_length=20)  # type: ignore[call-arg]
    note = serializers.CharField(max_length=MAX_NOTE, allow_blank=True, required=False, default="",
                                 trim_whitespace=False)

    def validate_items(self, items: list[OrderLine]) -> list[OrderLine]:
        """One line per cake: repeated lines are merged, and the limit holds for the merged line,
        so 20 lines of 50 shortcakes are not an order of 1,000."""
        merged: dict[int, OrderLine] = {}
        for line in items:
            cake = line["cake"]
            merged.setdefault(cake.pk, {"cake": cake, "quantity": 0})["quantity"] += line["quantity"]
        for line in merged.values():
            if line["quantity"] > MAX_QUANTITY:
                raise serializers.ValidationError(
                    f"At most {MAX_QUANTITY} of one cake per order, across all lines: "
                    f"{line['cake'].slug} comes to {line['quantity']}.")
        return list(merged.values())


class OrderItemSerializer(serializers.ModelSerializer[OrderItem]):
    cake = serializers.CharField(source="cake.slug")
    name = serializers.CharField(source="cake.name")

    class Meta:
        model = OrderItem
        fields = ["cake", "name", "quantity", "unit_price"]


class OrderSerializer(serializers.ModelSerializer[Order]):
    # Any kind of field: PlacedOrderSerializer answers the items by a method instead.
    items: serializers.Field[Any, Any, Any, Any] = OrderItemSerializer(many=True)
    url = serializers.SerializerMethodField()
    payment = serializers.SerializerMethodField()
    invoice = serializers.SerializerMethodField()
    emails_sent = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "id", "url", "status", "failure_reason", "items", "total", "note", "idempotency_key",
            "idempotent", "created_at", "payment", "invoice", "emails_sent",
        ]

    def get_url(self, order: Order) -> str:
        return reverse("api-order-detail", kwargs={"pk": order.pk})

    def get_payment(self, order: Order) -> dict[str, Any] | None:
        charge = getattr(order, "charge", None)
        if charge is None:
            return None
        return {
            "status": charge.status,
            "provider_charge_id": charge.provider_charge_id,
            "attempts": charge.attempts,
            "failure_reason": charge.failure_reason,
        }

    def get_invoice(self, order: Order) -> dict[str, Any] | None:
        invoice = getattr(order, "invoice", None)
        if invoice is None:
            return None
        return {
            "number": invoice.number,
            "total": str(invoice.total),
            "issued_at": invoice.issued_at.isoformat(),
            "url": reverse("invoice-detail", kwargs={"number": invoice.number}),
        }

    def get_emails_sent(self, order: Order) -> int:
        return 1 if getattr(order, "email_receipt", None) is not None else 0


class PlacedOrderSerializer(OrderSerializer):
    """An order as ``order_place`` just wrote it, answered without reading it back.

    ``items`` are the order's lines as placed (each with its cake). Fulfilment only starts once
    the order's transaction has committed (the outbox), so a placed order has no payment,
    invoice or email yet. The body is the one ``GET /api/orders/<id>/`` shows at that moment.
    """

    items = serializers.SerializerMethodField()

    def __init__(self, order: Order, *, items: list[OrderItem]) -> None:
        super().__init__(order)
        self.placed_items = items

    def get_items(self, order: Order) -> list[dict[str, Any]]:
        # many=True makes a ListSerializer, whose data is a list; the stubs type it as the child's dict.
        return OrderItemSerializer(self.placed_items, many=True).data  # type: ignore[return-value]

    def get_payment(self, order: Order) -> None:
        return None

    def get_invoice(self, order: Order) -> None:
        return None

    def get_emails_sent(self, order: Order) -> int:
        return 0
