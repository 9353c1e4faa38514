"""The refund form submitted twice at the same moment refunds once (PostgreSQL, real threads)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.test import Client

from django_paygate.models import PaymentEvent, Refund, get_payment_model
from tests.admin.conftest import captured, payment_url
from tests.factories import UserFactory
from tests.services.test_concurrency import run_together

pytestmark = [pytest.mark.locking, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("round_", range(3))
def test_a_double_submitted_refund_form_refunds_once(round_: int) -> None:
    staff = UserFactory(is_staff=True, is_superuser=True)
    payment = captured(amount=5000)
    form = {"amount": "20.00", "reason": "double click", "key": str(uuid.uuid4()), "confirm": "on"}
    clients = [Client() for _ in range(4)]
    for client in clients:
        client.force_login(staff)

    def submit(i: int) -> Any:
        return clients[i].post(payment_url("refund", payment.pk), form).status_code

    statuses = run_together(len(clients), submit)

    assert statuses == [302] * len(clients), statuses
    refund = Refund.objects.get()
    assert (refund.amount, refund.status, refund.source) == (2000, "succeeded", "admin")
    assert get_payment_model().objects.get(pk=payment.pk).amount_refunded == 2000
    assert (
        PaymentEvent.objects.filter(refund=refund, note__startswith="refund requested").count() == 1
    )


def test_two_forms_at_once_cannot_refund_more_than_was_captured() -> None:
    staff = UserFactory(is_staff=True, is_superuser=True)
    payment = captured(amount=5000)
    clients = [Client() for _ in range(2)]
    for client in clients:
        client.force_login(staff)

    def submit(i: int) -> Any:
        form = {"amount": "40.00", "key": str(uuid.uuid4()), "confirm": "on"}
        return clients[i].post(payment_url("refund", payment.pk), form).status_code

    statuses = sorted(run_together(2, submit))

    assert statuses == [200, 302]  # one refunded, one shown the service's refusal
    assert Refund.objects.get().amount == 4000
    assert get_payment_model().objects.get(pk=payment.pk).amount_refunded == 4000
