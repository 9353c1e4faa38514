"""``paygate_replay_webhooks`` and ``paygate_prune_webhooks``."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_paygate import webhooks
from django_paygate.models import PaymentEvent, WebhookEvent, get_payment_model
from django_paygate.signals import payment_status_changed
from tests.factories import PaymentFactory
from tests.webhooks.events import payment_event

pytestmark = pytest.mark.django_db

S = WebhookEvent.Status


def run(name: str, *args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


class Broken:
    """A ``payment_status_changed`` receiver that fails until it is fixed."""

    def __init__(self) -> None:
        self.broken = True
        payment_status_changed.connect(self, weak=False)

    def __call__(self, **kwargs: Any) -> None:
        if self.broken:
            raise RuntimeError("the shop is down")

    def close(self) -> None:
        payment_status_changed.disconnect(self)


@pytest.fixture
def broken() -> Any:
    receiver = Broken()
    yield receiver
    receiver.close()


def _failed_event(dummy: Any, **payment_fields: Any) -> tuple[Any, WebhookEvent]:
    payment = PaymentFactory(status="pending", **payment_fields)
    body, headers = payment_event(dummy, payment, "succeeded")
    result = webhooks.receive_webhook("dummy", body, headers)
    assert result.status_code == 500
    return payment, WebhookEvent.objects.get(pk=result.event_id)


def _status(payment: Any) -> str:
    return get_payment_model().objects.get(pk=payment.pk).status


def _age(row: WebhookEvent, days: float) -> None:
    WebhookEvent.objects.filter(pk=row.pk).update(received_at=timezone.now() - timedelta(days=days))


# -- replay ---------------------------------------------------------------------------


def test_replay_processes_failed_events(dummy, broken):
    first, row1 = _failed_event(dummy)
    second, row2 = _failed_event(dummy)
    broken.broken = False

    out, _ = run("paygate_replay_webhooks")

    assert "2 event(s) replayed: 2 processed." in out
    assert (_status(first), _status(second)) == ("succeeded", "succeeded")
    for row in (row1, row2):
        row.refresh_from_db()
        assert (row.status, row.attempts, row.error) == (S.PROCESSED, 2, "")


def test_replay_leaves_processed_events_alone_by_default(dummy):
    payment = PaymentFactory(status="pending")
    body, headers = payment_event(dummy, payment, "succeeded")
    webhooks.receive_webhook("dummy", body, headers)
    out, _ = run("paygate_replay_webhooks")
    assert "No matching webhook events (only failed events; see --all-statuses)." in out
    assert WebhookEvent.objects.get().attempts == 1


def test_replay_all_statuses_changes_nothing_twice(
    dummy, signal_spy, django_capture_on_commit_callbacks
):
    payment = PaymentFactory(status="pending")
    body, headers = payment_event(dummy, payment, "succeeded")
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.receive_webhook("dummy", body, headers)
        out, _ = run("paygate_replay_webhooks", "--all-statuses")
    assert "1 event(s) replayed: 1 processed." in out
    assert WebhookEvent.objects.get().attempts == 2
    assert PaymentEvent.objects.filter(payment=payment, to_status="succeeded").count() == 1
    assert signal_spy.count("payment_succeeded") == 1


def test_replay_still_failing_is_an_error(dummy, broken):
    payment, row = _failed_event(dummy)
    with pytest.raises(CommandError, match="1 event"):
        run("paygate_replay_webhooks")
    row.refresh_from_db()
    assert (row.status, row.attempts) == (S.FAILED, 2)
    assert _status(payment) == "pending"


@pytest.mark.parametrize("by", ["event_id", "pk"])
def test_replay_by_id(dummy, broken, by):
    first, _ = _failed_event(dummy)
    second, row2 = _failed_event(dummy)
    broken.broken = False
    out, _ = run("paygate_replay_webhooks", "--id", str(getattr(row2, by)))
    assert "1 event(s) replayed: 1 processed." in out
    assert (_status(first), _status(second)) == ("pending", "succeeded")


def test_replay_by_an_id_that_only_looks_numeric(dummy, broken):
    _failed_event(dummy)
    out, _ = run("paygate_replay_webhooks", "--id", "²")  # str.isdigit() says yes, int() no
    assert "No matching webhook events" in out


def test_replay_by_provider(dummy, broken):
    _failed_event(dummy)
    broken.broken = False
    out, _ = run("paygate_replay_webhooks", "--provider", "stripe-eu")
    assert "No matching webhook events" in out
    out, _ = run("paygate_replay_webhooks", "--provider", "dummy")
    assert "1 processed" in out


def test_replay_by_dates(dummy, broken):
    old_payment, old = _failed_event(dummy)
    new_payment, _ = _failed_event(dummy)
    broken.broken = False
    WebhookEvent.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=10))
    today = timezone.localdate()

    out, _ = run("paygate_replay_webhooks", "--until", str(today - timedelta(days=5)))
    assert "1 event(s) replayed: 1 processed." in out
    assert (_status(old_payment), _status(new_payment)) == ("succeeded", "pending")

    out, _ = run("paygate_replay_webhooks", "--since", str(today))
    assert "1 event(s) replayed: 1 processed." in out
    assert _status(new_payment) == "succeeded"


def test_until_a_date_includes_that_day(dummy, broken):
    payment, _ = _failed_event(dummy)
    broken.broken = False
    run("paygate_replay_webhooks", "--until", str(timezone.localdate()))
    assert _status(payment) == "succeeded"


def test_replay_dry_run_lists_and_changes_nothing(dummy, broken):
    payment, row = _failed_event(dummy)
    broken.broken = False
    out, _ = run("paygate_replay_webhooks", "--dry-run")
    assert row.event_id in out
    assert "1 event(s) would be replayed (dry run)." in out
    assert _status(payment) == "pending"


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "yesterday"],
        ["--since", "2024-02-30"],
        ["--since", "2024-02-02", "--until", "2024-02-01"],
    ],
)
def test_replay_rejects_bad_dates(args):
    with pytest.raises(CommandError):
        run("paygate_replay_webhooks", *args)


# -- prune ----------------------------------------------------------------------------


def _row(status: str, days: float, event_id: str | None = None) -> WebhookEvent:
    row = WebhookEvent.objects.create(
        provider="dummy", event_id=event_id or f"evt_{status}_{days}", payload="{}", status=status
    )
    _age(row, days)
    return row


def _left() -> set[str]:
    return set(WebhookEvent.objects.values_list("event_id", flat=True))


def test_prune_deletes_old_processed_and_ignored_only():
    _row(S.PROCESSED, 31)
    _row(S.IGNORED, 40)
    _row(S.FAILED, 90)
    _row(S.RECEIVED, 90)
    _row(S.PROCESSED, 29)

    out, err = run("paygate_prune_webhooks")

    assert "Deleted 2 processed and ignored webhook event(s) older than 30 day(s)." in out
    assert err == ""
    assert _left() == {"evt_failed_90", "evt_received_90", "evt_processed_29"}


def test_prune_keeps_the_audit_trail():
    payment = PaymentFactory(status="succeeded")
    row = _row(S.PROCESSED, 60)
    change = PaymentEvent.objects.create(
        payment=payment,
        from_status="pending",
        to_status="succeeded",
        source="webhook",
        webhook_event=row,
    )
    run("paygate_prune_webhooks")
    change.refresh_from_db()
    assert change.webhook_event_id is None
    assert not WebhookEvent.objects.exists()


def test_prune_include_failed():
    _row(S.FAILED, 31)
    _row(S.RECEIVED, 31)
    out, _ = run("paygate_prune_webhooks", "--include-failed")
    assert "Deleted 1 processed, ignored and failed" in out
    assert _left() == {"evt_received_31"}


def test_prune_older_than_and_dry_run():
    _row(S.PROCESSED, 11)
    _row(S.PROCESSED, 9)
    out, _ = run("paygate_prune_webhooks", "--older-than", "10", "--dry-run")
    assert "1 processed and ignored webhook event(s) older than 10 day(s) would be deleted" in out
    assert len(_left()) == 2
    run("paygate_prune_webhooks", "--older-than", "10")
    assert _left() == {"evt_processed_9"}


def test_prune_default_follows_the_setting(settings):
    settings.PAYGATE = {**settings.PAYGATE, "WEBHOOK_RETENTION_DAYS": 12}
    _row(S.PROCESSED, 13)
    _row(S.PROCESSED, 11)
    out, _ = run("paygate_prune_webhooks")
    assert "older than 12 day(s)" in out
    assert _left() == {"evt_processed_11"}


def test_prune_in_batches():
    for i in range(7):
        _row(S.PROCESSED, 40, event_id=f"evt_{i}")
    assert webhooks.prune_events(older_than_days=30, batch_size=3) == 7
    assert not WebhookEvent.objects.exists()


def test_prune_short_retention_warns():
    _, err = run("paygate_prune_webhooks", "--older-than", "3")
    assert "processed again" in err


def test_prune_rejects_negative_days():
    with pytest.raises(CommandError):
        run("paygate_prune_webhooks", "--older-than", "-1")


def test_pruned_event_delivered_again_is_processed_again(dummy):
    """Why retention must outlast the providers' retries."""
    payment = PaymentFactory(status="pending")
    body, headers = payment_event(dummy, payment, "processing")
    assert webhooks.receive_webhook("dummy", body, headers).outcome == webhooks.PROCESSED
    _age(WebhookEvent.objects.get(), 40)
    run("paygate_prune_webhooks")
    assert webhooks.receive_webhook("dummy", body, headers).outcome == webhooks.PROCESSED
