from drf_idempotencykey.mixins import DrfIdempotencyKeyMixin

from tests.bench.peers.urls_common import handler404, with_order_view  # noqa: F401
from tests.bench.peers.views import PlainOrderCreate


class DrfIdempotencyKeyOrderCreate(DrfIdempotencyKeyMixin, PlainOrderCreate):
    """drf-idempotencykey 0.2.0: its mixin over the same handler."""


urlpatterns = with_order_view(DrfIdempotencyKeyOrderCreate.as_view())
