"""Stripe events that are not about our payments, and refund news on older API versions."""

from __future__ import annotations

import time
from typing import Any

import pytest

from django_paygate import services
from django_paygate.models import AbstractPayment, Refund, WebhookEvent, get_payment_model
from django_paygate.providers import get_provider
from tests.factories import PaymentFactory
from tests.providers.stripe.conftest import (
    MOCK_API,
    WEBHOOK_URL,
    FakeStripe,
    event_body,
    paygate_setting,
    sign,
)

pytestmark = pytest.mark.django_db

LIVE_KEYS = {"secret_key": "sk_live_paygateFAKE0123456789", "publishable_key": "pk_live_paygate0"}
#: The last API version whose ``charge.refunded`` has no refunds list and whose card
#: refunds send no ``refund.*`` event.
OLD_API = "2024-06-20"


def deliver(client: Any, body: bytes) -> Any:
    return client.post(
        WEBHOOK_URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
    )


def paid_intent(pid: str, payment: AbstractPayment, *, livemode: bool = False) -> dict[str, Any]:
    """A captured PaymentIntent whose metadata names ``payment``."""
    return {
        "id": pid,
        "object": "payment_intent",
        "amount": payment.amount,
        "amount_received": payment.amount,
        "currency": payment.currency.lower(),
        "status": "succeeded",
        "livemode": livemode,
        "metadata": {"paygate_payment_id": str(payment.pk)},
        "latest_charge": "ch_1",
        "last_payment_error": None,
        "next_action": None,
    }


def deliver_paid(
    client: Any, settings: Any, keys: dict[str, str], payment: AbstractPayment, *, livemode: bool
) -> Any:
    """``payment_intent.succeeded`` of the given mode, to a site with these Stripe keys."""
    settings.PAYGATE = paygate_setting(api_base=MOCK_API, **keys)
    get_provider("stripe")
    intent = paid_intent("pi_paid", payment, livemode=livemode)
    return deliver(client, event_body("payment_intent.succeeded", intent, livemode=livemode))


def reloaded(payment: AbstractPayment) -> Any:
    return get_payment_model().objects.get(pk=payment.pk)


# -- Objects of another mode or another account --------------------------------------


@pytest.mark.parametrize(
    ("keys", "event_livemode"),
    [(LIVE_KEYS, False), ({}, True)],
    ids=["test-event-to-live-site", "live-event-to-test-site"],
)
def test_an_event_of_the_other_mode_never_moves_a_payment(
    client: Any, settings: Any, keys: dict[str, str], event_livemode: bool
) -> None:
    # A live Connect endpoint also receives test events; a test PaymentIntent paid with a
    # test card may carry one of our payment ids in its metadata.
    payment = PaymentFactory(provider="stripe", provider_payment_id=None, amount=5000)

    response = deliver_paid(client, settings, keys, payment, livemode=event_livemode)

    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.IGNORED
    payment = reloaded(payment)
    assert (payment.status, payment.amount_captured, payment.provider_payment_id) == (
        "pending",
        0,
        None,
    )


@pytest.mark.parametrize(
    ("keys", "event_livemode"),
    [(LIVE_KEYS, True), ({}, False), ({"secret_key": "sk_of_no_known_mode"}, True)],
    ids=["live", "test", "key-of-no-known-mode"],
)
def test_an_event_of_the_keys_mode_is_applied(
    client: Any, settings: Any, keys: dict[str, str], event_livemode: bool
) -> None:
    payment = PaymentFactory(provider="stripe", provider_payment_id=None, amount=5000)

    deliver_paid(client, settings, keys, payment, livemode=event_livemode)

    payment = reloaded(payment)
    assert (payment.status, payment.amount_captured) == ("succeeded", 5000)


def test_an_event_of_a_connected_account_never_moves_a_payment(
    client: Any, stripe_provider: Any
) -> None:
    # The adapter creates PaymentIntents on the platform account only.
    payment = PaymentFactory(provider="stripe", provider_payment_id=None, amount=5000)
    intent = paid_intent("pi_connected", payment)

    deliver(client, event_body("payment_intent.succeeded", intent, account="acct_1Connected"))

    assert WebhookEvent.objects.get().status == WebhookEvent.Status.IGNORED
    assert reloaded(payment).status == "pending"


# -- Refund news on API versions before 2024-10-28 ------------------------------------


def refunded_through_the_api(fake_stripe: FakeStripe) -> tuple[Any, Refund]:
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe")
    payment = services.confirm_payment(payment, payment_method="pm_card_visa")
    refund = services.refund_payment(payment, 1000)
    assert (refund.status, reloaded(payment).amount_refunded) == ("succeeded", 1000)
    return payment, refund


def test_charge_refund_updated_reports_a_refund_that_failed_after_succeeding(
    client: Any, fake_stripe: FakeStripe
) -> None:
    # Before 2024-10-28, charge.refund.updated is the only news of a card refund's change.
    payment, refund = refunded_through_the_api(fake_stripe)
    stripe_refund = {**fake_stripe.refunds[str(refund.provider_refund_id)], "status": "failed"}

    response = deliver(
        client, event_body("charge.refund.updated", stripe_refund, api_version=OLD_API)
    )

    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    refund.refresh_from_db()
    payment = reloaded(payment)
    assert refund.status == "failed"
    assert payment.amount_refunded == 0
    assert payment.needs_review


def charge_refunded(pid: str, refunded: int, currency: str = "usd") -> dict[str, Any]:
    """A charge as ``charge.refunded`` carries it from API 2022-11-15: no refunds list."""
    return {
        "id": "ch_1",
        "object": "charge",
        "amount": 1000,
        "amount_captured": 1000,
        "amount_refunded": refunded,
        "refunded": refunded == 1000,
        "currency": currency,
        "payment_intent": pid,
        "metadata": {},
    }


def test_a_refund_made_in_the_dashboard_on_an_old_api_version_is_flagged_then_synced(
    client: Any, fake_stripe: FakeStripe
) -> None:
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe")
    payment = services.confirm_payment(payment, payment_method="pm_card_visa")
    pid = str(payment.provider_payment_id)
    fake_stripe.refunds["re_dashboard"] = {
        "id": "re_dashboard",
        "object": "refund",
        "amount": 400,
        "currency": "usd",
        "payment_intent": pid,
        "charge": "ch_1",
        "status": "succeeded",
        "metadata": {},
        "created": int(time.time()),
    }

    deliver(client, event_body("charge.refunded", charge_refunded(pid, 400), api_version=OLD_API))

    payment = reloaded(payment)
    assert payment.needs_review
    assert "400 refunded" in payment.review_reason
    assert payment.amount_refunded == 0, "a total with no refund id is never booked blindly"

    payment = services.sync_payment(payment)

    assert payment.amount_refunded == 400
    assert Refund.objects.get(payment=payment).provider_refund_id == "re_dashboard"


def test_our_own_refund_reported_as_a_total_is_not_flagged(
    client: Any, fake_stripe: FakeStripe
) -> None:
    payment, _ = refunded_through_the_api(fake_stripe)
    charge = charge_refunded(str(payment.provider_payment_id), 1000)

    deliver(client, event_body("charge.refunded", charge, api_version=OLD_API))

    payment = reloaded(payment)
    assert (payment.needs_review, payment.amount_refunded) == (False, 1000)


def test_a_pending_refund_of_ours_explains_the_total(client: Any, fake_stripe: FakeStripe) -> None:
    # The event can overtake the answer to our own refund call.
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe")
    payment = services.confirm_payment(payment, payment_method="pm_card_visa")
    Refund.objects.create(payment=payment, amount=700, currency="USD", status="pending")
    charge = charge_refunded(str(payment.provider_payment_id), 700)

    deliver(client, event_body("charge.refunded", charge, api_version=OLD_API))

    assert not reloaded(payment).needs_review


def test_on_current_api_versions_the_refund_events_carry_the_news(
    client: Any, fake_stripe: FakeStripe
) -> None:
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe")
    payment = services.confirm_payment(payment, payment_method="pm_card_visa")
    charge = charge_refunded(str(payment.provider_payment_id), 400)

    deliver(client, event_body("charge.refunded", charge))

    assert WebhookEvent.objects.get().status == WebhookEvent.Status.IGNORED
    assert not reloaded(payment).needs_review
