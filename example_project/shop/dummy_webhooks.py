"""Deliver the dummy provider's webhook events, as a real provider would POST them.

The dummy provider records every event it "sends" instead of making an HTTP
request. The shop hands them to the same pipeline its webhook URL runs
(verify the signature, store in the inbox, deduplicate, apply), so the demo
shows webhook events arriving in the admin next to each change.
"""

from __future__ import annotations

from django.conf import settings

from django_paygate.providers import get_providers
from django_paygate.providers.dummy import DummyProvider
from django_paygate.webhooks import WebhookResult, receive_webhook


def pending_count() -> int:
    return sum(len(p.sent_events) for p in get_providers().values() if isinstance(p, DummyProvider))


def deliver_dummy_webhooks(*, force: bool = False) -> list[WebhookResult]:
    """Deliver and forget every recorded event (if SHOP_DELIVER_DUMMY_WEBHOOKS, or ``force``)."""
    if not (force or getattr(settings, "SHOP_DELIVER_DUMMY_WEBHOOKS", False)):
        return []
    results = []
    for alias, provider in get_providers().items():
        if not isinstance(provider, DummyProvider):
            continue
        pending = list(provider.sent_events)
        del provider.sent_events[: len(pending)]
        results += [receive_webhook(alias, body, headers) for body, headers in pending]
    return results
