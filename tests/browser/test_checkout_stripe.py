"""The shipped Stripe checkout in Chromium, against localstripe, under a strict CSP.

The page's own script (static/paygate/checkout.js) runs in the browser. localstripe's
served Stripe.js has no Payment Element, so the Stripe provider's ``script_url`` points at
``tests/browser/stripe_standin.js``: a small stand-in of the Stripe.js calls the checkout
makes (``elements({clientSecret}).create("payment")``, ``submit()``, ``confirmPayment()``)
that confirms the PaymentIntent through localstripe's REST API. localstripe then signs and
delivers its own ``payment_intent.succeeded`` webhook to the live server.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from django_paygate import services
from django_paygate.models import WebhookEvent, get_payment_model
from tests.browser.checkout import (
    customer,
    enforce_csp,
    fulfilment,
    log_in,
    order,
    page_errors,
    strict_csp,
)
from tests.providers.stripe.conftest import (
    SECRET_KEY,
    WEBHOOK_SECRET,
    WEBHOOK_URL,
    localstripe_options,
    localstripe_url,
    paygate_setting,
)
from tests.testapp.models import Order

__all__ = ["customer", "fulfilment", "localstripe_url", "order"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)

Payment = get_payment_model()
SCRIPT_URL = "https://js.stripe.test/v3/"
STANDIN = Path(__file__).with_name("stripe_standin.js")
HOOK_ID = "paygate-browser"


@pytest.fixture
def stripe_site(settings: Any, localstripe_url: str) -> None:
    settings.PAYGATE = {
        **paygate_setting(**localstripe_options(localstripe_url), script_url=SCRIPT_URL),
        "PAYABLES": {"order": "testapp.Order"},
    }


@pytest.fixture
def localstripe_webhooks(live_server: Any, localstripe_url: str) -> Iterator[None]:
    """localstripe delivers its own signed events to the live server while the test runs."""
    url = live_server.url.replace("localhost", "127.0.0.1") + WEBHOOK_URL
    events = ["payment_intent.succeeded", "payment_intent.payment_failed"]
    hook = f"{localstripe_url}/_config/webhooks/{HOOK_ID}"
    requests.post(hook, json={"url": url, "secret": WEBHOOK_SECRET, "events": events}, timeout=10)
    yield
    requests.post(hook, json={"url": url, "secret": WEBHOOK_SECRET, "events": []}, timeout=10)
    time.sleep(1.0)  # localstripe checks its registry a second after an event


def serve_standin(page: Any, localstripe_url: str) -> None:
    script = STANDIN.read_text().replace("__LOCALSTRIPE__", localstripe_url)
    page.route(
        f"{SCRIPT_URL}**",
        lambda route: route.fulfill(body=script, content_type="application/javascript"),
    )
    secret = base64.b64encode(f"{SECRET_KEY}:".encode()).decode()

    def with_secret_key(route: Any) -> None:
        headers = {**route.request.headers, "authorization": f"Basic {secret}"}
        route.fulfill(response=route.fetch(headers=headers))

    page.route(f"{localstripe_url}/v1/**", with_secret_key)


def wait_for(predicate: Any, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())


def test_the_customer_pays_with_the_payment_element(
    page: Any,
    live_server: Any,
    localstripe_url: str,
    stripe_site: None,
    localstripe_webhooks: None,
    customer: Any,
    order: Order,
    fulfilment: None,
    screenshot: Any,
) -> None:
    payment = services.create_payment(payable=order, user=customer, provider="stripe")
    assert payment.provider_payment_id.startswith("pi_")
    serve_standin(page, localstripe_url)
    enforce_csp(page, live_server.url, strict_csp(SCRIPT_URL, connect=(localstripe_url,)))
    log_in(page, live_server.url, customer)
    page.goto(f"{live_server.url}/api/payments/checkout/{payment.pk}/")
    page.locator(".paygate-standin-card").wait_for()
    assert page.locator(".paygate-amount").inner_text() == "$42.00"
    screenshot(page, "stripe-checkout")

    page.click("[data-paygate-pay]")
    page.wait_for_url(f"{live_server.url}/orders/{order.pk}/thanks/")
    assert "is paid" in page.locator("[data-order-status]").inner_text()
    screenshot(page, "stripe-paid")

    order.refresh_from_db()
    assert order.paid
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured) == ("succeeded", 4200)
    # localstripe's own signed webhook reached the site and was accepted.
    assert wait_for(
        lambda: WebhookEvent.objects.filter(
            provider="stripe", payment=payment, type="payment_intent.succeeded"
        ).exists()
    )
    (event,) = WebhookEvent.objects.filter(provider="stripe", payment=payment)
    assert event.status == "processed"
    assert page_errors(page) == []
