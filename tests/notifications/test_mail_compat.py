"""The Django < 6.1 branch of emails.send_message, exercised on the installed Django.

Kept apart from test_emails.py, whose warnings are errors: on Django 6.1 this
branch uses what 6.1 deprecates (EMAIL_BACKEND, get_connection), on purpose.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core import mail
from django.test import override_settings

from django_paygate import emails
from tests.notifications.conftest import ANYMAIL_TEST_BACKEND, LOCMEM_BACKEND, set_emails
from tests.notifications.factories import make_notification

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]


@pytest.fixture
def old_settings(monkeypatch: Any) -> Iterator[Any]:
    """Settings as on Django 5.2: EMAIL_BACKEND, no MAILERS; restored quietly afterwards."""
    monkeypatch.setattr(emails, "MAILERS_SUPPORTED", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        override = override_settings()
        override.enable()
        try:
            if hasattr(settings, "MAILERS"):
                delattr(settings, "MAILERS")
            settings.EMAIL_BACKEND = LOCMEM_BACKEND
            yield settings
        finally:
            override.disable()


def test_pre_mailers_branch(old_settings: Any) -> None:
    """The Django < 6.1 path: EMAIL_BACKEND by default, or MAILER as a backend's dotted path."""
    set_emails(old_settings)
    mail.outbox.clear()

    emails.send_notification_email(make_notification("payment_succeeded"))
    set_emails(old_settings, MAILER=ANYMAIL_TEST_BACKEND)
    emails.send_notification_email(make_notification("payment_succeeded"))

    default_copy, named_copy = mail.outbox
    assert not hasattr(default_copy, "anymail_test_params")
    assert named_copy.anymail_test_params["metadata"]["kind"] == "payment_succeeded"
    set_emails(old_settings, MAILER="payments")
    assert "mailer aliases need Django 6.1" in " ".join(emails.validate_settings())
