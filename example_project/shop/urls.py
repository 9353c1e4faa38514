from __future__ import annotations

from django.urls import path

from shop import localstripe, views

app_name = "shop"

urlpatterns = [
    path("", views.index, name="index"),
    path("orders/<uuid:order_id>/", views.order_detail, name="order"),
    path("orders/<uuid:order_id>/pay/", views.pay, name="pay"),
    path("orders/<uuid:order_id>/refund/", views.refund, name="refund"),
    path("staff/webhooks/", views.webhook_inbox, name="webhooks"),
    path("_localstripe/stripe.js", localstripe.stripe_js),
    path("_localstripe/v1/<path:path>", localstripe.relay),
]
