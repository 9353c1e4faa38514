"""The payment model lookup."""

from __future__ import annotations

from typing import Any

from django.db import connection

from django_paygate.models import Payment, get_payment_model
from tests.testapp.models import ShopPayment


def test_the_payment_model_follows_its_setting(settings: Any) -> None:
    original = get_payment_model()
    assert get_payment_model() is original  # looked up once, then remembered
    other = Payment if original is ShopPayment else ShopPayment

    settings.PAYGATE_PAYMENT_MODEL = f"{other._meta.app_label}.{other.__name__}"
    assert get_payment_model() is other

    settings.PAYGATE_PAYMENT_MODEL = f"{original._meta.app_label}.{original.__name__}"
    assert get_payment_model() is original


def test_the_webhook_lookup_follows_the_payment_model(settings: Any) -> None:
    from django_paygate import services
    from django_paygate.providers.base import ProviderEvent, ProviderPayment

    payment = ProviderPayment(provider_payment_id="pi_1", status=None)
    event = ProviderEvent(event_id="evt_1", type="payment.succeeded", payment=payment)
    original = get_payment_model()
    other = Payment if original is ShopPayment else ShopPayment

    for model in (original, other, original):
        settings.PAYGATE_PAYMENT_MODEL = f"{model._meta.app_label}.{model.__name__}"
        for lock in (False, True):
            lookup = services.payment_lookup("dummy", event, lock=lock)
            assert lookup is not None
            assert connection.ops.quote_name(model._meta.db_table) in lookup[0]
