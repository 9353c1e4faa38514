"""The provider registry, built lazily from ``settings.PAYGATE``.

``BACKEND`` is a dotted path to a :class:`~django_paygate.providers.base.BaseProvider`
subclass, or the name of an entry point in the ``django_paygate.providers``
group, which is how third-party packages offer their providers::

    [project.entry-points."django_paygate.providers"]
    acme = "acme_paygate.provider:AcmeProvider"

One instance is built per alias and kept until that alias's entry in
``PAYGATE["PROVIDERS"]`` changes (``override_settings`` included; a change of
another key, such as ``EMAILS``, keeps it), so each instance owns its SDK
client, nothing is global, and a test's handle on a provider stays the one
the services use.

The bundled Stripe and Razorpay adapters import without their SDKs; a provider
whose SDK is missing is refused when it is built, with the extra to install
(``pip install "django-paygate[stripe]"``), and reported by ``manage.py check``
as ``paygate.E007``.
"""

from __future__ import annotations

import importlib
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
#: The configuration each instance was built from.
_built_from: dict[str, dict[str, Any]] = {}


#: The SDK each bundled adapter needs (by the adapter's module), and the extra that installs it.
SDK_EXTRAS: dict[str, tuple[str, str]] = {
    "django_paygate.providers.stripe": ("stripe", "stripe"),
    "django_paygate.providers.razorpay": ("razorpay", "razorpay"),
}


class MissingSDK(ConfigurationError):
    """A provider's SDK is not installed; ``requirement`` is what installs it."""

    def __init__(self, backend: str, sdk: str, extra: str) -> None:
        self.sdk = sdk
        self.requirement = f"django-paygate[{extra}]"
        super().__init__(
            f"Provider backend {backend!r} needs the {sdk} SDK, which is not installed: "
            f'pip install "{self.requirement}".'
        )


def _missing_sdk(modules: list[str]) -> tuple[str, str] | None:
    """``(sdk, extra)`` of the first of these adapter modules whose SDK cannot be imported."""
    for module in modules:
        needed = SDK_EXTRAS.get(module)
        if needed is None:
            continue
        try:
            importlib.import_module(needed[0])
        except ImportError:
            return needed
    return None


def missing_sdk(cls: type[BaseProvider]) -> tuple[str, str] | None:
    """``(sdk, extra)`` when the SDK ``cls`` (or a bundled adapter it extends) needs cannot
    be imported; ``None`` when nothing is missing."""
    return _missing_sdk([klass.__module__ for klass in cls.__mro__])


def load_backend(backend: str) -> type[BaseProvider]:
    """The provider class named by a dotted path or an entry point name.

    Raises :class:`MissingSDK` when it is a bundled adapter whose SDK is not installed,
    :class:`~django_paygate.exceptions.ConfigurationError` when it cannot be loaded.
    """
    if "." not in backend:
        found = entry_points(group=ENTRY_POINT_GROUP, name=backend)
        if not found:
            raise ConfigurationError(f"No provider entry point is named {backend!r}.")
        point = next(iter(found))
        module, load = point.module, point.load
    else:
        module = backend.rpartition(".")[0]

        def load() -> Any:
            return import_string(backend)

    try:
        cls = load()
    except ImportError as exc:
        missing = _missing_sdk([module])
        if missing is not None:
            raise MissingSDK(backend, *missing) from exc
        raise ConfigurationError(f"Cannot import provider backend {backend!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, BaseProvider)):
        raise ConfigurationError(f"{backend!r} is not a BaseProvider subclass.")
    missing = missing_sdk(cls)
    if missing is not None:
        raise MissingSDK(backend, *missing)
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
            _built_from[alias] = config
    return provider


def get_providers() -> dict[str, BaseProvider]:
    """Every configured provider, by alias."""
    return {alias: get_provider(alias) for alias in paygate_settings.PROVIDERS}


def reset_providers() -> None:
    """Forget the built instances (the next call builds them again from settings)."""
    with _lock:
        _instances.clear()
        _built_from.clear()


@receiver(setting_changed)
def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting != "PAYGATE":
        return
    try:
        configured = paygate_settings.PROVIDERS
    except ConfigurationError:
        reset_providers()
        return
    with _lock:
        for alias in [a for a, built in _built_from.items() if configured.get(a) != built]:
            _instances.pop(alias, None)
            _built_from.pop(alias, None)


__all__ = [
    "BaseProvider",
    "MissingSDK",
    "get_provider",
    "get_providers",
    "load_backend",
    "missing_sdk",
    "reset_providers",
]
