"""The signed-delivery builders: checked against the providers' SDKs and the real pipeline."""

from __future__ import annotations

import json
import time

import pytest
import razorpay
import stripe
from hypothesis import given, settings
from hypothesis import strategies as st

from django_paygate.models import WebhookEvent, get_payment_model
from django_paygate.providers.dummy import DummyProvider
from django_paygate.testing import fakes
from django_paygate.testing.webhooks import (
    DUMMY_DEFAULT_SECRET,
    dummy_event,
    dummy_payment_data,
    headers_to_meta,
    post_webhook,
    razorpay_event,
    razorpay_payment_entity,
    razorpay_signature,
    stripe_amount,
    stripe_event,
    stripe_payment_intent,
    stripe_signature_header,
)
from tests.factories import PaymentFactory

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))
json_objects = st.dictionaries(
    st.text(min_size=1, max_size=10),
    st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6),
    max_size=6,
)
# A secret of whitespace only (U+00A0 counts) is no secret: providers treat it as unset.
secrets = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=40
).filter(str.strip)


# -- Stripe --------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(obj=json_objects, secret=secrets)
def test_stripe_signature_is_what_the_stripe_sdk_verifies(obj, secret):
    body, headers = stripe_event("payment_intent.succeeded", obj, secret=secret)
    assert stripe.WebhookSignature.verify_header(
        body.decode(), headers["Stripe-Signature"], secret, tolerance=300
    )


def test_stripe_signature_with_the_wrong_secret_is_refused_by_the_sdk():
    body, headers = stripe_event("payment_intent.succeeded", {"id": "pi_1"}, secret="whsec_right")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(
            body.decode(), headers["Stripe-Signature"], "whsec_wrong"
        )


def test_stripe_rotation_signs_once_per_secret():
    header = stripe_signature_header(b"{}", ["whsec_old", "whsec_new"], timestamp=1_700_000_000)
    parts = header.split(",")
    assert parts[0] == "t=1700000000"
    assert [p[:3] for p in parts[1:]] == ["v1=", "v1="]
    for secret in ("whsec_old", "whsec_new"):
        assert stripe.WebhookSignature.verify_header("{}", header, secret)


def test_stripe_event_shape_and_timestamp():
    intent = {"id": "pi_123", "object": "payment_intent", "amount": 1999}
    body, headers = stripe_event(
        "payment_intent.succeeded",
        intent,
        secret="whsec_x",
        event_id="evt_fixed",
        timestamp=1_700_000_123,
    )
    event = json.loads(body)
    assert event["id"] == "evt_fixed"
    assert event["object"] == "event"
    assert event["type"] == "payment_intent.succeeded"
    assert event["created"] == 1_700_000_123
    assert event["data"] == {"object": intent}
    assert event["livemode"] is False
    assert event["api_version"]
    assert headers["Stripe-Signature"].startswith("t=1700000123,v1=")
    # An old timestamp is signed faithfully, and so refused by a tolerant verifier.
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(
            body.decode(), headers["Stripe-Signature"], "whsec_x", 300
        )


def test_stripe_events_get_distinct_ids():
    ids = {json.loads(stripe_event("x", {}, secret="s")[0])["id"] for _ in range(20)}
    assert len(ids) == 20


# -- Razorpay ------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(entity=json_objects, secret=secrets)
def test_razorpay_signature_is_what_the_razorpay_sdk_verifies(entity, secret):
    body, headers = razorpay_event("payment.captured", {"payment": entity}, secret=secret)
    assert razorpay.Utility().verify_webhook_signature(
        body.decode(), headers["X-Razorpay-Signature"], secret
    )


def test_razorpay_signature_with_the_wrong_secret_is_refused_by_the_sdk():
    body, headers = razorpay_event("payment.captured", {"payment": {"id": "pay_1"}}, secret="right")
    with pytest.raises(razorpay.errors.SignatureVerificationError):
        razorpay.Utility().verify_webhook_signature(
            body.decode(), headers["X-Razorpay-Signature"], "wrong"
        )


def test_razorpay_event_shape():
    payment = {"id": "pay_1", "entity": "payment", "amount": 5000}
    refund = {"id": "rfnd_1", "entity": "refund", "amount": 100}
    body, headers = razorpay_event(
        "refund.processed", {"refund": refund, "payment": payment}, secret="s", event_id="Evt123"
    )
    event = json.loads(body)
    assert event["entity"] == "event"
    assert event["event"] == "refund.processed"
    assert event["contains"] == ["refund", "payment"]
    assert event["payload"] == {"refund": {"entity": refund}, "payment": {"entity": payment}}
    assert event["account_id"]
    assert abs(event["created_at"] - time.time()) < 60
    assert headers["X-Razorpay-Event-Id"] == "Evt123"
    assert headers["X-Razorpay-Signature"] == razorpay_signature(body, "s")


def test_razorpay_event_ids_are_generated():
    one = razorpay_event("payment.failed", {}, secret="s")[1]["X-Razorpay-Event-Id"]
    two = razorpay_event("payment.failed", {}, secret="s")[1]["X-Razorpay-Event-Id"]
    assert one != two
    assert len(one) == 14


# -- Dummy ---------------------------------------------------------------------


def test_dummy_default_secret_is_the_providers_default():
    assert DummyProvider.default_options["webhook_secret"] == DUMMY_DEFAULT_SECRET


@settings(max_examples=40, deadline=None)
@given(data=json_objects, secret=secrets)
def test_dummy_event_is_verified_by_the_dummy_provider(data, secret):
    provider = DummyProvider("dummy", webhook_secret=secret)
    body, headers = dummy_event("payment.succeeded", data, secret=secret)
    provider.verify_webhook(body, headers)
    assert provider.parse_webhook(body, headers).type == "payment.succeeded"


def test_dummy_event_with_another_secret_is_refused():
    from django_paygate.exceptions import WebhookVerificationError

    body, headers = dummy_event("payment.succeeded", {}, secret="not-the-secret")
    with pytest.raises(WebhookVerificationError):
        DummyProvider("dummy").verify_webhook(body, headers)


def test_headers_to_meta():
    content_type, meta = headers_to_meta(
        {
            "Stripe-Signature": "t=1,v1=a",
            "Content-Type": "application/json; charset=utf-8",
            "X-A-b": "c",
        }
    )
    assert content_type == "application/json; charset=utf-8"
    assert meta == {"HTTP_STRIPE_SIGNATURE": "t=1,v1=a", "HTTP_X_A_B": "c"}


# -- Through the real pipeline ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_dummy_delivery_is_processed_by_the_endpoint(client, paygate_dummy, paygate_signals):
    payment = fakes.make_payment(amount=2500, currency="EUR")
    body, headers = dummy_event("payment.succeeded", dummy_payment_data(payment))

    response = post_webhook(client, "dummy", body, headers)

    assert response.status_code == 200
    assert response.json() == {"status": "Event processed."}
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert payment.amount_captured == 2500
    event = WebhookEvent.objects.get(provider="dummy", event_id=json.loads(body)["id"])
    assert event.status == WebhookEvent.Status.PROCESSED
    assert paygate_signals.count("payment_succeeded") == 1

    again = post_webhook(client, "dummy", body, headers)
    assert again.status_code == 200
    assert again.json() == {"status": "Duplicate event."}
    assert paygate_signals.count("payment_succeeded") == 1


@pytest.mark.django_db(transaction=True)
def test_tampered_dummy_delivery_is_refused(client, paygate_dummy):
    payment = fakes.make_payment()
    body, headers = dummy_event("payment.succeeded", dummy_payment_data(payment))
    tampered = body.replace(b'"amount":1000', b'"amount":1')
    assert tampered != body

    assert post_webhook(client, "dummy", tampered, headers).status_code == 400
    wrong = dummy_event("payment.succeeded", dummy_payment_data(payment), secret="other")
    assert post_webhook(client, "dummy", *wrong).status_code == 400
    assert get_payment_model().objects.get(pk=payment.pk).status == "pending"
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_post_webhook_to_an_unknown_alias_is_404(client):
    body, headers = dummy_event("payment.succeeded", {})
    assert post_webhook(client, "nope", body, headers).status_code == 404


# -- Stripe and Razorpay deliveries through the real providers ---------------------

PROVIDERS = {
    "DEFAULT_PROVIDER": "dummy",
    "PROVIDERS": {
        "dummy": {"BACKEND": "django_paygate.providers.dummy.DummyProvider"},
        "stripe": {
            "BACKEND": "django_paygate.providers.stripe.StripeProvider",
            "OPTIONS": {"secret_key": "sk_test_kit", "webhook_secret": "whsec_kit"},
        },
        "razorpay": {
            "BACKEND": "django_paygate.providers.razorpay.RazorpayProvider",
            "OPTIONS": {
                "key_id": "rzp_test_kit",
                "key_secret": "kit_key_secret",
                "webhook_secret": "kit_webhook_secret",
            },
        },
    },
}


@pytest.fixture
def real_providers(settings):
    settings.PAYGATE = PROVIDERS


def test_stripe_event_is_accepted_by_the_stripe_sdk():
    intent = {"id": "pi_1", "object": "payment_intent", "amount": 100, "metadata": {"a": "b"}}
    body, headers = stripe_event("payment_intent.succeeded", intent, secret="whsec_sdk")
    event = stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"], "whsec_sdk")
    assert event.type == "payment_intent.succeeded"
    assert event.data.object.id == "pi_1"


@pytest.mark.parametrize("currency", ["USD", "JPY", "ISK", "UGX", "MGA", "KWD", "HUF", "EUR"])
def test_stripe_amount_agrees_with_the_stripe_provider(currency):
    from django_paygate.providers.stripe import to_stripe_amount

    for minor in (0, 500, 12300, 1_000_000):
        assert stripe_amount(minor, currency) == to_stripe_amount(minor, currency)


def test_stripe_amount_refuses_what_stripe_cannot_express():
    assert stripe_amount(500, "ISK") == 50000
    with pytest.raises(ValueError, match="MGA"):
        stripe_amount(150, "MGA")  # 1.50 MGA: Stripe charges MGA in whole units


@pytest.mark.django_db(transaction=True)
def test_stripe_payment_intent_succeeded_is_processed(
    real_providers, paygate_webhook, paygate_signals
):
    payment = PaymentFactory(provider="stripe", provider_payment_id="pi_kit_1", amount=1999)

    response = paygate_webhook.stripe(
        "payment_intent.succeeded", stripe_payment_intent(payment), event_id="evt_kit_1"
    )

    assert response.status_code == 200
    assert response.json() == {"status": "Event processed."}
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured) == ("succeeded", 1999)
    assert WebhookEvent.objects.get(provider="stripe", event_id="evt_kit_1").status == "processed"
    assert paygate_signals.count("payment_succeeded") == 1


@pytest.mark.django_db(transaction=True)
def test_stripe_event_before_the_intent_id_is_stored_finds_the_payment(client, real_providers):
    payment = PaymentFactory(
        provider="stripe", provider_payment_id=None, amount=5000, currency="JPY"
    )
    intent = stripe_payment_intent(payment, status="requires_capture", id="pi_kit_late")
    body, headers = stripe_event(
        "payment_intent.amount_capturable_updated", intent, secret="whsec_kit"
    )

    assert post_webhook(client, "stripe", body, headers).json() == {"status": "Event processed."}
    payment.refresh_from_db()
    assert (payment.status, payment.provider_payment_id) == ("authorized", "pi_kit_late")


@pytest.mark.django_db(transaction=True)
def test_stripe_event_with_the_wrong_secret_is_refused(client, real_providers):
    payment = PaymentFactory(provider="stripe", provider_payment_id="pi_kit_2")
    body, headers = stripe_event(
        "payment_intent.succeeded", stripe_payment_intent(payment), secret="whsec_other"
    )
    assert post_webhook(client, "stripe", body, headers).status_code == 400
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_stripe_rotation_header_is_accepted(client, settings):
    settings.PAYGATE = {
        **PROVIDERS,
        "PROVIDERS": {
            **PROVIDERS["PROVIDERS"],
            "stripe": {
                "BACKEND": "django_paygate.providers.stripe.StripeProvider",
                "OPTIONS": {"secret_key": "sk_test_kit", "webhook_secret": "whsec_new"},
            },
        },
    }
    payment = PaymentFactory(provider="stripe", provider_payment_id="pi_kit_3")
    body, headers = stripe_event(
        "payment_intent.succeeded",
        stripe_payment_intent(payment),
        secret=["whsec_old", "whsec_new"],
    )
    assert post_webhook(client, "stripe", body, headers).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_razorpay_payment_captured_is_processed(real_providers, paygate_webhook, paygate_signals):
    payment = PaymentFactory(
        provider="razorpay", provider_payment_id="order_KitOrder0001", amount=49900, currency="INR"
    )
    entity = razorpay_payment_entity(payment, status="captured", payment_id="pay_KitPayment0001")

    response = paygate_webhook.razorpay("payment.captured", {"payment": entity}, event_id="KitEvt1")

    assert response.status_code == 200
    assert response.json() == {"status": "Event processed."}
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured) == ("succeeded", 49900)
    assert payment.provider_data["razorpay_payment_id"] == "pay_KitPayment0001"
    row = WebhookEvent.objects.get(provider="razorpay")  # known by its body's digest
    assert (row.headers["x-razorpay-event-id"], row.status) == ("KitEvt1", "processed")
    again = paygate_webhook.razorpay("payment.captured", {"payment": entity}, event_id="KitEvt1")
    assert again.json() == {"status": "Duplicate event."}
    assert paygate_signals.count("payment_succeeded") == 1


@pytest.mark.django_db(transaction=True)
def test_razorpay_payment_failed_is_processed(client, real_providers):
    payment = PaymentFactory(
        provider="razorpay", provider_payment_id="order_KitOrder0002", amount=1000, currency="INR"
    )
    entity = razorpay_payment_entity(
        payment, status="failed", error_code="BAD_REQUEST_ERROR", error_description="Declined"
    )
    body, headers = razorpay_event(
        "payment.failed", {"payment": entity}, secret="kit_webhook_secret"
    )

    assert post_webhook(client, "razorpay", body, headers).status_code == 200
    payment.refresh_from_db()
    assert (payment.status, payment.failure_code) == ("failed", "BAD_REQUEST_ERROR")


@pytest.mark.django_db(transaction=True)
def test_razorpay_event_with_the_wrong_secret_is_refused(client, real_providers):
    payment = PaymentFactory(provider="razorpay", provider_payment_id="order_KitOrder0003")
    body, headers = razorpay_event(
        "payment.captured", {"payment": razorpay_payment_entity(payment)}, secret="kit_key_secret"
    )
    assert post_webhook(client, "razorpay", body, headers).status_code == 400
    assert not WebhookEvent.objects.exists()
