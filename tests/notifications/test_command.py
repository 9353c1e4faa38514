"""``manage.py paygate_send_notifications``."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_paygate.models import Notification
from tests.notifications.backends import FlakyBackend
from tests.notifications.factories import make_notification

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings("error")]


def run(*args: str) -> str:
    out = StringIO()
    call_command("paygate_send_notifications", *args, stdout=out)
    return out.getvalue()


def test_drains_due_rows_and_prints_a_summary(outbox: list[Any]) -> None:
    rows = [make_notification("payment_succeeded") for _ in range(3)]
    waiting = make_notification("payment_failed")
    Notification.objects.filter(pk=waiting.pk).update(
        next_attempt_at=timezone.now() + timedelta(hours=1)
    )

    output = run()

    assert "Sent 3, failed 0, skipped 0" in output
    assert "Outbox: 1 pending, 0 sending, 0 given up." in output
    assert sorted(int(m.metadata["notification_id"]) for m in outbox) == [r.pk for r in rows]
    assert "Sent 0, failed 0" in run()  # nothing twice
    assert len(outbox) == 3


def test_now_sends_rows_waiting_for_their_backoff(outbox: list[Any]) -> None:
    waiting = make_notification("payment_failed")
    Notification.objects.filter(pk=waiting.pk).update(
        next_attempt_at=timezone.now() + timedelta(hours=1), attempts=1
    )

    output = run("--now")

    assert "Requeued 1 notification(s)." in output
    assert "Sent 1," in output
    assert [m.metadata["kind"] for m in outbox] == ["payment_failed"]


def test_limit_caps_a_pass(outbox: list[Any]) -> None:
    for _ in range(5):
        make_notification("payment_succeeded")

    assert "Sent 2," in run("--limit", "2")
    assert len(outbox) == 2
    assert "Sent 3," in run()
    assert len(outbox) == 5


def test_failures_are_reported(flaky: type[FlakyBackend], outbox: list[Any]) -> None:
    make_notification("payment_succeeded")
    make_notification("payment_succeeded")
    flaky.reset(failures=1)

    output = run()

    assert "Sent 1, failed 1, skipped 0" in output
    assert "Outbox: 1 pending" in output


def test_loop_runs_until_interrupted(outbox: list[Any], monkeypatch: Any) -> None:
    make_notification("payment_succeeded")
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:
            make_notification("payment_failed")  # arrives while the command sleeps
            return
        raise KeyboardInterrupt

    monkeypatch.setattr("time.sleep", fake_sleep)

    output = run("--loop", "--interval", "0.5")

    assert sleeps == [0.5, 0.5]
    assert output.count("Sent 1,") == 2
    assert output.rstrip().endswith("Stopped.")
    assert [m.metadata["kind"] for m in outbox] == ["payment_succeeded", "payment_failed"]


@pytest.mark.parametrize("args", [("--limit", "0"), ("--interval", "0")])
def test_bad_arguments(args: tuple[str, ...]) -> None:
    with pytest.raises(CommandError):
        run(*args)
