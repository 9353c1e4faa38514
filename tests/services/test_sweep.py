"""The recovery sweep goes on past a payment whose repair raises anything at all.

One payment's failure (a third-party adapter's bug, an ``IntegrityError``) is
logged with its traceback, recorded on that payment's audit trail, counted in
the summary, and flagged for review once it failed
``SYNC_FAILURES_BEFORE_REVIEW`` times; the other payments are still repaired.
"""

from __future__ import annotations

import logging
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction

from django_paygate import services
from django_paygate.exceptions import ProviderUnavailable
from django_paygate.models import PaymentEvent, get_payment_model
from django_paygate.providers.base import ProviderPayment
from django_paygate.providers.dummy import CARD_SUCCEEDS
from django_paygate.services import recovery
from django_paygate.states import PaymentStatus

Payment = get_payment_model()


def reloaded(payment: Any) -> Any:
    return Payment.objects.get(pk=payment.pk)


def lost_confirm(dummy: Any, amount: int) -> Any:
    """A payment the provider paid, whose answer was lost: stuck ``pending``."""
    payment = services.create_payment(amount=amount, currency="USD")
    dummy.fail_next("confirm_payment", after=True)
    with pytest.raises(ProviderUnavailable):
        services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    return payment


def three_stuck(dummy: Any) -> list[Any]:
    payments = [lost_confirm(dummy, amount) for amount in (100, 200, 300)]
    # Oldest first, so the broken one is in the middle of the sweep.
    for age, payment in enumerate(payments):
        Payment.objects.filter(pk=payment.pk).update(
            updated_at=f"2020-01-0{age + 1}T00:00:00Z", created_at="2020-01-01T00:00:00Z"
        )
    return payments


def break_fetch(dummy: Any, monkeypatch: pytest.MonkeyPatch, broken: Any, error: Any) -> None:
    original = dummy.fetch_payment

    def fetch(payment: Any) -> Any:
        if payment.pk == broken.pk:
            return error(payment)
        return original(payment)

    monkeypatch.setattr(dummy, "fetch_payment", fetch)


def adapter_bug(payment: Any) -> Any:
    raise KeyError("latest_charge")  # not a PaygateError: a third-party adapter's bug


@pytest.mark.django_db
def test_an_unexpected_error_is_recorded_and_the_sweep_goes_on(
    dummy: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    first, broken, last = three_stuck(dummy)
    break_fetch(dummy, monkeypatch, broken, adapter_bug)

    with caplog.at_level(logging.ERROR, logger="django_paygate"):
        outcomes = list(services.sync_stuck_payments(older_than_seconds=0))

    assert [o.payment_id for o in outcomes] == [first.pk, broken.pk, last.pk]
    assert [o.error for o in outcomes] == ["", "KeyError: 'latest_charge'", ""]
    assert reloaded(first).status == reloaded(last).status == "succeeded"
    assert reloaded(broken).status == "pending"
    (logged,) = [m for m in caplog.messages if f"{broken.pk}: sync failed unexpectedly" in m]
    assert "Traceback (most recent call last)" in logged
    assert "KeyError: 'latest_charge'" in logged
    audit = PaymentEvent.objects.filter(payment=broken, source="sync").last()
    assert audit is not None
    assert "KeyError" in audit.note


@pytest.mark.django_db
def test_repeated_failures_flag_the_payment_once(
    dummy: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.PAYGATE = {**settings.PAYGATE, "SYNC_REVIEW_AFTER": 10**9}  # never "too old"
    _, broken, _ = three_stuck(dummy)
    break_fetch(dummy, monkeypatch, broken, adapter_bug)

    flags = []
    for _ in range(recovery.SYNC_FAILURES_BEFORE_REVIEW + 1):
        outcomes = list(services.sync_stuck_payments(older_than_seconds=0))
        flags += [o.flagged for o in outcomes if o.payment_id == broken.pk]

    assert flags == [False] * (recovery.SYNC_FAILURES_BEFORE_REVIEW - 1) + [True, False]
    broken = reloaded(broken)
    assert broken.needs_review
    assert broken.review_code == "sync_failing"
    assert f"sync failed {recovery.SYNC_FAILURES_BEFORE_REVIEW} times" in broken.review_reason


@pytest.mark.django_db
def test_the_command_counts_the_failure_and_names_the_payment(
    dummy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, broken, _ = three_stuck(dummy)
    break_fetch(dummy, monkeypatch, broken, adapter_bug)
    out, err = StringIO(), StringIO()

    call_command("paygate_sync", older_than=0, stdout=out, stderr=err)

    assert "Synced 3 payment(s): 2 repaired, 1 errors" in out.getvalue()
    assert f"{broken.pk}: KeyError: 'latest_charge'" in err.getvalue()


def collide_with(other: Any) -> Any:
    """An adapter that reports another payment's provider id: linking it violates the
    unique (provider, provider_payment_id) constraint in the database."""

    def fetch(payment: Any) -> ProviderPayment:
        return ProviderPayment(
            provider_payment_id=other.provider_payment_id,
            status=PaymentStatus.SUCCEEDED,
            amount=payment.amount,
            currency=payment.currency,
        )

    return fetch


def unlink(payment: Any) -> None:
    Payment.objects.filter(pk=payment.pk).update(provider_payment_id=None)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("outer", [False, True], ids=["autocommit", "inside-a-transaction"])
def test_an_integrity_error_poisons_nothing_on_postgresql(
    dummy: Any, monkeypatch: pytest.MonkeyPatch, outer: bool
) -> None:
    first, broken, last = three_stuck(dummy)
    unlink(broken)
    break_fetch(dummy, monkeypatch, broken, collide_with(first))

    if outer:
        with transaction.atomic():
            outcomes = list(services.sync_stuck_payments(older_than_seconds=0))
    else:
        outcomes = list(services.sync_stuck_payments(older_than_seconds=0))

    assert [o.error.split(":")[0] for o in outcomes] == ["", "IntegrityError", ""]
    assert reloaded(first).status == reloaded(last).status == "succeeded"
    assert (reloaded(broken).status, reloaded(broken).provider_payment_id) == ("pending", None)
    assert PaymentEvent.objects.filter(
        payment=broken, source="sync", note__contains="IntegrityError"
    ).exists()


@pytest.mark.django_db
def test_an_unexpected_error_never_carries_the_providers_secrets(
    dummy: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    _, broken, _ = three_stuck(dummy)
    secret = dummy.webhook_secrets()[0]

    def leaky(payment: Any) -> Any:
        raise RuntimeError(f"request failed with secret={secret}")

    break_fetch(dummy, monkeypatch, broken, leaky)

    with caplog.at_level(logging.ERROR, logger="django_paygate"):
        outcomes = list(services.sync_stuck_payments(older_than_seconds=0))

    (error,) = [o.error for o in outcomes if o.error]
    assert error == "RuntimeError: request failed with secret=[redacted]"
    assert "RuntimeError" in caplog.text  # the traceback is still logged
    assert secret not in caplog.text
    notes = PaymentEvent.objects.filter(payment=broken).values_list("note", flat=True)
    assert not [note for note in notes if secret in note]
