from django.contrib import admin

from orders.models import Cake, Customer, Event, IdempotencyRecord, Order, OrderItem, OutboxMessage


class OrderItemInline(admin.TabularInline):
    model = OrderItem
    extra = 0


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "customer", "status", "total", "idempotent", "idempotency_key", "created_at"]
    list_filter = ["status", "idempotent"]
    inlines = [OrderItemInline]
    readonly_fields = ["fulfilment_key"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["label", "id", "idempotency_enabled", "last_scenario", "last_seen_at"]


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(admin.ModelAdmin):
    list_display = ["scope", "owner", "key", "response_status", "created_at"]
    list_filter = ["scope"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "source", "kind", "key", "customer", "order"]
    list_filter = ["source", "kind"]


@admin.register(Cake)
class CakeAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "price", "position", "is_available"]
    list_editable = ["price", "position", "is_available"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name"]


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    """Pending rows (no dispatched_at) are what beat will publish next; last_error says why not yet."""

    list_display = ["id", "task", "args", "created_at", "dispatched_at", "attempts", "last_error"]
    list_filter = [("dispatched_at", admin.EmptyFieldListFilter), "task"]
