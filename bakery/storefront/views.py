"""Storefront pages: the catalogue, a cake's page with the tunnel simulator, the compare page (the
same scene on two phones at once), the kitchen and reset.

Plain function views: a full page on a normal request, the named partial when htmx asks
(``page_or_partial``), so every page also works without JavaScript.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from bakery.http import BakeryRequest, page_or_partial
from bakery.storefront import compare as scene
from bakery.storefront.selectors import cakes_on_sale, kitchen_context
from bakery.timeline.panel import timeline_context
from orders import services
from orders.customers import label_for
from orders.models import Customer


@require_GET
def cake_list(request: BakeryRequest) -> HttpResponse:
    return render(request, "bakery/cake_list.html", {"cakes": cakes_on_sale()})


def _phone_settings() -> dict:
    """The client timeout and the one retry policy (settings.CLIENT_RETRY_*), handed to a page's phones."""
    return {
        "timeout": settings.TUNNEL_CLIENT_TIMEOUT_SECONDS,
        "retry_base": settings.CLIENT_RETRY_BASE_SECONDS,
        "retry_cap": settings.CLIENT_RETRY_CAP_SECONDS,
        "retry_max": settings.CLIENT_RETRY_MAX_ATTEMPTS,
    }


@require_GET
def cake_detail(request: BakeryRequest, slug: str) -> HttpResponse:
    cake = get_object_or_404(cakes_on_sale(), slug=slug)
    customer = request.acting.existing()
    if customer is None:  # a visitor sees its identity, and becomes a customer with its first write
        identity = request.acting.identity
        customer = Customer(id=identity.id, label=label_for(identity.id),
                            idempotency_enabled=identity.idempotency_enabled)
    return render(
        request,
        "bakery/cake_detail.html",
        {"cake": cake, "customer": customer, "simulator": _phone_settings(),
         **kitchen_context(customer), **timeline_context(customer)},
    )


@require_GET
def compare(request: BakeryRequest, slug: str) -> HttpResponse:
    cake = get_object_or_404(cakes_on_sale(), slug=slug)
    phones = scene.phones_of(request, make=True)
    for phone in phones:
        phone.timeline = timeline_context(phone.customer, phone=phone.spec.name)
    return render(request, "bakery/compare.html", {"cake": cake, "phones": phones, "simulator": _phone_settings()})


@require_POST
def compare_start(request: BakeryRequest) -> HttpResponse:
    scene.compare_start(phones=scene.phones_of(request, make=True))
    return HttpResponse(status=204)


@require_GET
def compare_kitchens(request: BakeryRequest) -> HttpResponse:
    return render(request, "bakery/_compare_kitchens.html", {"phones": scene.phones_of(request)})


@require_GET
def compare_contrast(request: BakeryRequest) -> HttpResponse:
    """The ending, once both phones have finished (their script asks) and the back office has settled."""
    phones = scene.phones_of(request)
    settled = scene.settled(phones)
    said, meaning = scene.contrast(phones) if settled else ("", "")
    return render(request, "bakery/_compare_contrast.html", {"settled": settled, "said": said, "meaning": meaning})


@require_GET
def kitchen(request: BakeryRequest) -> HttpResponse:
    return page_or_partial(request, page="bakery/kitchen.html", partial="bakery/_kitchen.html",
                           context=kitchen_context(request.acting.existing()))


@require_POST
def reset(request: BakeryRequest) -> HttpResponse:
    customer = request.acting.existing()
    if customer is not None:  # a visitor has nothing to reset, and is not made a customer for it
        services.customer_reset(customer=customer)
    response = page_or_partial(request, page=lambda: HttpResponseRedirect(_back(request)),
                               partial="bakery/_reset_done.html")
    if request.htmx:
        response["HX-Trigger"] = "bakery:reset"
    return response


def _back(request: BakeryRequest) -> str:
    """Where the reset sends the visitor: a path on this site, else the cakes.

    A path, never a view name: Django's ``redirect()`` would try to reverse a bare word such as ``0``.
    """
    back = request.POST.get("next", "")
    if back.startswith("/") and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return back
    return reverse("cake-list")


def page_not_found(request: BakeryRequest, exception=None) -> HttpResponse:
    return render(request, "404.html", {"path": request.path}, status=404)
