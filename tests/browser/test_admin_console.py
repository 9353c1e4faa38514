"""The staff console in a real browser at 1280 px: lists that fit, a dashboard that reads.

Screenshots (light and dark) go to the folder the ``screenshot`` fixture names.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_paygate.models import (
    Dispute,
    Notification,
    PaymentEvent,
    Refund,
    WebhookEvent,
    get_payment_model,
)
from tests.factories import PaymentFactory, UserFactory

STATUSES = [
    "succeeded",
    "failed",
    "pending",
    "requires_action",
    "processing",
    "authorized",
    "partially_refunded",
    "refunded",
    "canceled",
]
CURRENCIES = ["USD", "EUR", "JPY", "INR"]


def _seed() -> None:
    """Realistic rows: long emails and ids, every status, flags, refunds, disputes, attempts."""
    Payment = get_payment_model()
    now = timezone.now()
    users = [UserFactory(username=f"customer-{n}") for n in range(4)]
    for n in range(60):
        status = STATUSES[n % len(STATUSES)]
        currency = CURRENCIES[n % len(CURRENCIES)]
        amount = (n + 1) * 1237 if currency != "JPY" else (n + 1) * 130
        refunded = amount if status == "refunded" else amount // 3 if "partially" in status else 0
        payment = PaymentFactory(
            status=status,
            currency=currency,
            amount=amount,
            amount_refunded=refunded,
            provider=["stripe", "razorpay", "dummy"][n % 3],
            provider_payment_id=f"pi_3Pq{uuid.uuid4().hex}{uuid.uuid4().hex[:6]}",
            email=f"a.very.long.customer.address.number{n}@subdomain.example-company.co.uk",
            user=users[n % len(users)],
            failure_code="card_declined" if status == "failed" else "",
            needs_review=n % 11 == 0,
            review_reason=(
                "provider reports 1999 captured of 1000; refund re_1Pq9 of 500 exceeds what is "
                "left to refund"
                if n % 11 == 0
                else ""
            ),
            metadata={"paygate_client_ip": f"203.0.113.{n % 5}"},
        )
        Payment.objects.filter(pk=payment.pk).update(created_at=now - timedelta(days=n % 28))
        if status == "failed":
            for _ in range(3):
                PaymentEvent.objects.create(
                    payment=payment, from_status="pending", to_status="failed", source="api"
                )
        if refunded:
            Refund.objects.create(
                payment=payment,
                amount=refunded,
                currency=currency,
                status="succeeded",
                provider_refund_id=f"re_{uuid.uuid4().hex}{uuid.uuid4().hex}",
                reason="customer asked for it back, order damaged in transit",
            )
        WebhookEvent.objects.create(
            provider=payment.provider,
            event_id=f"evt_{uuid.uuid4().hex}{uuid.uuid4().hex[:12]}",
            type="payment_intent.payment_failed" if status == "failed" else "charge.refunded",
            payload="{}",
            status=["processed", "failed", "ignored", "received"][n % 4],
            payment=payment,
        )
        Notification.objects.create(
            kind="refund_succeeded" if refunded else "payment_succeeded",
            payment=payment,
            status=["sent", "failed", "pending"][n % 3],
        )
        if n in (0, 9):
            Dispute.objects.create(
                payment=payment,
                provider_dispute_id=f"dp_{uuid.uuid4().hex}",
                amount=amount,
                currency=currency,
                reason="fraudulent",
            )


def _log_in(page: Any, live_server: Any, user: Any) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def _overflow(page: Any) -> dict[str, int]:
    return page.evaluate(
        """() => {
            const doc = document.documentElement;
            const table = document.querySelector('#result_list');
            const box = table ? table.parentElement : null;
            return {
                page: doc.scrollWidth, viewport: doc.clientWidth,
                table: table ? table.getBoundingClientRect().width : 0,
                container: box ? box.clientWidth : 0,
                tableScroll: box ? box.scrollWidth : 0,
                rows: document.querySelectorAll('#result_list tbody tr').length,
            };
        }"""
    )


@pytest.fixture
def staff(db: Any) -> Any:
    user = UserFactory(username="staff", is_staff=True, is_superuser=True)
    user.set_password("password")
    user.save()
    return user


LISTS = [
    ("payments", "/admin/paygate/payment/"),
    ("refunds", "/admin/paygate/refund/"),
    ("webhooks", "/admin/paygate/webhookevent/"),
    ("notifications", "/admin/paygate/notification/"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    get_payment_model()._meta.label != "paygate.Payment", reason="URLs of the default model"
)
def test_lists_fit_1280px_and_the_dashboard_reads(
    page: Any, live_server: Any, staff: Any, screenshot: Any
) -> None:
    _seed()
    _log_in(page, live_server, staff)

    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for name, path in LISTS:
            page.goto(f"{live_server.url}{path}")
            size = _overflow(page)
            assert size["rows"] > 0, name
            assert size["page"] <= size["viewport"], (name, size)
            assert size["tableScroll"] <= size["container"], (name, size)
            if name == "payments" or scheme == "light":
                screenshot(page, f"{name}-{scheme}")
        page.goto(f"{live_server.url}/admin/paygate/analytics/")
        assert page.locator("figure.pg-chart svg").count() == 2 * len(CURRENCIES)
        assert page.locator(".pg-alert").count() == 1
        size = _overflow(page)
        assert size["page"] <= size["viewport"], ("dashboard", size)
        screenshot(page, f"dashboard-{scheme}")

    page.goto(f"{live_server.url}/admin/")
    assert "2 disputes wait for an answer" in page.locator(".pg-alert").inner_text()
    flagged = page.goto(f"{live_server.url}/admin/paygate/payment/?needs_review__exact=1")
    assert flagged is not None
    assert flagged.ok
    highlighted = page.evaluate(
        "() => getComputedStyle(document.querySelector('#result_list tbody tr td')).backgroundColor"
    )
    assert highlighted not in ("rgba(0, 0, 0, 0)", "transparent")
    assert page.console_errors == []
