"""pytest fixtures for projects that use django-paygate.

Loaded automatically through the ``pytest11`` entry point ``paygate``
(disable with ``-p no:paygate``). Nothing Django is imported until a fixture
runs, so projects and tests that do not use Django are unaffected.

Fixtures:

``paygate_dummy``
    The configured :class:`~django_paygate.providers.dummy.DummyProvider`,
    with its fake remote state reset before and after the test (the default
    database store's rows are rolled back with the test's database).
``paygate_signals``
    A :class:`~django_paygate.testing.signals.SignalRecorder` recording every
    django-paygate signal during the test: ``paygate_signals.count("payment_succeeded")``.
``paygate_webhook``
    A :class:`WebhookSender`: ``paygate_webhook(alias, body, headers)`` posts a
    delivery with pytest-django's ``client``; ``.dummy()``, ``.stripe()`` and
    ``.razorpay()`` build, sign (with the configured secret) and post an event.

Tests marked ``@pytest.mark.live`` are skipped unless the environment variable
``PAYGATE_RUN_LIVE_TESTS`` is set (the marker name is the ini option
``paygate_live_marker``; set it empty to turn this off).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from django.http import HttpResponse
    from django.test import Client

    from django_paygate.providers.dummy import DummyProvider
    from django_paygate.testing.signals import SignalRecorder

LIVE_ENV = "PAYGATE_RUN_LIVE_TESTS"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "paygate_live_marker",
        help=f"marker of tests that reach a provider sandbox; skipped unless ${LIVE_ENV} is set",
        default="live",
    )


def _live_marker(config: pytest.Config) -> str:
    return str(config.getini("paygate_live_marker") or "").strip()


def pytest_configure(config: pytest.Config) -> None:
    marker = _live_marker(config)
    if marker:
        config.addinivalue_line(
            "markers",
            f"{marker}: talks to a real provider sandbox; skipped unless {LIVE_ENV} is set",
        )


def live_tests_enabled() -> bool:
    """Whether ``PAYGATE_RUN_LIVE_TESTS`` is set to something other than 0/false/no."""
    return os.environ.get(LIVE_ENV, "").strip().lower() not in {"", "0", "false", "no", "off"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marker = _live_marker(config)
    if not marker or live_tests_enabled():
        return
    skip = pytest.mark.skip(reason=f"live provider test: set {LIVE_ENV}=1 to run it")
    for item in items:
        if item.get_closest_marker(marker) is not None:
            item.add_marker(skip)


@pytest.fixture
def paygate_dummy() -> Iterator[DummyProvider]:
    """The configured dummy provider, its remote state reset before and after the test."""
    from django_paygate.testing.fakes import find_dummy_provider

    provider = find_dummy_provider()
    # The database store's rows go with the test's database (rolled back or flushed).
    remote = provider.options["store"] != "database"
    provider.reset(remote=remote)
    yield provider
    provider.reset(remote=remote)


@pytest.fixture
def paygate_signals() -> Iterator[SignalRecorder]:
    """Every django-paygate signal sent during the test."""
    from django_paygate.testing.signals import SignalRecorder

    with SignalRecorder() as recorder:
        yield recorder


class WebhookSender:
    """Posts signed webhook deliveries to ``paygate:webhook`` with a test client."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def __call__(self, alias: str, body: bytes, headers: Mapping[str, str]) -> HttpResponse:
        """POST ``body`` with ``headers`` to the webhook of provider ``alias``."""
        from django_paygate.testing.webhooks import post_webhook

        return post_webhook(self.client, alias, body, headers)

    @staticmethod
    def secret(alias: str) -> str:
        """The first ``webhook_secret`` configured for ``alias``."""
        from django_paygate.providers import get_provider

        secrets = get_provider(alias).webhook_secrets()
        if not secrets:
            raise LookupError(f"Provider {alias!r} has no webhook_secret in its OPTIONS.")
        return secrets[0]

    def dummy(
        self,
        type: str,
        data: Mapping[str, Any],
        *,
        alias: str | None = None,
        event_id: str | None = None,
    ) -> HttpResponse:
        """Sign a dummy event with the dummy provider's secret and post it."""
        from django_paygate.testing.fakes import find_dummy_provider
        from django_paygate.testing.webhooks import dummy_event

        alias = alias or find_dummy_provider().alias
        body, headers = dummy_event(type, data, secret=self.secret(alias), event_id=event_id)
        return self(alias, body, headers)

    def stripe(
        self,
        type: str,
        obj: Mapping[str, Any],
        *,
        alias: str = "stripe",
        event_id: str | None = None,
        timestamp: int | None = None,
    ) -> HttpResponse:
        """Sign a Stripe event with the secret configured for ``alias`` and post it."""
        from django_paygate.testing.webhooks import stripe_event

        body, headers = stripe_event(
            type, obj, secret=self.secret(alias), event_id=event_id, timestamp=timestamp
        )
        return self(alias, body, headers)

    def razorpay(
        self,
        event: str,
        entities: Mapping[str, Mapping[str, Any]],
        *,
        alias: str = "razorpay",
        event_id: str | None = None,
    ) -> HttpResponse:
        """Sign a Razorpay event with the secret configured for ``alias`` and post it."""
        from django_paygate.testing.webhooks import razorpay_event

        body, headers = razorpay_event(
            event, entities, secret=self.secret(alias), event_id=event_id
        )
        return self(alias, body, headers)


@pytest.fixture
def paygate_webhook(client: Client) -> WebhookSender:
    """Post signed webhook events with pytest-django's ``client``."""
    return WebhookSender(client)
