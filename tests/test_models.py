"""The payment model lookup."""

from __future__ import annotations

from typing import Any

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
