"""No key secret, webhook secret or signature in logs, exceptions, repr, rows or admin pages."""

from __future__ import annotations

import base64
import http.server
import logging
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import pytest
import responses
from django.contrib import admin
from django.test import Client

from django_paygate import services
from django_paygate.exceptions import PaygateError
from django_paygate.models import (
    Dispute,
    PaymentEvent,
    Refund,
    WebhookEvent,
    get_payment_model,
)
from django_paygate.providers import get_provider

from .conftest import (
    KEY_ID,
    KEY_SECRET,
    OLD_WEBHOOK_SECRET,
    WEBHOOK_SECRET,
    FakeRazorpay,
    checkout_signature,
    event_body,
    hmac_hex,
    paygate_setting,
    payment_entity,
    signed_headers,
)

pytestmark = pytest.mark.django_db(transaction=True)

BASIC_AUTH = base64.b64encode(f"{KEY_ID}:{KEY_SECRET}".encode()).decode()


class Evidence:
    """Everything a secret could leak into."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.signatures: list[str] = []

    def error(self, exc: BaseException) -> None:
        self.texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]

    def attempt(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except PaygateError as exc:
            self.error(exc)
            return None

    def assert_clean(self) -> None:
        forbidden = {
            "key secret": KEY_SECRET,
            "webhook secret": WEBHOOK_SECRET,
            "old webhook secret": OLD_WEBHOOK_SECRET,
            "basic auth": BASIC_AUTH,
            **{f"signature {i}": s for i, s in enumerate(self.signatures)},
            **{f"SIGNATURE {i}": s.upper() for i, s in enumerate(self.signatures)},
        }
        assert self.texts
        for where, text in enumerate(self.texts):
            for name, secret in forbidden.items():
                assert secret not in text, f"{name} found in evidence #{where}: {text[:200]!r}"


def stored_rows() -> list[str]:
    Payment = get_payment_model()
    texts = []
    for payment in Payment.objects.all():
        texts += [
            repr(payment),
            str(payment),
            repr(payment.provider_data),
            payment.failure_message,
            payment.review_reason,
            repr(payment.metadata),
        ]
    for model in (Refund, PaymentEvent, WebhookEvent, Dispute):
        for row in model.objects.all():
            texts.append(
                repr({f.attname: getattr(row, f.attname) for f in model._meta.concrete_fields})
            )
    return texts


def test_no_secret_anywhere_through_a_whole_flow(
    razorpay_settings: Any, caplog: Any, capsys: Any, admin_client: Client
) -> None:
    caplog.set_level(logging.DEBUG)
    evidence = Evidence()
    provider = get_provider("razorpay")
    evidence.texts += [
        repr(provider),
        str(provider),
        repr(provider.options),
        str(provider.options),
        repr(provider.client.__dict__.get("base_url")),
    ]

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeRazorpay(rsps)
        payment = services.create_payment(
            amount=49900, currency="INR", provider="razorpay", email="asha@example.in"
        )
        evidence.texts.append(repr(payment.client_data))
        order_id = payment.provider_payment_id

        # A refused checkout answer (signed with the webhook secret), then a genuine one.
        forged = fake.checkout(order_id, "authorized", secret=WEBHOOK_SECRET)
        evidence.signatures.append(forged["razorpay_signature"])
        evidence.attempt(services.confirm_payment, payment, **forged)
        genuine = fake.checkout(order_id, "authorized")
        evidence.signatures.append(genuine["razorpay_signature"])
        fake.fail_next("payment.capture", "html502")
        evidence.attempt(services.confirm_payment, payment, **genuine)
        payment = services.confirm_payment(payment, **genuine)
        assert payment.status == "succeeded"

        # Refunds: a timeout, a 409, a refusal, then a good one.
        fake.fail_next("payment.refund", "timeout", after=True)
        evidence.attempt(services.refund_payment, payment, amount=1000)
        fake.hidden_refunds.update(fake.refunds)
        fake.fail_next("payment.refund", "409")
        evidence.attempt(services.sync_payment, payment)  # resends: 409
        fake.hidden_refunds.clear()
        services.sync_payment(payment)
        evidence.attempt(services.refund_payment, payment, amount=10**9)
        razorpay_payment = fake.payments[genuine["razorpay_payment_id"]]
        razorpay_payment["amount_refunded"] += 48000  # refused by Razorpay
        evidence.attempt(services.refund_payment, payment, amount=2000)
        razorpay_payment["amount_refunded"] -= 48000
        assert services.refund_payment(payment, amount=2000).status == "succeeded"
        services.sync_payment(payment)
        assert len(fake.calls("payment.refund")) == 4
        for call in rsps.calls:
            evidence.texts += [repr(call.request.url), repr(call.response)]

    # Webhooks: good, tampered, wrong secret, non-ASCII signature.
    entity = payment_entity(
        payment_id=genuine["razorpay_payment_id"], order_id=order_id, amount=49900
    )
    body = event_body("payment.captured", payment=entity)
    good = signed_headers(body, event_id="evt_secret_1")
    evidence.signatures += [
        good["HTTP_X_RAZORPAY_SIGNATURE"],
        hmac_hex(OLD_WEBHOOK_SECRET, body),
        hmac_hex(KEY_SECRET, body),
    ]
    client = Client()
    for headers, data in [
        (good, body),
        (good, body + b" "),
        (signed_headers(body, secret=KEY_SECRET, event_id="evt_secret_2"), body),
        ({**good, "HTTP_X_RAZORPAY_SIGNATURE": "\u00e9" * 64}, body),
    ]:
        response = client.post(
            "/api/payments/webhooks/razorpay/",
            data=data,
            content_type="application/json",
            **headers,
        )
        evidence.texts.append(response.content.decode())

    # Admin pages for every paygate model registered in the admin.
    for model, _model_admin in admin.site._registry.items():
        if model._meta.app_label != "paygate" and model is not get_payment_model():
            continue
        info = (model._meta.app_label, model._meta.model_name)
        evidence.texts.append(admin_client.get(f"/admin/{info[0]}/{info[1]}/").content.decode())
        for row in model.objects.all()[:5]:
            page = admin_client.get(f"/admin/{info[0]}/{info[1]}/{row.pk}/change/")
            evidence.texts.append(page.content.decode())

    evidence.texts += stored_rows()
    evidence.texts.append(caplog.text)
    evidence.texts += [record.getMessage() for record in caplog.records]
    out = capsys.readouterr()
    evidence.texts += [out.out, out.err]
    assert out.out == ""
    assert any("Razorpay POST /v1/orders answered 200" in r.getMessage() for r in caplog.records)
    evidence.assert_clean()


class _Answer502(http.server.BaseHTTPRequestHandler):
    seen_auth: list[str] = []

    def do_GET(self) -> None:
        self.seen_auth.append(self.headers.get("Authorization", ""))
        body = b"<html><body>502 Bad Gateway</body></html>"
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def proxy_502() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer502)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_real_http_debug_logs_carry_no_credentials(
    settings: Any, proxy_502: str, caplog: Any, capsys: Any
) -> None:
    """Over a real socket (urllib3's own DEBUG logging included)."""
    settings.PAYGATE = paygate_setting(api_base=proxy_502)
    caplog.set_level(logging.DEBUG)
    _Answer502.seen_auth.clear()
    evidence = Evidence()
    evidence.attempt(services.create_payment, amount=49900, currency="INR", provider="razorpay")
    assert _Answer502.seen_auth == [f"Basic {BASIC_AUTH}"]  # sent, as Razorpay wants it
    assert any("urllib3" in r.name for r in caplog.records)
    evidence.texts += [caplog.text, capsys.readouterr().out]
    evidence.assert_clean()


def test_checkout_refusals_do_not_echo_what_was_posted(fake: FakeRazorpay) -> None:
    payment = services.create_payment(amount=49900, currency="INR", provider="razorpay")
    signature = checkout_signature(payment.provider_payment_id, "pay_Unknown000001", WEBHOOK_SECRET)
    evidence = Evidence()
    evidence.signatures.append(signature)
    evidence.attempt(
        services.confirm_payment,
        payment,
        razorpay_order_id=payment.provider_payment_id,
        razorpay_payment_id="pay_Unknown000001",
        razorpay_signature=signature,
    )
    evidence.assert_clean()
