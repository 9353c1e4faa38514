"""Helpers of the checkout browser tests: a logged-in customer, an order, a strict CSP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from django_paygate.payables import payment_covers
from django_paygate.signals import payment_succeeded
from tests.factories import UserFactory
from tests.testapp.models import Order


def strict_csp(*script_hosts: str, connect: tuple[str, ...] = ()) -> str:
    """A Content-Security-Policy without 'unsafe-inline' or 'unsafe-eval' anywhere."""
    scripts = " ".join(("'self'", *script_hosts))
    connects = " ".join(("'self'", *connect))
    return (
        f"default-src 'self'; script-src {scripts}; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connects}; frame-src {scripts}; base-uri 'none'; form-action 'self'"
    )


def enforce_csp(page: Any, base_url: str, policy: str) -> None:
    """Serve every page of the site with ``policy`` (as a shop's middleware would)."""

    def add_header(route: Any) -> None:
        response = route.fetch(max_redirects=0)  # the browser follows redirects itself
        headers = {**response.headers, "content-security-policy": policy}
        route.fulfill(response=response, headers=headers)

    page.route(f"{base_url}/**", add_header)


def log_in(page: Any, base_url: str, user: Any) -> None:
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": base_url}]
    )


@pytest.fixture
def customer(transactional_db: Any) -> Any:
    return UserFactory(email="customer@example.com")


@pytest.fixture
def order(customer: Any) -> Order:
    return Order.objects.create(reference="B-1001", amount=4200, currency="USD", owner=customer)


def _mark_paid(sender: Any, payment: Any, **kwargs: Any) -> None:
    """The shop's fulfilment: only a payment that covers the order marks it paid."""
    if isinstance(payment.payable, Order) and payment_covers(payment):
        Order.objects.filter(pk=payment.payable.pk).update(paid=True)


@pytest.fixture
def fulfilment() -> Iterator[None]:
    payment_succeeded.connect(_mark_paid, dispatch_uid="tests.browser.fulfilment")
    yield
    payment_succeeded.disconnect(dispatch_uid="tests.browser.fulfilment")


def page_errors(page: Any, *expected_statuses: int) -> list[str]:
    """The console's errors (CSP violations, script errors), less the API answers expected.

    Chromium logs every 4xx a ``fetch`` gets ("Failed to load resource"): a 402 for a
    declined card is the page working, not failing.
    """
    expected = tuple(f"status of {status} " for status in expected_statuses)
    return [e for e in page.console_errors if not (expected and any(x in e for x in expected))]
