"""Before 2025-03-31.basil, releasing an authorization shows up as a refund.

On those API versions a partial capture creates a Refund of the released rest
(capturing 6.00 of 10.00 "refunds" 4.00), listed with the PaymentIntent's
refunds and counted in the charge's ``amount_refunded``; canceling an
authorization creates a Refund of all of it. No money went back to the
customer: nothing is booked, nobody is emailed, nothing is flagged.
(https://docs.stripe.com/changelog/basil/2025-03-31/remove-refund-from-partial-capture-and-payment-cancellation-flow)
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from django_paygate import services
from django_paygate.models import Notification, Refund, get_payment_model
from tests.providers.stripe.conftest import (
    MOCK_API,
    WEBHOOK_URL,
    FakeStripe,
    event_body,
    sign,
)

pytestmark = pytest.mark.django_db(transaction=True)

PRE_BASIL = "2024-06-20"


@pytest.fixture
def stripe_options() -> dict[str, Any]:
    return {"api_base": MOCK_API, "max_network_retries": 0, "timeout": 5, "api_version": PRE_BASIL}


@pytest.fixture
def stripe(fake_stripe: FakeStripe) -> FakeStripe:
    fake_stripe.releases_as_refunds = True
    return fake_stripe


def reloaded(payment: Any) -> Any:
    return get_payment_model().objects.get(pk=payment.pk)


def authorized() -> Any:
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe", capture=False)
    payment = services.confirm_payment(payment, payment_method="pm_card_visa")
    assert payment.status == "authorized"
    return payment


def partially_captured(stripe: FakeStripe) -> Any:
    payment = services.capture_payment(authorized(), 600)
    assert (payment.status, payment.amount_captured) == ("succeeded", 600)
    assert [r["amount"] for r in stripe.refunds.values()] == [400]  # Stripe's release
    return payment


def assert_nothing_refunded(payment: Any, status: str) -> None:
    payment = reloaded(payment)
    assert (payment.status, payment.amount_refunded) == (status, 0)
    assert not payment.needs_review, payment.review_reason
    assert not Refund.objects.exists()
    assert not Notification.objects.filter(kind="refund_succeeded").exists()


def charge_of(stripe: FakeStripe, payment: Any, *, with_refunds: bool) -> dict[str, Any]:
    charge = dict(stripe.charges[payment.provider_data["latest_charge"]])
    if with_refunds:
        data = [r for r in stripe.refunds.values() if r["charge"] == charge["id"]]
        charge["refunds"] = {"object": "list", "data": data, "has_more": False}
    return charge


def post_event(client: Any, event_type: str, obj: dict[str, Any], api_version: str) -> Any:
    body = event_body(event_type, obj, api_version=api_version)
    return client.post(
        WEBHOOK_URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
    )


def test_a_sync_after_a_partial_capture_books_no_refund(stripe: FakeStripe) -> None:
    payment = partially_captured(stripe)

    synced = services.sync_payment(payment)

    assert_nothing_refunded(synced, "succeeded")
    assert services.refundable_amount(synced) == 600
    refund = services.refund_payment(synced)  # all of what was captured can go back
    assert (refund.amount, reloaded(payment).status) == (600, "refunded")


def test_a_sync_still_books_a_real_refund_after_a_partial_capture(stripe: FakeStripe) -> None:
    payment = partially_captured(stripe)
    rid = stripe.new_id("re")
    stripe.refunds[rid] = {  # made in the dashboard, later
        "id": rid,
        "object": "refund",
        "amount": 200,
        "currency": "usd",
        "payment_intent": payment.provider_payment_id,
        "charge": payment.provider_data["latest_charge"],
        "status": "succeeded",
        "reason": "requested_by_customer",
        "metadata": {},
        "created": int(time.time()) + 1000,
    }

    synced = services.sync_payment(payment)

    assert (synced.status, synced.amount_refunded) == ("partially_refunded", 200)
    assert list(Refund.objects.values_list("provider_refund_id", "amount")) == [(rid, 200)]


@pytest.mark.parametrize(
    ("api_version", "with_refunds"),
    [
        ("2022-08-01", True),  # the charge lists its refunds
        ("2023-10-16", False),  # only the charge's amount_refunded
        ("2024-12-18.acacia", False),  # refund.* events carry refunds
    ],
)
def test_charge_refunded_after_a_partial_capture_books_nothing(
    client: Any, stripe: FakeStripe, api_version: str, with_refunds: bool
) -> None:
    payment = partially_captured(stripe)
    charge = charge_of(stripe, payment, with_refunds=with_refunds)
    assert (charge["amount_captured"], charge["amount_refunded"]) == (600, 400)

    response = post_event(client, "charge.refunded", charge, api_version)

    assert response.status_code == 200
    assert_nothing_refunded(payment, "succeeded")


def test_charge_refunded_counts_only_real_refunds_of_a_partial_capture(
    client: Any, stripe: FakeStripe
) -> None:
    payment = partially_captured(stripe)
    services.refund_payment(payment, 100)
    charge = charge_of(stripe, payment, with_refunds=False)
    assert charge["amount_refunded"] == 500  # 400 released + 100 refunded

    response = post_event(client, "charge.refunded", charge, "2023-10-16")

    assert response.status_code == 200
    payment = reloaded(payment)
    assert (payment.amount_refunded, payment.needs_review) == (100, False)


def test_the_release_refund_updated_is_not_a_refund(client: Any, stripe: FakeStripe) -> None:
    payment = partially_captured(stripe)
    (release,) = stripe.refunds.values()

    response = post_event(client, "charge.refund.updated", release, PRE_BASIL)

    assert response.status_code == 200
    assert_nothing_refunded(payment, "succeeded")


def test_a_canceled_authorization_books_nothing(client: Any, stripe: FakeStripe) -> None:
    payment = services.cancel_payment(authorized())
    assert payment.status == "canceled"
    assert [r["amount"] for r in stripe.refunds.values()] == [1000]  # Stripe's release
    charge = charge_of(stripe, payment, with_refunds=True)
    charge.update(amount_captured=None, captured=False)  # as Stripe sent it before basil

    response = post_event(client, "charge.refunded", charge, "2022-08-01")
    synced = services.sync_payment(payment)

    assert response.status_code == 200
    assert synced.status == "canceled"
    assert_nothing_refunded(payment, "canceled")
