from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from django_paygate.providers import get_provider, reset_providers
from django_paygate.providers.dummy import DummyProvider
from django_paygate.testing.signals import SignalRecorder

ON_POSTGRES = os.environ.get("PAYGATE_TEST_DB") == "postgres"

# No wall-clock deadlines (a loaded CI machine is slow, not wrong); in CI the examples are
# derived from each test's name, so a run can be repeated exactly.
hypothesis_settings.register_profile(
    "paygate",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),
)
hypothesis_settings.load_profile("paygate")


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    if ON_POSTGRES:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: run with PAYGATE_TEST_DB=postgres")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _fresh_providers() -> Iterator[None]:
    reset_providers()
    yield
    reset_providers()


@pytest.fixture
def dummy() -> DummyProvider:
    provider = get_provider("dummy")
    assert isinstance(provider, DummyProvider)
    return provider


@pytest.fixture
def signal_spy() -> Iterator[SignalRecorder]:
    """Every paygate signal sent during the test (the public test kit's recorder)."""
    with SignalRecorder() as recorder:
        yield recorder


@pytest.fixture
def data_statements(django_assert_max_num_queries: Any) -> Any:
    return django_assert_max_num_queries


def count_data_statements(captured: Any) -> int:
    """Data statements: SELECT, INSERT, UPDATE, DELETE, WITH (not SAVEPOINT/BEGIN/COMMIT)."""
    verbs = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")
    return sum(1 for q in captured.captured_queries if q["sql"].lstrip().upper().startswith(verbs))


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def pinned(*, postgresql: int, other: int) -> int:
    """A statement count: PostgreSQL runs a service's writes as one (``django_paygate.sql``)."""
    return postgresql if on_postgres() else other
