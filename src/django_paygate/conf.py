"""The one reader of ``settings.PAYGATE``.

Values are read when they are used, never at import time, so
``override_settings(PAYGATE=...)`` works in tests and a bad setting is
reported by ``manage.py check`` instead of crashing an import::

    from django_paygate.conf import paygate_settings
    paygate_settings.DEFAULT_PROVIDER

Every key and its default is in :data:`DEFAULTS`; docs/settings.md explains
each one. An unknown key is an error that names the key.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from django_paygate.exceptions import ConfigurationError

DUMMY_BACKEND = "django_paygate.providers.dummy.DummyProvider"

DEFAULTS: Mapping[str, Any] = {
    # Alias of the provider used when a caller names none.
    "DEFAULT_PROVIDER": None,
    # alias -> {"BACKEND": dotted path or entry point name, "OPTIONS": {...}}.
    # None means the dummy provider alone.
    "PROVIDERS": None,
    # Webhook bodies larger than this are refused with 413 before any signature work.
    "WEBHOOK_MAX_BODY_SIZE": 1024 * 1024,
    # How long processed webhook events are kept (paygate_prune_webhooks).
    "WEBHOOK_RETENTION_DAYS": 30,
    # A payment in flight with no news for this many seconds is "stuck" for paygate_sync.
    "SYNC_STUCK_AFTER": 15 * 60,
    # A payment still unresolved after sync this many seconds after its creation needs review.
    "SYNC_REVIEW_AFTER": 24 * 60 * 60,
    # Addresses of reverse proxies whose X-Forwarded-For is believed (CIDR strings).
    "TRUSTED_PROXIES": [],
    # The Tasks framework backend alias that delivers notifications.
    "TASK_BACKEND": "default",
    # Email notifications: see docs/emails.md.
    "EMAILS": {},
    # Outbox delivery: attempts before a notification is given up, and the first backoff (s).
    "NOTIFICATION_MAX_ATTEMPTS": 8,
    "NOTIFICATION_RETRY_DELAY": 60,
    # Seconds a worker holds a notification it claimed; longer than the slowest
    # post-commit receiver and the email backend's timeout (see docs/signals.md).
    "NOTIFICATION_LEASE": 5 * 60,
    # Rows one claim of the outbox worker takes; a batch is reserved for twice the lease.
    "NOTIFICATION_BATCH_SIZE": 50,
    # Whether marking a notification sent waits for PostgreSQL's WAL flush (see
    # docs/decisions.md, "Side effects"): False saves that wait per email; a crash of
    # the database server then may send again the emails of its last fraction of a
    # second, at most a batch per worker.
    "NOTIFICATION_SYNC_COMMIT": True,
    # JSON API: rate limits, body limits. See docs/api.md.
    "RATE_LIMITS": {},
    "API_MAX_METADATA_BYTES": 4096,
    "CACHE": "default",
    # Per-IP limits count an IPv6 client by its network of this prefix length (a /64 is
    # what one customer line gets), an IPv4 client by its address.
    "RATE_LIMIT_IPV6_PREFIX": 64,
    # JSON API: largest request body (bytes); larger ones get 413. See docs/api.md.
    "API_MAX_BODY_BYTES": 32 * 1024,
    # Store the client IP in payment.metadata["paygate_client_ip"] (analytics fraud signal).
    "API_STORE_CLIENT_IP": True,
    # Analytics fraud signal: users / IPs with at least this many failed attempts.
    "ANALYTICS_FRAUD_MIN_FAILURES": 3,
    # Short name -> "app_label.Model" of the host models customers pay for (docs/checkout.md).
    "PAYABLES": {},
    # Let the dummy provider charge test cards with DEBUG = False (a staging site).
    "DUMMY_ALLOWED_IN_PRODUCTION": False,
}

#: Settings that must be ``True`` or ``False``.
BOOLEANS = ("DUMMY_ALLOWED_IN_PRODUCTION", "NOTIFICATION_SYNC_COMMIT")

PROVIDER_KEYS = frozenset({"BACKEND", "OPTIONS", "WEBHOOK_ALLOWED_IPS"})

#: Integer settings and the least value that means something (0 for a count of seconds
#: or days that may be zero, 1 for a size, a count or a lease).
INTEGER_MINIMUMS = {
    "WEBHOOK_MAX_BODY_SIZE": 1,
    "WEBHOOK_RETENTION_DAYS": 0,
    "SYNC_STUCK_AFTER": 0,
    "SYNC_REVIEW_AFTER": 0,
    "NOTIFICATION_MAX_ATTEMPTS": 1,
    "NOTIFICATION_RETRY_DELAY": 0,
    "NOTIFICATION_LEASE": 1,
    "NOTIFICATION_BATCH_SIZE": 1,
    "API_MAX_METADATA_BYTES": 1,
    "API_MAX_BODY_BYTES": 1,
    "ANALYTICS_FRAUD_MIN_FAILURES": 1,
    "RATE_LIMIT_IPV6_PREFIX": 1,
}

#: Integer settings with a greatest value too.
INTEGER_MAXIMUMS = {"RATE_LIMIT_IPV6_PREFIX": 128, "NOTIFICATION_BATCH_SIZE": 1000}


def _unknown_key_message(key: str, known: set[str] | frozenset[str], where: str) -> str:
    hint = difflib.get_close_matches(key, sorted(known), n=1)
    suffix = f" Did you mean {hint[0]!r}?" if hint else ""
    return f"Unknown key {key!r} in {where}.{suffix} Known keys: {', '.join(sorted(known))}."


def running_tests() -> bool:
    """Whether Django's test environment is set up (its test runner, pytest-django).

    Both turn ``DEBUG`` off while a suite runs; what is meant for development
    (the dummy provider, a local-memory cache) is not a production problem there.
    """
    from django.test.utils import _TestState

    return hasattr(_TestState, "saved_data")


def in_production() -> bool:
    """``DEBUG`` is off, outside a test run."""
    return not settings.DEBUG and not running_tests()


class PaygateSettings:
    """Typed, lazy access to ``settings.PAYGATE`` with defaults."""

    @property
    def raw(self) -> Mapping[str, Any]:
        value = getattr(settings, "PAYGATE", None)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ConfigurationError("settings.PAYGATE must be a dict.")
        return value

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(name)
        return self.raw.get(name, DEFAULTS[name])

    @property
    def PROVIDERS(self) -> dict[str, dict[str, Any]]:
        providers = self.raw.get("PROVIDERS")
        if providers is None:
            return {"dummy": {"BACKEND": DUMMY_BACKEND, "OPTIONS": {}}}
        if not isinstance(providers, Mapping):
            raise ConfigurationError("PAYGATE['PROVIDERS'] must be a dict of alias -> config.")
        return {str(alias): dict(conf) for alias, conf in providers.items()}

    @property
    def DEFAULT_PROVIDER(self) -> str:
        default = self.raw.get("DEFAULT_PROVIDER")
        if default:
            return str(default)
        providers = self.PROVIDERS
        if len(providers) == 1:
            return next(iter(providers))
        if "dummy" in providers:
            return "dummy"
        raise ConfigurationError(
            "PAYGATE['DEFAULT_PROVIDER'] is not set and more than one provider is configured."
        )

    def provider_config(self, alias: str) -> dict[str, Any]:
        from django_paygate.exceptions import UnknownProvider

        try:
            return self.PROVIDERS[alias]
        except KeyError:
            raise UnknownProvider(f"No payment provider is configured as {alias!r}.") from None

    def validate(self) -> list[str]:
        """Every problem with the keys of ``PAYGATE``, as messages (empty when fine)."""
        problems = []
        try:
            raw = self.raw
        except ConfigurationError as exc:
            return [str(exc)]
        problems += [
            _unknown_key_message(key, set(DEFAULTS), "settings.PAYGATE")
            for key in raw
            if key not in DEFAULTS
        ]
        for key, least in INTEGER_MINIMUMS.items():
            value = raw.get(key, DEFAULTS[key])
            most = INTEGER_MAXIMUMS.get(key)
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or value < least
                or (most is not None and value > most)
            ):
                bounds = f"from {least} to {most}" if most is not None else f"of at least {least}"
                problems.append(f"PAYGATE[{key!r}] must be an integer {bounds}.")
        problems += [
            f"PAYGATE[{key!r}] must be True or False."
            for key in BOOLEANS
            if not isinstance(raw.get(key, DEFAULTS[key]), bool)
        ]
        problems += self._named_backend_problems(raw)
        if "PAYABLES" in raw:
            from django_paygate.payables import problems as payable_problems

            problems += payable_problems()
        try:
            providers = self.PROVIDERS
        except ConfigurationError as exc:
            return [*problems, str(exc)]
        for alias, conf in providers.items():
            where = f"PAYGATE['PROVIDERS'][{alias!r}]"
            problems += [
                _unknown_key_message(key, PROVIDER_KEYS, where)
                for key in conf
                if key not in PROVIDER_KEYS
            ]
            if not conf.get("BACKEND"):
                problems.append(f"{where} has no 'BACKEND'.")
            if not isinstance(conf.get("OPTIONS", {}), Mapping):
                problems.append(f"{where}['OPTIONS'] must be a dict.")
        return problems

    @staticmethod
    def _named_backend_problems(raw: Mapping[str, Any]) -> list[str]:
        """A task backend or a cache that ``PAYGATE`` names but Django does not define."""
        problems = []
        task_backend = raw.get("TASK_BACKEND", DEFAULTS["TASK_BACKEND"])
        tasks = getattr(settings, "TASKS", None) or {"default": {}}  # Django's own default
        if task_backend is not None and task_backend not in tasks:
            problems.append(
                f"PAYGATE['TASK_BACKEND'] is {task_backend!r}, which is not in settings.TASKS "
                "(or None): post-commit signals and emails would only go out through "
                "paygate_send_notifications."
            )
        cache = raw.get("CACHE", DEFAULTS["CACHE"])
        if cache not in settings.CACHES:
            problems.append(f"PAYGATE['CACHE'] is {cache!r}, which is not in settings.CACHES.")
        return problems


paygate_settings = PaygateSettings()
