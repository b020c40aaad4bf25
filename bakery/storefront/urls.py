from django.urls import path

from bakery.storefront import views
from bakery.timeline.views import timeline

urlpatterns = [
    path("", views.cake_list, name="cake-list"),
    path("cakes/<slug:slug>/", views.cake_detail, name="cake-detail"),
    path("cakes/<slug:slug>/compare/", views.compare, name="compare"),
    path("compare/start/", views.compare_start, name="compare-start"),
    path("compare/kitchens/", views.compare_kitchens, name="compare-kitchens"),
    path("compare/contrast/", views.compare_contrast, name="compare-contrast"),
    path("kitchen/", views.kitchen, name="kitchen"),
    path("timeline/", timeline, name="timeline"),
    path("reset/", views.reset, name="reset"),
]
