"""The outbox end to end: rows written with the change, delivered once after commit.

These tests commit for real (``transaction=True``): delivery runs on commit,
through the default immediate task backend.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from django_paygate import notifications, services, signals
from django_paygate.exceptions import PaymentDeclined, ProviderError
from django_paygate.models import Notification, get_payment_model
from django_paygate.providers.dummy import CARD_DECLINED, CARD_SUCCEEDS, DummyProvider
from django_paygate.services import payments
from tests.conftest import pinned
from tests.factories import UserFactory
from tests.notifications.backends import FlakyBackend
from tests.notifications.conftest import emails_of, set_paygate
from tests.notifications.factories import make_notification
from tests.notifications.webhook import post_event, remote_confirm

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings("error")]


class Boom(Exception):
    pass


def _ignore(sender: Any, **kwargs: Any) -> None:
    """A receiver that does nothing."""


def _payment(**kwargs: Any) -> Any:
    kwargs.setdefault("email", "buyer@example.com")
    return services.create_payment(amount=1999, currency="USD", **kwargs)


def _pass_backoff() -> None:
    """As if the retry delay had passed."""
    Notification.objects.filter(status="pending").update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def test_failed_then_succeeded_one_email_each(
    dummy: DummyProvider, outbox: list[Any], signal_spy: Any
) -> None:
    payment = _payment()
    failed = remote_confirm(dummy, payment, CARD_DECLINED)
    succeeded = remote_confirm(dummy, payment, CARD_SUCCEEDS)

    for event in (failed, failed, succeeded, succeeded, failed):  # duplicates and a stale one
        assert post_event(event).status_code == 200

    assert [m.metadata["kind"] for m in outbox] == ["payment_failed", "payment_succeeded"]
    assert all(m.to == ["buyer@example.com"] for m in outbox)
    assert signal_spy.count("payment_failed") == 1
    assert signal_spy.count("payment_succeeded") == 1
    rows = Notification.objects.filter(payment=payment)
    assert sorted(rows.values_list("kind", "status")) == [
        ("payment_failed", "sent"),
        ("payment_succeeded", "sent"),
    ]


def test_services_failed_then_succeeded(dummy: DummyProvider, outbox: list[Any]) -> None:
    payment = _payment()
    with pytest.raises(PaymentDeclined):
        services.confirm_payment(payment, payment_method=CARD_DECLINED)
    services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)
    services.confirm_payment(payment, payment_method=CARD_SUCCEEDS)  # a second confirm: no-op

    assert [m.metadata["kind"] for m in outbox] == ["payment_failed", "payment_succeeded"]
    assert "Reason: The card was declined." in outbox[0].body


def test_rolled_back_transaction_sends_nothing(
    dummy: DummyProvider, outbox: list[Any], signal_spy: Any
) -> None:
    from django_paygate import webhooks

    by_service, by_webhook = _payment(), _payment()
    body, headers = remote_confirm(dummy, by_webhook, CARD_SUCCEEDS)

    written: list[int] = []

    def confirm_then_fail() -> None:
        with transaction.atomic():
            services.confirm_payment(by_service, payment_method=CARD_SUCCEEDS)
            written.append(Notification.objects.filter(payment=by_service).count())
            raise Boom

    def receive_then_fail() -> None:
        with transaction.atomic():
            assert webhooks.receive_webhook("dummy", body, headers).status_code == 200
            written.append(Notification.objects.filter(payment=by_webhook).count())
            raise Boom

    with pytest.raises(Boom):
        confirm_then_fail()
    with pytest.raises(Boom):
        receive_then_fail()

    assert written == [1, 1]  # the rows were written with the change ...
    assert not Notification.objects.exists()  # ... and rolled back with it
    assert outbox == []
    assert signal_spy.names().count("payment_succeeded") == 0
    for payment in (by_service, by_webhook):
        payment.refresh_from_db()
        assert payment.status == "pending"


def test_backend_raising_keeps_the_message_and_the_drain_sends_it_once(
    dummy: DummyProvider, flaky: type[FlakyBackend], outbox: list[Any], signal_spy: Any
) -> None:
    payment = _payment()
    event = remote_confirm(dummy, payment, CARD_SUCCEEDS)
    flaky.reset(failures=1)

    response = post_event(event)

    assert response.status_code == 200
    payment = get_payment_model().objects.get(pk=payment.pk)
    assert payment.status == "succeeded"  # committed, whatever the email did
    row = Notification.objects.get(payment=payment)
    assert row.status == "pending"
    assert row.attempts == 1
    assert row.signal_sent
    assert "AnymailAPIError" in row.last_error
    assert "503" in row.last_error
    assert row.next_attempt_at is not None
    assert row.next_attempt_at > timezone.now()
    assert outbox == []
    assert signal_spy.count("payment_succeeded") == 1

    call_command("paygate_send_notifications", stdout=_Sink())  # backoff not over: nothing
    assert outbox == []

    _pass_backoff()
    call_command("paygate_send_notifications", stdout=_Sink())
    call_command("paygate_send_notifications", stdout=_Sink())

    assert len(emails_of(outbox, "payment_succeeded")) == 1
    assert signal_spy.count("payment_succeeded") == 1  # not again with the retried email
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, "")
    assert flaky.calls == 2


def test_a_failing_receiver_stops_neither_the_others_nor_the_email(
    dummy: DummyProvider, outbox: list[Any], signal_spy: Any, caplog: Any
) -> None:
    def broken(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    after: list[Any] = []

    def later(sender: Any, payment: Any, **kwargs: Any) -> None:
        after.append(payment.pk)

    signals.payment_succeeded.connect(broken, weak=False)
    signals.payment_succeeded.connect(later, weak=False)
    try:
        with caplog.at_level(logging.ERROR, logger="django_paygate"):
            payment = services.confirm_payment(_payment(), payment_method=CARD_SUCCEEDS)
    finally:
        signals.payment_succeeded.disconnect(broken)
        signals.payment_succeeded.disconnect(later)

    assert payment.status == "succeeded"
    assert after == [payment.pk]
    assert signal_spy.count("payment_succeeded") == 1
    assert len(emails_of(outbox, "payment_succeeded")) == 1
    assert Notification.objects.get(payment=payment).status == "sent"
    assert "receiver bug" in caplog.text


def test_signal_receives_the_documented_arguments(dummy: DummyProvider, outbox: list[Any]) -> None:
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append({"sender": sender, **kwargs})

    signals.refund_succeeded.connect(receiver, weak=False)
    try:
        payment = services.confirm_payment(_payment(), payment_method=CARD_SUCCEEDS)
        refund = services.refund_payment(payment, amount=500)
    finally:
        signals.refund_succeeded.disconnect(receiver)

    [call] = seen
    assert call["sender"] is get_payment_model()
    assert call["payment"].pk == payment.pk
    assert call["refund"].pk == refund.pk
    [message] = emails_of(outbox, "refund_succeeded")
    assert "$5.00" in message.subject


def test_a_worker_backend_defers_delivery_to_the_drain(
    dummy: DummyProvider, outbox: list[Any], settings: Any, signal_spy: Any
) -> None:
    """With a backend that only queues (a stand-in for a worker), nothing is sent in-request."""
    settings.TASKS = {
        "default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"},
        "queue": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"},
    }
    set_paygate(settings, TASK_BACKEND="queue")

    services.confirm_payment(_payment(), payment_method=CARD_SUCCEEDS)

    assert outbox == []
    assert signal_spy.count("payment_succeeded") == 0
    assert Notification.objects.get().status == "pending"
    call_command("paygate_send_notifications", stdout=_Sink())
    assert len(outbox) == 1
    assert signal_spy.count("payment_succeeded") == 1


def test_no_task_backend_leaves_every_row_to_the_drain(
    dummy: DummyProvider,
    outbox: list[Any],
    settings: Any,
    signal_spy: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """``TASK_BACKEND = None``: no task, no commit hook; the drain command is the worker."""
    set_paygate(settings, TASK_BACKEND=None)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.confirm_payment(_payment(), payment_method=CARD_SUCCEEDS)

    assert callbacks == []
    assert outbox == []
    assert Notification.objects.get().status == "pending"
    call_command("paygate_send_notifications", stdout=_Sink())
    assert len(outbox) == 1
    assert signal_spy.count("payment_succeeded") == 1
    assert Notification.objects.get().status == "sent"


def test_enqueue_failure_leaves_the_row_for_the_drain(
    dummy: DummyProvider, outbox: list[Any], settings: Any, caplog: Any
) -> None:
    set_paygate(settings, TASK_BACKEND="missing")

    with caplog.at_level(logging.ERROR, logger="django_paygate"):
        services.confirm_payment(_payment(), payment_method=CARD_SUCCEEDS)

    assert "stay in the outbox" in caplog.text
    assert outbox == []
    call_command("paygate_send_notifications", stdout=_Sink())
    assert len(outbox) == 1


def test_a_lapsed_lease_is_reclaimed_and_a_live_one_is_not(outbox: list[Any]) -> None:
    live = make_notification("payment_succeeded")
    dead = make_notification("payment_succeeded")
    Notification.objects.filter(pk=live.pk).update(
        status="sending", attempts=1, next_attempt_at=timezone.now() + timedelta(minutes=1)
    )
    Notification.objects.filter(pk=dead.pk).update(
        status="sending", attempts=1, next_attempt_at=timezone.now() - timedelta(seconds=1)
    )

    assert notifications.due_ids() == [dead.pk]
    assert notifications.deliver([live.pk, dead.pk]) == {"sent": 1, "failed": 0, "skipped": 1}
    assert [m.metadata["notification_id"] for m in outbox] == [str(dead.pk)]
    dead.refresh_from_db()
    assert (dead.status, dead.attempts) == ("sent", 2)


def test_a_row_is_claimed_once() -> None:
    row = make_notification("payment_canceled")

    assert notifications.claim(row.pk)
    assert not notifications.claim(row.pk)
    assert notifications.deliver([row.pk]) == {"sent": 0, "failed": 0, "skipped": 1}


def test_a_stale_worker_cannot_overwrite_the_outcome(outbox: list[Any]) -> None:
    row = make_notification("payment_succeeded")
    assert notifications.claim(row.pk)
    stale = Notification.objects.get(pk=row.pk)  # worker 1 holds claim number 1 ...
    Notification.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())  # ... too long
    assert notifications.deliver([row.pk])["sent"] == 1  # worker 2 takes over and sends

    notifications._retry_later(row.pk, stale, RuntimeError("late failure of worker 1"))

    row.refresh_from_db()
    assert (row.status, row.last_error) == ("sent", "")
    assert len(outbox) == 1


def test_a_worker_that_outlived_its_lease_leaves_the_row_to_the_new_owner(
    outbox: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    row = make_notification("payment_succeeded", email="buyer@example.com")
    taken_over: list[dict[str, int]] = []
    start = timezone.now()

    def slow_receiver(**kwargs: Any) -> None:
        if taken_over:
            return
        # The receiver blocks past the lease; meanwhile the drain hands the row to worker 2.
        later = start + notifications.lease() + timedelta(seconds=1)
        monkeypatch.setattr(timezone, "now", lambda: later)
        assert notifications.due_ids() == [row.pk]
        taken_over.append(notifications.deliver([row.pk]))

    signals.payment_succeeded.connect(slow_receiver, weak=False)
    try:
        first = notifications.deliver([row.pk])
    finally:
        signals.payment_succeeded.disconnect(slow_receiver)

    assert taken_over == [{"sent": 1, "failed": 0, "skipped": 0}]
    assert first == {"sent": 0, "failed": 0, "skipped": 1}  # it stopped after its signal
    assert len(emails_of(outbox, "payment_succeeded")) == 1  # only the new owner's
    row.refresh_from_db()
    assert (row.status, row.attempts, row.signal_sent) == ("sent", 2, True)


def test_the_lease_is_a_setting_and_recording_the_signal_renews_it(
    outbox: list[Any], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_paygate(settings, NOTIFICATION_LEASE=90)
    row = make_notification("payment_succeeded")
    claimed_at = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: claimed_at)
    assert notifications.claim(row.pk)
    row.refresh_from_db()
    assert row.next_attempt_at == claimed_at + timedelta(seconds=90)

    signaled_at = claimed_at + timedelta(seconds=60)
    monkeypatch.setattr(timezone, "now", lambda: signaled_at)
    signals.payment_succeeded.connect(_ignore)
    try:
        assert notifications._send_signal(Notification.objects.get(pk=row.pk))
    finally:
        signals.payment_succeeded.disconnect(_ignore)
    row.refresh_from_db()
    assert (row.signal_sent, row.next_attempt_at) == (True, signaled_at + timedelta(seconds=90))


def test_given_up_after_max_attempts_then_retried_on_request(
    flaky: type[FlakyBackend], outbox: list[Any], settings: Any
) -> None:
    set_paygate(settings, NOTIFICATION_MAX_ATTEMPTS=2, NOTIFICATION_RETRY_DELAY=30)
    row = make_notification("payment_succeeded")
    flaky.reset(failures=10)

    notifications.deliver([row.pk])
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.next_attempt_at is not None
    assert timedelta(seconds=25) < row.next_attempt_at - timezone.now() <= timedelta(seconds=30)
    _pass_backoff()
    notifications.deliver([row.pk])
    row.refresh_from_db()
    assert (row.status, row.attempts, row.next_attempt_at) == ("failed", 2, None)
    assert notifications.due_ids() == []

    flaky.reset()
    call_command("paygate_send_notifications", "--retry-failed", stdout=_Sink())

    row.refresh_from_db()
    assert (row.status, row.attempts) == ("sent", 1)
    assert len(outbox) == 1


def test_delivery_without_receivers_costs_a_claim_and_a_mark(
    outbox: list[Any], django_assert_num_queries: Any
) -> None:
    """Claim and read (one statement on PostgreSQL), mark sent: no record of a signal
    that nobody received."""
    row = make_notification("payment_succeeded")

    with django_assert_num_queries(pinned(postgresql=2, other=3)):
        notifications.deliver([row.pk])

    assert len(outbox) == 1
    row.refresh_from_db()
    assert (row.status, row.signal_sent, row.attempts) == ("sent", True, 1)


def test_a_signal_only_kind_is_recorded_by_marking_it_sent(
    signal_spy: Any, django_assert_num_queries: Any
) -> None:
    row = make_notification("payment_canceled")

    with django_assert_num_queries(pinned(postgresql=2, other=3)):
        assert notifications.deliver([row.pk]) == {"sent": 1, "failed": 0, "skipped": 0}

    assert signal_spy.count("payment_canceled") == 1
    row.refresh_from_db()
    assert (row.status, row.signal_sent) == ("sent", True)


def test_a_signal_received_before_a_failed_email_is_not_repeated(
    flaky: type[FlakyBackend], outbox: list[Any], signal_spy: Any
) -> None:
    row = make_notification("payment_succeeded", email="buyer@example.com")
    flaky.reset(failures=1)

    assert notifications.deliver([row.pk])["failed"] == 1
    row.refresh_from_db()
    assert (row.status, row.signal_sent) == ("pending", True)
    _pass_backoff()
    assert notifications.deliver([row.pk])["sent"] == 1

    assert signal_spy.count("payment_succeeded") == 1
    assert len(outbox) == 1


def test_with_no_receiver_a_failed_email_leaves_the_signal_owed(
    flaky: type[FlakyBackend], outbox: list[Any]
) -> None:
    """Nobody received it, so nothing is recorded: a receiver there at the retry gets it."""
    row = make_notification("payment_succeeded", email="buyer@example.com")
    flaky.reset(failures=1)
    assert notifications.deliver([row.pk])["failed"] == 1
    row.refresh_from_db()
    assert (row.status, row.signal_sent) == ("pending", False)

    received: list[Any] = []

    def receiver(sender: Any, payment: Any, **kwargs: Any) -> None:
        received.append(payment.pk)

    _pass_backoff()
    signals.payment_succeeded.connect(receiver)
    try:
        assert notifications.deliver([row.pk])["sent"] == 1
    finally:
        signals.payment_succeeded.disconnect(receiver)

    assert received == [row.payment_id]
    assert len(outbox) == 1


@pytest.mark.parametrize("kind", ["refund_succeeded", "dispute_opened", "payment_succeeded"])
def test_delivery_reads_the_related_rows_in_its_one_read(
    kind: str, outbox: list[Any], django_assert_num_queries: Any
) -> None:
    """The refund, the dispute and the payment's user come with the row; a signal with a
    receiver and an email to follow is recorded before the email."""
    user = UserFactory(email="account@example.com")
    row = make_notification(kind, user=user, email="")
    seen: dict[str, Any] = {}

    def receiver(sender: Any, payment: Any, **kwargs: Any) -> None:
        seen.update(kwargs, payment=payment, user_email=payment.user.email)

    signal = signals.POST_COMMIT_SIGNALS[kind]
    signal.connect(receiver)
    try:
        with django_assert_num_queries(pinned(postgresql=3, other=4)):
            notifications.deliver([row.pk])
    finally:
        signal.disconnect(receiver)

    assert seen["payment"] == row.payment
    assert seen["payment"].amount == row.payment.amount
    assert seen["user_email"] == "account@example.com"
    if row.refund_id:
        assert (seen["refund"], seen["refund"].amount) == (row.refund, row.refund.amount)
    if row.dispute_id:
        assert (seen["dispute"], seen["dispute"].reason) == (row.dispute, "fraudulent")
    row.refresh_from_db()
    assert (row.status, row.signal_sent, row.attempts) == ("sent", True, 1)
    if kind != "dispute_opened":  # dispute emails go to the site's admins
        assert [m.to for m in outbox] == [["account@example.com"]]


def test_due_ids_are_oldest_first_after_a_key_and_limited() -> None:
    first, second, third = (make_notification("payment_succeeded").pk for _ in range(3))
    Notification.objects.filter(pk=second).update(status="sent")

    assert notifications.due_ids() == [first, third]
    assert notifications.due_ids(1) == [first]
    assert notifications.due_ids(after=first) == [third]
    assert notifications.due_ids(after=third) == []


def test_drain_task(outbox: list[Any]) -> None:
    from django_paygate.tasks import drain_notifications

    make_notification("payment_succeeded")
    make_notification("payment_failed")

    result = drain_notifications.enqueue()  # the immediate backend runs it now

    assert result.return_value == {"sent": 2, "failed": 0, "skipped": 0}
    assert len(outbox) == 2


def test_retry_delay_doubles_and_is_capped(settings: Any) -> None:
    set_paygate(settings, NOTIFICATION_RETRY_DELAY=60)
    delays = [notifications.retry_delay(n).total_seconds() for n in (1, 2, 3, 4, 50)]
    assert delays == [60, 120, 240, 480, notifications.MAX_RETRY_DELAY.total_seconds()]


class _Sink:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_after_a_partial_capture_the_emails_state_what_was_paid(
    dummy: DummyProvider, outbox: list[Any]
) -> None:
    payment = services.confirm_payment(_payment(capture=False), payment_method=CARD_SUCCEEDS)
    services.capture_payment(payment, amount=1200)  # of $19.99 authorized
    services.refund_payment(payment)

    [receipt] = emails_of(outbox, "payment_succeeded")
    [refunded] = emails_of(outbox, "refund_succeeded")
    for message in (receipt, refunded):
        text = message.subject + message.body + message.alternatives[0][0]
        assert "$12.00" in text
        assert "$19.99" not in text
    assert "$12.00 received" in receipt.subject
    assert "Your payment of $12.00 is now refunded in full." in refunded.body


def test_a_refusal_of_ours_reaches_the_customer_as_a_plain_sentence(
    dummy: DummyProvider, outbox: list[Any]
) -> None:
    detail = "Stripe rejected the API key (HTTP 401); check OPTIONS['secret_key'] of 'stripe'."
    dummy.fail_next("create_payment", ProviderError(detail, provider="dummy"))
    with pytest.raises(ProviderError):
        _payment()

    payment = get_payment_model().objects.get()
    assert (payment.status, payment.failure_message) == ("failed", payments.NOT_STARTED_MESSAGE)
    [message] = emails_of(outbox, "payment_failed")
    assert payments.NOT_STARTED_MESSAGE in message.body
    assert "secret_key" not in message.body + message.alternatives[0][0]
    assert payment.events.get(to_status="failed").note == detail  # staff still see why
