"""The invoice page: a stable URL per invoice number, readable by the customer who ordered."""

import re

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from orders.customers import ActingRequest
from payments.models import Invoice

# ASCII digits only ("²".isdigit() is true, but int() refuses it), and no more than an invoice
# sequence (a PostgreSQL integer) can hold.
INVOICE_NUMBER = re.compile(r"INV-([0-9]{1,9})")


@require_GET
def invoice_detail(request: ActingRequest, number: str) -> HttpResponse:
    matched = INVOICE_NUMBER.fullmatch(number)
    if matched is None:
        raise Http404("No such invoice")
    invoice = (
        Invoice.objects.select_related("order__customer")
        .prefetch_related("order__items__cake")
        .filter(sequence=int(matched.group(1)))
        .first()
    )
    # Only the customer who ordered (or staff) may read an invoice; others get the same 404.
    customer = request.acting.existing()
    if invoice is None or not (request.user.is_staff or (customer and invoice.order.customer_id == customer.pk)):
        raise Http404("No such invoice")
    return render(request, "payments/invoice.html", {"invoice": invoice, "order": invoice.order})
