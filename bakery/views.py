"""Storefront pages: the catalogue, a cake's page with the tunnel simulator, the kitchen and the timeline.

Plain function views: a full page on a normal request, the named partial when htmx asks
(``request.htmx``), so every page also works without JavaScript.
"""

from django.conf import settings
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from bakery.models import Cake
from bakery.simulator import LANES, build_timeline
from orders import selectors, services
from orders.customers import known_customer

# Automatic retries: the first waits about this long, each next one twice as long (plus jitter).
RETRY_BASE_SECONDS = 1.0
RETRY_CAP_SECONDS = 8.0
RETRY_MAX_ATTEMPTS = 8


@require_GET
def cake_list(request):
    cakes = Cake.objects.filter(is_available=True)
    return render(request, "bakery/cake_list.html", {"cakes": cakes})


@require_GET
def cake_detail(request, slug):
    cake = get_object_or_404(Cake, slug=slug, is_available=True)
    customer = request.customer  # opening a cake (the tunnel simulator) makes the visitor a customer
    return render(
        request,
        "bakery/cake_detail.html",
        {
            "cake": cake,
            "customer": customer,
            "simulator": {
                "timeout": settings.TUNNEL_CLIENT_TIMEOUT_SECONDS,
                "retry_base": getattr(settings, "SIMULATOR_RETRY_BASE_SECONDS", RETRY_BASE_SECONDS),
                "retry_cap": getattr(settings, "SIMULATOR_RETRY_CAP_SECONDS", RETRY_CAP_SECONDS),
                "retry_max": getattr(settings, "SIMULATOR_RETRY_MAX_ATTEMPTS", RETRY_MAX_ATTEMPTS),
            },
            **_kitchen_context(customer),
            **_timeline_context(customer),
        },
    )


def _page_or_partial(request, name: str, context: dict):
    """The full page on a normal request, the named htmx partial when htmx polls for it."""
    return render(request, f"bakery/{'_' if request.htmx else ''}{name}.html", context)


@require_GET
def kitchen(request):
    return _page_or_partial(request, "kitchen", _kitchen_context(known_customer(request)))


@require_GET
def timeline(request):
    return _page_or_partial(request, "timeline", _timeline_context(known_customer(request)))


@require_POST
def reset(request):
    customer = known_customer(request)
    if customer is not None:  # a visitor has nothing to reset, and is not made a customer for it
        services.customer_reset(customer=customer)
    if request.htmx:
        response = render(request, "bakery/_reset_done.html")
        response["HX-Trigger"] = "bakery:reset"
        return response
    back = request.POST.get("next") or reverse("cake-list")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("cake-list")
    return redirect(back)


def page_not_found(request, exception=None):
    return render(request, "404.html", {"path": request.path}, status=404)


def _kitchen_context(customer) -> dict:
    return {
        "counts": selectors.kitchen_counts(customer=customer),
        "orders": selectors.order_list(customer=customer)[:12],
    }


def _timeline_context(customer) -> dict:
    return {"intents": build_timeline(customer=customer), "lanes": LANES}
