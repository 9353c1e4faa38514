"""The whole Razorpay flow through django_paygate.services, over the SDK's real HTTP code."""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate import services
from django_paygate.exceptions import (
    InvalidAmount,
    InvalidTransition,
    PaymentDeclined,
    ProviderError,
)
from django_paygate.models import PaymentEvent, Refund, get_payment_model
from django_paygate.providers.razorpay import CheckoutVerificationError, RazorpayProvider

from .conftest import KEY_ID, KEY_SECRET, WEBHOOK_SECRET, FakeRazorpay, checkout_signature

pytestmark = pytest.mark.django_db(transaction=True)


def create(**kwargs: Any) -> Any:
    kwargs.setdefault("amount", 49900)
    kwargs.setdefault("currency", "INR")
    kwargs.setdefault("email", "asha@example.in")
    return services.create_payment(provider="razorpay", **kwargs)


def events(payment: Any) -> list[tuple[str, str]]:
    return list(
        PaymentEvent.objects.filter(payment_id=payment.pk)
        .order_by("id")
        .values_list("from_status", "to_status")
    )


# -- the happy path ----------------------------------------------------------------


def test_automatic_flow_order_signature_capture_sync_and_two_partial_refunds(
    fake: FakeRazorpay, signal_spy: Any
) -> None:
    payment = create(description="Two mangoes")
    order_id = payment.provider_payment_id
    assert order_id in fake.orders
    order_call = fake.calls("order.create")[0]
    assert order_call["body"] == {
        "amount": 49900,
        "currency": "INR",
        "receipt": str(payment.pk),
        "notes": {"paygate_payment_id": str(payment.pk)},
        "unique_receipt": True,
    }
    assert len(str(payment.pk)) == 36  # within the 40 characters Razorpay allows
    # The receipt was looked up first, so a retried create finds the order.
    assert fake.log[0]["route"] == "order.list"
    assert fake.log[0]["query"] == {"receipt": str(payment.pk)}
    assert payment.client_data == {
        "provider": "razorpay",
        "key_id": KEY_ID,
        "order_id": order_id,
        "amount": 49900,
        "currency": "INR",
        "name": "Paygate Test Shop",
        "description": "Two mangoes",
        "prefill": {"email": "asha@example.in"},
        "notes": {"paygate_payment_id": str(payment.pk)},
    }
    assert payment.status == "pending"

    checkout = fake.checkout(order_id, "authorized", notes={"paygate_payment_id": str(payment.pk)})
    payment = services.confirm_payment(payment, **checkout)
    assert payment.status == "succeeded"
    assert payment.amount_captured == 49900
    assert payment.provider_data == {"razorpay_payment_id": checkout["razorpay_payment_id"]}
    capture = fake.calls("payment.capture")[0]
    assert capture["body"] == {"amount": 49900, "currency": "INR"}
    assert fake.payments[checkout["razorpay_payment_id"]]["status"] == "captured"
    assert fake.orders[order_id]["status"] == "paid"

    payment = services.sync_payment(payment)
    assert payment.status == "succeeded"

    first = services.refund_payment(payment, amount=10000, reason="one mango was bruised")
    second = services.refund_payment(payment, amount=5000)
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert first.provider_refund_id != second.provider_refund_id
    refund_calls = fake.calls("payment.refund")
    assert [c["body"]["amount"] for c in refund_calls] == [10000, 5000]
    assert refund_calls[0]["path"] == f"/payments/{checkout['razorpay_payment_id']}/refund"
    assert refund_calls[0]["body"]["notes"] == {
        "paygate_refund_id": str(first.pk),
        "paygate_payment_id": str(payment.pk),
    }
    keys = [c["headers"]["X-Refund-Idempotency"] for c in refund_calls]
    assert keys == [first.idempotency_key, second.idempotency_key]
    assert keys[0] != keys[1]
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 15000)

    # A second sync sees the same two refunds and changes nothing.
    payment = services.sync_payment(payment)
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 15000)
    assert Refund.objects.filter(payment_id=payment.pk).count() == 2
    assert events(payment)[:2] == [("", "pending"), ("pending", "succeeded")]
    assert signal_spy.count("payment_succeeded") == 1
    assert signal_spy.count("refund_succeeded") == 2
    # Every single call carried the provider's timeout.
    assert fake.log
    assert all(entry["kwargs"]["timeout"] == 15.0 for entry in fake.log)


def test_captured_in_checkout_needs_no_capture_call(fake: FakeRazorpay) -> None:
    payment = create()
    checkout = fake.checkout(payment.provider_payment_id, "captured")
    payment = services.confirm_payment(payment, **checkout)
    assert payment.status == "succeeded"
    assert fake.calls("payment.capture") == []


def test_already_captured_answer_counts_as_captured(fake: FakeRazorpay) -> None:
    payment = create()
    checkout = fake.checkout(payment.provider_payment_id, "authorized")
    # Razorpay's own auto-capture wins the race: our capture is told "already captured".
    fake.payments[checkout["razorpay_payment_id"]]["status"] = "authorized"
    original = fake._payment_capture

    def race(entry: dict[str, Any], payment_id: str) -> Any:
        fake.payments[payment_id].update(status="captured", captured=True)
        return original(entry, payment_id)

    fake._payment_capture = race  # type: ignore[method-assign]
    payment = services.confirm_payment(payment, **checkout)
    assert payment.status == "succeeded"
    assert [e["route"] for e in fake.log[-2:]] == ["payment.capture", "payment.fetch"]


def test_manual_capture(fake: FakeRazorpay, signal_spy: Any) -> None:
    payment = create(capture=False)
    assert fake.calls("order.create")[0]["body"]["payment"] == {
        "capture": "manual",
        "capture_options": {"refund_speed": "normal"},
    }
    checkout = fake.checkout(payment.provider_payment_id, "authorized")
    payment = services.confirm_payment(payment, **checkout)
    assert payment.status == "authorized"
    assert fake.calls("payment.capture") == []

    before = len(fake.log)
    with pytest.raises(InvalidAmount, match="full authorized amount"):
        services.capture_payment(payment, amount=20000)
    assert len(fake.log) == before  # refused before any call

    payment = services.capture_payment(payment)
    assert (payment.status, payment.amount_captured) == ("succeeded", 49900)
    assert fake.calls("payment.capture")[0]["body"] == {"amount": 49900, "currency": "INR"}
    assert signal_spy.count("payment_authorized") == 1
    assert signal_spy.count("payment_succeeded") == 1


def test_capture_finds_the_authorized_payment_when_only_a_webhook_told_us(
    fake: FakeRazorpay,
) -> None:
    payment = create(capture=False)
    fake.checkout(payment.provider_payment_id, "failed")
    checkout = fake.checkout(payment.provider_payment_id, "authorized")
    get_payment_model().objects.filter(pk=payment.pk).update(status="authorized")
    payment = services.capture_payment(payment)
    assert payment.status == "succeeded"
    assert payment.provider_data == {"razorpay_payment_id": checkout["razorpay_payment_id"]}


def test_automatic_expiry_period_puts_capture_settings_on_the_order(settings: Any) -> None:
    from .conftest import paygate_setting

    settings.PAYGATE = paygate_setting(automatic_expiry_period=60, refund_speed="optimum")
    import responses

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeRazorpay(rsps)
        create()
    assert fake.calls("order.create")[0]["body"]["payment"] == {
        "capture": "automatic",
        "capture_options": {"automatic_expiry_period": 60, "refund_speed": "optimum"},
    }


def test_failed_payment(fake: FakeRazorpay, signal_spy: Any) -> None:
    payment = create()
    checkout = fake.checkout(payment.provider_payment_id, "failed")
    with pytest.raises(PaymentDeclined) as err:
        services.confirm_payment(payment, **checkout)
    assert err.value.decline_code == "BAD_REQUEST_ERROR"
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.failure_code == "BAD_REQUEST_ERROR"
    assert payment.failure_message.startswith("Your payment could not be completed")
    assert payment.provider_data == {}
    assert signal_spy.count("payment_failed") == 1

    # The customer tries again on the same order and succeeds.
    retry = fake.checkout(payment.provider_payment_id, "authorized")
    payment = services.confirm_payment(payment, **retry)
    assert payment.status == "succeeded"
    assert payment.failure_code == ""
    assert payment.provider_data == {"razorpay_payment_id": retry["razorpay_payment_id"]}


def test_retried_create_reuses_the_order_found_by_receipt(fake: FakeRazorpay) -> None:
    payment = create()
    first_order = payment.provider_payment_id
    # The row lost its link (a crash before the second transaction): sync repairs it.
    get_payment_model().objects.filter(pk=payment.pk).update(provider_payment_id=None)
    payment = services.sync_payment(payment)
    assert payment.provider_payment_id == first_order
    assert len(fake.orders) == 1
    assert len(fake.calls("order.create")) == 1


def test_create_after_a_timeout_makes_one_order(fake: FakeRazorpay) -> None:
    from django_paygate.exceptions import ProviderUnavailable

    fake.fail_next("order.create", "timeout", after=True)  # Razorpay made it; we never heard
    with pytest.raises(ProviderUnavailable):
        create()
    payment = get_payment_model().objects.get()
    assert payment.provider_payment_id is None
    payment = services.sync_payment(payment)
    assert payment.provider_payment_id in fake.orders
    assert len(fake.orders) == 1
    assert len(fake.calls("order.create")) == 1


def test_order_with_our_receipt_but_another_amount_is_not_reused(
    fake: FakeRazorpay, provider: RazorpayProvider
) -> None:
    from django_paygate.exceptions import ProviderIdempotencyError

    Payment = get_payment_model()
    payment = Payment.objects.create(provider="razorpay", amount=49900, currency="INR")
    fake.add_order(amount=100, receipt=str(payment.pk))
    with pytest.raises(ProviderIdempotencyError):
        provider.create_payment(payment, idempotency_key="k")
    # Sync links it (it is ours) but flags the disagreement for a person.
    payment = services.sync_payment(payment)
    assert payment.needs_review
    assert "amount 100" in payment.review_reason
    assert fake.calls("order.create") == []


def test_fetch_without_an_order_reports_nothing(
    fake: FakeRazorpay, provider: RazorpayProvider
) -> None:
    Payment = get_payment_model()
    payment = Payment.objects.create(provider="razorpay", amount=49900, currency="INR")
    result = provider.fetch_payment(payment)
    assert (result.provider_payment_id, result.status) == (None, None)


def test_sync_prefers_the_captured_attempt_over_failures(fake: FakeRazorpay) -> None:
    payment = create()
    fake.checkout(payment.provider_payment_id, "failed")
    captured = fake.checkout(payment.provider_payment_id, "captured")
    fake.checkout(payment.provider_payment_id, "failed")
    payment = services.sync_payment(payment)
    assert payment.status == "succeeded"
    assert payment.provider_data == {"razorpay_payment_id": captured["razorpay_payment_id"]}


def test_sync_reports_the_latest_failure(fake: FakeRazorpay) -> None:
    payment = create()
    fake.checkout(payment.provider_payment_id, "failed")
    payment = services.sync_payment(payment)
    assert (payment.status, payment.failure_code) == ("failed", "BAD_REQUEST_ERROR")


def test_sync_while_an_attempt_is_in_progress_changes_nothing(fake: FakeRazorpay) -> None:
    payment = create()
    fake.checkout(payment.provider_payment_id, "failed")
    fake.checkout(payment.provider_payment_id, "created")
    payment = services.sync_payment(payment)
    assert payment.status == "pending"


def test_sync_after_razorpay_released_an_uncaptured_authorization(fake: FakeRazorpay) -> None:
    payment = create(capture=False)
    checkout = fake.checkout(payment.provider_payment_id, "authorized")
    payment = services.confirm_payment(payment, **checkout)
    assert payment.status == "authorized"
    fake.auto_refund(checkout["razorpay_payment_id"])
    payment = services.sync_payment(payment)
    assert payment.status == "canceled"
    assert Refund.objects.filter(payment_id=payment.pk).count() == 0


def test_sync_records_a_refund_made_in_the_dashboard(fake: FakeRazorpay) -> None:
    payment = create()
    checkout = fake.checkout(payment.provider_payment_id, "captured")
    payment = services.confirm_payment(payment, **checkout)
    razorpay_payment = fake.payments[checkout["razorpay_payment_id"]]
    fake._new_refund(razorpay_payment, 2500, notes=[])
    payment = services.sync_payment(payment)
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 2500)


def test_refunds_page_through_long_lists(fake: FakeRazorpay, provider: RazorpayProvider) -> None:
    payment = create(amount=1_000_000)
    checkout = fake.checkout(payment.provider_payment_id, "captured")
    payment = services.confirm_payment(payment, **checkout)
    for _ in range(150):
        fake._new_refund(fake.payments[checkout["razorpay_payment_id"]], 100, notes=[])
    result = provider.fetch_payment(payment)
    assert len(result.refunds) == 150
    assert [c["query"]["skip"] for c in fake.calls("payment.refunds")] == ["0", "100"]


# -- checkout signatures ------------------------------------------------------------


def test_genuine_uppercase_signature_is_accepted(fake: FakeRazorpay) -> None:
    payment = create()
    checkout = fake.checkout(payment.provider_payment_id, "captured")
    checkout["razorpay_signature"] = checkout["razorpay_signature"].upper()
    assert services.confirm_payment(payment, **checkout).status == "succeeded"


def _assert_refused_without_change(payment: Any, fake: FakeRazorpay, **data: Any) -> None:
    before_events = events(payment)
    before_calls = len(fake.log)
    with pytest.raises(CheckoutVerificationError) as err:
        services.confirm_payment(payment, **data)
    assert err.value.status_code == 400
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert payment.provider_data == {}
    assert events(payment) == before_events
    assert len(fake.log) == before_calls  # refused before any call to Razorpay
    for value in data.values():
        if isinstance(value, str) and len(value) > 8:
            assert value not in str(err.value)


def test_another_users_valid_triple_is_refused(fake: FakeRazorpay) -> None:
    mine = create()
    theirs = create(email="someone@example.in")
    their_checkout = fake.checkout(theirs.provider_payment_id, "captured")
    # Posted as is: the order id is not ours.
    _assert_refused_without_change(mine, fake, **their_checkout)
    # With our order id swapped in: the signature no longer matches.
    _assert_refused_without_change(
        mine, fake, **{**their_checkout, "razorpay_order_id": mine.provider_payment_id}
    )


def test_signature_made_with_the_webhook_secret_is_refused(fake: FakeRazorpay) -> None:
    payment = create()
    checkout = fake.checkout(payment.provider_payment_id, "captured", secret=WEBHOOK_SECRET)
    _assert_refused_without_change(payment, fake, **checkout)


@pytest.mark.parametrize(
    "change",
    [
        {"razorpay_signature": "not-hex"},
        {"razorpay_signature": "\u00e9" * 64},
        {"razorpay_signature": ""},
        {"razorpay_payment_id": "../orders"},
        {"razorpay_payment_id": None},
        {"razorpay_order_id": 12},
    ],
)
def test_malformed_checkout_answers_are_refused(fake: FakeRazorpay, change: dict[str, Any]) -> None:
    payment = create()
    checkout = fake.checkout(payment.provider_payment_id, "captured")
    _assert_refused_without_change(payment, fake, **{**checkout, **change})


def test_valid_signature_for_a_payment_on_another_order_is_refused(fake: FakeRazorpay) -> None:
    # Defence in depth: the signature matches, but Razorpay places the payment elsewhere.
    payment = create()
    other = create()
    checkout = fake.checkout(other.provider_payment_id, "captured")
    forged = {
        "razorpay_order_id": payment.provider_payment_id,
        "razorpay_payment_id": checkout["razorpay_payment_id"],
        "razorpay_signature": checkout_signature(
            payment.provider_payment_id, checkout["razorpay_payment_id"], KEY_SECRET
        ),
    }
    with pytest.raises(CheckoutVerificationError):
        services.confirm_payment(payment, **forged)
    payment.refresh_from_db()
    assert payment.status == "pending"


def test_unknown_confirmation_field(fake: FakeRazorpay) -> None:
    payment = create()
    with pytest.raises(ProviderError, match="payment_method"):
        services.confirm_payment(payment, payment_method="pm_card_visa")


# -- cancel ---------------------------------------------------------------------------


def test_cancel_an_unpaid_order(fake: FakeRazorpay, signal_spy: Any) -> None:
    payment = create()
    fake.checkout(payment.provider_payment_id, "failed")
    payment = services.cancel_payment(payment)
    assert payment.status == "canceled"
    assert signal_spy.count("payment_canceled") == 1


def test_cancel_an_authorized_payment_is_refused(fake: FakeRazorpay) -> None:
    payment = create(capture=False)
    checkout = fake.checkout(payment.provider_payment_id, "authorized")
    payment = services.confirm_payment(payment, **checkout)
    with pytest.raises(InvalidTransition, match="cannot void"):
        services.cancel_payment(payment)
    payment.refresh_from_db()
    assert payment.status == "authorized"


def test_cancel_a_payment_captured_at_razorpay_is_refused(fake: FakeRazorpay) -> None:
    payment = create()
    fake.checkout(payment.provider_payment_id, "captured")
    with pytest.raises(InvalidTransition, match="refund it instead"):
        services.cancel_payment(payment)
    payment.refresh_from_db()
    assert payment.status == "pending"


def test_client_data_needs_no_network(fake: FakeRazorpay, provider: RazorpayProvider) -> None:
    payment = create()
    before = len(fake.log)
    data = provider.client_data(payment)
    assert data["order_id"] == payment.provider_payment_id
    assert len(fake.log) == before
    assert KEY_SECRET not in repr(data)


def test_checkout_finished_but_bank_still_answering_is_processing(fake: FakeRazorpay) -> None:
    payment = create()
    checkout = fake.checkout(payment.provider_payment_id, "created")
    payment = services.confirm_payment(payment, **checkout)
    assert payment.status == "processing"
    assert payment.provider_data == {}
    assert fake.calls("payment.capture") == []


def test_through_the_json_api(fake: FakeRazorpay, django_user_model: Any) -> None:
    from django.test import Client

    owner = django_user_model.objects.create_user("asha", "asha@example.in", "pw")
    client = Client()
    client.force_login(owner)
    from tests.testapp.models import Order

    order = Order.objects.create(reference="R-1", amount=49900, currency="INR", owner=owner)
    created = client.post(
        "/api/payments/create_intent/",
        {"payable": "order", "id": order.pk, "provider": "razorpay"},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    order_id = body["client"]["order_id"]
    assert body["client"]["key_id"] == KEY_ID
    assert KEY_SECRET not in created.content.decode()

    other = create(email="someone@example.in")
    stolen = fake.checkout(other.provider_payment_id, "captured")
    refused = client.post(
        "/api/payments/confirm_payment/",
        {"payment_id": body["id"], **stolen},
        content_type="application/json",
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "checkout_signature_invalid"

    genuine = fake.checkout(order_id, "authorized")
    confirmed = client.post(
        "/api/payments/confirm_payment/",
        {"payment_id": body["id"], **genuine},
        content_type="application/json",
    )
    assert confirmed.status_code == 200, confirmed.content
    assert confirmed.json()["status"] == "succeeded"
