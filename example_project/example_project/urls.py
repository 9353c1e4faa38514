from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    # django-paygate: webhooks/<alias>/, webhooks/health/ and the JSON API.
    path("api/payments/", include("django_paygate.urls")),
    path("", include("shop.urls")),
]
