"""``path("api/payments/", include("django_paygate.urls"))``."""

from __future__ import annotations

from django.urls import path

from django_paygate.views import webhooks

app_name = "paygate"

urlpatterns = [
    path("webhooks/health/", webhooks.health_view, name="webhook_health"),
    path("webhooks/<str:alias>/", webhooks.webhook_view, name="webhook"),
]
