"""Stripe's 409 "another in-progress request using this Idempotent Key".

A customer's sync re-sends an unanswered refund under its own key while the
staff's request that made it is still running: Stripe answers 409. Nothing is
wrong and nothing is known yet; the refund stays pending (and reserved) for
the next sync or its webhook, and nobody is asked to review anything.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from django_paygate import services
from django_paygate.exceptions import ProviderRequestInProgress, ProviderUnavailable
from django_paygate.models import Refund, get_payment_model
from tests.factories import PaymentFactory, RefundFactory
from tests.providers.stripe.conftest import FakeStripe

pytestmark = pytest.mark.django_db(transaction=True)


def reloaded(payment: Any) -> Any:
    return get_payment_model().objects.get(pk=payment.pk)


@pytest.fixture
def paid(fake_stripe: FakeStripe) -> Any:
    intent = fake_stripe.add_intent(
        status="succeeded", amount_received=1000, latest_charge="ch_paid"
    )
    return PaymentFactory(
        provider="stripe", provider_payment_id=intent["id"], amount=1000, status="succeeded"
    )


def refund_posts(fake_stripe: FakeStripe) -> list[str]:
    return [
        c.request.headers["Idempotency-Key"]
        for c in fake_stripe.calls
        if c.request.method == "POST" and c.request.url.endswith("/v1/refunds")
    ]


def test_a_sync_racing_the_staff_refund_leaves_it_pending(
    fake_stripe: FakeStripe, paid: Any
) -> None:
    # The staff's refund_payment wrote its pending refund and is waiting for Stripe.
    staff_refund = RefundFactory(payment=paid, amount=300, idempotency_key="paygate-refund-k1")
    fake_stripe.fail_next("refund", "in_progress")

    synced = services.sync_payment(paid)  # the customer's status page

    assert refund_posts(fake_stripe) == ["paygate-refund-k1"]
    staff_refund.refresh_from_db()
    assert (staff_refund.status, staff_refund.provider_refund_id) == ("pending", None)
    assert (synced.status, synced.needs_review) == ("succeeded", False)
    assert services.refundable_amount(synced) == 700  # still reserved

    settled = services.sync_payment(paid)  # the next sync gets Stripe's answer

    assert (settled.status, settled.amount_refunded) == ("partially_refunded", 300)
    assert Refund.objects.get().status == "succeeded"
    assert not settled.needs_review


def test_the_staff_refund_answered_in_progress_is_returned_pending(
    fake_stripe: FakeStripe, paid: Any
) -> None:
    fake_stripe.fail_next("refund", "in_progress")  # the customer's sync got there first

    refund = services.refund_payment(paid, 300)

    assert (refund.status, refund.amount) == ("pending", 300)
    assert not reloaded(paid).needs_review


def test_in_progress_is_an_unknown_outcome_for_capture(
    fake_stripe: FakeStripe, stripe_provider: Any
) -> None:
    intent = fake_stripe.add_intent(status="requires_capture", latest_charge="ch_auth")
    payment = PaymentFactory(
        provider="stripe", provider_payment_id=intent["id"], amount=1000, status="authorized"
    )
    fake_stripe.fail_next("capture", "in_progress")

    with pytest.raises(ProviderRequestInProgress) as caught:
        services.capture_payment(payment)

    assert isinstance(caught.value, ProviderUnavailable)  # safe to retry with the same key
    payment = reloaded(payment)
    assert (payment.status, payment.needs_review) == ("authorized", False)


@pytest.mark.locking
@pytest.mark.parametrize("round_", range(3))
def test_a_customer_sync_racing_a_staff_refund_refunds_once(
    fake_stripe: FakeStripe, paid: Any, round_: int
) -> None:
    from tests.providers.stripe.test_concurrency import run_together

    # Each refund is held at "Stripe" until a second request with its key arrives.
    fake_stripe.hold_refunds = threading.Event()

    def customer() -> Any:
        for _ in range(500):
            synced = services.sync_payment(paid)
            if fake_stripe.in_progress_answers or synced.amount_refunded:
                return synced
        return synced

    staff, synced = run_together(lambda: services.refund_payment(paid, 300), customer)

    assert not isinstance(staff, Exception), staff
    assert not isinstance(synced, Exception), synced
    assert fake_stripe.in_progress_answers == 1  # the race did happen
    assert len(fake_stripe.refunds) == 1  # one refund at Stripe
    settled = services.sync_payment(paid)
    assert (settled.status, settled.amount_refunded) == ("partially_refunded", 300)
    assert not settled.needs_review
    assert list(Refund.objects.values_list("amount", "status")) == [(300, "succeeded")]
