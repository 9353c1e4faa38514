"""POST confirm_payment/: success, decline (402), requires_action, ownership, and the
confirmation fields each payment's provider takes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from django_paygate.models import get_payment_model
from django_paygate.providers.base import ProviderPayment
from django_paygate.providers.dummy import (
    CARD_DECLINED,
    CARD_REQUIRES_ACTION,
    CARD_SUCCEEDS,
    DummyProvider,
)
from tests.factories import PaymentFactory
from tests.views.conftest import Api

pytestmark = pytest.mark.django_db(transaction=True)

Payment = get_payment_model()


@pytest.fixture
def payment_id(api: Api) -> str:
    response = api.post("create_intent", api.order(1999, "USD"))
    assert response.status_code == 201
    return str(response.json_body["id"])


def test_success(api: Api, payment_id: str, signal_spy: Any) -> None:
    response = api.post(
        "confirm_payment", {"payment_id": payment_id, "payment_method": CARD_SUCCEEDS}
    )
    assert response.status_code == 200
    body = response.json_body
    assert body["status"] == "succeeded"
    assert body["amount_captured"] == 1999
    assert body["next_action"] is None
    assert Payment.objects.get(pk=payment_id).status == "succeeded"
    assert signal_spy.count("payment_succeeded") == 1


def test_declined_card_is_402_with_the_decline_code(api: Api, payment_id: str) -> None:
    response = api.post(
        "confirm_payment", {"payment_id": payment_id, "payment_method": CARD_DECLINED}
    )
    assert response.status_code == 402
    error = response.json_body["error"]
    assert error["code"] == "payment_declined"
    assert error["decline_code"] == "card_declined"
    assert error["payment_status"] == "failed"
    assert Payment.objects.get(pk=payment_id).status == "failed"


def test_requires_action_then_success(api: Api, payment_id: str) -> None:
    first = api.post(
        "confirm_payment",
        {
            "payment_id": payment_id,
            "payment_method": CARD_REQUIRES_ACTION,
            "return_url": "https://shop.example/return",
        },
    )
    assert first.status_code == 200
    assert first.json_body["status"] == "requires_action"
    assert first.json_body["next_action"] == {"type": "dummy_authenticate"}
    second = api.post(
        "confirm_payment", {"payment_id": payment_id, "payment_method": CARD_REQUIRES_ACTION}
    )
    assert second.status_code == 200
    assert second.json_body["status"] == "succeeded"
    assert second.json_body["next_action"] is None


def test_retry_after_a_decline_can_succeed(api: Api, payment_id: str) -> None:
    api.post("confirm_payment", {"payment_id": payment_id, "payment_method": CARD_DECLINED})
    response = api.post(
        "confirm_payment", {"payment_id": payment_id, "payment_method": CARD_SUCCEEDS}
    )
    assert response.status_code == 200
    assert response.json_body["status"] == "succeeded"


def test_confirming_twice_answers_the_payment_as_it_is(
    api: Api, payment_id: str, dummy: Any
) -> None:
    api.post("confirm_payment", {"payment_id": payment_id, "payment_method": CARD_SUCCEEDS})
    calls = len(dummy.calls)
    response = api.post(
        "confirm_payment", {"payment_id": payment_id, "payment_method": CARD_SUCCEEDS}
    )
    assert response.status_code == 200
    assert response.json_body["status"] == "succeeded"
    assert len(dummy.calls) == calls


def test_confirming_a_canceled_payment_is_409(api: Api, user: Any) -> None:
    canceled = PaymentFactory(user=user, status="canceled")
    response = api.post(
        "confirm_payment", {"payment_id": str(canceled.pk), "payment_method": CARD_SUCCEEDS}
    )
    assert response.status_code == 409
    assert response.json_body["error"]["code"] == "invalid_state"


def test_provider_unreachable_is_503(api: Api, payment_id: str, dummy: Any) -> None:
    dummy.fail_next("confirm_payment")
    response = api.post(
        "confirm_payment", {"payment_id": payment_id, "payment_method": CARD_SUCCEEDS}
    )
    assert response.status_code == 503
    assert response.json_body["error"]["code"] == "provider_unavailable"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "payment_id"),
        ({"payment_id": 12}, "payment_id"),
        ({"payment_id": "PID", "payment_method": 4242}, "payment_method"),
        ({"payment_id": "PID", "payment_method": "4" * 256}, "payment_method"),
        ({"payment_id": "PID", "return_url": "javascript:alert(1)"}, "return_url"),
        ({"payment_id": "PID", "card_number": "4242"}, "card_number"),
    ],
)
def test_invalid_fields_are_400(api: Api, payment_id: str, body: dict, field: str) -> None:
    body = {k: (payment_id if v == "PID" else v) for k, v in body.items()}
    response = api.post("confirm_payment", body)
    assert response.status_code == 400
    assert field in response.json_body["error"]["fields"]
    assert Payment.objects.get(pk=payment_id).status == "pending"


def test_anonymous_is_401(anon_api: Api, payment_id: str) -> None:
    response = anon_api.post(
        "confirm_payment", {"payment_id": payment_id, "payment_method": CARD_SUCCEEDS}
    )
    assert response.status_code == 401
    assert Payment.objects.get(pk=payment_id).status == "pending"


def test_staff_cannot_confirm_someone_elses_payment(staff_api: Api, payment_id: str) -> None:
    response = staff_api.post(
        "confirm_payment", {"payment_id": payment_id, "payment_method": CARD_SUCCEEDS}
    )
    assert response.status_code == 404


def test_a_payment_without_owner_is_nobodys(api: Api) -> None:
    orphan = PaymentFactory(user=None)
    response = api.post(
        "confirm_payment", {"payment_id": str(orphan.pk), "payment_method": CARD_SUCCEEDS}
    )
    assert response.status_code == 404


# -- the confirmation fields are the payment's provider's --------------------------------


class OtpPay(DummyProvider):
    """A provider that takes a one-time code with the card; it keeps what it was given."""

    name = "OtpPay"
    confirmation_fields: ClassVar[Mapping[str, int]] = {"payment_method": 255, "otp": 6}
    received: ClassVar[list[dict[str, Any]]] = []

    def confirm_payment(
        self, payment: Any, *, idempotency_key: str, **data: Any
    ) -> ProviderPayment:
        self.received.append(data)
        return super().confirm_payment(payment, idempotency_key=idempotency_key, **data)


@pytest.fixture
def otp_payment_id(api: Api, settings: Any) -> str:
    """A payment made with OtpPay, beside the dummy provider."""
    settings.PAYGATE = {
        **settings.PAYGATE,
        "DEFAULT_PROVIDER": "otp",
        "PROVIDERS": {
            **settings.PAYGATE["PROVIDERS"],
            "otp": {"BACKEND": f"{__name__}.OtpPay", "OPTIONS": {"store": "memory"}},
        },
    }
    OtpPay.received.clear()
    response = api.post("create_intent", api.order(1999, "USD"))
    assert response.status_code == 201
    assert Payment.objects.get(pk=response.json_body["id"]).provider == "otp"
    return str(response.json_body["id"])


def test_a_field_the_payments_provider_does_not_list_is_400(
    api: Api, payment_id: str, dummy: Any
) -> None:
    response = api.post(
        "confirm_payment",
        {"payment_id": payment_id, "payment_method": CARD_SUCCEEDS, "razorpay_signature": "ab"},
    )
    assert response.status_code == 400
    assert list(response.json_body["error"]["fields"]) == ["razorpay_signature"]
    assert Payment.objects.get(pk=payment_id).status == "pending"
    assert [name for name, _ in dummy.calls] == ["create_payment"]  # never asked


def test_a_field_the_payments_provider_lists_reaches_it(api: Api, otp_payment_id: str) -> None:
    body = {"payment_id": otp_payment_id, "payment_method": CARD_SUCCEEDS, "otp": "123456"}
    response = api.post("confirm_payment", body)
    assert response.status_code == 200
    assert response.json_body["status"] == "succeeded"
    assert OtpPay.received == [{"payment_method": CARD_SUCCEEDS, "otp": "123456"}]


def test_the_payments_provider_sets_each_fields_longest_value(
    api: Api, otp_payment_id: str
) -> None:
    body = {"payment_id": otp_payment_id, "payment_method": CARD_SUCCEEDS, "otp": "1234567"}
    response = api.post("confirm_payment", body)
    assert response.status_code == 400
    assert list(response.json_body["error"]["fields"]) == ["otp"]
    assert OtpPay.received == []


def test_another_providers_field_is_refused_for_a_dummy_payment(
    api: Api, payment_id: str, otp_payment_id: str
) -> None:
    # Both providers are configured: the field is judged by the payment's own provider.
    body = {"payment_id": payment_id, "payment_method": CARD_SUCCEEDS, "otp": "123456"}
    response = api.post("confirm_payment", body)
    assert response.status_code == 400
    assert list(response.json_body["error"]["fields"]) == ["otp"]
    assert Payment.objects.get(pk=payment_id).status == "pending"
