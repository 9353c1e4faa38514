"""``manage.py check`` reports every problem at once, names the extra a provider's SDK
needs (paygate.E007), and points at pages a user can open."""

from __future__ import annotations

import sys

import pytest
from django.test import override_settings

from django_paygate.checks import check_payment_model, check_settings
from django_paygate.exceptions import ConfigurationError
from django_paygate.providers import build_provider, missing_sdk

DUMMY = {"BACKEND": "django_paygate.providers.dummy.DummyProvider"}
STRIPE = {
    "BACKEND": "django_paygate.providers.stripe.StripeProvider",
    "OPTIONS": {"secret_key": "sk_test_x", "webhook_secret": "whsec_x"},
}
RAZORPAY = {
    "BACKEND": "razorpay",  # the entry point name
    "OPTIONS": {"key_id": "rzp_test_x", "key_secret": "k", "webhook_secret": "w"},
}


@pytest.fixture(autouse=True)
def _debug(settings):
    settings.DEBUG = True


def run(**paygate) -> list:
    with override_settings(PAYGATE=paygate):
        return check_settings() + check_payment_model()


@pytest.fixture
def without_sdks(monkeypatch):
    """As if neither the ``stripe`` nor the ``razorpay`` extra were installed."""
    for name in ("stripe", "razorpay"):
        monkeypatch.setitem(sys.modules, name, None)  # ``import name`` raises ImportError


def test_every_problem_is_reported_in_one_run():
    found = run(
        PROVIDERS={"dummy": DUMMY, "broken": {"BACKEND": "no.such.Backend"}},
        DEFAULT_PROVIDER="dummy",
        DEFAULT_PROVIDR="dummy",
        WEBHOOK_RETENTION_DAYS=3,
        EMAILS={"ENABLD": True},
        TRUSTED_PROXIES=["300.1.1.1"],
    )
    assert sorted(str(m.id) for m in found) == [
        "paygate.E001",
        "paygate.E002",
        "paygate.E005",
        "paygate.W003",
        "paygate.W004",
    ]


def test_a_malformed_provider_entry_does_not_hide_the_others():
    found = run(
        PROVIDERS={"dummy": DUMMY, "empty": {}, "broken": {"BACKEND": "no.such.Backend"}},
        DEFAULT_PROVIDER="dummy",
    )
    assert sorted(str(m.id) for m in found) == ["paygate.E001", "paygate.E002"]


def test_a_provider_whose_sdk_is_missing_names_the_extra(without_sdks):
    found = run(PROVIDERS={"stripe": STRIPE, "razorpay": RAZORPAY, "dummy": DUMMY})
    errors = {m.obj: m for m in found if m.id == "paygate.E007"}
    assert sorted(errors) == ["PAYGATE['PROVIDERS']['razorpay']", "PAYGATE['PROVIDERS']['stripe']"]
    assert 'pip install "django-paygate[stripe]"' in errors["PAYGATE['PROVIDERS']['stripe']"].hint
    assert "django-paygate[razorpay]" in errors["PAYGATE['PROVIDERS']['razorpay']"].hint
    assert "stripe SDK" in errors["PAYGATE['PROVIDERS']['stripe']"].msg
    assert not [m for m in found if m.id == "paygate.E002"]  # E007 says it, once


def test_building_a_provider_without_its_sdk_names_the_extra(without_sdks):
    with pytest.raises(ConfigurationError, match=r"django-paygate\[stripe\]"):
        build_provider("stripe", STRIPE)


def test_missing_sdk_is_none_when_it_is_importable():
    from django_paygate.providers.dummy import DummyProvider

    assert missing_sdk(DummyProvider) is None


def test_hints_name_published_pages():
    found = run(
        PROVIDERS={"dummy": DUMMY},
        DEFAULT_PROVIDR="dummy",
        EMAILS={"ENABLD": True},
        RATE_LIMITS={"create_intnet": {}},
    )
    hints = [m.hint for m in found if m.hint]
    assert len(hints) == 3
    for hint in hints:
        assert "https://django-paygate.readthedocs.io/en/latest/" in hint
        assert "docs/" not in hint.replace("readthedocs.io", "")


def test_an_adapter_that_imports_other_sdk_packages_is_still_e007(without_sdks, monkeypatch):
    """Without the extra, the adapter's own import can fail first (``requests`` comes with
    the SDK): that is the missing extra too, not an unimportable backend."""
    monkeypatch.setitem(sys.modules, "django_paygate.providers.razorpay", None)
    found = run(PROVIDERS={"razorpay": RAZORPAY, "dummy": DUMMY}, DEFAULT_PROVIDER="dummy")
    assert [str(m.id) for m in found] == ["paygate.E007"]
    assert "django-paygate[razorpay]" in found[0].hint
