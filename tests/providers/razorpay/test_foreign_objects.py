"""Events about Razorpay objects that are not the payment's own.

A payment's notes come from Checkout options in the customer's browser: a customer can
name any of our payments there. Our id in an event finds only a payment that is not
linked to its order yet; an event about another order never moves a linked payment.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate import services
from django_paygate.exceptions import InvalidAmount
from django_paygate.models import Refund, WebhookEvent
from tests.providers.razorpay.conftest import (
    FakeRazorpay,
    copy_entity,
    event_body,
    load,
    payment_entity,
)
from tests.providers.razorpay.test_webhooks import deliver

pytestmark = pytest.mark.django_db(transaction=True)


def _foreign_payment(ours: Any, **fields: Any) -> dict[str, Any]:
    """A payment on an order that is not ours, whose Checkout notes name ``ours``."""
    return payment_entity(
        "payment_captured",
        payment_id="pay_Foreign000001",
        order_id="order_Foreign00001",
        amount=49900,
        notes={"paygate_payment_id": str(ours.pk)},
        **fields,
    )


def test_a_payment_on_a_foreign_order_leaves_our_linked_payment_alone(
    razorpay_settings: Any, rzp_payment: Any
) -> None:
    b = rzp_payment("order_PgOursB000001")  # linked to its own order, not paid yet
    entity = _foreign_payment(b)
    assert deliver(event_body("payment.captured", payment=entity), "evt_f1").status_code == 200
    b.refresh_from_db()
    assert (b.status, b.provider_payment_id, b.provider_data) == (
        "pending",
        "order_PgOursB000001",
        {},
    )
    row = WebhookEvent.objects.get()
    assert (row.headers["x-razorpay-event-id"], row.status) == ("evt_f1", "ignored")


def test_a_customer_paying_order_a_with_notes_naming_b_pays_a(
    razorpay_settings: Any, rzp_payment: Any
) -> None:
    b = rzp_payment("order_PgOursB000001")
    a = rzp_payment("order_PgOursA000001")
    notes = {"paygate_payment_id": str(b.pk)}
    pay = payment_entity(
        "payment_captured",
        payment_id="pay_PgA000000001",
        order_id="order_PgOursA000001",
        amount=49900,
        notes=notes,
    )
    order = copy_entity(
        load("order"),
        id="order_PgOursA000001",
        amount=49900,
        amount_paid=49900,
        amount_due=0,
        status="paid",
        receipt=str(a.pk),
        notes={"paygate_payment_id": str(a.pk)},
    )
    assert deliver(event_body("payment.captured", payment=pay), "evt_1").status_code == 200
    assert deliver(event_body("order.paid", payment=pay, order=order), "evt_2").status_code == 200
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.status, b.status) == ("succeeded", "pending")


def test_a_refund_on_a_foreign_order_refunds_nothing_of_ours(
    razorpay_settings: Any, rzp_payment: Any
) -> None:
    b = rzp_payment(
        "order_PgOursB000001",
        status="succeeded",
        amount_captured=49900,
        provider_data={"razorpay_payment_id": "pay_PgOursB00001"},
    )
    foreign = _foreign_payment(b, status="refunded", captured=True)
    refund = copy_entity(
        load("refund"),
        id="rfnd_Foreign00001",
        payment_id="pay_Foreign000001",
        amount=49900,
        status="processed",
        notes=[],
    )
    body = event_body("refund.processed", refund=refund, payment=foreign)
    assert deliver(body, "evt_r1").status_code == 200
    b.refresh_from_db()
    # B's own money was never refunded.
    assert (b.status, b.amount_refunded) == ("succeeded", 0)
    assert not Refund.objects.exists()


def test_after_a_foreign_payment_our_own_order_is_paid_once(
    razorpay_settings: Any, rzp_payment: Any
) -> None:
    b = rzp_payment("order_PgOursB000001")
    foreign = _foreign_payment(b)
    assert deliver(event_body("payment.captured", payment=foreign), "evt_f1").status_code == 200
    own = payment_entity(
        "payment_captured",
        payment_id="pay_PgOursB00001",
        order_id="order_PgOursB000001",
        amount=49900,
    )
    assert deliver(event_body("payment.captured", payment=own), "evt_o1").status_code == 200
    b.refresh_from_db()
    assert (b.status, b.amount_captured, b.needs_review) == ("succeeded", 49900, False)
    assert b.provider_data == {"razorpay_payment_id": "pay_PgOursB00001"}


def test_three_decimal_partial_refund_is_refused_before_the_call(fake: FakeRazorpay) -> None:
    payment = services.create_payment(
        provider="razorpay", amount=10000, currency="KWD", email="a@example.com"
    )
    answer = fake.checkout(payment.provider_payment_id, "captured")
    services.confirm_payment(payment, **answer)
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    before = len(fake.calls("payment.refund"))
    with pytest.raises(InvalidAmount):
        services.refund_payment(payment, amount=1235)  # 1.235 KWD: Razorpay wants a final 0
    assert len(fake.calls("payment.refund")) == before
