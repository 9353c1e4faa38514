"""Readable lists, CSV exports and the dispute banner."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.http import StreamingHttpResponse
from django.urls import reverse

from django_paygate.admin import csv_cell
from django_paygate.models import Dispute, Refund
from tests.admin.conftest import admin_url, payment_url, staff_with
from tests.factories import PaymentFactory, RefundFactory

pytestmark = pytest.mark.django_db


def _ids(response: Any) -> set[Any]:
    return {obj.pk for obj in response.context["cl"].result_list}


def _csv(response: Any) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


def test_payment_list_shows_short_ids_money_badges_and_review_reason(console):
    payment = PaymentFactory(
        amount=123456,
        status="succeeded",
        needs_review=True,
        review_reason="provider reports 999 captured of 1000",
    )
    html = console.get(payment_url("changelist")).content.decode()
    full = str(payment.pk)
    assert f'<span class="pg-id" title="{full}">{full[:8]}</span>' in html
    assert "$1,234.56" in html
    assert '<span class="pg-badge pg-badge--succeeded">Succeeded</span>' in html
    assert '<span class="pg-review">Needs review</span>' in html
    assert "provider reports 999 captured of 1000" in html
    assert "paygate/admin.css" in html
    change = console.get(payment_url("change", payment.pk)).content.decode()
    assert full in change


@pytest.mark.parametrize(("value", "flag"), [("1", True), ("0", False)])
def test_needs_review_is_a_filter(console, value, flag):
    flagged = PaymentFactory(needs_review=True, review_reason="x")
    plain = PaymentFactory()
    ids = _ids(console.get(payment_url("changelist"), {"needs_review__exact": value}))
    assert ids == ({flagged.pk} if flag else {plain.pk})


def test_search_by_short_id(console):
    target = PaymentFactory()
    PaymentFactory()
    found = _ids(console.get(payment_url("changelist"), {"q": str(target.pk)[:8]}))
    assert target.pk in found
    assert len(found) == 1


def test_client_network_filter(console):
    inside = PaymentFactory(metadata={"paygate_client_ip": "203.0.113.9"})
    PaymentFactory(metadata={"paygate_client_ip": "203.0.114.9"})
    exact = PaymentFactory(metadata={"paygate_client_ip": "2001:db8::1"})
    url = payment_url("changelist")
    assert _ids(console.get(url, {"client_network": "203.0.113.0/24"})) == {inside.pk}
    assert _ids(console.get(url, {"client_network": "2001:db8::1"})) == {exact.pk}


def test_refund_and_notification_lists_render_short(console):
    refund = RefundFactory(provider_refund_id="re_" + "x" * 40)
    html = console.get(admin_url(Refund, "changelist")).content.decode()
    assert str(refund.pk)[:8] in html
    assert '<span class="pg-badge pg-badge--pending">Pending</span>' in html
    assert f'title="re_{"x" * 40}"' in html


# ---------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dangerous", ["=1+2", "+1", "-2", "@SUM(A1)", "\tx", "\rx"])
def test_csv_cells_never_start_a_formula(dangerous):
    assert csv_cell(dangerous) == "'" + dangerous
    assert csv_cell("plain") == "plain"
    assert csv_cell(None) == ""


def test_payment_export_streams_the_filtered_list_escaped(console):
    usd = PaymentFactory(
        amount=1999,
        status="succeeded",
        email="=HYPERLINK(evil)@example.com",
        description='@cmd|" /C calc"!A0',
    )
    PaymentFactory(currency="JPY", amount=500)
    response = console.get(payment_url("export"), {"currency": "USD"})
    header, *rows = _csv(response)
    assert 'attachment; filename="payments.csv"' == response["Content-Disposition"]
    assert header[:7] == [
        "id",
        "created_at",
        "status",
        "amount",
        "amount_captured",
        "amount_refunded",
        "currency",
    ]
    assert len(rows) == 1
    row = dict(zip(header, rows[0], strict=True))
    assert row["id"] == str(usd.pk)
    assert (row["amount"], row["amount_captured"], row["currency"]) == ("19.99", "19.99", "USD")
    assert row["email"] == "'=HYPERLINK(evil)@example.com"
    assert row["description"] == '\'@cmd|" /C calc"!A0'


def test_export_of_jpy_has_no_decimals(console):
    PaymentFactory(currency="JPY", amount=500)
    header, row = _csv(console.get(payment_url("export")))
    assert dict(zip(header, row, strict=True))["amount"] == "500"


def test_export_selected_payments_action(console):
    chosen, _other = PaymentFactory(), PaymentFactory()
    response = console.post(
        payment_url("changelist"),
        {"action": "export_csv", ACTION_CHECKBOX_NAME: [str(chosen.pk)]},
    )
    _header, *rows = _csv(response)
    assert [r[0] for r in rows] == [str(chosen.pk)]


def test_refund_export(console):
    refund = RefundFactory(amount=250, reason="-10 for the scratch")
    header, row = _csv(console.get(admin_url(Refund, "export")))
    data = dict(zip(header, row, strict=True))
    assert (data["id"], data["amount"], data["currency"]) == (str(refund.pk), "2.50", "USD")
    assert data["reason"] == "'-10 for the scratch"


def test_export_needs_the_view_permission(client):
    client.force_login(staff_with())  # may view payments, not refunds
    assert client.get(payment_url("export")).status_code == 200
    assert client.get(admin_url(Refund, "export")).status_code == 403


def test_export_link_keeps_the_filters(console):
    PaymentFactory()
    html = console.get(payment_url("changelist"), {"status": "failed"}).content.decode()
    assert f'href="{payment_url("export")}?status=failed"' in html


# ---------------------------------------------------------------------------
# Dispute banner and the way to the dashboard
# ---------------------------------------------------------------------------


def test_open_dispute_shows_on_the_admin_index_until_it_is_answered(console):
    payment = PaymentFactory(status="succeeded", amount=4500)
    dispute = Dispute.objects.create(
        payment=payment, provider_dispute_id="dp_1", amount=4500, currency="USD"
    )
    html = console.get(reverse("admin:index")).content.decode()
    assert "1 dispute waits for an answer" in html
    assert "$45.00" in html
    assert f"{admin_url(Dispute, 'changelist')}?status__in=inquiry,open" in html
    dispute.status = "under_review"
    dispute.save()
    assert "waits for an answer" not in console.get(reverse("admin:index")).content.decode()


def test_admin_index_links_to_the_dashboard(console):
    html = console.get(reverse("admin:index")).content.decode()
    assert reverse("admin:paygate_analytics_changelist") == "/admin/paygate/analytics/"
    assert 'href="/admin/paygate/analytics/"' in html


@pytest.mark.parametrize(
    ("site_url", "prefix"), [("https://shop.example.com/", "https://shop.example.com"), (None, "")]
)
def test_dispute_email_links_to_the_payments_admin_page(settings, site_url, prefix):
    from django_paygate import emails
    from tests.notifications.factories import make_notification

    settings.PAYGATE = {
        **settings.PAYGATE,
        "EMAILS": {"ADMINS": ["ops@example.com"], **({"SITE_URL": site_url} if site_url else {})},
    }
    notification = make_notification("dispute_opened")
    message = emails.render_email(notification)
    assert message is not None
    link = prefix + payment_url("change", notification.payment_id)
    assert f"Admin page: {link}\n" in message.body
    html = message.alternatives[0][0]
    assert link in html


def test_payment_list_filters_by_review_code(console):
    over = PaymentFactory(needs_review=True, review_code="refund_exceeds", review_reason="x")
    failing = PaymentFactory(needs_review=True, review_code="sync_failing", review_reason="y")
    PaymentFactory()
    response = console.get(payment_url("changelist"), {"review_code__exact": "refund_exceeds"})
    assert _ids(response) == {over.pk}
    response = console.get(payment_url("changelist"), {"review_code__exact": "sync_failing"})
    assert _ids(response) == {failing.pk}
    html = console.get(payment_url("changelist")).content.decode()
    assert "A refund beyond what is left to refund" in html  # the filter names each code
