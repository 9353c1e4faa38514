"""A signed event is never refused for what a customer wrote into it.

Razorpay's ``notes`` are set by the browser (Checkout options): a NUL, a lone
surrogate or a huge note must not make the inbox refuse the correctly signed
``payment.captured`` of that payment, on any retry. PostgreSQL refuses NUL in
``text`` and ``jsonb``; lone surrogates are not UTF-8 anywhere.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from django_paygate import webhooks
from django_paygate.models import PaymentEvent, WebhookEvent
from tests.factories import PaymentFactory
from tests.providers.razorpay.conftest import (
    WEBHOOK_URL,
    event_body,
    payment_entity,
    signed_headers,
)
from tests.webhooks.events import new_id

pytestmark = pytest.mark.django_db(transaction=True)

ORDER = "order_PgUnstorable01"
PAY = "pay_PgUnstorable01"

HOSTILE_NOTES = {
    "nul": "\x00",
    "nul inside an id": "{id}\x00",
    "lone surrogate": "\ud800",
    "surrogate after an id": "{id}\udfff",
    "over-long": "x" * 200_000,
    "another payment's id, unlinked": "{other}",
    "not an id": "'; DROP TABLE paygate_payment; --",
}


@pytest.fixture
def payment(razorpay_settings: Any, rzp_payment: Any) -> Any:
    return rzp_payment(ORDER)


def deliver(body: bytes, event_id: str) -> Any:
    return Client().post(
        WEBHOOK_URL,
        data=body,
        content_type="application/json",
        **signed_headers(body, event_id=event_id),
    )


@pytest.mark.parametrize("note", HOSTILE_NOTES.values(), ids=HOSTILE_NOTES.keys())
def test_a_hostile_note_never_refuses_the_signed_capture(payment: Any, note: str) -> None:
    other = PaymentFactory(provider="razorpay", provider_payment_id=None, amount=49900)
    text = note.format(id=payment.pk, other=other.pk)
    notes = {"paygate_payment_id": text, "comment": f"hello{text}"}
    entity = payment_entity(
        "payment_captured", payment_id=PAY, order_id=ORDER, amount=49900, notes=notes
    )
    entity["description"] = f"gift\x00{text[:50]}"
    body = event_body("payment.captured", payment=entity)
    for attempt in range(2):  # Razorpay retries: every delivery gets the same answer
        response = deliver(body, "evt_hostile_note")
        assert response.status_code == 200, (attempt, response.content)
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured) == ("succeeded", 49900)
    other.refresh_from_db()
    assert other.status == "pending"  # a note never moves another payment
    row = WebhookEvent.objects.get()
    assert (row.status, row.payment_id) == ("processed", payment.pk)
    assert row.payload == body.decode()
    assert PaymentEvent.objects.filter(payment=payment, to_status="succeeded").count() == 1


def test_a_hostile_note_on_an_order_event_is_stored_and_ignored(razorpay_settings: Any) -> None:
    entity = payment_entity(
        "payment_captured",
        payment_id=PAY,
        order_id="order_PgNobodyKnows1",
        amount=100,
        notes={"paygate_payment_id": "\x00\ud800"},
    )
    body = event_body("payment.captured", payment=entity)
    assert deliver(body, new_id()).status_code == 200
    assert WebhookEvent.objects.get().status == "ignored"


def test_unstorable_text_is_escaped_not_dropped() -> None:
    assert webhooks.storable_text("a\x00b\ud800c") == "a\\u0000b\\ud800c"
    assert webhooks.storable_text("plain ☃ text") == "plain ☃ text"
