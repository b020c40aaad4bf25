from django.urls import path

from bakery.urls import handler404  # noqa: F401
from bakery.urls import urlpatterns as bakery_urlpatterns
from tests.bench.peers.views import BenchLogin


def with_order_view(view) -> list:
    return [*bakery_urlpatterns, path("bench/orders/", view), path("bench/login/", BenchLogin.as_view())]
