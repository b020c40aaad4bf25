from django.urls import path

from bakery import views

urlpatterns = [
    path("", views.cake_list, name="cake-list"),
    path("cakes/<slug:slug>/", views.cake_detail, name="cake-detail"),
    path("kitchen/", views.kitchen, name="kitchen"),
    path("timeline/", views.timeline, name="timeline"),
    path("reset/", views.reset, name="reset"),
]
