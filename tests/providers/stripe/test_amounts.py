"""Stripe's currency rules, applied before any network call."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from hypothesis import given
from hypothesis import strategies as st

from django_paygate import money, services
from django_paygate.exceptions import InvalidAmount, RefundExceedsCaptured
from django_paygate.models import get_payment_model
from django_paygate.providers.stripe import (
    MINIMUM_AMOUNTS,
    STRIPE_THREE_DECIMAL,
    STRIPE_UNSUPPORTED,
    AmountRefused,
    StripeProvider,
    from_stripe_amount,
    to_stripe_amount,
)
from tests.factories import PaymentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_http() -> Any:
    """Any HTTP call made inside fails the test (nothing is registered)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps
        assert len(rsps.calls) == 0, "an HTTP call was made"


REFUSED = [
    ("KWD", 1235, "end in 0"),
    ("BHD", 10001, "end in 0"),
    ("JOD", 999, "end in 0"),
    ("OMR", 4321, "end in 0"),
    ("TND", 7777, "end in 0"),
    ("USD", 49, "less than"),
    ("EUR", 1, "less than"),
    ("GBP", 29, "less than"),
    ("JPY", 49, "less than"),
    ("HUF", 17499, "less than"),
    ("MXN", 999, "less than"),
    ("MGA", 150, "whole units"),  # ISO: two decimals; Stripe: zero-decimal
    ("IQD", 10000, "does not accept"),  # three-decimal, not one of Stripe's
    ("CLF", 10000, "does not accept"),  # four decimals
    ("USN", 10000, "does not accept"),  # a fund code
    ("KPW", 10000, "does not accept"),
    ("JPY", 1_000_000_000_000, "maximum"),  # 13 digits
    ("ISK", 10_000_000_000, "maximum"),  # 12 digits, but x100 in Stripe's units
]


@pytest.mark.parametrize(("currency", "amount", "why"), REFUSED)
def test_refused_before_any_row_or_call(
    stripe_provider: StripeProvider, no_http: Any, currency: str, amount: int, why: str
) -> None:
    with pytest.raises(InvalidAmount) as err:
        services.create_payment(amount=amount, currency=currency, provider="stripe")
    assert why in str(err.value)
    assert not get_payment_model().objects.exists()


ACCEPTED = [
    ("USD", 50, 50),
    ("GBP", 30, 30),
    ("JPY", 50, 50),  # zero-decimal: unchanged
    ("KRW", 1000, 1000),
    ("KWD", 1230, 1230),  # three-decimal ending in 0
    ("BHD", 500, 500),
    ("ISK", 500, 50000),  # 500 kr is 50000 in Stripe's two-decimal representation
    ("UGX", 3000, 300000),  # the same special case
    ("MGA", 10000, 100),  # 100.00 Ar (ISO) is 100 in Stripe's zero-decimal units
    ("HUF", 17545, 17545),  # two decimals for charges (zero-decimal only for payouts)
    ("TWD", 1045, 1045),
    ("INR", 50, 50),
]


@pytest.mark.parametrize(("currency", "amount", "api_amount"), ACCEPTED)
def test_accepted_amounts_are_sent_in_stripes_units(
    fake_stripe: Any, currency: str, amount: int, api_amount: int
) -> None:
    payment = services.create_payment(amount=amount, currency=currency, provider="stripe")
    (call,) = fake_stripe.calls
    sent = parse_qs(call.request.body)
    assert sent["amount"] == [str(api_amount)]
    assert sent["currency"] == [currency.lower()]
    # ... and Stripe's answer comes back in our units, with no mismatch.
    payment.refresh_from_db()
    assert payment.amount == amount
    assert not payment.needs_review
    assert payment.status == "pending"


def test_minimum_table_matches_stripe_docs() -> None:
    assert MINIMUM_AMOUNTS["USD"] == 50
    assert MINIMUM_AMOUNTS["GBP"] == 30
    assert MINIMUM_AMOUNTS["JPY"] == 50
    assert MINIMUM_AMOUNTS["HUF"] == 17500
    assert MINIMUM_AMOUNTS["DKK"] == 250
    assert MINIMUM_AMOUNTS["MXN"] == 1000


def test_subclass_overrides_minimums() -> None:
    class LowMinimums(StripeProvider):
        minimum_amounts = {**MINIMUM_AMOUNTS, "USD": 1}

    provider = LowMinimums("low", secret_key="sk_test_x")
    provider.validate_amount(1, "USD")
    with pytest.raises(InvalidAmount):
        StripeProvider("std", secret_key="sk_test_x").validate_amount(1, "USD")


def test_validate_amount_explains_the_rounding(stripe_provider: StripeProvider) -> None:
    with pytest.raises(InvalidAmount) as err:
        stripe_provider.validate_amount(5124, "KWD")
    assert "5.120 KWD" in str(err.value)
    assert "5.130 KWD" in str(err.value)


@given(
    currency=st.sampled_from(sorted(set(money.CURRENCY_EXPONENTS) - STRIPE_UNSUPPORTED)),
    amount=st.integers(min_value=1, max_value=10**11),
)
def test_conversion_round_trips_or_refuses(currency: str, amount: int) -> None:
    try:
        api = to_stripe_amount(amount, currency)
    except InvalidAmount:
        # Refused only for a documented reason.
        assert (
            (currency in STRIPE_THREE_DECIMAL and amount % 10)
            or (currency == "MGA" and amount % 100)
            or amount * 100 > 999_999_999_999
        )
        return
    assert isinstance(api, int)
    assert from_stripe_amount(api, currency) == amount
    if currency in STRIPE_THREE_DECIMAL:
        assert api % 10 == 0
    if currency in {"ISK", "UGX"}:
        assert api == amount * 100


@pytest.mark.parametrize("bad", [None, "100", 1.5, -1, True])
def test_inbound_amounts_must_be_integers(bad: Any) -> None:
    with pytest.raises(InvalidAmount):
        from_stripe_amount(bad, "USD")


def test_fractional_isk_from_stripe_is_refused() -> None:
    with pytest.raises(InvalidAmount):
        from_stripe_amount(50050, "ISK")


def test_capture_amount_rules_checked_before_the_call(
    stripe_provider: StripeProvider, no_http: Any
) -> None:
    payment = PaymentFactory(
        provider="stripe",
        provider_payment_id="pi_x",
        currency="KWD",
        amount=5000,
        status="authorized",
    )
    with pytest.raises(InvalidAmount) as err:
        services.capture_payment(payment, amount=1235)
    assert isinstance(err.value, AmountRefused)
    payment.refresh_from_db()
    assert payment.status == "authorized"


def test_refund_amount_rules_settle_the_refund_as_failed(
    stripe_provider: StripeProvider, no_http: Any
) -> None:
    payment = PaymentFactory(
        provider="stripe",
        provider_payment_id="pi_y",
        currency="KWD",
        amount=5000,
        status="succeeded",
    )
    with pytest.raises(InvalidAmount):
        services.refund_payment(payment, amount=1235)
    (refund,) = payment.refunds.all()
    assert refund.status == "failed"  # not left pending, reserving money
    assert "end in 0" in refund.failure_reason
    payment.refresh_from_db()
    assert payment.amount_refunded == 0
    assert payment.status == "succeeded"


def test_a_refund_above_the_capture_is_refused_before_any_call(
    stripe_provider: StripeProvider, no_http: Any
) -> None:
    """The services refuse it, before any row or call (the core owns the money rules:
    the adapter does not check them again)."""
    payment = PaymentFactory(provider="stripe", provider_payment_id="pi_z", status="succeeded")
    with pytest.raises(RefundExceedsCaptured):
        services.refund_payment(payment, amount=payment.amount_captured + 1)
    assert not payment.refunds.exists()
