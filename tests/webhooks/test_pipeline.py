"""What the pipeline stores and changes for each kind of delivery."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from django_paygate import webhooks
from django_paygate.models import PaymentEvent, WebhookEvent, get_payment_model
from django_paygate.providers.base import ProviderEvent
from django_paygate.providers.dummy import DEFAULT_WEBHOOK_SECRET, SIGNATURE_HEADER
from django_paygate.signals import payment_status_changed
from tests.factories import PaymentFactory
from tests.webhooks.events import new_id, payment_event, post

pytestmark = pytest.mark.django_db


def _reload(payment: Any) -> Any:
    return get_payment_model().objects.get(pk=payment.pk)


def test_first_delivery_applies_and_records(
    client, dummy, signal_spy, django_capture_on_commit_callbacks
):
    payment = PaymentFactory(status="processing")
    delivery = payment_event(dummy, payment, "succeeded")
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, delivery, HTTP_USER_AGENT="Dummy/1.0")
    assert response.status_code == 200
    assert response.json() == {"status": "Event processed."}
    payment = _reload(payment)
    assert payment.status == "succeeded"
    assert payment.amount_captured == payment.amount
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.PROCESSED
    assert row.type == "payment.succeeded"
    assert row.payment_id == payment.pk
    assert row.attempts == 1
    assert row.processed_at is not None
    assert json.loads(row.payload)["id"] == row.event_id
    assert row.headers == {"user-agent": "Dummy/1.0", "content-type": "application/json"}
    change = PaymentEvent.objects.get(payment=payment, to_status="succeeded")
    assert change.webhook_event_id == row.pk
    assert change.source == "webhook"
    assert signal_spy.count("payment_succeeded") == 1
    assert signal_spy.count("payment_status_changed") == 1


def test_duplicate_is_answered_200_and_does_nothing(
    client, dummy, signal_spy, django_capture_on_commit_callbacks
):
    payment = PaymentFactory(status="pending")
    delivery = payment_event(dummy, payment, "succeeded")
    with django_capture_on_commit_callbacks(execute=True):
        first = post(client, delivery)
        second = post(client, delivery)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == {"status": "Duplicate event."}
    assert WebhookEvent.objects.get().attempts == 1
    assert PaymentEvent.objects.filter(payment=payment, to_status="succeeded").count() == 1
    assert signal_spy.count("payment_succeeded") == 1


def test_unmapped_type_is_stored_ignored(client, dummy):
    payment = PaymentFactory(status="pending")
    body, headers = dummy.build_event("customer.created", {"payment_id": str(payment.pk)})
    response = post(client, (body, headers))
    assert response.status_code == 200
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.IGNORED
    assert row.error == "event type not handled"
    assert row.payment_id is None
    assert _reload(payment).status == "pending"


def test_unknown_status_in_known_kind_is_ignored(client, dummy):
    payment = PaymentFactory(status="pending")
    body, headers = dummy.build_event(
        "payment.teleported",
        {
            "payment": {"id": payment.provider_payment_id, "amount": 1000},
            "payment_id": str(payment.pk),
        },
    )
    assert post(client, (body, headers)).status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.IGNORED
    assert _reload(payment).status == "pending"


def test_unknown_payment_is_stored_ignored(client, dummy):
    stranger = get_payment_model()(
        pk="00000000-0000-4000-8000-000000000000",
        amount=500,
        currency="USD",
        provider_payment_id="dummy_not_ours",
    )
    response = post(client, payment_event(dummy, stranger, "succeeded"))
    assert response.status_code == 200
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.IGNORED
    assert row.error == "no matching payment"
    assert not get_payment_model().objects.exists()


def test_payment_of_another_provider_alias_is_not_touched(client, dummy):
    payment = PaymentFactory(status="pending", provider="other")
    assert post(client, payment_event(dummy, payment, "succeeded")).status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.IGNORED
    assert _reload(payment).status == "pending"


def test_payment_found_by_our_id_before_provider_id_is_stored(client, dummy):
    payment = PaymentFactory(status="pending", provider_payment_id=None)
    delivery = payment_event(dummy, payment, "succeeded", provider_payment_id="dummy_late_id")
    response = post(client, delivery)
    assert response.status_code == 200
    payment = _reload(payment)
    assert payment.status == "succeeded"
    assert payment.provider_payment_id == "dummy_late_id"
    assert WebhookEvent.objects.get().payment_id == payment.pk


@pytest.mark.parametrize(("amount", "currency"), [(999, None), (None, "EUR")])
def test_amount_or_currency_mismatch_flags_review(
    client, dummy, signal_spy, amount, currency, django_capture_on_commit_callbacks
):
    payment = PaymentFactory(status="pending", amount=1000, currency="USD")
    delivery = payment_event(dummy, payment, "succeeded", amount=amount, currency=currency)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, delivery)
    assert response.status_code == 200
    payment = _reload(payment)
    assert payment.status == "pending"
    assert payment.amount_captured == 0
    assert payment.needs_review is True
    assert "differs" in payment.review_reason
    assert payment.review_code == "amount_mismatch"
    assert signal_spy.count("payment_succeeded") == 0
    assert signal_spy.count("payment_needs_review") == 1
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED


@pytest.fixture
def failing_receiver() -> Any:
    class Boom(RuntimeError):
        pass

    def receiver(**kwargs: Any) -> None:
        raise Boom("the order service is down")

    payment_status_changed.connect(receiver, weak=False)
    yield receiver
    payment_status_changed.disconnect(receiver)


def test_processing_error_is_stored_failed_then_redelivery_processes(
    client, dummy, failing_receiver, signal_spy, django_capture_on_commit_callbacks
):
    payment = PaymentFactory(status="pending")
    delivery = payment_event(dummy, payment, "succeeded")
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, delivery)
    assert response.status_code == 500
    assert response.json() == {"status": "Event processing failed."}
    row = WebhookEvent.objects.get()
    assert row.status == WebhookEvent.Status.FAILED
    assert row.error == "Boom: the order service is down"
    assert row.attempts == 1
    assert _reload(payment).status == "pending"
    assert not PaymentEvent.objects.filter(payment=payment).exists()
    assert signal_spy.count("payment_succeeded") == 0

    payment_status_changed.disconnect(failing_receiver)  # the cause is fixed
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, delivery)  # the provider retries the same delivery
    assert response.status_code == 200
    row.refresh_from_db()
    assert row.status == WebhookEvent.Status.PROCESSED
    assert row.attempts == 2
    assert row.error == ""
    assert _reload(payment).status == "succeeded"
    assert signal_spy.count("payment_succeeded") == 1


def test_second_failure_counts_attempts(client, dummy, failing_receiver):
    payment = PaymentFactory(status="pending")
    delivery = payment_event(dummy, payment, "succeeded")
    assert post(client, delivery).status_code == 500
    assert post(client, delivery).status_code == 500
    row = WebhookEvent.objects.get()
    assert (row.status, row.attempts) == (WebhookEvent.Status.FAILED, 2)


def test_rejected_delivery_logs_no_secret_signature_or_body(client, dummy, caplog):
    payment = PaymentFactory(status="pending")
    body, headers = payment_event(dummy, payment, "succeeded")
    tampered = body.replace(b'"succeeded"', b'"refunded!"')
    with caplog.at_level(logging.DEBUG, logger="django_paygate"):
        response = post(client, (tampered, headers))
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()
    text = caplog.text
    assert "Rejected dummy webhook" in text
    assert headers[SIGNATURE_HEADER].split("v1=")[1] not in text
    assert DEFAULT_WEBHOOK_SECRET not in text
    assert payment.provider_payment_id not in text
    assert str(payment.pk) not in text


def test_signature_header_is_never_stored(client, dummy, monkeypatch):
    monkeypatch.setattr(
        type(dummy),
        "webhook_headers_to_keep",
        ("user-agent", SIGNATURE_HEADER.lower(), "authorization", "x-request-id"),
    )
    payment = PaymentFactory(status="pending")
    post(
        client,
        payment_event(dummy, payment, "succeeded"),
        HTTP_AUTHORIZATION="Bearer x",
        HTTP_X_REQUEST_ID="req-1",
    )
    headers = WebhookEvent.objects.get().headers
    assert headers == {"x-request-id": "req-1"}


@pytest.mark.parametrize("bad_id", ["evt_\x00nul", "evt_\ud800"])
def test_an_unstorable_event_id_is_stored_escaped(dummy, bad_id):
    body, headers = dummy.build_event("customer.created", {}, event_id=bad_id)
    for outcome in (webhooks.IGNORED, webhooks.DUPLICATE):  # a retry is still the same event
        result = webhooks.receive_webhook("dummy", body, headers)
        assert (result.status_code, result.outcome) == (200, outcome)
    row = WebhookEvent.objects.get()
    assert row.event_id == webhooks.storable_text(bad_id)
    assert "\\u" in row.event_id
    assert row.payload == body.decode()


@pytest.mark.parametrize("bad", ["code\x00", "code\ud800"])
def test_unstorable_text_deep_in_the_event_is_stored_escaped_and_applied(dummy, bad):
    payment = PaymentFactory(status="pending")
    data = {
        "payment": {"id": payment.provider_payment_id, "status": "failed", "failure_code": bad},
        "payment_id": str(payment.pk),
    }
    body, headers = dummy.build_event("payment.failed", data, event_id=new_id())
    result = webhooks.receive_webhook("dummy", body, headers)
    assert (result.status_code, result.outcome) == (200, webhooks.PROCESSED)
    payment = _reload(payment)
    assert payment.status == "failed"
    assert payment.failure_code == webhooks.storable_text(bad)


def test_a_stored_event_with_unstorable_text_replays(dummy):
    payment = PaymentFactory(status="pending")
    data = {"payment": {"id": payment.provider_payment_id, "status": "succeeded"}}
    data["payment"]["description"] = "\x00\ud800"
    body, headers = dummy.build_event("payment.succeeded", data, event_id=new_id())
    assert webhooks.receive_webhook("dummy", body, headers).status_code == 200
    row = WebhookEvent.objects.get()
    assert webhooks.replay_event(row).status_code == 200
    assert _reload(payment).status == "succeeded"


@pytest.mark.parametrize("bad_id", ["", "x" * 256])
def test_event_id_must_fit_the_inbox(dummy, bad_id):
    event = ProviderEvent(event_id=bad_id, type="payment.succeeded")
    result = webhooks.process_event(dummy, event, "{}", {})
    assert result.status_code == 400
    assert not WebhookEvent.objects.exists()


def test_nul_in_kept_header_is_escaped(dummy):
    body, headers = dummy.build_event("customer.created", {}, event_id=new_id())
    result = webhooks.receive_webhook("dummy", body, {**headers, "User-Agent": "a\x00b"})
    assert result.status_code == 200
    assert WebhookEvent.objects.get().headers == {"user-agent": "a\\u0000b"}


def test_adapter_bug_on_hostile_input_is_a_400(dummy, monkeypatch):
    def explode(body: bytes, headers: Any) -> None:
        raise OverflowError("int too large to convert to float")

    monkeypatch.setattr(dummy, "verify_webhook", explode)
    body, headers = dummy.build_event("payment.succeeded", {})
    assert webhooks.receive_webhook("dummy", body, headers).status_code == 400


def test_replay_event_applies_a_failed_event(dummy, failing_receiver):
    payment = PaymentFactory(status="pending")
    body, headers = payment_event(dummy, payment, "succeeded")
    assert webhooks.receive_webhook("dummy", body, headers).status_code == 500
    payment_status_changed.disconnect(failing_receiver)
    result = webhooks.replay_event(WebhookEvent.objects.get())
    assert (result.status_code, result.outcome) == (200, webhooks.PROCESSED)
    assert _reload(payment).status == "succeeded"
    assert WebhookEvent.objects.get().attempts == 2


def test_replay_of_unknown_alias_is_reported(db):
    row = WebhookEvent.objects.create(
        provider="gone", event_id="evt_1", payload="{}", status=WebhookEvent.Status.FAILED
    )
    result = webhooks.replay_event(row)
    assert (result.status_code, result.outcome) == (404, webhooks.REJECTED)


def test_provider_redacts_the_stored_payload(dummy, monkeypatch):
    monkeypatch.setattr(
        type(dummy),
        "redact_webhook_payload",
        lambda self, payload: payload.replace("cs_live_secret", "[redacted]"),
    )
    body, headers = dummy.build_event("customer.created", {"client_secret": "cs_live_secret"})
    assert webhooks.receive_webhook("dummy", body, headers).status_code == 200
    stored = WebhookEvent.objects.get()
    assert "cs_live_secret" not in stored.payload
    assert json.loads(stored.payload)["data"]["client_secret"] == "[redacted]"


def test_failing_redaction_stores_nothing(dummy, monkeypatch):
    def broken(self: Any, payload: str) -> str:
        raise RuntimeError("bug")

    monkeypatch.setattr(type(dummy), "redact_webhook_payload", broken)
    body, headers = dummy.build_event("customer.created", {})
    assert webhooks.receive_webhook("dummy", body, headers).status_code == 400
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("stamp", ["²", "1" * 5000, "-5", "1e9", " "])
def test_dummy_refuses_odd_timestamps_itself(dummy, stamp):
    from django_paygate.exceptions import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        dummy.verify_webhook(b"{}", {"Paygate-Dummy-Signature": f"t={stamp},v1=00"})
