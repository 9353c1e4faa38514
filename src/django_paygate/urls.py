"""``path("api/payments/", include("django_paygate.urls"))``."""

from __future__ import annotations

from django.urls import path

from django_paygate.views import api, checkout, webhooks

app_name = "paygate"

urlpatterns = [
    path("webhooks/health/", webhooks.health_view, name="webhook_health"),
    path("webhooks/<str:alias>/", webhooks.webhook_view, name="webhook"),
    path("create_intent/", api.create_intent, name="create_intent"),
    path("confirm_payment/", api.confirm_payment, name="confirm_payment"),
    path("process_refund/", api.process_refund, name="process_refund"),
    path("payment_status/", api.payment_status, name="payment_status"),
    path("payment_analytics/", api.payment_analytics, name="payment_analytics"),
    path("payments/", api.payments, name="payments"),
    path("openapi.json", api.openapi_json, name="openapi_json"),
    path("checkout/<uuid:payment_id>/", checkout.checkout_page, name="checkout"),
    path("checkout/<uuid:payment_id>/return/", checkout.checkout_return, name="checkout_return"),
    path("checkout/<uuid:payment_id>/check/", checkout.checkout_check, name="checkout_check"),
    path("checkout/<uuid:payment_id>/result/", checkout.checkout_result, name="checkout_result"),
]
