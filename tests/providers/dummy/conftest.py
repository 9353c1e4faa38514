from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from django_paygate.providers import get_provider
from django_paygate.providers.dummy import DummyProvider

DUMMY = "django_paygate.providers.dummy.DummyProvider"


@pytest.fixture
def dummy_with(settings: Any) -> Callable[..., DummyProvider]:
    """Configure the ``dummy`` alias with ``options``; the provider built from them."""

    def configure(**options: Any) -> DummyProvider:
        settings.PAYGATE = {
            "DEFAULT_PROVIDER": "dummy",
            "PROVIDERS": {"dummy": {"BACKEND": DUMMY, "OPTIONS": options}},
        }
        provider = get_provider("dummy")
        assert isinstance(provider, DummyProvider)
        return provider

    return configure
