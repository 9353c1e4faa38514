"""The dummy provider's remote state outlives the instance that made it (database, cache)."""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate import services
from django_paygate.exceptions import ConfigurationError, ProviderError
from django_paygate.models import DummyRemoteObject, Refund
from django_paygate.providers import reset_providers
from django_paygate.providers.dummy import CARD_SUCCEEDS, DummyProvider
from django_paygate.states import RefundStatus

pytestmark = pytest.mark.django_db

SHARED = ["database", "cache"]


def paid(amount: int = 1999) -> Any:
    payment = services.create_payment(amount=amount, currency="USD")
    return services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)


@pytest.fixture(autouse=True)
def _clear_cache() -> Any:
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.mark.parametrize("store", SHARED)
def test_a_payment_made_before_a_restart_is_refunded_after_it(dummy_with, store):
    dummy_with(store=store)
    payment = paid()

    reset_providers()  # what a restart or an autoreload does: a new instance, no memory
    refund = services.refund_payment(payment)

    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.provider_refund_id == f"dummy_re_{refund.pk.hex}"
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded) == ("refunded", 1999)
    fresh = dummy_with(store=store)
    assert sum(r.amount for r in fresh._remote[payment.provider_payment_id].refunds.values()) == (
        1999
    )


def test_the_memory_store_forgets_on_restart(dummy_with):
    dummy_with(store="memory")
    payment = paid()
    reset_providers()
    with pytest.raises(ProviderError, match="No such payment"):
        services.refund_payment(payment)


def test_the_database_store_is_its_own_table_not_the_payment_rows(dummy_with):
    dummy_with(store="database")
    payment = paid()
    remote = DummyRemoteObject.objects.get(kind="payment", remote_id=payment.provider_payment_id)
    assert remote.provider == "dummy"
    assert remote.state["status"] == "succeeded"
    assert remote.state["captured"] == 1999
    assert remote.state["our_id"] == str(payment.pk)


@pytest.mark.parametrize("store", [*SHARED, "memory"])
def test_an_idempotency_key_gets_its_first_answer_from_a_new_instance(dummy_with, store):
    provider = dummy_with(store=store)
    payment = paid(1000)
    refund = Refund.objects.create(payment=payment, amount=400, currency="USD")
    first = provider.refund_payment(payment, refund, idempotency_key="k-1")
    if store != "memory":
        provider = DummyProvider("dummy", store=store)
    again = provider.refund_payment(payment, refund, idempotency_key="k-1")
    assert again == first
    assert provider._remote[payment.provider_payment_id].refunded == 400


@pytest.mark.parametrize("store", [*SHARED, "memory"])
def test_the_provider_refuses_an_over_refund(dummy_with, store):
    provider = dummy_with(store=store)
    payment = paid(1000)
    first = Refund.objects.create(payment=payment, amount=700, currency="USD")
    second = Refund.objects.create(payment=payment, amount=400, currency="USD")
    provider.refund_payment(payment, first, idempotency_key="a")

    with pytest.raises(ProviderError, match="exceeds what is left to refund"):
        provider.refund_payment(payment, second, idempotency_key="b")

    assert provider._remote[payment.provider_payment_id].refunded == 700
    # The same refund sent again under another key is the same refund, not a second one.
    assert provider.refund_payment(payment, first, idempotency_key="c").amount == 700
    assert provider._remote[payment.provider_payment_id].refunded == 700


@pytest.mark.parametrize("store", [*SHARED, "memory"])
def test_the_remote_view_lists_the_payments_and_reset_forgets_them(dummy_with, store):
    provider = dummy_with(store=store)
    one, two = paid(100), paid(200)
    assert set(provider._remote) == {one.provider_payment_id, two.provider_payment_id}
    assert len(provider._remote) == 2
    provider.reset()
    assert len(provider._remote) == 0
    assert provider._remote.get(one.provider_payment_id) is None


def test_an_unknown_store_is_a_configuration_error():
    with pytest.raises(ConfigurationError) as caught:
        DummyProvider("dummy", store="disk")
    assert str(caught.value) == (
        "PAYGATE['PROVIDERS']['dummy']['OPTIONS']['store'] must be "
        "'database' or 'cache' or 'memory'."
    )
