"""Exactly once under concurrency, on PostgreSQL (SQLite serialises writers anyway)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from django_paygate import notifications, services
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
