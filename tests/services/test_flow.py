from __future__ import annotations

import pytest

from django_paygate import services
from django_paygate.exceptions import PaymentDeclined
from django_paygate.providers.dummy import CARD_DECLINED, CARD_REQUIRES_ACTION, CARD_SUCCEEDS

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_confirm_refund(dummy, signal_spy):
    payment = services.create_payment(amount=1999, currency="usd", email="a@example.com")
    assert payment.status == "pending"
    assert payment.provider_payment_id == f"dummy_{payment.pk.hex}"
    assert payment.client_data["provider"] == "dummy"
    payment = services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    assert payment.status == "succeeded"
    assert payment.amount_captured == 1999
    refund = services.refund_payment(payment, amount=999, reason="damaged")
    assert refund.status == "succeeded"
    payment.refresh_from_db()
    assert payment.status == "partially_refunded"
    assert payment.amount_refunded == 999
    assert signal_spy.count("payment_succeeded") == 1
    assert signal_spy.count("refund_succeeded") == 1


def test_declined_then_action(dummy, signal_spy):
    payment = services.create_payment(amount=500, currency="EUR")
    with pytest.raises(PaymentDeclined) as err:
        services.confirm_payment(payment, payment_method=CARD_DECLINED)
    assert err.value.decline_code == "card_declined"
    payment.refresh_from_db()
    assert payment.status == "failed"
    payment = services.confirm_payment(payment, payment_method=CARD_REQUIRES_ACTION)
    assert payment.status == "requires_action"
    assert payment.next_action == {"type": "dummy_authenticate"}
    payment = services.confirm_payment(payment, payment_method=CARD_REQUIRES_ACTION)
    assert payment.status == "succeeded"
    assert signal_spy.names().count("payment_failed") == 1
    assert signal_spy.names().count("payment_succeeded") == 1
