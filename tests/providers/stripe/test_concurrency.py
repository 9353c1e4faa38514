"""Races that only row locks settle (PostgreSQL; SQLite ignores select_for_update)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from django_paygate import services, webhooks
from django_paygate.models import PaymentEvent, WebhookEvent
from tests.providers.stripe.conftest import FakeStripe, event_body, sign

pytestmark = [pytest.mark.locking, pytest.mark.django_db(transaction=True)]


def run_together(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` in threads released at the same moment; results or exceptions."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def worker(i: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[i] = call()
        except Exception as exc:  # reported to the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def succeeded_event(payment: Any, intent: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    obj = {**intent, "status": "succeeded", "amount_received": intent["amount"]}
    obj["latest_charge"] = obj["latest_charge"] or "ch_race"
    body = event_body("payment_intent.succeeded", obj, event_id=f"evt_{payment.pk.hex[:20]}")
    return body, {"Stripe-Signature": sign(body), "Content-Type": "application/json"}


def test_concurrent_copies_of_one_event_count_once(
    fake_stripe: FakeStripe, signal_spy: Any
) -> None:
    payment = services.create_payment(amount=1500, currency="USD", provider="stripe")
    body, headers = succeeded_event(payment, fake_stripe.intents[payment.provider_payment_id])
    results = run_together(*[lambda: webhooks.receive_webhook("stripe", body, headers)] * 4)
    assert sorted(r.status_code for r in results) == [200, 200, 200, 200]
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert WebhookEvent.objects.filter(payment=payment).count() == 1
    assert PaymentEvent.objects.filter(payment=payment, to_status="succeeded").count() == 1
    assert signal_spy.count("payment_succeeded") == 1


def test_confirm_racing_its_own_webhook_moves_once(
    fake_stripe: FakeStripe, signal_spy: Any
) -> None:
    """The redirect/API path and the webhook both report success: one transition."""
    payment = services.create_payment(amount=2500, currency="USD", provider="stripe")
    intent = fake_stripe.intents[payment.provider_payment_id]
    body, headers = succeeded_event(payment, intent)
    results = run_together(
        lambda: services.confirm_payment(payment, payment_method="pm_card_visa"),
        lambda: webhooks.receive_webhook("stripe", body, headers),
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert payment.amount_captured == 2500
    assert PaymentEvent.objects.filter(payment=payment, to_status="succeeded").count() == 1
    assert signal_spy.count("payment_succeeded") == 1
