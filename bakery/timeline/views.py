"""The timeline panel: a full page at /timeline/, the partial that htmx polls on the cake page
and, for each phone, on the compare page (the phone is named by the X-Bakery-Phone header)."""

from __future__ import annotations

from django.http import HttpResponse
from django.views.decorators.http import require_GET

from bakery.http import BakeryRequest, page_or_partial
from bakery.timeline.story import build_timeline
from bakery.timeline.words import LANES


def timeline_context(customer, *, phone: str = "") -> dict:
    """What the panel shows; a phone's panel has its own element id and asks for its phone's events."""
    return {"intents": build_timeline(customer=customer), "lanes": LANES, "phone": phone,
            "timeline_id": f"timeline-{phone}" if phone else "timeline"}


@require_GET
def timeline(request: BakeryRequest) -> HttpResponse:
    return page_or_partial(request, page="bakery/timeline.html", partial="bakery/_timeline.html",
                           context=timeline_context(request.acting.existing(), phone=request.acting.phone))
