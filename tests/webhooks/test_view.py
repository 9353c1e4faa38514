"""The HTTP answers of ``POST webhooks/<alias>/`` and ``GET webhooks/health/``."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from django_paygate.models import WebhookEvent, get_payment_model
from django_paygate.providers.dummy import SIGNATURE_HEADER
from django_paygate.views.webhooks import webhook_view
from tests.factories import PaymentFactory, UserFactory
from tests.webhooks.events import new_id, payment_event, post, url

pytestmark = pytest.mark.django_db

SMALL_CAP = {
    "DEFAULT_PROVIDER": "dummy",
    "PROVIDERS": {"dummy": {"BACKEND": "django_paygate.providers.dummy.DummyProvider"}},
    "WEBHOOK_MAX_BODY_SIZE": 2000,
}


def _nothing_stored(payment: Any) -> None:
    assert not WebhookEvent.objects.exists()
    assert get_payment_model().objects.get(pk=payment.pk).status == "pending"


@pytest.fixture
def payment() -> Any:
    return PaymentFactory(status="pending")


def test_valid_delivery_is_200(client, dummy, payment):
    assert post(client, payment_event(dummy, payment, "succeeded")).status_code == 200


def test_bad_signature_is_400(client, dummy, payment):
    body, _ = payment_event(dummy, payment, "succeeded")
    headers = {SIGNATURE_HEADER: dummy.sign(body, secret="not-the-secret")}
    response = post(client, (body, headers))
    assert response.status_code == 400
    assert response.json() == {"status": "Invalid webhook."}
    _nothing_stored(payment)


def test_tampered_body_is_400(client, dummy, payment):
    body, headers = payment_event(dummy, payment, "succeeded")
    assert post(client, (body.replace(b"1000", b"9999"), headers)).status_code == 400
    _nothing_stored(payment)


def test_missing_signature_is_400(client, dummy, payment):
    body, _ = payment_event(dummy, payment, "succeeded")
    assert post(client, (body, {})).status_code == 400
    _nothing_stored(payment)


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        "t=,v1=",
        "v1=abc",
        "t=12,t=13,v1=00",
        "t=notanumber,v1=00",
        "t=\u00b2,v1=00",
        ",,,==",
        "t=" + "9" * 400 + ",v1=00",
        "t=" + "9" * 5000 + ",v1=00",
    ],
)
def test_malformed_signature_header_is_400(client, dummy, payment, header):
    body, _ = payment_event(dummy, payment, "succeeded")
    assert post(client, (body, {SIGNATURE_HEADER: header})).status_code == 400
    _nothing_stored(payment)


def test_expired_timestamp_is_400(client, dummy, payment):
    body, _ = payment_event(dummy, payment, "succeeded")
    headers = {SIGNATURE_HEADER: dummy.sign(body, timestamp=int(time.time()) - 3600)}
    assert post(client, (body, headers)).status_code == 400
    _nothing_stored(payment)


def test_invalid_utf8_is_400_even_when_signed(client, dummy, payment):
    body = b'{"id": "evt_\xff\xfe", "type": "payment.succeeded", "data": {}}'
    assert post(client, (body, {SIGNATURE_HEADER: dummy.sign(body)})).status_code == 400
    _nothing_stored(payment)


@pytest.mark.parametrize(
    "body", [b"{not json", b"[]", b'"text"', b'{"type": "payment.succeeded"}', b""]
)
def test_invalid_json_or_event_is_400_even_when_signed(client, dummy, payment, body):
    assert post(client, (body, {SIGNATURE_HEADER: dummy.sign(body)})).status_code == 400
    _nothing_stored(payment)


def test_unknown_alias_is_404(client, dummy, payment):
    response = post(client, payment_event(dummy, payment, "succeeded"), alias="nope")
    assert response.status_code == 404
    _nothing_stored(payment)


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_other_methods_are_405(client, method):
    assert getattr(client, method)(url()).status_code == 405


def test_head_is_405(client):
    assert client.head(url()).status_code == 405


@override_settings(PAYGATE=SMALL_CAP)
def test_body_over_the_cap_is_413(client, dummy, payment):
    body, headers = dummy.build_event("payment.succeeded", {"pad": "x" * 2000})
    response = post(client, (body, headers))
    assert response.status_code == 413
    assert response.json() == {"status": "Payload too large."}
    _nothing_stored(payment)


@override_settings(PAYGATE=SMALL_CAP)
def test_body_at_the_cap_is_accepted(client, dummy, payment):
    body, _ = dummy.build_event("customer.created", {"pad": ""}, event_id=new_id())
    padded = body.replace(b'"pad":""', b'"pad":"' + b"x" * (2000 - len(body)) + b'"')
    assert len(padded) == 2000
    response = post(client, (padded, {SIGNATURE_HEADER: dummy.sign(padded)}))
    assert response.status_code == 200


def test_default_cap_is_one_mebibyte(client, dummy, payment):
    body = b" " * (1024 * 1024 + 1)
    assert post(client, (body, {SIGNATURE_HEADER: dummy.sign(body)})).status_code == 413


@override_settings(PAYGATE=SMALL_CAP)
def test_declared_length_over_the_cap_is_413_before_reading(client):
    class Unreadable(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise AssertionError("the body must not be read")

    response = client.post(
        url(),
        data=b"{}",
        content_type="application/json",
        CONTENT_LENGTH="5000",
        **{"wsgi.input": Unreadable()},
    )
    assert response.status_code == 413


@override_settings(PAYGATE=SMALL_CAP)
@pytest.mark.parametrize("declared", ["10", "", "-1", "many"])
def test_understated_or_absent_length_cannot_smuggle_a_large_body(client, dummy, payment, declared):
    # A server that delimits the body itself (gunicorn; chunked requests) says so
    # with wsgi.input_terminated: the cap then counts the bytes really sent.
    body, headers = dummy.build_event("payment.succeeded", {"pad": "x" * 5000})
    response = client.post(
        url(),
        data=body,
        content_type="application/json",
        headers=headers,
        CONTENT_LENGTH=declared,
        **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    _nothing_stored(payment)


def test_chunked_body_without_length_is_read_when_the_server_delimits_it(client, dummy, payment):
    body, headers = payment_event(dummy, payment, "succeeded")
    response = client.post(
        url(),
        data=body,
        content_type="application/json",
        headers=headers,
        CONTENT_LENGTH="",
        **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True},
    )
    assert response.status_code == 200
    assert get_payment_model().objects.get(pk=payment.pk).status == "succeeded"


def test_absent_length_without_a_delimiting_server_means_no_body(client, dummy, payment):
    body, headers = payment_event(dummy, payment, "succeeded")
    response = client.post(
        url(),
        data=body,
        content_type="application/json",
        headers=headers,
        CONTENT_LENGTH="",
        **{"wsgi.input": io.BytesIO(body)},
    )
    assert response.status_code == 400
    _nothing_stored(payment)


def test_allowed_ips_are_enforced(settings, client, dummy, payment):
    settings.PAYGATE = {
        **settings.PAYGATE,
        "PROVIDERS": {
            "dummy": {
                "BACKEND": "django_paygate.providers.dummy.DummyProvider",
                "WEBHOOK_ALLOWED_IPS": ["10.0.0.0/8"],
            }
        },
    }
    delivery = payment_event(dummy, payment, "succeeded")
    response = post(client, delivery, REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 403
    _nothing_stored(payment)
    assert post(client, delivery, REMOTE_ADDR="10.1.2.3").status_code == 200


def test_csrf_does_not_apply(dummy, payment):
    client = Client(enforce_csrf_checks=True)
    assert post(client, payment_event(dummy, payment, "succeeded")).status_code == 200


def test_login_required_middleware_does_not_apply(settings, client, dummy, payment):
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    assert post(client, payment_event(dummy, payment, "succeeded")).status_code == 200
    assert client.get(reverse("paygate:webhook_health")).status_code == 200


def test_webhook_view_is_not_wrapped_in_atomic_requests():
    assert "default" in webhook_view._non_atomic_requests  # type: ignore[attr-defined]


def test_options_is_allowed(client):
    response = client.options(url())
    assert response.status_code == 200
    assert "POST" in response["Allow"]


# -- health ---------------------------------------------------------------------


def _health(client: Client) -> Any:
    return client.get(reverse("paygate:webhook_health"))


def test_health_public(client, dummy):
    WebhookEvent.objects.create(provider="dummy", event_id="e1", payload="{}", status="failed")
    response = _health(client)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True}
    assert response["Cache-Control"] == "no-store"


def test_health_non_staff_user_sees_public_answer(client):
    client.force_login(UserFactory())
    assert _health(client).json() == {"status": "ok", "database": True}


def test_health_staff_sees_last_event_and_failed_counts(client):
    WebhookEvent.objects.create(provider="dummy", event_id="e1", payload="{}", status="processed")
    WebhookEvent.objects.create(provider="dummy", event_id="e2", payload="{}", status="failed")
    WebhookEvent.objects.create(provider="dummy", event_id="e3", payload="{}", status="failed")
    WebhookEvent.objects.create(provider="retired", event_id="e1", payload="{}", status="ignored")
    last = WebhookEvent.objects.filter(provider="dummy").order_by("-received_at").first()
    client.force_login(UserFactory(is_staff=True))
    body = _health(client).json()
    assert body["status"] == "ok"
    assert body["database"] is True
    assert body["failed_events"] == 2
    assert body["providers"]["dummy"] == {
        "last_event_at": last.received_at.isoformat(),
        "failed_events": 2,
    }
    assert body["providers"]["retired"]["failed_events"] == 0


def test_health_staff_with_no_events(client):
    client.force_login(UserFactory(is_staff=True))
    body = _health(client).json()
    assert body["providers"] == {"dummy": {"last_event_at": None, "failed_events": 0}}


def test_health_post_is_405(client):
    assert client.post(reverse("paygate:webhook_health")).status_code == 405


def test_health_reports_an_unreachable_database(client, monkeypatch):
    from django.db import connection

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database down")

    monkeypatch.setattr(connection, "cursor", broken)
    response = _health(client)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": False}
