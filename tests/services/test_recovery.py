"""Lost answers and retries: the same provider object, the same money, once.

A provider call can succeed while its answer is lost (a timeout after the
provider acted). What repairs it, ``paygate_sync`` or the caller's retry with
its key, must end where the provider is, without acting twice.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command

from django_paygate import services
from django_paygate.exceptions import IdempotencyConflict, ProviderUnavailable
from django_paygate.models import Refund, get_payment_model
from django_paygate.testing.fakes import make_authorized_payment, make_succeeded_payment
from django_paygate.testing.webhooks import post_webhook

pytestmark = pytest.mark.django_db


def reloaded(payment: Any) -> Any:
    return get_payment_model().objects.get(pk=payment.pk)


def remote_refunded(dummy: Any, payment: Any) -> int:
    """What the dummy provider gave back for ``payment``."""
    remote = dummy._remote[reloaded(payment).provider_payment_id]
    return sum(refund.amount for refund in remote.refunds.values())


# -- paygate_sync settles an authorization whose capture or cancel lost its answer ------


def test_a_capture_whose_answer_was_lost_is_settled_by_paygate_sync(dummy: Any) -> None:
    payment = make_authorized_payment(amount=1000)
    dummy.fail_next("capture_payment", after=True)
    with pytest.raises(ProviderUnavailable):
        services.capture_payment(payment, amount=600)
    assert reloaded(payment).status == "authorized"

    call_command("paygate_sync", older_than=0, stdout=None)

    payment = reloaded(payment)
    assert (payment.status, payment.amount_captured) == ("succeeded", 600)


def test_a_cancel_whose_answer_was_lost_is_settled_by_paygate_sync(dummy: Any) -> None:
    payment = make_authorized_payment(amount=1000)
    dummy.fail_next("cancel_payment", after=True)
    with pytest.raises(ProviderUnavailable):
        services.cancel_payment(payment)

    call_command("paygate_sync", older_than=0, stdout=None)

    assert reloaded(payment).status == "canceled"


def test_held_authorizations_come_after_payments_in_flight(dummy: Any) -> None:
    held = make_authorized_payment(amount=1000)
    in_flight = services.create_payment(amount=500, currency="USD")
    get_payment_model().objects.filter(pk=in_flight.pk).update(updated_at=held.updated_at)

    stuck = list(services.find_stuck_payments(older_than_seconds=0))

    assert [p.pk for p in stuck] == [in_flight.pk, held.pk]


def test_a_held_authorization_the_provider_cannot_be_asked_about_is_not_flagged(
    dummy: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PAYGATE = {**settings.PAYGATE, "SYNC_REVIEW_AFTER": 0}
    payment = make_authorized_payment(amount=1000)

    def unreachable(payment: Any) -> Any:
        raise ProviderUnavailable("timed out")

    monkeypatch.setattr(dummy, "fetch_payment", unreachable)

    outcomes = list(services.sync_stuck_payments(older_than_seconds=0))

    assert [o.error != "" for o in outcomes] == [True]
    assert not reloaded(payment).needs_review


# -- a refund retried with its key ------------------------------------------------------


def test_a_refund_retried_with_its_key_after_a_timeout_refunds_once(dummy: Any) -> None:
    payment = make_succeeded_payment(amount=1000)
    dummy.fail_next("refund_payment", after=True)
    with pytest.raises(ProviderUnavailable):
        services.refund_payment(payment, 300, idempotency_key="ticket-81")

    again = services.refund_payment(payment, 300, idempotency_key="ticket-81")

    assert again.replayed
    assert (again.status, Refund.objects.count()) == ("succeeded", 1)
    assert remote_refunded(dummy, payment) == 300
    assert reloaded(payment).amount_refunded == 300
    call_command("paygate_sync", older_than=0, stdout=None)
    assert remote_refunded(dummy, payment) == 300


def test_a_refund_retried_with_its_key_after_it_succeeded_is_returned_as_it_is(
    dummy: Any,
) -> None:
    payment = make_succeeded_payment(amount=1000)
    first = services.refund_payment(payment, idempotency_key="ticket-82")

    again = services.refund_payment(payment, idempotency_key="ticket-82")

    assert (again.pk, again.replayed, again.amount) == (first.pk, True, 1000)
    assert remote_refunded(dummy, payment) == 1000
    refund_calls = [key for method, key in dummy.calls if method == "refund_payment"]
    assert len(refund_calls) == 1


def test_a_refund_key_with_another_amount_is_a_conflict(dummy: Any) -> None:
    payment = make_succeeded_payment(amount=1000)
    services.refund_payment(payment, 300, idempotency_key="ticket-83")

    with pytest.raises(IdempotencyConflict):
        services.refund_payment(payment, 400, idempotency_key="ticket-83")

    assert reloaded(payment).amount_refunded == 300


def test_a_refund_key_is_scoped_to_its_payment(dummy: Any) -> None:
    one, other = make_succeeded_payment(amount=1000), make_succeeded_payment(amount=1000)

    services.refund_payment(one, 300, idempotency_key="same")
    services.refund_payment(other, 300, idempotency_key="same")

    assert (reloaded(one).amount_refunded, reloaded(other).amount_refunded) == (300, 300)


# -- an update that does not say how much was captured ----------------------------------


def test_a_succeeded_update_without_an_amount_never_raises_a_partial_capture(
    dummy: Any, client: Any
) -> None:
    payment = make_authorized_payment(amount=1000)
    services.capture_payment(payment, amount=600)
    body, headers = dummy.build_event(
        "payment.succeeded",
        {
            "payment": {
                "id": reloaded(payment).provider_payment_id,
                "amount": 1000,
                "currency": "USD",
            },
            "payment_id": str(payment.pk),
        },
    )

    response = post_webhook(client, "dummy", body, headers)

    assert response.status_code == 200
    assert reloaded(payment).amount_captured == 600
