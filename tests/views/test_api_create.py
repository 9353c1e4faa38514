"""POST create_intent/: priced by the payable, validation, idempotency, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core import mail
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_paygate.exceptions import InvalidAmount, ProviderError
from django_paygate.models import get_payment_model
from django_paygate.providers.dummy import CARD_DECLINED, CARD_SUCCEEDS
from tests.testapp.models import Donation, Order
from tests.views.conftest import Api

pytestmark = pytest.mark.django_db(transaction=True)

Payment = get_payment_model()


@pytest.fixture
def order(user: Any) -> Order:
    return Order.objects.create(reference="A-42", amount=50000, currency="USD", owner=user)


def pay_for(order: Order, **more: Any) -> dict[str, Any]:
    return {"payable": "order", "id": str(order.pk), **more}


def test_creates_a_payment_priced_by_the_order(api: Api, user: Any, order: Order) -> None:
    response = api.post("create_intent", pay_for(order))
    assert response.status_code == 201
    body = response.json_body
    payment = Payment.objects.get(pk=body["id"])
    assert payment.user == user
    assert payment.payable == order
    assert (payment.amount, payment.currency, payment.provider) == (50000, "USD", "dummy")
    assert (body["amount"], body["currency"], body["status"]) == (50000, "USD", "pending")
    assert body["description"] == "Order A-42"
    assert body["email"] == user.email
    assert body["client"]["payment_id"] == body["id"]
    assert body["metadata"] == {"order": "A-42"}
    assert response["Cache-Control"] == "no-store"
    assert "needs_review" not in body


def test_an_integer_id_is_accepted(api: Api, order: Order) -> None:
    assert api.post("create_intent", {"payable": "order", "id": order.pk}).status_code == 201


def test_creating_again_returns_the_open_payment_with_the_same_client_data(
    api: Api, order: Order, dummy: Any
) -> None:
    first = api.post("create_intent", pay_for(order))
    again = api.post("create_intent", pay_for(order))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json_body["id"] == first.json_body["id"]
    assert again.json_body["client"] == first.json_body["client"]
    assert Payment.objects.count() == 1


def test_a_paid_order_is_409_already_paid(api: Api, order: Order) -> None:
    created = api.post("create_intent", pay_for(order)).json_body
    confirmed = api.post(
        "confirm_payment", {"payment_id": created["id"], "payment_method": CARD_SUCCEEDS}
    )
    assert confirmed.json_body["status"] == "succeeded"
    response = api.post("create_intent", pay_for(order))
    assert response.status_code == 409
    assert response.json_body["error"]["code"] == "already_paid"


def test_someone_elses_order_is_404(other_api: Api, order: Order) -> None:
    response = other_api.post("create_intent", pay_for(order))
    assert response.status_code == 404
    assert response.json_body["error"]["code"] == "not_found"
    assert not Payment.objects.exists()


@pytest.mark.parametrize("pk", ["999999", "not-a-number", 10**30])
def test_an_order_that_does_not_exist_is_the_same_404(api: Api, pk: Any) -> None:
    response = api.post("create_intent", {"payable": "order", "id": pk}, check=False)
    assert response.status_code in {400, 404}
    if response.status_code == 404:
        assert response.json()["error"] == {"code": "not_found", "message": "No such payable."}


def test_the_client_ip_is_stored_for_staff_and_hidden_from_the_owner(
    api: Api, order: Order
) -> None:
    response = api.post("create_intent", pay_for(order), REMOTE_ADDR="203.0.113.9")
    payment = Payment.objects.get(pk=response.json_body["id"])
    assert payment.metadata["paygate_client_ip"] == "203.0.113.9"
    assert "paygate_client_ip" not in response.json_body["metadata"]


def test_the_client_ip_is_not_stored_when_disabled(api: Api, order: Order, settings: Any) -> None:
    settings.PAYGATE = {**settings.PAYGATE, "API_STORE_CLIENT_IP": False}
    response = api.post("create_intent", pay_for(order))
    assert Payment.objects.get(pk=response.json_body["id"]).metadata == {"order": "A-42"}


# ---------------------------------------------------------------------------
# The attacks of a browser that sets its own price or receipt
# ---------------------------------------------------------------------------


def test_a_cheap_payment_naming_an_expensive_order_is_refused(api: Api, order: Order) -> None:
    """The old API let a customer pay 0.50 USD with metadata naming a 500.00 USD order."""
    response = api.post(
        "create_intent",
        {"amount": 50, "currency": "USD", "metadata": {"order": str(order.pk)}},
    )
    assert response.status_code == 400
    fields = response.json_body["error"]["fields"]
    assert set(fields) >= {"currency", "metadata", "payable", "id"}
    # Naming the order and a price of one's own: still refused.
    response = api.post("create_intent", pay_for(order, amount=50))
    assert response.status_code == 400
    assert "amount" in response.json_body["error"]["fields"]
    assert not Payment.objects.exists()
    order.refresh_from_db()
    assert not order.paid


def test_a_declined_card_sends_no_customer_text_to_a_foreign_address(
    api: Api, order: Order, user: Any, settings: Any
) -> None:
    """The old API let a customer choose the receipt address and its text."""
    settings.PAYGATE = {**settings.PAYGATE, "EMAILS": {"FROM_EMAIL": "shop@example.com"}}
    response = api.post(
        "create_intent",
        pay_for(order, email="victim@example.org", description="Click http://evil.example"),
    )
    assert response.status_code == 400
    assert set(response.json_body["error"]["fields"]) == {"email", "description"}
    created = api.post("create_intent", pay_for(order)).json_body
    declined = api.post(
        "confirm_payment", {"payment_id": created["id"], "payment_method": CARD_DECLINED}
    )
    assert declined.status_code == 402
    recipients = {address for message in mail.outbox for address in message.to}
    assert "victim@example.org" not in recipients
    assert recipients <= {user.email}
    assert all("evil.example" not in message.body for message in mail.outbox)


# ---------------------------------------------------------------------------
# Customer-chosen amounts: only for a payable that accepts them
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("amount", "minor"), [(2500, 2500), ("25.00", 2500), ("1", 100)])
def test_a_donation_takes_the_customers_amount(api: Api, amount: Any, minor: int) -> None:
    donation = Donation.objects.create()
    response = api.post(
        "create_intent", {"payable": "donation", "id": donation.pk, "amount": amount}
    )
    assert response.status_code == 201
    assert (response.json_body["amount"], response.json_body["currency"]) == (minor, "EUR")


@pytest.mark.parametrize("amount", [99, "0.99", 100_001, 19.99, "1.001"])
def test_a_donation_outside_its_bounds_is_400(api: Api, amount: Any) -> None:
    donation = Donation.objects.create()
    response = api.post(
        "create_intent", {"payable": "donation", "id": donation.pk, "amount": amount}
    )
    assert response.status_code == 400
    assert "amount" in response.json_body["error"]["fields"]
    assert not Payment.objects.exists()


# ---------------------------------------------------------------------------
# Bad input: 400 with a field-level message
# ---------------------------------------------------------------------------

OK = {"payable": "order", "id": "1"}


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"id": "1"}, "payable", "required"),
        ({"payable": "order"}, "id", "required"),
        ({"payable": "invoice", "id": "1"}, "payable", "No payable"),
        ({"payable": 5, "id": "1"}, "payable", "string"),
        ({"payable": "order", "id": [1]}, "id", "string or an integer"),
        ({"payable": "order", "id": "x" * 256}, "id", "string or an integer"),
        ({**OK, "provider": "stripe"}, "provider", "No provider"),
        ({**OK, "provider": 1}, "provider", "string"),
        ({**OK, "currency": "USD"}, "currency", "payable"),
        ({**OK, "email": "a@example.com"}, "email", "payable"),
        ({**OK, "description": "x"}, "description", "payable"),
        ({**OK, "metadata": {"order": "1"}}, "metadata", "payable"),
        ({**OK, "capture": False}, "capture", "Unknown field"),
        ({**OK, "colour": "red"}, "colour", "Unknown field"),
    ],
)
def test_invalid_fields_are_named(api: Api, body: dict, field: str, fragment: str) -> None:
    response = api.post("create_intent", body)
    assert response.status_code == 400
    error = response.json_body["error"]
    assert error["code"] == "invalid_request"
    assert fragment in error["fields"][field], error
    assert not Payment.objects.exists()


def test_every_invalid_field_is_reported_at_once(api: Api) -> None:
    response = api.post("create_intent", {"payable": "nope", "currency": "ZZZ", "capture": 1})
    assert set(response.json_body["error"]["fields"]) == {"payable", "id", "currency", "capture"}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{", "invalid_json"),
        (" ", "invalid_json"),
        ('{"amount": NaN, "currency": "USD"}', "invalid_json"),
        ('{"amount": Infinity, "currency": "USD"}', "invalid_json"),
        ('{"amount": 1, "amount": 2, "currency": "USD"}', "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('"a string"', "invalid_json"),
        ("1" * 5000, "invalid_json"),
        ("[" * 100_000, "invalid_json"),
    ],
)
def test_malformed_json_is_400(api: Api, raw: str, code: str, settings: Any) -> None:
    settings.PAYGATE = {**settings.PAYGATE, "API_MAX_BODY_BYTES": 200_000}
    response = api.post("create_intent", raw=raw)
    assert response.status_code == 400
    assert response.json_body["error"]["code"] == code


def test_body_that_is_not_utf8_is_400(api: Api) -> None:
    response = api.post("create_intent", raw=b'{"amount": "\xff"}')
    assert response.status_code == 400
    assert response.json_body["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain"])
def test_only_json_bodies_are_accepted(api: Api, content_type: str) -> None:
    response = api.post("create_intent", raw="amount=100&currency=USD", content_type=content_type)
    assert response.status_code == 415
    assert response.json_body["error"]["code"] == "unsupported_media_type"


def test_json_with_a_charset_is_accepted(api: Api, order: Order) -> None:
    response = api.post(
        "create_intent",
        pay_for(order),
        content_type="application/json; charset=utf-8",
    )
    assert response.status_code == 201


def test_a_body_over_the_limit_is_413(api: Api, settings: Any) -> None:
    settings.PAYGATE = {**settings.PAYGATE, "API_MAX_BODY_BYTES": 100}
    response = api.post("create_intent", {"payable": "order", "id": "x" * 200})
    assert response.status_code == 413
    assert response.json_body["error"]["code"] == "body_too_large"


@given(
    body=st.dictionaries(
        st.sampled_from(
            [
                "payable",
                "id",
                "amount",
                "currency",
                "provider",
                "description",
                "metadata",
                "email",
                "other",
            ]
        ),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.text(max_size=20)
            | st.decimals(allow_nan=False, allow_infinity=False, places=3),
            lambda children: (
                st.lists(children, max_size=3)
                | st.dictionaries(st.text(max_size=5), children, max_size=3)
            ),
            max_leaves=5,
        ),
    )
)
@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_json_object_gets_a_payment_or_a_4xx_with_a_code(
    api: Api, settings: Any, body: dict
) -> None:
    settings.PAYGATE = {**settings.PAYGATE, "RATE_LIMITS": {"create_intent": None}}
    raw = json.dumps(body, default=float)  # Decimals become JSON numbers with a fraction
    response = api.post("create_intent", raw=raw)
    assert response.status_code in {201, 200, 400, 404}, response.content
    if response.status_code == 400:
        assert response.json_body["error"]["code"] in {"invalid_request", "invalid_json"}
    if response.status_code == 404:
        assert response.json_body["error"]["code"] == "not_found"


# ---------------------------------------------------------------------------
# Who may call it
# ---------------------------------------------------------------------------


def test_anonymous_gets_a_json_401_not_a_redirect(anon_api: Api) -> None:
    response = anon_api.post("create_intent", {"payable": "donation", "id": "1"})
    assert response.status_code == 401
    assert response.json_body["error"]["code"] == "not_authenticated"
    assert not Payment.objects.exists()


def test_anonymous_gets_401_under_login_required_middleware(anon_api: Api, settings: Any) -> None:
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    response = anon_api.post("create_intent", {"payable": "donation", "id": "1"})
    assert response.status_code == 401
    assert not response.has_header("Location")


def test_get_is_405_with_allow(api: Api) -> None:
    response = api.client.get("/api/payments/create_intent/")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


# ---------------------------------------------------------------------------
# Idempotency-Key
# ---------------------------------------------------------------------------

BODY = {"payable": "donation", "id": "1", "amount": 2500}


@pytest.fixture(autouse=True)
def _donation(db: Any) -> Donation:
    return Donation.objects.create(pk=1)


def test_same_key_and_body_replays_the_payment(api: Api, dummy: Any) -> None:
    first = api.post("create_intent", BODY, **{"Idempotency-Key": "order-7"})
    second = api.post("create_intent", BODY, **{"Idempotency-Key": "order-7"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json_body["id"] == second.json_body["id"]
    assert second.json_body["client"] == first.json_body["client"]
    assert Payment.objects.count() == 1
    assert [c for c in dummy.calls if c[0] == "create_payment"] == [
        ("create_payment", f"paygate-{first.json_body['id']}-create")
    ]


def test_replay_from_another_ip_is_still_a_replay(api: Api) -> None:
    first = api.post("create_intent", BODY, REMOTE_ADDR="198.51.100.1", **{"Idempotency-Key": "k1"})
    second = api.post(
        "create_intent", BODY, REMOTE_ADDR="198.51.100.2", **{"Idempotency-Key": "k1"}
    )
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json_body["id"] == second.json_body["id"]


def test_same_key_with_another_body_is_409(api: Api) -> None:
    first = api.post("create_intent", BODY, **{"Idempotency-Key": "order-7"})
    second = api.post("create_intent", {**BODY, "amount": 2600}, **{"Idempotency-Key": "order-7"})
    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json_body["error"]["code"] == "idempotency_conflict"
    assert Payment.objects.count() == 1


def test_keys_are_scoped_per_user(api: Api, other_api: Api) -> None:
    mine = api.post("create_intent", BODY, **{"Idempotency-Key": "shared"})
    theirs = other_api.post("create_intent", BODY, **{"Idempotency-Key": "shared"})
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json_body["id"] != theirs.json_body["id"]
    assert theirs.json_body["client"]["payment_id"] == theirs.json_body["id"]


@pytest.mark.parametrize("key", ["", "has space", "x" * 201, "naïve"])
def test_malformed_idempotency_keys_are_400(api: Api, key: str) -> None:
    response = api.post("create_intent", BODY, check=False, **{"Idempotency-Key": key})
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]


# ---------------------------------------------------------------------------
# Errors from the services and the provider
# ---------------------------------------------------------------------------


def test_provider_unreachable_is_503(api: Api, dummy: Any) -> None:
    dummy.fail_next("create_payment")
    response = api.post("create_intent", BODY)
    assert response.status_code == 503
    assert response.json_body["error"]["code"] == "provider_unavailable"


def test_provider_refusal_is_502(api: Api, dummy: Any) -> None:
    dummy.fail_next("create_payment", ProviderError("Refused.", provider="dummy"))
    response = api.post("create_intent", BODY)
    assert response.status_code == 502
    assert response.json_body["error"] == {"code": "provider_error", "message": "Refused."}


def test_invalid_amount_from_the_provider_is_400(api: Api, dummy: Any, monkeypatch: Any) -> None:
    def refuse(amount: int, currency: str) -> None:
        raise InvalidAmount("Dummy cannot charge less than $0.50 in USD.")

    monkeypatch.setattr(dummy, "validate_amount", refuse)
    response = api.post("create_intent", api.order(10))
    assert response.status_code == 400
    assert response.json_body["error"]["code"] == "invalid_amount"


@pytest.mark.locking
def test_concurrent_requests_with_one_key_make_one_payment(user: Any, dummy: Any) -> None:
    import threading

    from django.db import connection

    clients = [Api(user) for _ in range(4)]
    barrier = threading.Barrier(len(clients))
    results: list[tuple[int, str]] = []

    def send(client: Api) -> None:
        try:
            barrier.wait()
            response = client.post(
                "create_intent", BODY, check=False, **{"Idempotency-Key": "race"}
            )
            results.append((response.status_code, response.json()["id"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == len(clients)
    assert {status for status, _ in results} <= {200, 201}
    assert 201 in {status for status, _ in results}
    assert len({payment_id for _, payment_id in results}) == 1
    assert Payment.objects.count() == 1
    assert sum(1 for method, _key in dummy.calls if method == "create_payment") == 1
