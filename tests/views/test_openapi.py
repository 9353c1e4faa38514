"""The OpenAPI document is true: it matches the URLconf, and the live API matches it."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from types import SimpleNamespace
from typing import Any

import pytest
import schemathesis
from django.db import connections
from django.test import Client
from django.test.testcases import LiveServerThread
from django.urls import URLPattern
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from django_paygate import urls as paygate_urls
from tests.factories import PaymentFactory, UserFactory
from tests.testapp.models import Donation
from tests.views.conftest import Api
from tests.views.schema import document

API_PREFIX = "/api/payments"


def _api_patterns() -> dict[str, URLPattern]:
    """The app's URL patterns that belong to the JSON API (not the webhooks, not the pages)."""
    found = {}
    for pattern in paygate_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        if getattr(pattern.callback, "paygate_api", False):
            found["/" + str(pattern.pattern)] = pattern
        else:
            assert str(pattern.pattern).startswith(("webhooks/", "checkout/")), pattern
    return found


def test_every_api_path_is_documented_and_every_documented_path_exists() -> None:
    patterns = _api_patterns()
    assert set(patterns) == set(document()["paths"])
    assert len(patterns) == 7


@pytest.mark.parametrize("path", sorted(document()["paths"]))
def test_documented_methods_are_the_views_methods(path: str) -> None:
    pattern = _api_patterns()[path]
    documented = {m.upper() for m in document()["paths"][path]}
    assert documented == set(pattern.callback.api_methods)
    ids = [operation["operationId"] for operation in document()["paths"][path].values()]
    assert len(set(ids)) == len(ids)  # OpenAPI wants them unique
    assert all(operation_id.endswith(pattern.name) for operation_id in ids)


def test_every_reference_resolves() -> None:
    doc = document()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                target: Any = doc
                for part in node["$ref"].removeprefix("#/").split("/"):
                    assert part in target, node["$ref"]
                    target = target[part]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)


@pytest.mark.django_db
def test_served_document_names_its_mount_point() -> None:
    response = Client().get(f"{API_PREFIX}/openapi.json")
    assert response.status_code == 200
    served = response.json()
    assert served["servers"] == [{"url": API_PREFIX}]
    assert served["paths"] == document()["paths"]
    assert served["components"] == document()["components"]


# ---------------------------------------------------------------------------
# schemathesis against the live server
# ---------------------------------------------------------------------------

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class _NoStatic:
    """The live server's static-files wrapper, doing nothing (the tests serve no static files)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.application(environ, start_response)


@pytest.fixture
def api_server(transactional_db: Any) -> Iterator[Any]:
    """A live server on 127.0.0.1 sharing the test database (in-memory SQLite included).

    pytest-django's own fixture needs ``STATIC_URL``, which tests/settings.py does not set.
    """
    shared = {
        conn.alias: conn
        for conn in connections.all()
        if conn.vendor == "sqlite" and conn.is_in_memory_db()
    }
    thread = LiveServerThread("127.0.0.1", _NoStatic, connections_override=shared, port=0)
    thread.daemon = True
    for conn in shared.values():
        conn.inc_thread_sharing()
    thread.start()
    thread.is_ready.wait()
    try:
        if thread.error:
            raise thread.error
        yield SimpleNamespace(url=f"http://127.0.0.1:{thread.port}")
    finally:
        thread.terminate()
        for conn in shared.values():
            conn.dec_thread_sharing()


def _identity(settings: Any, *, staff: bool) -> dict:
    """Session and CSRF cookies, and the CSRF header, of a logged-in user."""
    # Fuzzing sends hundreds of requests: limits are covered by test_security.py.
    settings.PAYGATE = {
        **settings.PAYGATE,
        "RATE_LIMITS": dict.fromkeys(
            [
                "create_intent",
                "confirm_payment",
                "process_refund",
                "payment_status",
                "payment_sync",
                "payment_analytics",
                "openapi_json",
                "declines",
            ]
        ),
    }
    user = UserFactory(is_staff=True, is_superuser=True) if staff else UserFactory()
    Donation.objects.get_or_create(pk=1)  # a payable the fuzzed create_intent may name
    # A few payments so that the analytics and the status of a known id have data.
    PaymentFactory(user=user, status="succeeded")
    PaymentFactory(user=user, status="failed", failure_code="card_declined")
    api = Api(user)
    token = api.token
    return {
        "cookies": {"sessionid": api.client.cookies["sessionid"].value, "csrftoken": token},
        "headers": {"X-CSRFToken": token},
    }


@pytest.fixture
def customer_identity(api_server: Any, settings: Any) -> dict:
    return _identity(settings, staff=False)


@pytest.fixture
def staff_identity(api_server: Any, settings: Any) -> dict:
    return _identity(settings, staff=True)


def _schema() -> Any:
    """The shipped document, loaded by schemathesis; calls go to the live server."""
    path = resources.files("django_paygate").joinpath("openapi.json")
    loaded = schemathesis.openapi.from_path(str(path))
    loaded.config.generation.update(
        modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
        max_examples=30,
        with_security_parameters=False,
    )
    return loaded


schema = _schema()


def _call_and_validate(case: Any, server: Any, identity: dict) -> None:
    response = case.call(
        base_url=f"{server.url}{API_PREFIX}",
        cookies=identity["cookies"],
        headers=identity["headers"],
    )
    assert response.status_code < 500, response.text
    case.validate_response(response, checks=CHECKS)


@schema.parametrize()
@hypothesis_settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_live_api_conforms_for_a_customer(
    case: Any, api_server: Any, customer_identity: dict
) -> None:
    _call_and_validate(case, api_server, customer_identity)


@schema.parametrize()
@hypothesis_settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_live_api_conforms_for_staff(case: Any, api_server: Any, staff_identity: dict) -> None:
    _call_and_validate(case, api_server, staff_identity)


def test_the_fuzzing_identities_really_reach_the_endpoints(
    api_server: Any, customer_identity: dict, staff_identity: dict
) -> None:
    """Without this, a broken session or token would turn the fuzzing into a 401/403 run."""
    import requests

    base = f"{api_server.url}{API_PREFIX}"
    created = requests.post(
        f"{base}/create_intent/",
        json={"payable": "donation", "id": "1", "amount": 1999},
        cookies=customer_identity["cookies"],
        headers=customer_identity["headers"],
        timeout=10,
    )
    assert created.status_code == 201, created.text
    analytics = requests.get(
        f"{base}/payment_analytics/", cookies=staff_identity["cookies"], timeout=10
    )
    assert analytics.status_code == 200, analytics.text
    without_token = requests.post(
        f"{base}/create_intent/",
        json={"payable": "donation", "id": "1", "amount": 1999},
        cookies=customer_identity["cookies"],
        timeout=10,
    )
    assert without_token.status_code == 403
