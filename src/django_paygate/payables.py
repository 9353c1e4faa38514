"""Payables: the host's own objects that customers pay for (an order, an invoice).

The host owns the price. A model becomes payable by implementing
:class:`Payable` and being named in ``PAYGATE["PAYABLES"]``::

    PAYGATE = {..., "PAYABLES": {"order": "shop.Order"}}

``services.create_payment(payable=order, ...)`` then reads the amount,
currency, description and receipt address from the order, never from the
caller; the payment links to it (``payment.payable``), and
:func:`payment_covers` tells fulfilment code whether a payment paid it in full.
See docs/checkout.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from django.apps import apps
from django.db import models

from django_paygate import money
from django_paygate.exceptions import ConfigurationError, InvalidAmount
from django_paygate.states import PaymentStatus

if TYPE_CHECKING:
    from django_paygate.models import AbstractPayment


@runtime_checkable
class Payable(Protocol):
    """What a host model implements to be paid for.

    Optional extras, looked up with ``getattr``:

    - ``get_payment_metadata() -> dict``: copied into ``payment.metadata``;
    - ``accepts_customer_amount: tuple[int, int]``: (least, most) minor units
      the customer may choose (donations, tips); without it, a customer-chosen
      amount is refused.
    """

    pk: Any

    def get_payment_amount(self) -> tuple[int, str]:
        """``(amount in minor units, currency)`` due now."""
        ...

    def get_payment_description(self) -> str:
        """What the customer pays for (receipts, the provider's dashboard)."""
        ...

    def can_be_paid_by(self, user: Any) -> bool:
        """Whether ``user`` (maybe anonymous) may open a payment for this object."""
        ...

    def get_payment_email(self) -> str:
        """The receipt address; "" means the paying user's own."""
        ...

    def get_payment_return_urls(self) -> tuple[str, str]:
        """``(success URL, failure URL)`` the checkout sends the customer to."""
        ...


@dataclass(frozen=True)
class PaymentTerms:
    """What a payable asks for, read once and validated."""

    amount: int
    currency: str
    description: str
    email: str
    metadata: dict[str, Any] = field(default_factory=dict)


def registered() -> dict[str, str]:
    """``PAYGATE["PAYABLES"]``: short name -> ``"app_label.Model"``."""
    from django_paygate.conf import paygate_settings

    value = paygate_settings.PAYABLES
    if not isinstance(value, Mapping):
        raise ConfigurationError("PAYGATE['PAYABLES'] must be a dict of name -> 'app_label.Model'.")
    return {str(k): str(v) for k, v in value.items()}


def problems() -> list[str]:
    """What is wrong with ``PAYGATE["PAYABLES"]`` (for ``manage.py check``)."""
    try:
        names = registered()
    except ConfigurationError as exc:
        return [str(exc)]
    found = []
    for name, label in names.items():
        where = f"PAYGATE['PAYABLES'][{name!r}]"
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            found.append(f"{where} is {label!r}, which is not an installed model.")
            continue
        missing = [
            method
            for method in (
                "get_payment_amount",
                "get_payment_description",
                "can_be_paid_by",
                "get_payment_email",
                "get_payment_return_urls",
            )
            if not callable(getattr(model, method, None))
        ]
        if missing:
            found.append(f"{where} ({label}) does not implement {', '.join(missing)}.")
    return found


def payable_model(name: str) -> type[models.Model] | None:
    """The model registered as ``name``, or ``None``."""
    label = registered().get(name)
    if label is None:
        return None
    try:
        return apps.get_model(label)
    except (LookupError, ValueError):
        raise ConfigurationError(f"PAYGATE['PAYABLES'][{name!r}] is not a model.") from None


def payable_name(obj: models.Model) -> str:
    """The short name ``obj``'s model is registered under; ConfigurationError if none."""
    label = obj._meta.label_lower
    for name, registered_label in registered().items():
        if registered_label.lower() == label:
            return name
    raise ConfigurationError(
        f"{obj._meta.label} is not in PAYGATE['PAYABLES']: register it to take payments for it."
    )


def customer_amount_bounds(payable: Any) -> tuple[int, int] | None:
    """``(least, most)`` minor units the customer may choose, or ``None`` (they may not)."""
    bounds = getattr(payable, "accepts_customer_amount", None)
    if callable(bounds):
        bounds = bounds()
    if bounds is None:
        return None
    least, most = bounds
    return int(least), int(most)


def terms(payable: Any, *, customer_amount: int | None = None) -> PaymentTerms:
    """Read and validate what ``payable`` asks for.

    ``customer_amount`` (minor units) replaces the payable's amount only when
    the payable accepts one and it is within its bounds; otherwise
    :class:`InvalidAmount`.
    """
    amount, currency = payable.get_payment_amount()
    currency = money.normalize_currency(currency)
    if customer_amount is not None:
        bounds = customer_amount_bounds(payable)
        if bounds is None:
            raise InvalidAmount("This payable does not accept an amount chosen by the customer.")
        amount = money.validate_minor(customer_amount, currency)
        if not bounds[0] <= amount <= bounds[1]:
            raise InvalidAmount(
                f"Choose an amount from {money.format_money(bounds[0], currency)} "
                f"to {money.format_money(bounds[1], currency)}."
            )
    amount = money.validate_minor(amount, currency)
    get_metadata = getattr(payable, "get_payment_metadata", None)
    metadata = dict(get_metadata() or {}) if callable(get_metadata) else {}
    return PaymentTerms(
        amount=amount,
        currency=currency,
        description=str(payable.get_payment_description() or "")[:1000],
        email=str(payable.get_payment_email() or ""),
        metadata=metadata,
    )


def amount_changed(payment: AbstractPayment, payable: Any) -> str:
    """Why ``payment`` no longer matches what ``payable`` asks for, or "".

    A payment created with a customer-chosen amount matches while that amount
    is still within the payable's bounds and its currency is the same.
    """
    amount, currency = payable.get_payment_amount()
    currency = str(currency).upper()
    if currency != payment.currency:
        return f"the payable's currency is {currency}, the payment's {payment.currency}"
    bounds = (
        customer_amount_bounds(payable)
        if (payment.metadata or {}).get(CUSTOMER_AMOUNT_KEY)
        else None
    )
    if bounds is not None:
        if not bounds[0] <= payment.amount <= bounds[1]:
            return f"{payment.amount} is outside the payable's bounds {bounds}"
        return ""
    if amount != payment.amount:
        return f"the payable asks for {amount}, the payment is for {payment.amount}"
    return ""


def payable_changed(payment: AbstractPayment) -> str:
    """Why a linked ``payment`` no longer matches its payable as it stands now, or ""."""
    current = payment.payable
    if current is None:
        return "the payable no longer exists"
    return amount_changed(payment, current)


#: Set in ``payment.metadata`` when the customer chose the amount (within the payable's bounds).
CUSTOMER_AMOUNT_KEY = "paygate_customer_amount"


def payment_covers(payment: AbstractPayment) -> bool:
    """Whether ``payment`` fully pays its payable, as the payable stands now.

    True when the payment succeeded, its currency is the payable's and what
    was captured (less what was refunded) is at least the payable's amount
    (for a customer-chosen amount: at least the amount of the payment). Use
    it in a ``payment_succeeded`` receiver before fulfilling::

        @receiver(payment_succeeded)
        def fulfil(sender, payment, **kwargs):
            if isinstance(payment.payable, Order) and payment_covers(payment):
                payment.payable.mark_paid()
    """
    payable = payment.payable
    if payable is None:
        return False
    if payment.status not in {PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED}:
        return False
    amount, currency = payable.get_payment_amount()
    if str(currency).upper() != payment.currency:
        return False
    due = payment.amount if (payment.metadata or {}).get(CUSTOMER_AMOUNT_KEY) else amount
    return payment.amount_captured - payment.amount_refunded >= due > 0


__all__ = [
    "Payable",
    "PaymentTerms",
    "amount_changed",
    "payable_changed",
    "payable_model",
    "payable_name",
    "payment_covers",
    "registered",
    "terms",
]
