"""Concurrent deliveries through a real HTTP server and real threads (PostgreSQL).

The server is pytest-django's live server (Django's threaded WSGI server). It
runs in a thread of this process, with one thread and one database connection
per request, so the signal spy sees the post-commit signals its requests send.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.servers.basehttp import WSGIServer
from pytest_django.live_server_helper import LiveServer

from django_paygate.models import PaymentEvent, Refund, WebhookEvent, get_payment_model
from django_paygate.services import ledger
from tests.factories import PaymentFactory
from tests.webhooks.events import Delivery, payment_event, refund_event, url

pytestmark = [pytest.mark.locking, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    """pytest-django's live server (Django's threaded WSGI server), for this module alone.

    The session's ``live_server`` may already be running with Django's listen
    backlog of 10, which resets connections when 50 arrive at once; this one
    listens with a backlog of 128.
    """
    backlog = WSGIServer.request_queue_size
    WSGIServer.request_queue_size = 128
    try:
        live = LiveServer("localhost:0")
    finally:
        WSGIServer.request_queue_size = backlog
    yield live
    live.stop()


ROUNDS = 3
COPIES = 50


def fire(base_url: str, deliveries: list[Delivery], alias: str = "dummy") -> list[int]:
    """POST every delivery at once, one thread and one connection each; the statuses."""
    parts = urlsplit(base_url)
    path = url(alias)
    barrier = threading.Barrier(len(deliveries))
    statuses: list[Any] = [None] * len(deliveries)

    def worker(index: int) -> None:
        body, headers = deliveries[index]
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            conn.connect()
            barrier.wait(timeout=60)
            conn.request(
                "POST", path, body=body, headers={**headers, "Content-Type": "application/json"}
            )
            response = conn.getresponse()
            response.read()
            statuses[index] = response.status
        except Exception as exc:  # reported through the statuses
            statuses[index] = repr(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(deliveries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not any(thread.is_alive() for thread in threads)
    return statuses


def _signals_for(spy: Any, name: str, payment: Any) -> int:
    return sum(1 for call in spy.of(name) if call.payment.pk == payment.pk)


def test_fifty_copies_of_one_event_apply_once(server, dummy, signal_spy):
    for _ in range(ROUNDS):
        payment = PaymentFactory(status="pending")
        delivery = payment_event(dummy, payment, "succeeded")

        statuses = fire(server.url, [delivery] * COPIES)

        assert statuses == [200] * COPIES
        rows = WebhookEvent.objects.filter(payment=payment)
        assert rows.count() == 1
        assert WebhookEvent.objects.get(payment=payment).status == WebhookEvent.Status.PROCESSED
        assert WebhookEvent.objects.get(payment=payment).attempts == 1
        payment = get_payment_model().objects.get(pk=payment.pk)
        assert payment.status == "succeeded"
        assert payment.amount_captured == payment.amount
        assert PaymentEvent.objects.filter(payment=payment, to_status="succeeded").count() == 1
        assert _signals_for(signal_spy, "payment_status_changed", payment) == 1
        assert _signals_for(signal_spy, "payment_succeeded", payment) == 1
    assert signal_spy.count("payment_succeeded") == ROUNDS


def test_two_events_for_one_transition_apply_once(server, dummy, signal_spy):
    for _ in range(ROUNDS):
        payment = PaymentFactory(status="pending")
        first = payment_event(dummy, payment, "succeeded")
        second = payment_event(dummy, payment, "succeeded")  # same change, another event id
        assert first[0] != second[0]

        statuses = fire(server.url, [first, second] * 10)

        assert statuses == [200] * 20
        rows = WebhookEvent.objects.filter(payment=payment)
        assert rows.count() == 2
        assert set(rows.values_list("status", flat=True)) == {WebhookEvent.Status.PROCESSED}
        assert PaymentEvent.objects.filter(payment=payment, to_status="succeeded").count() == 1
        assert get_payment_model().objects.get(pk=payment.pk).status == "succeeded"
        assert _signals_for(signal_spy, "payment_succeeded", payment) == 1
        assert _signals_for(signal_spy, "payment_status_changed", payment) == 1


def test_refund_racing_its_payment_is_applied_once_after_redelivery(server, dummy, signal_spy):
    payment = PaymentFactory(status="pending")
    succeeded = payment_event(dummy, payment, "succeeded")
    refunded = refund_event(dummy, payment, "dummy_re_race", "succeeded", 300)
    deliveries = [succeeded, refunded] * 10

    statuses = fire(server.url, deliveries)
    assert set(statuses) <= {200, 409}
    # The provider delivers again what was not acknowledged.
    retry = [d for d, status in zip(deliveries, statuses, strict=True) if status != 200]
    if retry:
        assert set(fire(server.url, retry[:1] * 5)) == {200}

    payment = get_payment_model().objects.get(pk=payment.pk)
    assert (payment.status, payment.amount_captured, payment.amount_refunded) == (
        "partially_refunded",
        1000,
        300,
    )
    assert Refund.objects.filter(payment=payment).count() == 1
    assert _signals_for(signal_spy, "payment_succeeded", payment) == 1
    assert _signals_for(signal_spy, "refund_succeeded", payment) == 1


def test_prune_leaves_an_old_failed_event_that_a_retry_is_applying(dummy, monkeypatch):
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from django_paygate import webhooks
    from django_paygate.signals import payment_status_changed

    payment = PaymentFactory(status="pending")
    body, headers = payment_event(dummy, payment, "succeeded")
    monkeypatch.setattr(ledger, "apply_event", _raise)
    assert webhooks.receive_webhook("dummy", body, headers).status_code == 500
    monkeypatch.undo()
    WebhookEvent.objects.update(received_at=timezone.now() - timedelta(days=40))

    applying, go_on = threading.Event(), threading.Event()

    def slow_receiver(**kwargs: Any) -> None:  # the retry holds its transaction open
        applying.set()
        assert go_on.wait(30)

    retried: list[Any] = []

    def retry() -> None:
        try:
            retried.append(webhooks.receive_webhook("dummy", body, headers))
        finally:
            connection.close()

    payment_status_changed.connect(slow_receiver, weak=False)
    try:
        thread = threading.Thread(target=retry)
        thread.start()
        assert applying.wait(30)
        # The row the retry holds is left alone, not waited for (and then broken).
        assert webhooks.prune_events(older_than_days=30, include_failed=True) == 0
        go_on.set()
        thread.join(30)
    finally:
        payment_status_changed.disconnect(slow_receiver)

    assert retried[0].status_code == 200
    assert WebhookEvent.objects.get().status == "processed"
    assert get_payment_model().objects.get(pk=payment.pk).status == "succeeded"


def _raise(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("transient")
