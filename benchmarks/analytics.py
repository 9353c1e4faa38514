"""Payment analytics over generated payments on PostgreSQL: time and query count.

Creates a throwaway database, fills it with ``--payments`` payments (default
100,000) spread over 90 days, 4 currencies and 3 providers, with refunds,
disputes, failed attempts and client IPs, then times
:func:`django_paygate.analytics.payment_analytics` (what the JSON endpoint and
the admin dashboard show) over a 30-day and a 90-day range and prints the
median time and the number of queries, beside the time of one aggregate scan
of the same payments (``count(*)`` and ``sum(amount)`` over the range: the
least any report over them costs) and the ratio of the two. The database is
dropped at the end. It prints figures; it asserts nothing about time.

    python benchmarks/analytics.py [--payments 1000000] [--repeat 5]

Connection: ``PAYGATE_BENCH_PG_HOST`` (127.0.0.1), ``PAYGATE_BENCH_PG_PORT``
(5432), ``PAYGATE_BENCH_PG_USER`` (postgres), ``PAYGATE_BENCH_PG_PASSWORD``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import django
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

STATUSES = [
    ("succeeded", 60),
    ("failed", 15),
    ("pending", 6),
    ("canceled", 4),
    ("partially_refunded", 4),
    ("refunded", 3),
    ("authorized", 3),
    ("requires_action", 3),
    ("processing", 2),
]
CURRENCIES = [("USD", 2), ("EUR", 2), ("INR", 2), ("JPY", 0)]
PROVIDERS = ["stripe", "razorpay", "dummy"]
FAILURE_CODES = ["card_declined", "insufficient_funds", "expired_card", "incorrect_cvc",
                 "do_not_honor", "fraudulent", "processing_error"]  # fmt: skip
PAID = {"succeeded", "partially_refunded", "refunded"}


def configure() -> None:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only",
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django_paygate",
        ],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": os.environ.get("PAYGATE_BENCH_PG_HOST", "127.0.0.1"),
                "PORT": os.environ.get("PAYGATE_BENCH_PG_PORT", "5432"),
                "USER": os.environ.get("PAYGATE_BENCH_PG_USER", "postgres"),
                "PASSWORD": os.environ.get("PAYGATE_BENCH_PG_PASSWORD", ""),
                "NAME": "postgres",
                "TEST": {"NAME": f"paygate_bench_analytics_{os.getpid()}"},
            }
        },
        PAYGATE={
            "PROVIDERS": {"dummy": {"BACKEND": "django_paygate.providers.dummy.DummyProvider"}}
        },
    )
    django.setup()


def generate(count: int, seed: int = 7) -> None:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from django_paygate.models import Dispute, PaymentEvent, get_payment_model

    rng = random.Random(seed)
    Payment = get_payment_model()
    User = get_user_model()
    users = User.objects.bulk_create(
        [
            User(username=f"customer{i}", email=f"c{i}@example.com")
            for i in range(max(10, count // 50))
        ]
    )
    ips = [f"198.51.{i // 256}.{i % 256}" for i in range(max(10, count // 20))]
    names = [s for s, _ in STATUSES]
    weights = [w for _, w in STATUSES]
    now = timezone.now()

    # created_at is auto_now_add: let the generator set it, for the length of the inserts.
    created_field = Payment._meta.get_field("created_at")
    created_field.auto_now_add = False  # type: ignore[attr-defined]
    try:
        batch: list[Any] = []
        for i in range(count):
            status = rng.choices(names, weights)[0]
            currency, _places = rng.choice(CURRENCIES)
            amount = rng.randrange(100, 100_000)
            captured = amount if status in PAID else 0
            refunded = (
                amount if status == "refunded"
                else rng.randrange(1, amount) if status == "partially_refunded"
                else 0
            )  # fmt: skip
            batch.append(
                Payment(
                    id=uuid.uuid4(),
                    provider=rng.choice(PROVIDERS),
                    provider_payment_id=f"bench_{i}",
                    amount=amount,
                    currency=currency,
                    amount_captured=captured,
                    amount_refunded=refunded,
                    status=status,
                    user=rng.choice(users),
                    metadata={"paygate_client_ip": rng.choice(ips)},
                    failure_code=rng.choice(FAILURE_CODES) if status == "failed" else "",
                    needs_review=rng.random() < 0.005,
                    created_at=now - timedelta(seconds=rng.randrange(90 * 86400)),
                )
            )
            if len(batch) == 5000:
                Payment.objects.bulk_create(batch)
                batch = []
        if batch:
            Payment.objects.bulk_create(batch)
    finally:
        created_field.auto_now_add = True  # type: ignore[attr-defined]

    paid = list(Payment.objects.filter(status__in=PAID).values_list("pk", "amount", "currency"))
    disputes = [
        Dispute(payment_id=pk, provider_dispute_id=f"dp_{n}", amount=amount, currency=currency)
        for n, (pk, amount, currency) in enumerate(rng.sample(paid, len(paid) // 100))
    ]
    Dispute.objects.bulk_create(disputes, batch_size=5000)

    failed = list(Payment.objects.filter(status="failed").values_list("pk", flat=True))
    events = []
    for pk in failed:
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            events.append(
                PaymentEvent(payment_id=pk, from_status="pending", to_status="failed", source="api")
            )
    PaymentEvent.objects.bulk_create(events, batch_size=5000)
    # Spread the attempts over the same 90 days as the payments.
    from django.db import connection

    with connection.cursor() as cursor:
        table = PaymentEvent._meta.db_table
        cursor.execute(f"UPDATE {table} SET created_at = now() - random() * interval '90 days'")
        cursor.execute("ANALYZE")


def one_scan(repeat: int, *, start: Any, end: Any, currency: str | None = None) -> float:
    """Median seconds of one aggregate scan of the payments in the range."""
    from django.db.models import Count, Sum

    from django_paygate.analytics import bounds
    from django_paygate.models import get_payment_model

    lower, upper = bounds(start, end)
    rows = get_payment_model().objects.filter(created_at__gte=lower, created_at__lt=upper)
    if currency:
        rows = rows.filter(currency=currency)
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        rows.aggregate(n=Count("pk"), total=Sum("amount"))
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def measure(label: str, repeat: int, **kwargs: Any) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_paygate.analytics import payment_analytics

    scan = one_scan(repeat, **{k: v for k, v in kwargs.items() if k != "provider"})
    timings = []
    result: dict[str, Any] = {}
    queries = 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            result = payment_analytics(**kwargs)
            timings.append(time.perf_counter() - started)
        queries = len(captured.captured_queries)
    covered = sum(g["count"] for g in result["groups"])
    median = statistics.median(timings)
    print(
        f"{label:<20} {covered:>9,} payments  {len(result['groups']):>3} groups  "
        f"{len(result['daily']):>5} daily rows  {queries} queries  "
        f"median {median * 1000:8.1f} ms  (min {min(timings) * 1000:.1f}, "
        f"max {max(timings) * 1000:.1f}, n={repeat})  "
        f"one aggregate scan {scan * 1000:7.1f} ms  ratio {median / scan:5.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    configure()
    from django.db import connection
    from django.utils import timezone

    old_name = connection.settings_dict["NAME"]
    test_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        started = time.perf_counter()
        generate(args.payments)
        print(f"PostgreSQL {connection.pg_version}, database {test_name}")
        print(f"generated {args.payments:,} payments in {time.perf_counter() - started:.1f} s")
        today = timezone.localdate()
        measure("last 30 days", args.repeat,
                start=today - timedelta(days=29), end=today)  # fmt: skip
        measure("last 90 days", args.repeat,
                start=today - timedelta(days=89), end=today)  # fmt: skip
        measure("90 days, USD only", args.repeat,
                start=today - timedelta(days=89), end=today, currency="USD")  # fmt: skip
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
