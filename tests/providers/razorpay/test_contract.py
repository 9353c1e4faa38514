"""Razorpay passes the provider contract, against the fake Razorpay API on ``responses``."""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate.providers.razorpay import NOTE_PAYMENT_ID, SIGNATURE_HEADER
from django_paygate.testing.contract import PAYMENT_SUCCEEDED, REFUND_SUCCEEDED, ProviderContract
from django_paygate.testing.webhooks import Delivery, razorpay_event, razorpay_payment_entity

from .conftest import WEBHOOK_SECRET, FakeRazorpay

pytestmark = pytest.mark.django_db

#: The fake's routes, by the contract's operation names (Razorpay captures on confirm).
ROUTES = {
    "create": "order.create",
    "confirm": "payment.capture",
    "capture": "payment.capture",
    "refund": "payment.refund",
}


class RazorpayFake:
    def __init__(self, api: FakeRazorpay) -> None:
        self.api = api
        self.declined = False

    def confirm_data(self, payment: Any) -> dict[str, Any]:
        """The customer pays the order in Checkout; its handler posts back the signed ids."""
        status = "failed" if self.declined else "authorized"
        self.declined = False
        notes = {NOTE_PAYMENT_ID: str(payment.pk)}
        return self.api.checkout(str(payment.provider_payment_id), status, notes=notes)

    def decline_next(self) -> None:
        self.declined = True

    def lose_next_answer(self, operation: str) -> None:
        self.api.fail_next(ROUTES[operation], "timeout", after=True)

    def payment_objects(self, payment: Any) -> list[str]:
        return [o["id"] for o in self.api.orders.values() if o["receipt"] == str(payment.pk)]

    def refund_objects(self, payment: Any) -> list[str]:
        return [r["id"] for o in self.payment_objects(payment) for r in self.api.order_refunds(o)]

    def signed_event(
        self, kind: str, payment: Any, *, refund_id: str = "", secret: str | None = None
    ) -> Delivery:
        secret = secret or WEBHOOK_SECRET
        if kind == PAYMENT_SUCCEEDED:
            entity = razorpay_payment_entity(payment, status="captured")
            return razorpay_event("payment.captured", {"payment": entity}, secret=secret)
        if kind == REFUND_SUCCEEDED:
            refund = self.api.refunds[refund_id]
            entities = {"refund": refund, "payment": self.api.payments[refund["payment_id"]]}
            return razorpay_event("refund.processed", entities, secret=secret)
        entities = {"settlement": {"id": "setl_Contract0001", "amount": 100}}
        return razorpay_event("settlement.processed", entities, secret=secret)


class TestRazorpayContract(ProviderContract):
    provider_alias = "razorpay"
    amount = 60000
    currency = "INR"
    signature_headers = (SIGNATURE_HEADER,)

    @pytest.fixture(autouse=True)
    def _fake(self, fake: FakeRazorpay) -> None:
        self.fake = RazorpayFake(fake)
