"""The webhook's answer never waits on the mail server.

With the default immediate task backend the notifications a webhook committed are
delivered when the server closes the response, after it was sent; whatever the
backend, they are handed to it only then. A process that dies between the answer and
the delivery leaves the rows in the outbox for the drain: still once each.
"""

from __future__ import annotations

import http.client
import importlib
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

import django
import pytest
from anymail.backends.test import EmailBackend as AnymailTestBackend
from django.core.management import call_command
from django.core.signals import request_finished
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_paygate import services
from django_paygate.models import Notification
from django_paygate.providers.dummy import CARD_SUCCEEDS, DummyProvider
from django_paygate.views.webhooks import webhook_view
from tests.conftest import count_data_statements
from tests.notifications.conftest import set_paygate, use_email_backend
from tests.notifications.webhook import WEBHOOK_URL, remote_confirm

pytestmark = [pytest.mark.django_db(transaction=True)]

SLOW_BACKEND = f"{__name__}.SlowBackend"
_OUTBOX = Notification._meta.db_table
#: Only a bound on a test that fails: a passing one never waits this long.
GIVE_UP = 30


class SlowBackend(AnymailTestBackend):
    """An ESP that answers only once the webhook's client has its response.

    A delivery made inside the request could never see that happen: it would
    wait for :data:`GIVE_UP` seconds and record ``False``.
    """

    response_received: ClassVar[threading.Event] = threading.Event()
    #: For each send: whether the client had its response while the send was under way.
    answered_first: ClassVar[list[bool]] = []

    @classmethod
    def reset(cls) -> None:
        cls.response_received = threading.Event()
        cls.answered_first = []

    def send_messages(self, email_messages: Sequence[Any]) -> int:
        SlowBackend.answered_first.append(SlowBackend.response_received.wait(GIVE_UP))
        return int(super().send_messages(email_messages))


@pytest.fixture
def slow_mail(settings: Any, outbox: list[Any]) -> type[SlowBackend]:
    use_email_backend(settings, SLOW_BACKEND)
    SlowBackend.reset()
    return SlowBackend


def _paid_event(dummy: DummyProvider) -> tuple[bytes, dict[str, str]]:
    payment = services.create_payment(amount=1999, currency="USD", email="buyer@example.com")
    event: tuple[bytes, dict[str, str]] = remote_confirm(dummy, payment, CARD_SUCCEEDS)
    return event


def _request(event: tuple[bytes, dict[str, str]]) -> Any:
    body, headers = event
    return RequestFactory().post(
        WEBHOOK_URL, data=body, content_type="application/json", headers=headers
    )


def test_a_slow_mail_server_does_not_delay_the_answer_over_http(
    dummy: DummyProvider, slow_mail: type[SlowBackend], outbox: list[Any], live_server: Any
) -> None:
    body, headers = _paid_event(dummy)
    finished = threading.Event()  # the server closed the response: the delivery is over

    def on_finished(**kwargs: Any) -> None:
        finished.set()

    request_finished.connect(on_finished)
    try:
        url = urlsplit(live_server.url)
        conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=GIVE_UP * 2)
        try:
            headers = {**headers, "Content-Type": "application/json"}
            conn.request("POST", WEBHOOK_URL, body, headers)
            response = conn.getresponse()
            answer = (response.status, response.read())
        finally:
            conn.close()
        slow_mail.response_received.set()
        assert finished.wait(GIVE_UP)
    finally:
        request_finished.disconnect(on_finished)

    assert answer == (200, b'{"status": "Event processed."}')
    assert slow_mail.answered_first == [True]  # the send was entered, and waited for the answer
    assert [m.metadata["kind"] for m in outbox] == ["payment_succeeded"]
    row = Notification.objects.get()
    assert (row.status, row.attempts) == ("sent", 1)


def test_the_view_returns_before_the_delivery_which_runs_when_the_response_closes(
    dummy: DummyProvider, outbox: list[Any], signal_spy: Any
) -> None:
    response = webhook_view(_request(_paid_event(dummy)), alias="dummy")

    assert response.status_code == 200
    assert response["Content-Length"] == str(len(response.content))  # complete before close()
    assert outbox == []
    assert signal_spy.count("payment_succeeded") == 0
    row = Notification.objects.get()
    assert (row.status, row.attempts) == ("sending", 1)  # claimed with the change

    response.close()
    response.close()  # a server may close twice: still one delivery

    assert [m.metadata["kind"] for m in outbox] == ["payment_succeeded"]
    assert signal_spy.count("payment_succeeded") == 1
    assert Notification.objects.get().status == "sent"


def test_a_crash_after_the_answer_leaves_the_row_for_the_drain_once(
    dummy: DummyProvider, outbox: list[Any], signal_spy: Any
) -> None:
    response = webhook_view(_request(_paid_event(dummy)), alias="dummy")
    # The process dies here: the response is never closed. The row was claimed with the
    # change (the immediate backend delivers in this process); its lease runs out.
    row = Notification.objects.get()
    assert (row.status, row.attempts) == ("sending", 1)
    call_command("paygate_send_notifications", stdout=_Sink())
    assert outbox == []  # the lease still holds
    Notification.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))

    call_command("paygate_send_notifications", stdout=_Sink())

    assert [m.metadata["kind"] for m in outbox] == ["payment_succeeded"]
    response.close()  # had it survived after all: its claim is no longer current
    assert len(outbox) == 1
    assert signal_spy.count("payment_succeeded") == 1
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("sent", 2)


def test_in_the_view_the_claim_commits_with_the_change(
    dummy: DummyProvider, outbox: list[Any]
) -> None:
    """The webhook's transaction claims the row; the delivery reads it and marks it sent:
    one commit after the answer instead of two."""
    request = _request(_paid_event(dummy))
    with CaptureQueriesContext(connection) as answering:
        response = webhook_view(request, alias="dummy")
    with CaptureQueriesContext(connection) as delivering:
        response.close()

    claims = [
        q
        for q in answering.captured_queries
        if q["sql"].startswith("UPDATE") and _OUTBOX in q["sql"]
    ]
    assert len(claims) == 1
    assert count_data_statements(delivering) == 2  # read, mark sent
    assert [q["sql"].split()[0] for q in delivering.captured_queries if _OUTBOX in q["sql"]] == [
        "SELECT",
        "UPDATE",
    ]
    assert len(outbox) == 1
    assert Notification.objects.get().status == "sent"


def test_a_worker_backend_is_handed_the_rows_after_the_answer(
    dummy: DummyProvider, outbox: list[Any], settings: Any
) -> None:
    # Django's own Tasks framework from 6.0, the django-tasks backport before it.
    framework = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
    settings.TASKS = {
        "default": {"BACKEND": f"{framework}.backends.immediate.ImmediateBackend"},
        "queue": {"BACKEND": f"{framework}.backends.dummy.DummyBackend"},
    }
    set_paygate(settings, TASK_BACKEND="queue")
    queue = importlib.import_module(framework).task_backends["queue"]
    response = webhook_view(_request(_paid_event(dummy)), alias="dummy")
    assert queue.results == []  # type: ignore[attr-defined]

    response.close()

    [result] = queue.results  # type: ignore[attr-defined]
    assert result.args == [[Notification.objects.get().pk]]
    assert outbox == []


def test_a_duplicate_owes_nothing(dummy: DummyProvider, outbox: list[Any]) -> None:
    event = _paid_event(dummy)
    webhook_view(_request(event), alias="dummy").close()

    duplicate = webhook_view(_request(event), alias="dummy")

    assert duplicate.status_code == 200
    duplicate.close()
    assert len(outbox) == 1


class _Sink:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass
