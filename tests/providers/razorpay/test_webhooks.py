"""Razorpay webhooks through ``POST /api/payments/webhooks/razorpay/`` and the shared inbox."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from django_paygate.models import Dispute, PaymentEvent, Refund, WebhookEvent
from django_paygate.providers import get_provider
from django_paygate.providers.base import body_event_id
from django_paygate.providers.razorpay import RazorpayProvider

from .conftest import (
    OLD_WEBHOOK_SECRET,
    WEBHOOK_SECRET,
    WEBHOOK_URL,
    WRONG_SECRET,
    copy_entity,
    event_body,
    load,
    payment_entity,
    signed_headers,
)

pytestmark = pytest.mark.django_db(transaction=True)

URL = WEBHOOK_URL
ORDER = "order_PgWebhook00001"
PAY = "pay_PgWebhook00001"


def post(body: bytes, **headers: str) -> Any:
    return Client().post(URL, data=body, content_type="application/json", **headers)


def deliver(body: bytes, event_id: str, *, secret: str = WEBHOOK_SECRET) -> Any:
    return post(body, **signed_headers(body, secret=secret, event_id=event_id))


def captured(**fields: Any) -> dict[str, Any]:
    fields.setdefault("amount", 49900)
    return payment_entity("payment_captured", payment_id=PAY, order_id=ORDER, **fields)


def transitions(payment: Any) -> list[tuple[str, str]]:
    """Status changes of ``payment`` (audit rows whose status moved)."""
    rows = PaymentEvent.objects.filter(payment_id=payment.pk).order_by("id")
    return [(f, t) for f, t in rows.values_list("from_status", "to_status") if f and f != t]


@pytest.fixture
def payment(razorpay_settings: Any, rzp_payment: Any) -> Any:
    return rzp_payment(ORDER)


# -- signatures ------------------------------------------------------------------


def test_genuine_event_is_applied(payment: Any, signal_spy: Any) -> None:
    body = event_body("payment.captured", payment=captured())
    response = deliver(body, "evt_captured_1")
    assert response.status_code == 200
    assert response.json() == {"status": "Event processed."}
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured) == ("succeeded", 49900)
    assert payment.provider_data == {"razorpay_payment_id": PAY}
    row = WebhookEvent.objects.get()
    assert (row.provider, row.event_id, row.type, row.status) == (
        "razorpay",
        body_event_id(body),  # the header's id is not signed: the body is the event
        "payment.captured",
        "processed",
    )
    assert row.headers["x-razorpay-event-id"] == "evt_captured_1"
    assert row.payload == body.decode()
    assert {k.lower() for k in row.headers} <= {"user-agent", "content-type", "x-razorpay-event-id"}
    assert "x-razorpay-signature" not in {k.lower() for k in row.headers}
    assert signal_spy.count("payment_succeeded") == 1


def test_raw_body_is_verified_as_received(payment: Any) -> None:
    # Pretty-printed with trailing newline: re-serializing it would change the bytes.
    body = event_body("payment.captured", payment=captured(), indent=4) + b"\n"
    assert deliver(body, "evt_raw").status_code == 200
    payment.refresh_from_db()
    assert payment.status == "succeeded"


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda b, h: (b.replace(b"49900", b"49990", 1), h), id="tampered-body"),
        pytest.param(lambda b, h: (b, signed_headers(b, secret=WRONG_SECRET)), id="wrong-secret"),
        pytest.param(
            lambda b, h: (b, {k: v for k, v in h.items() if "SIGNATURE" not in k}),
            id="missing-header",
        ),
        pytest.param(lambda b, h: (b, {**h, "HTTP_X_RAZORPAY_SIGNATURE": ""}), id="empty-header"),
        pytest.param(
            lambda b, h: (b, {**h, "HTTP_X_RAZORPAY_SIGNATURE": "\u00e9" * 64}),
            id="non-ascii-header",
        ),
        pytest.param(
            lambda b, h: (
                b,
                {**h, "HTTP_X_RAZORPAY_SIGNATURE": h["HTTP_X_RAZORPAY_SIGNATURE"][:-1]},
            ),
            id="truncated",
        ),
        pytest.param(
            lambda b, h: (b, signed_headers(b, secret=load_key_secret())), id="key-secret"
        ),
    ],
)
def test_bad_signatures_are_refused_and_change_nothing(payment: Any, spoil: Any) -> None:
    body = event_body("payment.captured", payment=captured())
    body, headers = spoil(body, signed_headers(body, event_id="evt_bad"))
    response = post(body, **headers)
    assert response.status_code == 400
    assert response.json() == {"status": "Invalid webhook."}
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert WebhookEvent.objects.count() == 0


def load_key_secret() -> str:
    from .conftest import KEY_SECRET

    return KEY_SECRET


def test_upper_case_hex_signature_is_accepted(payment: Any) -> None:
    body = event_body("payment.captured", payment=captured())
    headers = signed_headers(body, event_id="evt_upper")
    headers["HTTP_X_RAZORPAY_SIGNATURE"] = headers["HTTP_X_RAZORPAY_SIGNATURE"].upper()
    assert post(body, **headers).status_code == 200


def test_old_secret_still_verifies_during_rotation(payment: Any) -> None:
    body = event_body("payment.captured", payment=captured())
    assert deliver(body, "evt_rotated", secret=OLD_WEBHOOK_SECRET).status_code == 200


def test_signed_body_that_is_not_an_event(payment: Any) -> None:
    for body in (b"not json", b"[]", b'{"payload": {}}'):
        assert deliver(body, "evt_junk").status_code == 400
    assert WebhookEvent.objects.count() == 0


# -- duplicates and ordering ---------------------------------------------------------


def test_duplicate_event_id_counts_once(payment: Any, signal_spy: Any) -> None:
    body = event_body("payment.captured", payment=captured())
    first = deliver(body, "evt_dup")
    second = deliver(body, "evt_dup")
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == {"status": "Duplicate event."}
    assert WebhookEvent.objects.count() == 1
    assert transitions(payment) == [("pending", "succeeded")]
    assert signal_spy.count("payment_succeeded") == 1


def test_without_an_event_id_the_same_body_is_the_same_event(payment: Any) -> None:
    body = event_body("payment.captured", payment=captured())
    for _ in range(2):
        assert deliver(body, None).status_code == 200  # type: ignore[arg-type]
    row = WebhookEvent.objects.get()
    assert row.event_id.startswith("body-")


def test_failed_then_captured_ends_succeeded(payment: Any, signal_spy: Any) -> None:
    failed = payment_entity(
        "payment_failed", payment_id="pay_PgWebhook00000", order_id=ORDER, amount=49900
    )
    assert deliver(event_body("payment.failed", payment=failed), "evt_f").status_code == 200
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == ("failed", "BAD_REQUEST_ERROR")
    assert payment.provider_data == {}  # a failed attempt is never the one we refund

    assert deliver(event_body("payment.captured", payment=captured()), "evt_c").status_code == 200
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code, payment.failure_message) == ("succeeded", "", "")
    assert payment.provider_data == {"razorpay_payment_id": PAY}
    assert transitions(payment) == [("pending", "failed"), ("failed", "succeeded")]
    assert signal_spy.count("payment_failed") == 1
    assert signal_spy.count("payment_succeeded") == 1


def test_late_authorized_after_captured_never_goes_back(payment: Any, signal_spy: Any) -> None:
    assert deliver(event_body("payment.captured", payment=captured()), "evt_c").status_code == 200
    authorized = captured(status="authorized", captured=False)
    response = deliver(event_body("payment.authorized", payment=authorized), "evt_a")
    assert response.status_code == 200
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert transitions(payment) == [("pending", "succeeded")]
    assert WebhookEvent.objects.count() == 2
    assert signal_spy.count("payment_authorized") == 0


def test_late_failure_of_another_attempt_changes_nothing(payment: Any) -> None:
    assert deliver(event_body("payment.captured", payment=captured()), "evt_c").status_code == 200
    failed = payment_entity(
        "payment_failed", payment_id="pay_PgWebhook00009", order_id=ORDER, amount=49900
    )
    assert deliver(event_body("payment.failed", payment=failed), "evt_f").status_code == 200
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert payment.provider_data == {"razorpay_payment_id": PAY}


def test_captured_and_order_paid_two_rows_one_transition_one_signal(
    payment: Any, signal_spy: Any
) -> None:
    order = copy_entity(
        load("order"),
        id=ORDER,
        amount=49900,
        amount_paid=49900,
        amount_due=0,
        status="paid",
        receipt=str(payment.pk),
    )
    assert deliver(event_body("payment.captured", payment=captured()), "evt_pc").status_code == 200
    body = event_body("order.paid", payment=captured(), order=order)
    assert deliver(body, "evt_op").status_code == 200
    assert WebhookEvent.objects.count() == 2
    assert transitions(payment) == [("pending", "succeeded")]
    assert signal_spy.count("payment_succeeded") == 1


def test_order_paid_finds_a_payment_by_its_receipt(
    razorpay_settings: Any, rzp_payment: Any
) -> None:
    payment = rzp_payment(None)  # the order id was never stored (crash after create)
    order = copy_entity(
        load("order"),
        id=ORDER,
        amount=49900,
        amount_paid=49900,
        status="paid",
        receipt=str(payment.pk),
    )
    assert (
        deliver(event_body("order.paid", order=order, payment=captured()), "evt_op").status_code
        == 200
    )
    payment.refresh_from_db()
    assert (payment.status, payment.provider_payment_id) == ("succeeded", ORDER)
    assert payment.provider_data == {"razorpay_payment_id": PAY}


def test_payment_event_finds_a_payment_by_checkout_notes(
    razorpay_settings: Any, rzp_payment: Any
) -> None:
    payment = rzp_payment(None)
    entity = captured(notes={"paygate_payment_id": str(payment.pk)})
    assert deliver(event_body("payment.captured", payment=entity), "evt_n").status_code == 200
    payment.refresh_from_db()
    assert (payment.status, payment.provider_payment_id) == ("succeeded", ORDER)


def test_authorized_for_manual_capture(
    razorpay_settings: Any, rzp_payment: Any, signal_spy: Any
) -> None:
    payment = rzp_payment(ORDER, capture_method="manual")
    authorized = captured(status="authorized", captured=False)
    assert deliver(event_body("payment.authorized", payment=authorized), "evt_a").status_code == 200
    payment.refresh_from_db()
    assert payment.status == "authorized"
    assert payment.provider_data == {"razorpay_payment_id": PAY}
    assert signal_spy.count("payment_authorized") == 1


def test_amount_disagreement_needs_review(payment: Any) -> None:
    assert (
        deliver(event_body("payment.captured", payment=captured(amount=100)), "evt_x").status_code
        == 200
    )
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert payment.needs_review


def test_unknown_payment_and_unhandled_events_are_stored_and_ignored(payment: Any) -> None:
    other = payment_entity(
        "payment_captured",
        payment_id="pay_Other0000001",
        order_id="order_Other0000001",
        amount=49900,
    )
    assert deliver(event_body("payment.captured", payment=other), "evt_u").status_code == 200
    pending = captured(status="pending", method="cod")
    assert deliver(event_body("payment.pending", payment=pending), "evt_p").status_code == 200
    refund = copy_entity(load("refund"), payment_id=PAY)
    speed = event_body("refund.speed_changed", refund=refund, payment=captured())
    assert deliver(speed, "evt_s").status_code == 200
    rows = {row.headers["x-razorpay-event-id"]: row.status for row in WebhookEvent.objects.all()}
    assert rows == {"evt_u": "ignored", "evt_p": "ignored", "evt_s": "ignored"}
    payment.refresh_from_db()
    assert payment.status == "pending"


# -- refunds -------------------------------------------------------------------------


@pytest.fixture
def paid(razorpay_settings: Any, rzp_payment: Any) -> Any:
    return rzp_payment(
        ORDER, status="succeeded", amount_captured=49900, provider_data={"razorpay_payment_id": PAY}
    )


def refund_entity(
    status: str, *, refund_id: str = "rfnd_PgWebhook0001", amount: int = 10000, notes: Any = None
) -> dict[str, Any]:
    return copy_entity(
        load("refund"),
        id=refund_id,
        payment_id=PAY,
        amount=amount,
        status=status,
        notes=notes if notes is not None else [],
    )


def test_refund_created_then_processed_for_our_refund(paid: Any, signal_spy: Any) -> None:
    ours = Refund.objects.create(
        payment=paid, amount=10000, currency="INR", idempotency_key="paygate-refund-test-1"
    )
    notes = {"paygate_refund_id": str(ours.pk), "paygate_payment_id": str(paid.pk)}
    in_refund = captured(amount_refunded=10000, refund_status="partial")
    created = event_body(
        "refund.created", refund=refund_entity("pending", notes=notes), payment=in_refund
    )
    assert deliver(created, "evt_rc").status_code == 200
    ours.refresh_from_db()
    assert (ours.status, ours.provider_refund_id) == ("pending", "rfnd_PgWebhook0001")
    processed = event_body(
        "refund.processed", refund=refund_entity("processed", notes=notes), payment=in_refund
    )
    assert deliver(processed, "evt_rp").status_code == 200
    ours.refresh_from_db()
    paid.refresh_from_db()
    assert ours.status == "succeeded"
    assert (paid.status, paid.amount_refunded) == ("partially_refunded", 10000)
    assert signal_spy.count("refund_succeeded") == 1


def test_refund_made_in_the_dashboard_is_recorded_once(paid: Any) -> None:
    body = event_body(
        "refund.processed",
        refund=refund_entity("processed", amount=49900),
        payment=captured(status="refunded", amount_refunded=49900),
    )
    assert deliver(body, "evt_r1").status_code == 200
    assert deliver(body, "evt_r2").status_code == 200  # a second delivery under another id
    paid.refresh_from_db()
    assert (paid.status, paid.amount_refunded) == ("refunded", 49900)
    assert Refund.objects.filter(payment_id=paid.pk).count() == 1


def test_refund_failed(paid: Any, signal_spy: Any) -> None:
    ours = Refund.objects.create(
        payment=paid,
        amount=10000,
        currency="INR",
        idempotency_key="paygate-refund-test-2",
        provider_refund_id="rfnd_PgWebhook0001",
    )
    body = event_body("refund.failed", refund=refund_entity("failed"), payment=captured())
    assert deliver(body, "evt_rf").status_code == 200
    ours.refresh_from_db()
    assert ours.status == "failed"
    assert signal_spy.count("refund_failed") == 1


def test_refund_without_a_payment_entity_is_found_by_its_notes(paid: Any) -> None:
    ours = Refund.objects.create(
        payment=paid, amount=10000, currency="INR", idempotency_key="paygate-refund-test-3"
    )
    notes = {"paygate_refund_id": str(ours.pk), "paygate_payment_id": str(paid.pk)}
    body = event_body("refund.processed", refund=refund_entity("processed", notes=notes))
    assert deliver(body, "evt_rn").status_code == 200
    ours.refresh_from_db()
    assert ours.status == "succeeded"


def test_refund_without_payment_entity_or_notes_is_ignored(paid: Any) -> None:
    body = event_body("refund.processed", refund=refund_entity("processed"))
    assert deliver(body, "evt_rx").status_code == 200
    assert WebhookEvent.objects.get().status == "ignored"


def test_auto_refund_of_an_uncaptured_authorization_cancels(
    razorpay_settings: Any, rzp_payment: Any, signal_spy: Any
) -> None:
    payment = rzp_payment(
        ORDER,
        status="authorized",
        capture_method="manual",
        provider_data={"razorpay_payment_id": PAY},
    )
    released = captured(status="refunded", captured=False, amount_refunded=49900)
    body = event_body(
        "refund.processed", refund=refund_entity("processed", amount=49900), payment=released
    )
    assert deliver(body, "evt_auto").status_code == 200
    payment.refresh_from_db()
    assert payment.status == "canceled"
    assert Refund.objects.filter(payment_id=payment.pk).count() == 0
    assert signal_spy.count("payment_canceled") == 1


# -- disputes ------------------------------------------------------------------------


def test_dispute_lifecycle(paid: Any, signal_spy: Any) -> None:
    dispute = copy_entity(load("dispute"), payment_id=PAY)
    created = event_body("payment.dispute.created", payment=captured(), dispute=dispute)
    assert deliver(created, "evt_d1").status_code == 200
    row = Dispute.objects.get()
    assert (row.provider_dispute_id, row.status, row.amount, row.reason) == (
        "disp_PgTemplate0001",
        "open",
        49900,
        "goods_not_received",
    )
    review = event_body(
        "payment.dispute.under_review",
        payment=captured(),
        dispute=copy_entity(dispute, status="under_review"),
    )
    assert deliver(review, "evt_d2").status_code == 200
    won = event_body(
        "payment.dispute.won", payment=captured(), dispute=copy_entity(dispute, status="won")
    )
    assert deliver(won, "evt_d3").status_code == 200
    row.refresh_from_db()
    assert row.status == "won"
    assert signal_spy.count("dispute_opened") == 1
    assert signal_spy.count("dispute_closed") == 1


@pytest.mark.parametrize(("event", "status"), [("lost", "lost"), ("closed", "closed")])
def test_dispute_outcomes(paid: Any, event: str, status: str) -> None:
    dispute = copy_entity(load("dispute"), payment_id=PAY, status=status)
    body = event_body(f"payment.dispute.{event}", payment=captured(), dispute=dispute)
    assert deliver(body, f"evt_{event}").status_code == 200
    assert Dispute.objects.get().status == status


# -- parsing details -----------------------------------------------------------------


def test_parse_maps_notes_lists_and_missing_fields(razorpay_settings: Any) -> None:
    provider = get_provider("razorpay")
    assert isinstance(provider, RazorpayProvider)
    entity = captured()
    entity["notes"] = []  # Razorpay's way of saying "no notes"
    del entity["currency"]
    event = provider.parse_webhook(event_body("payment.captured", payment=entity), {})
    assert event.payment is not None
    assert event.payment.currency is None
    assert event.our_payment_id is None
    assert event.provider_payment_id == ORDER
    assert event.occurred_at is not None
    assert event.occurred_at.year == 2025
    junk = event_body("payment.captured", payment={"id": 5, "order_id": ["x"], "amount": "100"})
    parsed = provider.parse_webhook(junk, {"X-Razorpay-Event-Id": "evt_junk"})
    assert parsed.event_id == "evt_junk"
    assert parsed.provider_payment_id is None


def test_event_id_header_with_control_characters_is_not_trusted(razorpay_settings: Any) -> None:
    provider = get_provider("razorpay")
    body = event_body("payment.captured", payment=captured())
    event = provider.parse_webhook(body, {"X-Razorpay-Event-Id": "evt\nforged"})
    assert event.event_id.startswith("body-")


@pytest.mark.parametrize("created_at", [10**20, -(10**20), True, "1735689710"])
def test_a_created_at_no_datetime_holds_is_no_time(razorpay_settings: Any, created_at: Any) -> None:
    provider = get_provider("razorpay")
    body = json.loads(event_body("payment.captured", payment=captured()))
    body["created_at"] = created_at
    event = provider.parse_webhook(json.dumps(body).encode(), {})
    assert event.occurred_at is None
    assert event.payment is not None


# -- concurrency (PostgreSQL) -----------------------------------------------------------


@pytest.mark.locking
def test_twenty_concurrent_deliveries_of_one_event(payment: Any, signal_spy: Any) -> None:
    body = event_body("payment.captured", payment=captured())
    headers = signed_headers(body, event_id="evt_concurrent")
    barrier = threading.Barrier(20)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            client = Client()
            barrier.wait()
            statuses.append(
                client.post(URL, data=body, content_type="application/json", **headers).status_code
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert statuses == [200] * 20
    assert WebhookEvent.objects.filter(event_id=body_event_id(body)).count() == 1
    assert transitions(payment) == [("pending", "succeeded")]
    assert signal_spy.count("payment_succeeded") == 1


def test_the_public_test_kit_events_are_understood(payment: Any) -> None:
    """``django_paygate.testing`` builds Razorpay events host projects use in their tests."""
    from django_paygate.testing.webhooks import razorpay_event, razorpay_payment_entity

    entity = razorpay_payment_entity(payment, status="captured", payment_id=PAY)
    body, headers = razorpay_event("payment.captured", {"payment": entity}, secret=WEBHOOK_SECRET)
    meta = {
        "HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items() if k != "Content-Type"
    }
    assert post(body, **meta).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert payment.provider_data == {"razorpay_payment_id": PAY}
