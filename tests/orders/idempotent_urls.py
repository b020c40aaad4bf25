"""The bakery's URLs plus plain Django views behind ``@idempotent``, for the decorator's own tests."""

from django.http import HttpResponse, JsonResponse
from django.urls import path
from django.views.decorators.http import require_POST

from bakery.urls import urlpatterns as bakery_urlpatterns
from orders.events import Kind, record_event
from orders.idempotent import idempotent


@require_POST
@idempotent(scope="tests.status")
def status(request, code: int):
    """Leaves a trace in the database, then answers ``code``: a 5xx must take the trace back with it."""
    record_event(source="api", kind=Kind.STEP_DONE, key=request.idempotency_key, customer=request.acting.customer())
    return HttpResponse(f"answered {code}", status=code, content_type="text/plain")


@require_POST
@idempotent(scope="tests.echo")
def echo(request):
    return JsonResponse({"key": request.idempotency_key, "body": request.body.decode()}, status=201)


urlpatterns = [
    path("status/<int:code>/", status),
    path("echo/", echo),
    *bakery_urlpatterns,
]
