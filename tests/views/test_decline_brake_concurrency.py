"""Parallel declined confirms never get past the decline brake (PostgreSQL, real threads).

The brake reserves an attempt in the cache before the provider is called, so eight
confirms released together with a limit of 2 declines per hour reach the provider at
most twice, whichever shared cache holds the counts.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection

from django_paygate.providers.dummy import CARD_DECLINED
from tests.services.test_concurrency import run_together
from tests.views.conftest import Api

pytestmark = [pytest.mark.locking, pytest.mark.django_db(transaction=True)]

PARALLEL = 8
LIMIT = 2
ROUNDS = 5
REDIS_URL = "redis://127.0.0.1:6379/11"
TABLE = "paygate_test_brake_cache"


def _redis_reachable() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


BACKENDS = {
    "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "database": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": TABLE},
    "redis": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL},
}


@pytest.fixture(params=sorted(BACKENDS))
def brake_cache(request: Any, settings: Any) -> Iterator[str]:
    kind = request.param
    if kind == "redis" and not _redis_reachable():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    # A fresh prefix instead of clear(): never flush a database someone else uses.
    settings.CACHES = {
        **settings.CACHES,
        "brake": {**BACKENDS[kind], "KEY_PREFIX": f"brake-{uuid.uuid4().hex}"},
    }
    if kind == "database":
        call_command("createcachetable", TABLE, verbosity=0)
    settings.PAYGATE = {
        **settings.PAYGATE,
        "CACHE": "brake",
        "RATE_LIMITS": {
            "declines": {"user": f"{LIMIT}/h", "ip": f"{LIMIT}/h"},
            "confirm_payment": None,  # only the brake is under test
            "create_intent": None,
        },
    }
    yield kind
    caches["brake"].close()
    if kind == "database":
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")


def _confirm_together(clients: list[Api], payment_ids: list[str], ip: str) -> list[int]:
    """The status of each client's declined confirm, all released at once."""

    def confirm(i: int) -> int:
        body = {"payment_id": payment_ids[i], "payment_method": CARD_DECLINED}
        response = clients[i].post("confirm_payment", body, REMOTE_ADDR=ip, check=False)
        return int(response.status_code)

    return run_together(len(clients), confirm)


def test_parallel_declined_confirms_never_exceed_the_limit(
    brake_cache: str, user: Any, dummy: Any
) -> None:
    reached: list[int] = []
    for round_ in range(ROUNDS):
        # A new user and IP each round: the user limit and the ip limit both start empty.
        owner = type(user).objects.create(username=f"tester-{round_}-{uuid.uuid4().hex[:6]}")
        clients = [Api(owner) for _ in range(PARALLEL)]
        payment_ids = [
            str(client.post("create_intent", client.order(100, "USD")).json_body["id"])
            for client in clients
        ]
        before = sum(1 for method, _key in dummy.calls if method == "confirm_payment")

        statuses = _confirm_together(clients, payment_ids, f"203.0.113.{round_ + 1}")

        calls = sum(1 for method, _key in dummy.calls if method == "confirm_payment") - before
        reached.append(calls)
        counted = Counter(statuses)
        assert set(counted) <= {402, 429}, statuses
        assert counted[402] == calls <= LIMIT, (brake_cache, round_, statuses)
        assert counted[429] == PARALLEL - calls
    assert max(reached) <= LIMIT
    assert sum(reached) > 0, "the brake refused every attempt"
