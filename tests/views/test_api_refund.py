"""POST process_refund/: staff with paygate.refund_payment only; audit trail."""

from __future__ import annotations

from typing import Any

import pytest

from django_paygate.models import PaymentEvent, Refund, get_payment_model
from django_paygate.providers.dummy import CARD_SUCCEEDS
from tests.views.conftest import Api

pytestmark = pytest.mark.django_db(transaction=True)

Payment = get_payment_model()


@pytest.fixture
def paid(api: Api) -> Any:
    """A 20.00 USD payment of ``user``, paid through the API."""
    created = api.post("create_intent", api.order(2000, "USD"))
    confirmed = api.post(
        "confirm_payment",
        {"payment_id": str(created.json_body["id"]), "payment_method": CARD_SUCCEEDS},
    )
    assert confirmed.json_body["status"] == "succeeded"
    return Payment.objects.get(pk=created.json_body["id"])


def test_full_refund(refund_api: Api, refunder: Any, paid: Any, signal_spy: Any) -> None:
    response = refund_api.post("process_refund", {"payment_id": str(paid.pk), "reason": "damaged"})
    assert response.status_code == 201
    body = response.json_body
    assert body["refund"]["amount"] == 2000
    assert body["refund"]["status"] == "succeeded"
    assert body["refund"]["reason"] == "damaged"
    assert body["refund"]["created_by"] == refunder.pk
    assert body["payment"]["status"] == "refunded"
    assert body["payment"]["amount_refunded"] == 2000
    refund = Refund.objects.get(pk=body["refund"]["id"])
    assert refund.created_by == refunder
    assert signal_spy.count("refund_succeeded") == 1


def test_partial_refund_as_decimal_string_and_audit_trail(
    refund_api: Api, refunder: Any, paid: Any
) -> None:
    response = refund_api.post(
        "process_refund", {"payment_id": str(paid.pk), "amount": "5.50", "reason": "late delivery"}
    )
    assert response.status_code == 201
    assert response.json_body["refund"]["amount"] == 550
    assert response.json_body["payment"]["status"] == "partially_refunded"
    audit = PaymentEvent.objects.filter(payment_id=paid.pk, refund__isnull=False).first()
    assert audit is not None
    assert audit.user == refunder
    assert "late delivery" in audit.note


def test_partial_refund_in_minor_units(refund_api: Api, paid: Any) -> None:
    response = refund_api.post("process_refund", {"payment_id": str(paid.pk), "amount": 1999})
    assert response.json_body["refund"]["amount"] == 1999


def test_refund_above_what_is_left_is_400(refund_api: Api, paid: Any) -> None:
    response = refund_api.post("process_refund", {"payment_id": str(paid.pk), "amount": 2001})
    assert response.status_code == 400
    assert response.json_body["error"]["code"] == "refund_exceeds_captured"
    assert not Refund.objects.exists()


def test_refund_of_an_unpaid_payment_is_409(refund_api: Api, api: Api) -> None:
    created = api.post("create_intent", api.order(2000, "USD"))
    response = refund_api.post("process_refund", {"payment_id": str(created.json_body["id"])})
    assert response.status_code == 409
    assert response.json_body["error"]["code"] == "invalid_state"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": 5.5}, "amount"),
        ({"amount": "5.555"}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"reason": "x" * 501}, "reason"),
        ({"reason": 1}, "reason"),
        ({"note": "x"}, "note"),
    ],
)
def test_invalid_fields_are_400(refund_api: Api, paid: Any, body: dict, field: str) -> None:
    response = refund_api.post("process_refund", {"payment_id": str(paid.pk), **body})
    assert response.status_code == 400
    assert field in response.json_body["error"]["fields"]
    assert not Refund.objects.exists()


def test_provider_unreachable_is_503_and_the_refund_stays_reserved(
    refund_api: Api, paid: Any, dummy: Any
) -> None:
    dummy.fail_next("refund_payment")
    response = refund_api.post("process_refund", {"payment_id": str(paid.pk)})
    assert response.status_code == 503
    assert Refund.objects.get().status == "pending"


def test_staff_without_the_permission_is_403(staff_api: Api, paid: Any) -> None:
    response = staff_api.post("process_refund", {"payment_id": str(paid.pk)})
    assert response.status_code == 403
    assert response.json_body["error"]["code"] == "permission_denied"
    assert not Refund.objects.exists()


def test_the_owner_is_403(api: Api, paid: Any) -> None:
    response = api.post("process_refund", {"payment_id": str(paid.pk)})
    assert response.status_code == 403
    assert not Refund.objects.exists()


def test_anonymous_is_401(anon_api: Api, paid: Any) -> None:
    response = anon_api.post("process_refund", {"payment_id": str(paid.pk)})
    assert response.status_code == 401
    assert not Refund.objects.exists()


def test_a_deactivated_refunder_is_logged_out(refund_api: Api, refunder: Any, paid: Any) -> None:
    type(refunder).objects.filter(pk=refunder.pk).update(is_active=False)
    response = refund_api.post("process_refund", {"payment_id": str(paid.pk)})
    assert response.status_code == 401  # ModelBackend drops the session of an inactive user
    assert not Refund.objects.exists()


def test_unknown_payment_is_404(refund_api: Api) -> None:
    response = refund_api.post(
        "process_refund", {"payment_id": "00000000-0000-0000-0000-000000000000"}
    )
    assert response.status_code == 404


def test_a_refund_retried_with_its_idempotency_key_refunds_once(
    refund_api: Api, paid: Any, dummy: Any
) -> None:
    body = {"payment_id": str(paid.pk), "amount": 500}
    dummy.fail_next("refund_payment", after=True)  # refunded at the provider, answer lost
    lost = refund_api.post("process_refund", body, **{"Idempotency-Key": "rma-7"})
    assert lost.status_code == 503

    retried = refund_api.post("process_refund", body, **{"Idempotency-Key": "rma-7"})

    assert retried.status_code == 200
    assert retried.json_body["refund"]["status"] == "succeeded"
    assert retried.json_body["payment"]["amount_refunded"] == 500
    assert Refund.objects.count() == 1
    again = refund_api.post("process_refund", body, **{"Idempotency-Key": "rma-7"})
    assert (again.status_code, again.json_body["refund"]["id"]) == (
        200,
        retried.json_body["refund"]["id"],
    )


def test_a_refund_key_reused_with_another_amount_is_409(refund_api: Api, paid: Any) -> None:
    first = {"payment_id": str(paid.pk), "amount": 500}
    assert (
        refund_api.post("process_refund", first, **{"Idempotency-Key": "rma-8"}).status_code == 201
    )

    other = refund_api.post(
        "process_refund", {**first, "amount": 600}, **{"Idempotency-Key": "rma-8"}
    )

    assert other.status_code == 409
    assert other.json_body["error"]["code"] == "idempotency_conflict"
    assert Refund.objects.get().amount == 500


def test_a_malformed_refund_idempotency_key_is_400(refund_api: Api, paid: Any) -> None:
    response = refund_api.post(
        "process_refund", {"payment_id": str(paid.pk)}, **{"Idempotency-Key": "has space"}
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json_body["error"]["fields"]
    assert not Refund.objects.exists()
