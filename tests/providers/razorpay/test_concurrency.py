"""Two callers opening one payment's Razorpay order at once: one order, a payment not failed.

Razorpay has no idempotency key for orders; the adapter looks the receipt up before it
creates one. Two callers that both look before either creates (paygate_sync racing the
customer's own sync, or the customer opening the checkout again) would each make an
order. Only one caller at a time may ask the provider to create a payment's object.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from django_paygate import services
from django_paygate.exceptions import PaymentInProgress, ProviderUnavailable
from django_paygate.models import get_payment_model
from django_paygate.services import payments
from tests.testapp.models import Order

from .conftest import FakeRazorpay, paygate_setting

pytestmark = [pytest.mark.locking, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("asha", "asha@example.com")


@pytest.fixture
def no_unique_receipt(settings: Any) -> None:
    # An account on which Razorpay does not refuse a second order for one receipt.
    settings.PAYGATE = paygate_setting(unique_receipt=False)


def _stranded(fake: FakeRazorpay, user: Any) -> Any:
    """A payment whose order was never made (the create call timed out before Razorpay)."""
    order = Order.objects.create(reference="R-1", amount=49900, currency="INR", owner=user)
    assert len(fake.orders) == 0
    fake.fail_next("order.create", "timeout")
    with pytest.raises(ProviderUnavailable):
        services.create_payment(payable=order, provider="razorpay", user=user)
    payment = get_payment_model().objects.get()
    assert payment.provider_payment_id is None
    return payment


def _both_look_first(fake: FakeRazorpay) -> None:
    """Hold each order creation until a second caller asks too (or 1 s has passed).

    A second caller reaches the create only if its receipt lookup found nothing, so with
    two callers both have looked before either order exists.
    """
    arrived = threading.Barrier(2, timeout=1)
    original = fake._order_create

    def order_create(entry: dict[str, Any]) -> Any:
        # A broken barrier: no second caller came (the claim kept it away).
        with contextlib.suppress(threading.BrokenBarrierError):
            arrived.wait()
        return original(entry)

    fake._order_create = order_create  # type: ignore[method-assign]


def _race(*calls: Any) -> list[Any]:
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = calls[index]()
        except Exception as exc:  # the outcome is what is checked
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("round_", range(5))
@pytest.mark.usefixtures("no_unique_receipt")
def test_two_syncs_make_one_order(fake: FakeRazorpay, user: Any, round_: int) -> None:
    payment = _stranded(fake, user)
    _both_look_first(fake)

    results = _race(lambda: services.sync_payment(payment), lambda: services.sync_payment(payment))

    assert len(fake.orders) == 1
    assert len(fake.calls("order.create")) == 2  # the timed-out one, then one more
    payment.refresh_from_db()
    assert payment.provider_payment_id in fake.orders
    assert payment.status == "pending"
    assert not payment.needs_review
    # The one that found another caller creating is told so, and nothing changed for it.
    assert all(r is None or not isinstance(r, Exception) for r in results)


@pytest.mark.parametrize("round_", range(5))
@pytest.mark.usefixtures("no_unique_receipt")
def test_the_customer_opening_the_checkout_again_while_sync_runs(
    fake: FakeRazorpay, user: Any, round_: int
) -> None:
    payment = _stranded(fake, user)
    order = Order.objects.get()
    _both_look_first(fake)

    results = _race(
        lambda: services.sync_payment(payment),
        lambda: services.create_payment(payable=order, provider="razorpay", user=user),
    )

    assert len(fake.orders) == 1
    payment.refresh_from_db()
    assert payment.provider_payment_id in fake.orders
    assert payment.status == "pending"
    assert get_payment_model().objects.count() == 1
    # The customer waited for the sync to open it, and got it to pay.
    created = results[1]
    assert created.pk == payment.pk
    assert created.client_data["order_id"] == payment.provider_payment_id


def test_a_claim_left_by_a_crashed_caller_expires(fake: FakeRazorpay, user: Any) -> None:
    payment = _stranded(fake, user)
    # A caller claimed the creation and died before asking Razorpay.
    assert payments._claim_creation(payment)
    assert not payments._claim_creation(payment)
    with pytest.raises(PaymentInProgress):
        services.confirm_payment(payment, razorpay_order_id="order_x")
    assert services.sync_payment(payment).provider_payment_id is None  # left to the claimant
    assert len(fake.calls("order.create")) == 1
    expired = timezone.now() - timedelta(seconds=1)
    get_payment_model().objects.filter(pk=payment.pk).update(creating_until=expired)
    payment = services.sync_payment(payment)
    assert payment.provider_payment_id in fake.orders
    payment.refresh_from_db()
    assert payment.creating_until is None
