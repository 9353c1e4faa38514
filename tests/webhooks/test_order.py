"""Events arrive in any order: stale ones change nothing, and any order ends the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_paygate import services, webhooks
from django_paygate.models import Dispute, PaymentEvent, Refund, WebhookEvent, get_payment_model
from django_paygate.providers.dummy import CARD_SUCCEEDS
from tests.factories import PaymentFactory
from tests.webhooks.events import Delivery, dispute_event, payment_event, refund_event

pytestmark = pytest.mark.django_db


def _reload(payment: Any) -> Any:
    return get_payment_model().objects.get(pk=payment.pk)


@pytest.fixture
def deliver(
    django_capture_on_commit_callbacks: Any,
) -> Callable[[Delivery], webhooks.WebhookResult]:
    """Deliver through the pipeline, then run what was owed after commit (signals)."""

    def run(delivery: Delivery) -> webhooks.WebhookResult:
        body, headers = delivery
        with django_capture_on_commit_callbacks(execute=True):
            return webhooks.receive_webhook("dummy", body, headers)

    return run


def _signals(spy: Any, name: str, payment: Any) -> int:
    return sum(1 for call in spy.of(name) if call.payment.pk == payment.pk)


@pytest.mark.parametrize("stale", ["processing", "authorized", "requires_action", "pending"])
def test_stale_event_after_succeeded_changes_nothing(dummy, deliver, signal_spy, stale):
    payment = PaymentFactory(status="pending")
    assert deliver(payment_event(dummy, payment, "succeeded")).outcome == webhooks.PROCESSED
    before = _reload(payment)

    result = deliver(payment_event(dummy, payment, stale))

    assert result.status_code == 200
    after = _reload(payment)
    assert (after.status, after.amount_captured, after.updated_at) == (
        "succeeded",
        before.amount_captured,
        before.updated_at,
    )
    assert not PaymentEvent.objects.filter(payment=payment, to_status=stale).exists()
    assert _signals(signal_spy, "payment_status_changed", payment) == 1
    # The stale event is recorded in the inbox, linked to its payment.
    assert WebhookEvent.objects.get(pk=result.event_id).payment_id == payment.pk


def test_failed_then_succeeded(dummy, deliver, signal_spy):
    payment = PaymentFactory(status="pending")
    deliver(payment_event(dummy, payment, "failed", failure_code="card_declined"))
    assert _reload(payment).failure_code == "card_declined"
    deliver(payment_event(dummy, payment, "succeeded"))
    payment = _reload(payment)
    assert payment.status == "succeeded"
    assert payment.failure_code == ""
    assert _signals(signal_spy, "payment_failed", payment) == 1
    assert _signals(signal_spy, "payment_succeeded", payment) == 1


def test_succeeded_then_failed_is_stale(dummy, deliver, signal_spy):
    payment = PaymentFactory(status="pending")
    deliver(payment_event(dummy, payment, "succeeded"))
    deliver(payment_event(dummy, payment, "failed", failure_code="card_declined"))
    assert _reload(payment).status == "succeeded"
    assert _signals(signal_spy, "payment_failed", payment) == 0
    assert _signals(signal_spy, "payment_succeeded", payment) == 1


def test_stale_failed_event_leaves_failure_code_alone(dummy, deliver):
    payment = PaymentFactory(status="pending")
    deliver(payment_event(dummy, payment, "succeeded"))
    deliver(payment_event(dummy, payment, "failed", failure_code="card_declined"))
    assert _reload(payment).failure_code == ""


def test_refund_unknown_to_us_is_created_once(dummy, deliver, signal_spy):
    payment = PaymentFactory(status="succeeded")
    first = refund_event(dummy, payment, "dummy_re_dash", "succeeded", 400)
    again = refund_event(dummy, payment, "dummy_re_dash", "succeeded", 400)  # another event id
    pending_late = refund_event(dummy, payment, "dummy_re_dash", "pending", 400)
    for delivery in (first, again, pending_late, first):
        assert deliver(delivery).status_code == 200
    refund = Refund.objects.get(payment=payment)
    assert (refund.provider_refund_id, refund.amount, refund.status) == (
        "dummy_re_dash",
        400,
        "succeeded",
    )
    assert refund.source == "webhook"
    payment = _reload(payment)
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 400)
    assert _signals(signal_spy, "refund_succeeded", payment) == 1


def test_pending_then_succeeded_refund_from_the_dashboard(dummy, deliver):
    payment = PaymentFactory(status="succeeded")
    deliver(refund_event(dummy, payment, "dummy_re_2", "pending", 1000))
    refund = Refund.objects.get(payment=payment)
    assert refund.status == "pending"
    deliver(refund_event(dummy, payment, "dummy_re_2", "succeeded", 1000))
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert Refund.objects.filter(payment=payment).count() == 1
    assert _reload(payment).status == "refunded"


def test_refund_before_its_payment_is_captured_is_early(dummy, deliver):
    payment = PaymentFactory(status="processing")
    refund = refund_event(dummy, payment, "dummy_re_early", "succeeded", 250)

    result = deliver(refund)
    assert (result.status_code, result.outcome) == (409, webhooks.EARLY)
    row = WebhookEvent.objects.get(pk=result.event_id)
    assert row.status == WebhookEvent.Status.FAILED
    assert "dummy_re_early" in row.error
    assert not Refund.objects.exists()
    assert _reload(payment).needs_review is False

    deliver(payment_event(dummy, payment, "succeeded"))
    assert deliver(refund).outcome == webhooks.PROCESSED  # the provider's redelivery
    payment = _reload(payment)
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 250)
    assert WebhookEvent.objects.get(pk=result.event_id).attempts == 2


def test_failed_refund_of_unknown_refund_is_not_early(dummy, deliver):
    payment = PaymentFactory(status="processing")
    result = deliver(refund_event(dummy, payment, "dummy_re_x", "failed", 250))
    assert result.outcome == webhooks.PROCESSED
    refund = Refund.objects.get()  # recorded as over; it holds nothing
    assert (refund.provider_refund_id, refund.status) == ("dummy_re_x", "failed")
    payment = _reload(payment)
    assert (payment.status, payment.amount_refunded) == ("processing", 0)


def test_dispute_events_in_any_order_make_one_dispute(dummy, deliver, signal_spy):
    payment = PaymentFactory(status="succeeded")
    deliver(dispute_event(dummy, payment, "dp_1", "open"))
    deliver(dispute_event(dummy, payment, "dp_1", "open"))
    deliver(dispute_event(dummy, payment, "dp_1", "lost"))
    deliver(dispute_event(dummy, payment, "dp_1", "under_review"))  # stale: it is closed
    dispute = Dispute.objects.get(payment=payment)
    assert dispute.status == "lost"
    assert _signals(signal_spy, "dispute_opened", payment) == 1
    assert _signals(signal_spy, "dispute_closed", payment) == 1


def test_services_and_their_own_webhooks_agree(
    dummy, deliver, signal_spy, django_capture_on_commit_callbacks
):
    """A payment made through the services, then every event the provider sent, reversed."""
    with django_capture_on_commit_callbacks(execute=True):
        payment = services.create_payment(amount=2500, currency="EUR")
        payment = services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
        refund = services.refund_payment(payment, amount=500)
    sent = list(dummy.sent_events)
    assert len(sent) == 2  # payment.succeeded, refund.succeeded
    for delivery in reversed(sent):
        assert deliver(delivery).status_code == 200
    payment = _reload(payment)
    assert (payment.status, payment.amount_captured, payment.amount_refunded) == (
        "partially_refunded",
        2500,
        500,
    )
    assert list(Refund.objects.filter(payment=payment)) == [refund]
    assert _signals(signal_spy, "payment_succeeded", payment) == 1
    assert _signals(signal_spy, "refund_succeeded", payment) == 1


# -- any order ends the same ----------------------------------------------------

HISTORY = (
    "payment.processing",
    "payment.failed",
    "payment.succeeded",
    "payment.succeeded again",  # the same change under another event id
    "refund.succeeded re_1",
    "refund.pending re_2",
    "refund.succeeded re_2",
    "dispute.open",
)


def _history(dummy: Any, payment: Any) -> dict[str, Delivery]:
    return {
        "payment.processing": payment_event(dummy, payment, "processing"),
        "payment.failed": payment_event(dummy, payment, "failed", failure_code="card_declined"),
        "payment.succeeded": payment_event(dummy, payment, "succeeded"),
        "payment.succeeded again": payment_event(dummy, payment, "succeeded"),
        "refund.succeeded re_1": refund_event(dummy, payment, "re_1", "succeeded", 300),
        "refund.succeeded re_2": refund_event(dummy, payment, "re_2", "succeeded", 200),
        "refund.pending re_2": refund_event(dummy, payment, "re_2", "pending", 200),
        "dispute.open": dispute_event(dummy, payment, "dp_1", "open", amount=500),
    }


def _deliver_like_a_provider(
    deliver: Callable[[Delivery], webhooks.WebhookResult], deliveries: list[Delivery]
) -> None:
    """Deliver in order; what is not acknowledged is delivered again, in order, until it is."""
    pending = deliveries
    for _ in range(len(deliveries) + 1):
        pending = [d for d in pending if deliver(d).status_code != 200]
        if not pending:
            return
    raise AssertionError(f"{len(pending)} deliveries were never acknowledged")


def _state(payment: Any) -> tuple[Any, ...]:
    payment = _reload(payment)
    refunds = sorted(
        Refund.objects.filter(payment=payment).values_list("provider_refund_id", "amount", "status")
    )
    disputes = sorted(
        Dispute.objects.filter(payment=payment).values_list("provider_dispute_id", "status")
    )
    return (
        payment.status,
        payment.amount,
        payment.amount_captured,
        payment.amount_refunded,
        payment.needs_review,
        tuple(refunds),
        tuple(disputes),
    )


EXPECTED = (
    "partially_refunded",
    1000,
    1000,
    500,
    False,
    (("re_1", 300, "succeeded"), ("re_2", 200, "succeeded")),
    (("dp_1", "open"),),
)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(order=st.permutations(HISTORY))
def test_any_order_of_a_history_ends_the_same(dummy, deliver, signal_spy, order):
    payment = PaymentFactory(status="pending", amount=1000, currency="USD")
    events = _history(dummy, payment)

    _deliver_like_a_provider(deliver, [events[name] for name in order])

    assert _state(payment) == EXPECTED
    assert _signals(signal_spy, "payment_succeeded", payment) == 1
    assert _signals(signal_spy, "refund_succeeded", payment) == 2
    assert _signals(signal_spy, "dispute_opened", payment) == 1
    assert WebhookEvent.objects.filter(payment=payment).count() == len(HISTORY)
    # Replaying the whole history once more, in the same order, changes nothing.
    _deliver_like_a_provider(deliver, [events[name] for name in order])
    assert _state(payment) == EXPECTED


def test_canonical_order_reaches_the_expected_state(dummy, deliver):
    """The reference the property compares with: the history in the order it happened."""
    payment = PaymentFactory(status="pending", amount=1000, currency="USD")
    events = _history(dummy, payment)
    for name in HISTORY:
        assert deliver(events[name]).status_code == 200
    assert _state(payment) == EXPECTED
