"""payment_status/: owner or staff; GET reads what is stored, POST syncs with the provider."""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate.providers.dummy import CARD_SUCCEEDS
from tests.factories import PaymentFactory, RefundFactory
from tests.views.conftest import Api

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def payment(user: Any) -> Any:
    return PaymentFactory(
        user=user,
        status="partially_refunded",
        amount=3000,
        amount_refunded=1000,
        needs_review=True,
        review_reason="amount mismatch",
        metadata={"order": "9", "paygate_client_ip": "192.0.2.1"},
    )


def test_owner_sees_status_amounts_and_refunds(api: Api, payment: Any) -> None:
    refund = RefundFactory(payment=payment, amount=1000, status="succeeded", reason="internal note")
    response = api.get("payment_status", {"payment_id": str(payment.pk)})
    assert response.status_code == 200
    body = response.json_body
    assert body["status"] == "partially_refunded"
    assert (body["amount"], body["amount_captured"], body["amount_refunded"]) == (3000, 3000, 1000)
    assert [r["id"] for r in body["refunds"]] == [str(refund.pk)]
    assert body["refunds"][0]["amount"] == 1000
    # Staff-only details are not shown to the owner.
    assert "needs_review" not in body
    assert "review_reason" not in body
    assert "reason" not in body["refunds"][0]
    assert body["metadata"] == {"order": "9"}
    assert response["Cache-Control"] == "no-store"


def test_staff_sees_any_payment_with_review_details(staff_api: Api, payment: Any) -> None:
    RefundFactory(payment=payment, amount=1000, status="succeeded", reason="internal note")
    response = staff_api.get("payment_status", {"payment_id": str(payment.pk)})
    assert response.status_code == 200
    body = response.json_body
    assert body["needs_review"] is True
    assert body["review_reason"] == "amount mismatch"
    assert body["metadata"]["paygate_client_ip"] == "192.0.2.1"
    assert body["refunds"][0]["reason"] == "internal note"


def test_sync_pulls_the_truth_from_the_provider(api: Api, dummy: Any) -> None:
    from django_paygate.models import get_payment_model

    created = api.post("create_intent", api.order(700, "EUR"))
    payment = get_payment_model().objects.get(pk=created.json_body["id"])
    # The customer paid at the provider; no webhook has arrived yet.
    dummy.confirm_payment(payment, idempotency_key="out-of-band", payment_method=CARD_SUCCEEDS)

    stale = api.get("payment_status", {"payment_id": str(payment.pk)})
    assert stale.json_body["status"] == "pending"
    synced = api.post("payment_status", {"payment_id": str(payment.pk)})
    assert synced.status_code == 200
    assert synced.json_body["status"] == "succeeded"
    assert synced.json_body["amount_captured"] == 700


def test_sync_provider_unreachable_is_503(api: Api, dummy: Any, monkeypatch: Any) -> None:
    from django_paygate.exceptions import ProviderUnavailable

    created = api.post("create_intent", api.order(700, "EUR"))

    def unreachable(payment: Any) -> Any:
        raise ProviderUnavailable("Dummy timeout.")

    monkeypatch.setattr(dummy, "fetch_payment", unreachable)
    response = api.post("payment_status", {"payment_id": str(created.json_body["id"])})
    assert response.status_code == 503
    assert response.json_body["error"]["code"] == "provider_unavailable"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "payment_id"),
        ({"payment_id": ""}, "payment_id"),
        ({"payment_id": "PID", "sync": "maybe"}, "sync"),
        ({"payment_id": "PID", "sync": "1"}, "sync"),
        ({"payment_id": "PID", "sync": "0"}, "sync"),
    ],
)
def test_invalid_parameters_are_400(api: Api, payment: Any, params: dict, field: str) -> None:
    params = {k: (str(payment.pk) if v == "PID" else v) for k, v in params.items()}
    response = api.get("payment_status", params)
    assert response.status_code == 400
    assert field in response.json_body["error"]["fields"]


def test_anonymous_is_401(anon_api: Api, payment: Any) -> None:
    response = anon_api.get("payment_status", {"payment_id": str(payment.pk)})
    assert response.status_code == 401
    assert str(payment.pk) not in response.content.decode()


def test_get_never_asks_the_provider_to_act(api: Api, dummy: Any) -> None:
    created = api.post("create_intent", api.order(700, "EUR"))
    calls = len(dummy.calls)
    for params in ({}, {"sync": "1"}, {"sync": "true"}):
        api.get("payment_status", {"payment_id": created.json_body["id"], **params}, check=False)
    assert len(dummy.calls) == calls


def test_get_asking_for_sync_is_told_to_post(api: Api, payment: Any) -> None:
    response = api.get("payment_status", {"payment_id": str(payment.pk), "sync": "1"})
    assert response.status_code == 400
    assert "POST" in response.json_body["error"]["fields"]["sync"]


def test_sync_needs_the_csrf_token(api: Api, dummy: Any) -> None:
    created = api.post("create_intent", api.order(700, "EUR"))
    calls = len(dummy.calls)
    response = api.post("payment_status", {"payment_id": created.json_body["id"]}, token=None)
    assert response.status_code == 403
    assert len(dummy.calls) == calls


@pytest.mark.parametrize(
    ("body", "field"),
    [({}, "payment_id"), ({"payment_id": 7}, "payment_id"), ({"payment_id": "PID", "x": 1}, "x")],
)
def test_invalid_sync_bodies_are_400(api: Api, payment: Any, body: dict, field: str) -> None:
    body = {k: (str(payment.pk) if v == "PID" else v) for k, v in body.items()}
    response = api.post("payment_status", body)
    assert response.status_code == 400
    assert field in response.json_body["error"]["fields"]


def test_put_is_405(api: Api, payment: Any) -> None:
    response = api.client.put(
        "/api/payments/payment_status/", {"payment_id": str(payment.pk)}, HTTP_X_CSRFTOKEN=api.token
    )
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"
