"""Two refunds of one remote payment at once: the dummy provider gives back only what it took."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from django_paygate import services
from django_paygate.exceptions import ProviderError
from django_paygate.models import Refund
from django_paygate.providers import dummy as dummy_module
from django_paygate.providers.dummy import CARD_SUCCEEDS
from tests.services.test_concurrency import in_thread

pytestmark = [pytest.mark.locking, pytest.mark.django_db(transaction=True)]


# The cache store is exercised with the test suite's cache, shared by the threads.
@pytest.mark.parametrize("store", ["database", "cache"])
def test_two_processes_cannot_both_refund_the_whole_payment(dummy_with, store, monkeypatch):
    provider = dummy_with(store=store)
    payment = services.confirm_payment(
        services.create_payment(amount=1000, currency="USD"), payment_method=CARD_SUCCEEDS
    )
    # Two refund requests that each think the whole payment is still there (two sites,
    # two processes, each with its own view): the remote side alone must refuse one.
    first = Refund.objects.create(payment=payment, amount=1000, currency="USD")
    second = Refund.objects.create(payment=payment, amount=1000, currency="USD")

    # The first refund stops after reading the remote payment, holding whatever lock it has.
    read, go_on = threading.Event(), threading.Event()
    load = dummy_module._Remote.from_json
    pause_once = [True]

    def slow_load(state: Any) -> Any:
        remote = load(state)
        if pause_once[0]:  # the first refund; the second starts once it is here
            pause_once[0] = False
            read.set()
            assert go_on.wait(30)
        return remote

    monkeypatch.setattr(dummy_module._Remote, "from_json", staticmethod(slow_load))
    a, out_a = in_thread(lambda: provider.refund_payment(payment, first, idempotency_key="a"))
    assert read.wait(30)
    b, out_b = in_thread(lambda: provider.refund_payment(payment, second, idempotency_key="b"))
    b.join(1)  # without a lock, the second refund completes here
    go_on.set()
    a.join(30)
    b.join(30)

    outcomes = sorted(type(o).__name__ for o in (*out_a, *out_b))
    assert outcomes == ["ProviderError", "ProviderRefund"]
    error = next(o for o in (*out_a, *out_b) if isinstance(o, ProviderError))
    assert "exceeds what is left to refund" in str(error)
    assert provider._remote[payment.provider_payment_id].refunded == 1000
