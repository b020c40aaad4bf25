"""The timeline panel: a full page at /timeline/, the partial that htmx polls on the cake page."""

from __future__ import annotations

from django.http import HttpResponse
from django.views.decorators.http import require_GET

from bakery.http import BakeryRequest, page_or_partial
from bakery.timeline.story import build_timeline
from bakery.timeline.words import LANES
from orders.customers import known_customer


def timeline_context(customer) -> dict:
    return {"intents": build_timeline(customer=customer), "lanes": LANES}


@require_GET
def timeline(request: BakeryRequest) -> HttpResponse:
    return page_or_partial(request, page="bakery/timeline.html", partial="bakery/_timeline.html",
                           context=timeline_context(known_customer(request)))
