"""The guides in docs/, served inside the product so the timeline's "Lab N" links work offline too."""

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from bakery.guide.selectors import guide_page
from bakery.http import BakeryRequest


@require_GET
def doc_page(request: BakeryRequest, name: str) -> HttpResponse:
    page = guide_page(name)
    if page is None:
        raise Http404("No such guide")
    title, html = page
    return render(request, "docs.html", {"title": title, "body": html})
