"""Operators see the pipeline in the admin: charges, invoices, emails and the outbox."""

import pytest

from payments import services


@pytest.mark.django_db(transaction=True, databases=["default", "provider"])
# The outbox belongs to the order core (work leaves an order through it), so it is listed under Orders.
@pytest.mark.parametrize("model", ["payments/charge", "payments/invoice", "payments/emailreceipt",
                                   "orders/outboxmessage", "payments/providercharge", "payments/providerbehaviour"])
def test_the_admin_lists_the_pipeline(admin_client, customer_client, cake, new_key, model):
    order = customer_client.order(new_key()).json()
    services.payment_capture(order_id=order["id"])
    services.invoice_issue(order_id=order["id"])
    services.confirmation_send(order_id=order["id"])

    page = admin_client.get(f"/admin/{model}/")
    assert page.status_code == 200
    if model == "payments/invoice":
        assert b"INV-000001" in page.content
