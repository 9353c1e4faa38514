"""End to end: the real stripe SDK over real HTTP to localstripe.

localstripe is lax (it accepts refunds above the charge and has no
``amount_received``), so these tests also show the library enforcing its own
invariants instead of relying on the server.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from django_paygate import services
from django_paygate.exceptions import PaymentDeclined, RefundExceedsCaptured
from django_paygate.models import PaymentEvent
from django_paygate.providers.stripe import StripeProvider
from tests.providers.stripe.conftest import PUBLISHABLE_KEY, SECRET_KEY

pytestmark = pytest.mark.django_db(transaction=True)


def remote(url: str, path: str) -> dict[str, Any]:
    """An object as localstripe holds it (read around the adapter)."""
    response = requests.get(f"{url}{path}", auth=(SECRET_KEY, ""), timeout=10)
    response.raise_for_status()
    return dict(response.json())


def card(url: str, number: str) -> str:
    """A PaymentMethod created on localstripe for a test card number."""
    response = requests.post(
        f"{url}/v1/payment_methods",
        auth=(SECRET_KEY, ""),
        data={
            "type": "card",
            "card[number]": number,
            "card[exp_month]": "12",
            "card[exp_year]": "2034",
            "card[cvc]": "123",
        },
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["id"])


def test_create_confirm_capture_part_then_two_partial_refunds(
    local_stripe: StripeProvider, localstripe_url: str, signal_spy: Any
) -> None:
    payment = services.create_payment(
        amount=5000, currency="EUR", provider="stripe", capture=False, description="Order 1"
    )
    pid = payment.provider_payment_id
    assert pid
    assert pid.startswith("pi_")
    assert payment.client_data["payment_intent_id"] == pid
    assert payment.client_data["client_secret"].startswith(f"{pid}_secret_")
    assert payment.client_data["publishable_key"] == PUBLISHABLE_KEY
    intent = remote(localstripe_url, f"/v1/payment_intents/{pid}")
    assert intent["metadata"] == {"paygate_payment_id": str(payment.pk)}
    assert intent["capture_method"] == "manual"
    assert (intent["amount"], intent["currency"]) == (5000, "eur")

    payment = services.confirm_payment(
        payment, payment_method=card(localstripe_url, "4242424242424242")
    )
    assert payment.status == "authorized"

    payment = services.capture_payment(payment, amount=3000)
    assert payment.status == "succeeded"
    assert payment.amount_captured == 3000
    intent = remote(localstripe_url, f"/v1/payment_intents/{pid}")
    assert intent["status"] == "succeeded"
    assert payment.provider_data["latest_charge"] == intent["latest_charge"]["id"]

    first = services.refund_payment(payment, amount=1000, reason="damaged")
    second = services.refund_payment(payment, amount=1500)
    payment.refresh_from_db()
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert payment.amount_refunded == 2500
    assert payment.status == "partially_refunded"
    for ours in (first, second):
        theirs = remote(localstripe_url, f"/v1/refunds/{ours.provider_refund_id}")
        assert theirs["amount"] == ours.amount
        assert theirs["payment_intent"] == pid
        assert theirs["metadata"]["paygate_refund_id"] == str(ours.pk)

    # localstripe would refund more than was captured; the library does not ask.
    refunds_before = len(remote(localstripe_url, f"/v1/refunds?payment_intent={pid}")["data"])
    with pytest.raises(RefundExceedsCaptured):
        services.refund_payment(payment, amount=501)
    refunds_after = len(remote(localstripe_url, f"/v1/refunds?payment_intent={pid}")["data"])
    assert refunds_after == refunds_before
    last = services.refund_payment(payment)  # the rest: 500
    payment.refresh_from_db()
    assert last.amount == 500
    assert payment.status == "refunded"
    assert payment.amount_refunded == payment.amount_captured == 3000

    moves = list(
        PaymentEvent.objects.filter(payment=payment)
        .exclude(from_status="")
        .exclude(to_status__in=["partially_refunded"], from_status="partially_refunded")
        .values_list("from_status", "to_status")
    )
    assert ("pending", "authorized") in moves
    assert ("authorized", "succeeded") in moves
    assert signal_spy.count("payment_authorized") == 1
    assert signal_spy.count("payment_succeeded") == 1
    assert signal_spy.count("refund_succeeded") == 3


def test_automatic_capture_with_a_test_payment_method(
    local_stripe: StripeProvider, signal_spy: Any
) -> None:
    payment = services.create_payment(amount=1999, currency="USD", provider="stripe")
    payment = services.confirm_payment(payment, payment_method="pm_card_visa")
    assert payment.status == "succeeded"
    assert payment.amount_captured == 1999
    synced = services.sync_payment(payment)
    assert synced.status == "succeeded"
    assert synced.refunds.count() == 0
    assert signal_spy.count("payment_succeeded") == 1


def test_manual_capture_then_cancel(
    local_stripe: StripeProvider, localstripe_url: str, signal_spy: Any
) -> None:
    payment = services.create_payment(amount=1200, currency="GBP", provider="stripe", capture=False)
    payment = services.confirm_payment(payment, payment_method="pm_card_visa")
    assert payment.status == "authorized"
    payment = services.cancel_payment(payment)
    assert payment.status == "canceled"
    assert payment.canceled_at is not None
    intent = remote(localstripe_url, f"/v1/payment_intents/{payment.provider_payment_id}")
    assert intent["status"] == "canceled"
    assert signal_spy.count("payment_canceled") == 1


def test_declined_card(local_stripe: StripeProvider, localstripe_url: str, signal_spy: Any) -> None:
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe")
    declined = card(localstripe_url, "4000000000000341")  # attaches, then fails to charge
    with pytest.raises(PaymentDeclined) as err:
        services.confirm_payment(payment, payment_method=declined)
    assert err.value.decline_code == "card_declined"
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.failure_code == "card_declined"
    assert signal_spy.count("payment_failed") == 1
    synced = services.sync_payment(payment)
    assert synced.status == "failed"


def test_three_d_secure_surfaces_next_action(
    local_stripe: StripeProvider, localstripe_url: str
) -> None:
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe")
    payment = services.confirm_payment(
        payment, payment_method=card(localstripe_url, "4000002500003155")
    )
    assert payment.status == "requires_action"
    assert payment.next_action["type"] == "use_stripe_sdk"
    synced = services.sync_payment(payment)
    assert synced.status == "requires_action"


def test_client_data_is_retrieved_for_an_existing_payment(local_stripe: StripeProvider) -> None:
    payment = services.create_payment(amount=700, currency="USD", provider="stripe")
    data = local_stripe.client_data(payment)
    assert data == payment.client_data
