import uuid

from django.db import models
from django.db.models import Q
from django.templatetags.static import static
from django.urls import reverse


class Cake(models.Model):
    """A cake in the catalogue. Prices are copied onto order items, so editing one never rewrites history."""

    name = models.CharField(max_length=80)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField()
    price = models.DecimalField(max_digits=8, decimal_places=2)
    image = models.CharField(
        max_length=200, help_text="Static path of the picture, e.g. cakes/strawberry-shortcake.svg"
    )
    position = models.PositiveSmallIntegerField(default=100, help_text="Lower comes first.")
    is_available = models.BooleanField(default=True)

    class Meta:
        ordering = ["position", "name"]
        # The table keeps the name it was created with, when the catalogue lived in the site's app.
        db_table = "bakery_cake"

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("cake-detail", kwargs={"slug": self.slug})

    @property
    def image_url(self) -> str:
        return static(self.image)


class Customer(models.Model):
    """A browser visitor, known by its Django session: no sign-up, one bakery each.

    ``idempotency_enabled`` is the switch that shows the bug: off, the order API ignores the
    Idempotency-Key header and every retry bakes another cake.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    label = models.CharField(max_length=60, help_text="A friendly name shown on the workshop dashboard.")
    idempotency_enabled = models.BooleanField(default=True)
    last_scenario = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(auto_now=True, db_index=True)

    def __str__(self) -> str:
        return self.label or str(self.id)


class Order(models.Model):
    """A cake order. The database makes a duplicate impossible: one order per (customer, key).

    When the customer's idempotency switch is off the order is stored with ``idempotent=False``
    and the constraint does not apply, which is exactly the bug the tunnel simulator shows.
    Because one key makes one order, the order's ``fulfilment_key`` stands for that key in the
    back office: the charge, the invoice and the email are each unique on it.
    ``status`` is the fulfilment checkpoint: a crashed worker resumes from here, not from the start.
    """

    class Status(models.TextChoices):
        PLACED = "placed", "Placed"
        PAID = "paid", "Paid"
        INVOICED = "invoiced", "Invoiced"
        NOTIFIED = "notified", "Confirmation sent"
        PAYMENT_FAILED = "payment_failed", "Payment failed"
        # The completer re-sent a stalled step FULFILMENT_MAX_RESUMPTIONS times in vain and stopped:
        # ``failure_reason`` says where; re-running the step by name reopens the order.
        FULFILMENT_FAILED = "fulfilment_failed", "Fulfilment stopped"

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    idempotency_key = models.UUIDField(null=True, blank=True, help_text="The key the browser sent.")
    idempotent = models.BooleanField(default=True, help_text="False when the customer's switch was off.")
    key_expired = models.BooleanField(
        default=False, help_text="Set by the purge after IDEMPOTENCY_KEY_TTL: the key may then be used anew."
    )
    fulfilment_key = models.UUIDField(
        default=uuid.uuid4,
        unique=True,
        editable=False,
        help_text="Minted once with the order; every back-office step and the payment provider dedupe on it.",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLACED)
    failure_reason = models.CharField(max_length=200, blank=True)
    resumptions = models.PositiveSmallIntegerField(
        default=0, help_text="Times the completer re-sent the next step since the checkpoint last moved."
    )
    note = models.CharField(max_length=500, blank=True)
    total = models.DecimalField(max_digits=10, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The completer's scan: only orders still on their way, oldest checkpoint first.
            models.Index(fields=["updated_at"], condition=Q(status__in=["placed", "paid", "invoiced"]),
                         name="order_in_fulfilment"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "idempotency_key"],
                condition=Q(idempotent=True, key_expired=False),
                name="one_order_per_customer_key",
            )
        ]

    def __str__(self) -> str:
        return f"Order #{self.pk}"

    @property
    def cake_count(self) -> int:
        return sum(item.quantity for item in self.items.all())


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    cake = models.ForeignKey(Cake, on_delete=models.PROTECT, related_name="+")
    quantity = models.PositiveSmallIntegerField()
    unit_price = models.DecimalField(max_digits=8, decimal_places=2)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gte=1) & Q(quantity__lte=50), name="quantity_between_1_and_50"
            )
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.cake}"


class IdempotencyRecord(models.Model):
    """What was asked with a key and what was answered: the persistent store of the layer.

    ``scope`` names the caller (the order API, a Celery step), ``owner`` the customer, so one
    customer's key never replays another's answer. The row is inserted in the same transaction
    as the work it guards: a second request with the key waits on PostgreSQL's row lock, and a
    failed handler rolls the row back, which releases the key.
    """

    scope = models.CharField(max_length=64)
    owner = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the canonical request.")
    request = models.JSONField(help_text="The canonical request, to name the fields that differ.")
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.BinaryField(default=b"")
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "owner", "key"], name="one_record_per_scope_owner_key")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"


class Event(models.Model):
    """Something that happened to an order intent, for the timeline and the workshop dashboard.

    The idempotency layer, the tunnel, the order service and every Celery step write these; the
    timeline groups them by ``key`` (the browser's idempotency key for the intent).
    """

    class Kind(models.TextChoices):
        ATTEMPT = "attempt", "Request arrived"
        LOST_REQUEST = "lost_request", "Request lost in the tunnel"
        LOST_RESPONSE = "lost_response", "Response lost in the tunnel"
        NEW = "new", "New key: handler ran"
        REPLAY = "replay", "Replayed the stored answer"
        CONFLICT = "conflict", "Same key still running: 409"
        MISMATCH = "mismatch", "Same key, different order: 422"
        REJECTED = "rejected", "Rejected: bad request"
        RELEASED = "released", "Handler failed: key released"
        EXPIRED = "expired", "Keys purged after their TTL"
        UNGUARDED = "unguarded", "Idempotency off: handler ran"
        ORDER_STORED = "order_stored", "Order stored"
        STEP_DONE = "step_done", "Step done"
        DEDUPE = "dedupe", "Duplicate delivery skipped"
        RETRY = "retry", "Step will retry"
        FAILED = "failed", "Step failed"
        RESUMED = "resumed", "Resumed by the completer"

    class Source(models.TextChoices):
        """Which part of the bakery wrote the event."""

        API = "api", "The order API's idempotency layer"
        LAYER = "layer", "The idempotency layer's own housekeeping (purges, direct calls)"
        TUNNEL = "tunnel", "The tunnel simulator"
        ORDER = "order", "The order service"
        PAYMENT = "payment", "The payment step (and the provider's own dedupe)"
        INVOICE = "invoice", "The invoice step"
        EMAIL = "email", "The confirmation email step"
        CONFORMANCE = "conformance", "The conformance fixture's routes"

    customer = models.ForeignKey(Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="events")
    key = models.CharField(max_length=255, blank=True)
    order = models.ForeignKey(Order, null=True, blank=True, on_delete=models.SET_NULL, related_name="events",
                              db_index=False)
    source = models.CharField(max_length=20, choices=Source.choices)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        # Every request writes an event or two, so each index here is paid for on every request;
        # only what a query reads is kept. The timeline looks keys up by equality (db_index would add
        # a varchar_pattern_ops copy for LIKE); an order's events are looked up by order, and most
        # events (the layer's decisions) have none, so that index leaves them out. Nothing searches
        # events by time: a customer's are sorted after the customer's index found them, and the demo's
        # feed follows ids.
        indexes = [
            models.Index(fields=["key"], name="orders_event_key"),
            models.Index(fields=["order"], name="orders_event_order", condition=Q(order__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.source}:{self.kind} {self.key}"


class OutboxMessage(models.Model):
    """A Celery task to send, written in the same transaction as the change that needs it.

    This is the transactional outbox: if the broker is down when an order commits, the message
    waits here and the beat-driven relay sends it once Redis is back. Nothing is lost between
    the commit and the queue.
    """

    task = models.CharField(max_length=100)
    args = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["id"]
        # The table keeps the name it was created with, when the outbox lived in payments.
        db_table = "payments_outboxmessage"
        indexes = [
            models.Index(fields=["id"], condition=models.Q(dispatched_at__isnull=True), name="outbox_pending")
        ]

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)}"


class DecisionTally(models.Model):
    """The layer's decisions whose timeline events were deleted ("Reset my bakery", a room reset).

    /metrics counts decisions from the events; a PostgreSQL trigger on ``orders_event`` adds every
    deleted decision here first (migration 0003), whoever deletes it, so the counters never go down.
    """

    kind = models.CharField(max_length=20)
    scope = models.CharField(max_length=64)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "scope"], name="one_tally_per_kind_scope")]

    def __str__(self) -> str:
        return f"{self.kind} {self.scope}: {self.count}"
