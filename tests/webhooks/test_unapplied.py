"""An event the state machine refuses is stored, flagged for review and answered 200.

A refusal (:class:`PaygateError`) is the same on every delivery: answering 500
would only have the provider retry it for days and then disable the endpoint.
A failure that may pass (a host receiver's error, the database) stays a 500.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate import webhooks
from django_paygate.exceptions import InvalidTransition
from django_paygate.models import PaymentEvent, WebhookEvent, get_payment_model
from django_paygate.services import ledger
from tests.factories import PaymentFactory
from tests.webhooks.events import payment_event, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def refusing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(payment: Any, event: Any, *, webhook_event: Any) -> bool:
        payment.status = "canceled"  # a partial change, rolled back with the transaction
        raise InvalidTransition("A refunded payment cannot become partially_refunded.")

    monkeypatch.setattr(ledger, "apply_event", refuse)


def test_a_refused_event_is_stored_failed_flagged_and_answered_200(
    client: Any,
    dummy: Any,
    refusing: None,
    signal_spy: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    payment = PaymentFactory(status="processing")
    delivery = payment_event(dummy, payment, "succeeded")

    with django_capture_on_commit_callbacks(execute=True):
        responses = [post(client, delivery) for _ in range(2)]  # the provider's retry

    assert [r.status_code for r in responses] == [200, 200]
    row = WebhookEvent.objects.get()
    assert (row.status, row.attempts) == (WebhookEvent.Status.FAILED, 2)
    assert row.error.startswith("InvalidTransition: A refunded payment cannot")
    assert row.payment_id == payment.pk
    payment = get_payment_model().objects.get(pk=payment.pk)
    assert payment.status == "processing"
    assert payment.needs_review
    assert row.event_id in payment.review_reason
    assert signal_spy.count("payment_needs_review") == 1
    assert PaymentEvent.objects.filter(payment=payment, webhook_event=row).exists()


def test_a_refused_replay_is_reported_as_still_failing(dummy: Any, refusing: None) -> None:
    payment = PaymentFactory(status="processing")
    body, headers = payment_event(dummy, payment, "succeeded")
    first = webhooks.receive_webhook("dummy", body, headers)
    assert (first.status_code, first.outcome) == (200, webhooks.UNAPPLIED)

    summary = webhooks.replay_events(webhooks.select_events())

    assert summary.still_failing == 1
