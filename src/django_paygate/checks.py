"""System checks: misconfiguration is reported by ``manage.py check``, never by an import crash.

=============  ==============================================================
paygate.E001   ``PAYGATE`` has an unknown key or a malformed provider entry
paygate.E002   a provider's ``BACKEND`` cannot be imported or built (bad option,
               missing secret)
paygate.E003   ``DEFAULT_PROVIDER`` names no configured provider
paygate.E004   ``PAYGATE_PAYMENT_MODEL`` does not name an installed model
               that subclasses ``AbstractPayment``
paygate.E005   ``PAYGATE['EMAILS']`` has an unknown key or a value of the wrong type
paygate.E006   ``PAYGATE['RATE_LIMITS']`` names an unknown endpoint or a malformed limit
paygate.E007   a configured provider's SDK is not installed (the message names the
               extra: ``pip install "django-paygate[stripe]"``)
paygate.E008   the dummy provider is enabled while ``DEBUG = False`` (outside a test
               run); a warning with the same id when ``DUMMY_ALLOWED_IN_PRODUCTION``
paygate.W001   a provider has no webhook secret: its webhooks will all be refused
paygate.W002   replaced by E008; no longer raised
paygate.W003   ``WEBHOOK_RETENTION_DAYS`` is below 7 days
paygate.W004   ``TRUSTED_PROXIES`` or a ``WEBHOOK_ALLOWED_IPS`` holds something that is
               not an IP address or network
paygate.W005   ``TRUSTED_PROXIES`` or a ``WEBHOOK_ALLOWED_IPS`` covers most of the
               public Internet (``0.0.0.0/0``)
paygate.W006   the cache of the rate limits is process-local (``LocMemCache``,
               ``DummyCache``) while ``DEBUG = False``
=============  ==============================================================

One run reports every problem: a malformed entry is reported and skipped, and
the other checks still run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from django_paygate.conf import in_production, paygate_settings
from django_paygate.exceptions import ConfigurationError

#: The published documentation, which the hints name.
DOCS_URL = "https://django-paygate.readthedocs.io/en/latest/"


def see(page: str) -> str:
    """A hint naming a page of the published documentation."""
    return f"See {DOCS_URL}{page}.html"


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from django_paygate.providers import MissingSDK, build_provider
    from django_paygate.providers.dummy import DummyProvider

    messages: list[CheckMessage] = [
        Error(problem, hint=see("settings"), id="paygate.E001")
        for problem in paygate_settings.validate()
    ]
    try:
        providers = paygate_settings.PROVIDERS
    except ConfigurationError:  # PAYGATE or its PROVIDERS is not a dict: E001 says so
        return messages
    for alias, conf in providers.items():
        if not conf.get("BACKEND") or not isinstance(conf.get("OPTIONS", {}), Mapping):
            continue  # E001 says so
        try:
            provider = build_provider(alias, conf)
        except MissingSDK as exc:
            messages.append(
                Error(
                    f"Provider {alias!r} needs the {exc.sdk} SDK, which is not installed.",
                    hint=f'pip install "{exc.requirement}"',
                    obj=f"PAYGATE['PROVIDERS'][{alias!r}]",
                    id="paygate.E007",
                )
            )
            continue
        except ConfigurationError as exc:
            messages.append(
                Error(str(exc), obj=f"PAYGATE['PROVIDERS'][{alias!r}]", id="paygate.E002")
            )
            continue
        if "webhook_secret" in provider.default_options and not provider.webhook_secrets():
            messages.append(
                Warning(
                    f"Provider {alias!r} has no webhook_secret: "
                    "every webhook it sends will be refused.",
                    hint="Set OPTIONS['webhook_secret'] (a list during rotation).",
                    id="paygate.W001",
                )
            )
        if isinstance(provider, DummyProvider) and in_production():
            messages.append(_dummy_in_production(alias))
    try:
        default = paygate_settings.DEFAULT_PROVIDER
    except ConfigurationError as exc:
        messages.append(Error(str(exc), id="paygate.E003"))
    else:
        if default not in providers:
            messages.append(
                Error(
                    f"DEFAULT_PROVIDER {default!r} is not in PAYGATE['PROVIDERS'].",
                    id="paygate.E003",
                )
            )
    from django_paygate.emails import validate_settings as email_problems

    messages += [
        Error(problem, hint=see("emails"), id="paygate.E005") for problem in email_problems()
    ]
    from django_paygate import security

    messages += [
        Error(problem, hint=see("api"), id="paygate.E006")
        for problem in security.validate_rate_limits()
    ]
    networks = {"PAYGATE['TRUSTED_PROXIES']": paygate_settings.TRUSTED_PROXIES}
    for alias, conf in providers.items():
        networks[f"PAYGATE['PROVIDERS'][{alias!r}]['WEBHOOK_ALLOWED_IPS']"] = conf.get(
            "WEBHOOK_ALLOWED_IPS"
        )
    for where, entries in networks.items():
        bad = security.invalid_network_entries(entries)
        if bad:
            messages.append(
                Warning(
                    f"{where} holds entries that are not IP addresses or networks: "
                    f"{', '.join(bad)}. They match nothing.",
                    id="paygate.W004",
                )
            )
        broad = security.overly_broad_network_entries(entries)
        if broad:
            messages.append(
                Warning(
                    f"{where} trusts most of the Internet: {', '.join(broad)}.",
                    hint="A client could then choose its own address (X-Forwarded-For) or "
                    "send webhooks from anywhere. List your proxies' or provider's networks.",
                    id="paygate.W005",
                )
            )
    messages += _process_local_cache()
    retention = paygate_settings.WEBHOOK_RETENTION_DAYS
    if not isinstance(retention, int) or retention < 7:
        messages.append(
            Warning(
                f"WEBHOOK_RETENTION_DAYS is {retention!r}: providers retry for up to 3 days, "
                "and a pruned event can be processed again.",
                hint="Keep at least 7 days.",
                id="paygate.W003",
            )
        )
    return messages


def _process_local_cache() -> list[CheckMessage]:
    """W006: rate limits and the decline brake counted per process in production."""
    from django.core.cache import caches
    from django.core.cache.backends.dummy import DummyCache
    from django.core.cache.backends.locmem import LocMemCache

    alias = str(paygate_settings.CACHE)
    if not in_production() or not isinstance(caches[alias], LocMemCache | DummyCache):
        return []
    return [
        Warning(
            f"PAYGATE['CACHE'] is {alias!r}, a {type(caches[alias]).__name__}: each process "
            "keeps its own counters (DummyCache keeps none), so with several workers or "
            "servers the rate limits and the decline brake let through a multiple of "
            "their limits.",
            hint="Point PAYGATE['CACHE'] at a cache every process shares: Redis, Memcached "
            "or the database cache. " + see("security"),
            id="paygate.W006",
        )
    ]


def _dummy_in_production(alias: str) -> CheckMessage:
    """E008: the dummy provider with DEBUG off; a warning where a staging site allows it."""
    if paygate_settings.DUMMY_ALLOWED_IN_PRODUCTION is True:
        return Warning(
            f"The dummy provider is enabled as {alias!r} while DEBUG is False, and "
            "PAYGATE['DUMMY_ALLOWED_IN_PRODUCTION'] lets it charge test cards.",
            hint="Only for a staging site: no real money moves through it.",
            id="paygate.E008",
        )
    return Error(
        f"The dummy provider is enabled as {alias!r} while DEBUG is False: it accepts "
        "test cards, and refuses to charge anything.",
        hint="Configure a real provider in PAYGATE['PROVIDERS'] (with no PAYGATE setting, "
        "the dummy provider is the default). On a staging site, set "
        "PAYGATE['DUMMY_ALLOWED_IN_PRODUCTION'] = True. " + see("providers/dummy"),
        id="paygate.E008",
    )


@register(Tags.models)
def check_payment_model(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from django_paygate.models import AbstractPayment, get_payment_model

    try:
        model = get_payment_model()
    except Exception as exc:
        return [Error(f"PAYGATE_PAYMENT_MODEL cannot be loaded: {exc}", id="paygate.E004")]
    if not issubclass(model, AbstractPayment):
        return [Error(f"{model.__name__} does not subclass AbstractPayment.", id="paygate.E004")]
    return []
