from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import caches
from django.test import Client
from django.urls import reverse

from tests.factories import UserFactory
from tests.views.schema import assert_conforms

PREFIX = "/api/payments"


@pytest.fixture(autouse=True)
def _api_settings(settings: Any) -> Iterator[None]:
    settings.CSRF_FAILURE_VIEW = "django_paygate.views.api.csrf_failure"
    caches["default"].clear()
    yield
    caches["default"].clear()


class Api:
    """A CSRF-enforcing client with a valid token, optionally logged in."""

    def __init__(self, user: Any = None) -> None:
        self.client = Client(enforce_csrf_checks=True)
        self.token = secrets.token_hex(16)  # 32 characters: an unmasked CSRF secret
        self.client.cookies["csrftoken"] = self.token
        self.user = user
        if user is not None:
            self.client.force_login(user)

    def order(self, amount: int = 1999, currency: str = "USD") -> dict[str, Any]:
        """The create_intent body for a new order of this user's (tests.testapp.Order)."""
        from tests.testapp.models import Order

        order = Order.objects.create(
            reference="T", amount=amount, currency=currency, owner=self.user
        )
        return {"payable": "order", "id": str(order.pk)}

    def post(
        self,
        name: str,
        data: Any = None,
        *,
        raw: bytes | str | None = None,
        content_type: str = "application/json",
        token: str | None = "own",
        check: bool = True,
        **headers: Any,
    ) -> Any:
        body = raw if raw is not None else json.dumps(data if data is not None else {})
        extra = _meta(headers)
        if token == "own":
            extra["HTTP_X_CSRFTOKEN"] = self.token
        elif token is not None:
            extra["HTTP_X_CSRFTOKEN"] = token
        response = self.client.post(
            reverse(f"paygate:{name}"), body, content_type=content_type, **extra
        )
        if check:
            response.json_body = assert_conforms(response, path_of(name), "post")
        return response

    def get(
        self, name: str, params: dict[str, Any] | None = None, *, check: bool = True, **headers: Any
    ) -> Any:
        extra = _meta(headers)
        response = self.client.get(reverse(f"paygate:{name}"), params or {}, **extra)
        if check:
            response.json_body = assert_conforms(response, path_of(name), "get")
        return response


def _meta(headers: dict[str, Any]) -> dict[str, Any]:
    """``Idempotency-Key`` -> ``HTTP_IDEMPOTENCY_KEY``; META names (``REMOTE_ADDR``) as they are."""
    return {
        (k if k.isupper() and "-" not in k else f"HTTP_{k.upper().replace('-', '_')}"): v
        for k, v in headers.items()
    }


def path_of(name: str) -> str:
    return reverse(f"paygate:{name}").removeprefix(PREFIX)


@pytest.fixture
def user(db: Any) -> Any:
    return UserFactory()


@pytest.fixture
def other_user(db: Any) -> Any:
    return UserFactory()


@pytest.fixture
def staff(db: Any) -> Any:
    return UserFactory(is_staff=True)


@pytest.fixture
def refunder(db: Any) -> Any:
    person = UserFactory(is_staff=True)
    person.user_permissions.add(
        Permission.objects.get(codename="refund_payment", content_type__app_label="paygate")
    )
    return person


@pytest.fixture
def api(user: Any) -> Api:
    return Api(user)


@pytest.fixture
def other_api(other_user: Any) -> Api:
    return Api(other_user)


@pytest.fixture
def anon_api(db: Any) -> Api:
    return Api()


@pytest.fixture
def staff_api(staff: Any) -> Api:
    return Api(staff)


@pytest.fixture
def refund_api(refunder: Any) -> Api:
    return Api(refunder)
