from django.contrib import admin

from payments.models import Charge, EmailReceipt, Invoice, ProviderBehaviour, ProviderCharge, Stall


@admin.register(Charge)
class ChargeAdmin(admin.ModelAdmin):
    list_display = ["order", "status", "provider_charge_id", "amount", "attempts", "failure_reason", "updated_at"]
    list_filter = ["status"]
    search_fields = ["provider_charge_id", "idempotency_key"]
    readonly_fields = ["order", "idempotency_key", "created_at", "updated_at"]


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ["number", "order", "total", "issued_at"]
    search_fields = ["sequence", "idempotency_key"]
    # Invoice numbers are handed out by the counter only; editing them here would make a gap.
    readonly_fields = ["order", "idempotency_key", "sequence", "total", "issued_at"]


@admin.register(EmailReceipt)
class EmailReceiptAdmin(admin.ModelAdmin):
    list_display = ["order", "to", "subject", "sent_at"]
    readonly_fields = ["order", "idempotency_key", "to", "subject", "sent_at"]


@admin.register(ProviderCharge)
class ProviderChargeAdmin(admin.ModelAdmin):
    list_display = ["charge_id", "idempotency_key", "amount", "status", "decline_reason", "created_at"]
    search_fields = ["charge_id", "idempotency_key"]


@admin.register(ProviderBehaviour)
class ProviderBehaviourAdmin(admin.ModelAdmin):
    list_display = ["owner", "decline", "transient_failures", "delay_seconds"]


@admin.register(Stall)
class StallAdmin(admin.ModelAdmin):
    """Arming a stall here stops the next run of its step mid-way (payments/stalls.py)."""

    list_display = ["step", "seconds", "armed_at", "order_id", "pid", "taken_at"]
    readonly_fields = ["order_id", "pid", "taken_at"]
