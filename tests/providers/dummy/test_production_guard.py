"""The dummy provider never takes a test card on a production site by accident."""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate import conf, services
from django_paygate.exceptions import ProviderError
from django_paygate.providers.dummy import CARD_SUCCEEDS

pytestmark = pytest.mark.django_db


@pytest.fixture
def production(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """DEBUG off and no test environment: what a deployed site looks like."""
    settings.DEBUG = False
    monkeypatch.setattr(conf, "running_tests", lambda: False)
    return settings


def test_a_charge_is_refused_without_debug(production: Any, dummy: Any) -> None:
    with pytest.raises(ProviderError, match="DUMMY_ALLOWED_IN_PRODUCTION") as caught:
        services.create_payment(amount=1999, currency="USD")
    assert "DEBUG" in str(caught.value)
    assert [method for method, _key in dummy.calls] == []


def test_a_confirm_is_refused_without_debug(settings: Any, dummy: Any, monkeypatch: Any) -> None:
    payment = services.create_payment(amount=1999, currency="USD")  # created while allowed
    settings.DEBUG = False
    monkeypatch.setattr(conf, "running_tests", lambda: False)
    with pytest.raises(ProviderError, match="DUMMY_ALLOWED_IN_PRODUCTION"):
        services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    payment.refresh_from_db()
    assert payment.status != "succeeded"
    assert payment.amount_captured == 0
    assert [method for method, _key in dummy.calls] == ["create_payment"]


def test_a_staging_site_may_allow_it(production: Any) -> None:
    production.PAYGATE = {**production.PAYGATE, "DUMMY_ALLOWED_IN_PRODUCTION": True}
    payment = services.create_payment(amount=1999, currency="USD")
    payment = services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    assert payment.status == "succeeded"


def test_debug_allows_it(production: Any) -> None:
    production.DEBUG = True
    payment = services.create_payment(amount=1999, currency="USD")
    assert services.confirm_payment(payment, payment_method=CARD_SUCCEEDS).status == "succeeded"


def test_a_test_run_allows_it_although_the_test_runner_turns_debug_off(settings: Any) -> None:
    settings.DEBUG = False  # what Django's runner and pytest-django do
    assert conf.running_tests()
    payment = services.create_payment(amount=1999, currency="USD")
    assert services.confirm_payment(payment, payment_method=CARD_SUCCEEDS).status == "succeeded"
