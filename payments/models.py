from django.db import models


class Charge(models.Model):
    """The bakery's record of taking payment for an order: at most one per fulfilment key."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    order = models.OneToOneField("orders.Order", on_delete=models.CASCADE, related_name="charge")
    idempotency_key = models.UUIDField(unique=True, help_text="The order's fulfilment key.")
    status = models.CharField(max_length=20, choices=Status.choices)
    provider_charge_id = models.CharField(max_length=40, blank=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    attempts = models.PositiveIntegerField(default=0, help_text="Calls made to the provider, retries included.")
    failure_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.provider_charge_id or 'charge'} for order #{self.order_id}"


class Invoice(models.Model):
    """An invoice with a human number (INV-000123) that has no gaps and no duplicates."""

    order = models.OneToOneField("orders.Order", on_delete=models.CASCADE, related_name="invoice")
    idempotency_key = models.UUIDField(unique=True, help_text="The order's fulfilment key.")
    sequence = models.PositiveIntegerField(unique=True)
    total = models.DecimalField(max_digits=10, decimal_places=2)
    issued_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sequence"]

    def __str__(self) -> str:
        return self.number

    @property
    def number(self) -> str:
        return f"INV-{self.sequence:06d}"


class InvoiceCounter(models.Model):
    """One row holding the last invoice number; locked FOR UPDATE so numbers have no gaps.

    A sequence (or MAX()+1) would not do: a PostgreSQL sequence never rolls back, so a failed
    invoice would leave a hole, and MAX()+1 hands the same number to two concurrent invoices.
    The counter row is updated in the invoice's own transaction, so a rolled-back invoice
    rolls its number back too, and the row lock makes concurrent invoices take turns.
    """

    last_sequence = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="invoice_counter_single_row")]

    def __str__(self) -> str:
        return f"last invoice INV-{self.last_sequence:06d}"


class EmailReceipt(models.Model):
    """Proof that the confirmation email for a fulfilment key was sent: at most one each."""

    order = models.OneToOneField("orders.Order", on_delete=models.CASCADE, related_name="email_receipt")
    idempotency_key = models.UUIDField(unique=True, help_text="The order's fulfilment key.")
    to = models.CharField(max_length=200)
    subject = models.CharField(max_length=200)
    sent_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.subject} to {self.to}"


class ProviderCharge(models.Model):
    """The fake payment provider's own ledger (it is "another company").

    Like Stripe it honours an idempotency key: a repeated key returns the original charge.
    It is written through the ``provider`` database connection, so a charge survives a
    rollback of the bakery's transaction, as money taken by a real provider would.
    """

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        DECLINED = "declined", "Declined"

    idempotency_key = models.CharField(max_length=255, unique=True)
    charge_id = models.CharField(max_length=40, unique=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2)
    status = models.CharField(max_length=20, choices=Status.choices)
    decline_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.charge_id


class ProviderBehaviour(models.Model):
    """Switches that make the fake provider misbehave for one customer (simulator and tests)."""

    owner = models.CharField(max_length=64, unique=True, help_text="Customer id")
    decline = models.BooleanField(default=False)
    transient_failures = models.PositiveIntegerField(
        default=0, help_text="Fail this many calls with a timeout-like error, then succeed."
    )
    delay_seconds = models.FloatField(default=0, help_text="Answer this much later, like a slow provider.")

    def __str__(self) -> str:
        return f"provider behaviour for {self.owner}"


class Stall(models.Model):
    """The next run of one fulfilment step stops in the middle of its work for ``seconds``, as a slow
    provider or mail server would keep it waiting, so that a drill (or a facilitator) can kill the
    worker there (payments/stalls.py). Written through the provider's connection, outside any step's
    transaction, so who took it shows at once."""

    class Step(models.TextChoices):
        CAPTURE = "capture", "Capture, after the provider charged"
        INVOICE = "invoice", "Invoice, after the number was taken"
        EMAIL = "email", "Email, with the receipt written and the email not sent"

    step = models.CharField(max_length=20, choices=Step.choices, unique=True)
    seconds = models.FloatField()
    armed_at = models.DateTimeField()
    # Filled by the run that took it: the order it stopped in and the worker process holding it.
    order_id = models.BigIntegerField(null=True, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    taken_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"stall in {self.step} for {self.seconds:g} s"
