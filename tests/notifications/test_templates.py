"""The packaged templates, the host's overrides, and currency formatting."""

from __future__ import annotations

import html
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.template import Context, Template
from hypothesis import given
from hypothesis import strategies as st

from django_paygate import emails
from django_paygate.money import CURRENCY_EXPONENTS, format_money
from tests.factories import PaymentFactory
from tests.notifications.conftest import set_emails
from tests.notifications.factories import make_notification

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("error")]

HOST_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "host_override"
ALL_KINDS = [*emails.EMAIL_FOR_KIND]
VOID = {"meta", "br", "img", "hr", "input", "link"}


class _Balance(HTMLParser):
    """Checks that every element is closed in order (mail clients are unforgiving)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _html(message: Any) -> str:
    [(body, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return str(body)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_packaged_html_is_mail_client_friendly(settings: Any, kind: str) -> None:
    set_emails(settings, ADMINS=["ops@example.com"], SITE_NAME="Test Shop")
    notification = make_notification(kind, amount=1999, currency="USD", review_reason="why")

    message = emails.render_email(notification)

    assert message is not None
    body = _html(message)
    checker = _Balance()
    checker.feed(body)
    assert checker.errors == []
    assert checker.stack == []
    assert '<meta name="color-scheme" content="light dark">' in body
    assert "max-width:600px" in body
    assert 'role="presentation"' in body
    assert "{{" not in body
    assert "{%" not in body
    assert len(body.encode()) < 102_000  # Gmail clips larger messages
    # The amount, the currency and the payment reference, in the HTML and the text.
    amount = format_money(
        (notification.dispute or notification.refund or notification.payment).amount, "USD"
    )
    for text in (body, message.body):
        assert amount in text
        assert "USD" in text
        assert str(notification.payment_id) in text
    assert "Test Shop" in body
    assert "<" not in message.subject


@pytest.mark.parametrize(
    ("currency", "amount", "shown", "wrong"),
    [
        ("JPY", 1000, "¥1,000", "¥1,000.00"),
        ("JPY", 5, "¥5", "¥0.05"),
        ("KWD", 1235, "KWD\u00a01.235", "12.35"),  # as en-us writes it
        ("KWD", 1000000, "KWD\u00a01,000.000", "10,000.00"),
        ("USD", 123456, "$1,234.56", "123,456"),
    ],
)
def test_amounts_follow_the_currency(
    settings: Any, currency: str, amount: int, shown: str, wrong: str
) -> None:
    set_emails(settings)
    message = emails.render_email(
        make_notification("payment_succeeded", amount=amount, currency=currency)
    )

    assert message is not None
    for text in (message.subject, message.body, _html(message)):
        assert shown in text
        assert wrong not in text


def test_text_is_not_html_escaped_and_html_is(settings: Any) -> None:
    set_emails(settings)
    payment = PaymentFactory(status="succeeded", description="O'Brien & Sons <b>bold</b>")

    message = emails.render_email(make_notification("payment_succeeded", payment=payment))

    assert message is not None
    assert "O'Brien & Sons <b>bold</b>" in message.body
    body = _html(message)
    assert "<b>bold</b>" not in body
    assert "O&#x27;Brien &amp; Sons &lt;b&gt;bold&lt;/b&gt;" in body


def test_host_template_overrides_subject_and_body(settings: Any, outbox: list[Any]) -> None:
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(HOST_TEMPLATES)]}]
    payment = PaymentFactory(
        status="succeeded", amount=4200, currency="EUR", metadata={"order": "A-17"}
    )

    emails.send_notification_email(make_notification("payment_succeeded", payment=payment))
    emails.send_notification_email(make_notification("refund_succeeded", payment=payment))

    success, refund = outbox
    assert success.subject == "Order A-17 is paid (€42.00)"
    assert success.body.startswith("Hi from the host shop!")
    assert "Order A-17: €42.00 (EUR) received." in success.body
    body = _html(success)
    assert 'class="host-override"' in body
    assert "Host shop: order A-17 is paid" in body
    assert "€42.00" in body
    assert "EUR" in body
    assert str(payment.pk) in body
    assert "max-width:600px" in body  # the host extended the packaged layout
    # Templates the host did not override are the packaged ones.
    assert "Refund of €21.00 on its way" in refund.subject
    assert "host" not in _html(refund).lower()


def test_default_templates_without_host_dir(settings: Any, outbox: list[Any]) -> None:
    payment = PaymentFactory(status="succeeded", metadata={"order": "A-17"})
    emails.send_notification_email(make_notification("payment_succeeded", payment=payment))

    assert outbox[0].subject == "Test Shop: Payment of $10.00 received"


def test_money_filter() -> None:
    payment = PaymentFactory.build(amount=1235, currency="KWD")
    template = Template(
        "{% load paygate %}{{ p|money }}|{{ 1000|money:'JPY' }}|{{ 1999|money_code:'USD' }}|"
        "{{ 19.99|money:'USD' }}|{{ 'x'|money }}|{{ 5|money:'XXX' }}|{{ p|money_code }}"
    )

    out = template.render(Context({"p": payment}))

    # The active language's way of writing money (LANGUAGE_CODE "en-us" here).
    assert out == "KWD\u00a01.235|¥1,000|19.99 USD||||1.235 KWD"


@given(
    amount=st.integers(min_value=0, max_value=10**15),
    currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)),
)
def test_money_filter_matches_format_money(amount: int, currency: str) -> None:
    from django.utils import translation

    out = Template("{% load paygate %}{{ a|money:c }}").render(
        Context({"a": amount, "c": currency})
    )
    assert html.unescape(out) == format_money(amount, currency, locale=translation.get_language())


@pytest.mark.parametrize("site_name", ["", "Test Shop"])
@pytest.mark.parametrize(
    ("kind", "subject"),
    [
        ("payment_succeeded", "Payment of $10.00 received"),
        ("payment_failed", "Your payment of $10.00 did not go through"),
        ("refund_succeeded", "Refund of $5.00 on its way"),
    ],
)
def test_subjects_read_as_sentences_with_or_without_a_site_name(
    settings: Any, site_name: str, kind: str, subject: str
) -> None:
    set_emails(settings, SITE_NAME=site_name)
    notification = make_notification(kind, amount=1000, currency="USD")

    message = emails.render_email(notification)

    assert message is not None
    assert message.subject == (f"{site_name}: {subject}" if site_name else subject)
