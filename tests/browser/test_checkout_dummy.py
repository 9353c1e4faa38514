"""The shipped checkout page with the dummy provider, in Chromium, under a strict CSP."""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate import services
from django_paygate.models import get_payment_model
from django_paygate.providers.dummy import CARD_DECLINED, CARD_REQUIRES_ACTION, CARD_SUCCEEDS
from tests.browser.checkout import (
    customer,
    enforce_csp,
    fulfilment,
    log_in,
    order,
    page_errors,
    strict_csp,
)
from tests.testapp.models import Order

__all__ = ["customer", "fulfilment", "order"]  # fixtures

pytestmark = pytest.mark.django_db(transaction=True)

Payment = get_payment_model()


def open_checkout(page: Any, live_server: Any, customer: Any, order: Order) -> Any:
    payment = services.create_payment(payable=order, user=customer)
    enforce_csp(page, live_server.url, strict_csp())
    log_in(page, live_server.url, customer)
    page.goto(f"{live_server.url}/api/payments/checkout/{payment.pk}/")
    assert page.locator(".paygate-amount").inner_text() == "$42.00"
    return payment


def pay_with(page: Any, card: str) -> None:
    page.fill("#paygate-card", card)
    page.click("[data-paygate-pay]")


def assert_paid(page: Any, live_server: Any, order: Order, payment: Any) -> None:
    page.wait_for_url(f"{live_server.url}/orders/{order.pk}/thanks/")
    assert "is paid" in page.locator("[data-order-status]").inner_text()
    order.refresh_from_db()
    assert order.paid
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured) == ("succeeded", 4200)


def test_the_customer_pays(
    page: Any, live_server: Any, customer: Any, order: Order, fulfilment: None, screenshot: Any
) -> None:
    payment = open_checkout(page, live_server, customer, order)
    screenshot(page, "dummy-checkout")
    pay_with(page, CARD_SUCCEEDS)
    assert_paid(page, live_server, order, payment)
    screenshot(page, "dummy-paid")
    assert page_errors(page) == []


def test_a_declined_card_then_a_good_one(
    page: Any, live_server: Any, customer: Any, order: Order, fulfilment: None, screenshot: Any
) -> None:
    payment = open_checkout(page, live_server, customer, order)
    pay_with(page, CARD_DECLINED)
    message = page.locator("[data-paygate-message]")
    message.wait_for(state="visible")
    assert "declined" in message.inner_text()
    assert "Try another card" in message.inner_text()
    screenshot(page, "dummy-declined")
    payment.refresh_from_db()
    assert payment.status == "failed"
    order.refresh_from_db()
    assert not order.paid
    pay_with(page, CARD_SUCCEEDS)
    assert_paid(page, live_server, order, payment)
    assert page_errors(page, 402) == []


def test_3d_secure(
    page: Any, live_server: Any, customer: Any, order: Order, fulfilment: None, screenshot: Any
) -> None:
    payment = open_checkout(page, live_server, customer, order)
    pay_with(page, CARD_REQUIRES_ACTION)
    step = page.locator("[data-paygate-3ds]")
    step.wait_for(state="visible")
    assert page.locator("[data-paygate-dummy-form]").is_hidden()
    payment.refresh_from_db()
    assert payment.status == "requires_action"
    screenshot(page, "dummy-3ds")
    page.click("[data-paygate-authenticate]")
    assert_paid(page, live_server, order, payment)
    screenshot(page, "dummy-3ds-paid")
    assert page_errors(page) == []


def test_an_order_changed_before_paying_is_not_charged(
    page: Any, live_server: Any, customer: Any, order: Order, fulfilment: None, screenshot: Any
) -> None:
    payment = open_checkout(page, live_server, customer, order)
    Order.objects.filter(pk=order.pk).update(amount=9900)
    pay_with(page, CARD_SUCCEEDS)
    message = page.locator("[data-paygate-message]")
    message.wait_for(state="visible")
    assert "amount due changed" in message.inner_text()
    screenshot(page, "dummy-payable-changed")
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured) == ("canceled", 0)
    order.refresh_from_db()
    assert not order.paid
    assert page.locator("[data-paygate-pay]").is_disabled()
    assert page_errors(page, 409) == []


def test_another_customer_cannot_open_the_page(
    page: Any, live_server: Any, customer: Any, order: Order
) -> None:
    from tests.factories import UserFactory

    payment = services.create_payment(payable=order, user=customer)
    log_in(page, live_server.url, UserFactory())
    response = page.goto(f"{live_server.url}/api/payments/checkout/{payment.pk}/")
    assert response.status == 404
