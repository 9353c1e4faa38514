"""A full refund that fails afterwards gives the money back: the payment is refundable again.

Stripe lets a refund fail after it succeeded (a closed card account); the
charge's ``amount_refunded`` goes back down while its ``refunded`` flag stays.
The payment is then not finally refunded: its status follows what is really
refunded, so the API, a later dashboard refund's webhook and a sync agree.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from django_paygate import services
from django_paygate.models import Notification, Refund, WebhookEvent, get_payment_model
from tests.factories import PaymentFactory, UserFactory
from tests.providers.stripe.conftest import WEBHOOK_URL, FakeStripe, event_body, sign

pytestmark = pytest.mark.django_db(transaction=True)


def reloaded(payment: Any) -> Any:
    return get_payment_model().objects.get(pk=payment.pk)


def post_event(client: Any, event_type: str, obj: dict[str, Any]) -> Any:
    body = event_body(event_type, obj)
    return client.post(
        WEBHOOK_URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
    )


@pytest.fixture
def refunded(fake_stripe: FakeStripe) -> tuple[Any, dict[str, Any]]:
    """A 10.00 payment at "Stripe", refunded in full through the services."""
    intent = fake_stripe.add_intent(
        status="succeeded", amount_received=1000, latest_charge="ch_paid"
    )
    payment = PaymentFactory(
        provider="stripe", provider_payment_id=intent["id"], amount=1000, status="succeeded"
    )
    refund = services.refund_payment(payment)
    assert (reloaded(payment).status, refund.status) == ("refunded", "succeeded")
    return payment, fake_stripe.refunds[str(refund.provider_refund_id)]


def failed(refund: dict[str, Any]) -> dict[str, Any]:
    refund.update(status="failed", failure_reason="expired_or_canceled_card")
    return refund


def dashboard_refund(fake_stripe: FakeStripe, payment: Any, amount: int) -> dict[str, Any]:
    """A refund staff made in Stripe's dashboard: it carries none of our metadata."""
    rid = fake_stripe.new_id("re")
    refund = {
        "id": rid,
        "object": "refund",
        "amount": amount,
        "currency": "usd",
        "payment_intent": payment.provider_payment_id,
        "charge": "ch_paid",
        "status": "succeeded",
        "metadata": {},
        "created": int(time.time()) + 100,
    }
    fake_stripe.refunds[rid] = refund
    return refund


def test_a_failed_full_refund_makes_the_payment_succeeded_again(
    client: Any, refunded: tuple[Any, dict[str, Any]], signal_spy: Any
) -> None:
    payment, refund = refunded

    response = post_event(client, "refund.failed", failed(refund))

    assert response.status_code == 200
    payment = reloaded(payment)
    assert (payment.status, payment.amount_refunded) == ("succeeded", 0)
    assert payment.needs_review  # the customer still waits for their money
    assert payment.review_code == "refund_reversed"
    assert Refund.objects.get().status == "failed"
    assert signal_spy.count("refund_failed") == 1
    # Not a new payment: the customer is told of the failed refund, not of a success.
    kinds = list(Notification.objects.values_list("kind", flat=True))
    assert Notification.Kind.PAYMENT_SUCCEEDED not in kinds
    assert services.refundable_amount(payment) == 1000


def test_after_a_failed_full_refund_a_dashboard_refund_is_recorded_by_its_webhook(
    client: Any, fake_stripe: FakeStripe, refunded: tuple[Any, dict[str, Any]]
) -> None:
    payment, refund = refunded
    assert post_event(client, "refund.failed", failed(refund)).status_code == 200

    again = dashboard_refund(fake_stripe, payment, 300)
    responses = [post_event(client, "refund.created", again) for _ in range(2)]

    assert [r.status_code for r in responses] == [200, 200]
    assert not WebhookEvent.objects.filter(status="failed").exists()
    payment = reloaded(payment)
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 300)
    assert Refund.objects.get(provider_refund_id=again["id"]).status == "succeeded"


def test_a_sync_records_the_failure_and_a_dashboard_refund(
    fake_stripe: FakeStripe, refunded: tuple[Any, dict[str, Any]]
) -> None:
    payment, refund = refunded
    failed(refund)
    again = dashboard_refund(fake_stripe, payment, 300)

    synced = services.sync_payment(payment)

    assert (synced.status, synced.amount_refunded) == ("partially_refunded", 300)
    assert Refund.objects.get(provider_refund_id=refund["id"]).status == "failed"
    assert Refund.objects.get(provider_refund_id=again["id"]).status == "succeeded"


def test_the_api_refunds_again_after_a_failed_full_refund(
    client: Any, refunded: tuple[Any, dict[str, Any]]
) -> None:
    payment, refund = refunded
    assert post_event(client, "refund.failed", failed(refund)).status_code == 200
    staff = UserFactory(is_staff=True)
    staff.user_permissions.add(
        Permission.objects.get(codename="refund_payment", content_type__app_label="paygate")
    )
    client.force_login(staff)

    response = client.post(
        reverse("paygate:process_refund"),
        json.dumps({"payment_id": str(payment.pk), "amount": 300}),
        content_type="application/json",
    )

    assert response.status_code == 201, response.content
    payment = reloaded(payment)
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 300)


def test_a_failed_partial_refund_goes_back_to_what_is_really_refunded(
    client: Any, fake_stripe: FakeStripe
) -> None:
    intent = fake_stripe.add_intent(
        status="succeeded", amount_received=1000, latest_charge="ch_paid"
    )
    payment = PaymentFactory(
        provider="stripe", provider_payment_id=intent["id"], amount=1000, status="succeeded"
    )
    first = services.refund_payment(payment, 400)
    services.refund_payment(payment, 600)
    assert reloaded(payment).status == "refunded"

    response = post_event(
        client, "refund.failed", failed(fake_stripe.refunds[str(first.provider_refund_id)])
    )

    assert response.status_code == 200
    payment = reloaded(payment)
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 600)
