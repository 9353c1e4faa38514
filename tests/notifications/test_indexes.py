"""The outbox's indexes: every update of a row (its claim, its mark) writes each of them again.

So only what a query needs is indexed: no LIKE index beside the ESP's message id, and the
refund and dispute columns, empty on most rows, only where they are set.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection

from django_paygate.models import Notification
from tests.conftest import on_postgres

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(not on_postgres(), reason="PostgreSQL's own indexes and plans"),
]


def _indexes() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
            [Notification._meta.db_table],
        )
        return dict(cursor.fetchall())


def _plan(queryset: Any) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = queryset.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_the_outbox_has_the_indexes_its_queries_need_and_no_more() -> None:
    indexes = _indexes()

    assert len(indexes) == 6, sorted(indexes)
    assert not [name for name in indexes if name.endswith("_like")]
    assert "WHERE (refund_id IS NOT NULL)" in indexes["paygate_notif_refund_idx"]
    assert "WHERE (dispute_id IS NOT NULL)" in indexes["paygate_notif_dispute_idx"]


@pytest.mark.parametrize(
    ("lookup", "index"),
    [
        ({"refund_id": uuid.uuid4()}, "paygate_notif_refund_idx"),
        ({"refund_id__in": [uuid.uuid4(), uuid.uuid4()]}, "paygate_notif_refund_idx"),
        ({"dispute_id": uuid.uuid4()}, "paygate_notif_dispute_idx"),
        ({"esp_message_id": "<abc@esp>"}, "paygate_notif_esp_idx"),
    ],
)
def test_each_lookup_finds_its_index(lookup: dict[str, Any], index: str) -> None:
    assert index in _plan(Notification.objects.filter(**lookup))
