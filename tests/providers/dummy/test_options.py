"""The dummy provider's options: each checked when the provider is built, in one style."""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate.exceptions import ConfigurationError, ProviderError
from django_paygate.providers.dummy import DummyProvider
from tests.factories import PaymentFactory

WHERE = "PAYGATE['PROVIDERS']['dummy']['OPTIONS']"

REFUSED = [
    ("checkout_url", 5, "must be a string"),
    ("checkout_url", "/pay/{order}/", "must be a str.format template with {payment_id} only"),
    ("checkout_url", "/pay/{payment_id", "must be a str.format template with {payment_id} only"),
    ("webhook_tolerance", 0, "must be an int from 1 to 3600"),
    ("webhook_tolerance", "300", "must be an int from 1 to 3600"),
    ("store", "disk", "must be 'database' or 'cache' or 'memory'"),
    ("cache", "", "must be a non-empty string"),
    ("deliver_webhooks", "yes", "must be True or False"),
    ("webhook_url", "127.0.0.1:8000/hook/", "must be an http:// or https:// URL"),
    ("webhook_url", "ftp://shop.example/hook/", "must be an http:// or https:// URL"),
    ("webhook_retries", -1, "must be an int from 0 to 10"),
    ("webhook_retries", True, "must be an int from 0 to 10"),
    ("webhook_retry_delay", -0.5, "must be a number from 0 to 60"),
    ("webhook_retry_delay", float("nan"), "must be a number from 0 to 60"),
    ("webhook_secret", 42, "must be a string or a list of strings"),
]


@pytest.mark.parametrize(("key", "value", "problem"), REFUSED)
def test_a_bad_option_is_refused_naming_the_setting(key: str, value: Any, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        DummyProvider("dummy", **{key: value})
    assert str(caught.value) == f"{WHERE}[{key!r}] {problem}."


def test_an_unknown_option_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as caught:
        DummyProvider("dummy", webhook_retry=3)
    assert str(caught.value).startswith(
        f"{WHERE}['webhook_retry'] is not an option of DummyProvider (known: cache, checkout_url,"
    )


def test_the_defaults_pass_and_values_are_kept_normalised() -> None:
    provider = DummyProvider("dummy", store="memory", webhook_retry_delay=1, webhook_retries=0)
    assert provider.options["webhook_retry_delay"] == 1.0
    assert isinstance(provider.options["webhook_retry_delay"], float)
    assert provider.options["webhook_retries"] == 0
    assert provider.options["webhook_tolerance"] == 300
    # A webhook URL keeps its trailing slash (Django's URL ends with one).
    url = "http://web:8000/api/payments/webhooks/dummy/"
    assert DummyProvider("dummy", webhook_url=url).options["webhook_url"] == url


def test_the_cache_store_needs_a_configured_cache(settings: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        DummyProvider("dummy", store="cache", cache="sessions")
    assert str(caught.value) == (
        f"{WHERE}['cache'] must name an alias of CACHES for the 'cache' store."
    )
    DummyProvider("dummy", store="memory", cache="sessions")  # not used: not checked
    settings.CACHES = {**settings.CACHES, "sessions": settings.CACHES["default"]}
    assert DummyProvider("dummy", store="cache", cache="sessions").options["cache"] == "sessions"


@pytest.mark.django_db
def test_the_checkout_url_is_filled_with_the_payment_id() -> None:
    provider = DummyProvider("dummy", store="memory", checkout_url="/shop/pay/{payment_id}/")
    payment = PaymentFactory()
    assert provider.client_data(payment)["checkout_url"] == f"/shop/pay/{payment.pk}/"


@pytest.mark.django_db
def test_an_unknown_confirmation_field_is_refused_before_the_remote_side() -> None:
    provider = DummyProvider("dummy", store="memory")
    payment = PaymentFactory(provider_payment_id="dummy_x")
    with pytest.raises(ProviderError, match="Unexpected confirmation field 'razorpay_signature'"):
        provider.confirm_payment(payment, idempotency_key="k", razorpay_signature="sig")
    assert provider.calls == []
