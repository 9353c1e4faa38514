"""GET payments/: staff search over every payment; customers see only their own."""

from __future__ import annotations

from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

import pytest

from django_paygate.models import get_payment_model
from tests.factories import PaymentFactory
from tests.views.conftest import Api

pytestmark = pytest.mark.django_db


def _ids(response: Any) -> list[str]:
    return [row["id"] for row in response.json_body["results"]]


def _on(day: int, **fields: Any) -> Any:
    payment = PaymentFactory(**fields)
    get_payment_model().objects.filter(pk=payment.pk).update(
        created_at=datetime(2024, 3, day, 12, tzinfo=dt_timezone.utc)
    )
    return payment


@pytest.fixture
def shop(user: Any, other_user: Any) -> dict[str, Any]:
    return {
        "mine_old": _on(1, user=user, status="succeeded", email="me@example.com"),
        "mine_new": _on(5, user=user, status="failed", provider_payment_id="pi_mine"),
        "theirs": _on(
            3,
            user=other_user,
            status="succeeded",
            currency="EUR",
            email="someone@example.org",
            needs_review=True,
            review_code="over_captured",
            review_reason="provider reports 999 captured of 1000",
        ),
        "guest": _on(4, status="pending", provider="stripe"),
    }


def test_customers_see_only_their_own_newest_first(api: Api, shop: dict) -> None:
    response = api.get("payments")
    assert response.status_code == 200
    assert _ids(response) == [str(shop["mine_new"].pk), str(shop["mine_old"].pk)]
    assert "needs_review" not in response.json_body["results"][0]
    assert response.json_body["count"] == 2


def test_a_customer_cannot_find_another_users_payment_even_by_id(api: Api, shop: dict) -> None:
    response = api.get("payments", {"q": str(shop["theirs"].pk)})
    assert response.json_body["count"] == 0


def test_staff_see_every_payment_with_review_fields(staff_api: Api, shop: dict) -> None:
    body = staff_api.get("payments").json_body
    assert body["count"] == 4
    flagged = next(r for r in body["results"] if r["id"] == str(shop["theirs"].pk))
    assert flagged["needs_review"] is True
    assert flagged["review_reason"] == "provider reports 999 captured of 1000"
    assert flagged["review_code"] == "over_captured"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "succeeded"}, ["theirs", "mine_old"]),
        ({"status": ["failed", "pending"]}, ["mine_new", "guest"]),
        ({"provider": "stripe"}, ["guest"]),
        ({"currency": "eur"}, ["theirs"]),
        ({"start": "2024-03-03", "end": "2024-03-04"}, ["guest", "theirs"]),
        ({"start": "2024-03-04"}, ["mine_new", "guest"]),
        ({"end": "2024-03-01"}, ["mine_old"]),
        ({"needs_review": "1"}, ["theirs"]),
        ({"review_code": "over_captured"}, ["theirs"]),
        ({"review_code": "sync_failing"}, []),
        ({"needs_review": "0", "status": "succeeded"}, ["mine_old"]),
        ({"review_reason": "CAPTURED of"}, ["theirs"]),
        ({"q": "pi_mine"}, ["mine_new"]),
        ({"q": "someone@"}, ["theirs"]),
    ],
)
def test_staff_filters_and_search(staff_api: Api, shop: dict, params: dict, expected: list) -> None:
    response = staff_api.get("payments", params)
    assert response.status_code == 200, response.json_body
    assert _ids(response) == [str(shop[name].pk) for name in expected]


def test_search_by_our_id(staff_api: Api, shop: dict) -> None:
    assert _ids(staff_api.get("payments", {"q": str(shop["guest"].pk)})) == [str(shop["guest"].pk)]


def test_pages(staff_api: Api, shop: dict) -> None:
    first = staff_api.get("payments", {"page_size": "3"}).json_body
    assert (first["count"], first["page"], first["next"], first["previous"]) == (4, 1, 2, None)
    assert len(first["results"]) == 3
    second = staff_api.get("payments", {"page_size": "3", "page": "2"}).json_body
    assert (second["next"], second["previous"]) == (None, 1)
    assert [r["id"] for r in second["results"]] == [str(shop["mine_old"].pk)]
    beyond = staff_api.get("payments", {"page": "9"}).json_body
    assert beyond["results"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "paid"}, "status"),
        ({"currency": "ZZZ"}, "currency"),
        ({"start": "2024-03-10", "end": "2024-03-01"}, "end"),
        ({"start": "yesterday"}, "start"),
        ({"needs_review": "maybe"}, "needs_review"),
        ({"review_code": "bored"}, "review_code"),
        ({"page": "0"}, "page"),
        ({"page_size": "101"}, "page_size"),
        ({"q": "x" * 256}, "q"),
        ({"sort": "amount"}, "sort"),
    ],
)
def test_invalid_parameters_are_400(staff_api: Api, params: dict, field: str) -> None:
    response = staff_api.get("payments", params)
    assert response.status_code == 400
    assert field in response.json_body["error"]["fields"]


@pytest.mark.parametrize("name", ["needs_review", "review_code", "review_reason"])
def test_review_filters_are_for_staff_only(api: Api, shop: dict, name: str) -> None:
    response = api.get("payments", {name: "1"})
    assert response.status_code == 400
    assert response.json_body["error"]["fields"] == {name: "For staff only."}


def test_anonymous_is_401(anon_api: Api) -> None:
    assert anon_api.get("payments").status_code == 401


def test_a_bounded_number_of_queries(staff_api: Api, shop: dict, django_assert_num_queries) -> None:
    for _ in range(30):
        PaymentFactory()
    with django_assert_num_queries(4):  # session, user, count, page
        staff_api.get("payments", {"page_size": "100"})
