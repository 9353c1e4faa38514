"""What each operation does with each kind of provider failure: one ladder for all.

A reused idempotency key the provider rejects (``ProviderIdempotencyError``)
flags the payment for review, whatever the operation; an unknown outcome
(``ProviderUnavailable``) changes nothing and is settled by a sync.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate import services
from django_paygate.exceptions import ProviderIdempotencyError, ProviderUnavailable
from django_paygate.models import Refund, get_payment_model
from django_paygate.testing.fakes import make_authorized_payment, make_succeeded_payment

pytestmark = pytest.mark.django_db

OPERATIONS = {
    "capture_payment": (
        make_authorized_payment,
        lambda p: services.capture_payment(p),
        "authorized",
    ),
    "cancel_payment": (make_authorized_payment, lambda p: services.cancel_payment(p), "authorized"),
    "refund_payment": (make_succeeded_payment, lambda p: services.refund_payment(p), "succeeded"),
}


def reloaded(payment: Any) -> Any:
    return get_payment_model().objects.get(pk=payment.pk)


@pytest.mark.parametrize("method", sorted(OPERATIONS))
def test_a_rejected_idempotency_key_flags_the_payment(dummy: Any, method: str) -> None:
    make, operation, status = OPERATIONS[method]
    payment = make(amount=1000)
    dummy.fail_next(method, ProviderIdempotencyError("key reused", provider="dummy"))

    with pytest.raises(ProviderIdempotencyError):
        operation(payment)

    payment = reloaded(payment)
    assert payment.status == status
    assert payment.needs_review
    assert payment.review_code == "key_rejected"
    assert "key reused" in payment.review_reason


@pytest.mark.parametrize("method", sorted(OPERATIONS))
def test_an_unknown_outcome_changes_nothing_and_flags_nothing(dummy: Any, method: str) -> None:
    make, operation, status = OPERATIONS[method]
    payment = make(amount=1000)
    dummy.fail_next(method)

    with pytest.raises(ProviderUnavailable):
        operation(payment)

    payment = reloaded(payment)
    assert (payment.status, payment.needs_review) == (status, False)
    assert not Refund.objects.exclude(status="pending").exists()
