"""The provider registry, built lazily from ``settings.PAYGATE``.

``BACKEND`` is a dotted path to a :class:`~django_paygate.providers.base.BaseProvider`
subclass, or the name of an entry point in the ``django_paygate.providers``
group, which is how third-party packages offer their providers::

    [project.entry-points."django_paygate.providers"]
    acme = "acme_paygate.provider:AcmeProvider"

One instance is built per alias and kept until ``PAYGATE`` changes
(``override_settings`` included), so each instance owns its SDK client and
nothing is global.
"""

from __future__ import annotations

import threading
from importlib.metadata import entry_points
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from django_paygate.conf import paygate_settings
from django_paygate.exceptions import ConfigurationError
from django_paygate.providers.base import BaseProvider

ENTRY_POINT_GROUP = "django_paygate.providers"

_lock = threading.Lock()
_instances: dict[str, BaseProvider] = {}


def load_backend(backend: str) -> type[BaseProvider]:
    """The provider class named by a dotted path or an entry point name."""
    if "." not in backend:
        found = entry_points(group=ENTRY_POINT_GROUP, name=backend)
        if not found:
            raise ConfigurationError(f"No provider entry point is named {backend!r}.")
        cls = next(iter(found)).load()
    else:
        try:
            cls = import_string(backend)
        except ImportError as exc:
            raise ConfigurationError(f"Cannot import provider backend {backend!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, BaseProvider)):
        raise ConfigurationError(f"{backend!r} is not a BaseProvider subclass.")
    return cls


def build_provider(alias: str, config: dict[str, Any]) -> BaseProvider:
    cls = load_backend(str(config.get("BACKEND", "")))
    return cls(alias, **dict(config.get("OPTIONS") or {}))


def get_provider(alias: str | None = None) -> BaseProvider:
    """The provider configured under ``alias`` (the default provider when ``None``).

    Raises :class:`~django_paygate.exceptions.UnknownProvider` for an alias
    that is not configured.
    """
    alias = alias or paygate_settings.DEFAULT_PROVIDER
    provider = _instances.get(alias)
    if provider is not None:
        return provider
    config = paygate_settings.provider_config(alias)
    with _lock:
        provider = _instances.get(alias)
        if provider is None:
            provider = _instances[alias] = build_provider(alias, config)
    return provider


def get_providers() -> dict[str, BaseProvider]:
    """Every configured provider, by alias."""
    return {alias: get_provider(alias) for alias in paygate_settings.PROVIDERS}


def reset_providers() -> None:
    """Forget the built instances (the next call builds them again from settings)."""
    with _lock:
        _instances.clear()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "PAYGATE":
        reset_providers()


__all__ = ["BaseProvider", "get_provider", "get_providers", "load_backend", "reset_providers"]
