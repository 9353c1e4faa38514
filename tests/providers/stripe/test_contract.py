"""Stripe passes the provider contract, against the stateful fake Stripe on ``responses``."""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate.providers.stripe import METADATA_PAYMENT_KEY, SIGNATURE_HEADER
from django_paygate.testing.contract import PAYMENT_SUCCEEDED, REFUND_SUCCEEDED, ProviderContract
from django_paygate.testing.webhooks import Delivery, stripe_event, stripe_payment_intent

from .conftest import WEBHOOK_SECRET, FakeStripe

pytestmark = pytest.mark.django_db


class StripeFake:
    def __init__(self, api: FakeStripe) -> None:
        self.api = api

    def confirm_data(self, payment: Any) -> dict[str, Any]:
        return {"payment_method": "pm_card_visa"}

    def decline_next(self) -> None:
        self.api.fail_next("confirm", "card_declined")

    def lose_next_answer(self, operation: str) -> None:
        self.api.fail_next(operation, "timeout", after=True)

    def payment_objects(self, payment: Any) -> list[str]:
        ours = str(payment.pk)
        return [
            i["id"]
            for i in self.api.intents.values()
            if i["metadata"].get(METADATA_PAYMENT_KEY) == ours
        ]

    def refund_objects(self, payment: Any) -> list[str]:
        intents = set(self.payment_objects(payment))
        return [r["id"] for r in self.api.refunds.values() if r["payment_intent"] in intents]

    def signed_event(
        self, kind: str, payment: Any, *, refund_id: str = "", secret: str | None = None
    ) -> Delivery:
        secret = secret or WEBHOOK_SECRET
        if kind == PAYMENT_SUCCEEDED:
            intent = stripe_payment_intent(payment, status="succeeded")
            return stripe_event("payment_intent.succeeded", intent, secret=secret)
        if kind == REFUND_SUCCEEDED:
            return stripe_event("refund.updated", self.api.refunds[refund_id], secret=secret)
        return stripe_event(
            "customer.created", {"id": "cus_1", "object": "customer"}, secret=secret
        )


class TestStripeContract(ProviderContract):
    provider_alias = "stripe"
    supports_partial_capture = True
    signature_headers = (SIGNATURE_HEADER,)

    @pytest.fixture(autouse=True)
    def _fake(self, fake_stripe: FakeStripe) -> None:
        self.fake = StripeFake(fake_stripe)
