"""The analytics dashboard at admin/paygate/analytics/: the numbers of payment_analytics()."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from django_paygate import analytics
from tests.factories import UserFactory
from tests.views.test_api_analytics import END, START, dataset  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db

URL = "/admin/paygate/analytics/"
RANGE = {"start": START.isoformat(), "end": END.isoformat()}


def test_the_url_is_the_documented_one():
    assert reverse("admin:paygate_analytics_changelist") == URL


@pytest.mark.parametrize(
    "filters", [{}, {"currency": "EUR"}, {"provider": "dummy"}, {"currency": "USD"}]
)
def test_dashboard_shows_what_payment_analytics_returns(console, dataset, filters):  # noqa: F811
    page = console.get(URL, {**RANGE, **filters})
    assert page.status_code == 200
    expected = analytics.payment_analytics(
        start=START,
        end=END,
        currency=filters.get("currency"),
        provider=filters.get("provider"),
        min_failures=3,
    )
    assert page.context["result"] == expected
    shown = [s["row"]["currency"] for s in page.context["sections"]]
    assert shown == [c["currency"] for c in expected["currencies"]]


def test_kpis_per_currency_never_summed_across_currencies(console, dataset):  # noqa: F811
    html = console.get(URL, RANGE).content.decode()
    usd = html[html.index('id="pg-USD"') :]
    eur = html[html.index('id="pg-EUR"') : html.index('id="pg-USD"')]
    # USD: 5000 captured (3 succeeded + 1 partially refunded of 2000), 500 refunded.
    assert "$50.00" in usd
    assert "$5.00" in usd
    assert "$45.00" in usd
    assert "57.1\u202f%" in usd  # 4 paid of 7 paid or failed
    assert "25.0\u202f%" in usd  # refund and dispute rates
    assert "€5.00" in eur
    assert "$" not in eur
    assert "$55.00" not in html  # never USD + EUR


def test_review_and_dispute_counts_link_into_the_lists(console, dataset):  # noqa: F811
    page = console.get(URL, RANGE)
    usd = next(s for s in page.context["sections"] if s["row"]["currency"] == "USD")
    assert usd["row"]["needs_review"] == 1
    listed = console.get(usd["review_url"])
    assert {p.pk for p in listed.context["cl"].result_list} == {dataset["reviewed"].pk}
    assert "1 dispute waits for an answer" in page.content.decode()


def test_risk_signal_links_open_the_matching_payments(console, dataset):  # noqa: F811
    page = console.get(URL, {**RANGE})
    (row, url), *_ = page.context["links"]["decline_sources"]
    assert row["network"] == "203.0.113.0/24"
    listed = console.get(url)
    assert listed.status_code == 200
    assert len(listed.context["cl"].result_list) == 2
    (user_row, user_url), *_ = page.context["links"]["users"]
    assert user_row["username"] == "alice"
    assert console.get(user_url).status_code == 200


def test_charts_are_inline_svg_without_script(console, dataset):  # noqa: F811
    html = console.get(URL, RANGE).content.decode()
    assert html.count('<figure class="pg-chart">') == 4  # two per currency, two currencies
    assert html.count('role="img"') == 4
    assert '<rect class="pg-captured"' in html
    assert "2024-03-02: $30.00 captured" in html  # a bar's tooltip
    assert "2024-03-02: $5.00 refunded" in html
    assert "2024-03-02: 66.7% (2 of 3)" in html
    assert "<polyline" in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline script at all


def test_query_count_is_pinned(console, dataset, django_assert_num_queries):  # noqa: F811
    console.get(URL, RANGE)  # the session and the user, warmed
    with django_assert_num_queries(11):  # session, user, then payment_analytics' nine
        console.get(URL, RANGE)


def test_invalid_filters_are_shown_not_computed(console):
    page = console.get(URL, {"start": "2024-03-10", "end": "2024-03-01", "currency": "ZZZ"})
    assert page.status_code == 200
    assert page.context["result"] is None
    html = page.content.decode()
    assert "Must not be before start." in html
    assert "ZZZ" in html


def test_default_range_is_the_last_30_days(console):
    page = console.get(URL)
    start, end = analytics.default_range()
    assert page.context["result"]["range"] == {"start": start.isoformat(), "end": end.isoformat()}


def test_only_staff_with_the_view_permission(client):
    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    assert client.get(URL).status_code == 403
    staff.user_permissions.add(
        Permission.objects.get(codename="view_analytics", content_type__app_label="paygate")
    )
    assert client.get(URL).status_code == 200
    client.force_login(UserFactory(is_staff=False, is_superuser=False))
    assert client.get(URL).status_code == 302  # the admin's login page


def test_the_model_behind_it_offers_nothing_else(console):
    assert console.get(URL + "add/").status_code == 404
    assert console.get(URL + "1/change/").status_code == 404


def test_code_walking_every_model_finds_no_rows_and_no_table(django_assert_num_queries):
    from django_paygate.models import Analytics

    with django_assert_num_queries(0):
        assert list(Analytics.objects.all()[:5]) == []
