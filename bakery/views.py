"""Storefront pages: the catalogue and a cake's page. Plain function views, full pages or htmx partials."""

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from bakery.models import Cake


@require_GET
def cake_list(request):
    cakes = Cake.objects.filter(is_available=True)
    return render(request, "bakery/cake_list.html", {"cakes": cakes})


@require_GET
def cake_detail(request, slug):
    cake = get_object_or_404(Cake, slug=slug, is_available=True)
    return render(request, "bakery/cake_detail.html", {"cake": cake})


def page_not_found(request, exception=None):
    return render(request, "404.html", {"path": request.path}, status=404)
