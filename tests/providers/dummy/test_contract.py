"""The dummy provider passes the provider contract, through its public behaviour only."""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate.providers import get_provider
from django_paygate.providers.dummy import SIGNATURE_HEADER, DummyProvider
from django_paygate.testing.contract import PAYMENT_SUCCEEDED, REFUND_SUCCEEDED, ProviderContract
from django_paygate.testing.fakes import CARD_DECLINED, CARD_SUCCEEDS
from django_paygate.testing.webhooks import Delivery, dummy_event, dummy_payment_data

pytestmark = pytest.mark.django_db

#: The dummy provider's methods, by the contract's operation names.
METHODS = {
    "create": "create_payment",
    "confirm": "confirm_payment",
    "capture": "capture_payment",
    "refund": "refund_payment",
}


class DummyFake:
    """The dummy provider is its own remote side: read through ``fetch_payment``."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.declined = False

    @property
    def provider(self) -> DummyProvider:
        provider = get_provider(self.alias)
        assert isinstance(provider, DummyProvider)
        return provider

    def confirm_data(self, payment: Any) -> dict[str, Any]:
        card = CARD_DECLINED if self.declined else CARD_SUCCEEDS
        self.declined = False
        return {"payment_method": card}

    def decline_next(self) -> None:
        self.declined = True

    def lose_next_answer(self, operation: str) -> None:
        self.provider.fail_next(METHODS[operation], after=True)

    def payment_objects(self, payment: Any) -> list[str]:
        found = self.provider.fetch_payment(payment).provider_payment_id
        return [found] if found else []

    def refund_objects(self, payment: Any) -> list[str]:
        return [r.provider_refund_id for r in self.provider.fetch_payment(payment).refunds]

    def signed_event(
        self, kind: str, payment: Any, *, refund_id: str = "", secret: str | None = None
    ) -> Delivery:
        secret = secret or self.provider.webhook_secrets()[0]
        if kind == PAYMENT_SUCCEEDED:
            return dummy_event(kind, dummy_payment_data(payment), secret=secret)
        if kind == REFUND_SUCCEEDED:
            (refund,) = [
                r
                for r in self.provider.fetch_payment(payment).refunds
                if r.provider_refund_id == refund_id
            ]
            data = {
                "id": refund.provider_refund_id,
                "payment": refund.provider_payment_id,
                "amount": refund.amount,
                "currency": refund.currency,
                "our_refund_id": refund.our_refund_id,
            }
            return dummy_event(kind, {"refund": data, "payment_id": str(payment.pk)}, secret=secret)
        return dummy_event("payout.paid", {"payout": {"id": "po_1"}}, secret=secret)


class TestDummyContract(ProviderContract):
    provider_alias = "dummy"
    supports_partial_capture = True
    signature_headers = (SIGNATURE_HEADER,)

    @pytest.fixture(autouse=True)
    def _fake(self) -> None:
        self.fake = DummyFake(self.provider_alias)
