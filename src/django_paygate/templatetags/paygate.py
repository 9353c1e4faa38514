"""Template filters for payment amounts: ``{% load paygate %}``.

``{{ payment|money }}`` formats an object with ``amount`` (minor units) and
``currency``; ``{{ 1999|money:"USD" }}`` formats a bare amount. Both use
:func:`django_paygate.money.format_money` for the active language: ``$19.99``,
``¥1,000`` (JPY has no decimals), ``KWD 1.235`` (three) in English,
``1.999,99 €`` in German, ``₹1,99,999.99`` in Hindi. ``money_code`` always
writes the currency code instead of a symbol: ``19.99 USD``.

Like every Django filter they never raise: a value that is not an amount
renders as the empty string.

``{% paygate_checkout payment %}`` renders the checkout widget (the one
``checkout/<uuid>/`` shows) inside a host template, for the payment's owner;
it needs ``request`` in the context (``django.template.context_processors.request``).
"""

from __future__ import annotations

from typing import Any

from django import template
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.safestring import SafeString, mark_safe

from django_paygate.money import format_money

register = template.Library()


def _format(value: object, currency: object, *, symbol: bool) -> str:
    if currency is None or currency == "":
        currency = getattr(value, "currency", None)
        value = getattr(value, "amount", None)
    try:
        return format_money(
            value,  # type: ignore[arg-type]
            currency,  # type: ignore[arg-type]
            symbol=symbol,
            locale=translation.get_language(),
        )
    except (TypeError, ValueError, LookupError):  # InvalidAmount is a ValueError
        return ""


@register.filter(is_safe=False)
def money(value: object, currency: object = None) -> str:
    """Minor units as a display amount: ``{{ payment|money }}`` or ``{{ 1999|money:"USD" }}``."""
    return _format(value, currency, symbol=True)


@register.filter(is_safe=False)
def money_code(value: object, currency: object = None) -> str:
    """Like :func:`money`, with the currency code instead of a symbol: ``19.99 USD``."""
    return _format(value, currency, symbol=False)


@register.simple_tag(takes_context=True)
def paygate_checkout(context: Any, payment: Any) -> SafeString:
    """The checkout widget for ``payment``: nothing unless the request's user owns it."""
    from django_paygate.views.checkout import checkout_context

    request = context.get("request")
    user = getattr(request, "user", None)
    owner = user.pk if user is not None and user.is_authenticated else None
    if request is None or payment is None or owner is None or payment.user_id != owner:
        return mark_safe("")
    widget = {**checkout_context(request, payment), "embedded": True}
    return mark_safe(render_to_string("paygate/checkout/widget.html", widget, request=request))
