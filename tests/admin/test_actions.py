"""Staff act from the admin through the services: refund, capture, cancel, sync, requeue."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission

from django_paygate.models import Notification, PaymentEvent, Refund, get_payment_model
from tests.admin.conftest import admin_url, authorized, captured, payment_url, staff_with
from tests.factories import PaymentFactory, UserFactory

pytestmark = pytest.mark.django_db


def _reload(payment: Any) -> Any:
    return get_payment_model().objects.get(pk=payment.pk)


def _messages(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _refund_post(client: Any, payment: Any, amount: str, *, key: Any = None, **extra: Any) -> Any:
    data = {"amount": amount, "reason": "damaged", "key": str(key or uuid.uuid4()), **extra}
    return client.post(payment_url("refund", payment.pk), data, follow=True)


# ---------------------------------------------------------------------------
# Refund
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [(1999, "USD", "19.99"), (1000, "JPY", "1000"), (1234, "KWD", "1.234")],
)
def test_refund_page_offers_what_is_left_in_major_units(console, amount, currency, shown):
    payment = captured(amount=amount, currency=currency, email="alice@example.com")
    page = console.get(payment_url("refund", payment.pk))
    assert page.status_code == 200
    form = page.context["form"]
    assert str(form["amount"].value()) == shown
    uuid.UUID(str(form["key"].value()))  # an idempotency key per form
    assert "alice@example.com" in page.content.decode()


def test_refund_asks_for_confirmation_naming_amount_and_customer(console):
    payment = captured(amount=5000, email="alice@example.com")

    page = _refund_post(console, payment, "12.50")

    html = page.content.decode()
    assert page.context["confirming"] is True
    assert "Refund <strong>$12.50</strong> to <strong>alice@example.com</strong>?" in html
    assert Refund.objects.count() == 0  # nothing yet


def test_confirmed_refund_calls_the_service_and_records_the_admin(console):
    payment = captured(amount=5000, email="alice@example.com")

    page = _refund_post(console, payment, "12.50", confirm="on")

    assert page.redirect_chain[-1][0] == payment_url("change", payment.pk)
    refund = Refund.objects.get()
    assert (refund.amount, refund.status, refund.source) == (1250, "succeeded", "admin")
    assert (refund.reason, refund.created_by) == ("damaged", console.user)
    assert _reload(payment).amount_refunded == 1250
    requested = PaymentEvent.objects.get(payment=payment, note__startswith="refund requested")
    assert (requested.source, requested.user) == ("admin", console.user)
    assert any("$12.50: succeeded" in m for m in _messages(page))


def test_partial_then_several_refunds_until_nothing_is_left(console):
    payment = captured(amount=3000)
    _refund_post(console, payment, "10.00", confirm="on")
    _refund_post(console, payment, "5.00", confirm="on")
    page = console.get(payment_url("refund", payment.pk))
    assert str(page.context["form"]["amount"].value()) == "15.00"
    _refund_post(console, payment, "15.00", confirm="on")
    assert _reload(payment).status == "refunded"
    assert sorted(Refund.objects.values_list("amount", flat=True)) == [500, 1000, 1500]


def test_refund_above_what_is_left_shows_the_services_message_and_changes_nothing(console):
    payment = captured(amount=1000)
    _refund_post(console, payment, "4.00", confirm="on")
    events = PaymentEvent.objects.count()

    page = _refund_post(console, payment, "7.00", confirm="on")

    assert page.status_code == 200
    assert "Cannot refund $7.00: $6.00 is left to refund." in _messages(page)
    assert Refund.objects.count() == 1
    assert _reload(payment).amount_refunded == 400
    assert PaymentEvent.objects.count() == events


def test_the_same_form_submitted_twice_refunds_once(console):
    payment = captured(amount=1000)
    key = uuid.uuid4()
    _refund_post(console, payment, "3.00", key=key, confirm="on")

    again = _refund_post(console, payment, "3.00", key=key, confirm="on")

    assert Refund.objects.count() == 1
    assert _reload(payment).amount_refunded == 300
    assert any("already submitted" in m for m in _messages(again))


def test_amount_with_too_many_decimals_is_a_form_error(console):
    payment = captured(amount=1000, currency="JPY")
    page = _refund_post(console, payment, "10.5", confirm="on")
    assert page.context["form"].errors["amount"]
    assert Refund.objects.count() == 0


def test_refund_needs_the_refund_permission(client):
    payment = captured()
    client.force_login(staff_with())
    assert client.get(payment_url("refund", payment.pk)).status_code == 403
    assert _refund_post(client, payment, "1.00", confirm="on").status_code == 403
    assert Refund.objects.count() == 0
    client.force_login(staff_with("refund_payment"))
    assert _refund_post(client, payment, "1.00", confirm="on").status_code == 200
    assert Refund.objects.count() == 1


def test_unknown_payment_is_404(console):
    assert console.get(payment_url("refund", uuid.uuid4())).status_code == 404


# ---------------------------------------------------------------------------
# Capture, cancel, sync
# ---------------------------------------------------------------------------


def test_full_capture(console):
    payment = authorized(amount=2500)
    page = console.get(payment_url("capture", payment.pk))
    assert str(page.context["form"]["amount"].value()) == "25.00"

    done = console.post(
        payment_url("capture", payment.pk),
        {"amount": "25.00", "key": str(uuid.uuid4())},
        follow=True,
    )

    payment = _reload(payment)
    assert (payment.status, payment.amount_captured) == ("succeeded", 2500)
    event = PaymentEvent.objects.get(payment=payment, to_status="succeeded")
    assert (event.source, event.user) == ("admin", console.user)
    assert "Captured $25.00: succeeded." in _messages(done)


def test_partial_capture(console):
    payment = authorized(amount=2500)
    console.post(payment_url("capture", payment.pk), {"amount": "10.00", "key": str(uuid.uuid4())})
    payment = _reload(payment)
    assert (payment.status, payment.amount_captured) == ("succeeded", 1000)


def test_capture_above_the_authorization_shows_the_services_message(console):
    payment = authorized(amount=2500)
    page = console.post(
        payment_url("capture", payment.pk), {"amount": "30.00", "key": str(uuid.uuid4())}
    )
    assert "Cannot capture 3000: only 2500 was authorized." in _messages(page)
    assert _reload(payment).status == "authorized"


def test_capture_of_a_captured_payment_is_refused_by_the_service(console):
    payment = captured()
    page = console.post(
        payment_url("capture", payment.pk), {"amount": "10.00", "key": str(uuid.uuid4())}
    )
    assert "Only an authorized payment can be captured, not a succeeded one." in _messages(page)


def test_cancel_asks_first_then_releases_the_authorization(console):
    payment = authorized(email="bob@example.com")
    page = console.get(payment_url("cancel", payment.pk))
    assert "bob@example.com" in page.content.decode()
    assert _reload(payment).status == "authorized"

    console.post(payment_url("cancel", payment.pk), {"key": str(uuid.uuid4())})

    assert _reload(payment).status == "canceled"
    event = PaymentEvent.objects.get(payment=payment, to_status="canceled")
    assert (event.source, event.user) == ("admin", console.user)


def test_cancel_of_a_captured_payment_shows_the_services_message(console):
    payment = captured()
    page = console.post(payment_url("cancel", payment.pk), {"key": str(uuid.uuid4())}, follow=True)
    assert "A succeeded payment cannot be canceled." in _messages(page)
    assert _reload(payment).status == "succeeded"


def test_sync_one_payment_from_its_page(console, dummy):
    payment = _reload(authorized())
    dummy.capture_payment(payment, amount=payment.amount, idempotency_key="at-the-provider")

    page = console.post(payment_url("sync", payment.pk), follow=True)

    assert _reload(payment).status == "succeeded"
    event = PaymentEvent.objects.get(payment=payment, to_status="succeeded")
    assert (event.source, event.user) == ("admin", console.user)
    assert "Synced from dummy: succeeded." in _messages(page)


@pytest.mark.parametrize(
    ("view", "codename", "status"),
    [
        ("capture", "capture_payment", 200),
        ("cancel", "cancel_payment", 302),
        ("sync", "sync_payment", 302),
    ],
)
def test_each_action_needs_its_permission(client, dummy, view, codename, status):
    payment = _reload(authorized())
    if view == "sync":  # something for the sync to find
        dummy.capture_payment(payment, amount=payment.amount, idempotency_key="at-the-provider")
    data = {"amount": "10.00", "key": str(uuid.uuid4())}
    client.force_login(staff_with())
    assert client.post(payment_url(view, payment.pk), data).status_code == 403
    assert _reload(payment).status == "authorized"
    client.force_login(staff_with(codename))
    assert client.post(payment_url(view, payment.pk), data).status_code in {status, 302}
    assert PaymentEvent.objects.filter(payment=payment, source="admin").exists()


def test_change_page_offers_the_actions_the_staff_member_may_take(client):
    payment = authorized()
    client.force_login(staff_with("capture_payment"))
    html = client.get(payment_url("change", payment.pk)).content.decode()
    assert payment_url("capture", payment.pk) in html
    assert payment_url("cancel", payment.pk) not in html
    assert payment_url("refund", payment.pk) not in html  # not refundable, not permitted
    paid = captured()
    client.force_login(staff_with("refund_payment", "sync_payment"))
    html = client.get(payment_url("change", paid.pk)).content.decode()
    assert payment_url("refund", paid.pk) in html
    assert payment_url("sync", paid.pk) in html
    assert payment_url("capture", paid.pk) not in html


def test_bulk_sync_needs_the_sync_permission(client):
    PaymentFactory()
    client.force_login(staff_with())
    page = client.get(payment_url("changelist"))
    assert "sync_from_provider" not in page.content.decode()
    client.force_login(staff_with("sync_payment"))
    assert "sync_from_provider" in client.get(payment_url("changelist")).content.decode()


# ---------------------------------------------------------------------------
# Notifications: requeue the ones given up
# ---------------------------------------------------------------------------


def _given_up(payment: Any) -> Notification:
    return Notification.objects.create(
        kind="payment_succeeded", payment=payment, status="failed", attempts=8, last_error="smtp"
    )


def test_requeue_failed_notifications(console, mailoutbox, django_capture_on_commit_callbacks):
    payment = captured(email="carol@example.com")
    Notification.objects.all().delete()
    failed, other = _given_up(payment), _given_up(payment)

    with django_capture_on_commit_callbacks(execute=True):
        page = console.post(
            admin_url(Notification, "changelist"),
            {"action": "requeue", ACTION_CHECKBOX_NAME: [str(failed.pk)]},
            follow=True,
        )

    assert "1 notification(s) requeued" in page.content.decode()
    failed.refresh_from_db()
    other.refresh_from_db()
    assert (failed.status, other.status) == ("sent", "failed")  # sent again, at once
    assert [m.to for m in mailoutbox] == [["carol@example.com"]]


def test_requeue_needs_the_change_permission(client):
    payment = PaymentFactory()
    notification = _given_up(payment)
    user = UserFactory(is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_notification", content_type__app_label="paygate")
    )
    client.force_login(user)
    client.post(
        admin_url(Notification, "changelist"),
        {"action": "requeue", ACTION_CHECKBOX_NAME: [str(notification.pk)]},
    )
    notification.refresh_from_db()
    assert notification.status == "failed"
