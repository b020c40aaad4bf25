from django.urls import path

from bakery.storefront import views
from bakery.timeline.views import timeline

urlpatterns = [
    path("", views.cake_list, name="cake-list"),
    path("cakes/<slug:slug>/", views.cake_detail, name="cake-detail"),
    path("kitchen/", views.kitchen, name="kitchen"),
    path("timeline/", timeline, name="timeline"),
    path("reset/", views.reset, name="reset"),
]
