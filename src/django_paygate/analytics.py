"""Read-only payment analytics, computed by the database.

:func:`payment_analytics` answers with nine aggregate queries, whatever the
number of payments: no row is loaded into Python, only grouped results (one
row per currency and provider, per day, per failure code, per suspicious user,
IP or network, per open-dispute currency). Sums are never added across
currencies. The JSON endpoint ``payment_analytics/`` and the admin dashboard
(``admin/paygate/analytics/``) both show what this one function returns.

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

Risk signals (card testing) on the same attempts:

* ``decline_sources``: the IP networks with the most failed attempts (an
  IPv4 address counts in its ``/24``; an IPv6 address in the network the
  decline brake counts it in, a ``/64`` by default: ``security.client_network``);
* ``bursts``: hours in which one network or one user reached the decline
  brake's own limit (``PAYGATE["RATE_LIMITS"]["declines"]``, per hour): the
  brake refuses that source's next confirmations, so the payments of such an
  hour are the ones it flagged.

``open_disputes`` counts the disputes waiting for an answer (inquiry or open)
now, whatever their date: a dispute stays there until it is answered.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.db.models import (
    Case,
    CharField,
    Count,
    F,
    IntegerField,
    Max,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import (
    Cast,
    Concat,
    Left,
    Length,
    Reverse,
    StrIndex,
    TruncDate,
    TruncHour,
)
from django.utils import timezone

from django_paygate import security
from django_paygate.exceptions import ConfigurationError
from django_paygate.models import AbstractPayment, Dispute, PaymentEvent, get_payment_model
from django_paygate.states import PAID_STATUSES, DisputeStatus, PaymentStatus

#: The metadata key where the JSON API stores the client IP of create_intent.
CLIENT_IP_KEY = "paygate_client_ip"

#: The longest range one request may ask for, in days (bounds the daily series).
MAX_RANGE_DAYS = 731

TOP_FAILURE_CODES = 10
TOP_DECLINE_SOURCES = 10
MAX_FRAUD_ROWS = 50

#: Dispute statuses that wait for the merchant's answer.
AWAITING_ANSWER = (DisputeStatus.INQUIRY.value, DisputeStatus.OPEN.value)

_PAID = sorted(s.value for s in PAID_STATUSES)
_REFUNDED = [PaymentStatus.PARTIALLY_REFUNDED.value, PaymentStatus.REFUNDED.value]
_FAILED = PaymentStatus.FAILED.value


def default_range(today: date | None = None) -> tuple[date, date]:
    """The last 30 days, today included."""
    end = today or timezone.localdate()
    return end - timedelta(days=29), end


def resolve_range(
    start: date | None, end: date | None, today: date | None = None
) -> tuple[date, date]:
    """The range asked for, with its defaults; ``ValueError`` (naming ``end``) when wrong.

    Neither: the last 30 days. Only ``end``: the 30 days up to it. Only
    ``start``: from it to today (or to itself, if it is in the future).
    """
    default_start, default_end = default_range(today)
    if start is None and end is None:
        start, end = default_start, default_end
    elif start is None:
        assert end is not None
        start = end - timedelta(days=29)
    elif end is None:
        end = max(start, default_end)
    if end < start:
        raise ValueError("Must not be before start.")
    if (end - start).days + 1 > MAX_RANGE_DAYS:
        raise ValueError(f"The range is at most {MAX_RANGE_DAYS} days.")
    return start, end


def bounds(start: date, end: date) -> tuple[datetime, datetime]:
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


def open_disputes(*, currency: str | None = None, provider: str | None = None) -> QuerySet[Dispute]:
    """Disputes waiting for an answer (inquiry or open), narrowed like the payments."""
    query = Dispute.objects.filter(status__in=AWAITING_ANSWER)
    if currency:
        query = query.filter(currency=currency)
    if provider:
        query = query.filter(payment__provider=provider)
    return query.order_by()


def network_expression(ip: str = "ip") -> Case:
    """The IP network an address of field ``ip`` counts in: ``a.b.c.0/24``, or the address
    (an IPv6 one, which :func:`_network` puts in its network).

    Plain SQL string functions, so it runs on every database Django supports.
    """
    ipv4 = Q(**{f"{ip}__contains": "."}) & ~Q(**{f"{ip}__contains": ":"})
    prefix = Left(F(ip), Length(F(ip)) - StrIndex(Reverse(F(ip)), Value(".")))
    return Case(
        When(ipv4, then=Concat(prefix, Value(".0/24"), output_field=CharField())),
        default=F(ip),
        output_field=CharField(),
    )


def _network(grouped: str) -> str:
    """The network of a :func:`network_expression` value: an IPv4 ``/24`` as it is, an
    IPv6 address in the network the decline brake counts it in."""
    return security.client_network(grouped) if ":" in grouped else grouped


def burst_thresholds() -> dict[str, int]:
    """Failed attempts per hour from one user / one IP that the decline brake stops."""
    try:
        rates = security.rates_for("declines")
    except ConfigurationError:
        rates = {}
    defaults = security.DEFAULT_RATE_LIMITS["declines"]
    thresholds = {}
    for scope in security.SCOPES:
        rate = rates.get(scope) or security.Rate.parse(defaults[scope], scope)
        assert rate is not None
        thresholds[scope] = max(1, -(-rate.limit * 3600 // rate.period))
    return thresholds


def _per_currency(groups: list[dict[str, Any]], disputes: list[dict[str, Any]]) -> list[Any]:
    """The groups of each currency added up over providers (never across currencies)."""
    totals: dict[str, dict[str, Any]] = {}
    for group in groups:
        row = totals.setdefault(
            group["currency"],
            {
                "currency": group["currency"],
                "count": 0,
                "amount_captured": 0,
                "amount_refunded": 0,
                "paid": 0,
                "failed": 0,
                "refunded_count": 0,
                "disputed": 0,
                "needs_review": 0,
            },
        )
        row["count"] += group["count"]
        row["amount_captured"] += group["amount_captured"]
        row["amount_refunded"] += group["amount_refunded"]
        row["paid"] += group["paid"]
        row["failed"] += group["by_status"][_FAILED]["count"]
        row["refunded_count"] += sum(group["by_status"][s]["count"] for s in _REFUNDED)
        row["disputed"] += group["disputed"]
        row["needs_review"] += group["needs_review"]
    open_by_currency = {d["currency"]: d for d in disputes}
    rows = []
    for currency in sorted(set(totals) | set(open_by_currency)):
        row = totals.get(currency) or {
            "currency": currency,
            **dict.fromkeys(("count", "amount_captured", "amount_refunded", "paid", "failed"), 0),
            **dict.fromkeys(("refunded_count", "disputed", "needs_review"), 0),
        }
        row["net"] = row["amount_captured"] - row["amount_refunded"]
        row["success_rate"] = _rate(row["paid"], row["paid"] + row["failed"])
        row["refund_rate"] = _rate(row["refunded_count"], row["paid"])
        row["refunded_amount_rate"] = _rate(row["amount_refunded"], row["amount_captured"])
        row["dispute_rate"] = _rate(row["disputed"], row["paid"])
        dispute = open_by_currency.get(currency, {"count": 0, "amount": 0})
        row["open_disputes"] = dispute["count"]
        row["open_disputes_amount"] = dispute["amount"]
        rows.append(row)
    return rows


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
    narrow the payments. Exactly nine queries.
    """
    if end < start:
        raise ValueError("end is before start.")
    lower, upper = bounds(start, end)
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

    # 6, 7 and 8. Risk signals: declines per network, and hourly bursts per network and user.
    with_network = (
        attempts.annotate(
            ip=Cast(KeyTextTransform(CLIENT_IP_KEY, "payment__metadata"), CharField())
        )
        .filter(ip__isnull=False)
        .exclude(ip="")
        .annotate(network=network_expression())
    )
    # IPv6 addresses are grouped in Python, by the decline brake's own network
    # (security.client_network): SQL cannot take a prefix of a compressed address. A
    # payment has one client IP, so payment counts of two addresses add up exactly.
    source_rows = (
        with_network.values("network", "payment__user")
        .annotate(failures=Count("pk"), payments=Count("payment", distinct=True))
        .order_by()
    )
    sources: dict[str, dict[str, Any]] = {}
    for r in source_rows:
        network = _network(str(r["network"]))
        row = sources.setdefault(network, {"failures": 0, "payments": 0, "users": set()})
        row["failures"] += r["failures"]
        row["payments"] += r["payments"]
        if r["payment__user"] is not None:
            row["users"].add(r["payment__user"])
    decline_sources = [
        {
            "network": network,
            "failures": row["failures"],
            "payments": row["payments"],
            "users": len(row["users"]),
        }
        for network, row in sorted(sources.items(), key=lambda i: (-i[1]["failures"], i[0]))
    ][:TOP_DECLINE_SOURCES]
    thresholds = burst_thresholds()
    hourly_rows = (
        with_network.annotate(hour=TruncHour("created_at"))
        .values("network", "hour")
        .annotate(
            failures=Count("pk"),
            payments=Count("payment", distinct=True),
            # An aggregate, so HAVING names no bare column (MariaDB refuses one).
            ipv6=Max(
                Case(
                    When(ip__contains=":", then=Value(1)),
                    default=Value(0),
                    output_field=IntegerField(),
                )
            ),
        )
        # IPv4 /24s are whole here; IPv6 addresses are added up first.
        .filter(Q(failures__gte=thresholds["ip"]) | Q(ipv6=1))
        .order_by()
    )
    hourly: dict[tuple[str, Any], list[int]] = {}
    for h in hourly_rows:
        counts = hourly.setdefault((_network(str(h["network"])), h["hour"]), [0, 0])
        counts[0] += h["failures"]
        counts[1] += h["payments"]
    network_burst_rows = sorted(
        (
            {"network": network, "hour": hour, "failures": failures, "payments": payments}
            for (network, hour), (failures, payments) in hourly.items()
            if failures >= thresholds["ip"]
        ),
        key=lambda r: (-r["failures"], -r["hour"].timestamp(), r["network"]),
    )[:MAX_FRAUD_ROWS]
    user_burst_rows = (
        attempts.filter(payment__user__isnull=False)
        .annotate(hour=TruncHour("created_at"))
        .values("payment__user", username_field, "hour")
        .annotate(failures=Count("pk"), payments=Count("payment", distinct=True))
        .filter(failures__gte=thresholds["user"])
        .order_by("-failures", "-hour", "payment__user")[:MAX_FRAUD_ROWS]
    )
    bursts = {
        "thresholds": thresholds,
        "networks": [
            {
                "network": str(r["network"]),
                "hour": r["hour"].isoformat(),
                "failures": r["failures"],
                "payments": r["payments"],
            }
            for r in network_burst_rows
        ],
        "users": [
            {
                "user_id": r["payment__user"],
                "username": str(r[username_field]),
                "hour": r["hour"].isoformat(),
                "failures": r["failures"],
                "payments": r["payments"],
            }
            for r in user_burst_rows
        ],
    }

    # 9. Disputes waiting for an answer, per currency (now, whatever the range).
    dispute_rows = (
        open_disputes(currency=currency, provider=provider)
        .values("currency")
        .annotate(count=Count("pk"), amount=Sum("amount"))
        .order_by("currency")
    )
    disputes = [
        {"currency": r["currency"], "count": r["count"], "amount": r["amount"] or 0}
        for r in dispute_rows
    ]

    return {
        "range": {"start": start.isoformat(), "end": end.isoformat()},
        "filters": {"currency": currency, "provider": provider},
        "groups": groups,
        "needs_review": sum(g["needs_review"] for g in groups),
        "daily": daily,
        "top_failure_codes": top_failure_codes,
        "fraud": {
            "min_failures": min_failures,
            "users": users,
            "ips": ips,
            "decline_sources": decline_sources,
            "bursts": bursts,
        },
        "open_disputes": disputes,
        "currencies": _per_currency(groups, disputes),
    }


__all__ = [
    "AWAITING_ANSWER",
    "CLIENT_IP_KEY",
    "MAX_RANGE_DAYS",
    "bounds",
    "burst_thresholds",
    "default_range",
    "network_expression",
    "open_disputes",
    "payment_analytics",
    "resolve_range",
]
