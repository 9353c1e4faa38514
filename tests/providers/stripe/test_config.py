"""Options, the per-instance SDK client, and system checks."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from django_paygate.checks import check_settings
from django_paygate.exceptions import ConfigurationError
from django_paygate.providers import get_provider
from django_paygate.providers.stripe import StripeProvider
from tests.providers.stripe.conftest import SECRET_KEY, paygate_setting


def test_defaults() -> None:
    provider = StripeProvider("stripe", secret_key=SECRET_KEY)
    o = provider.options
    assert o["timeout"] == 20
    assert o["max_network_retries"] == 2
    assert o["automatic_payment_methods"] is True
    assert list(o["payment_method_types"]) == ["card"]
    assert o["webhook_tolerance"] == 300
    assert set(StripeProvider.secret_options) == {"secret_key", "webhook_secret"}


def test_one_client_per_instance_built_lazily_and_nothing_global() -> None:
    before = (stripe.api_key, stripe.max_network_retries, stripe.api_base)
    a = StripeProvider(
        "a",
        secret_key="sk_test_a",
        api_base="http://127.0.0.1:1/",
        timeout=(2, 7),
        max_network_retries=3,
    )
    b = StripeProvider("b", secret_key="sk_test_b")
    assert a._client is None  # nothing built before the first call
    client = a.client
    assert client is a.client
    assert client is not b.client
    requestor = client._requestor
    assert requestor._options.api_key == "sk_test_a"
    assert requestor._options.base_addresses["api"] == "http://127.0.0.1:1"
    assert requestor._options.max_network_retries == 3
    assert isinstance(requestor._client, stripe.RequestsClient)
    assert requestor._client._timeout == (2, 7)
    assert b.client._requestor._options.max_network_retries == 2
    assert b.client._requestor._client._timeout == 20
    assert (stripe.api_key, stripe.max_network_retries, stripe.api_base) == before


def test_api_version_option() -> None:
    provider = StripeProvider("v", secret_key="sk_test_v", api_version="2024-06-20")
    assert provider.client._requestor._options.stripe_version == "2024-06-20"


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"secret_key": ""},
        {"secret_key": "   "},
        {"secret_key": 5},
        {"secret_key": "pk_test_publishable"},
        {"secret_key": "whsec_not_an_api_key"},
        {"secret_key": "sk_live_x", "publishable_key": "pk_test_y"},
        {"secret_key": "sk_test_x", "publishable_key": "pk_live_y"},
        {"secret_key": "sk_test_x", "timeout": 0},
        {"secret_key": "sk_test_x", "timeout": "20"},
        {"secret_key": "sk_test_x", "timeout": (1, 2, 3)},
        {"secret_key": "sk_test_x", "max_network_retries": -1},
        {"secret_key": "sk_test_x", "max_network_retries": True},
        {"secret_key": "sk_test_x", "webhook_tolerance": 0},
        {"secret_key": "sk_test_x", "webhook_tolerance": 10**9},
        {"secret_key": "sk_test_x", "webhook_secret": ["whsec_a", 3]},
        {"secret_key": "sk_test_x", "automatic_payment_methods": False, "payment_method_types": []},
        {
            "secret_key": "sk_test_x",
            "automatic_payment_methods": False,
            "payment_method_types": "card",
        },
        {"secret_key": "sk_test_x", "api_base": "127.0.0.1:12111"},
        {"secret_key": "sk_test_x", "api_key": "sk_test_typo"},
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        StripeProvider("stripe", **options)


def test_webhook_secret_list(settings: Any) -> None:
    provider = StripeProvider(
        "s", secret_key="sk_test_x", webhook_secret=["whsec_a", " ", "whsec_b"]
    )
    assert provider.webhook_secrets() == ["whsec_a", "whsec_b"]


def test_system_checks(settings: Any) -> None:
    settings.PAYGATE = paygate_setting()
    ids = [m.id for m in check_settings() if (m.id or "").startswith("paygate.")]
    assert "paygate.E002" not in ids
    assert isinstance(get_provider("stripe"), StripeProvider)

    settings.PAYGATE = paygate_setting(webhook_secret="")
    ids = [m.id for m in check_settings() if (m.id or "").startswith("paygate.")]
    assert "paygate.W001" in ids

    settings.PAYGATE = paygate_setting(secret_key="")
    messages = [m for m in check_settings() if m.id == "paygate.E002"]
    assert messages
    assert "secret_key" in messages[0].msg
