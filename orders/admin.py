from django.contrib import admin

from orders.models import Customer, Event, IdempotencyRecord, Order, OrderItem


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
