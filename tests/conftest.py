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
#: Row locks (``SELECT ... FOR UPDATE``) that block another transaction: not SQLite's.
WITH_ROW_LOCKS = os.environ.get("PAYGATE_TEST_DB") in ("postgres", "mysql")

if ON_POSTGRES:
    from django.db.backends.postgresql.operations import DatabaseOperations

    _truncate = DatabaseOperations.sql_flush

    def _flush_by_delete(
        self: Any, style: Any, tables: Any, *, reset_sequences: bool = False, **kwargs: Any
    ) -> list[str]:
        """Empty the tables after a transactional test with DELETE, as Django's MySQL
        backend does: PostgreSQL's TRUNCATE makes new files for every table and index
        (half a second for this schema on a busy machine, after each such test), while
        deleting the few rows a test wrote takes milliseconds. Foreign keys are deferred,
        so the order does not matter."""
        if reset_sequences or not tables:
            return _truncate(self, style, tables, reset_sequences=reset_sequences, **kwargs)
        quoted = (style.SQL_FIELD(self.quote_name(table)) for table in tables)
        return ["SET CONSTRAINTS ALL DEFERRED", *(f"DELETE FROM {table}" for table in quoted)]

    DatabaseOperations.sql_flush = _flush_by_delete  # type: ignore[method-assign]

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
    skip_postgres = pytest.mark.skip(reason="needs PostgreSQL: run with PAYGATE_TEST_DB=postgres")
    skip_locking = pytest.mark.skip(
        reason="needs row locks: run with PAYGATE_TEST_DB=postgres or PAYGATE_TEST_DB=mysql"
    )
    for item in items:
        if "postgres" in item.keywords and not ON_POSTGRES:
            item.add_marker(skip_postgres)
        elif "locking" in item.keywords and not WITH_ROW_LOCKS:
            item.add_marker(skip_locking)


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
    """Data statements: SELECT, INSERT, UPDATE, DELETE, WITH (not SAVEPOINT/BEGIN/COMMIT).

    mysqlclient has no text for a statement the server refused (a duplicate key), so
    Django logs it as ``None``: it is a round trip all the same, and counted.
    """
    verbs = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "NONE")
    return sum(1 for q in captured.captured_queries if q["sql"].lstrip().upper().startswith(verbs))


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


def on_mysql() -> bool:
    return connection.vendor == "mysql"


def pinned(*, postgresql: int, other: int, mysql: int | None = None) -> int:
    """A statement count per database.

    PostgreSQL runs a service's writes as one statement (``django_paygate.sql``).
    MariaDB/MySQL has no ``INSERT … ON CONFLICT … RETURNING``: the webhook inbox locks
    the payment, then claims its row in a savepoint, and a duplicate is a refused
    ``INSERT`` and a read of the row it collided with (``mysql``, where it differs
    from ``other``, which is SQLite's).
    """
    if on_postgres():
        return postgresql
    if on_mysql() and mysql is not None:
        return mysql
    return other
