"""The refund ledger: what may still be refunded, whatever happened before.

refundable = captured - refunded - pending refunds - what disputes withdrew, under
the payment's lock; refunds that failed or were refused hold nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_paygate import services, webhooks
from django_paygate.exceptions import (
    InvalidAmount,
    InvalidTransition,
    ProviderError,
    RefundExceedsCaptured,
)
from django_paygate.models import Dispute, Refund, get_payment_model
from django_paygate.providers.dummy import CARD_SUCCEEDS
from tests.factories import PaymentFactory
from tests.webhooks.events import dispute_event, refund_event

pytestmark = pytest.mark.django_db(transaction=True)


def _paid(amount: int = 1000) -> Any:
    payment = services.create_payment(amount=amount, currency="USD")
    return services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)


def _reload(payment: Any) -> Any:
    return get_payment_model().objects.get(pk=payment.pk)


def _deliver(delivery: tuple[bytes, dict[str, str]]) -> None:
    body, headers = delivery
    assert webhooks.receive_webhook("dummy", body, headers).status_code == 200


@pytest.mark.parametrize("status", ["open", "under_review", "lost"])
def test_money_a_dispute_withdrew_cannot_be_refunded_again(dummy, status):
    payment = _paid(1000)
    _deliver(dispute_event(dummy, payment, "dp_1", status, amount=600))
    with pytest.raises(RefundExceedsCaptured, match=r"\$4\.00 is left"):
        services.refund_payment(payment, amount=401)
    assert services.refund_payment(payment).amount == 400  # "all that is left"


@pytest.mark.parametrize(
    "history", [("inquiry",), ("open", "won"), ("open", "closed"), ("inquiry", "closed")]
)
def test_a_dispute_that_took_nothing_leaves_everything_refundable(dummy, history):
    payment = _paid(1000)
    for status in history:
        _deliver(dispute_event(dummy, payment, "dp_1", status, amount=600))
    assert services.refund_payment(payment).amount == 1000


def test_a_late_inquiry_event_does_not_undo_a_chargeback(dummy):
    payment = _paid(1000)
    _deliver(dispute_event(dummy, payment, "dp_1", "inquiry", amount=600))
    _deliver(dispute_event(dummy, payment, "dp_1", "open", amount=600))  # escalated
    _deliver(dispute_event(dummy, payment, "dp_1", "inquiry", amount=600))  # arrives late
    assert Dispute.objects.get().status == "open"
    assert services.refund_payment(payment).amount == 400


@pytest.mark.parametrize(
    "error",
    [
        InvalidAmount("Below the provider's minimum.", provider="dummy"),
        InvalidTransition("No captured payment on this order.", provider="dummy"),
    ],
    ids=["InvalidAmount", "InvalidTransition"],
)
def test_a_refund_refused_before_the_call_holds_nothing(dummy, error):
    payment = _paid(1000)
    dummy.fail_next("refund_payment", error)
    with pytest.raises(type(error)):
        services.refund_payment(payment, amount=800)
    assert not [call for call, _ in dummy.calls if call == "refund_payment"]
    refund = Refund.objects.get()
    assert refund.status == "failed"
    assert _reload(payment).amount_refunded == 0
    assert services.refund_payment(payment).amount == 1000


def test_a_refund_reported_succeeded_after_we_recorded_it_failed_is_flagged(dummy):
    payment = _paid(1000)
    dummy.sent_events.clear()
    # The provider made the refund, then answered with an error.
    dummy.fail_next("refund_payment", ProviderError("conflict", provider="dummy"), after=True)
    with pytest.raises(ProviderError):
        services.refund_payment(payment, amount=400)
    assert Refund.objects.get().status == "failed"
    body, headers = dummy.sent_events[-1]  # its refund.succeeded
    assert webhooks.receive_webhook("dummy", body, headers).status_code == 200
    payment = _reload(payment)
    assert payment.needs_review is True
    assert "reported succeeded after it was failed" in payment.review_reason
    assert payment.amount_refunded == 0  # never counted blindly


@pytest.mark.parametrize(
    ("order", "status"),
    [
        # The status follows what is really refunded: nothing, in either order.
        ("succeeded, failed", "succeeded"),
        ("failed, succeeded", "succeeded"),
    ],
)
def test_a_provider_refund_that_failed_ends_refunding_nothing_in_any_order(dummy, order, status):
    payment = PaymentFactory(status="succeeded")
    succeeded = refund_event(dummy, payment, "re_dash", "succeeded", 400)
    failed = refund_event(dummy, payment, "re_dash", "failed", 400)
    for delivery in [succeeded, failed] if order == "succeeded, failed" else [failed, succeeded]:
        _deliver(delivery)
    payment = _reload(payment)
    assert (payment.status, payment.amount_refunded) == (status, 0)
    assert payment.needs_review is True  # money went out and came back, or the reverse
    assert list(Refund.objects.values_list("provider_refund_id", "status")) == [
        ("re_dash", "failed")
    ]


def test_a_failed_provider_refund_then_its_late_pending_event_holds_nothing(dummy):
    payment = _paid(1000)
    for status in ("failed", "pending"):  # refund.failed overtakes refund.created
        _deliver(refund_event(dummy, payment, "re_dash2", status, 600))
    assert Refund.objects.get().status == "failed"
    assert services.refund_payment(payment).amount == 1000


def test_a_refund_sent_a_moment_ago_on_an_old_payment_is_not_stuck(dummy, monkeypatch):
    payment = _paid(1000)
    long_ago = timezone.now() - timedelta(days=1)
    get_payment_model().objects.filter(pk=payment.pk).update(updated_at=long_ago)
    seen: dict[str, list[Any]] = {}
    send = type(dummy).refund_payment

    def slow(self, payment, refund, *, idempotency_key):
        seen["stuck"] = list(services.find_stuck_payments().values_list("pk", flat=True))
        return send(self, payment, refund, idempotency_key=idempotency_key)

    monkeypatch.setattr(type(dummy), "refund_payment", slow)
    services.refund_payment(payment, amount=100)
    assert payment.pk not in seen["stuck"]

    # The same refund, unanswered for longer than the threshold, is stuck.
    refund = Refund.objects.get()
    Refund.objects.filter(pk=refund.pk).update(status="pending", updated_at=long_ago)
    assert payment.pk in set(services.find_stuck_payments().values_list("pk", flat=True))


def test_a_payment_canceled_while_the_provider_creates_it_gets_no_checkout_data(dummy, monkeypatch):
    create = type(dummy).create_payment

    def create_then_cancel(self, payment, *, idempotency_key):
        answer = create(self, payment, idempotency_key=idempotency_key)
        assert services.cancel_payment(payment).status == "canceled"  # staff, meanwhile
        return answer

    monkeypatch.setattr(type(dummy), "create_payment", create_then_cancel)
    payment = services.create_payment(amount=1000, currency="USD")
    assert payment.status == "canceled"
    assert payment.client_data is None
