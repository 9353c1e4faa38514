"""Events signed by someone else: localstripe signs and delivers them to the live server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from django_paygate import services
from django_paygate.models import PaymentEvent, WebhookEvent, get_payment_model
from django_paygate.providers.stripe import StripeProvider
from tests.providers.stripe.conftest import SECRET_KEY, WEBHOOK_SECRET, WEBHOOK_URL, sign

pytestmark = pytest.mark.django_db(transaction=True)

HOOK_ID = "paygate-tests"


@pytest.fixture(scope="session")
def _static_url() -> Iterator[None]:
    """The live server's static-files wrapper needs STATIC_URL, which tests/settings.py lacks."""
    from django.test import override_settings

    override = override_settings(STATIC_URL="/static/")
    override.enable()
    yield
    override.disable()


@pytest.fixture
def localstripe_webhook(_static_url: None, live_server: Any, localstripe_url: str) -> Iterator[str]:
    """Register our endpoint on localstripe; unregister it (no events) afterwards."""
    url = live_server.url.replace("localhost", "127.0.0.1") + WEBHOOK_URL
    events = ["payment_intent.succeeded", "payment_intent.payment_failed"]
    response = requests.post(
        f"{localstripe_url}/_config/webhooks/{HOOK_ID}",
        json={"url": url, "secret": WEBHOOK_SECRET, "events": events},
        timeout=10,
    )
    assert response.status_code == 200
    yield url
    requests.post(
        f"{localstripe_url}/_config/webhooks/{HOOK_ID}",
        json={"url": url, "secret": WEBHOOK_SECRET, "events": []},
        timeout=10,
    ).raise_for_status()
    # localstripe checks its registry one second after an event: let any delivery
    # already on its way land now rather than in a later test's database.
    time.sleep(1.0)


def wait_for(predicate: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def test_localstripe_signed_event_moves_the_payment_once(
    local_stripe: StripeProvider,
    localstripe_url: str,
    localstripe_webhook: str,
    signal_spy: Any,
    client: Any,
) -> None:
    payment = services.create_payment(amount=4200, currency="USD", provider="stripe")
    pid = payment.provider_payment_id
    assert pid
    # The customer pays on Stripe's side (Stripe.js in real life): our database
    # learns about it only from the webhook localstripe signs and sends.
    for path, data in (
        (f"/v1/payment_intents/{pid}", {"payment_method": "pm_card_visa"}),
        (f"/v1/payment_intents/{pid}/confirm", {}),
    ):
        response = requests.post(
            f"{localstripe_url}{path}", data=data, auth=(SECRET_KEY, ""), timeout=10
        )
        assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"

    Payment = get_payment_model()
    assert wait_for(lambda: Payment.objects.get(pk=payment.pk).status == "succeeded")
    assert wait_for(lambda: signal_spy.count("payment_succeeded") >= 1)

    payment.refresh_from_db()
    assert payment.amount_captured == 4200
    # (Events of earlier tests' payments may arrive too: they are stored and ignored.)
    (inbox,) = WebhookEvent.objects.filter(provider="stripe", payment=payment)
    assert inbox.type == "payment_intent.succeeded"
    assert inbox.status == "processed"
    assert inbox.payment_id == payment.pk
    moves = PaymentEvent.objects.filter(payment=payment).exclude(to_status="pending")
    assert [(m.from_status, m.to_status, m.source) for m in moves] == [
        ("pending", "succeeded", "webhook")
    ]

    # The same delivery again (say localstripe retried it): acknowledged, nothing moves.
    body = inbox.payload.encode()
    response = client.post(
        WEBHOOK_URL,
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign(body),
    )
    assert response.status_code == 200
    time.sleep(0.5)
    assert PaymentEvent.objects.filter(payment=payment).exclude(to_status="pending").count() == 1
    assert signal_spy.count("payment_succeeded") == 1
    assert WebhookEvent.objects.filter(provider="stripe", payment=payment).count() == 1
