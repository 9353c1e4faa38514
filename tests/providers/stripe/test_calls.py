"""The adapter's calls, parameters and headers, through the real SDK on a mocked Stripe."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
import stripe

from django_paygate import services
from django_paygate.exceptions import (
    PaymentDeclined,
    ProviderError,
    ProviderIdempotencyError,
    ProviderUnavailable,
)
from django_paygate.models import get_payment_model
from django_paygate.providers import get_provider
from django_paygate.providers.base import TransportFailure
from django_paygate.providers.stripe import StripeProvider
from tests.factories import PaymentFactory
from tests.providers.stripe.conftest import (
    MOCK_API,
    PUBLISHABLE_KEY,
    SECRET_KEY,
    FakeStripe,
    assert_stripe_headers,
)

pytestmark = pytest.mark.django_db(transaction=True)


def form(call: Any) -> dict[str, list[str]]:
    return parse_qs(call.request.body or "")


def paths(fake: FakeStripe) -> list[str]:
    return [f"{c.request.method} {c.request.path_url.split('?')[0]}" for c in fake.calls]


def test_create_sends_amount_metadata_and_our_key(fake_stripe: FakeStripe) -> None:
    payment = services.create_payment(
        amount=1999,
        currency="usd",
        provider="stripe",
        description="Order 42",
        email="buyer@example.com",
    )
    (call,) = fake_stripe.calls
    assert paths(fake_stripe) == ["POST /v1/payment_intents"]
    assert_stripe_headers(call, key=f"paygate-{payment.pk}-create")
    sent = form(call)
    assert sent["amount"] == ["1999"]
    assert sent["currency"] == ["usd"]
    assert sent["metadata[paygate_payment_id]"] == [str(payment.pk)]
    assert sent["automatic_payment_methods[enabled]"] == ["true"]
    assert sent["description"] == ["Order 42"]
    assert "receipt_email" not in sent  # off by default: django-paygate sends its own emails
    assert "capture_method" not in sent  # Stripe's default (automatic)
    intent = fake_stripe.intents[payment.provider_payment_id]
    assert payment.client_data == {
        "client_secret": intent["client_secret"],
        "publishable_key": PUBLISHABLE_KEY,
        "payment_intent_id": intent["id"],
    }
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert payment.provider_payment_id == intent["id"]


def test_create_manual_capture_and_payment_method_types(fake_stripe: FakeStripe) -> None:
    provider = get_provider("stripe")
    provider.options.update(
        automatic_payment_methods=False,
        payment_method_types=["card", "link"],
        send_description=False,
        send_receipt_email=True,
        forward_metadata=True,
    )
    payment = services.create_payment(
        amount=5000,
        currency="EUR",
        provider="stripe",
        capture=False,
        description="x",
        email="a@example.com",
        metadata={"order": 42, "nested": {"no": 1}, "ok": "yes"},
    )
    sent = form(fake_stripe.calls[0])
    assert sent["capture_method"] == ["manual"]
    assert sent["payment_method_types[0]"] == ["card"]
    assert sent["payment_method_types[1]"] == ["link"]
    assert "automatic_payment_methods[enabled]" not in sent
    assert "description" not in sent
    assert sent["receipt_email"] == ["a@example.com"]
    assert sent["metadata[order]"] == ["42"]
    assert sent["metadata[ok]"] == ["yes"]
    assert "metadata[nested]" not in sent
    assert sent["metadata[paygate_payment_id]"] == [str(payment.pk)]


def test_confirm_capture_refund_cancel(fake_stripe: FakeStripe, signal_spy: Any) -> None:
    payment = services.create_payment(amount=3000, currency="USD", provider="stripe", capture=False)
    payment = services.confirm_payment(payment, payment_method="pm_card_visa")
    assert payment.status == "authorized"
    payment = services.capture_payment(payment, amount=2000)
    assert payment.status == "succeeded"
    assert payment.amount_captured == 2000
    first = services.refund_payment(payment, amount=500)
    second = services.refund_payment(payment, amount=700)
    payment.refresh_from_db()
    assert (first.status, second.status) == ("succeeded", "succeeded")
    assert payment.amount_refunded == 1200
    assert payment.status == "partially_refunded"
    assert first.provider_refund_id in fake_stripe.refunds

    assert paths(fake_stripe) == [
        "POST /v1/payment_intents",
        f"POST /v1/payment_intents/{payment.provider_payment_id}/confirm",
        f"POST /v1/payment_intents/{payment.provider_payment_id}/capture",
        "POST /v1/refunds",
        "POST /v1/refunds",
    ]
    create, confirm, capture, refund1, refund2 = fake_stripe.calls
    assert_stripe_headers(create, key=f"paygate-{payment.pk}-create")
    assert_stripe_headers(confirm, key=confirm.request.headers["Idempotency-Key"])
    assert confirm.request.headers["Idempotency-Key"].startswith(f"paygate-{payment.pk}-confirm-")
    assert form(confirm) == {"payment_method": ["pm_card_visa"]}
    assert_stripe_headers(capture, key=f"paygate-{payment.pk}-capture")
    assert form(capture) == {"amount_to_capture": ["2000"]}
    assert_stripe_headers(refund1, key=f"paygate-refund-{first.pk}")
    assert_stripe_headers(refund2, key=f"paygate-refund-{second.pk}")
    assert form(refund1)["amount"] == ["500"]
    assert form(refund1)["payment_intent"] == [payment.provider_payment_id]
    assert form(refund1)["metadata[paygate_refund_id]"] == [str(first.pk)]
    assert signal_spy.count("payment_authorized") == 1
    assert signal_spy.count("payment_succeeded") == 1
    assert signal_spy.count("refund_succeeded") == 2

    other = services.create_payment(amount=900, currency="USD", provider="stripe", capture=False)
    other = services.confirm_payment(other, payment_method="pm_card_visa")
    other = services.cancel_payment(other)
    assert other.status == "canceled"
    cancel = fake_stripe.calls[-1]
    assert cancel.request.path_url == f"/v1/payment_intents/{other.provider_payment_id}/cancel"
    assert_stripe_headers(cancel, key=f"paygate-{other.pk}-cancel")


def test_attach_before_confirm_uses_two_derived_keys(fake_stripe: FakeStripe) -> None:
    get_provider("stripe").options["attach_before_confirm"] = True
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe")
    payment = services.confirm_payment(
        payment, payment_method="pm_card_visa", return_url="https://shop.test/return"
    )
    assert payment.status == "succeeded"
    update, confirm = fake_stripe.calls[1:]
    key = confirm.request.headers["Idempotency-Key"]
    assert update.request.path_url == f"/v1/payment_intents/{payment.provider_payment_id}"
    assert_stripe_headers(update, key=f"{key}-update")
    assert form(update) == {"payment_method": ["pm_card_visa"]}
    assert form(confirm) == {"return_url": ["https://shop.test/return"]}


def test_requires_action_surfaces_next_action(fake_stripe: FakeStripe) -> None:
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe")
    payment = services.confirm_payment(payment, payment_method="pm_card_threeDSecure2Required")
    assert payment.status == "requires_action"
    assert payment.next_action["type"] == "redirect_to_url"
    assert "client_secret" not in str(payment.next_action)


def test_declined_card_maps_to_payment_declined(fake_stripe: FakeStripe, signal_spy: Any) -> None:
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe")
    fake_stripe.fail_next("confirm", "card_declined")
    with pytest.raises(PaymentDeclined) as err:
        services.confirm_payment(payment, payment_method="pm_card_visa")
    assert err.value.decline_code == "insufficient_funds"
    assert err.value.extra["http_status"] == 402
    assert str(err.value) == "Your card has insufficient funds."
    assert err.value.__cause__ is None
    assert err.value.__context__ is None
    payment.refresh_from_db()
    assert payment.status == "failed"
    assert payment.failure_code == "insufficient_funds"
    assert signal_spy.count("payment_failed") == 1
    # The customer may try another card: failed is not final.
    payment = services.confirm_payment(payment, payment_method="pm_card_mastercard")
    assert payment.status == "succeeded"


def test_client_data_is_fetched_again_on_replay(fake_stripe: FakeStripe) -> None:
    first = services.create_payment(
        amount=1000, currency="USD", provider="stripe", idempotency_key="order-7"
    )
    again = services.create_payment(
        amount=1000, currency="USD", provider="stripe", idempotency_key="order-7"
    )
    assert again.pk == first.pk
    assert again.client_data == first.client_data
    assert paths(fake_stripe) == [
        "POST /v1/payment_intents",
        f"GET /v1/payment_intents/{first.provider_payment_id}",
    ]
    assert_stripe_headers(fake_stripe.calls[1], key=None)


# ---------------------------------------------------------------------------
# Faults: the outcome is unknown; the same key settles it
# ---------------------------------------------------------------------------


def test_read_timeout_after_create_then_sdk_retry_reuses_the_key(fake_stripe: FakeStripe) -> None:
    get_provider("stripe").options["max_network_retries"] = 2
    get_provider("stripe")._client = None  # rebuilt with the new retry count
    fake_stripe.fail_next("create", "timeout", after=True)
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe")
    assert len(fake_stripe.calls) == 2
    keys = {c.request.headers["Idempotency-Key"] for c in fake_stripe.calls}
    assert keys == {f"paygate-{payment.pk}-create"}
    for call in fake_stripe.calls:
        assert_stripe_headers(call, key=f"paygate-{payment.pk}-create")
    assert len(fake_stripe.intents) == 1  # Stripe created one PaymentIntent, and we linked it
    assert payment.provider_payment_id == next(iter(fake_stripe.intents))


def test_read_timeout_after_create_then_sync_reuses_the_key(fake_stripe: FakeStripe) -> None:
    fake_stripe.fail_next("create", "timeout", after=True)
    with pytest.raises(ProviderUnavailable) as err:
        services.create_payment(amount=1000, currency="USD", provider="stripe")
    assert err.value.__context__ is None
    payment = get_payment_model().objects.get()
    assert payment.status == "pending"  # never "failed": the outcome is unknown
    assert payment.provider_payment_id is None
    assert len(fake_stripe.intents) == 1  # ... and Stripe did create it

    payment = services.sync_payment(payment)
    assert len(fake_stripe.intents) == 1
    assert payment.provider_payment_id == next(iter(fake_stripe.intents))
    assert payment.status == "pending"
    assert len(fake_stripe.calls) == 2
    for call in fake_stripe.calls:
        assert_stripe_headers(call, key=f"paygate-{payment.pk}-create")


@pytest.mark.parametrize("kind", ["500", "429", "timeout", "connection"])
def test_confirm_outcome_unknown_then_sync_resolves(
    fake_stripe: FakeStripe, kind: str, signal_spy: Any
) -> None:
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe")
    fake_stripe.fail_next("confirm", kind, after=kind != "429")
    with pytest.raises(ProviderUnavailable):
        services.confirm_payment(payment, payment_method="pm_card_visa")
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert not payment.failure_code

    payment = services.sync_payment(payment)
    intent = fake_stripe.intents[payment.provider_payment_id]
    if kind == "429":  # refused before anything happened: nothing to find
        assert intent["status"] == "requires_payment_method"
        assert payment.status == "pending"
    else:
        assert intent["status"] == "succeeded"
        assert payment.status == "succeeded"
        assert payment.amount_captured == 1000
        assert signal_spy.count("payment_succeeded") == 1
    create, confirm, retrieve, *rest = fake_stripe.calls
    assert_stripe_headers(create, key=f"paygate-{payment.pk}-create")
    assert_stripe_headers(confirm, key=confirm.request.headers["Idempotency-Key"])
    assert_stripe_headers(retrieve, key=None)
    for call in rest:  # the refunds listing of a charged intent
        assert call.request.method == "GET"
        assert_stripe_headers(call, key=None)


def test_500_then_sdk_retries_with_the_same_key(fake_stripe: FakeStripe) -> None:
    provider = get_provider("stripe")
    provider.options["max_network_retries"] = 2
    provider._client = None
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe")
    fake_stripe.fail_next("confirm", "500")
    fake_stripe.fail_next("confirm", "500")
    payment = services.confirm_payment(payment, payment_method="pm_card_visa")
    assert payment.status == "succeeded"
    confirms = [c for c in fake_stripe.calls if c.request.path_url.endswith("/confirm")]
    assert len(confirms) == 3
    assert len({c.request.headers["Idempotency-Key"] for c in confirms}) == 1


def test_429_on_create_leaves_pending_then_sync_creates(fake_stripe: FakeStripe) -> None:
    fake_stripe.fail_next("create", "429")
    with pytest.raises(ProviderUnavailable) as err:
        services.create_payment(amount=1000, currency="USD", provider="stripe")
    assert "429" in str(err.value)
    payment = get_payment_model().objects.get()
    assert payment.status == "pending"
    assert payment.provider_payment_id is None
    payment = services.sync_payment(payment)
    assert payment.provider_payment_id in fake_stripe.intents
    for call in fake_stripe.calls:
        assert_stripe_headers(call, key=f"paygate-{payment.pk}-create")


def test_idempotency_error_flags_for_review(fake_stripe: FakeStripe, signal_spy: Any) -> None:
    fake_stripe.fail_next("create", "idempotency")
    with pytest.raises(ProviderIdempotencyError):
        services.create_payment(amount=1000, currency="USD", provider="stripe")
    payment = get_payment_model().objects.get()
    assert payment.needs_review
    assert "idempotency" in payment.review_reason
    assert payment.status == "pending"  # never a new key, never "failed"
    (call,) = fake_stripe.calls
    assert_stripe_headers(call, key=f"paygate-{payment.pk}-create")
    assert signal_spy.count("payment_needs_review") == 1


def test_reused_key_with_other_parameters_is_an_idempotency_error(
    stripe_provider: StripeProvider, fake_stripe: FakeStripe
) -> None:
    """The fake honours keys as Stripe does: a changed amount under the same key is refused."""
    payment = PaymentFactory(provider="stripe", provider_payment_id=None, amount=1000)
    stripe_provider.create_payment(payment, idempotency_key="k-1")
    payment.amount = 2000
    with pytest.raises(ProviderIdempotencyError):
        stripe_provider.create_payment(payment, idempotency_key="k-1")
    assert len(fake_stripe.intents) == 1


def test_refund_timeout_keeps_it_pending_then_sync_settles_it_once(
    fake_stripe: FakeStripe, signal_spy: Any
) -> None:
    payment = services.create_payment(amount=1000, currency="USD", provider="stripe")
    payment = services.confirm_payment(payment, payment_method="pm_card_visa")
    fake_stripe.fail_next("refund", "timeout", after=True)
    with pytest.raises(ProviderUnavailable):
        services.refund_payment(payment, amount=400)
    (refund,) = payment.refunds.all()
    assert refund.status == "pending"
    assert len(fake_stripe.refunds) == 1  # Stripe made it

    payment = services.sync_payment(payment)
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert refund.provider_refund_id == next(iter(fake_stripe.refunds))
    assert payment.amount_refunded == 400
    assert payment.refunds.count() == 1
    assert len(fake_stripe.refunds) == 1
    assert signal_spy.count("refund_succeeded") == 1
    refund_posts = [c for c in fake_stripe.calls if c.request.path_url == "/v1/refunds"]
    assert len(refund_posts) == 1  # the listing found it: not sent again


@pytest.mark.parametrize(
    ("status", "body", "expected", "text"),
    [
        (
            401,
            {
                "type": "invalid_request_error",
                "message": "Invalid API Key provided: sk_test_****cdef",
            },
            ProviderError,
            "rejected the API key",
        ),
        (403, {"type": "invalid_request_error", "message": "forbidden"}, ProviderError, "API key"),
        (
            400,
            {
                "type": "invalid_request_error",
                "code": "parameter_invalid_integer",
                "message": "Invalid integer: sk_live_abc",
            },
            ProviderError,
            "parameter_invalid_integer",
        ),
        (
            404,
            {
                "type": "invalid_request_error",
                "code": "resource_missing",
                "message": "No such payment_intent",
            },
            ProviderError,
            "resource_missing",
        ),
        (409, {"type": "api_error", "message": "conflict"}, ProviderUnavailable, "409"),
        (502, {"type": "api_error", "message": "bad gateway"}, ProviderUnavailable, "502"),
        (
            400,
            {"type": "invalid_request_error", "code": "rate_limit", "message": "slow"},
            ProviderUnavailable,
            "429",
        ),
    ],
)
def test_error_mapping(
    stripe_provider: StripeProvider, status: int, body: Any, expected: type[Exception], text: str
) -> None:
    payment = PaymentFactory(provider="stripe", provider_payment_id=None)
    with responses.RequestsMock() as rsps:
        rsps.add("POST", f"{MOCK_API}/v1/payment_intents", json={"error": body}, status=status)
        with pytest.raises(expected) as err:
            stripe_provider.create_payment(payment, idempotency_key="k")
        assert_stripe_headers(rsps.calls[0], key="k")
    assert type(err.value) is expected
    assert text in str(err.value)
    assert err.value.extra["http_status"] == status
    assert "sk_" not in str(err.value)
    assert "sk_" not in repr(err.value)
    assert err.value.__context__ is None
    assert err.value.__cause__ is None
    assert not isinstance(err.value, stripe.StripeError)


@pytest.mark.parametrize(
    "failure",
    [
        TransportFailure("answered HTTP 502"),  # the base's own session, had one been given
        RuntimeError(f"unexpected, with {SECRET_KEY}"),
    ],
)
def test_a_failure_inside_the_sdks_http_client_is_an_unknown_outcome(
    stripe_provider: StripeProvider, failure: Exception
) -> None:
    """Not a Stripe error, not a ``requests`` one: the SDK wraps it (no retry), and the
    call ends as ProviderUnavailable, unchained and naming no secret."""
    payment = PaymentFactory(provider="stripe", provider_payment_id=None)
    with responses.RequestsMock() as rsps:
        rsps.add("POST", f"{MOCK_API}/v1/payment_intents", body=failure)
        with pytest.raises(ProviderUnavailable) as err:
            stripe_provider.create_payment(payment, idempotency_key="k")
        assert len(rsps.calls) == 1
    assert "the outcome is unknown" in str(err.value)
    assert SECRET_KEY not in str(err.value)
    assert err.value.__context__ is None
    assert err.value.__cause__ is None


def test_an_unexpected_error_in_the_sdk_is_an_unknown_outcome(
    stripe_provider: StripeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the SDK raises that is not a StripeError (a bug, an unforeseen answer)
    is ProviderUnavailable: the request may have been made."""
    payment = PaymentFactory(provider="stripe", provider_payment_id="pi_1")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("unforeseen")

    monkeypatch.setattr(stripe_provider.client.v1.payment_intents, "capture", broken)
    with pytest.raises(ProviderUnavailable) as err:
        stripe_provider.capture_payment(payment, amount=payment.amount, idempotency_key="k")
    assert "unexpected error in the client (TypeError)" in str(err.value)
    assert err.value.__context__ is None
