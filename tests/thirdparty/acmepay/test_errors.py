"""What only AcmePay's adapter knows: its options, and how each answer maps to our errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from django_paygate.exceptions import (
    ConfigurationError,
    PaymentDeclined,
    ProviderError,
    ProviderUnavailable,
)
from tests.factories import PaymentFactory

from .conftest import API, API_KEY
from .provider import AcmePayProvider

pytestmark = pytest.mark.django_db

CHARGE = f"{API}/charges/ch1/capture"


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as rsps:
        yield rsps


def capture(**options: Any) -> Any:
    provider = AcmePayProvider("acme", **{"api_key": API_KEY, **options})
    payment = PaymentFactory(provider="acme", provider_payment_id="ch1", status="authorized")
    return provider.capture_payment(payment, amount=payment.amount, idempotency_key="k1")


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"api_key": ""}, "['api_key'] is required."),
        ({"api_key": "sk_live_1"}, "['api_key'] must start with 'acme_'."),
        ({"timeout": -1}, "['timeout'] must be a positive number of seconds"),
        ({"api_base": "http://api.acmepay.test/v1"}, "['api_base'] must be an https:// URL"),
    ],
)
def test_a_bad_option_is_refused_naming_the_setting(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        AcmePayProvider("acme", **{"api_key": API_KEY, **options})
    assert str(caught.value).startswith("PAYGATE['PROVIDERS']['acme']['OPTIONS']" + problem)


def test_each_call_sends_the_key_and_the_timeout(api: responses.RequestsMock) -> None:
    api.post(CHARGE, json={"id": "ch1", "status": "paid", "amount": 1000, "amount_paid": 1000})
    assert capture(timeout=4).amount_captured == 1000
    request = api.calls[0].request
    assert request.headers["Idempotency-Key"] == "k1"
    assert request.req_kwargs["timeout"] == 4.0


def test_a_402_is_a_decline(api: responses.RequestsMock) -> None:
    error = {"code": "insufficient_funds", "message": "Not enough money."}
    api.post(CHARGE, status=402, json={"error": error})
    with pytest.raises(PaymentDeclined) as caught:
        capture()
    assert caught.value.decline_code == "insufficient_funds"


def test_another_4xx_is_a_refusal_without_the_key(api: responses.RequestsMock) -> None:
    api.post(CHARGE, status=401, json={"error": {"code": "x" * 290 + API_KEY}})
    with pytest.raises(ProviderError) as caught:
        capture()
    assert str(caught.value) == "AcmePay capture: " + "x" * 290 + "***"
    assert API_KEY[:8] not in str(caught.value)
    assert caught.value.__context__ is None


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 503, "json": {}},
        {"status": 200, "body": "<html>proxy error</html>"},
        {"body": requests.exceptions.ConnectTimeout("timed out")},
    ],
)
def test_an_unknown_outcome_is_provider_unavailable(
    api: responses.RequestsMock, answer: dict[str, Any]
) -> None:
    api.post(CHARGE, **answer)
    with pytest.raises(ProviderUnavailable, match=r"^AcmePay capture: .*the outcome is unknown"):
        capture()
