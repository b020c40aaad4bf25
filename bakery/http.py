"""What every page of the site receives and how it answers, in one place.

``BakeryRequest`` types the request as django-htmx's example app does: the middleware stack puts
``htmx`` (django-htmx) and ``acting`` (who the request acts for, orders.customers) on every request. ``page_or_partial``
is the one place a view chooses between its full page and the htmx partial it polls for.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from orders.customers import ActingRequest


class BakeryRequest(ActingRequest):
    htmx: HtmxDetails


def page_or_partial(request: BakeryRequest, *, page: str | Callable[[], HttpResponse], partial: str,
                    context: dict | None = None) -> HttpResponse:
    """The htmx partial when htmx asks; otherwise the full page (a template, or a response such as
    a redirect), so every page also works without JavaScript."""
    if request.htmx:
        return render(request, partial, context)
    return page() if callable(page) else render(request, page, context)
