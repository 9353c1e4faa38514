"""Fixtures of the notification tests: anymail's test backend, a flaky backend, settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.core import mail

from tests.notifications.backends import FlakyBackend

ANYMAIL_TEST_BACKEND = "anymail.backends.test.EmailBackend"
FLAKY_BACKEND = "tests.notifications.backends.FlakyBackend"
LOCMEM_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def use_email_backend(settings: Any, backend: str, **other_mailers: str) -> None:
    """Point Django's default mailer at ``backend``: MAILERS on Django 6.1+, else EMAIL_BACKEND.

    ``other_mailers`` (alias -> backend) are extra MAILERS aliases (Django 6.1+ only).
    """
    if django.VERSION >= (6, 1):
        settings.MAILERS = {
            "default": {"BACKEND": backend},
            **{alias: {"BACKEND": path} for alias, path in other_mailers.items()},
        }
    else:  # pragma: no cover - Django < 6.1
        settings.EMAIL_BACKEND = backend


def set_emails(settings: Any, **emails: Any) -> None:
    """Set ``PAYGATE["EMAILS"]`` for one test."""
    settings.PAYGATE = {**settings.PAYGATE, "EMAILS": emails}


def set_paygate(settings: Any, **keys: Any) -> None:
    settings.PAYGATE = {**settings.PAYGATE, **keys}


@pytest.fixture
def outbox(settings: Any) -> list[Any]:
    """anymail's test backend as the default mailer; the sent messages."""
    use_email_backend(settings, ANYMAIL_TEST_BACKEND)
    set_emails(settings, ADMINS=["ops@example.com"], SITE_NAME="Test Shop")
    mail.outbox.clear()
    return mail.outbox  # type: ignore[no-any-return]


@pytest.fixture
def flaky(settings: Any, outbox: list[Any]) -> Iterator[type[FlakyBackend]]:
    """A default mailer that raises while ``flaky.failures`` > 0 (else anymail's test backend)."""
    use_email_backend(settings, FLAKY_BACKEND)
    FlakyBackend.reset()
    yield FlakyBackend
    FlakyBackend.reset()


def emails_of(outbox: list[Any], kind: str) -> list[Any]:
    return [m for m in outbox if m.metadata["kind"] == kind]


@pytest.fixture
def dummy(outbox: list[Any], dummy: Any) -> Any:
    """The dummy provider, taken after ``outbox`` changed PAYGATE (which rebuilds providers)."""
    return dummy
