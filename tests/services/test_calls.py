"""``call_provider``: the one policy that says what a provider call's outcome means."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from django_paygate import services
from django_paygate.exceptions import (
    InvalidAmount,
    PaymentDeclined,
    ProviderError,
    ProviderIdempotencyError,
    ProviderRequestInProgress,
    ProviderUnavailable,
)
from django_paygate.models import get_payment_model
from django_paygate.providers.base import ProviderPayment
from django_paygate.services import payments
from django_paygate.services.calls import call_provider
from django_paygate.states import PaymentStatus
from django_paygate.testing.fakes import make_authorized_payment

pytestmark = pytest.mark.django_db


class Hooks:
    """Records which of ``call_provider``'s hooks ran, and with what."""

    def __init__(self) -> None:
        self.ran: list[Any] = []

    def refused(self, exc: Exception) -> None:
        self.ran.append(("refused", exc))

    def unsettled(self) -> None:
        self.ran.append("unsettled")

    def kwargs(self) -> dict[str, Any]:
        return {"refused": self.refused, "unsettled": self.unsettled}


def raising(exc: Exception) -> Any:
    def call() -> Any:
        raise exc

    return call


def test_an_answer_is_fitted_to_its_columns_and_no_hook_runs() -> None:
    payment = make_authorized_payment(amount=1000)
    hooks = Hooks()
    answer = ProviderPayment(
        provider_payment_id="pi_1", status=PaymentStatus.FAILED, failure_code="x" * 500
    )

    result = call_provider(payment, "capture", lambda: answer, **hooks.kwargs())

    assert (
        len(result.failure_code) == get_payment_model()._meta.get_field("failure_code").max_length
    )
    assert hooks.ran == []


def test_an_unknown_outcome_is_logged_unsettled_and_raised(caplog: Any) -> None:
    payment = make_authorized_payment(amount=1000)
    hooks = Hooks()
    exc = ProviderUnavailable("timed out", provider="dummy")

    with caplog.at_level(logging.WARNING, "django_paygate"), pytest.raises(ProviderUnavailable):
        call_provider(payment, "capture", raising(exc), **hooks.kwargs())

    assert hooks.ran == ["unsettled"]
    assert "outcome unknown" in caplog.text
    assert not get_payment_model().objects.get(pk=payment.pk).needs_review


def test_our_own_request_in_progress_answers_what_the_caller_chose() -> None:
    payment = make_authorized_payment(amount=1000)
    hooks = Hooks()
    busy = raising(ProviderRequestInProgress("in progress", provider="dummy"))

    assert call_provider(
        payment, "refund", busy, in_progress=lambda: "pending", **hooks.kwargs()
    ) == ("pending")
    assert hooks.ran == []
    with pytest.raises(ProviderRequestInProgress):  # without a choice, it is an unknown outcome
        call_provider(payment, "refund", busy, **hooks.kwargs())
    assert hooks.ran == ["unsettled"]


def test_a_rejected_key_flags_the_payment_then_runs_unsettled() -> None:
    payment = make_authorized_payment(amount=1000)
    hooks = Hooks()

    with pytest.raises(ProviderIdempotencyError):
        call_provider(
            payment, "capture", raising(ProviderIdempotencyError("reused")), **hooks.kwargs()
        )

    flagged = get_payment_model().objects.get(pk=payment.pk)
    assert (flagged.needs_review, flagged.review_code) == (True, "key_rejected")
    assert "capture: reused" in flagged.review_reason
    assert hooks.ran == ["unsettled"]


@pytest.mark.parametrize(
    "exc",
    [ProviderError("no such card"), PaymentDeclined("declined"), InvalidAmount("too small")],
    ids=["provider refusal", "decline", "adapter refusal"],
)
def test_a_refusal_goes_to_refused_with_the_error(exc: Exception) -> None:
    payment = make_authorized_payment(amount=1000)
    hooks = Hooks()

    with pytest.raises(type(exc)):
        call_provider(payment, "capture", raising(exc), **hooks.kwargs())

    assert hooks.ran == [("refused", exc)]


def test_what_is_not_ours_passes_untouched() -> None:
    payment = make_authorized_payment(amount=1000)
    hooks = Hooks()

    with pytest.raises(KeyError):
        call_provider(payment, "capture", raising(KeyError("bug")), **hooks.kwargs())

    assert hooks.ran == []


def test_a_create_the_adapter_refuses_fails_the_payment_and_gives_up_its_claim(dummy: Any) -> None:
    dummy.fail_next("create_payment", InvalidAmount("below this provider's minimum"))

    with pytest.raises(InvalidAmount):
        services.create_payment(amount=1000, currency="USD", provider="dummy")

    payment = get_payment_model().objects.get()
    assert payment.status == "failed"
    assert payment.failure_message == payments.NOT_STARTED_MESSAGE
    assert payment.creating_until is None


def test_a_create_with_an_unknown_outcome_stays_pending_and_gives_up_its_claim(dummy: Any) -> None:
    dummy.fail_next("create_payment")

    with pytest.raises(ProviderUnavailable):
        services.create_payment(amount=1000, currency="USD", provider="dummy")

    payment = get_payment_model().objects.get()
    assert (payment.status, payment.creating_until) == ("pending", None)
