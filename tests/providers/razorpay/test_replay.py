"""X-Razorpay-Event-Id is not signed: a captured body replayed under fresh ids counts once.

The inbox deduplicates on what the signature covers (a digest of the signed body) for a
provider whose event id is not signed, so a replay changes nothing and flags nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from django_paygate import webhooks
from django_paygate.models import PaymentEvent, WebhookEvent
from django_paygate.providers import get_provider
from django_paygate.providers.base import body_event_id
from django_paygate.providers.dummy import DummyProvider
from django_paygate.providers.razorpay import RazorpayProvider
from tests.providers.razorpay.conftest import (
    WEBHOOK_URL,
    event_body,
    payment_entity,
    signed_headers,
)

pytestmark = pytest.mark.django_db(transaction=True)

ORDER = "order_PgReplay000001"


def deliver(body: bytes, event_id: str) -> Any:
    return Client().post(
        WEBHOOK_URL,
        data=body,
        content_type="application/json",
        **signed_headers(body, event_id=event_id),
    )


def test_a_captured_body_replayed_under_fresh_ids_changes_nothing(
    razorpay_settings: Any, rzp_payment: Any, signal_spy: Any
) -> None:
    payment = rzp_payment(ORDER)
    first = payment_entity(
        "payment_captured", payment_id="pay_PgReplay01", order_id=ORDER, amount=49900
    )
    second = payment_entity(
        "payment_captured", payment_id="pay_PgReplay02", order_id=ORDER, amount=49900
    )
    body_first = event_body("payment.captured", payment=first)
    body_second = event_body("payment.captured", payment=second)
    assert deliver(body_first, "evt_original").status_code == 200
    assert deliver(body_second, "evt_second_attempt").status_code == 200
    payment.refresh_from_db()
    flagged = payment.needs_review  # a real second capture on the order is flagged
    audit = PaymentEvent.objects.filter(payment=payment).count()
    rows = WebhookEvent.objects.count()

    for n in range(5):  # the attacker replays both captured bodies under new ids
        assert deliver(body_first, f"evt_replay_{n}").status_code == 200
        assert deliver(body_second, f"evt_replay_b{n}").status_code == 200

    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured) == ("succeeded", 49900)
    assert payment.needs_review == flagged
    assert PaymentEvent.objects.filter(payment=payment).count() == audit
    assert WebhookEvent.objects.count() == rows == 2
    assert signal_spy.count("payment_succeeded") == 1


def test_a_replay_of_one_body_flags_nothing(razorpay_settings: Any, rzp_payment: Any) -> None:
    payment = rzp_payment(ORDER)
    entity = payment_entity(
        "payment_captured", payment_id="pay_PgReplay03", order_id=ORDER, amount=49900
    )
    body = event_body("payment.captured", payment=entity)
    for n in range(3):
        assert deliver(body, f"evt_{n}").status_code == 200
    payment.refresh_from_db()
    assert (payment.status, payment.needs_review) == ("succeeded", False)
    row = WebhookEvent.objects.get()
    assert row.event_id == body_event_id(body)
    assert row.headers["x-razorpay-event-id"] == "evt_0"  # the first delivery's, kept


def test_only_providers_with_unsigned_event_ids_are_deduplicated_by_body() -> None:
    assert RazorpayProvider.event_id_signed is False
    assert DummyProvider.event_id_signed is True  # its ids are inside the signed body


def test_replaying_a_stored_razorpay_event_reuses_its_row(
    razorpay_settings: Any, rzp_payment: Any
) -> None:
    rzp_payment(ORDER)
    entity = payment_entity(
        "payment_captured", payment_id="pay_PgReplay04", order_id=ORDER, amount=49900
    )
    assert deliver(event_body("payment.captured", payment=entity), "evt_x").status_code == 200
    row = WebhookEvent.objects.get()
    WebhookEvent.objects.filter(pk=row.pk).update(status="failed")
    row.refresh_from_db()
    assert webhooks.replay_event(row).status_code == 200
    assert WebhookEvent.objects.get().pk == row.pk
    assert isinstance(get_provider("razorpay"), RazorpayProvider)
