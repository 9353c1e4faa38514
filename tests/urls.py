from django.contrib import admin
from django.urls import include, path

from tests.testapp import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/payments/", include("django_paygate.urls")),
    path("orders/<int:pk>/thanks/", views.order_page, {"outcome": "thanks"}, name="order-thanks"),
    path("orders/<int:pk>/failed/", views.order_page, {"outcome": "failed"}, name="order-failed"),
]
