"""Exactly once under concurrency, on PostgreSQL (SQLite serialises writers anyway)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from django_paygate import notifications, services, signals
from django_paygate.models import Notification, WebhookEvent, get_payment_model
from django_paygate.providers.dummy import CARD_SUCCEEDS, DummyProvider
from tests.notifications.conftest import emails_of
from tests.notifications.factories import make_notification
from tests.notifications.webhook import post_event, remote_confirm

pytestmark = [pytest.mark.locking, pytest.mark.django_db(transaction=True)]


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released at once; their results, in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    return results


def test_fifty_concurrent_deliveries_of_one_webhook_send_one_email(
    dummy: DummyProvider, outbox: list[Any], signal_spy: Any
) -> None:
    payment = services.create_payment(amount=1999, currency="USD", email="buyer@example.com")
    event = remote_confirm(dummy, payment, CARD_SUCCEEDS)

    statuses = run_together(50, lambda i: post_event(event, Client()).status_code)

    assert statuses == [200] * 50
    assert WebhookEvent.objects.count() == 1
    assert get_payment_model().objects.get(pk=payment.pk).status == "succeeded"
    [row] = Notification.objects.filter(payment=payment)
    assert (row.kind, row.status, row.attempts) == ("payment_succeeded", "sent", 1)
    assert len(emails_of(outbox, "payment_succeeded")) == 1
    assert len(outbox) == 1
    assert signal_spy.count("payment_succeeded") == 1


def test_two_workers_draining_at_once_send_each_message_once(
    outbox: list[Any], signal_spy: Any
) -> None:
    rows = [make_notification("payment_succeeded") for _ in range(30)]
    ids = [row.pk for row in rows]

    counts = run_together(2, lambda i: notifications.deliver(ids))

    assert sum(c["sent"] for c in counts) == 30
    assert sum(c["skipped"] for c in counts) == 30
    assert sum(c["failed"] for c in counts) == 0
    sent_ids = sorted(int(m.metadata["notification_id"]) for m in outbox)
    assert sent_ids == sorted(ids)  # each once
    assert signal_spy.count("payment_succeeded") == 30
    assert set(Notification.objects.values_list("status", "attempts")) == {("sent", 1)}


def test_two_drain_commands_at_once_send_each_message_once(outbox: list[Any]) -> None:
    from io import StringIO

    from django.core.management import call_command

    ids = [make_notification("payment_failed").pk for _ in range(30)]

    run_together(2, lambda i: call_command("paygate_send_notifications", stdout=StringIO()))

    assert sorted(int(m.metadata["notification_id"]) for m in outbox) == sorted(ids)


def test_four_workers_draining_in_batches_deliver_every_row_once(
    outbox: list[Any], signal_spy: Any
) -> None:
    """Small batches, so the workers' claims interleave: SKIP LOCKED hands each its own."""
    ids = [make_notification("payment_succeeded").pk for _ in range(80)]

    counts = run_together(4, lambda i: notifications.drain(size=7))

    assert sum(c["sent"] for c in counts) == 80
    assert sum(c["failed"] + c["skipped"] for c in counts) == 0
    assert sorted(int(m.metadata["notification_id"]) for m in outbox) == ids  # each once
    assert signal_spy.count("payment_succeeded") == 80
    assert set(Notification.objects.values_list("status", "attempts")) == {("sent", 1)}


def test_drains_and_tasks_on_the_same_rows_deliver_each_once(outbox: list[Any]) -> None:
    """Two drains, and two tasks given every id (in batches), at the same time."""
    ids = [make_notification("payment_failed").pk for _ in range(60)]

    def work(i: int) -> dict[str, int]:
        return notifications.drain(size=5) if i < 2 else notifications.deliver(ids)

    counts = run_together(4, work)

    assert sum(c["sent"] for c in counts) == 60
    assert sum(c["failed"] for c in counts) == 0
    assert sum(counts[i]["skipped"] for i in (2, 3)) == 2 * 60 - sum(
        counts[i]["sent"] for i in (2, 3)
    )
    assert sorted(int(m.metadata["notification_id"]) for m in outbox) == ids
    assert set(Notification.objects.values_list("status", "attempts")) == {("sent", 1)}


def test_a_worker_whose_lease_lapses_mid_batch_stops_and_the_new_owner_delivers(
    outbox: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker A claims three rows, then its first receiver blocks past the whole lease of the
    batch. Worker B claims the three rows and delivers them. A, released, finds its claim
    gone at the record of its first signal: it sends no email, starts no other row (its
    time to start them is over), overwrites nothing."""
    ids = [make_notification("payment_succeeded").pk for _ in range(3)]
    start = timezone.now()
    clock = [start]  # one wall clock for both workers
    monkeypatch.setattr(timezone, "now", lambda: clock[0])
    blocked, go_on = threading.Event(), threading.Event()
    seen: list[tuple[str, Any]] = []

    def receiver(sender: Any, payment: Any, **kwargs: Any) -> None:
        name = threading.current_thread().name
        seen.append((name, payment.pk))
        if name == "A" and not blocked.is_set():
            blocked.set()
            assert go_on.wait(30)

    results: dict[str, dict[str, int]] = {}
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results[threading.current_thread().name] = notifications.drain(size=3)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    signals.payment_succeeded.connect(receiver)
    try:
        a = threading.Thread(target=worker, name="A")
        a.start()
        assert blocked.wait(30)
        claimed = set(Notification.objects.values_list("status", "attempts"))
        assert claimed == {("sending", 1)}  # all three are A's
        clock[0] = start + 2 * notifications.lease() + timedelta(seconds=1)
        b = threading.Thread(target=worker, name="B")
        b.start()
        b.join(60)
        go_on.set()
        a.join(60)
    finally:
        go_on.set()
        signals.payment_succeeded.disconnect(receiver)

    assert errors == []
    assert results["B"] == {"sent": 3, "failed": 0, "skipped": 0}
    assert results["A"] == {"sent": 0, "failed": 0, "skipped": 1}
    assert sorted(int(m.metadata["notification_id"]) for m in outbox) == ids  # each once
    payments = [Notification.objects.get(pk=pk).payment_id for pk in ids]
    # A's first receiver outlasted the lease, so B sent that signal too (documented);
    # A sent no other.
    assert [pk for name, pk in seen if name == "A"] == payments[:1]
    assert [pk for name, pk in seen if name == "B"] == payments
    rows = Notification.objects.order_by("pk").values_list("status", "attempts", "last_error")
    assert list(rows) == [("sent", 2, "")] * 3
