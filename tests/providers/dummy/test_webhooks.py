"""The dummy provider's events: read without trusting their shape, whole; the core fits them."""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate import webhooks
from django_paygate.models import WebhookEvent
from django_paygate.providers.dummy import SIGNATURE_HEADER, DummyProvider
from django_paygate.states import DisputeStatus, PaymentStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider() -> DummyProvider:
    return DummyProvider("dummy", store="memory")


def parse(provider: DummyProvider, event_type: str, data: dict[str, Any]) -> Any:
    body, headers = provider.build_event(event_type, data, event_id="evt_1")
    return provider.parse_webhook(body, headers)


def test_the_signature_header_is_found_in_any_case(provider: DummyProvider) -> None:
    body, headers = provider.build_event("payment.succeeded", {})
    provider.verify_webhook(body, {SIGNATURE_HEADER.lower(): headers[SIGNATURE_HEADER]})


def test_a_payment_event_is_read_in_our_terms(provider: DummyProvider) -> None:
    data = {"payment": {"id": "dummy_1", "amount": 500, "currency": "USD"}, "payment_id": "p"}
    event = parse(provider, "payment.succeeded", data)
    assert event.payment.provider_payment_id == "dummy_1"
    assert event.payment.status == PaymentStatus.SUCCEEDED
    assert (event.payment.amount, event.payment.currency) == (500, "USD")
    assert event.our_payment_id == "p"


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("payment.succeeded", {"payment": {"id": 7}}),  # an id that is not a string
        ("payment.succeeded", {"payment": "dummy_1"}),  # an object that is not one
        ("payment.exploded", {"payment": {"id": "dummy_1"}}),  # a status we do not know
        ("refund.succeeded", {"refund": {"amount": 5}}),  # no id
        ("payout.paid", {"payout": {"id": "po_1"}}),  # a kind we do not act on
    ],
)
def test_an_event_of_another_shape_is_bare(
    provider: DummyProvider, event_type: str, data: dict[str, Any]
) -> None:
    event = parse(provider, event_type, data)
    assert not event.actionable
    assert (event.event_id, event.type) == ("evt_1", event_type)


def test_texts_come_whole_and_the_core_fits_them(provider: DummyProvider) -> None:
    dispute = {"id": "dp_1", "payment": "dummy_1", "amount": 5, "reason": "r" * 400}
    event = parse(provider, "dispute.open", {"dispute": dispute})
    assert event.dispute.status == DisputeStatus.OPEN
    assert event.dispute.reason == "r" * 400  # the adapter does not know the column
    body, headers = provider.build_event("dispute.open", {"dispute": dispute})
    assert webhooks.receive_webhook("dummy", body, headers).status_code == 200


def test_an_event_id_too_long_for_the_inbox_is_refused_not_cut() -> None:
    provider = DummyProvider("dummy", store="memory")
    body, headers = provider.build_event("payment.succeeded", {}, event_id="evt_" + "x" * 300)
    assert provider.parse_webhook(body, headers).event_id == "evt_" + "x" * 300
    assert webhooks.receive_webhook("dummy", body, headers).status_code == 400
    assert not WebhookEvent.objects.exists()
