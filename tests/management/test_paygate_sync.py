from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_paygate import services
from django_paygate.exceptions import ProviderUnavailable
from django_paygate.models import get_payment_model
from django_paygate.providers.dummy import CARD_SUCCEEDS

pytestmark = pytest.mark.django_db(transaction=True)


def age_all(seconds_ago: str = "2020-01-01T00:00:00Z") -> None:
    get_payment_model().objects.update(updated_at=seconds_ago, created_at=seconds_ago)


def test_repairs_stuck_payments_with_a_summary(dummy, signal_spy):
    lost = services.create_payment(amount=1000, currency="USD")
    dummy.fail_next("confirm_payment", after=True)
    with pytest.raises(ProviderUnavailable):
        services.confirm_payment(lost, payment_method=CARD_SUCCEEDS)
    untouched = services.create_payment(amount=500, currency="USD")
    age_all()
    fresh = services.create_payment(amount=700, currency="USD")

    out = StringIO()
    call_command("paygate_sync", stdout=out)
    text = out.getvalue()
    assert "2/2" in text
    assert "Synced 2 payment(s): 1 repaired, 1 unchanged, 1 flagged for review." in text
    lost.refresh_from_db()
    untouched.refresh_from_db()
    fresh.refresh_from_db()
    assert lost.status == "succeeded"
    assert signal_spy.count("payment_succeeded") == 1
    assert untouched.status == "pending"
    assert untouched.needs_review  # old and still unresolved
    assert "unresolved by sync" in untouched.review_reason
    assert not fresh.needs_review


def test_dry_run_changes_nothing(dummy):
    payment = services.create_payment(amount=1000, currency="USD")
    dummy.fail_next("confirm_payment", after=True)
    with pytest.raises(ProviderUnavailable):
        services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    age_all()
    out = StringIO()
    call_command("paygate_sync", "--dry-run", stdout=out)
    assert str(payment.pk) in out.getvalue()
    assert "1 stuck payment(s); nothing changed" in out.getvalue()
    payment.refresh_from_db()
    assert payment.status == "pending"


def test_provider_still_down_is_reported(dummy):
    payment = services.create_payment(amount=1000, currency="USD")
    age_all()
    original = dummy.fetch_payment

    def down(p):
        raise ProviderUnavailable("still down")

    dummy.fetch_payment = down
    try:
        out, err = StringIO(), StringIO()
        call_command("paygate_sync", stdout=out, stderr=err)
    finally:
        dummy.fetch_payment = original
    assert "1 errors" in out.getvalue()
    assert f"{payment.pk}: ProviderUnavailable: still down" in err.getvalue()


def test_limit_takes_that_many(dummy):
    for amount in (100, 200, 300):
        services.create_payment(amount=amount, currency="USD")
    age_all()
    out = StringIO()
    call_command("paygate_sync", "--limit", "2", stdout=out)
    assert "Synced 2 payment(s)" in out.getvalue()
    out = StringIO()
    call_command("paygate_sync", "--dry-run", "--limit", "1", stdout=out)
    assert "1 stuck payment(s); nothing changed" in out.getvalue()


@pytest.mark.parametrize(
    "arguments", [("--limit", "0"), ("--limit", "-1"), ("--older-than", "-3600")]
)
def test_limits_that_mean_nothing_are_refused(dummy, arguments):
    services.create_payment(amount=100, currency="USD")
    age_all()
    with pytest.raises(CommandError, match="must be at least"):
        call_command("paygate_sync", *arguments, stdout=StringIO())
    assert not get_payment_model().objects.get().needs_review  # nothing ran
