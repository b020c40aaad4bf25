"""The timeline panel: a full page at /timeline/, the partial that htmx polls on the cake page
and, for each phone, on the compare page (the phone is named by the X-Bakery-Phone header)."""

from __future__ import annotations

from django.http import HttpResponse
from django.views.decorators.http import require_GET

from bakery.http import BakeryRequest, page_or_partial
from bakery.timeline.panel import timeline_context


@require_GET
def timeline(request: BakeryRequest) -> HttpResponse:
    return page_or_partial(request, page="bakery/timeline.html", partial="bakery/_timeline.html",
                           context=timeline_context(request.acting.existing(), phone=request.acting.phone))
