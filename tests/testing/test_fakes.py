"""The dummy-provider helpers host projects use in their tests."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from django_paygate import services
from django_paygate.exceptions import PaymentDeclined, ProviderUnavailable
from django_paygate.models import WebhookEvent
from django_paygate.providers import get_provider
from django_paygate.testing import fakes
from django_paygate.testing.fakes import (
    CARD_DECLINED,
    CARD_REQUIRES_ACTION,
    deliver_pending_events,
    find_dummy_provider,
    make_authorized_payment,
    make_payment,
    make_succeeded_payment,
    pay,
)

DUMMY = "django_paygate.providers.dummy.DummyProvider"

pytestmark = pytest.mark.django_db(transaction=True)


def test_cards_are_the_dummy_providers():
    from django_paygate.providers import dummy

    assert (fakes.CARD_SUCCEEDS, fakes.CARD_DECLINED, fakes.CARD_REQUIRES_ACTION) == (
        dummy.CARD_SUCCEEDS,
        dummy.CARD_DECLINED,
        dummy.CARD_REQUIRES_ACTION,
    )


def test_make_succeeded_payment(paygate_dummy, paygate_signals):
    payment = make_succeeded_payment(amount=1999, currency="USD", email="a@example.com")
    assert payment.status == "succeeded"
    assert payment.amount_captured == 1999
    assert payment.email == "a@example.com"
    assert payment.provider == "dummy"
    assert paygate_signals.count("payment_succeeded") == 1
    assert paygate_signals.last("payment_succeeded").payment.pk == payment.pk
    assert [m for m, _ in paygate_dummy.calls] == ["create_payment", "confirm_payment"]


def test_make_authorized_payment_then_capture(paygate_dummy, paygate_signals):
    payment = make_authorized_payment(amount=700)
    assert payment.status == "authorized"
    assert payment.amount_captured == 0
    assert paygate_signals.count("payment_authorized") == 1
    payment = services.capture_payment(payment)
    assert payment.status == "succeeded"


def test_pay_declined_and_requires_action(paygate_dummy):
    payment = make_payment(amount=500)
    with pytest.raises(PaymentDeclined):
        pay(payment, CARD_DECLINED)
    payment = pay(payment, CARD_REQUIRES_ACTION)
    assert payment.status == "requires_action"
    assert pay(payment).status == "succeeded"


def test_deliver_pending_events(client, paygate_dummy, paygate_signals):
    payment = make_succeeded_payment()
    services.refund_payment(payment, amount=400)
    assert len(paygate_dummy.sent_events) == 2

    responses = deliver_pending_events(client, paygate_dummy)

    assert [r.status_code for r in responses] == [200, 200]
    assert paygate_dummy.sent_events == []
    types = list(WebhookEvent.objects.order_by("id").values_list("type", "status"))
    assert types == [("payment.succeeded", "processed"), ("refund.succeeded", "processed")]
    # The services already applied both changes: the webhooks change nothing more.
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 400)
    assert paygate_signals.count("payment_succeeded") == 1
    assert paygate_signals.count("refund_succeeded") == 1
    assert deliver_pending_events(client) == []


def test_deliver_pending_events_reports_a_refused_delivery(client, paygate_dummy):
    make_succeeded_payment()
    body, headers = paygate_dummy.sent_events[0]
    event = json.loads(body)
    event["data"]["payment"]["amount"] = 1
    paygate_dummy.sent_events[0] = (json.dumps(event).encode(), headers)

    with pytest.raises(AssertionError, match="answered 400"):
        deliver_pending_events(client, paygate_dummy)


def test_deliver_pending_events_without_check_returns_failures(client, paygate_dummy):
    make_succeeded_payment()
    body, headers = paygate_dummy.sent_events[0]
    paygate_dummy.sent_events[0] = (body + b" ", headers)
    [response] = deliver_pending_events(client, paygate_dummy, check=False)
    assert response.status_code == 400


def test_find_dummy_provider_under_any_alias():
    providers = {
        "base": {"BACKEND": "django_paygate.providers.base.BaseProvider"},
        "fake": {"BACKEND": DUMMY, "OPTIONS": {"webhook_secret": "s3"}},
    }
    with override_settings(PAYGATE={"DEFAULT_PROVIDER": "base", "PROVIDERS": providers}):
        assert find_dummy_provider().alias == "fake"
        payment = make_succeeded_payment(amount=300)
        assert payment.provider == "fake"
        with pytest.raises(LookupError, match="not a DummyProvider"):
            find_dummy_provider("base")


def test_find_dummy_provider_when_none_is_configured():
    base = {"base": {"BACKEND": "django_paygate.providers.base.BaseProvider"}}
    with (
        override_settings(PAYGATE={"PROVIDERS": base}),
        pytest.raises(LookupError, match="No DummyProvider"),
    ):
        find_dummy_provider()


def test_paygate_dummy_stays_the_services_provider_when_other_settings_change(
    paygate_dummy, settings
):
    settings.PAYGATE = {**settings.PAYGATE, "EMAILS": {"SITE_NAME": "Shop"}}
    paygate_dummy.fail_next("confirm_payment")
    with pytest.raises(ProviderUnavailable):
        pay(make_payment())
    assert get_provider("dummy") is paygate_dummy


def test_a_changed_provider_entry_builds_a_new_provider(paygate_dummy, settings):
    providers = settings.PAYGATE["PROVIDERS"]
    entry = {**providers["dummy"], "OPTIONS": {"webhook_secret": "another-secret"}}
    settings.PAYGATE = {**settings.PAYGATE, "PROVIDERS": {**providers, "dummy": entry}}
    assert get_provider("dummy") is not paygate_dummy
    assert get_provider("dummy").webhook_secrets() == ["another-secret"]
