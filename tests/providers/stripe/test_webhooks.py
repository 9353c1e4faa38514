"""Stripe webhooks: signatures, parsing, and the events applied through the endpoint."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from django_paygate.exceptions import WebhookVerificationError
from django_paygate.models import Dispute, PaymentEvent, Refund, WebhookEvent
from django_paygate.providers.stripe import StripeProvider
from django_paygate.states import DisputeStatus, PaymentStatus, RefundStatus
from tests.factories import PaymentFactory
from tests.providers.stripe.conftest import (
    OLD_WEBHOOK_SECRET,
    WEBHOOK_SECRET,
    WEBHOOK_URL,
    event_body,
    sign,
)

pytestmark = pytest.mark.django_db(transaction=True)


def intent_object(payment: Any, status: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": payment.provider_payment_id,
        "object": "payment_intent",
        "amount": payment.amount,
        "amount_received": payment.amount if status == "succeeded" else 0,
        "currency": payment.currency.lower(),
        "status": status,
        "client_secret": f"{payment.provider_payment_id}_secret_abc",
        "metadata": {"paygate_payment_id": str(payment.pk)},
        "latest_charge": "ch_1" if status in {"succeeded", "requires_capture"} else None,
        "last_payment_error": None,
        "next_action": None,
        **fields,
    }


def post(client: Any, body: bytes, signature: str | None, **extra: Any) -> Any:
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.post(WEBHOOK_URL, data=body, content_type="application/json", **headers, **extra)


@pytest.fixture
def paid(stripe_provider: StripeProvider) -> Any:
    return PaymentFactory(
        provider="stripe", provider_payment_id="pi_paid", amount=1000, status="succeeded"
    )


# ---------------------------------------------------------------------------
# Signatures
# ---------------------------------------------------------------------------


def test_genuine_signature_is_accepted(client: Any, paid: Any) -> None:
    body = event_body("payment_intent.succeeded", intent_object(paid, "succeeded"))
    response = post(client, body, sign(body))
    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == "processed"


@pytest.mark.parametrize(
    "case",
    [
        "tampered_body",
        "reserialized_json",
        "wrong_secret",
        "301s_old",
        "1h_ahead",
        "missing_header",
        "empty_header",
        "garbage_header",
        "no_timestamp",
        "two_timestamps",
        "non_numeric_timestamp",
        "unicode_digit_timestamp",
        "only_v0",
        "non_ascii_signature",
        "uppercase_signature",
        "huge_header",
        "signature_of_other_body",
    ],
)
def test_bad_signatures_are_400_and_change_nothing(
    client: Any, paid: Any, case: str, caplog: Any
) -> None:
    body = event_body("payment_intent.succeeded", intent_object(paid, "succeeded"))
    now = int(time.time())
    good = sign(body, timestamp=now)
    digest = good.split("v1=")[1]
    sent, header = body, good
    if case == "tampered_body":
        sent = body.replace(b'"amount": 1000', b'"amount": 1')
    elif case == "reserialized_json":
        sent = json.dumps(json.loads(body)).encode()
    elif case == "wrong_secret":
        header = sign(body, secret="whsec_someoneelse", timestamp=now)
    elif case == "301s_old":
        header = sign(body, timestamp=now - 301)
    elif case == "1h_ahead":
        header = sign(body, timestamp=now + 3600)
    elif case == "missing_header":
        header = None
    elif case == "empty_header":
        header = ""
    elif case == "garbage_header":
        header = "garbage"
    elif case == "no_timestamp":
        header = f"v1={digest}"
    elif case == "two_timestamps":
        header = f"t={now},t={now},v1={digest}"
    elif case == "non_numeric_timestamp":
        header = f"t=abc,v1={digest}"
    elif case == "unicode_digit_timestamp":
        header = f"t={''.join(chr(0x660 + int(d)) for d in str(now))},v1={digest}"
    elif case == "only_v0":
        header = f"t={now},v0={digest}"
    elif case == "non_ascii_signature":
        header = f"t={now},v1={digest[:-1]}é"
    elif case == "uppercase_signature":
        header = f"t={now},v1={digest.upper()}"
    elif case == "huge_header":
        header = f"t={now}," + ",".join([f"v1={digest[:-1]}0"] * 400)
    elif case == "signature_of_other_body":
        header = sign(b"{}", timestamp=now)
    response = post(client, sent, header)
    assert response.status_code == 400
    assert WebhookEvent.objects.count() == 0
    assert PaymentEvent.objects.filter(payment=paid).count() == 0
    assert digest not in caplog.text


def test_boundary_of_the_tolerance_is_accepted(client: Any, paid: Any) -> None:
    body = event_body("payment_intent.succeeded", intent_object(paid, "succeeded"))
    assert post(client, body, sign(body, timestamp=int(time.time()) - 290)).status_code == 200
    body = event_body("payment_intent.succeeded", intent_object(paid, "succeeded"))
    assert post(client, body, sign(body, timestamp=int(time.time()) + 290)).status_code == 200


def test_rotation_two_v1_and_either_secret(settings: Any, client: Any, paid: Any) -> None:
    settings.PAYGATE["PROVIDERS"]["stripe"]["OPTIONS"]["webhook_secret"] = [
        OLD_WEBHOOK_SECRET,
        WEBHOOK_SECRET,
    ]
    from django_paygate.providers import reset_providers

    reset_providers()
    for secrets in ([OLD_WEBHOOK_SECRET, WEBHOOK_SECRET], [OLD_WEBHOOK_SECRET], [WEBHOOK_SECRET]):
        body = event_body("payment_intent.succeeded", intent_object(paid, "succeeded"))
        header = sign(body, secret=secrets)
        assert header.count("v1=") == len(secrets)
        assert post(client, body, header).status_code == 200
    body = event_body("payment_intent.succeeded", intent_object(paid, "succeeded"))
    assert post(client, body, sign(body, secret=["whsec_a", "whsec_b"])).status_code == 400


def test_invalid_utf8_body_with_a_valid_signature_is_400(client: Any, paid: Any) -> None:
    body = b'{"id": "evt_1", "object": "event", "type": "x\xff\xfe"}'
    assert post(client, body, sign(body)).status_code == 400
    for body in (b"not json", b"[1, 2]", b'{"object": "event"}', b'{"id": 5}'):
        assert post(client, body, sign(body)).status_code == 400
    assert WebhookEvent.objects.count() == 0


def test_verify_webhook_raises_only_verification_errors(stripe_provider: StripeProvider) -> None:
    body = b'{"id": "evt_1"}'
    hostile: list[Any] = [
        {},
        {"Stripe-Signature": "t=1,v1=\udcff"},
        {"Stripe-Signature": "t=\x00,v1=00"},
        {"stripe-signature": "t=,v1="},
        {"Stripe-Signature": "=,=,=,"},
        {"Stripe-Signature": "t=99999999999999999999,v1=aa"},
        {"Stripe-Signature": 12345},
    ]
    for headers in hostile:
        with pytest.raises(WebhookVerificationError):
            stripe_provider.verify_webhook(body, headers)
    # Bytes that are not UTF-8 are hashed as they are: only the signature decides.
    raw = b"\xff\xfe\x00"
    stripe_provider.verify_webhook(raw, {"stripe-signature": sign(raw)})


def test_no_secret_configured_refuses_everything(settings: Any, client: Any, paid: Any) -> None:
    settings.PAYGATE["PROVIDERS"]["stripe"]["OPTIONS"]["webhook_secret"] = ""
    from django_paygate.providers import reset_providers

    reset_providers()
    body = event_body("payment_intent.succeeded", intent_object(paid, "succeeded"))
    assert post(client, body, sign(body)).status_code == 400


# ---------------------------------------------------------------------------
# Parsing (pure)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "status", "extra", "expected"),
    [
        ("payment_intent.succeeded", "succeeded", {}, PaymentStatus.SUCCEEDED),
        ("payment_intent.processing", "processing", {}, PaymentStatus.PROCESSING),
        (
            "payment_intent.requires_action",
            "requires_action",
            {"next_action": {"type": "use_stripe_sdk"}},
            PaymentStatus.REQUIRES_ACTION,
        ),
        (
            "payment_intent.payment_failed",
            "requires_payment_method",
            {
                "last_payment_error": {
                    "code": "card_declined",
                    "decline_code": "stolen_card",
                    "message": "Your card was declined.",
                }
            },
            PaymentStatus.FAILED,
        ),
        ("payment_intent.payment_failed", "requires_payment_method", {}, PaymentStatus.FAILED),
        ("payment_intent.canceled", "canceled", {}, PaymentStatus.CANCELED),
        (
            "payment_intent.amount_capturable_updated",
            "requires_capture",
            {},
            PaymentStatus.AUTHORIZED,
        ),
    ],
)
def test_payment_intent_events(
    stripe_provider: StripeProvider,
    event_type: str,
    status: str,
    extra: Any,
    expected: PaymentStatus,
) -> None:
    payment = PaymentFactory.build(provider="stripe", provider_payment_id="pi_1", amount=1500)
    body = event_body(event_type, intent_object(payment, status, **extra), event_id="evt_42")
    event = stripe_provider.parse_webhook(body, {})
    assert event.event_id == "evt_42"
    assert event.type == event_type
    assert event.payment is not None
    assert event.payment.status == expected
    assert event.payment.amount == 1500
    assert event.payment.currency == "USD"
    assert event.our_payment_id == str(payment.pk)
    assert event.provider_payment_id == "pi_1"
    assert event.occurred_at is not None
    if expected == PaymentStatus.REQUIRES_ACTION:
        assert event.payment.next_action == {"type": "use_stripe_sdk"}
    if extra.get("last_payment_error"):
        assert event.payment.failure_code == "stolen_card"
    if expected == PaymentStatus.SUCCEEDED:
        assert event.payment.amount_captured == 1500
        assert event.payment.provider_data == {"latest_charge": "ch_1"}


@pytest.mark.parametrize(
    ("event_type", "obj"),
    [
        ("payment_intent.created", {"object": "payment_intent", "id": "pi_1"}),
        ("customer.created", {"object": "customer", "id": "cus_1"}),
        ("charge.refunded", {"object": "charge", "id": "ch_1", "payment_intent": "pi_1"}),
        ("payment_intent.succeeded", {"object": "charge", "id": "ch_1"}),
    ],
)
def test_unmapped_events_carry_nothing(
    stripe_provider: StripeProvider, event_type: str, obj: Any
) -> None:
    event = stripe_provider.parse_webhook(event_body(event_type, obj), {})
    assert not event.actionable


def test_thin_events_are_ignored(stripe_provider: StripeProvider) -> None:
    body = json.dumps(
        {
            "id": "evt_thin",
            "object": "v2.core.event",
            "type": "v1.payment_intent.succeeded",
            "related_object": {"id": "pi_1", "type": "payment_intent"},
        }
    ).encode()
    event = stripe_provider.parse_webhook(body, {})
    assert event.event_id == "evt_thin"
    assert not event.actionable


def test_refund_and_dispute_objects(stripe_provider: StripeProvider) -> None:
    refund_obj = {
        "id": "re_1",
        "object": "refund",
        "amount": 300,
        "currency": "usd",
        "payment_intent": "pi_1",
        "status": "pending",
        "metadata": {"paygate_refund_id": "r-1", "paygate_payment_id": "p-1"},
    }
    event = stripe_provider.parse_webhook(event_body("refund.created", refund_obj), {})
    assert event.refund is not None
    assert (event.refund.status, event.refund.amount) == (RefundStatus.PENDING, 300)
    assert event.refund.provider_payment_id == "pi_1"
    assert event.refund.our_refund_id == "r-1"
    assert event.our_payment_id == "p-1"
    failed = {**refund_obj, "status": "failed", "failure_reason": "expired_or_canceled_card"}
    event = stripe_provider.parse_webhook(event_body("refund.failed", failed), {})
    assert event.refund is not None
    assert event.refund.status == RefundStatus.FAILED
    assert event.refund.failure_reason == "expired_or_canceled_card"

    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "amount": 1000,
        "currency": "jpy",
        "payment_intent": "pi_1",
        "charge": "ch_1",
        "reason": "fraudulent",
        "status": "needs_response",
    }
    event = stripe_provider.parse_webhook(event_body("charge.dispute.created", dispute), {})
    assert event.dispute is not None
    assert event.dispute.status == DisputeStatus.OPEN
    assert (event.dispute.amount, event.dispute.currency) == (1000, "JPY")
    assert event.provider_payment_id == "pi_1"
    for stripe_status, ours in [("under_review", "under_review"), ("won", "won"), ("lost", "lost")]:
        body = event_body("charge.dispute.updated", {**dispute, "status": stripe_status})
        parsed = stripe_provider.parse_webhook(body, {}).dispute
        assert parsed is not None
        assert parsed.status.value == ours


def test_amounts_in_events_are_converted(stripe_provider: StripeProvider) -> None:
    payment = PaymentFactory.build(
        provider="stripe", provider_payment_id="pi_isk", amount=500, currency="ISK"
    )
    obj = intent_object(payment, "succeeded", amount=50000, amount_received=50000)
    event = stripe_provider.parse_webhook(event_body("payment_intent.succeeded", obj), {})
    assert event.payment is not None
    assert (event.payment.amount, event.payment.amount_captured) == (500, 500)
    obj["amount"] = 50050  # fractional krona: cannot be ours, so stored and ignored
    event = stripe_provider.parse_webhook(event_body("payment_intent.succeeded", obj), {})
    assert (event.payment, event.actionable) == (None, False)


# ---------------------------------------------------------------------------
# Through the endpoint
# ---------------------------------------------------------------------------


def test_events_move_a_payment_once(
    client: Any, stripe_provider: StripeProvider, signal_spy: Any
) -> None:
    payment = PaymentFactory(provider="stripe", provider_payment_id="pi_flow", amount=2500)
    processing = event_body("payment_intent.processing", intent_object(payment, "processing"))
    succeeded = event_body("payment_intent.succeeded", intent_object(payment, "succeeded"))
    stale = event_body("payment_intent.processing", intent_object(payment, "processing"))
    for body in (processing, succeeded, succeeded, stale):
        assert post(client, body, sign(body)).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert payment.amount_captured == 2500
    moves = list(PaymentEvent.objects.filter(payment=payment).values_list("to_status", flat=True))
    assert moves == ["processing", "succeeded"]
    assert signal_spy.count("payment_succeeded") == 1
    assert WebhookEvent.objects.count() == 3  # the duplicate stopped at the inbox


def test_event_found_by_metadata_before_the_id_is_stored(
    client: Any, stripe_provider: StripeProvider
) -> None:
    payment = PaymentFactory(provider="stripe", provider_payment_id=None, amount=1000)
    obj = intent_object(payment, "succeeded", id="pi_late")
    body = event_body("payment_intent.succeeded", obj)
    assert post(client, body, sign(body)).status_code == 200
    payment.refresh_from_db()
    assert payment.provider_payment_id == "pi_late"
    assert payment.status == "succeeded"


def test_dashboard_refund_becomes_one_refund_row(client: Any, paid: Any, signal_spy: Any) -> None:
    refund = {
        "id": "re_dash",
        "object": "refund",
        "amount": 300,
        "currency": "usd",
        "payment_intent": "pi_paid",
        "charge": "ch_1",
        "status": "succeeded",
        "metadata": {},
        "created": int(time.time()),
    }
    charge = {
        "id": "ch_1",
        "object": "charge",
        "amount": 1000,
        "amount_refunded": 300,
        "currency": "usd",
        "payment_intent": "pi_paid",
        "refunded": False,
        "refunds": {"object": "list", "data": [refund], "has_more": False},
    }
    deliveries = [
        event_body("charge.refunded", charge),
        event_body("refund.created", refund),
        event_body("refund.updated", refund),
    ]
    for body in deliveries:
        assert post(client, body, sign(body)).status_code == 200
    (row,) = Refund.objects.all()
    assert (row.provider_refund_id, row.amount, row.status) == ("re_dash", 300, "succeeded")
    assert row.source == "webhook"
    paid.refresh_from_db()
    assert paid.amount_refunded == 300
    assert paid.status == "partially_refunded"
    assert signal_spy.count("refund_succeeded") == 1


def test_dispute_opened_then_closed(client: Any, paid: Any, signal_spy: Any) -> None:
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "amount": 1000,
        "currency": "usd",
        "payment_intent": "pi_paid",
        "charge": "ch_1",
        "reason": "fraudulent",
        "status": "needs_response",
    }
    for event_type, status in [
        ("charge.dispute.created", "needs_response"),
        ("charge.dispute.updated", "under_review"),
        ("charge.dispute.closed", "lost"),
    ]:
        body = event_body(event_type, {**dispute, "status": status})
        assert post(client, body, sign(body)).status_code == 200
    (row,) = Dispute.objects.all()
    assert row.status == "lost"
    assert row.payment_id == paid.pk
    assert signal_spy.count("dispute_opened") == 1
    assert signal_spy.count("dispute_closed") == 1


def test_inbox_never_keeps_the_signature(client: Any, paid: Any) -> None:
    body = event_body("payment_intent.succeeded", intent_object(paid, "succeeded"))
    header = sign(body)
    assert post(client, body, header, HTTP_USER_AGENT="Stripe/1.0").status_code == 200
    row = WebhookEvent.objects.get()
    assert header not in json.dumps(row.headers)
    assert "stripe-signature" not in {k.lower() for k in row.headers}
