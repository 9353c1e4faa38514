"""Razorpay: several payment attempts on one order, and payments that are not on ours.

A customer may try an order several times (a failed card, then another), and
more than one attempt may be authorized or even captured. The payment rests on
one attempt (``provider_data["razorpay_payment_id"]``); news about another
one must never move it, and a second capture must reach a person.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from django_paygate import services
from django_paygate.models import PaymentEvent, Refund, WebhookEvent
from tests.providers.razorpay.conftest import (
    WEBHOOK_URL,
    copy_entity,
    event_body,
    load,
    payment_entity,
    signed_headers,
)

pytestmark = pytest.mark.django_db(transaction=True)

URL = WEBHOOK_URL
ORDER = "order_PgTry000001"
PAY_A = "pay_PgTryA00001"
PAY_B = "pay_PgTryB00001"
AMOUNT = 49900


def deliver(body: bytes, event_id: str) -> Any:
    return Client().post(
        URL, data=body, content_type="application/json", **signed_headers(body, event_id=event_id)
    )


def attempt(pay_id: str, status: str, **fields: Any) -> dict[str, Any]:
    template = {
        "captured": "payment_captured",
        "authorized": "payment_authorized",
        "failed": "payment_failed",
        "refunded": "payment_captured",
    }[status]
    fields.setdefault("amount", AMOUNT)
    entity = payment_entity(template, payment_id=pay_id, order_id=ORDER, **fields)
    entity["status"] = status
    if status in ("captured",):
        entity["captured"] = True
    if status in ("authorized", "failed"):
        entity["captured"] = False
    return entity


def order_entity(payment: Any, **fields: Any) -> dict[str, Any]:
    return copy_entity(
        load("order"),
        id=ORDER,
        amount=AMOUNT,
        amount_paid=AMOUNT,
        amount_due=0,
        status="paid",
        receipt=str(payment.pk),
        **fields,
    )


def refund_entity(pay_id: str, refund_id: str, amount: int = AMOUNT, **fields: Any) -> Any:
    fields.setdefault("status", "processed")
    fields.setdefault("notes", [])
    return copy_entity(load("refund"), id=refund_id, payment_id=pay_id, amount=amount, **fields)


def send(event: str, event_id: str, **entities: Any) -> None:
    response = deliver(event_body(event, **entities), event_id)
    assert response.status_code == 200, (event_id, response.status_code, response.content)


def send_refund(event_id: str, refund: Any, payment: Any) -> None:
    send("refund.processed", event_id, refund=refund, payment=payment)


def refunded_in_full(pay_id: str, event_id: str, refund_id: str, *, captured: bool) -> None:
    """Razorpay refunds attempt ``pay_id`` in full (an uncaptured one: releases it)."""
    payment = attempt(pay_id, "refunded", captured=captured, amount_refunded=AMOUNT)
    send_refund(event_id, refund_entity(pay_id, refund_id), payment)


def transitions(payment: Any) -> list[tuple[str, str]]:
    rows = PaymentEvent.objects.filter(payment_id=payment.pk).order_by("id")
    return [(f, t) for f, t in rows.values_list("from_status", "to_status") if f and f != t]


@pytest.fixture
def paid_by_a(razorpay_settings: Any, rzp_payment: Any) -> Any:
    """Our payment, captured through attempt A (as the webhook leaves it)."""
    payment = rzp_payment(ORDER)
    send("payment.captured", "evt_a_captured", payment=attempt(PAY_A, "captured"))
    payment.refresh_from_db()
    assert (payment.status, payment.provider_data) == ("succeeded", {"razorpay_payment_id": PAY_A})
    return payment


# -- a second captured attempt on the same order -------------------------------------


@pytest.mark.parametrize("via", ["payment.captured", "order.paid"])
def test_second_captured_attempt_is_flagged_and_keeps_the_first_id(
    paid_by_a: Any, via: str
) -> None:
    entities: dict[str, Any] = {"payment": attempt(PAY_B, "captured")}
    if via == "order.paid":
        entities["order"] = order_entity(paid_by_a)
    send(via, "evt_b_captured", **entities)
    paid_by_a.refresh_from_db()
    # Never counted twice ...
    assert paid_by_a.amount_captured == AMOUNT
    # ... the customer's second ₹499 is not silently forgotten ...
    assert paid_by_a.needs_review, "a second capture on the order went unnoticed"
    # ... and the payment that counts is still A (refunds go to it).
    assert paid_by_a.provider_data == {"razorpay_payment_id": PAY_A}


# -- a refund of the other (duplicate) attempt ---------------------------------------


def test_refund_of_the_duplicate_attempt_does_not_refund_our_payment(paid_by_a: Any) -> None:
    """B was captured too; Razorpay (or staff in the Dashboard) refunds B. A is still paid."""
    send("payment.captured", "evt_b_captured", payment=attempt(PAY_B, "captured"))
    refunded_in_full(PAY_B, "evt_b_refund", "rfnd_PgTryB0001", captured=True)
    paid_by_a.refresh_from_db()
    assert (paid_by_a.status, paid_by_a.amount_refunded) == ("succeeded", 0)


def test_refund_of_an_unknown_attempt_alone_does_not_refund_our_payment(paid_by_a: Any) -> None:
    """The same, when B's own payment.captured never reached us (not subscribed / lost)."""
    refunded_in_full(PAY_B, "evt_b_refund", "rfnd_PgTryB0001", captured=True)
    paid_by_a.refresh_from_db()
    assert paid_by_a.status == "succeeded", "A's money was kept, yet we show it refunded"
    assert paid_by_a.amount_refunded == 0
    assert paid_by_a.needs_review  # B was captured and refunded: staff should see it


def test_auto_refund_of_one_authorization_does_not_cancel_the_other(
    razorpay_settings: Any, rzp_payment: Any
) -> None:
    """Manual capture: A (late) and B authorized; Razorpay releases A. B is still capturable."""
    payment = rzp_payment(ORDER, capture_method="manual")
    send("payment.authorized", "evt_a_auth", payment=attempt(PAY_A, "authorized"))
    send("payment.authorized", "evt_b_auth", payment=attempt(PAY_B, "authorized"))
    payment.refresh_from_db()
    assert payment.provider_data == {"razorpay_payment_id": PAY_B}
    refunded_in_full(PAY_A, "evt_a_release", "rfnd_PgTryA0001", captured=False)
    payment.refresh_from_db()
    assert payment.status == "authorized", "B's authorization is still open at Razorpay"


# -- the same through sync (the fake Razorpay API) ------------------------------------------


def _paid_order_with_two_captures(fake: Any) -> tuple[Any, str, str]:
    payment = services.create_payment(
        provider="razorpay", amount=AMOUNT, currency="INR", email="a@example.in"
    )
    order_id = payment.provider_payment_id
    first = fake.checkout(order_id, "captured")
    services.confirm_payment(payment, **first)
    second = fake.checkout(order_id, "captured")  # the customer paid twice
    return payment, first["razorpay_payment_id"], second["razorpay_payment_id"]


def test_sync_flags_two_captured_attempts_and_keeps_the_first(fake: Any) -> None:
    payment, pay_a, _pay_b = _paid_order_with_two_captures(fake)
    payment = services.sync_payment(payment)
    assert payment.amount_captured == AMOUNT
    assert payment.needs_review, "sync saw two captures on the order and said nothing"
    assert payment.provider_data == {"razorpay_payment_id": pay_a}


def test_sync_after_razorpay_refunded_the_duplicate_keeps_our_payment_paid(fake: Any) -> None:
    payment, _pay_a, pay_b = _paid_order_with_two_captures(fake)
    # Razorpay / staff refund the duplicate B in full.
    dup = fake.payments[pay_b]
    fake._new_refund(dup, AMOUNT, notes=[])
    dup.update(status="refunded", amount_refunded=AMOUNT, refund_status="full")
    payment = services.sync_payment(payment)
    assert (payment.status, payment.amount_refunded) == ("succeeded", 0)
    assert not Refund.objects.filter(payment_id=payment.pk).exists()


def test_merchant_refund_after_a_duplicate_capture_refunds_the_first_attempt(
    fake: Any,
) -> None:
    """After B's webhook, services.refund_payment should refund A (the payment that counts)."""
    payment, pay_a, pay_b = _paid_order_with_two_captures(fake)
    dup = attempt(pay_b, "captured")
    dup["order_id"] = payment.provider_payment_id
    send("payment.captured", "evt_dup", payment=dup)
    services.refund_payment(payment, amount=10000)
    refunded_ids = [c["path"].split("/")[2] for c in fake.calls("payment.refund")]
    assert refunded_ids == [pay_a]


# -- lookup: an event with no order names a *linked* payment through browser notes ----------


def test_orderless_payment_with_notes_naming_a_linked_payment_moves_nothing(
    razorpay_settings: Any, rzp_payment: Any
) -> None:
    """Checkout notes come from the browser (payment_lookup's own docstring): our id must
    find only an unlinked payment. An orderless attempt has no order id, and then the
    guard is skipped."""
    payment = rzp_payment(ORDER)  # linked to its order, nobody paid it
    foreign = attempt(
        "pay_PgForeign0001", "captured", notes={"paygate_payment_id": str(payment.pk)}
    )
    foreign["order_id"] = None
    send("payment.captured", "evt_orderless", payment=foreign)
    payment.refresh_from_db()
    assert (payment.status, payment.provider_data) == ("pending", {})


def test_orderless_auto_refund_with_notes_cannot_cancel_a_linked_authorization(
    razorpay_settings: Any, rzp_payment: Any
) -> None:
    payment = rzp_payment(
        ORDER,
        status="authorized",
        capture_method="manual",
        provider_data={"razorpay_payment_id": PAY_A},
    )
    foreign = attempt(
        "pay_PgForeign0001",
        "refunded",
        captured=False,
        amount_refunded=AMOUNT,
        notes={"paygate_payment_id": str(payment.pk)},
    )
    foreign["order_id"] = None
    send_refund(
        "evt_orderless_release", refund_entity("pay_PgForeign0001", "rfnd_PgForeign001"), foreign
    )
    payment.refresh_from_db()
    assert payment.status == "authorized"


# -- what already held --------------------------------------------------------------


@pytest.fixture
def paid_by_b(razorpay_settings: Any, rzp_payment: Any) -> Any:
    payment = rzp_payment(ORDER)
    send("payment.failed", "evt_a_failed", payment=attempt(PAY_A, "failed"))
    send("payment.captured", "evt_b_captured", payment=attempt(PAY_B, "captured"))
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    return payment


@pytest.mark.parametrize(
    ("event", "entity"),
    [
        ("payment.failed", lambda: attempt(PAY_A, "failed")),
        ("payment.authorized", lambda: attempt(PAY_A, "authorized")),
    ],
)
def test_late_event_of_another_attempt_neither_rewinds_nor_rewrites(
    paid_by_b: Any, event: str, entity: Any
) -> None:
    send(event, "evt_late", payment=entity())
    paid_by_b.refresh_from_db()
    assert (paid_by_b.status, paid_by_b.amount_captured) == ("succeeded", AMOUNT)
    assert paid_by_b.provider_data == {"razorpay_payment_id": PAY_B}
    assert (paid_by_b.failure_code, paid_by_b.needs_review) == ("", False)
    assert transitions(paid_by_b) == [("pending", "failed"), ("failed", "succeeded")]


def test_auto_refund_of_an_uncaptured_attempt_after_the_capture_changes_nothing(
    paid_by_b: Any,
) -> None:
    refunded_in_full(PAY_A, "evt_a_release", "rfnd_PgTryA0001", captured=False)
    paid_by_b.refresh_from_db()
    assert (paid_by_b.status, paid_by_b.amount_refunded) == ("succeeded", 0)
    assert not Refund.objects.exists()


def test_captured_amount_or_currency_disagreement_is_flagged(
    razorpay_settings: Any, rzp_payment: Any
) -> None:
    one = rzp_payment(ORDER)
    send("payment.captured", "evt_amt", payment=attempt(PAY_A, "captured", amount=AMOUNT - 100))
    one.refresh_from_db()
    assert (one.status, one.needs_review, one.amount_captured) == ("pending", True, 0)
    two = rzp_payment("order_PgTry000002")
    usd = attempt(PAY_B, "captured", currency="USD")
    usd["order_id"] = "order_PgTry000002"
    send("payment.captured", "evt_cur", payment=usd)
    two.refresh_from_db()
    assert (two.status, two.needs_review) == ("pending", True)


def test_partial_refunds_sum_once_and_an_excess_refund_is_flagged(paid_by_b: Any) -> None:
    pay = attempt(PAY_B, "captured")
    for i, amount in enumerate((10000, 20000)):
        body = event_body(
            "refund.processed",
            refund=refund_entity(PAY_B, f"rfnd_PgTryP000{i}", amount),
            payment=pay,
        )
        assert deliver(body, f"evt_p{i}").status_code == 200
        assert deliver(body, f"evt_p{i}_again").status_code == 200  # redelivered, new id
    paid_by_b.refresh_from_db()
    assert (paid_by_b.status, paid_by_b.amount_refunded) == ("partially_refunded", 30000)
    assert Refund.objects.filter(payment_id=paid_by_b.pk).count() == 2
    send_refund("evt_big", refund_entity(PAY_B, "rfnd_PgTryBig01", 20000), pay)
    paid_by_b.refresh_from_db()
    assert (paid_by_b.amount_refunded, paid_by_b.needs_review) == (30000, True)


def test_refund_in_another_currency_is_flagged_not_applied(paid_by_b: Any) -> None:
    send_refund(
        "evt_usd",
        refund_entity(PAY_B, "rfnd_PgTryUsd01", 10000, currency="USD"),
        attempt(PAY_B, "captured"),
    )
    paid_by_b.refresh_from_db()
    assert (paid_by_b.amount_refunded, paid_by_b.needs_review) == (0, True)


def test_refund_event_of_a_foreign_order_is_ignored(paid_by_b: Any) -> None:
    foreign = attempt("pay_PgForeign0001", "refunded", captured=True)
    foreign["order_id"] = "order_PgForeign001"
    send_refund("evt_foreign", refund_entity("pay_PgForeign0001", "rfnd_PgForeign001"), foreign)
    paid_by_b.refresh_from_db()
    assert (paid_by_b.status, paid_by_b.amount_refunded) == ("succeeded", 0)


def test_webhook_signed_with_the_key_secret_or_tampered_is_refused(paid_by_b: Any) -> None:
    from django.test import Client

    from tests.providers.razorpay.conftest import KEY_SECRET, signed_headers

    body = event_body(
        "refund.processed",
        refund=refund_entity(PAY_B, "rfnd_PgTrySig01"),
        payment=attempt(PAY_B, "captured"),
    )
    for headers in (
        signed_headers(body, secret=KEY_SECRET, event_id="evt_sig1"),
        signed_headers(body.replace(b"49900", b"49000"), event_id="evt_sig2"),
    ):
        response = Client().post(
            "/api/payments/webhooks/razorpay/",
            data=body,
            content_type="application/json",
            **headers,
        )
        assert response.status_code == 400
    paid_by_b.refresh_from_db()
    assert paid_by_b.amount_refunded == 0


# -- a refund of a payment that will never be captured here --------------------------


def test_a_refund_of_a_canceled_order_paid_later_is_flagged_not_refused(
    razorpay_settings: Any, rzp_payment: Any
) -> None:
    """A canceled order (Razorpay cannot cancel orders) the customer paid anyway, refunded
    in the Dashboard. Answering its refund 409 until the payment is captured would have
    Razorpay retry for a day and then disable the whole webhook: it is taken, and the
    payment stays flagged, with nothing booked."""
    payment = rzp_payment(ORDER, status="canceled")
    send("payment.captured", "evt_late_paid", payment=attempt(PAY_B, "captured"))
    payment.refresh_from_db()
    assert payment.needs_review
    body = event_body(
        "refund.processed",
        refund=refund_entity(PAY_B, "rfnd_PgTryLate1"),
        payment=attempt(PAY_B, "refunded", captured=True, amount_refunded=AMOUNT),
    )
    response = deliver(body, "evt_late_refund")
    assert response.status_code == 200, WebhookEvent.objects.get(event_id="evt_late_refund").error
    payment.refresh_from_db()
    assert payment.needs_review
    assert (payment.status, payment.amount_captured, payment.amount_refunded) == ("canceled", 0, 0)
