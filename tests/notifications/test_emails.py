"""Which notification sends which email, to whom, with which anymail attributes and settings.

Warnings are errors here: on Django 6.1 sending must raise no deprecation warning.
"""

from __future__ import annotations

from typing import Any

import django
import pytest
from django.core import mail

from django_paygate import emails
from django_paygate.exceptions import ConfigurationError
from tests.factories import PaymentFactory, UserFactory
from tests.notifications.conftest import (
    ANYMAIL_TEST_BACKEND,
    LOCMEM_BACKEND,
    set_emails,
    use_email_backend,
)
from tests.notifications.factories import make_notification

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("error")]

CUSTOMER_EMAILS = {
    "payment_succeeded": "payment_success",
    "payment_failed": "payment_failed",
    "refund_succeeded": "refund_confirmation",
}
ADMIN_EMAILS = {
    "dispute_opened": "dispute_notification",
    "dispute_closed": "dispute_notification",
    "payment_needs_review": "payment_needs_review",
}
SIGNAL_ONLY = ["payment_authorized", "payment_canceled", "refund_failed"]


def test_message_carries_anymail_tags_and_metadata(outbox: list[Any]) -> None:
    notification = make_notification("payment_succeeded", email="ann@example.com")

    assert emails.send_notification_email(notification) == 1

    [message] = outbox
    assert message.to == ["ann@example.com"]
    assert message.tags == ["paygate", "payment_succeeded"]
    assert message.metadata == {
        "payment_id": str(notification.payment_id),
        "kind": "payment_succeeded",
        "notification_id": str(notification.pk),
    }
    # anymail read them: they reach the ESP payload.
    assert message.anymail_test_params["tags"] == ["paygate", "payment_succeeded"]
    assert message.anymail_test_params["metadata"] == message.metadata
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert "<html" in html


@pytest.mark.parametrize(("kind", "name"), CUSTOMER_EMAILS.items())
def test_customer_emails(outbox: list[Any], kind: str, name: str) -> None:
    notification = make_notification(kind, email="cus@example.com")

    assert emails.send_notification_email(notification) == 1

    [message] = outbox
    assert message.to == ["cus@example.com"]
    assert emails.EMAIL_FOR_KIND[kind].name == name
    assert message.metadata["kind"] == kind
    if kind == "refund_succeeded":
        assert message.metadata["refund_id"] == str(notification.refund_id)


@pytest.mark.parametrize(("kind", "name"), ADMIN_EMAILS.items())
def test_admin_emails(outbox: list[Any], settings: Any, kind: str, name: str) -> None:
    set_emails(settings, ADMINS=["ops@example.com", "cfo@example.com"])
    notification = make_notification(kind, email="cus@example.com", review_reason="amount differs")

    assert emails.send_notification_email(notification) == 1

    [message] = outbox
    assert message.to == ["ops@example.com", "cfo@example.com"]
    assert "cus@example.com" not in message.to
    assert emails.EMAIL_FOR_KIND[kind].name == name
    if kind.startswith("dispute_"):
        assert message.metadata["dispute_id"] == str(notification.dispute_id)


def test_admins_default_to_settings_admins(outbox: list[Any], settings: Any) -> None:
    set_emails(settings)
    settings.ADMINS = ["root@example.com"]

    emails.send_notification_email(make_notification("dispute_opened"))

    assert outbox[0].to == ["root@example.com"]


def test_no_admins_means_no_admin_email(outbox: list[Any], settings: Any) -> None:
    set_emails(settings)
    settings.ADMINS = []

    assert emails.send_notification_email(make_notification("payment_needs_review")) == 0
    assert outbox == []


@pytest.mark.parametrize("kind", SIGNAL_ONLY)
def test_signal_only_kinds_send_no_email(outbox: list[Any], kind: str) -> None:
    assert emails.send_notification_email(make_notification(kind)) == 0
    assert outbox == []


def test_customer_falls_back_to_user_email(outbox: list[Any]) -> None:
    user = UserFactory(email="owner@example.com")
    notification = make_notification("payment_succeeded", email="", user=user)

    emails.send_notification_email(notification)

    assert outbox[0].to == ["owner@example.com"]


def test_no_customer_address_is_not_an_error(outbox: list[Any]) -> None:
    user = UserFactory(email="")
    assert emails.send_notification_email(make_notification("payment_failed", email="")) == 0
    notification = make_notification("payment_failed", email="", user=user)
    assert emails.send_notification_email(notification) == 0
    assert outbox == []


def test_switched_off_globally(outbox: list[Any], settings: Any) -> None:
    set_emails(settings, ENABLED=False)
    assert emails.send_notification_email(make_notification("payment_succeeded")) == 0
    assert outbox == []


def test_switched_off_per_kind(outbox: list[Any], settings: Any) -> None:
    set_emails(settings, ADMINS=["ops@example.com"], KINDS={"payment_success": False})

    assert emails.send_notification_email(make_notification("payment_succeeded")) == 0
    assert emails.send_notification_email(make_notification("payment_failed")) == 1
    assert [m.metadata["kind"] for m in outbox] == ["payment_failed"]


def test_sender_from_settings(outbox: list[Any], settings: Any) -> None:
    settings.DEFAULT_FROM_EMAIL = "shop@example.com"
    set_emails(settings)
    emails.send_notification_email(make_notification("payment_succeeded"))
    set_emails(settings, FROM_EMAIL="Billing <billing@example.com>")
    emails.send_notification_email(make_notification("payment_succeeded"))

    assert [m.from_email for m in outbox] == ["shop@example.com", "Billing <billing@example.com>"]


def test_context_hook_adds_context_and_can_cancel(outbox: list[Any], settings: Any) -> None:
    set_emails(settings, CONTEXT_HOOK="tests.notifications.hooks.add_order_number")

    emails.send_notification_email(make_notification("payment_succeeded", metadata={"order": 42}))
    sent = emails.send_notification_email(
        make_notification("payment_succeeded", metadata={"no_email": True})
    )

    [message] = outbox
    assert message.subject.startswith("Hooked Shop:")
    assert sent == 0


def test_backend_error_propagates(settings: Any) -> None:
    from tests.notifications.backends import FlakyBackend

    use_email_backend(settings, "tests.notifications.backends.FlakyBackend")
    FlakyBackend.reset(failures=1)
    try:
        with pytest.raises(Exception, match="503"):
            emails.send_notification_email(make_notification("payment_succeeded"))
    finally:
        FlakyBackend.reset()


@pytest.mark.skipif(django.VERSION < (6, 1), reason="MAILERS aliases are Django 6.1+")
def test_named_mailer(settings: Any) -> None:
    """``MAILER`` picks a MAILERS alias, used with ``send(using=...)``."""
    use_email_backend(settings, LOCMEM_BACKEND, payments=ANYMAIL_TEST_BACKEND)
    mail.outbox.clear()
    emails.send_notification_email(make_notification("payment_succeeded"))
    set_emails(settings, MAILER="payments")
    emails.send_notification_email(make_notification("payment_succeeded"))

    default_copy, payments_copy = mail.outbox
    assert not hasattr(default_copy, "anymail_test_params")  # locmem
    assert payments_copy.anymail_test_params["tags"] == ["paygate", "payment_succeeded"]


def test_unknown_keys_are_reported(settings: Any) -> None:
    set_emails(
        settings,
        ENABLE=True,
        KINDS={"payment_succes": False, "refund_confirmation": "yes"},
        ADMINS="ops@example.com",
        MAILER="nope",
        CONTEXT_HOOK="tests.notifications.hooks.missing",
    )

    problems = emails.validate_settings()

    text = "\n".join(problems)
    assert "Unknown key 'ENABLE'" in text
    assert "Did you mean 'ENABLED'?" in text
    assert "Did you mean 'payment_success'?" in text
    assert "['KINDS']['refund_confirmation'] must be True or False" in text
    assert "['ADMINS'] must be a list" in text
    assert "'nope'" in text
    assert "cannot be imported" in text
    with pytest.raises(ConfigurationError, match="ENABLE"):
        emails.send_notification_email(make_notification("payment_succeeded"))


def test_valid_settings_have_no_problems(settings: Any) -> None:
    set_emails(
        settings,
        ENABLED=True,
        FROM_EMAIL="a@example.com",
        ADMINS=["b@example.com"],
        KINDS=dict.fromkeys(emails.EMAIL_NAMES, True),
        # A MAILERS alias on Django 6.1, an email backend's dotted path before it.
        MAILER="default"
        if django.VERSION >= (6, 1)
        else "django.core.mail.backends.locmem.EmailBackend",
        CONTEXT_HOOK="tests.notifications.hooks.add_order_number",
        SITE_NAME="Shop",
    )
    assert emails.validate_settings() == []


def test_render_email_sends_nothing(outbox: list[Any]) -> None:
    message = emails.render_email(make_notification("payment_succeeded", email="x@example.com"))

    assert message is not None
    assert message.to == ["x@example.com"]
    assert outbox == []


def test_subject_is_one_line(outbox: list[Any]) -> None:
    payment = PaymentFactory(status="succeeded", description="line one\nline two")
    emails.send_notification_email(make_notification("payment_succeeded", payment=payment))

    assert "\n" not in outbox[0].subject


def test_signal_only_kinds_ignore_email_settings(settings: Any) -> None:
    set_emails(settings, ENABLE=True)  # a typo that breaks the emails ...
    with pytest.raises(ConfigurationError):
        emails.send_notification_email(make_notification("payment_succeeded"))
    # ... but not the kinds that send no email
    assert emails.send_notification_email(make_notification("payment_canceled")) == 0
