"""The cost budget of the webhook path (DESIGN.md), pinned statement by statement.

Counted are data statements (SELECT / INSERT / UPDATE / DELETE / WITH); SAVEPOINT,
BEGIN and COMMIT are not. The webhook's own work and the outbox delivery that
follows the commit (:mod:`django_paygate.notifications`) are measured apart.
Runs on SQLite and, with ``PAYGATE_TEST_DB=postgres`` or ``mysql``, on PostgreSQL or
MariaDB/MySQL; each count is pinned per database (:func:`tests.conftest.pinned` says why
they differ).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_paygate import webhooks
from django_paygate.models import Notification, WebhookEvent, get_payment_model
from tests.conftest import count_data_statements, on_mysql, on_postgres, pinned
from tests.factories import PaymentFactory
from tests.webhooks.events import payment_event, refund_event

#: DESIGN.md allows six: inbox insert, payment lock, payment update, audit row, outbox row,
#: inbox status.
FIRST_DELIVERY_BUDGET = 6
#: What a first delivery costs. PostgreSQL: one statement claims the inbox row (written
#: processed) and locks the payment, one writes the payment, audit and outbox rows.
#: SQLite: the claim, the lock, and one statement per row. MariaDB/MySQL: the lock first
#: (there is no upsert that returns the row), the claim, and one statement per row.
FIRST_DELIVERY = pinned(postgresql=2, other=5)
if on_postgres():
    FIRST_DELIVERY_STATEMENTS = ["WITH", "WITH"]
elif on_mysql():
    FIRST_DELIVERY_STATEMENTS = ["SELECT", "INSERT", "UPDATE", "INSERT", "INSERT"]
else:
    FIRST_DELIVERY_STATEMENTS = ["INSERT", "SELECT", "UPDATE", "INSERT", "INSERT"]
#: DESIGN.md allows one, which PostgreSQL and SQLite keep (the claim finds the row).
#: MariaDB/MySQL: the payment's lock, the refused INSERT, the read of the row it hit.
DUPLICATE = pinned(postgresql=1, other=1, mysql=3)
#: An event about no payment we know: the claim and the mark ("no matching payment");
#: MariaDB/MySQL looks for the payment first, in a statement of its own.
UNKNOWN_PAYMENT = pinned(postgresql=2, other=2, mysql=3)
#: The outbox delivery of one ``payment_succeeded`` notification after commit: claim the
#: row, load it with its payment, record the signal, send the email, mark it sent.
#: Claim (and, on PostgreSQL, read in the same statement), read, mark sent.
OUTBOX_PAYMENT_SUCCEEDED = {"postgresql": 2, "other": 3}


def _statements(captured: CaptureQueriesContext) -> list[str]:
    verbs = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")
    return [
        q["sql"] for q in captured.captured_queries if q["sql"].lstrip().upper().startswith(verbs)
    ]


def _run(call: Callable[[], Any]) -> tuple[Any, CaptureQueriesContext]:
    with CaptureQueriesContext(connection) as captured:
        result = call()
    return result, captured


def _explain(captured: CaptureQueriesContext) -> str:
    return "\n".join(f"  {sql[:160]}" for sql in _statements(captured))


def _deliver(dummy: Any, delivery: tuple[bytes, dict[str, str]]) -> webhooks.WebhookResult:
    body, headers = delivery
    return webhooks.receive_webhook("dummy", body, headers)


@pytest.mark.django_db
class TestWebhookBudget:
    def test_first_delivery_within_budget(self, dummy, django_capture_on_commit_callbacks):
        payment = PaymentFactory(status="pending")
        delivery = payment_event(dummy, payment, "succeeded")
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            result, captured = _run(lambda: _deliver(dummy, delivery))
        assert result.outcome == webhooks.PROCESSED
        assert count_data_statements(captured) == FIRST_DELIVERY, _explain(captured)
        assert FIRST_DELIVERY <= FIRST_DELIVERY_BUDGET
        verbs = [sql.split()[0].upper() for sql in _statements(captured)]
        assert verbs == FIRST_DELIVERY_STATEMENTS, _explain(captured)
        assert len(callbacks) == 1  # the outbox delivery, after commit

    def test_duplicate_is_one_statement(self, dummy, django_capture_on_commit_callbacks):
        payment = PaymentFactory(status="pending")
        delivery = payment_event(dummy, payment, "succeeded")
        with django_capture_on_commit_callbacks(execute=False):
            _deliver(dummy, delivery)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            result, captured = _run(lambda: _deliver(dummy, delivery))
        assert result.outcome == webhooks.DUPLICATE
        assert count_data_statements(captured) == DUPLICATE, _explain(captured)
        assert callbacks == []

    def test_ignored_type_is_one_statement(self, dummy):
        body, headers = dummy.build_event("customer.created", {})
        result, captured = _run(lambda: webhooks.receive_webhook("dummy", body, headers))
        assert result.outcome == webhooks.IGNORED
        assert count_data_statements(captured) == 1, _explain(captured)
        row = WebhookEvent.objects.get()
        assert (row.status, row.error) == ("ignored", "event type not handled")

    def test_unknown_payment_is_two_statements(self, dummy):
        stranger = get_payment_model()(amount=500, currency="USD", provider_payment_id="dummy_x")
        result, captured = _run(
            lambda: _deliver(dummy, payment_event(dummy, stranger, "succeeded"))
        )
        assert result.outcome == webhooks.IGNORED
        assert count_data_statements(captured) == UNKNOWN_PAYMENT, _explain(captured)
        row = WebhookEvent.objects.get()
        assert (row.status, row.error, row.payment_id) == ("ignored", "no matching payment", None)

    def test_stale_event_writes_only_the_inbox_row(self, dummy):
        payment = PaymentFactory(status="succeeded")
        result, captured = _run(
            lambda: _deliver(dummy, payment_event(dummy, payment, "processing"))
        )
        assert result.outcome == webhooks.PROCESSED
        assert count_data_statements(captured) == pinned(postgresql=1, other=2), _explain(captured)
        assert WebhookEvent.objects.get().payment_id == payment.pk

    def test_rejected_delivery_touches_no_table(self, dummy):
        body, _ = payment_event(dummy, PaymentFactory(), "succeeded")
        result, captured = _run(lambda: webhooks.receive_webhook("dummy", body, {}))
        assert result.status_code == 400
        assert count_data_statements(captured) == 0

    def test_outbox_delivery_after_commit(self, dummy, django_capture_on_commit_callbacks):
        payment = PaymentFactory(status="pending")
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            _deliver(dummy, payment_event(dummy, payment, "succeeded"))
        assert len(callbacks) == 1
        _, captured = _run(callbacks[0])
        assert count_data_statements(captured) == pinned(**OUTBOX_PAYMENT_SUCCEEDED), _explain(
            captured
        )
        assert Notification.objects.get().status == Notification.Status.SENT

    def test_refund_event_budget(self, dummy, django_capture_on_commit_callbacks):
        """Informative: a refund made at the provider costs more (refund row + its events)."""
        payment = PaymentFactory(status="succeeded")
        delivery = refund_event(dummy, payment, "dummy_re_1", "succeeded", 400)
        with django_capture_on_commit_callbacks(execute=False):
            result, captured = _run(lambda: _deliver(dummy, delivery))
        assert result.outcome == webhooks.PROCESSED
        assert count_data_statements(captured) == pinned(postgresql=6, other=9), _explain(captured)


@pytest.mark.django_db(transaction=True)
@override_settings(TASKS={"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}})
def test_budget_holds_with_real_commits(dummy):
    """The same counts when the pipeline's transaction really commits (no test savepoints)."""
    payment = PaymentFactory(status="pending")
    delivery = payment_event(dummy, payment, "succeeded")
    result, captured = _run(lambda: _deliver(dummy, delivery))
    assert result.outcome == webhooks.PROCESSED
    assert count_data_statements(captured) == FIRST_DELIVERY, _explain(captured)
    result, captured = _run(lambda: _deliver(dummy, delivery))
    assert result.outcome == webhooks.DUPLICATE
    assert count_data_statements(captured) == DUPLICATE, _explain(captured)
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert Notification.objects.get().status == Notification.Status.PENDING  # queued, not delivered
