"""Posting the dummy provider's signed events to the webhook endpoint."""

from __future__ import annotations

from typing import Any

from django.test import Client

from django_paygate.providers.dummy import CARD_SUCCEEDS, DummyProvider

WEBHOOK_URL = "/api/payments/webhooks/dummy/"


def post_event(event: tuple[bytes, dict[str, str]], client: Client | None = None) -> Any:
    body, headers = event
    return (client or Client()).post(
        WEBHOOK_URL, data=body, content_type="application/json", headers=headers
    )


def remote_confirm(dummy: DummyProvider, payment: Any, card: str = CARD_SUCCEEDS) -> Any:
    """Confirm at the dummy provider only (as the customer's browser would); its webhook event."""
    dummy.confirm_payment(payment, idempotency_key=f"remote-{card}", payment_method=card)
    return dummy.sent_events[-1]
