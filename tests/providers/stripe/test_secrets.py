"""No key, webhook secret, signature or client_secret in logs, errors or reprs."""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

import pytest
import responses

from django_paygate import services
from django_paygate.exceptions import PaygateError
from django_paygate.models import WebhookEvent, get_payment_model
from django_paygate.providers.stripe import RedactingFilter, StripeProvider
from tests.factories import PaymentFactory
from tests.providers.stripe.conftest import (
    MOCK_API,
    SECRET_KEY,
    WEBHOOK_SECRET,
    WEBHOOK_URL,
    event_body,
    sign,
)

pytestmark = pytest.mark.django_db(transaction=True)

FORBIDDEN = ("sk_", "whsec_", SECRET_KEY, WEBHOOK_SECRET, "_secret_")


def assert_clean(text: str, *extra: str) -> None:
    for needle in (*FORBIDDEN, *extra):
        assert needle not in text, f"{needle!r} leaked"


def render(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


def test_reprs_hide_secrets(local_stripe: StripeProvider) -> None:
    local_stripe.client  # noqa: B018 (built: its state is part of the provider now)
    for text in (
        repr(local_stripe),
        repr(local_stripe.options),
        str(local_stripe.options),
        repr(vars(local_stripe)),
    ):
        assert_clean(text)
    assert repr(local_stripe.options).count("***") == 2


def test_a_full_flow_logs_nothing_secret(
    local_stripe: StripeProvider, localstripe_url: str, caplog: Any, client: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="stripe")
    caplog.set_level(logging.DEBUG, logger="django_paygate")
    errors: list[str] = []

    payment = services.create_payment(amount=3000, currency="USD", provider="stripe", capture=False)
    client_secret = payment.client_data["client_secret"]
    assert "_secret_" in client_secret
    payment = services.confirm_payment(payment, payment_method="pm_card_visa")
    payment = services.capture_payment(payment, amount=2000)
    services.refund_payment(payment, amount=500)
    services.sync_payment(payment)
    local_stripe.client_data(payment)
    # Errors from the API (404) and from the network (a closed port).
    missing = PaymentFactory(provider="stripe", provider_payment_id="pi_doesnotexist")
    for call in (lambda: services.sync_payment(missing),):
        with pytest.raises(PaygateError) as err:
            call()
        errors.append(render(err.value))
    local_stripe.options["api_base"] = "http://127.0.0.1:9"
    local_stripe._client = None
    with pytest.raises(PaygateError) as err:
        services.create_payment(amount=3000, currency="USD", provider="stripe")
    errors.append(render(err.value))

    # Webhooks, good and bad.
    body = event_body("payment_intent.succeeded", {"object": "payment_intent", "id": "pi_x"})
    header = sign(body)
    client.post(
        WEBHOOK_URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    bad = sign(body, secret="whsec_wrong")
    client.post(
        WEBHOOK_URL, data=body + b" ", content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    client.post(WEBHOOK_URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=bad)

    assert any(r.name == "stripe" and r.levelno == logging.DEBUG for r in caplog.records)
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "[redacted" in logged  # the SDK did log the response bodies, redacted
    for text in (logged, *errors):
        assert_clean(text, client_secret, header, bad, header.split("v1=")[1])
    stored = " ".join(
        f"{row.headers} {row.error} {row.payload}" for row in WebhookEvent.objects.all()
    )
    assert_clean(stored, header)
    for row in get_payment_model().objects.all():
        assert_clean(f"{row.failure_message} {row.review_reason} {row.provider_data}")


def test_stripe_error_text_is_redacted(stripe_provider: StripeProvider, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    payment = PaymentFactory(provider="stripe", provider_payment_id=None)
    message = f"Invalid API Key provided: {SECRET_KEY[:8]}****cdef; see whsec_abc and pi_1_secret_2"
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            f"{MOCK_API}/v1/payment_intents",
            status=400,
            json={"error": {"type": "invalid_request_error", "message": message}},
        )
        with pytest.raises(PaygateError) as err:
            stripe_provider.create_payment(payment, idempotency_key="k")
    assert_clean(render(err.value))
    assert_clean(caplog.text)
    assert "[redacted key]" in str(err.value)


def test_filter_is_installed_once_and_keeps_records() -> None:
    StripeProvider("a", secret_key="sk_test_1")
    StripeProvider("b", secret_key="sk_test_2")
    filters = [f for f in logging.getLogger("stripe").filters if isinstance(f, RedactingFilter)]
    assert len(filters) == 1
    record = logging.LogRecord("stripe", logging.DEBUG, __file__, 1, "key=%s", ("sk_live_x",), None)
    assert filters[0].filter(record) is True
    assert record.getMessage() == "key=[redacted key]"


def test_configuration_errors_never_echo_a_key() -> None:
    from django_paygate.exceptions import ConfigurationError

    for options in (
        {"secret_key": SECRET_KEY, "publishable_key": "pk_live_abc"},
        {"secret_key": SECRET_KEY, "timeout": -1},
        {"secret_key": SECRET_KEY, "webhook_secret": 5},
        {"secret_key": SECRET_KEY, "unknown": WEBHOOK_SECRET},
    ):
        with pytest.raises(ConfigurationError) as err:
            StripeProvider("stripe", **options)
        assert_clean(render(err.value))


def _flow_with_webhook(client: Any) -> tuple[Any, str, str]:
    """A paid, partly refunded payment whose intent event (client_secret included, as
    Stripe sends it) went through the webhook endpoint."""
    payment = services.create_payment(amount=2000, currency="USD", provider="stripe")
    client_secret = payment.client_data["client_secret"]
    payment = services.confirm_payment(payment, payment_method="pm_card_visa")
    services.refund_payment(payment, amount=500)
    obj = {
        "object": "payment_intent",
        "id": payment.provider_payment_id,
        "status": "succeeded",
        "amount": 2000,
        "amount_received": 2000,
        "currency": "usd",
        "client_secret": client_secret,
        "metadata": {"paygate_payment_id": str(payment.pk)},
    }
    body = event_body("payment_intent.succeeded", obj)
    header = sign(body)
    response = client.post(
        WEBHOOK_URL, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
    )
    assert response.status_code == 200
    return payment, client_secret, header


def admin_pages(*models: Any) -> list[str]:
    from django.urls import reverse

    pages = []
    for model in models:
        opts = model._meta
        pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        for pk in model.objects.values_list("pk", flat=True):
            pages.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[pk]))
    return pages


def test_admin_pages_show_no_secret(
    local_stripe: StripeProvider, admin_client: Any, client: Any
) -> None:
    from django_paygate.models import PaymentEvent, Refund

    _payment, client_secret, header = _flow_with_webhook(client)
    pages = admin_pages(get_payment_model(), Refund, PaymentEvent)
    assert len(pages) > 6
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert_clean(response.content.decode(), client_secret, header)


def test_redact_webhook_payload_keeps_the_event(local_stripe: StripeProvider) -> None:
    obj = {
        "object": "payment_intent",
        "id": "pi_1",
        "status": "succeeded",
        "amount": 900,
        "amount_received": 900,
        "currency": "usd",
        "client_secret": 'pi_1_secret_a"b',
        "metadata": {"paygate_payment_id": "x"},
    }
    payload = event_body("payment_intent.succeeded", obj, event_id="evt_r").decode()
    stored = local_stripe.redact_webhook_payload(payload)
    assert_clean(stored)
    assert json.loads(stored)["data"]["object"]["client_secret"] == "[redacted]"
    assert local_stripe.parse_webhook(stored.encode(), {}) == local_stripe.parse_webhook(
        payload.encode(), {}
    )


def test_inbox_and_its_admin_page_keep_no_client_secret(
    local_stripe: StripeProvider, admin_client: Any, client: Any
) -> None:
    _payment, client_secret, header = _flow_with_webhook(client)
    (row,) = WebhookEvent.objects.filter(type="payment_intent.succeeded")
    assert client_secret not in row.payload
    for url in admin_pages(WebhookEvent):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert_clean(response.content.decode(), client_secret, header)
