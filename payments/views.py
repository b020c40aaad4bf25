"""The invoice page: a stable URL per invoice number, readable by the customer who ordered."""

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from payments.models import Invoice


@require_GET
def invoice_detail(request, number: str) -> HttpResponse:
    prefix, _, digits = number.partition("-")
    if prefix != "INV" or not digits.isdigit():
        raise Http404("No such invoice")
    invoice = (
        Invoice.objects.select_related("order__customer")
        .prefetch_related("order__items__cake")
        .filter(sequence=int(digits))
        .first()
    )
    # Only the customer who ordered (or staff) may read an invoice; others get the same 404.
    if invoice is None or not (request.user.is_staff or invoice.order.customer_id == request.customer.pk):
        raise Http404("No such invoice")
    return render(request, "payments/invoice.html", {"invoice": invoice, "order": invoice.order})
