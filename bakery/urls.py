from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from bakery import views
from orders import api
from payments import views as payment_views

urlpatterns = [
    path("", views.cake_list, name="cake-list"),
    path("cakes/<slug:slug>/", views.cake_detail, name="cake-detail"),
    path("invoices/<str:number>/", payment_views.invoice_detail, name="invoice-detail"),
    path("api/me/", api.Me.as_view(), name="api-me"),
    path("api/orders/", api.OrderListCreate.as_view(), name="api-orders"),
    path("api/orders/<int:pk>/", api.OrderDetail.as_view(), name="api-order-detail"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]

handler404 = "bakery.views.page_not_found"
