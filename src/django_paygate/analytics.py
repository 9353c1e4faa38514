"""Read-only payment analytics, computed by the database.

:func:`payment_analytics` answers with five aggregate queries, whatever the
number of payments: no row is loaded into Python, only grouped results (one
row per currency and provider, per day, per failure code, per suspicious user
or IP). Sums are never added across currencies.

Definitions (per currency and provider, over payments *created* in the range):

* ``success_rate`` = paid / (paid + failed), where *paid* is succeeded,
  partially refunded or refunded. Pending, in-flight, authorized and canceled
  payments are left out: they have not succeeded or failed yet.
* ``refund_rate`` = paid payments with any refund / paid payments.
* ``refunded_amount_rate`` = amount refunded / amount captured.
* ``dispute_rate`` = payments with at least one dispute / paid payments.

A rate whose denominator is zero is ``None``. Rates are rounded to 4 places.

The fraud signal counts *failed attempts* in the range, that is audit rows
(:class:`~django_paygate.models.PaymentEvent`) moving a payment to
``failed``, grouped by the payment's user and by the client IP the JSON API
stored in ``payment.metadata["paygate_client_ip"]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.db.models import CharField, Count, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone

from django_paygate.models import AbstractPayment, Dispute, PaymentEvent, get_payment_model
from django_paygate.states import PAID_STATUSES, PaymentStatus

#: The metadata key where the JSON API stores the client IP of create_intent.
CLIENT_IP_KEY = "paygate_client_ip"

#: The longest range one request may ask for, in days (bounds the daily series).
MAX_RANGE_DAYS = 731

TOP_FAILURE_CODES = 10
MAX_FRAUD_ROWS = 50

_PAID = sorted(s.value for s in PAID_STATUSES)
_REFUNDED = [PaymentStatus.PARTIALLY_REFUNDED.value, PaymentStatus.REFUNDED.value]
_FAILED = PaymentStatus.FAILED.value


def default_range(today: date | None = None) -> tuple[date, date]:
    """The last 30 days, today included."""
    end = today or timezone.localdate()
    return end - timedelta(days=29), end


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """Aware datetimes ``[start 00:00, end + 1 day 00:00)`` in the current time zone."""
    tz = timezone.get_current_timezone()
    lower = datetime.combine(start, time.min)
    upper = datetime.combine(end + timedelta(days=1), time.min)
    if timezone.is_naive(lower) and _use_tz():
        lower, upper = timezone.make_aware(lower, tz), timezone.make_aware(upper, tz)
    return lower, upper


def _use_tz() -> bool:
    from django.conf import settings

    return bool(settings.USE_TZ)


def _rate(numerator: int | None, denominator: int | None) -> float | None:
    if not denominator:
        return None
    return round((numerator or 0) / denominator, 4)


def _payments(
    lower: datetime, upper: datetime, currency: str | None, provider: str | None
) -> QuerySet[AbstractPayment]:
    query = get_payment_model().objects.filter(created_at__gte=lower, created_at__lt=upper)
    if currency:
        query = query.filter(currency=currency)
    if provider:
        query = query.filter(provider=provider)
    return query.order_by()


def payment_analytics(
    *,
    start: date,
    end: date,
    currency: str | None = None,
    provider: str | None = None,
    min_failures: int = 3,
) -> dict[str, Any]:
    """Totals, rates, a daily series, top failure codes and a fraud signal.

    ``start`` and ``end`` are inclusive dates in the current time zone.
    ``currency`` (an upper-case ISO 4217 code) and ``provider`` (an alias)
    narrow the payments. Exactly five queries.
    """
    if end < start:
        raise ValueError("end is before start.")
    lower, upper = _bounds(start, end)
    payments = _payments(lower, upper, currency, provider)
    statuses = [s.value for s in PaymentStatus]

    # 1. Per currency and provider: counts and sums by status, rates, review, disputes.
    # IN (subquery) rather than EXISTS: PostgreSQL hashes it once, and its cost
    # estimate stays low enough not to trigger JIT compilation (~300 ms).
    disputed = Q(pk__in=Dispute.objects.values("payment_id"))
    per_status: dict[str, Any] = {}
    for status in statuses:
        per_status[f"n_{status}"] = Count("pk", filter=Q(status=status))
        per_status[f"s_{status}"] = Sum("amount", filter=Q(status=status))
    group_rows = (
        payments.values("currency", "provider")
        .annotate(
            count=Count("pk"),
            amount_total=Sum("amount"),
            captured=Sum("amount_captured"),
            refunded=Sum("amount_refunded"),
            review=Count("pk", filter=Q(needs_review=True)),
            disputed=Count("pk", filter=disputed),
            **per_status,
        )
        .order_by("currency", "provider")
    )
    groups = []
    for row in cast("Iterable[dict[str, Any]]", group_rows):
        by_status = {s: {"count": row[f"n_{s}"], "amount": row[f"s_{s}"] or 0} for s in statuses}
        paid = sum(by_status[s]["count"] for s in _PAID)
        failed = by_status[_FAILED]["count"]
        refunded_count = sum(by_status[s]["count"] for s in _REFUNDED)
        groups.append(
            {
                "currency": row["currency"],
                "provider": row["provider"],
                "count": row["count"],
                "amount": row["amount_total"] or 0,
                "amount_captured": row["captured"] or 0,
                "amount_refunded": row["refunded"] or 0,
                "by_status": by_status,
                "paid": paid,
                "disputed": row["disputed"],
                "needs_review": row["review"],
                "success_rate": _rate(paid, paid + failed),
                "refund_rate": _rate(refunded_count, paid),
                "refunded_amount_rate": _rate(row["refunded"], row["captured"]),
                "dispute_rate": _rate(row["disputed"], paid),
            }
        )

    # 2. Daily series, per currency and provider.
    paid_q = Q(status__in=_PAID)
    daily_rows = (
        payments.annotate(day=TruncDate("created_at"))
        .values("day", "currency", "provider")
        .annotate(
            count=Count("pk"),
            paid=Count("pk", filter=paid_q),
            failed=Count("pk", filter=Q(status=_FAILED)),
            captured=Sum("amount_captured"),
            refunded=Sum("amount_refunded"),
        )
        .order_by("day", "currency", "provider")
    )
    daily = [
        {
            "date": row["day"].isoformat(),
            "currency": row["currency"],
            "provider": row["provider"],
            "count": row["count"],
            "paid": row["paid"],
            "failed": row["failed"],
            "amount_captured": row["captured"] or 0,
            "amount_refunded": row["refunded"] or 0,
        }
        for row in daily_rows
    ]

    # 3. Top failure codes of payments that are failed now.
    failure_rows = (
        payments.filter(status=_FAILED)
        .exclude(failure_code="")
        .values("provider", "failure_code")
        .annotate(count=Count("pk"))
        .order_by("-count", "provider", "failure_code")[:TOP_FAILURE_CODES]
    )
    top_failure_codes = [
        {"provider": r["provider"], "failure_code": r["failure_code"], "count": r["count"]}
        for r in failure_rows
    ]

    # 4 and 5. Fraud signal: failed attempts per user and per client IP.
    attempts = PaymentEvent.objects.filter(
        to_status=_FAILED, created_at__gte=lower, created_at__lt=upper
    ).order_by()
    if currency:
        attempts = attempts.filter(payment__currency=currency)
    if provider:
        attempts = attempts.filter(payment__provider=provider)
    username_field = f"payment__user__{get_user_model().USERNAME_FIELD}"
    user_rows = (
        attempts.filter(payment__user__isnull=False)
        .values("payment__user", username_field)
        .annotate(failures=Count("pk"))
        .filter(failures__gte=min_failures)
        .order_by("-failures", "payment__user")[:MAX_FRAUD_ROWS]
    )
    users = [
        {
            "user_id": r["payment__user"],
            "username": str(r[username_field]),
            "failures": r["failures"],
        }
        for r in user_rows
    ]
    ip_rows = (
        attempts.annotate(
            ip=Cast(KeyTextTransform(CLIENT_IP_KEY, "payment__metadata"), CharField())
        )
        .filter(ip__isnull=False)
        .exclude(ip="")
        .values("ip")
        .annotate(failures=Count("pk"))
        .filter(failures__gte=min_failures)
        .order_by("-failures", "ip")[:MAX_FRAUD_ROWS]
    )
    ips = [{"ip": str(r["ip"]), "failures": r["failures"]} for r in ip_rows]

    return {
        "range": {"start": start.isoformat(), "end": end.isoformat()},
        "filters": {"currency": currency, "provider": provider},
        "groups": groups,
        "needs_review": sum(g["needs_review"] for g in groups),
        "daily": daily,
        "top_failure_codes": top_failure_codes,
        "fraud": {"min_failures": min_failures, "users": users, "ips": ips},
    }


__all__ = ["CLIENT_IP_KEY", "MAX_RANGE_DAYS", "default_range", "payment_analytics"]
