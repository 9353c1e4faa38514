"""Outbox rows for the notification tests."""

from __future__ import annotations

from typing import Any

from django_paygate.models import Dispute, Notification
from tests.factories import PaymentFactory, RefundFactory


def make_notification(kind: str, *, payment: Any = None, **payment_fields: Any) -> Notification:
    """A pending outbox row of ``kind``, with the refund or dispute its kind needs."""
    if payment is None:
        payment_fields.setdefault("status", "succeeded")
        payment = PaymentFactory(**payment_fields)
    refund = dispute = None
    if kind.startswith("refund_"):
        refund = RefundFactory(
            payment=payment,
            amount=max(payment.amount // 2, 1),
            currency=payment.currency,
            status="succeeded" if kind == "refund_succeeded" else "failed",
        )
    if kind.startswith("dispute_"):
        dispute = Dispute.objects.create(
            payment=payment,
            provider_dispute_id=f"dp_{payment.pk.hex[:8]}",
            amount=payment.amount,
            currency=payment.currency,
            reason="fraudulent",
            status="open" if kind == "dispute_opened" else "lost",
        )
    return Notification.objects.create(kind=kind, payment=payment, refund=refund, dispute=dispute)
