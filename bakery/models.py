from django.db import models


class TunnelHold(models.Model):
    """A request held in the tunnel right now: a web thread kept waiting for one customer.

    The tunnel counts these to let one customer hold at most TUNNEL_MAX_HOLDS at once
    (bakery/storefront/tunnel.py). A hold is deleted when its request ends; one whose process died
    stops counting at ``until``.
    """

    customer = models.ForeignKey("orders.Customer", on_delete=models.CASCADE, related_name="+")
    until = models.DateTimeField(help_text="When the hold ends at the latest.")

    class Meta:
        indexes = [models.Index(fields=["customer", "until"], name="tunnel_hold_customer_until")]

    def __str__(self):
        return f"{self.customer_id} until {self.until:%H:%M:%S}"
