"""Signed dummy webhook deliveries for the webhook tests."""

from __future__ import annotations

import uuid
from typing import Any

from django.urls import reverse

from django_paygate.providers.dummy import SIGNATURE_HEADER, DummyProvider

Delivery = tuple[bytes, dict[str, str]]


def url(alias: str = "dummy") -> str:
    return reverse("paygate:webhook", kwargs={"alias": alias})


def new_id(prefix: str = "evt") -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def payment_event(
    dummy: DummyProvider,
    payment: Any,
    status: str,
    *,
    event_id: str | None = None,
    amount: int | None = None,
    currency: str | None = None,
    captured: int | None = None,
    provider_payment_id: str | None = None,
    failure_code: str = "",
) -> Delivery:
    """A ``payment.<status>`` event about ``payment``, as the dummy provider signs it."""
    amount = payment.amount if amount is None else amount
    if captured is None:
        captured = amount if status == "succeeded" else 0
    data = {
        "payment": {
            "id": provider_payment_id or payment.provider_payment_id,
            "amount": amount,
            "currency": currency or payment.currency,
            "amount_captured": captured,
            "status": status,
            "failure_code": failure_code,
        },
        "payment_id": str(payment.pk),
    }
    return dummy.build_event(f"payment.{status}", data, event_id=event_id or new_id())


def refund_event(
    dummy: DummyProvider,
    payment: Any,
    refund_id: str,
    status: str,
    amount: int,
    *,
    event_id: str | None = None,
) -> Delivery:
    """A ``refund.<status>`` event for a refund made at the provider."""
    data = {
        "refund": {
            "id": refund_id,
            "payment": payment.provider_payment_id,
            "amount": amount,
            "currency": payment.currency,
            "status": status,
            "our_refund_id": None,
        },
        "payment_id": str(payment.pk),
    }
    return dummy.build_event(f"refund.{status}", data, event_id=event_id or new_id())


def dispute_event(
    dummy: DummyProvider,
    payment: Any,
    dispute_id: str,
    status: str = "open",
    *,
    amount: int | None = None,
    event_id: str | None = None,
) -> Delivery:
    data = {
        "dispute": {
            "id": dispute_id,
            "payment": payment.provider_payment_id,
            "amount": payment.amount if amount is None else amount,
            "currency": payment.currency,
            "reason": "fraudulent",
            "status": status,
        },
        "payment_id": str(payment.pk),
    }
    return dummy.build_event(f"dispute.{status}", data, event_id=event_id or new_id())


def post(client: Any, delivery: Delivery, alias: str = "dummy", **extra: Any) -> Any:
    """POST a delivery through Django's test client."""
    body, headers = delivery
    return client.post(
        url(alias), data=body, content_type="application/json", headers=headers, **extra
    )


def unsigned(delivery: Delivery) -> Delivery:
    body, _ = delivery
    return body, {}


__all__ = [
    "SIGNATURE_HEADER",
    "dispute_event",
    "new_id",
    "payment_event",
    "post",
    "refund_event",
    "unsigned",
    "url",
]
