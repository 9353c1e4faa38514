"""``deliver_webhooks``: the dummy provider POSTs its signed events to the site, like
``stripe listen``, after the response of the request that caused them."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.urls import reverse

from django_paygate import services
from django_paygate.models import Dispute, WebhookEvent
from django_paygate.providers.dummy import CARD_SUCCEEDS, SIGNATURE_HEADER

ENVIRON = {"wsgi.url_scheme": "http", "HTTP_HOST": "shop.example:8000"}


@contextlib.contextmanager
def serving_a_request() -> Iterator[None]:
    """The signals a WSGI request sends around its view (the connection is kept, as the
    test client keeps it)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        request_started.send(sender=None, environ=ENVIRON)
        try:
            yield
        finally:
            request_finished.send(sender=None)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def event_ids(bodies: list[bytes]) -> list[str]:
    return [json.loads(body)["id"] for body in bodies]


@pytest.fixture
def posted(monkeypatch) -> list[tuple[str, bytes, dict[str, str]]]:
    """What the delivery thread was handed (instead of POSTing it)."""
    from django_paygate.providers.dummy import _Deliverer

    handed: list[tuple[str, bytes, dict[str, str]]] = []
    monkeypatch.setattr(_Deliverer, "put", lambda self, *item: handed.append(item))
    return handed


@pytest.mark.django_db(transaction=True)
def test_delivered_events_reach_a_live_server_and_are_verified(dummy_with, live_server):
    url = live_server.url + reverse("paygate:webhook", kwargs={"alias": "dummy"})
    dummy = dummy_with(deliver_webhooks=True, webhook_url=url, webhook_retry_delay=0.05)

    # A request of the site pays and (staff) opens a dispute; its events go out after it.
    with serving_a_request():
        payment = services.confirm_payment(
            services.create_payment(amount=1999, currency="USD"), payment_method=CARD_SUCCEEDS
        )
        dummy.open_dispute(payment)

    assert dummy.wait_for_deliveries(30)
    assert [d.status for d in dummy.deliveries] == [200, 200]
    assert dummy.sent_events == []  # delivered, not kept
    stored = WebhookEvent.objects.filter(provider="dummy").order_by("id")
    assert [e.event_id for e in stored] == [d.event_id for d in dummy.deliveries]
    assert [(e.type, e.status) for e in stored] == [
        ("payment.succeeded", "processed"),
        ("dispute.open", "processed"),
    ]
    # The dispute exists only because its webhook was delivered, verified and applied.
    assert Dispute.objects.get(payment=payment).provider_dispute_id.startswith("dummy_dp_")

    # The live site verifies what it receives: the same body tampered with is refused.
    body = stored[1].payload.encode().replace(b'"fraudulent"', b'"duplicate"')
    headers = {SIGNATURE_HEADER: dummy.sign(stored[1].payload.encode()), "Content-Type": "x"}
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers))
    assert refused.value.code == 400


@pytest.mark.django_db
def test_events_caused_by_a_request_wait_for_its_response(dummy_with, posted):
    dummy_with(deliver_webhooks=True, webhook_url="http://127.0.0.1:9/hook/")
    with serving_a_request():
        services.confirm_payment(
            services.create_payment(amount=500, currency="USD"), payment_method=CARD_SUCCEEDS
        )
        assert posted == []  # the response has not gone out yet
    assert [(url, json.loads(body)["type"]) for url, body, _ in posted] == [
        ("http://127.0.0.1:9/hook/", "payment.succeeded")
    ]


@pytest.mark.django_db
def test_outside_a_request_events_go_at_once(dummy_with, posted):
    dummy_with(deliver_webhooks=True, webhook_url="http://127.0.0.1:9/hook/")
    services.confirm_payment(
        services.create_payment(amount=500, currency="USD"), payment_method=CARD_SUCCEEDS
    )
    assert len(posted) == 1


@pytest.mark.django_db
def test_the_webhook_url_is_derived_from_the_request(dummy_with, posted):
    dummy_with(deliver_webhooks=True)
    with serving_a_request():
        services.confirm_payment(
            services.create_payment(amount=500, currency="USD"), payment_method=CARD_SUCCEEDS
        )
    assert [url for url, *_ in posted] == ["http://shop.example:8000/api/payments/webhooks/dummy/"]


@pytest.mark.django_db
def test_without_a_url_or_a_request_the_event_is_kept_not_lost(dummy_with, posted, caplog):
    dummy = dummy_with(deliver_webhooks=True)
    services.confirm_payment(
        services.create_payment(amount=500, currency="USD"), payment_method=CARD_SUCCEEDS
    )
    assert posted == []
    assert len(dummy.sent_events) == 1
    assert "no webhook_url" in caplog.text


def test_an_unreachable_site_is_retried_a_bounded_number_of_times(dummy_with):
    dummy = dummy_with(
        deliver_webhooks=True,
        webhook_url="http://127.0.0.1:9/nothing-listens-here/",
        webhook_retries=2,
        webhook_retry_delay=0,
    )
    body, headers = dummy.build_event("payment.succeeded", {})
    dummy._deliverer.put(dummy.webhook_url(), body, headers)
    assert dummy.wait_for_deliveries(30)
    assert [(d.status, d.attempts) for d in dummy.deliveries] == [(None, 3)]


@pytest.mark.django_db(transaction=True)
def test_a_refusal_is_not_retried(dummy_with, live_server):
    url = live_server.url + "/api/payments/webhooks/nobody/"  # 404: an unknown alias
    dummy = dummy_with(deliver_webhooks=True, webhook_url=url, webhook_retry_delay=0)
    body, headers = dummy.build_event("payment.succeeded", {})
    dummy._deliverer.put(url, body, headers)
    assert dummy.wait_for_deliveries(30)
    assert [(d.status, d.attempts) for d in dummy.deliveries] == [(404, 1)]


def test_without_the_option_events_are_only_recorded(dummy_with, posted: Any):
    dummy = dummy_with()
    dummy._emit("payment.succeeded", {})
    assert posted == []
    assert event_ids([body for body, _ in dummy.sent_events])
