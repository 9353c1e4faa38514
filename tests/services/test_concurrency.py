"""Locks proven on PostgreSQL with real threads released together."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from django_paygate import services
from django_paygate.exceptions import (
    InvalidTransition,
    PaymentDeclined,
    ProviderUnavailable,
    RefundExceedsCaptured,
)
from django_paygate.models import Refund, get_payment_model
from django_paygate.providers.dummy import CARD_DECLINED, CARD_REQUIRES_ACTION, CARD_SUCCEEDS

pytestmark = [pytest.mark.locking, pytest.mark.django_db(transaction=True)]


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


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Start ``call`` in a thread; the list receives its result or exception."""
    out: list[Any] = []

    def worker() -> None:
        try:
            out.append(call())
        except Exception as exc:
            out.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    return thread, out


def _created_but_unlinked(dummy: Any) -> Any:
    """A payment whose create reached the provider while its answer was lost."""
    dummy.fail_next("create_payment", after=True)
    with pytest.raises(ProviderUnavailable):
        services.create_payment(amount=1000, currency="USD")
    payment = get_payment_model().objects.get()
    assert (payment.status, payment.provider_payment_id) == ("pending", None)
    return payment


def _remote(dummy: Any, payment: Any) -> Any:
    return dummy._remote[f"dummy_{payment.pk.hex}"]


def test_confirm_never_pays_a_payment_canceled_while_it_created_the_provider_object(
    dummy, monkeypatch
):
    payment = _created_but_unlinked(dummy)
    creating, go_on = threading.Event(), threading.Event()
    create = dummy.create_payment

    def slow_create(p: Any, **kwargs: Any) -> Any:
        creating.set()
        assert go_on.wait(30)
        return create(p, **kwargs)

    monkeypatch.setattr(dummy, "create_payment", slow_create)
    thread, out = in_thread(lambda: services.confirm_payment(payment, payment_method=CARD_SUCCEEDS))
    assert creating.wait(30)
    assert services.cancel_payment(payment).status == "canceled"  # still unlinked: local
    go_on.set()
    thread.join(30)

    assert isinstance(out[0], InvalidTransition)
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured, payment.needs_review) == ("canceled", 0, False)
    assert _remote(dummy, payment).captured == 0


@pytest.mark.parametrize("round_", range(5))
def test_confirm_racing_cancel_agrees_with_the_provider(dummy, round_):
    payment = _created_but_unlinked(dummy)
    run_together(
        2,
        lambda i: (
            services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
            if i == 0
            else services.cancel_payment(payment)
        ),
    )
    payment.refresh_from_db()
    remote = _remote(dummy, payment)
    # Whoever won, the money agrees: charged and succeeded here, or charged nowhere (a
    # provider object made after the cancel is left unpaid: nobody gets its checkout data).
    assert payment.amount_captured == remote.captured
    assert payment.status == ("succeeded" if remote.captured else "canceled")
    assert not payment.needs_review


def test_a_decline_answered_after_a_newer_attempt_moved_on_is_not_applied(dummy, monkeypatch):
    payment = services.create_payment(amount=1000, currency="USD")
    confirm = dummy.confirm_payment
    declined, newer_applied = threading.Event(), threading.Event()

    def slow_decline(p: Any, **kwargs: Any) -> Any:
        result = confirm(p, **kwargs)
        if kwargs.get("payment_method") == CARD_DECLINED:
            declined.set()
            assert newer_applied.wait(30)
        return result

    monkeypatch.setattr(dummy, "confirm_payment", slow_decline)
    thread, out = in_thread(lambda: services.confirm_payment(payment, payment_method=CARD_DECLINED))
    assert declined.wait(30)
    newer = services.confirm_payment(payment, payment_method=CARD_REQUIRES_ACTION)
    assert newer.status == "requires_action"
    newer_applied.set()
    thread.join(30)

    assert isinstance(out[0], PaymentDeclined)  # the caller's card was declined
    payment.refresh_from_db()
    assert payment.status == _remote(dummy, payment).status.value == "requires_action"
    assert payment.events.filter(note__startswith="declined again").count() == 1


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


@pytest.mark.parametrize("round_", range(3))
def test_twenty_concurrent_refunds_with_one_key_make_one_refund(dummy, round_):
    payment = services.create_payment(amount=1000, currency="USD")
    payment = services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)

    results = run_together(
        20, lambda i: services.refund_payment(payment, amount=300, idempotency_key="rma-1")
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({r.pk for r in results}) == 1
    payment.refresh_from_db()
    assert (payment.amount_refunded, Refund.objects.filter(payment=payment).count()) == (300, 1)
    assert sum(r.amount for r in _remote(dummy, payment).refunds.values()) == 300
