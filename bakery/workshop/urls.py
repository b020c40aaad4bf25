"""The facilitator's dashboard, mounted at /workshop/ (staff only)."""

from django.urls import path

from bakery.workshop import views as workshop

urlpatterns = [
    path("", workshop.dashboard, name="workshop-dashboard"),
    path("learners/", workshop.learners, name="workshop-learners"),
    path("learners/<uuid:customer_id>/reset/", workshop.reset_learner, name="workshop-reset-learner"),
    path("reset/", workshop.reset_room, name="workshop-reset-room"),
    path("fire/", workshop.kitchen_fire, name="workshop-kitchen-fire"),
]
