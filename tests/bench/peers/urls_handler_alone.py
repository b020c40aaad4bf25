from tests.bench.peers.urls_common import handler404, with_order_view  # noqa: F401
from tests.bench.peers.views import PlainOrderCreate

urlpatterns = with_order_view(PlainOrderCreate.as_view())
