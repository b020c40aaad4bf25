"""/metrics for Prometheus: what the idempotency layer decided and how long it took (orders/metrics.py)."""

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from orders.metrics import exposition


@require_GET
def metrics(request):
    """Staff sessions may read it; a scraper, which has no session, is let in by its address."""
    if not (request.user.is_staff or request.META.get("REMOTE_ADDR") in settings.METRICS_ALLOWED_IPS):
        return HttpResponse("Metrics are for staff. A Prometheus scraper's address goes in METRICS_ALLOWED_IPS.\n",
                            status=403, content_type="text/plain; charset=utf-8")
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
