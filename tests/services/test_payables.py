"""Payments priced by the host's payable: one per payable, re-checked at confirmation."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser

from django_paygate import services
from django_paygate.exceptions import (
    AlreadyPaid,
    ConfigurationError,
    InvalidAmount,
    PayableChanged,
    PaymentDeclined,
)
from django_paygate.models import get_payment_model
from django_paygate.payables import Payable, payment_covers, problems
from django_paygate.providers.dummy import CARD_REQUIRES_ACTION, CARD_SUCCEEDS, DummyProvider
from django_paygate.webhooks import receive_webhook
from tests.factories import UserFactory
from tests.services.test_concurrency import run_together
from tests.testapp.models import Donation, Order

Payment = get_payment_model()


@pytest.fixture
def buyer(db: Any) -> Any:
    return UserFactory(email="buyer@example.com")


@pytest.fixture
def order(buyer: Any) -> Order:
    return Order.objects.create(reference="A-1", amount=50000, currency="USD", owner=buyer)


def creates(dummy: DummyProvider) -> set[str]:
    """The idempotency keys of the provider objects the dummy was asked to create."""
    return {key for method, key in dummy.calls if method == "create_payment"}


@pytest.mark.django_db
def test_the_payable_sets_amount_currency_description_and_email(
    order: Order, buyer: Any, dummy: DummyProvider
) -> None:
    order.email = "orders@example.com"
    order.save()
    payment = services.create_payment(payable=order, user=buyer)
    assert (payment.amount, payment.currency) == (50000, "USD")
    assert payment.description == "Order A-1"
    assert payment.email == "orders@example.com"
    assert payment.metadata == {"order": "A-1"}
    assert payment.payable == order
    assert payment.client_data is not None
    assert isinstance(order, Payable)


@pytest.mark.django_db
def test_without_an_address_of_its_own_the_receipt_goes_to_the_user(
    order: Order, buyer: Any
) -> None:
    assert services.create_payment(payable=order, user=buyer).email == "buyer@example.com"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "extra",
    [{"amount": 50}, {"currency": "EUR"}, {"email": "x@example.com"}, {"description": "free"}],
)
def test_a_payable_and_its_own_terms_together_are_an_error(
    order: Order, buyer: Any, extra: dict[str, Any]
) -> None:
    with pytest.raises(TypeError):
        services.create_payment(payable=order, user=buyer, **extra)
    assert not Payment.objects.exists()


@pytest.mark.django_db
def test_creating_again_returns_the_open_payment(
    order: Order, buyer: Any, dummy: DummyProvider
) -> None:
    first = services.create_payment(payable=order, user=buyer)
    again = services.create_payment(payable=order, user=buyer)
    assert again.pk == first.pk
    assert again.replayed
    assert again.client_data == first.client_data
    assert Payment.objects.count() == 1
    assert len(creates(dummy)) == 1


@pytest.mark.django_db
def test_a_declined_payment_is_still_the_open_one(order: Order, buyer: Any) -> None:
    first = services.create_payment(payable=order, user=buyer)
    with pytest.raises(PaymentDeclined):
        services.confirm_payment(first, payment_method="4000000000000002")
    assert services.create_payment(payable=order, user=buyer).pk == first.pk


@pytest.mark.django_db
def test_another_provider_or_price_is_another_payment(order: Order, buyer: Any) -> None:
    first = services.create_payment(payable=order, user=buyer)
    order.amount = 45000
    order.save()
    second = services.create_payment(payable=order, user=buyer)
    assert second.pk != first.pk
    assert second.amount == 45000


@pytest.mark.django_db
def test_a_paid_payable_refuses_another_payment(order: Order, buyer: Any) -> None:
    payment = services.create_payment(payable=order, user=buyer)
    services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    with pytest.raises(AlreadyPaid) as caught:
        services.create_payment(payable=order, user=buyer)
    assert (caught.value.code, caught.value.status_code) == ("already_paid", 409)
    assert Payment.objects.count() == 1


@pytest.mark.django_db
def test_an_unregistered_model_cannot_be_paid_for(buyer: Any, settings: Any) -> None:
    settings.PAYGATE = {**settings.PAYGATE, "PAYABLES": {}}
    order = Order.objects.create(reference="X", owner=buyer)
    with pytest.raises(ConfigurationError):
        services.create_payment(payable=order, user=buyer)


@pytest.mark.django_db
def test_misconfigured_payables_are_reported(settings: Any) -> None:
    settings.PAYGATE = {**settings.PAYGATE, "PAYABLES": {"o": "testapp.Nope", "u": "auth.User"}}
    found = problems()
    assert any("testapp.Nope" in p for p in found)
    assert any("auth.User" in p and "get_payment_amount" in p for p in found)


# ---------------------------------------------------------------------------
# Customer-chosen amounts (donations)
# ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_customer_amount_within_the_bounds(buyer: Any) -> None:
    donation = Donation.objects.create()
    payment = services.create_payment(payable=donation, user=buyer, customer_amount=2500)
    assert (payment.amount, payment.currency) == (2500, "EUR")
    services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    payment.refresh_from_db()
    assert payment_covers(payment)


@pytest.mark.django_db
@pytest.mark.parametrize("amount", [99, 100_001])
def test_a_customer_amount_outside_the_bounds_is_refused(buyer: Any, amount: int) -> None:
    with pytest.raises(InvalidAmount):
        services.create_payment(
            payable=Donation.objects.create(), user=buyer, customer_amount=amount
        )


@pytest.mark.django_db
def test_an_order_refuses_a_customer_amount(order: Order, buyer: Any) -> None:
    with pytest.raises(InvalidAmount):
        services.create_payment(payable=order, user=buyer, customer_amount=50)


# ---------------------------------------------------------------------------
# The price is checked again at confirmation
# ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("change", [{"amount": 60000}, {"currency": "EUR"}])
def test_a_changed_order_is_not_charged_at_the_old_price(
    order: Order, buyer: Any, dummy: DummyProvider, change: dict[str, Any]
) -> None:
    payment = services.create_payment(payable=order, user=buyer)
    Order.objects.filter(pk=order.pk).update(**change)
    with pytest.raises(PayableChanged) as caught:
        services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    assert (caught.value.code, caught.value.status_code) == ("payable_changed", 409)
    payment.refresh_from_db()
    assert payment.status == "canceled"
    assert payment.amount_captured == 0
    assert [m for m, _ in dummy.calls] == ["create_payment", "cancel_payment"]


@pytest.mark.django_db
def test_a_changed_order_is_caught_on_the_3ds_step_too(order: Order, buyer: Any) -> None:
    payment = services.create_payment(payable=order, user=buyer)
    services.confirm_payment(payment, payment_method=CARD_REQUIRES_ACTION)
    Order.objects.filter(pk=order.pk).update(amount=1)
    with pytest.raises(PayableChanged):
        services.confirm_payment(payment)
    payment.refresh_from_db()
    assert payment.status == "canceled"


@pytest.mark.django_db
def test_an_unchanged_order_is_confirmed(order: Order, buyer: Any) -> None:
    payment = services.create_payment(payable=order, user=buyer)
    paid = services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    assert paid.status == "succeeded"
    assert payment_covers(paid)


@pytest.mark.django_db
def test_a_webhook_reporting_success_after_a_change_flags_the_payment(
    order: Order, buyer: Any, dummy: DummyProvider
) -> None:
    payment = services.create_payment(payable=order, user=buyer)
    Order.objects.filter(pk=order.pk).update(amount=60000)
    # The customer paid on the provider's side (Stripe.js confirms in the browser):
    # the webhook tells us it succeeded, at the old price.
    body, headers = dummy.build_event(
        "payment.succeeded",
        {
            "payment": {
                "id": payment.provider_payment_id,
                "amount": 50000,
                "currency": "USD",
                "amount_captured": 50000,
                "status": "succeeded",
            },
            "payment_id": str(payment.pk),
        },
    )
    assert receive_webhook("dummy", body, headers).status_code == 200
    payment.refresh_from_db()
    assert payment.status == "succeeded"  # the money was taken: the record says so
    assert payment.needs_review
    assert "payable changed" in payment.review_reason
    assert not payment_covers(payment)


@pytest.mark.django_db
def test_payment_covers(order: Order, buyer: Any) -> None:
    payment = services.create_payment(payable=order, user=buyer)
    assert not payment_covers(payment)  # not paid yet
    paid = services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    assert payment_covers(paid)
    services.refund_payment(paid, amount=100)
    paid.refresh_from_db()
    assert not payment_covers(paid)  # part of it went back
    unlinked = services.create_payment(amount=50000, currency="USD", user=buyer)
    assert not payment_covers(services.confirm_payment(unlinked, payment_method=CARD_SUCCEEDS))


@pytest.mark.django_db
def test_anonymous_users_pay_as_nobody(order: Order) -> None:
    payment = services.create_payment(payable=order, user=AnonymousUser())
    assert payment.user is None


# ---------------------------------------------------------------------------
# Concurrent creates (PostgreSQL, real threads)
# ---------------------------------------------------------------------------


@pytest.mark.locking
@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_for_one_payable_give_one_payment(dummy: DummyProvider) -> None:
    buyer = UserFactory()
    order = Order.objects.create(reference="C-1", amount=50000, owner=buyer)
    results = run_together(4, lambda i: services.create_payment(payable=order, user=buyer))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({r.pk for r in results}) == 1
    assert Payment.objects.count() == 1
    assert len({r.provider_payment_id for r in results}) == 1
    assert len(creates(dummy)) == 1  # one provider object, however many asked
    assert all(r.client_data == results[0].client_data for r in results)
