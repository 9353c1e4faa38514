"""An early refund event without our refund id finds the pending refund it belongs to.

AcmePay cannot carry our refund id, so its refund events name only its own
refund id, the charge and the amount.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import IntegrityError
from django.db.models import Q

from django_paygate import services
from django_paygate.exceptions import ProviderUnavailable
from django_paygate.models import PaymentEvent, Refund
from django_paygate.services import ledger
from django_paygate.testing.contract import REFUND_SUCCEEDED
from django_paygate.testing.webhooks import post_webhook

from . import test_contract
from .conftest import FakeAcmePay

pytestmark = pytest.mark.django_db


def paid(api: FakeAcmePay, amount: int = 6000) -> Any:
    payment = services.create_payment(amount=amount, currency="USD", provider="acme")
    return services.confirm_payment(payment, **api.confirm_data(payment))


def lost_refund(api: FakeAcmePay, payment: Any, amount: int) -> None:
    api.lose_next_answer("refund")
    with pytest.raises(ProviderUnavailable):
        services.refund_payment(payment, amount=amount)


def deliver(client: Any, api: FakeAcmePay, payment: Any, refund_id: str) -> None:
    body, headers = api.signed_event(REFUND_SUCCEEDED, payment, refund_id=refund_id)
    assert post_webhook(client, "acme", body, headers).status_code == 200


def test_two_pending_refunds_of_one_amount_are_left_for_their_answers(
    acme_api: FakeAcmePay, client: Any
) -> None:
    payment = paid(acme_api)
    lost_refund(acme_api, payment, 1000)
    lost_refund(acme_api, payment, 1000)
    first, second = acme_api.refund_objects(payment)
    deliver(client, acme_api, payment, first)
    rows = Refund.objects.filter(payment_id=payment.pk)
    assert sorted(rows.values_list("status", "provider_refund_id")) == [
        ("pending", None),
        ("pending", None),
    ]
    note = PaymentEvent.objects.filter(payment_id=payment.pk, note__contains=first).get()
    assert "fits several pending refunds" in note.note
    assert note.webhook_event is not None

    services.sync_payment(payment)
    assert sorted(rows.values_list("status", "provider_refund_id")) == [
        ("succeeded", first),
        ("succeeded", second),
    ]
    payment.refresh_from_db()
    assert (payment.amount_refunded, payment.needs_review) == (2000, False)
    deliver(client, acme_api, payment, first)  # matched by its id now
    assert rows.count() == 2
    payment.refresh_from_db()
    assert payment.amount_refunded == 2000


def test_a_refund_of_another_amount_is_not_taken_for_the_pending_one(
    acme_api: FakeAcmePay, client: Any
) -> None:
    payment = paid(acme_api)
    lost_refund(acme_api, payment, 1000)
    # Refunded in AcmePay's dashboard meanwhile: 500, not the 1000 we asked for.
    charge = payment.provider_payment_id
    acme_api._refund(charge, {"amount": 500})
    ours, dashboard = acme_api.refund_objects(payment)
    deliver(client, acme_api, payment, dashboard)
    rows = Refund.objects.filter(payment_id=payment.pk)
    assert sorted(rows.values_list("amount", "status", "provider_refund_id")) == [
        (500, "succeeded", dashboard),
        (1000, "pending", None),
    ]
    services.sync_payment(payment)
    assert sorted(rows.values_list("amount", "status", "provider_refund_id")) == [
        (500, "succeeded", dashboard),
        (1000, "succeeded", ours),
    ]
    payment.refresh_from_db()
    assert payment.amount_refunded == 1500


def test_a_settled_refund_is_never_matched_again(acme_api: FakeAcmePay, client: Any) -> None:
    """Only a pending refund without a provider id can be the early event's refund."""
    payment = paid(acme_api)
    first = services.refund_payment(payment, amount=1000)
    acme_api._refund(payment.provider_payment_id, {"amount": 1000})  # the dashboard's
    dashboard = acme_api.refund_objects(payment)[-1]
    deliver(client, acme_api, payment, dashboard)
    assert Refund.objects.filter(payment_id=payment.pk).count() == 2
    first.refresh_from_db()
    assert first.provider_refund_id not in (None, dashboard)
    payment.refresh_from_db()
    assert payment.amount_refunded == 2000


def test_the_kit_catches_an_adapter_that_does_not_echo_our_refund_id(
    acme_api: FakeAcmePay, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Matching only by ids, as before, fails the kit's overtaken-refund test."""

    def by_ids_only(payment: Any, result: Any) -> Any:
        query = Q(provider_refund_id=result.provider_refund_id)
        return Refund.objects.filter(query, payment=payment).first()

    monkeypatch.setattr(ledger, "_find_refund", by_ids_only)
    case = test_contract.TestAcmePayContract()
    case.fake = acme_api
    with pytest.raises(IntegrityError):
        case.test_refund_overtaken_by_its_webhook()
