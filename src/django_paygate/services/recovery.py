"""Recovery: pull the truth from the provider, and sweep the payments left between steps.

A crash or a timeout can leave a payment unlinked, in flight, or with a refund
nobody answered; :func:`sync_payment` repairs one with the same idempotency keys,
:func:`sync_stuck_payments` (``manage.py paygate_sync``) all of them.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Case, Exists, OuterRef, Q, When
from django.utils import timezone

from django_paygate import sql
from django_paygate.conf import paygate_settings
from django_paygate.exceptions import PaygateError, PaymentInProgress
from django_paygate.models import (
    AbstractPayment,
    PaymentEvent,
    Refund,
    ReviewReason,
    Source,
    fit_answer,
    get_payment_model,
)
from django_paygate.providers import get_provider
from django_paygate.services.ledger import (
    Origin,
    apply_payment,
    apply_refund,
    audit,
    flag_for_review,
    lock_payment,
    review,
    write,
)
from django_paygate.services.payments import open_at_provider
from django_paygate.services.refunds import send_refund
from django_paygate.states import IN_FLIGHT_PAYMENT_STATUSES, PaymentStatus, RefundStatus

if TYPE_CHECKING:
    from django_paygate.models import Payment as AnyPayment
    from django_paygate.services.ledger import UserLike

logger = logging.getLogger("django_paygate")

P = PaymentStatus
R = ReviewReason

#: The origin of a repair nobody in particular asked for (the sweep).
SYNC = Origin(Source.SYNC)


def sync_payment(
    payment: AbstractPayment, *, user: UserLike = None, source: str = Source.SYNC
) -> AnyPayment:
    """Pull the truth from the provider and apply it.

    ``user`` and ``source`` are who asked and through what (the audit trail).

    Repairs a payment left between steps: one that was never linked to the
    provider's object is created there again with the same idempotency key;
    refunds left ``pending`` without an answer are sent again with theirs.
    """
    payment = get_payment_model().objects.get(pk=payment.pk)
    backend = get_provider(payment.provider)
    if not payment.provider_payment_id:
        result = fit_answer(backend.fetch_payment(payment))
        if result.provider_payment_id is None:
            if payment.status == P.PENDING:
                try:
                    return open_at_provider(payment, backend)
                except PaymentInProgress:
                    return payment  # its creator links it
            return payment
    else:
        result = fit_answer(backend.fetch_payment(payment))
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        apply_payment(locked, result, Origin(source, user=user))
        for provider_refund in result.refunds:
            apply_refund(locked, provider_refund, Origin(source))
        unanswered = list(
            Refund.objects.filter(
                payment=locked, status=RefundStatus.PENDING.value, provider_refund_id=None
            )
        )
    for refund in unanswered:
        send_refund(locked, refund, source=source)
    return get_payment_model().objects.get(pk=payment.pk)


def find_stuck_payments(older_than_seconds: int | None = None) -> Any:
    """Payments in flight or authorized, or with unanswered refunds, untouched for a while."""
    seconds = (
        paygate_settings.SYNC_STUCK_AFTER if older_than_seconds is None else older_than_seconds
    )
    cutoff = timezone.now() - timedelta(seconds=seconds)
    in_flight = [s.value for s in (P.PENDING, P.REQUIRES_ACTION, P.PROCESSING)]
    # A refund's age is its own: one sent a moment ago on an old payment is not stuck.
    unanswered = Exists(
        Refund.objects.filter(
            payment=OuterRef("pk"), status=RefundStatus.PENDING.value, updated_at__lt=cutoff
        )
    )
    # An authorization is held on purpose, but a capture or a cancel whose answer was
    # lost leaves it authorized too; the provider may also have let it expire. Those
    # come after the payments in flight, so a --limit never starves them.
    held_status = P.AUTHORIZED.value
    held = Q(status=held_status)
    return (
        get_payment_model()
        .objects.filter(Q(status__in=[*in_flight, held_status], updated_at__lt=cutoff) | unanswered)
        .order_by(Case(When(held, then=1), default=0), "updated_at")
    )


@dataclass(frozen=True)
class SyncOutcome:
    """What :func:`sync_stuck_payments` did to one payment: its status before and after.

    ``error`` is the repair's failure, if any (secrets removed); ``flagged``
    whether the payment was flagged for review by this repair.
    """

    payment_id: Any
    before: str
    after: str
    error: str = ""
    flagged: bool = False

    @property
    def changed(self) -> bool:
        return self.before != self.after


#: A payment whose repair raised something unexpected this many times (since it last
#: changed) is flagged for review: retrying alone will not fix it.
SYNC_FAILURES_BEFORE_REVIEW = 3
#: How a failed repair starts its note on the audit trail (they are counted by it).
SYNC_FAILED_NOTE = "sync failed: "


def sync_stuck_payments(
    older_than_seconds: int | None = None, *, provider: str | None = None, limit: int | None = None
) -> Iterator[SyncOutcome]:
    """Sync every stuck payment (see :func:`find_stuck_payments`), one outcome at a time.

    A payment the provider still cannot settle ``SYNC_REVIEW_AFTER`` seconds
    after it was created is flagged ``needs_review``: a person decides. A
    repair that raises anything else than a django-paygate error (a bug in an
    adapter, an ``IntegrityError``) is logged with its traceback and recorded
    on the payment's audit trail, and the sweep goes on; after
    :data:`SYNC_FAILURES_BEFORE_REVIEW` such failures the payment is flagged.
    Inside a caller's transaction each payment is repaired in a savepoint of
    its own, so one failure never aborts the others' work.
    """
    stuck = find_stuck_payments(older_than_seconds)
    if provider:
        stuck = stuck.filter(provider=provider)
    review_before = timezone.now() - timedelta(seconds=int(paygate_settings.SYNC_REVIEW_AFTER))
    for payment in stuck.iterator() if limit is None else stuck[:limit]:
        before, error, flagged = payment.status, "", False
        try:
            # In autocommit (the command) every step of a repair is its own transaction.
            with transaction.atomic() if sql.database().in_atomic_block else nullcontext():
                after = sync_payment(payment).status
        except PaygateError as exc:
            after, error = payment.status, f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            # Not one of ours, so its text was never vetted: the provider's secrets go.
            trace = _without_secrets(traceback.format_exc(), payment.provider)
            logger.error("Payment %s: sync failed unexpectedly.\n%s", payment.pk, trace)
            after = payment.status
            error = _without_secrets(f"{type(exc).__name__}: {exc}", payment.provider)
            flagged = _record_sync_failure(payment, error)
        # A held authorization the provider could not be asked about is still just held.
        still_open = after in IN_FLIGHT_PAYMENT_STATUSES or (error and before != P.AUTHORIZED)
        old = payment.created_at < review_before
        if still_open and old and not (flagged or payment.needs_review):
            review(
                payment,
                R.UNRESOLVED,
                f"unresolved by sync since {payment.created_at:%Y-%m-%d %H:%M} UTC",
            )
            flagged = True
        yield SyncOutcome(payment.pk, before, after, error, flagged)


def _without_secrets(text: str, alias: str) -> str:
    """``text`` without the values of the provider's secret options (keys, webhook secrets)."""
    try:
        return get_provider(alias).scrub(text)
    except PaygateError:
        return text


def _record_sync_failure(payment: AbstractPayment, error: str) -> bool:
    """Audit a repair that raised ``error``; whether the payment was flagged for it now.

    The failures are counted on the audit trail since the payment last changed,
    so the count survives restarts and needs no column of its own.
    """
    try:
        with transaction.atomic():
            locked = lock_payment(payment.pk)
            write(audit(locked, SYNC, note=f"{SYNC_FAILED_NOTE}{error}"))
            failures = PaymentEvent.objects.filter(
                payment=locked,
                source=Source.SYNC,
                note__startswith=SYNC_FAILED_NOTE,
                created_at__gte=locked.updated_at,
            ).count()
            if failures < SYNC_FAILURES_BEFORE_REVIEW or locked.needs_review:
                return False
            flag_for_review(
                locked,
                R.SYNC_FAILING,
                f"sync failed {failures} times; last: {error}",
                SYNC,
            )
            return True
    except Exception:  # the database itself failed: the next sweep tries again
        logger.exception("Payment %s: the failed sync could not be recorded.", payment.pk)
        return False
