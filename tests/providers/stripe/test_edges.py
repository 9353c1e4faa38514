"""Stripe events and objects at the edges: foreign currencies, old API shapes, inquiries."""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate import services
from django_paygate.exceptions import ProviderUnavailable
from django_paygate.models import Dispute, Refund, WebhookEvent
from django_paygate.providers.stripe import StripeProvider
from tests.providers.stripe.conftest import WEBHOOK_URL, event_body, sign

pytestmark = pytest.mark.django_db(transaction=True)


def post(client: Any, body: bytes) -> Any:
    return client.post(
        WEBHOOK_URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
    )


# A signed event about an object that is not ours, in a currency Stripe still uses but
# ISO 4217 withdrew (ANG, SLL, HRK): stored and ignored, never a 400 that Stripe would
# retry for days until it disables the endpoint.
@pytest.mark.parametrize("currency", ["ang", "sll", "hrk"])
def test_foreign_object_in_unknown_currency_is_ignored_not_rejected(
    client: Any, stripe_provider: StripeProvider, currency: str
) -> None:
    intent = {
        "id": "pi_not_ours",
        "object": "payment_intent",
        "amount": 1000,
        "amount_received": 1000,
        "currency": currency,
        "status": "succeeded",
        "metadata": {},
        "latest_charge": "ch_x",
        "last_payment_error": None,
        "next_action": None,
    }
    body = event_body("payment_intent.succeeded", intent)
    response = post(client, body)
    assert response.status_code == 200, response.content
    assert WebhookEvent.objects.filter(status="ignored").count() == 1


# Before API version 2022-11-15 a PaymentIntent has ``charges`` and no ``latest_charge``.
# Sync must still list its refunds: an unanswered refund that Stripe made is found there,
# never sent again (once its idempotency key is pruned, that would refund twice).
def test_sync_with_old_api_shape_lists_refunds(fake_stripe: Any, stripe_provider: Any) -> None:
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe")
    payment = services.confirm_payment(payment, payment_method="pm_card_visa")
    assert payment.status == "succeeded"
    intent = fake_stripe.intents[payment.provider_payment_id]

    # a refund whose answer was lost (timeout after Stripe made it)
    fake_stripe.fail_next("refund", "timeout", after=True)
    with pytest.raises(ProviderUnavailable):
        services.refund_payment(payment, amount=400)
    assert len(fake_stripe.refunds) == 1
    # the same intent as an old API version renders it (``api_version`` option, or
    # an account pinned before 2022-11-15): ``charges`` instead of ``latest_charge``
    # (the fake reads intent["latest_charge"] itself, so the key stays, empty; the
    # adapter only asks intent.get("latest_charge"), absent and None are the same)
    charge = intent["latest_charge"]
    intent["latest_charge"] = None
    intent["charges"] = {"object": "list", "data": [{"id": charge, "object": "charge"}]}
    row = Refund.objects.get()
    assert (row.status, row.provider_refund_id) == ("pending", None)

    fake_stripe.answers.clear()  # the idempotency key was pruned (24 h later)
    services.sync_payment(payment)
    assert len(fake_stripe.refunds) == 1, "sync refunded the customer a second time"


# Stripe's ``warning_*`` dispute statuses are inquiries: no money is withdrawn, and a
# refund is the usual way to settle one.
def test_inquiry_does_not_block_a_refund(client: Any, fake_stripe: Any) -> None:
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe")
    payment = services.confirm_payment(payment, payment_method="pm_card_visa")
    inquiry = {
        "id": "dp_inq",
        "object": "dispute",
        "amount": 1000,
        "currency": "usd",
        "payment_intent": payment.provider_payment_id,
        "charge": "ch_1",
        "reason": "general",
        "status": "warning_needs_response",
        "is_charge_refundable": True,
    }
    assert post(client, event_body("charge.dispute.created", inquiry)).status_code == 200
    assert Dispute.objects.get().status == "inquiry"
    refund = services.refund_payment(payment)
    assert (refund.status, refund.amount) == ("succeeded", 1000)
