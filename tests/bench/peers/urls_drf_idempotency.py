from drf_idempotency import idempotent

from tests.bench.peers.urls_common import handler404, with_order_view  # noqa: F401
from tests.bench.peers.views import PlainOrderCreate


class DrfIdempotencyOrderCreate(PlainOrderCreate):
    """drf-idempotency 1.0.0: its per-view decorator over the same handler."""

    @idempotent()
    def post(self, request):
        return super().post(request)


urlpatterns = with_order_view(DrfIdempotencyOrderCreate.as_view())
