"""GET payment_analytics/ and django_paygate.analytics: numbers, filters, query count."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import pytest
from django.utils import timezone

from django_paygate import analytics
from django_paygate.models import Dispute, PaymentEvent, get_payment_model
from tests.factories import PaymentFactory, UserFactory
from tests.views.conftest import Api

pytestmark = pytest.mark.django_db

Payment = get_payment_model()
START, END = date(2024, 3, 1), date(2024, 3, 10)
IP = "203.0.113.7"


def _at(day: int, hour: int = 12) -> datetime:
    return datetime(2024, 3, day, hour, tzinfo=dt_timezone.utc)


def _payment(day: int, **fields: Any) -> Any:
    payment = PaymentFactory(**fields)
    Payment.objects.filter(pk=payment.pk).update(
        created_at=_at(day) if day else _at(1) - timedelta(days=2)
    )
    return payment


def _failed_attempts(payment: Any, count: int, day: int) -> None:
    for _ in range(count):
        event = PaymentEvent.objects.create(
            payment=payment, from_status="pending", to_status="failed", source="api"
        )
        PaymentEvent.objects.filter(pk=event.pk).update(created_at=_at(day))


@pytest.fixture
def dataset() -> dict[str, Any]:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    ok = [_payment(1, status="succeeded", user=alice) for _ in range(2)]
    reviewed = _payment(2, status="succeeded", needs_review=True, review_reason="mismatch")
    refunded = _payment(2, status="partially_refunded", amount=2000, amount_refunded=500)
    declined = _payment(
        2,
        status="failed",
        failure_code="card_declined",
        user=alice,
        metadata={"paygate_client_ip": IP},
    )
    wrong = _payment(
        3,
        status="failed",
        failure_code="incorrect_number",
        user=bob,
        metadata={"paygate_client_ip": IP},
    )
    _payment(3, status="pending")
    _payment(3, status="succeeded", currency="EUR", amount=500)
    _payment(4, status="failed", provider="stripe", failure_code="card_declined")
    _payment(0, status="succeeded")  # before the range
    Dispute.objects.create(payment=ok[0], provider_dispute_id="dp_1", amount=1000, currency="USD")
    _failed_attempts(declined, 3, day=2)
    _failed_attempts(wrong, 2, day=3)
    _failed_attempts(wrong, 4, day=20)  # after the range
    return {"alice": alice, "bob": bob, "reviewed": reviewed, "refunded": refunded}


def _group(result: dict, currency: str, provider: str = "dummy") -> dict:
    return next(
        g for g in result["groups"] if (g["currency"], g["provider"]) == (currency, provider)
    )


def test_groups_counts_sums_and_rates(dataset: dict) -> None:
    result = analytics.payment_analytics(start=START, end=END)
    assert [(g["currency"], g["provider"]) for g in result["groups"]] == [
        ("EUR", "dummy"),
        ("USD", "dummy"),
        ("USD", "stripe"),
    ]
    usd = _group(result, "USD")
    assert usd["count"] == 7
    assert usd["amount"] == 1000 * 6 + 2000
    assert usd["by_status"]["succeeded"] == {"count": 3, "amount": 3000}
    assert usd["by_status"]["partially_refunded"] == {"count": 1, "amount": 2000}
    assert usd["by_status"]["failed"] == {"count": 2, "amount": 2000}
    assert usd["by_status"]["pending"] == {"count": 1, "amount": 1000}
    assert usd["by_status"]["refunded"] == {"count": 0, "amount": 0}
    assert usd["paid"] == 4
    assert usd["amount_captured"] == 3000 + 2000
    assert usd["amount_refunded"] == 500
    assert usd["success_rate"] == round(4 / 6, 4)
    assert usd["refund_rate"] == 0.25
    assert usd["refunded_amount_rate"] == 0.1
    assert usd["dispute_rate"] == 0.25
    assert usd["disputed"] == 1
    assert usd["needs_review"] == 1
    assert result["needs_review"] == 1
    stripe = _group(result, "USD", "stripe")
    assert (stripe["success_rate"], stripe["refund_rate"], stripe["dispute_rate"]) == (
        0.0,
        None,
        None,
    )


def test_daily_series(dataset: dict) -> None:
    daily = analytics.payment_analytics(start=START, end=END)["daily"]
    usd = [
        (d["date"], d["count"], d["paid"], d["failed"])
        for d in daily
        if (d["currency"], d["provider"]) == ("USD", "dummy")
    ]
    assert usd == [("2024-03-01", 2, 2, 0), ("2024-03-02", 3, 2, 1), ("2024-03-03", 2, 0, 1)]
    assert sum(d["amount_refunded"] for d in daily) == 500


def test_top_failure_codes(dataset: dict) -> None:
    codes = analytics.payment_analytics(start=START, end=END)["top_failure_codes"]
    assert codes == [
        {"provider": "dummy", "failure_code": "card_declined", "count": 1},
        {"provider": "dummy", "failure_code": "incorrect_number", "count": 1},
        {"provider": "stripe", "failure_code": "card_declined", "count": 1},
    ]


def test_fraud_signal_users_and_ips(dataset: dict) -> None:
    fraud = analytics.payment_analytics(start=START, end=END, min_failures=3)["fraud"]
    assert fraud["users"] == [{"user_id": dataset["alice"].pk, "username": "alice", "failures": 3}]
    assert fraud["ips"] == [{"ip": IP, "failures": 5}]
    lower = analytics.payment_analytics(start=START, end=END, min_failures=2)["fraud"]
    assert [u["username"] for u in lower["users"]] == ["alice", "bob"]


def test_filters(dataset: dict) -> None:
    eur = analytics.payment_analytics(start=START, end=END, currency="EUR")
    assert [(g["currency"], g["count"]) for g in eur["groups"]] == [("EUR", 1)]
    assert eur["fraud"]["users"] == []
    assert eur["top_failure_codes"] == []
    stripe = analytics.payment_analytics(start=START, end=END, provider="stripe")
    assert [(g["provider"], g["count"]) for g in stripe["groups"]] == [("stripe", 1)]


def test_range_is_inclusive_of_both_days(dataset: dict) -> None:
    one_day = analytics.payment_analytics(start=date(2024, 3, 3), end=date(2024, 3, 3))
    assert sum(g["count"] for g in one_day["groups"]) == 3
    empty = analytics.payment_analytics(start=date(2023, 1, 1), end=date(2023, 1, 31))
    assert empty["groups"] == []
    assert empty["daily"] == []
    assert empty["needs_review"] == 0


def test_decline_sources_count_ipv4_networks(dataset: dict) -> None:
    Payment.objects.filter(pk=dataset["refunded"].pk).update(
        metadata={"paygate_client_ip": "203.0.113.200"}
    )
    _failed_attempts(dataset["refunded"], 1, day=4)
    ipv6 = _payment(4, status="failed", metadata={"paygate_client_ip": "2001:db8::1"})
    _failed_attempts(ipv6, 2, day=4)
    sources = analytics.payment_analytics(start=START, end=END)["fraud"]["decline_sources"]
    assert sources == [
        {"network": "203.0.113.0/24", "failures": 6, "payments": 3, "users": 2},
        {"network": "2001:db8::/64", "failures": 2, "payments": 1, "users": 0},
    ]


def test_ipv6_declines_are_grouped_as_the_brake_counts_them(dataset: dict, settings: Any) -> None:
    """Six addresses of one /64, one decline each: one source, and one burst."""
    settings.PAYGATE = {**settings.PAYGATE, "RATE_LIMITS": {"declines": {"ip": "4/h"}}}
    users = [dataset["alice"], dataset["bob"], None]
    for n in range(6):
        ip = f"2001:db8:77:1::{n + 1:x}"
        payment = _payment(
            4, status="failed", user=users[n % 3], metadata={"paygate_client_ip": ip}
        )
        _failed_attempts(payment, 1, day=4)
    elsewhere = _payment(4, status="failed", metadata={"paygate_client_ip": "2001:db8:77:2::1"})
    _failed_attempts(elsewhere, 1, day=4)
    fraud = analytics.payment_analytics(start=START, end=END)["fraud"]
    sources = {row["network"]: row for row in fraud["decline_sources"]}
    assert sources["2001:db8:77:1::/64"] == {
        "network": "2001:db8:77:1::/64", "failures": 6, "payments": 6, "users": 2,
    }  # fmt: skip
    assert sources["2001:db8:77:2::/64"]["failures"] == 1
    bursts = [b for b in fraud["bursts"]["networks"] if b["network"].startswith("2001:")]
    assert bursts == [
        {"network": "2001:db8:77:1::/64", "hour": "2024-03-04T12:00:00+00:00", "failures": 6,
         "payments": 6},
    ]  # fmt: skip


def test_bursts_use_the_decline_brakes_limits(dataset: dict, settings: Any) -> None:
    limits = {"declines": {"user": "2/h", "ip": "6/2h"}}
    settings.PAYGATE = {**settings.PAYGATE, "RATE_LIMITS": limits}
    bursts = analytics.payment_analytics(start=START, end=END)["fraud"]["bursts"]
    assert bursts["thresholds"] == {"user": 2, "ip": 3}
    assert bursts["networks"] == [
        {"network": "203.0.113.0/24", "hour": "2024-03-02T12:00:00+00:00", "failures": 3,
         "payments": 1},
    ]  # fmt: skip
    assert bursts["users"] == [
        {"user_id": dataset["alice"].pk, "username": "alice",
         "hour": "2024-03-02T12:00:00+00:00", "failures": 3, "payments": 1},
        {"user_id": dataset["bob"].pk, "username": "bob",
         "hour": "2024-03-03T12:00:00+00:00", "failures": 2, "payments": 1},
    ]  # fmt: skip
    settings.PAYGATE = {k: v for k, v in settings.PAYGATE.items() if k != "RATE_LIMITS"}
    assert analytics.burst_thresholds() == {"user": 5, "ip": 20}
    quiet = analytics.payment_analytics(start=START, end=END)["fraud"]["bursts"]
    assert (quiet["networks"], quiet["users"]) == ([], [])


def test_open_disputes_whatever_their_date(dataset: dict) -> None:
    old = _payment(0, status="succeeded", currency="EUR", amount=700)
    Dispute.objects.create(payment=old, provider_dispute_id="dp_old", amount=700, currency="EUR")
    answered = _payment(1, status="succeeded")
    Dispute.objects.create(
        payment=answered,
        provider_dispute_id="dp_answered",
        amount=1000,
        currency="USD",
        status="under_review",
    )
    result = analytics.payment_analytics(start=START, end=END)
    assert result["open_disputes"] == [
        {"currency": "EUR", "count": 1, "amount": 700},
        {"currency": "USD", "count": 1, "amount": 1000},
    ]
    none_in_range = analytics.payment_analytics(start=date(2023, 1, 1), end=date(2023, 1, 2))
    assert [c["currency"] for c in none_in_range["currencies"]] == ["EUR", "USD"]
    assert none_in_range["currencies"][0]["count"] == 0


def test_per_currency_totals_add_up_providers_never_currencies(dataset: dict) -> None:
    result = analytics.payment_analytics(start=START, end=END)
    eur, usd = result["currencies"]
    assert usd["currency"] == "USD"
    assert usd["count"] == 7 + 1
    assert usd["amount_captured"] == 5000
    assert usd["amount_refunded"] == 500
    assert usd["net"] == 4500
    assert usd["success_rate"] == round(4 / 7, 4)
    assert usd["refund_rate"] == 0.25
    assert usd["dispute_rate"] == 0.25
    assert (usd["open_disputes"], usd["open_disputes_amount"]) == (1, 1000)
    assert usd["needs_review"] == 1
    assert (eur["count"], eur["amount_captured"], eur["open_disputes"]) == (1, 500, 0)


def test_nine_queries_whatever_the_data(django_assert_num_queries: Any, dataset: dict) -> None:
    with django_assert_num_queries(9):
        analytics.payment_analytics(start=START, end=END)
    for day in range(1, 11):
        for status in ("succeeded", "failed", "refunded", "canceled"):
            _payment(day, status=status, currency="JPY", provider=f"p{day % 3}", failure_code="x")
    with django_assert_num_queries(9):
        result = analytics.payment_analytics(start=START, end=END)
    assert sum(g["count"] for g in result["groups"]) == 9 + 40


# ---------------------------------------------------------------------------
# The endpoint
# ---------------------------------------------------------------------------


def test_staff_gets_the_analytics(staff_api: Api, dataset: dict) -> None:
    response = staff_api.get(
        "payment_analytics", {"start": "2024-03-01", "end": "2024-03-10", "min_failures": "3"}
    )
    assert response.status_code == 200
    body = response.json_body
    assert body["range"] == {"start": "2024-03-01", "end": "2024-03-10"}
    assert _group(body, "USD")["count"] == 7
    assert body["fraud"]["ips"] == [{"ip": IP, "failures": 5}]


def test_default_range_is_the_last_30_days(staff_api: Api) -> None:
    body = staff_api.get("payment_analytics").json_body
    today = timezone.localdate()
    assert body["range"] == {
        "start": (today - timedelta(days=29)).isoformat(),
        "end": today.isoformat(),
    }


def test_only_start_or_only_end(staff_api: Api) -> None:
    body = staff_api.get("payment_analytics", {"end": "2024-03-30"}).json_body
    assert body["range"] == {"start": "2024-03-01", "end": "2024-03-30"}
    start = timezone.localdate() - timedelta(days=10)
    body = staff_api.get("payment_analytics", {"start": start.isoformat()}).json_body
    assert body["range"] == {"start": start.isoformat(), "end": timezone.localdate().isoformat()}


def test_lower_case_currency_filter(staff_api: Api, dataset: dict) -> None:
    body = staff_api.get(
        "payment_analytics", {"start": "2024-03-01", "end": "2024-03-10", "currency": "eur"}
    ).json_body
    assert body["filters"] == {"currency": "EUR", "provider": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2024-13-01"}, "start"),
        ({"start": "20240301"}, "start"),
        ({"end": "yesterday"}, "end"),
        ({"start": "9999-12-31"}, "start"),  # the day after would overflow
        ({"end": "0001-01-01"}, "end"),  # 29 days before would overflow
        ({"start": "2024-03-10", "end": "2024-03-01"}, "end"),
        ({"start": "2020-01-01", "end": "2024-01-01"}, "end"),
        ({"currency": "ZZZ"}, "currency"),
        ({"provider": "p" * 65}, "provider"),
        ({"min_failures": "0"}, "min_failures"),
        ({"min_failures": "three"}, "min_failures"),
        ({"min_failures": "²"}, "min_failures"),
    ],
)
def test_invalid_parameters_are_400(staff_api: Api, params: dict, field: str) -> None:
    response = staff_api.get("payment_analytics", params)
    assert response.status_code == 400
    assert field in response.json_body["error"]["fields"]


def test_customers_are_403(api: Api) -> None:
    response = api.get("payment_analytics")
    assert response.status_code == 403
    assert response.json_body["error"]["code"] == "permission_denied"


def test_anonymous_is_401(anon_api: Api) -> None:
    assert anon_api.get("payment_analytics").status_code == 401
