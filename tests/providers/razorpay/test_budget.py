"""The Razorpay adapter adds nothing to the webhook path's statement budget (DESIGN.md)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_paygate import webhooks
from tests.conftest import count_data_statements
from tests.webhooks.test_budget import DUPLICATE, FIRST_DELIVERY

from .conftest import event_body, payment_entity, signed_headers

ORDER = "order_PgBudget000001"


def deliver(body: bytes, event_id: str) -> tuple[Any, CaptureQueriesContext]:
    meta = signed_headers(body, event_id=event_id)
    headers = {
        "X-Razorpay-Signature": meta["HTTP_X_RAZORPAY_SIGNATURE"],
        "X-Razorpay-Event-Id": meta["HTTP_X_RAZORPAY_EVENT_ID"],
        "Content-Type": "application/json",
    }
    with CaptureQueriesContext(connection) as captured:
        result = webhooks.receive_webhook("razorpay", body, headers)
    return result, captured


@pytest.mark.django_db
def test_first_and_duplicate_delivery_statements(
    razorpay_settings: Any, rzp_payment: Any, django_capture_on_commit_callbacks: Any
) -> None:
    payment = rzp_payment(ORDER)
    entity = payment_entity(payment_id="pay_PgBudget000001", order_id=ORDER, amount=49900)
    body = event_body("payment.captured", payment=entity)
    with django_capture_on_commit_callbacks(execute=False):
        result, captured = deliver(body, "evt_budget")
    assert result.status_code == 200
    assert count_data_statements(captured) == FIRST_DELIVERY
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result, captured = deliver(body, "evt_budget")
    assert result.message == "Duplicate event."
    assert count_data_statements(captured) == DUPLICATE
    assert callbacks == []
    payment.refresh_from_db()
    assert payment.status == "succeeded"
