"""The payment model lookup; the fitting of a provider's texts to their columns."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.db import connection

from django_paygate.models import Payment, get_payment_model
from django_paygate.services import ledger
from django_paygate.states import DisputeStatus, PaymentStatus, RefundStatus
from tests.testapp.models import ShopPayment


def test_the_payment_model_follows_its_setting(settings: Any) -> None:
    original = get_payment_model()
    assert get_payment_model() is original  # looked up once, then remembered
    other = Payment if original is ShopPayment else ShopPayment

    settings.PAYGATE_PAYMENT_MODEL = f"{other._meta.app_label}.{other.__name__}"
    assert get_payment_model() is other

    settings.PAYGATE_PAYMENT_MODEL = f"{original._meta.app_label}.{original.__name__}"
    assert get_payment_model() is original


def test_the_webhook_lookup_follows_the_payment_model(settings: Any) -> None:
    from django_paygate.providers.base import ProviderEvent, ProviderPayment

    payment = ProviderPayment(provider_payment_id="pi_1", status=None)
    event = ProviderEvent(event_id="evt_1", type="payment.succeeded", payment=payment)
    original = get_payment_model()
    other = Payment if original is ShopPayment else ShopPayment

    for model in (original, other, original):
        settings.PAYGATE_PAYMENT_MODEL = f"{model._meta.app_label}.{model.__name__}"
        for lock in (False, True):
            lookup = ledger.payment_lookup("dummy", event, lock=lock)
            assert lookup is not None
            assert connection.ops.quote_name(model._meta.db_table) in lookup[0]


# -- the core fits a provider's texts to their columns ------------------------------------


def _limit(model: Any, name: str) -> int:
    limit = model._meta.get_field(name).max_length
    assert isinstance(limit, int)
    return limit


def test_fit_answer_cuts_a_payments_texts_and_its_refunds_but_no_id() -> None:
    from django_paygate.models import FAILURE_MESSAGE_LENGTH, Refund, fit_answer
    from django_paygate.providers.base import ProviderPayment, ProviderRefund

    long_id = "pi_" + "9" * 400  # an id is an identity: never cut
    refund = ProviderRefund(
        provider_refund_id="re_" + "8" * 400,
        status=RefundStatus.FAILED,
        amount=100,
        currency="USD",
        provider_payment_id=long_id,
        failure_reason="r" * 2000,
    )
    answer = ProviderPayment(
        provider_payment_id=long_id,
        status=PaymentStatus.FAILED,
        failure_code="c" * 500,
        failure_message="m" * 5000,
        refunds=(refund, replace(refund, provider_refund_id="re_2", failure_reason="short")),
        our_payment_id="o" * 400,
    )
    fitted = fit_answer(answer)
    assert fitted.failure_code == "c" * _limit(get_payment_model(), "failure_code")
    assert fitted.failure_message == "m" * FAILURE_MESSAGE_LENGTH
    assert fitted.provider_payment_id == long_id
    assert fitted.our_payment_id == "o" * 400
    first, second = fitted.refunds
    assert first.failure_reason == "r" * _limit(Refund, "failure_reason")
    assert (first.provider_refund_id, first.provider_payment_id) == ("re_" + "8" * 400, long_id)
    assert second == replace(refund, provider_refund_id="re_2", failure_reason="short")
    assert answer.failure_code == "c" * 500  # the answer itself is left as it was


def test_fit_answer_leaves_what_fits_as_it_is() -> None:
    from django_paygate.models import fit_answer
    from django_paygate.providers.base import ProviderPayment

    answer = ProviderPayment(
        provider_payment_id="pi_1",
        status=PaymentStatus.FAILED,
        failure_code="card_declined",
        failure_message="The card was declined.",
    )
    assert fit_answer(answer) == answer
    assert fit_answer(None) is None


def test_fit_answer_cuts_an_events_type_and_its_parts() -> None:
    from django_paygate.models import Dispute, Refund, WebhookEvent, fit_answer
    from django_paygate.providers.base import (
        ProviderDispute,
        ProviderEvent,
        ProviderPayment,
        ProviderRefund,
    )

    event = ProviderEvent(
        event_id="evt_" + "1" * 300,  # refused later by the inbox, never cut
        type="payment." + "t" * 300,
        payment=ProviderPayment(provider_payment_id="pi_1", status=None, failure_code="c" * 300),
        refund=ProviderRefund(
            provider_refund_id="re_1",
            status=RefundStatus.FAILED,
            amount=1,
            currency="USD",
            failure_reason="r" * 300,
        ),
        dispute=ProviderDispute(
            provider_dispute_id="dp_" + "2" * 300,
            status=DisputeStatus.OPEN,
            amount=1,
            currency="USD",
            reason="why" * 200,
        ),
    )
    fitted = fit_answer(event)
    assert fitted.event_id == "evt_" + "1" * 300
    assert fitted.type == event.type[: _limit(WebhookEvent, "type")]
    assert fitted.payment.failure_code == "c" * _limit(get_payment_model(), "failure_code")
    assert fitted.refund.failure_reason == "r" * _limit(Refund, "failure_reason")
    assert fitted.dispute.reason == ("why" * 200)[: _limit(Dispute, "reason")]
    assert fitted.dispute.provider_dispute_id == "dp_" + "2" * 300
