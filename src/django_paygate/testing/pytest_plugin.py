"""pytest fixtures for host projects (loaded automatically through the ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def paygate_dummy() -> Iterator[object]:
    """The configured dummy provider, with its remote state reset before and after the test."""
    from django_paygate.providers import get_provider, reset_providers
    from django_paygate.providers.dummy import DummyProvider

    reset_providers()
    provider = next(
        (p for p in _providers().values() if isinstance(p, DummyProvider)), None
    ) or get_provider("dummy")
    yield provider
    reset_providers()


def _providers() -> dict[str, object]:
    from django_paygate.providers import get_providers

    return dict(get_providers())
