from __future__ import annotations

from django.urls import path

from shop import views

app_name = "shop"

urlpatterns = [
    path("", views.index, name="index"),
    path("checkout/<uuid:payment_id>/", views.checkout, name="checkout"),
    path("orders/<uuid:order_id>/", views.order_detail, name="order"),
    path("orders/<uuid:order_id>/refund/", views.refund, name="refund"),
    path("staff/webhooks/", views.webhook_inbox, name="webhooks"),
]
