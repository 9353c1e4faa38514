"""A CONTEXT_HOOK for the tests: ``PAYGATE["EMAILS"]["CONTEXT_HOOK"]``."""

from __future__ import annotations

from typing import Any


def add_order_number(notification: Any, context: dict[str, Any]) -> dict[str, Any]:
    context["order_number"] = f"ORD-{notification.payment.metadata.get('order', '?')}"
    context["site_name"] = "Hooked Shop"
    if notification.payment.metadata.get("no_email"):
        context["recipients"] = []
    return context
