"""The inbox claim on databases without ``INSERT … ON CONFLICT … RETURNING``.

The savepoint-and-``IntegrityError`` path is forced here on SQLite and PostgreSQL,
so it keeps the same outcomes as the one-statement claim.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate import webhooks
from django_paygate.models import WebhookEvent
from tests.factories import PaymentFactory
from tests.webhooks.events import payment_event

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def without_native_upsert(monkeypatch: Any) -> None:
    monkeypatch.setattr(webhooks, "_native_upsert", lambda: False)


def deliver(delivery: tuple[bytes, dict[str, str]]) -> webhooks.WebhookResult:
    body, headers = delivery
    return webhooks.receive_webhook("dummy", body, headers)


def test_first_delivery_then_duplicate(dummy: Any, signal_spy: Any) -> None:
    payment = PaymentFactory(status="pending")
    delivery = payment_event(dummy, payment, "succeeded")

    assert deliver(delivery).outcome == webhooks.PROCESSED
    assert deliver(delivery).outcome == webhooks.DUPLICATE

    payment.refresh_from_db()
    assert payment.status == "succeeded"
    row = WebhookEvent.objects.get()
    assert (row.status, row.attempts, row.payment_id) == ("processed", 1, payment.pk)
    assert signal_spy.count("payment_status_changed") == 1


def test_a_failed_event_is_taken_again(dummy: Any, monkeypatch: Any) -> None:
    payment = PaymentFactory(status="pending")
    delivery = payment_event(dummy, payment, "succeeded")

    def boom(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("the database hiccuped")

    with monkeypatch.context() as patch:
        patch.setattr(webhooks.ledger, "apply_event", boom)
        assert deliver(delivery).outcome == webhooks.FAILED
    assert WebhookEvent.objects.get().status == "failed"

    assert deliver(delivery).outcome == webhooks.PROCESSED
    row = WebhookEvent.objects.get()
    assert (row.status, row.attempts, row.error) == ("processed", 2, "")
    payment.refresh_from_db()
    assert payment.status == "succeeded"


def test_unknown_payment_and_unmapped_type_are_ignored(dummy: Any) -> None:
    stranger = PaymentFactory.build(provider_payment_id="dummy_nobody")
    assert deliver(payment_event(dummy, stranger, "succeeded")).outcome == webhooks.IGNORED
    assert deliver(dummy.build_event("customer.created", {})).outcome == webhooks.IGNORED
    assert sorted(WebhookEvent.objects.values_list("error", flat=True)) == [
        "event type not handled",
        "no matching payment",
    ]
