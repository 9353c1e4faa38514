"""POST create_intent/: validation, idempotency, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_paygate.exceptions import InvalidAmount, ProviderError
from django_paygate.models import get_payment_model
from tests.views.conftest import Api

pytestmark = pytest.mark.django_db(transaction=True)

Payment = get_payment_model()


def test_creates_a_payment_for_the_user(api: Api, user: Any, dummy: Any) -> None:
    response = api.post(
        "create_intent",
        {"amount": 1999, "currency": "usd", "description": "Order 42", "metadata": {"order": "42"}},
    )
    assert response.status_code == 201
    body = response.json_body
    payment = Payment.objects.get(pk=body["id"])
    assert payment.user == user
    assert (payment.amount, payment.currency, payment.provider) == (1999, "USD", "dummy")
    assert body["status"] == "pending"
    assert body["amount"] == 1999
    assert body["currency"] == "USD"
    assert body["provider"] == "dummy"
    assert body["client"]["payment_id"] == body["id"]
    assert body["metadata"] == {"order": "42"}
    assert response["Cache-Control"] == "no-store"
    assert "needs_review" not in body


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("19.99", "USD", 1999), ("19.990", "usd", 1999), ("500", "JPY", 500), ("1.234", "KWD", 1234)],
)
def test_a_decimal_string_is_converted_exactly(
    api: Api, dummy: Any, amount: str, currency: str, minor: int
) -> None:
    response = api.post("create_intent", {"amount": amount, "currency": currency})
    assert response.status_code == 201
    assert Payment.objects.get(pk=response.json_body["id"]).amount == minor


def test_the_client_ip_is_stored_for_staff_and_hidden_from_the_owner(api: Api) -> None:
    response = api.post(
        "create_intent", {"amount": 100, "currency": "EUR"}, REMOTE_ADDR="203.0.113.9"
    )
    payment = Payment.objects.get(pk=response.json_body["id"])
    assert payment.metadata["paygate_client_ip"] == "203.0.113.9"
    assert "paygate_client_ip" not in response.json_body["metadata"]


def test_the_client_ip_is_not_stored_when_disabled(api: Api, settings: Any) -> None:
    settings.PAYGATE = {**settings.PAYGATE, "API_STORE_CLIENT_IP": False}
    response = api.post("create_intent", {"amount": 100, "currency": "EUR"})
    assert Payment.objects.get(pk=response.json_body["id"]).metadata == {}


def test_manual_capture(api: Api) -> None:
    response = api.post("create_intent", {"amount": 100, "currency": "EUR", "capture": False})
    assert response.json_body["capture_method"] == "manual"


# ---------------------------------------------------------------------------
# Bad input: 400 with a field-level message
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"currency": "USD"}, "amount", "required"),
        ({"amount": 100}, "currency", "required"),
        ({"amount": 19.99, "currency": "USD"}, "amount", "floats"),
        ({"amount": 1e3, "currency": "USD"}, "amount", "floats"),
        ({"amount": True, "currency": "USD"}, "amount", "integer of minor units"),
        ({"amount": [1], "currency": "USD"}, "amount", "integer of minor units"),
        ({"amount": 0, "currency": "USD"}, "amount", "smallest"),
        ({"amount": -5, "currency": "USD"}, "amount", "smallest"),
        ({"amount": 10**16, "currency": "USD"}, "amount", "largest"),
        ({"amount": "19.999", "currency": "USD"}, "amount", "decimal places"),
        ({"amount": "1.5", "currency": "JPY"}, "amount", "decimal places"),
        ({"amount": "1e3", "currency": "USD"}, "amount", "plain decimal"),
        ({"amount": " 5", "currency": "USD"}, "amount", "plain decimal"),
        ({"amount": 100, "currency": "XXX"}, "currency", "ISO 4217"),
        ({"amount": 100, "currency": "US"}, "currency", "ISO 4217"),
        ({"amount": 100, "currency": 840}, "currency", "ISO 4217"),
        ({"amount": 100, "currency": "USD", "provider": "stripe"}, "provider", "No provider"),
        ({"amount": 100, "currency": "USD", "provider": 1}, "provider", "string"),
        ({"amount": 100, "currency": "USD", "description": "x" * 1001}, "description", "1000"),
        ({"amount": 100, "currency": "USD", "description": 5}, "description", "string"),
        ({"amount": 100, "currency": "USD", "email": "not-an-email"}, "email", "valid email"),
        ({"amount": 100, "currency": "USD", "capture": "yes"}, "capture", "true or false"),
        ({"amount": 100, "currency": "USD", "metadata": []}, "metadata", "object"),
        ({"amount": 100, "currency": "USD", "metadata": {"a": {"b": 1}}}, "metadata", "strings"),
        ({"amount": 100, "currency": "USD", "metadata": {"a": None}}, "metadata", "strings"),
        ({"amount": 100, "currency": "USD", "metadata": {"a": 1.5}}, "metadata", "fraction"),
        ({"amount": 100, "currency": "USD", "metadata": {"a": "x" * 501}}, "metadata", "500"),
        ({"amount": 100, "currency": "USD", "metadata": {"k" * 41: "v"}}, "metadata", "40"),
        ({"amount": 100, "currency": "USD", "metadata": {"": "v"}}, "metadata", "1 to 40"),
        (
            {"amount": 100, "currency": "USD", "metadata": {"paygate_client_ip": "1.2.3.4"}},
            "metadata",
            "reserved",
        ),
        (
            {"amount": 100, "currency": "USD", "metadata": {f"k{i}": "v" for i in range(50)}},
            "metadata",
            "49 keys",
        ),
        (
            {"amount": 100, "currency": "USD", "metadata": {f"k{i}": "v" * 200 for i in range(30)}},
            "metadata",
            "4096 bytes",
        ),
        ({"amount": 100, "currency": "USD", "colour": "red"}, "colour", "Unknown field"),
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
    response = api.post("create_intent", {"amount": 1.5, "currency": "ZZZ", "capture": 1})
    assert set(response.json_body["error"]["fields"]) == {"amount", "currency", "capture"}


def test_metadata_size_follows_the_setting(api: Api, settings: Any) -> None:
    settings.PAYGATE = {**settings.PAYGATE, "API_MAX_METADATA_BYTES": 20}
    response = api.post(
        "create_intent", {"amount": 1, "currency": "USD", "metadata": {"a": "x" * 30}}
    )
    assert "20 bytes" in response.json_body["error"]["fields"]["metadata"]


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


def test_json_with_a_charset_is_accepted(api: Api) -> None:
    response = api.post(
        "create_intent",
        {"amount": 100, "currency": "USD"},
        content_type="application/json; charset=utf-8",
    )
    assert response.status_code == 201


def test_a_body_over_the_limit_is_413(api: Api, settings: Any) -> None:
    settings.PAYGATE = {**settings.PAYGATE, "API_MAX_BODY_BYTES": 100}
    response = api.post(
        "create_intent", {"amount": 100, "currency": "USD", "description": "x" * 200}
    )
    assert response.status_code == 413
    assert response.json_body["error"]["code"] == "body_too_large"


@given(
    body=st.dictionaries(
        st.sampled_from(
            [
                "amount",
                "currency",
                "provider",
                "description",
                "metadata",
                "capture",
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
def test_any_json_object_gets_201_or_a_400_with_fields(api: Api, settings: Any, body: dict) -> None:
    settings.PAYGATE = {**settings.PAYGATE, "RATE_LIMITS": {"create_intent": None}}
    raw = json.dumps(body, default=float)  # Decimals become JSON numbers with a fraction
    response = api.post("create_intent", raw=raw)
    assert response.status_code in {201, 400}, response.content
    if response.status_code == 400:
        assert response.json_body["error"]["code"] in {"invalid_request", "invalid_json"}


# ---------------------------------------------------------------------------
# Who may call it
# ---------------------------------------------------------------------------


def test_anonymous_gets_a_json_401_not_a_redirect(anon_api: Api) -> None:
    response = anon_api.post("create_intent", {"amount": 100, "currency": "USD"})
    assert response.status_code == 401
    assert response.json_body["error"]["code"] == "not_authenticated"
    assert not Payment.objects.exists()


def test_anonymous_gets_401_under_login_required_middleware(anon_api: Api, settings: Any) -> None:
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    response = anon_api.post("create_intent", {"amount": 100, "currency": "USD"})
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

BODY = {"amount": 2500, "currency": "GBP", "metadata": {"order": "7"}}


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
    response = api.post("create_intent", {"amount": 10, "currency": "USD"})
    assert response.status_code == 400
    assert response.json_body["error"]["code"] == "invalid_amount"


def test_a_float_reaching_the_services_is_400(api: Api, monkeypatch: Any) -> None:
    from django_paygate import services

    def boom(**kwargs: Any) -> None:
        raise TypeError("amount must be an int of minor units, not float")

    monkeypatch.setattr(services, "create_payment", boom)
    response = api.post("create_intent", BODY)
    assert response.status_code == 400
    assert response.json_body["error"]["code"] == "invalid_request"


@pytest.mark.postgres
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
