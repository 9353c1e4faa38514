from __future__ import annotations

from django import template

from django_paygate.money import format_money

register = template.Library()


@register.filter
def money(minor: int | None, currency: str) -> str:
    """``{{ payment.amount|money:payment.currency }}`` -> ``$19.99``."""
    if minor is None:
        return ""
    return format_money(int(minor), currency)
