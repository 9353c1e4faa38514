"""Admin template tags: ``{% load paygate_admin %}``.

``{% paygate_dispute_alert %}`` shows a banner while disputes wait for an
answer (inquiry or open), with a link to them; nothing otherwise. One query.
The admin index shows it by itself (see :mod:`django_paygate.admin`); a
project with its own index template adds the tag there.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.db.models import Count, Sum
from django.urls import reverse

from django_paygate import analytics, money

register = template.Library()


def dispute_alert_context() -> dict[str, Any]:
    rows = (
        analytics.open_disputes()
        .values("currency")
        .annotate(count=Count("pk"), amount=Sum("amount"))
        .order_by("currency")
    )
    disputes = [
        {**row, "display": money.format_money(row["amount"] or 0, row["currency"])} for row in rows
    ]
    url = (
        reverse("admin:paygate_dispute_changelist")
        + "?status__in="
        + ",".join(analytics.AWAITING_ANSWER)
    )
    return {"disputes": disputes, "total": sum(r["count"] for r in disputes), "url": url}


@register.inclusion_tag("admin/paygate/_dispute_alert.html")
def paygate_dispute_alert() -> dict[str, Any]:
    """The open-disputes banner."""
    return dispute_alert_context()
