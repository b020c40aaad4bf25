from django.contrib import admin

from payments.models import Charge, EmailReceipt, Invoice, OutboxMessage, ProviderBehaviour, ProviderCharge

admin.site.register([Charge, EmailReceipt, OutboxMessage, ProviderBehaviour, ProviderCharge])


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = ["number", "order", "total", "issued_at"]
