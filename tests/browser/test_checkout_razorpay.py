"""The shipped Razorpay checkout in Chromium, under a strict CSP.

The page's own script (static/paygate/checkout.js) runs in the browser and opens
Checkout.js. Real Checkout.js talks to Razorpay, so the Razorpay provider's
``script_url`` serves ``tests/browser/razorpay_standin.js``: ``new Razorpay(options)``,
``on("payment.failed")`` and ``open()``, whose "Pay" button asks the test's fake Razorpay
(``tests/providers/razorpay/conftest.py``, behind ``responses`` for the server's own SDK
calls) to record a payment attempt on the order and answers with Checkout's signed
handler response. The server then verifies that signature, fetches and captures the
payment from the fake, and Razorpay's signed ``payment.captured`` webhook is delivered to
the live server over HTTP.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from django_paygate import services
from django_paygate.models import WebhookEvent, get_payment_model
from tests.browser.checkout import (
    customer,
    enforce_csp,
    fulfilment,
    log_in,
    page_errors,
    strict_csp,
)
from tests.providers.razorpay.conftest import (
    WEBHOOK_SECRET,
    WEBHOOK_URL,
    FakeRazorpay,
    event_body,
    hmac_hex,
    paygate_setting,
)
from tests.testapp.models import Order

__all__ = ["customer", "fulfilment"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)

Payment = get_payment_model()
CHECKOUT = "https://checkout.razorpay.test"
SCRIPT_URL = f"{CHECKOUT}/v1/checkout.js"
STANDIN = Path(__file__).with_name("razorpay_standin.js")


@pytest.fixture
def fake(settings: Any) -> Iterator[FakeRazorpay]:
    settings.PAYGATE = {
        **paygate_setting(script_url=SCRIPT_URL),
        "PAYABLES": {"order": "testapp.Order"},
    }
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeRazorpay(rsps)


@pytest.fixture
def order(customer: Any) -> Order:
    return Order.objects.create(reference="R-2001", amount=49900, currency="INR", owner=customer)


def open_checkout(
    page: Any, live_server: Any, fake: FakeRazorpay, customer: Any, order: Order
) -> Any:
    payment = services.create_payment(payable=order, user=customer, provider="razorpay")
    assert payment.provider_payment_id in fake.orders
    cors = {"access-control-allow-origin": live_server.url}

    def pay(route: Any) -> None:
        asked = json.loads(route.request.post_data)
        answer = fake.checkout(asked["order_id"], "authorized", notes=asked["notes"])
        route.fulfill(json=answer, headers=cors)

    page.route(
        SCRIPT_URL,
        lambda route: route.fulfill(
            body=STANDIN.read_text(), content_type="application/javascript"
        ),
    )
    page.route(f"{CHECKOUT}/pay", pay)
    enforce_csp(page, live_server.url, strict_csp(CHECKOUT, connect=(CHECKOUT,)))
    log_in(page, live_server.url, customer)
    page.goto(f"{live_server.url}/api/payments/checkout/{payment.pk}/")
    assert page.locator(".paygate-amount").inner_text() == "₹499.00"
    return payment


def deliver(live_server: Any, body: bytes, event_id: str) -> int:
    """Razorpay POSTs its signed event to the live site."""
    request = urllib.request.Request(
        live_server.url + WEBHOOK_URL,
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Razorpay-Signature": hmac_hex(WEBHOOK_SECRET, body),
            "X-Razorpay-Event-Id": event_id,
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return int(answer.status)


def test_the_customer_pays_in_checkout(
    page: Any,
    live_server: Any,
    fake: FakeRazorpay,
    customer: Any,
    order: Order,
    fulfilment: None,
    screenshot: Any,
) -> None:
    payment = open_checkout(page, live_server, fake, customer, order)
    screenshot(page, "razorpay-checkout")
    page.click("[data-paygate-pay]")
    page.locator(".paygate-standin-razorpay").wait_for()
    screenshot(page, "razorpay-window")
    page.click(".paygate-standin-pay")
    page.wait_for_url(f"{live_server.url}/orders/{order.pk}/thanks/")
    assert "is paid" in page.locator("[data-order-status]").inner_text()
    screenshot(page, "razorpay-paid")

    order.refresh_from_db()
    assert order.paid
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured) == ("succeeded", 49900)
    (attempt,) = fake.payments.values()
    assert attempt["status"] == "captured"  # the server captured the authorized attempt
    assert payment.provider_data["razorpay_payment_id"] == attempt["id"]
    assert len(fake.calls("payment.capture")) == 1

    # Razorpay's own webhook arrives afterwards: verified, recorded, and nothing moves twice.
    body = event_body("payment.captured", payment=attempt)
    assert deliver(live_server, body, "evt_browser_captured") == 200
    (event,) = WebhookEvent.objects.filter(provider="razorpay", payment=payment)
    assert event.status == "processed"
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured) == ("succeeded", 49900)
    assert page_errors(page) == []


def test_a_declined_attempt_then_a_paid_one(
    page: Any,
    live_server: Any,
    fake: FakeRazorpay,
    customer: Any,
    order: Order,
    fulfilment: None,
    screenshot: Any,
) -> None:
    payment = open_checkout(page, live_server, fake, customer, order)
    page.click("[data-paygate-pay]")
    page.click(".paygate-standin-decline")
    message = page.locator("[data-paygate-message]")
    message.wait_for(state="visible")
    assert "declined by the bank" in message.inner_text()
    assert page.locator("[data-paygate-pay]").is_enabled()
    screenshot(page, "razorpay-declined")
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert not fake.payments  # nothing reached Razorpay's side of the fake

    page.click("[data-paygate-pay]")
    page.click(".paygate-standin-pay")
    page.wait_for_url(f"{live_server.url}/orders/{order.pk}/thanks/")
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    order.refresh_from_db()
    assert order.paid
    assert page_errors(page) == []
