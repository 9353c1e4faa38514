"""Locks proven on PostgreSQL with real threads released together."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from django_paygate import services
from django_paygate.exceptions import InvalidTransition, RefundExceedsCaptured
from django_paygate.models import Refund, get_payment_model
from django_paygate.providers.dummy import CARD_SUCCEEDS

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def run_together(n: int, target: Callable[[int], Any]) -> list[Any]:
    """Run ``target(i)`` in ``n`` threads released at once; results or exceptions."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = target(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("round_", range(3))
def test_twenty_concurrent_refunds_never_exceed_the_capture(dummy, signal_spy, round_):
    payment = services.create_payment(amount=1000, currency="USD")
    payment = services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    assert payment.amount_captured == 1000

    results = run_together(20, lambda i: services.refund_payment(payment, amount=100))

    refunds = [r for r in results if isinstance(r, Refund)]
    # Once all is refunded the payment is final: later calls meet InvalidTransition instead.
    refused = [r for r in results if isinstance(r, (RefundExceedsCaptured, InvalidTransition))]
    assert len(refunds) == 10, results
    assert len(refused) == 10, results
    payment.refresh_from_db()
    assert payment.amount_refunded == 1000
    assert payment.status == "refunded"
    assert Refund.objects.filter(payment=payment, status="succeeded").count() == 10
    assert sum(1 for m, _ in dummy.calls if m == "refund_payment") == 10
    assert signal_spy.count("refund_succeeded") == 10


@pytest.mark.parametrize("round_", range(3))
def test_twenty_concurrent_creates_with_one_key_make_one_payment(dummy, round_):
    key = f"order-42-{round_}"
    results = run_together(
        20, lambda i: services.create_payment(amount=2500, currency="EUR", idempotency_key=key)
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({r.pk for r in results}) == 1
    assert get_payment_model().objects.filter(idempotency_key=key).count() == 1
    assert sum(1 for m, _ in dummy.calls if m == "create_payment") == 1


def test_concurrent_confirm_and_webhook_give_one_transition(dummy, signal_spy):
    """The redirect-return versus webhook race: one transition, one signal."""
    from django.test import Client

    payment = services.create_payment(amount=700, currency="USD")
    body, headers = dummy.build_event(
        "payment.succeeded",
        {
            "payment": {
                "id": payment.provider_payment_id,
                "amount": 700,
                "currency": "USD",
                "amount_captured": 700,
            },
            "payment_id": str(payment.pk),
        },
    )

    def act(i: int) -> Any:
        if i % 2:
            return services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
        meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
        return (
            Client()
            .post("/api/payments/webhooks/dummy/", body, content_type="application/json", **meta)
            .status_code
        )

    results = run_together(10, act)
    assert all(not isinstance(r, Exception) for r in results), results
    assert [r for r in results if isinstance(r, int)] == [200] * 5
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert (
        payment.events.filter(to_status="succeeded").exclude(from_status="succeeded").count() == 1
    )
    assert signal_spy.count("payment_succeeded") == 1
