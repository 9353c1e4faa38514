"""The services' contract: bad input, idempotency, repair by sync, side effects after commit."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from django_paygate import services
from django_paygate.exceptions import (
    IdempotencyConflict,
    InvalidAmount,
    InvalidTransition,
    ProviderUnavailable,
    RefundExceedsCaptured,
    UnknownProvider,
)
from django_paygate.models import Notification, PaymentEvent, Refund, get_payment_model
from django_paygate.providers.dummy import CARD_SUCCEEDS
from django_paygate.services import ledger
from django_paygate.states import PaymentStatus
from tests.conftest import count_data_statements, pinned
from tests.factories import PaymentFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def rows() -> tuple[int, int, int, int]:
    return (
        get_payment_model().objects.count(),
        Refund.objects.count(),
        PaymentEvent.objects.count(),
        Notification.objects.count(),
    )


def paid(amount: int = 1000, **kwargs) -> object:
    payment = services.create_payment(amount=amount, currency="USD", **kwargs)
    return services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)


# -- bad input writes nothing -------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"amount": 19.99, "currency": "USD"}, TypeError),
        ({"amount": Decimal("19.99"), "currency": "USD"}, TypeError),
        ({"amount": "1999", "currency": "USD"}, TypeError),
        ({"amount": True, "currency": "USD"}, TypeError),
        ({"amount": 0, "currency": "USD"}, InvalidAmount),
        ({"amount": -5, "currency": "USD"}, InvalidAmount),
        ({"amount": 100, "currency": "XYZ"}, InvalidAmount),
        ({"amount": 100, "currency": "usdollar"}, InvalidAmount),
        ({"amount": 100, "currency": "USD", "provider": "nope"}, UnknownProvider),
        ({"amount": 100, "currency": "USD", "metadata": {"x": object()}}, TypeError),
        ({"amount": 100, "currency": "USD", "idempotency_key": ""}, InvalidAmount),
    ],
)
def test_create_refuses_bad_input_and_writes_nothing(dummy, kwargs, error):
    before = rows()
    with pytest.raises(error):
        services.create_payment(**kwargs)
    assert rows() == before
    assert dummy.calls == []


def test_unsupported_currency_is_refused_before_any_call(dummy, monkeypatch):
    monkeypatch.setattr(type(dummy), "supported_currencies", frozenset({"USD"}))
    with pytest.raises(InvalidAmount, match="does not accept EUR"):
        services.create_payment(amount=100, currency="EUR")
    assert rows() == (0, 0, 0, 0)
    assert dummy.calls == []


def test_refund_of_a_pending_payment(dummy):
    payment = services.create_payment(amount=1000, currency="USD")
    before = rows()
    with pytest.raises(InvalidTransition):
        services.refund_payment(payment, amount=100)
    assert rows() == before


@pytest.mark.parametrize(
    ("amount", "error"),
    [(1001, RefundExceedsCaptured), (0, InvalidAmount), (-1, InvalidAmount), (10.5, TypeError)],
)
def test_refund_refuses_bad_amounts(dummy, amount, error):
    payment = paid(1000)
    services.refund_payment(payment, amount=400)
    before = rows()
    with pytest.raises(error):
        services.refund_payment(payment, amount=amount if amount != 1001 else 601)
    assert rows() == before


def test_refund_without_amount_refunds_what_is_left(dummy):
    payment = paid(1000)
    services.refund_payment(payment, amount=300)
    refund = services.refund_payment(payment)
    assert refund.amount == 700
    payment.refresh_from_db()
    assert (payment.status, payment.amount_refunded) == ("refunded", 1000)
    with pytest.raises(InvalidTransition):
        services.refund_payment(payment)


def test_capture_above_the_authorized_amount(dummy):
    payment = services.create_payment(amount=1000, currency="USD", capture=False)
    payment = services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    assert payment.status == "authorized"
    before = rows()
    with pytest.raises(InvalidAmount):
        services.capture_payment(payment, amount=1001)
    assert rows() == before
    payment = services.capture_payment(payment, amount=600)
    assert (payment.status, payment.amount_captured) == ("succeeded", 600)
    with pytest.raises(InvalidTransition):
        services.capture_payment(payment)


def test_cancel_an_authorization(dummy, signal_spy):
    payment = services.create_payment(amount=1000, currency="USD", capture=False)
    services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    payment = services.cancel_payment(payment)
    assert payment.status == "canceled"
    assert payment.canceled_at is not None
    assert signal_spy.count("payment_authorized") == 1
    assert signal_spy.count("payment_canceled") == 1
    with pytest.raises(InvalidTransition):
        services.cancel_payment(payment)


# -- idempotency ----------------------------------------------------------------


def test_same_key_same_parameters_returns_the_same_payment(dummy):
    user = UserFactory()
    first = services.create_payment(amount=500, currency="USD", user=user, idempotency_key="k1")
    second = services.create_payment(amount=500, currency="USD", user=user, idempotency_key="k1")
    assert first.pk == second.pk
    assert second.client_data["payment_id"] == str(first.pk)
    assert sum(1 for m, _ in dummy.calls if m == "create_payment") == 1


def test_same_key_other_parameters_is_a_conflict(dummy):
    services.create_payment(amount=500, currency="USD", idempotency_key="k2")
    before = rows()
    with pytest.raises(IdempotencyConflict):
        services.create_payment(amount=501, currency="USD", idempotency_key="k2")
    assert rows() == before


# -- crashes and timeouts: repaired by sync --------------------------------------------


@pytest.mark.parametrize("after", [False, True], ids=["request-lost", "answer-lost"])
def test_timeout_on_create_is_repaired_by_sync(dummy, after):
    dummy.fail_next("create_payment", after=after)
    with pytest.raises(ProviderUnavailable):
        services.create_payment(amount=900, currency="USD")
    payment = get_payment_model().objects.get()
    assert (payment.status, payment.provider_payment_id) == ("pending", None)
    payment = services.sync_payment(payment)
    assert payment.provider_payment_id == f"dummy_{payment.pk.hex}"
    # One remote object either way: found by our id, or created again with the same key.
    assert [key for method, key in dummy.calls if method == "create_payment"] == [
        f"paygate-{payment.pk}-create"
    ]
    assert len(dummy._remote) == 1


def test_provider_error_after_the_row_was_written_is_repaired_by_sync(dummy, signal_spy):
    payment = services.create_payment(amount=1200, currency="USD")
    dummy.fail_next("confirm_payment", after=True)  # charged, but the answer was lost
    with pytest.raises(ProviderUnavailable):
        services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert signal_spy.count("payment_succeeded") == 0

    payment = services.sync_payment(payment)
    assert (payment.status, payment.amount_captured) == ("succeeded", 1200)
    assert payment.events.filter(to_status="succeeded").count() == 1
    assert signal_spy.count("payment_succeeded") == 1
    services.sync_payment(payment)  # a second sync changes nothing
    assert payment.events.filter(to_status="succeeded").count() == 1
    assert signal_spy.count("payment_succeeded") == 1


def test_refund_timeout_stays_reserved_until_sync(dummy, signal_spy):
    payment = paid(1000)
    dummy.fail_next("refund_payment")  # the request never arrived
    with pytest.raises(ProviderUnavailable):
        services.refund_payment(payment, amount=800)
    refund = Refund.objects.get()
    assert refund.status == "pending"
    with pytest.raises(RefundExceedsCaptured):  # the 800 stays reserved
        services.refund_payment(payment, amount=300)
    payment = services.sync_payment(payment)
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 800)
    keys = [key for method, key in dummy.calls if method == "refund_payment"]
    assert keys == [refund.idempotency_key]
    assert signal_spy.count("refund_succeeded") == 1


def test_find_stuck_payments(dummy):
    stuck = PaymentFactory(status="pending")
    PaymentFactory(status="succeeded")
    get_payment_model().objects.update(updated_at="2020-01-01T00:00:00Z")
    fresh = PaymentFactory(status="pending")
    found = list(services.find_stuck_payments())
    assert found == [stuck]
    assert fresh not in found


# -- side effects after commit -----------------------------------------------------------


def test_rolled_back_transaction_sends_no_post_commit_signal(dummy, signal_spy):
    payment = services.create_payment(amount=1000, currency="USD")
    result = dummy.confirm_payment(payment, idempotency_key="x", payment_method=CARD_SUCCEEDS)

    def change_then_fail() -> None:
        with transaction.atomic():
            locked = ledger.lock_payment(payment.pk)
            ledger.apply_payment(locked, result, ledger.API)
            raise RuntimeError("the host's code failed after the change")

    with pytest.raises(RuntimeError):
        change_then_fail()
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert signal_spy.count("payment_status_changed") == 1  # sent inside, rolled back with it
    assert signal_spy.count("payment_succeeded") == 0
    assert Notification.objects.count() == 0


def test_a_failing_in_transaction_receiver_rolls_the_change_back(dummy):
    from django_paygate.signals import payment_status_changed

    def boom(**kwargs):
        raise RuntimeError("order table locked")

    payment = services.create_payment(amount=1000, currency="USD")
    payment_status_changed.connect(boom)
    try:
        with pytest.raises(RuntimeError):
            services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    finally:
        payment_status_changed.disconnect(boom)
    payment.refresh_from_db()
    assert payment.status == "pending"
    payment = services.sync_payment(payment)
    assert payment.status == "succeeded"


def test_a_failing_post_commit_receiver_breaks_nothing(dummy, signal_spy):
    from django_paygate.signals import payment_succeeded

    def boom(**kwargs):
        raise RuntimeError("CRM down")

    payment_succeeded.connect(boom)
    try:
        payment = paid(1000)
    finally:
        payment_succeeded.disconnect(boom)
    assert payment.status == "succeeded"
    assert signal_spy.count("payment_succeeded") == 1
    assert Notification.objects.get(kind="payment_succeeded").status == "sent"


# -- pinned statement counts --------------------------------------------------------------


def test_statement_counts(dummy, monkeypatch):
    """Each service's own SQL, pinned (outbox delivery is pinned in tests/notifications)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    monkeypatch.setattr("django_paygate.notifications.enqueue", lambda ids, **options: None)

    def statements(fn):
        with CaptureQueriesContext(connection) as ctx:
            result = fn()
        return result, count_data_statements(ctx)

    payment, n = statements(lambda: services.create_payment(amount=1000, currency="USD"))
    assert n == 4  # insert payment + audit; lock, link the provider id
    payment, n = statements(lambda: services.confirm_payment(payment, payment_method=CARD_SUCCEEDS))
    assert n == pinned(postgresql=3, other=5)  # read; lock, (update, audit, outbox)
    _, n = statements(lambda: services.refund_payment(payment, amount=100))
    # lock, pending sum, insert refund, audit | lock, lock refund, update refund,
    # (update payment, audit, refund outbox row; the partial refund owes no payment email)
    # | reload
    assert n == pinned(postgresql=9, other=11)
    _, n = statements(lambda: services.sync_payment(payment))
    assert n == 5  # read; lock, refund lookup, unanswered refunds; reload
    with CaptureQueriesContext(connection) as ctx:
        services.create_payment(amount=1000, currency="USD", idempotency_key="pin")
        services.create_payment(amount=1000, currency="USD", idempotency_key="pin")
    assert count_data_statements(ctx) == 5 + 1  # first: lookup + 4; replay: lookup


def test_confirming_a_paid_payment_again_returns_it_without_a_call(dummy):
    payment = paid(1000)
    calls = len(dummy.calls)
    again = services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    assert again.status == "succeeded"
    assert len(dummy.calls) == calls
    canceled = services.cancel_payment(services.create_payment(amount=500, currency="USD"))
    with pytest.raises(InvalidTransition):
        services.confirm_payment(canceled, payment_method=CARD_SUCCEEDS)


def _deliver(dummy, event_type: str, payment, **fields) -> int:
    from django_paygate.webhooks import receive_webhook

    data = {"id": payment.provider_payment_id, "amount": payment.amount, "currency": "USD"}
    body, headers = dummy.build_event(
        event_type, {"payment": {**data, **fields}, "payment_id": str(payment.pk)}
    )
    return receive_webhook("dummy", body, headers).status_code


def test_money_taken_for_a_canceled_payment_is_flagged_not_dropped(dummy, signal_spy):
    payment = services.cancel_payment(services.create_payment(amount=1000, currency="USD"))
    assert _deliver(dummy, "payment.succeeded", payment, amount_captured=1000) == 200
    payment.refresh_from_db()
    assert payment.status == "canceled"
    assert payment.needs_review
    assert "captured, but it is canceled here" in payment.review_reason
    assert signal_spy.count("payment_needs_review") == 1


def test_a_stale_event_does_not_overwrite_provider_references(dummy):
    payment = paid(1000)
    from django.db import transaction as tx

    from django_paygate.providers.base import ProviderPayment

    with tx.atomic():
        locked = ledger.lock_payment(payment.pk)
        locked.provider_data = {"attempt": "captured-one"}
        locked.save(update_fields=["provider_data"])
        late = ProviderPayment(
            provider_payment_id=payment.provider_payment_id,
            status=PaymentStatus.AUTHORIZED,
            provider_data={"attempt": "late-one"},
        )
        assert ledger.apply_payment(locked, late, ledger.Origin("webhook")) is False
    payment.refresh_from_db()
    assert payment.provider_data == {"attempt": "captured-one"}


def test_confirm_captures_an_automatic_payment_a_webhook_left_authorized(dummy):
    payment = services.create_payment(amount=1000, currency="USD")
    assert _deliver(dummy, "payment.authorized", payment) == 200
    payment.refresh_from_db()
    assert payment.status == "authorized"
    payment = services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    assert (payment.status, payment.amount_captured) == ("succeeded", 1000)


def test_every_declined_attempt_is_audited(dummy):
    from django_paygate.exceptions import PaymentDeclined
    from django_paygate.providers.dummy import CARD_DECLINED

    payment = services.create_payment(amount=1000, currency="USD")
    for card in (CARD_DECLINED, "4000000000009995", CARD_DECLINED):
        with pytest.raises(PaymentDeclined):
            services.confirm_payment(payment, payment_method=card)
    failed = payment.events.filter(to_status="failed")
    assert failed.count() == 3
    assert failed.filter(from_status="failed").count() == 2


def test_replay_is_marked_and_carries_fresh_client_data(dummy):
    first = services.create_payment(amount=500, currency="USD", idempotency_key="rk")
    assert first.replayed is False
    again = services.create_payment(amount=500, currency="USD", idempotency_key="rk")
    assert again.replayed is True
    assert again.client_data == first.client_data
    paid_payment = services.confirm_payment(again, payment_method=CARD_SUCCEEDS)
    assert services.payment_client_data(paid_payment) is None
