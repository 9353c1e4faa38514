"""Post-commit signals: their arguments, and delivery inside a test transaction."""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate import notifications, services, signals
from django_paygate.models import Notification, get_payment_model
from django_paygate.providers.dummy import CARD_SUCCEEDS
from tests.notifications.factories import make_notification

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("error")]


def test_capture_on_commit_callbacks_delivers(
    outbox: list[Any], signal_spy: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        payment = services.create_payment(amount=500, currency="JPY", email="a@example.com")
        services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)

    assert signal_spy.count("payment_succeeded") == 1
    [message] = outbox
    assert "¥500" in message.subject


def test_nothing_is_delivered_before_commit(outbox: list[Any], signal_spy: Any) -> None:
    payment = services.create_payment(amount=500, currency="USD", email="a@example.com")
    services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)

    # Inside the test's transaction: the change is made, nothing has been sent yet.
    assert signal_spy.count("payment_status_changed") >= 1
    assert signal_spy.count("payment_succeeded") == 0
    assert outbox == []
    assert Notification.objects.get(payment=payment).status == "pending"


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("payment_succeeded", set()),
        ("payment_needs_review", {"reason"}),
        ("refund_succeeded", {"refund"}),
        ("refund_failed", {"refund"}),
        ("dispute_opened", {"dispute"}),
        ("dispute_closed", {"dispute"}),
    ],
)
def test_signal_arguments(outbox: list[Any], kind: str, extra: set[str]) -> None:
    row = make_notification(kind, review_reason="amount differs")
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append({"sender": sender, **kwargs})

    signal = signals.POST_COMMIT_SIGNALS[kind]
    signal.connect(receiver, weak=False)
    try:
        assert notifications.deliver([row.pk])["sent"] == 1
    finally:
        signal.disconnect(receiver)

    [call] = calls
    assert call["sender"] is get_payment_model()
    assert set(call) == {"sender", "signal", "payment", *extra}
    assert call["payment"].pk == row.payment_id
    if "reason" in extra:
        assert call["reason"] == "amount differs"
    if "refund" in extra:
        assert call["refund"].pk == row.refund_id
    if "dispute" in extra:
        assert call["dispute"].pk == row.dispute_id
