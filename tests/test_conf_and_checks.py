from __future__ import annotations

import ipaddress

import pytest
from django.core import checks
from django.test import override_settings

from django_paygate.checks import check_payment_model, check_settings
from django_paygate.conf import paygate_settings
from django_paygate.exceptions import ConfigurationError, UnknownProvider
from django_paygate.providers import get_provider
from django_paygate.providers.dummy import DummyProvider

DUMMY = {"BACKEND": "django_paygate.providers.dummy.DummyProvider"}


@pytest.fixture(autouse=True)
def _debug(settings):
    settings.DEBUG = True  # pytest-django turns it off; E008 has its own tests


def run() -> list:
    return check_settings() + check_payment_model()


def ids(**paygate) -> list[str]:
    with override_settings(PAYGATE=paygate):
        return sorted(str(m.id) for m in run())


def messages(**paygate) -> str:
    with override_settings(PAYGATE=paygate):
        return "\n".join(m.msg for m in run())


def test_missing_setting_means_the_dummy_provider_alone(settings):
    del settings.PAYGATE
    assert paygate_settings.PROVIDERS == {"dummy": {"BACKEND": DUMMY["BACKEND"], "OPTIONS": {}}}
    assert paygate_settings.DEFAULT_PROVIDER == "dummy"
    assert isinstance(get_provider(), DummyProvider)


def test_settings_are_read_lazily():
    with override_settings(PAYGATE={"PROVIDERS": {"other": DUMMY}}):
        assert get_provider().alias == "other"
        assert paygate_settings.WEBHOOK_MAX_BODY_SIZE == 1024 * 1024
    with override_settings(PAYGATE={"PROVIDERS": {"dummy": DUMMY}, "WEBHOOK_MAX_BODY_SIZE": 10}):
        assert paygate_settings.WEBHOOK_MAX_BODY_SIZE == 10
        assert get_provider().alias == "dummy"


def test_clean_settings_pass():
    assert ids(PROVIDERS={"dummy": DUMMY}) == []


def test_unknown_top_level_key_is_named_with_a_hint():
    text = messages(PROVIDERS={"dummy": DUMMY}, DEFAULT_PROVIDR="dummy")
    assert (
        "Unknown key 'DEFAULT_PROVIDR' in settings.PAYGATE. Did you mean 'DEFAULT_PROVIDER'?"
        in text
    )
    assert ids(PROVIDERS={"dummy": DUMMY}, DEFAULT_PROVIDR="dummy") == ["paygate.E001"]


def test_unknown_provider_key_and_option_are_named():
    assert "Unknown key 'OPTION'" in messages(PROVIDERS={"dummy": {**DUMMY, "OPTION": {}}})
    text = messages(PROVIDERS={"dummy": {**DUMMY, "OPTIONS": {"webhook_secert": "x"}}})
    assert "PAYGATE['PROVIDERS']['dummy']['OPTIONS']['webhook_secert'] is not an option" in text
    bad = {"PROVIDERS": {"dummy": {**DUMMY, "OPTIONS": {"nope": 1}}}}
    with override_settings(PAYGATE=bad), pytest.raises(ConfigurationError, match="nope"):
        get_provider("dummy")


def test_unimportable_backend():
    bad = {"x": {"BACKEND": "no.such.Provider"}}
    assert ids(PROVIDERS=bad) == ["paygate.E002"]
    assert "Cannot import provider backend 'no.such.Provider'" in messages(PROVIDERS=bad)
    assert ids(PROVIDERS={"x": {"BACKEND": "django.db.models.Model"}}) == ["paygate.E002"]
    assert ids(PROVIDERS={"x": {"BACKEND": "no_such_entry_point"}}) == ["paygate.E002"]
    assert ids(PROVIDERS={"x": {}}) == ["paygate.E001"]


def test_entry_point_names_resolve():
    assert ids(PROVIDERS={"dummy": {"BACKEND": "dummy"}}) == []


def test_default_provider_must_be_configured():
    assert ids(PROVIDERS={"dummy": DUMMY}, DEFAULT_PROVIDER="stripe") == ["paygate.E003"]
    assert ids(PROVIDERS={"a": DUMMY, "b": DUMMY}) == ["paygate.E003"]
    with override_settings(PAYGATE={"PROVIDERS": {"dummy": DUMMY}}), pytest.raises(UnknownProvider):
        get_provider("stripe")


def test_missing_webhook_secret_warns():
    assert ids(PROVIDERS={"dummy": {**DUMMY, "OPTIONS": {"webhook_secret": ""}}}) == [
        "paygate.W001"
    ]


@pytest.fixture
def production(settings, monkeypatch):
    """DEBUG off outside a test run: what ``check --deploy`` sees on a deployed site."""
    from django_paygate import conf

    settings.DEBUG = False
    settings.CACHES = {"default": SHARED_CACHE}  # W006 has its own tests
    monkeypatch.setattr(conf, "running_tests", lambda: False)
    return settings


def test_dummy_provider_without_debug_is_an_error(production):
    with override_settings(PAYGATE={"PROVIDERS": {"dummy": DUMMY}}):
        found = [m for m in run() if m.id == "paygate.E008"]
    assert [m.level for m in found] == [checks.ERROR]
    assert "test cards" in found[0].msg
    assert ids(PROVIDERS={"dummy": DUMMY}) == ["paygate.E008"]


def test_the_default_dummy_provider_without_debug_is_an_error(production):
    del production.PAYGATE  # no PAYGATE setting at all: the dummy provider alone
    assert [str(m.id) for m in run()] == ["paygate.E008"]


def test_the_replaced_warning_w002_is_never_raised(production):
    assert "paygate.W002" not in ids(PROVIDERS={"dummy": DUMMY})
    assert "paygate.W002" not in ids(PROVIDERS={"dummy": DUMMY}, DUMMY_ALLOWED_IN_PRODUCTION=True)


def test_a_staging_site_that_allows_the_dummy_provider_gets_a_warning(production):
    with override_settings(
        PAYGATE={"PROVIDERS": {"dummy": DUMMY}, "DUMMY_ALLOWED_IN_PRODUCTION": True}
    ):
        found = run()
    assert [(str(m.id), m.level) for m in found] == [("paygate.E008", checks.WARNING)]


def test_dummy_allowed_in_production_must_be_a_bool(production):
    # One run reports both: the malformed setting, and the dummy provider it does not allow.
    found = ids(PROVIDERS={"dummy": DUMMY}, DUMMY_ALLOWED_IN_PRODUCTION="yes")
    assert found == ["paygate.E001", "paygate.E008"]


def test_no_dummy_error_with_debug_or_during_a_test_run(settings):
    assert ids(PROVIDERS={"dummy": DUMMY}) == []  # DEBUG = True (autouse fixture)
    settings.DEBUG = False  # the test runner's DEBUG: host projects' suites keep running
    assert ids(PROVIDERS={"dummy": DUMMY}) == []


def test_short_retention_warns():
    assert ids(PROVIDERS={"dummy": DUMMY}, WEBHOOK_RETENTION_DAYS=3) == ["paygate.W003"]


def test_malformed_setting_is_reported_not_raised_at_import():
    assert ids(PROVIDERS=["dummy"]) == ["paygate.E001"]


def test_options_repr_hides_secrets():
    with override_settings(
        PAYGATE={"PROVIDERS": {"dummy": {**DUMMY, "OPTIONS": {"webhook_secret": "s3cr3t-value"}}}}
    ):
        provider = get_provider("dummy")
        assert "s3cr3t-value" not in repr(provider)
        assert "s3cr3t-value" not in repr(provider.options)
        assert "s3cr3t-value" not in str(provider.options)
        assert provider.webhook_secrets() == ["s3cr3t-value"]


def test_bad_email_settings_are_reported():
    text = messages(PROVIDERS={"dummy": DUMMY}, EMAILS={"ENABLD": True})
    assert "ENABLD" in text
    assert ids(PROVIDERS={"dummy": DUMMY}, EMAILS={"ENABLD": True}) == ["paygate.E005"]


def test_bad_rate_limits_and_networks_are_reported():
    assert ids(PROVIDERS={"dummy": DUMMY}, RATE_LIMITS={"create_intnet": {}}) == ["paygate.E006"]
    bad_ips = {"dummy": {**DUMMY, "WEBHOOK_ALLOWED_IPS": ["10.0.0.0/8", "not-an-ip"]}}
    assert ids(PROVIDERS=bad_ips) == ["paygate.W004"]
    assert "not-an-ip" in messages(PROVIDERS=bad_ips)
    assert ids(PROVIDERS={"dummy": DUMMY}, TRUSTED_PROXIES=["300.1.1.1"]) == ["paygate.W004"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("WEBHOOK_MAX_BODY_SIZE", "1MB"),
        ("WEBHOOK_MAX_BODY_SIZE", 0),
        ("NOTIFICATION_LEASE", 0),
        ("NOTIFICATION_LEASE", -60),
        ("NOTIFICATION_MAX_ATTEMPTS", True),
        ("SYNC_STUCK_AFTER", -1),
        ("API_MAX_BODY_BYTES", 1.5),
    ],
)
def test_integer_settings_out_of_range_are_reported(key, value):
    assert ids(PROVIDERS={"dummy": DUMMY}, **{key: value}) == ["paygate.E001"]
    assert f"PAYGATE[{key!r}] must be an integer" in messages(
        PROVIDERS={"dummy": DUMMY}, **{key: value}
    )


def test_a_task_backend_or_cache_django_does_not_define_is_reported():
    assert ids(PROVIDERS={"dummy": DUMMY}, TASK_BACKEND="no-such-backend") == ["paygate.E001"]
    assert ids(PROVIDERS={"dummy": DUMMY}, TASK_BACKEND=None) == []
    assert ids(PROVIDERS={"dummy": DUMMY}, CACHE="nope") == ["paygate.E001"]
    assert "settings.CACHES" in messages(PROVIDERS={"dummy": DUMMY}, CACHE="nope")


@pytest.mark.parametrize("network", ["0.0.0.0/0", "10.0.0.1/0", "::/0", "2001:db8::/16"])
def test_networks_covering_most_of_the_internet_warn(network):
    assert ids(PROVIDERS={"dummy": DUMMY}, TRUSTED_PROXIES=[network]) == ["paygate.W005"]
    allowed = {"dummy": {**DUMMY, "WEBHOOK_ALLOWED_IPS": [network]}}
    assert ids(PROVIDERS=allowed) == ["paygate.W005"]
    assert ids(PROVIDERS={"dummy": DUMMY}, TRUSTED_PROXIES=["10.0.0.0/8", "fd00::/8"]) == []


@pytest.mark.parametrize(
    ("network", "broad"),
    [
        ("0.0.0.0/0", True),
        ("0.0.0.0/1", True),
        ("128.0.0.0/1", True),
        ("::/0", True),
        ("::/1", True),
        ("10.0.0.0/8", False),
        ("172.16.0.0/12", False),
        ("192.168.0.0/16", False),
        ("100.64.0.0/10", False),
        ("fd00::/8", False),
        ("fc00::/7", False),
        ("203.0.113.0/24", False),
    ],
)
def test_broadness_does_not_depend_on_the_python_version(network, broad, monkeypatch):
    """``ip_network("0.0.0.0/0").is_private`` is True on Python 3.10: never asked."""
    from django_paygate import security

    for cls in (ipaddress.IPv4Network, ipaddress.IPv6Network):
        monkeypatch.setattr(cls, "is_private", property(lambda self: True))
    assert security.overly_broad_network_entries([network]) == ([network] if broad else [])


STRIPE = {"secret_key": "sk_test_x", "publishable_key": "pk_test_x", "webhook_secret": "whsec_x"}
LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
SHARED_CACHE = {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "t"}


@pytest.mark.parametrize(
    ("backend", "warns"),
    [
        ("django.core.cache.backends.locmem.LocMemCache", True),
        ("django.core.cache.backends.dummy.DummyCache", True),
        ("django.core.cache.backends.db.DatabaseCache", False),
        ("django.core.cache.backends.redis.RedisCache", False),
        ("django.core.cache.backends.filebased.FileBasedCache", False),
    ],
)
def test_a_process_local_cache_for_the_limits_warns_in_production(production, backend, warns):
    production.CACHES = {"default": LOCMEM, "limits": {"BACKEND": backend, "LOCATION": "x"}}
    found = ids(PROVIDERS={"stripe": {"BACKEND": "stripe", "OPTIONS": STRIPE}}, CACHE="limits")
    assert found == (["paygate.W006"] if warns else [])
    if warns:
        text = messages(
            PROVIDERS={"stripe": {"BACKEND": "stripe", "OPTIONS": STRIPE}}, CACHE="limits"
        )
        assert "'limits'" in text
        assert "process" in text


def test_a_process_local_cache_is_fine_with_debug(settings):
    settings.CACHES = {"default": LOCMEM}
    assert ids(PROVIDERS={"stripe": {"BACKEND": "stripe", "OPTIONS": STRIPE}}) == []


def test_the_default_cache_is_what_the_check_looks_at(production):
    production.CACHES = {"default": LOCMEM, "shared": SHARED_CACHE}
    stripe = {"stripe": {"BACKEND": "stripe", "OPTIONS": STRIPE}}
    assert ids(PROVIDERS=stripe) == ["paygate.W006"]
    assert ids(PROVIDERS=stripe, CACHE="shared") == []
