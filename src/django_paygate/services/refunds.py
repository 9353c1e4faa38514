"""Refunds: a ``pending`` row reserves the amount first, then the provider is asked.

The reservation is written under the payment's lock, so concurrent refunds
never exceed what was captured; the provider is called with the refund's own
idempotency key, outside any transaction; its answer (or its webhook, whichever
comes first) settles the row.
"""

from __future__ import annotations

import hashlib
import uuid
from functools import partial
from typing import TYPE_CHECKING

from django.db import transaction

from django_paygate import money
from django_paygate.exceptions import (
    IdempotencyConflict,
    InvalidTransition,
    PaygateError,
    RefundExceedsCaptured,
)
from django_paygate.models import AbstractPayment, Refund, Source, fit
from django_paygate.providers import get_provider
from django_paygate.services.calls import call_provider
from django_paygate.services.ledger import (
    Origin,
    apply_refund,
    audit,
    lock_payment,
    refund_reserved,
    user_or_none,
    write,
)
from django_paygate.states import PaymentStatus, RefundStatus

if TYPE_CHECKING:
    from django_paygate.models import Payment as AnyPayment
    from django_paygate.services.ledger import UserLike

P = PaymentStatus


def refund_payment(
    payment: AbstractPayment,
    amount: int | None = None,
    reason: str = "",
    user: UserLike = None,
    idempotency_key: str | None = None,
    *,
    source: str = Source.API,
) -> Refund:
    """Refund ``amount`` (default: all that is left) of a captured payment.

    The refund is written ``pending`` first, which reserves its amount under
    the payment's lock: concurrent refunds can never exceed what was
    captured. Raises :class:`RefundExceedsCaptured`, :class:`InvalidTransition`
    for a payment with nothing captured, :class:`ProviderUnavailable` when the
    outcome is unknown (the refund stays ``pending`` and reserved until
    ``sync_payment`` settles it with the same idempotency key).

    With ``idempotency_key``, a retry (after a timeout, a double click) is the
    same refund: it is returned (``replayed`` set), and sent again with the
    same provider key while it has no answer; another amount with the same key
    raises :class:`IdempotencyConflict`.
    """
    stored_key = _refund_key(payment, idempotency_key) if idempotency_key else None
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        earlier = Refund.objects.filter(idempotency_key=stored_key).first() if stored_key else None
        if earlier is None:
            refund = _reserve_refund(locked, amount, reason, user, stored_key, source)
        elif amount is not None and amount != earlier.amount:
            raise IdempotencyConflict("This idempotency key was used with another amount.")
    if earlier is None:
        return send_refund(locked, refund, source=source)
    if earlier.status == RefundStatus.PENDING.value and not earlier.provider_refund_id:
        # Never answered (a timeout, a crash): asked again under the same provider key,
        # which the provider answers with the refund it made, or makes it now, once.
        earlier = send_refund(locked, earlier, source=source)
    earlier.replayed = True
    return earlier


def _refund_key(payment: AbstractPayment, idempotency_key: str) -> str:
    """The stored (and provider) key of a caller's refund key: bounded, scoped to the payment."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"paygate-refund-{payment.pk}-{digest}"


def _reserve_refund(
    locked: AnyPayment,
    amount: int | None,
    reason: str,
    user: UserLike,
    key: str | None,
    source: str = Source.API,
) -> Refund:
    """Write a ``pending`` refund of a locked payment, which reserves its amount."""
    if locked.status not in {P.SUCCEEDED, P.PARTIALLY_REFUNDED}:
        raise InvalidTransition(f"A {locked.status} payment cannot be refunded.")
    left = locked.amount_captured - refund_reserved(locked)
    if amount is None:
        amount = left
        if amount <= 0:
            raise RefundExceedsCaptured("Nothing is left to refund.")
    amount = money.validate_minor(amount, locked.currency)
    if amount > left:
        raise RefundExceedsCaptured(
            f"Cannot refund {money.format_money(amount, locked.currency)}: "
            f"{money.format_money(left, locked.currency)} is left to refund."
        )
    refund_id = uuid.uuid4()
    refund = Refund.objects.create(
        id=refund_id,
        payment=locked,
        amount=amount,
        currency=locked.currency,
        reason=reason[:500],
        created_by=user_or_none(user),
        source=source,
        idempotency_key=key or f"paygate-refund-{refund_id}",
    )
    write(
        audit(
            locked,
            Origin(source, user=user),
            amount=amount,
            refund=refund,
            note=f"refund requested: {reason}",
        )
    )
    return refund


def send_refund(payment: AnyPayment, refund: Refund, *, source: str = Source.API) -> Refund:
    """Ask the provider for a reserved ``refund`` and apply the answer.

    While the outcome is unknown the refund stays ``pending``, and reserved,
    until an answer, a webhook or a sync settles it.
    """
    backend = get_provider(payment.provider)
    result = call_provider(
        payment,
        f"refund {refund.pk}",
        lambda: backend.refund_payment(
            payment, refund, idempotency_key=str(refund.idempotency_key)
        ),
        refused=partial(_release, payment, refund, source),
        # Our own earlier request with this key is still running (a sync racing the
        # call that made the refund): that one settles it, or the next sync or webhook.
        in_progress=lambda: None,
    )
    if result is not None:
        with transaction.atomic():
            locked = lock_payment(payment.pk)
            refund = Refund.objects.select_for_update().get(pk=refund.pk)
            apply_refund(locked, result, Origin(source), refund=refund)
    refund.refresh_from_db()
    return refund


def _release(payment: AnyPayment, refund: Refund, source: str, exc: PaygateError) -> None:
    """Fail a refund that was refused: nothing moved, so its reservation is released.

    Refused by the provider, or by the adapter before any call (an amount the
    provider cannot take).
    """
    from django_paygate.providers.base import ProviderRefund

    with transaction.atomic():
        locked = lock_payment(payment.pk)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        if refund.status == RefundStatus.PENDING.value:
            failed = ProviderRefund(
                provider_refund_id=refund.provider_refund_id or "",
                status=RefundStatus.FAILED,
                amount=refund.amount,
                currency=refund.currency,
                failure_reason=fit(Refund, "failure_reason", str(exc)),
            )
            apply_refund(locked, failed, Origin(source), refund=refund)


def refundable_amount(payment: AnyPayment) -> int:
    """What a new refund of ``payment`` may take now, in minor units (a read: no lock)."""
    return max(0, payment.amount_captured - refund_reserved(payment))
