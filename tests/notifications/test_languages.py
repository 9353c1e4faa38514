"""Emails are written in the payment's language, with its money formatted for it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from django.utils import translation

import django_paygate
from django_paygate import emails, services
from tests.factories import PaymentFactory
from tests.notifications.conftest import set_emails
from tests.notifications.factories import make_notification

pytestmark = pytest.mark.django_db

PACKAGE = Path(django_paygate.__file__).resolve().parent
LANGUAGES = ["de", "hi"]
NBSP = "\u00a0"


def _html(message: Any) -> str:
    [(body, _)] = message.alternatives
    return str(body)


@pytest.mark.parametrize(
    ("language", "amount", "currency", "subject", "sentence"),
    [
        (
            "de",
            199999,
            "EUR",
            f"Zahlung über 1.999,99{NBSP}€ erhalten",
            f"Vielen Dank. Wir haben Ihre Zahlung über 1.999,99{NBSP}€ erhalten.",
        ),
        (
            "hi",
            19999999,
            "INR",
            "₹1,99,999.99 का भुगतान प्राप्त हुआ",
            "धन्यवाद। हमें आपका ₹1,99,999.99 का भुगतान मिल गया है।",
        ),
        (
            "en",
            199999,
            "EUR",
            "Payment of €1,999.99 received",
            "Thank you. We received your payment of €1,999.99.",
        ),
    ],
)
def test_a_receipt_in_each_language_with_its_money(
    settings: Any, language: str, amount: int, currency: str, subject: str, sentence: str
) -> None:
    set_emails(settings, SITE_NAME="")
    payment = PaymentFactory(
        status="succeeded", amount=amount, amount_captured=amount, currency=currency
    )
    payment.language = language
    payment.save()

    # Delivered by a worker whose own language is another one.
    with translation.override("en" if language != "en" else "de"):
        message = emails.render_email(make_notification("payment_succeeded", payment=payment))

    assert message is not None
    assert message.subject == subject
    assert sentence in message.body
    assert f'<html lang="{language}"' in _html(message)
    assert translation.get_language() == settings.LANGUAGE_CODE  # nothing leaks out


@pytest.mark.parametrize(
    ("language", "expected"),
    [("de", f"Erstattung über 5,00{NBSP}€ unterwegs"), ("hi", "€5.00 का रिफ़ंड भेजा जा रहा है")],
)
def test_a_refund_email_in_each_language(settings: Any, language: str, expected: str) -> None:
    set_emails(settings, SITE_NAME="")
    payment = PaymentFactory(status="succeeded", amount=1000, amount_captured=1000, currency="EUR")
    payment.language = language
    payment.save()

    message = emails.render_email(make_notification("refund_succeeded", payment=payment))

    assert message is not None
    assert message.subject == expected


def test_the_payment_records_the_language_it_was_created_in(settings: Any) -> None:
    with translation.override("hi"):
        in_hindi = services.create_payment(amount=1000, currency="INR")
    plain = services.create_payment(amount=1000, currency="INR")

    assert in_hindi.language == "hi"
    assert plain.language == settings.LANGUAGE_CODE


def test_admin_emails_are_in_the_sites_language(settings: Any) -> None:
    settings.LANGUAGE_CODE = "de"
    set_emails(settings, ADMINS=["ops@example.com"], SITE_NAME="")
    payment = PaymentFactory(status="succeeded", amount=1000, currency="EUR")
    payment.language = "hi"
    payment.save()

    message = emails.render_email(make_notification("dispute_opened", payment=payment))

    assert message is not None
    assert message.subject.startswith(f"Streitfall eröffnet: 10,00{NBSP}€ zur Zahlung ")


def test_a_payment_without_a_language_uses_language_code(settings: Any) -> None:
    settings.LANGUAGE_CODE = "de"
    set_emails(settings, SITE_NAME="")
    payment = PaymentFactory(status="succeeded", amount=1000, currency="EUR")
    payment.language = ""
    payment.save()

    message = emails.render_email(make_notification("payment_succeeded", payment=payment))

    assert message is not None
    assert message.subject == f"Zahlung über 10,00{NBSP}€ erhalten"


# -- the catalogs: complete, compiled, in step with the sources -------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_translated_and_compiled(language: str) -> None:
    folder = PACKAGE / "locale" / language / "LC_MESSAGES"
    with (folder / "django.po").open("rb") as po_file:
        catalog = read_po(po_file)
    with (folder / "django.mo").open("rb") as mo_file:
        compiled = read_mo(mo_file)

    messages = [m for m in catalog if m.id]
    assert messages
    assert [m.id for m in messages if not all(_forms(m.string)) or m.fuzzy] == []
    assert _entries(compiled) == _entries(messages)


def _forms(value: Any) -> tuple[str, ...]:
    """A message's id or translation as a tuple of its forms (one, or one per plural)."""
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _entries(messages: Any) -> dict[tuple[str, ...], tuple[str, ...]]:
    return {_forms(m.id): _forms(m.string) for m in messages if m.id}


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="needs GNU gettext")
def test_the_catalogs_hold_every_message_of_the_sources(tmp_path: Path) -> None:
    copy = tmp_path / "django_paygate"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "django", "makemessages", "-l", "de", "--no-location"],
        cwd=copy,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "", "PYTHONPATH": ""},
        check=True,
        capture_output=True,
    )
    with (copy / "locale" / "de" / "LC_MESSAGES" / "django.po").open("rb") as po_file:
        fresh = {m.id for m in read_po(po_file) if m.id}
    with (PACKAGE / "locale" / "de" / "LC_MESSAGES" / "django.po").open("rb") as po_file:
        shipped = {m.id for m in read_po(po_file) if m.id}
    assert fresh == shipped
