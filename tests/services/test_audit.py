"""What the audit trail records about a change's cause: its source, webhook event and user."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from django_paygate import services
from django_paygate.models import PaymentEvent, ReviewReason
from django_paygate.providers.base import ProviderPayment
from django_paygate.services import ledger
from django_paygate.testing.fakes import make_authorized_payment

pytestmark = pytest.mark.django_db


def test_a_review_flag_names_the_user_whose_action_raised_it(admin_user: Any) -> None:
    payment = make_authorized_payment(amount=1000)
    mismatched = ProviderPayment(payment.provider_payment_id, status=None, amount=999)

    with transaction.atomic():
        locked = ledger.lock_payment(payment.pk)
        ledger.apply_payment(locked, mismatched, ledger.Origin("admin", user=admin_user))

    row = PaymentEvent.objects.filter(payment=payment, note__startswith="needs review").get()
    assert (row.source, row.user, row.webhook_event) == ("admin", admin_user, None)
    assert locked.review_code == ReviewReason.AMOUNT_MISMATCH


def test_a_staff_capture_records_who_captured(admin_user: Any) -> None:
    payment = make_authorized_payment(amount=1000)

    services.capture_payment(payment, user=admin_user, source="admin")

    row = PaymentEvent.objects.filter(payment=payment, to_status="succeeded").get()
    assert (row.source, row.user, row.amount) == ("admin", admin_user, 1000)


def test_an_anonymous_user_is_recorded_as_nobody() -> None:
    from django.contrib.auth.models import AnonymousUser

    payment = make_authorized_payment(amount=1000)

    services.cancel_payment(payment, user=AnonymousUser())

    row = PaymentEvent.objects.filter(payment=payment, to_status="canceled").get()
    assert row.user is None
