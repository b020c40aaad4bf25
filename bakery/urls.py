"""URLs. The storefront (with the timeline) and the workshop each keep their routes in their own package."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from bakery import monitoring
from bakery.guide.views import doc_page
from orders import api
from orders.problems import problem_catalogue
from payments import views as payment_views

urlpatterns = [
    path("", include("bakery.storefront.urls")),
    path("workshop/", include("bakery.workshop.urls")),
    path("docs/<slug:name>/", doc_page, name="doc-page"),
    path("invoices/<str:number>/", payment_views.invoice_detail, name="invoice-detail"),
    path("api/me/", api.Me.as_view(), name="api-me"),
    path("api/orders/", api.OrderListCreate.as_view(), name="api-orders"),
    path("api/orders/<int:pk>/", api.OrderDetail.as_view(), name="api-order-detail"),
    path("api/problems/", problem_catalogue, name="api-problems"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("metrics", monitoring.metrics, name="metrics"),
]

if settings.CONFORMANCE_FIXTURE:
    # The public conformance suite's fixture routes behind the idempotency layer (bakery/conformance.py).
    urlpatterns.append(path("conformance/", include("bakery.conformance")))

handler404 = "bakery.storefront.views.page_not_found"
handler400 = "orders.problems.bad_request"
handler500 = "bakery.outage.server_error_or_unavailable"
