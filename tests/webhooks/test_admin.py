"""The admin: read-only money rows, filters, search, the sync and replay actions, no secrets."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.db import connection
from django.urls import reverse

from django_paygate import services, webhooks
from django_paygate.admin import PaymentAdmin, WebhookEventAdmin
from django_paygate.models import (
    Dispute,
    Notification,
    PaymentEvent,
    Refund,
    WebhookEvent,
    get_payment_model,
)
from django_paygate.providers.dummy import CARD_SUCCEEDS, SIGNATURE_HEADER, DummyProvider
from django_paygate.signals import payment_status_changed
from tests.factories import PaymentFactory, RefundFactory, UserFactory
from tests.webhooks.events import payment_event

pytestmark = pytest.mark.django_db


def _url(model: Any, view: str, *args: Any) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


@pytest.fixture
def staff(client: Any) -> Any:
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def _ids(response: Any) -> set[Any]:
    return {obj.pk for obj in response.context["cl"].result_list}


def test_payment_model_in_use_is_registered():
    assert isinstance(admin.site._registry[get_payment_model()], PaymentAdmin)
    assert isinstance(admin.site._registry[WebhookEvent], WebhookEventAdmin)


@pytest.mark.parametrize(
    "model",
    [None, Refund, Dispute, PaymentEvent, WebhookEvent, Notification],
)
def test_changelists_render_and_nothing_can_be_added(staff, model):
    model = model or get_payment_model()
    assert staff.get(_url(model, "changelist")).status_code == 200
    assert staff.get(_url(model, "add")).status_code == 403


def test_payment_is_read_only(staff):
    payment = PaymentFactory(status="succeeded", amount=1999)
    RefundFactory(payment=payment, amount=499, provider_refund_id="re_visible")
    PaymentEvent.objects.create(
        payment=payment,
        from_status="pending",
        to_status="succeeded",
        source="webhook",
        note="seen in the inline",
    )
    url = _url(get_payment_model(), "change", payment.pk)

    page = staff.get(url)

    assert page.status_code == 200
    html = page.content.decode()
    assert "$19.99" in html
    assert "re_visible" in html
    assert "seen in the inline" in html
    for field in ("amount", "status", "amount_captured", "amount_refunded", "currency"):
        assert f'name="{field}"' not in html
    assert 'name="_save"' not in html
    assert staff.post(url, {"amount": 1, "status": "refunded"}).status_code == 403
    assert (
        staff.post(_url(get_payment_model(), "delete", payment.pk), {"post": "yes"}).status_code
        == 403
    )
    payment.refresh_from_db()
    assert (payment.amount, payment.status) == (1999, "succeeded")


def test_refund_is_read_only(staff):
    refund = RefundFactory()
    url = _url(Refund, "change", refund.pk)
    assert staff.get(url).status_code == 200
    assert staff.post(url, {"amount": 1}).status_code == 403
    refund.refresh_from_db()
    assert refund.amount == 100


def test_payment_filters(staff):
    usd = PaymentFactory(status="succeeded", currency="USD")
    eur = PaymentFactory(status="pending", currency="EUR", provider="other", needs_review=True)
    url = _url(get_payment_model(), "changelist")
    assert _ids(staff.get(url, {"status": "succeeded"})) == {usd.pk}
    assert _ids(staff.get(url, {"provider": "other"})) == {eur.pk}
    assert _ids(staff.get(url, {"needs_review__exact": "1"})) == {eur.pk}
    assert _ids(staff.get(url, {"currency": "USD"})) == {usd.pk}


def test_payment_search_by_id_provider_id_or_email(staff):
    target = PaymentFactory(provider_payment_id="dummy_findme", email="alice@example.com")
    PaymentFactory(email="bob@example.com")
    url = _url(get_payment_model(), "changelist")
    assert _ids(staff.get(url, {"q": str(target.pk)})) == {target.pk}
    assert _ids(staff.get(url, {"q": "dummy_findme"})) == {target.pk}
    assert _ids(staff.get(url, {"q": "alice@"})) == {target.pk}
    assert _ids(staff.get(url, {"q": "not-a-uuid-nor-anything"})) == set()


def test_provider_references_shown_but_secrets_masked(staff):
    payment = PaymentFactory(
        provider_data={"charge": "ch_visible", "client_secret": "pi_1_secret_hidden"}
    )
    html = staff.get(_url(get_payment_model(), "change", payment.pk)).content.decode()
    assert "ch_visible" in html
    assert "pi_1_secret_hidden" not in html


def test_sync_action_calls_the_service(staff, dummy):
    payment = services.create_payment(amount=1500, currency="USD")
    # The customer paid at the provider; the webhook never came.
    dummy.confirm_payment(
        payment, idempotency_key="confirm-at-provider", payment_method=CARD_SUCCEEDS
    )
    assert get_payment_model().objects.get(pk=payment.pk).status == "pending"

    response = staff.post(
        _url(get_payment_model(), "changelist"),
        {"action": "sync_from_provider", ACTION_CHECKBOX_NAME: [str(payment.pk)]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Synced 1 payment(s)" in response.content.decode()
    payment = get_payment_model().objects.get(pk=payment.pk)
    assert (payment.status, payment.amount_captured) == ("succeeded", 1500)
    event = PaymentEvent.objects.get(payment=payment, to_status="succeeded")
    assert (event.source, event.user) == ("admin", response.wsgi_request.user)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("atomic_requests", [False, True])
def test_sync_action_calls_the_provider_outside_any_transaction(
    staff, dummy, monkeypatch, atomic_requests
):
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", atomic_requests)
    payment = services.create_payment(amount=1500, currency="USD")
    dummy.confirm_payment(payment, idempotency_key="at-provider", payment_method=CARD_SUCCEEDS)
    in_transaction: list[bool] = []
    fetch = DummyProvider.fetch_payment

    def spy(self: Any, payment: Any) -> Any:
        in_transaction.append(connection.in_atomic_block)
        return fetch(self, payment)

    monkeypatch.setattr(DummyProvider, "fetch_payment", spy)
    response = staff.post(
        _url(get_payment_model(), "changelist"),
        {"action": "sync_from_provider", ACTION_CHECKBOX_NAME: [str(payment.pk)]},
    )
    assert response.status_code == 302
    assert in_transaction == [False]
    assert get_payment_model().objects.get(pk=payment.pk).status == "succeeded"


def test_sync_action_reports_errors(staff):
    payment = PaymentFactory(provider="gone")
    response = staff.post(
        _url(get_payment_model(), "changelist"),
        {"action": "sync_from_provider", ACTION_CHECKBOX_NAME: [str(payment.pk)]},
        follow=True,
    )
    assert "gone" in response.content.decode()


def test_actions_need_their_permission(client):
    user = UserFactory(is_staff=True)
    payment_opts = get_payment_model()._meta
    user.user_permissions.add(
        Permission.objects.get(
            content_type__app_label=payment_opts.app_label,
            codename=f"view_{payment_opts.model_name}",
        ),
        Permission.objects.get(content_type__app_label="paygate", codename="view_webhookevent"),
    )
    client.force_login(user)
    PaymentFactory()
    payments = client.get(_url(get_payment_model(), "changelist"))
    assert payments.status_code == 200
    assert "sync_from_provider" not in payments.content.decode()
    events = client.get(_url(WebhookEvent, "changelist"))
    assert events.status_code == 200
    assert 'value="replay"' not in events.content.decode()


def test_webhook_event_filters_and_search(staff):
    a = WebhookEvent.objects.create(
        provider="dummy",
        event_id="evt_alpha",
        type="payment.succeeded",
        payload="{}",
        status="failed",
    )
    b = WebhookEvent.objects.create(
        provider="stripe",
        event_id="evt_beta",
        type="charge.refunded",
        payload="{}",
        status="processed",
    )
    url = _url(WebhookEvent, "changelist")
    assert _ids(staff.get(url, {"provider": "stripe"})) == {b.pk}
    assert _ids(staff.get(url, {"status": "failed"})) == {a.pk}
    assert _ids(staff.get(url, {"type": "charge.refunded"})) == {b.pk}
    assert _ids(staff.get(url, {"q": "evt_alpha"})) == {a.pk}


def test_webhook_event_page_shows_payload_never_signatures(staff, dummy, client):
    payment = PaymentFactory(status="pending")
    body, headers = payment_event(dummy, payment, "succeeded")
    result = webhooks.receive_webhook("dummy", body, {**headers, "User-Agent": "Dummy/2"})
    row = WebhookEvent.objects.get(pk=result.event_id)
    # A row written by an older version, or by hand, with a signature in it.
    WebhookEvent.objects.filter(pk=row.pk).update(
        headers={**row.headers, SIGNATURE_HEADER.lower(): headers[SIGNATURE_HEADER]}
    )
    html = staff.get(_url(WebhookEvent, "change", row.pk)).content.decode()
    assert row.event_id in html
    assert "Dummy/2" in html
    assert payment.provider_payment_id in html  # the payload
    assert headers[SIGNATURE_HEADER].split("v1=")[1] not in html
    assert (
        staff.post(_url(WebhookEvent, "change", row.pk), {"status": "processed"}).status_code == 403
    )


def test_replay_action_calls_the_pipeline(staff, dummy):
    def boom(**kwargs: Any) -> None:
        raise RuntimeError("down")

    payment = PaymentFactory(status="pending")
    body, headers = payment_event(dummy, payment, "succeeded")
    payment_status_changed.connect(boom, weak=False)
    try:
        assert webhooks.receive_webhook("dummy", body, headers).status_code == 500
    finally:
        payment_status_changed.disconnect(boom)
    row = WebhookEvent.objects.get()

    response = staff.post(
        _url(WebhookEvent, "changelist"),
        {"action": "replay", ACTION_CHECKBOX_NAME: [str(row.pk)]},
        follow=True,
    )

    assert "1 event(s) replayed: 1 processed." in response.content.decode()
    row.refresh_from_db()
    assert (row.status, row.attempts) == (WebhookEvent.Status.PROCESSED, 2)
    assert get_payment_model().objects.get(pk=payment.pk).status == "succeeded"
