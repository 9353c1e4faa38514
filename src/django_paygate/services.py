"""The only doors to money.

Every function here follows the same five rules:

1. No database transaction is held open across a network call. The intent is
   written first (the payment row, or a ``pending`` refund that reserves its
   amount) and committed; the provider is called with an idempotency key
   derived from that row; the answer is applied in a second short transaction.
   A retry reuses the key, so nobody is charged or refunded twice.
2. Every status change goes through :func:`_change`, under
   ``SELECT … FOR UPDATE`` on the payment row, checked against
   :data:`~django_paygate.states.PAYMENT_TRANSITIONS`, with an audit row and the
   ``payment_status_changed`` signal inside the transaction.
3. Money invariants are checked under that lock: captured <= amount, and
   refunded + pending refunds <= captured. The database enforces the first two
   again with check constraints.
4. Side effects (post-commit signals, emails) are owed through an outbox row in
   the same transaction and delivered after commit, exactly once.
5. A payment left between steps by a crash or a timeout is repaired by
   :func:`sync_payment` (and ``manage.py paygate_sync``).

Rows are written through :mod:`django_paygate.sql`: a status change writes the
payment, its audit row and its outbox row in one round trip on PostgreSQL.
Those writes call no ``save()`` and send no ``pre_save``/``post_save``; the
payment's signals here are the contract.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import IntegrityError, transaction
from django.db.models import Case, Exists, OuterRef, Q, QuerySet, Subquery, Sum, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from django_paygate import money, sql
from django_paygate.exceptions import (
    AlreadyPaid,
    IdempotencyConflict,
    InvalidAmount,
    InvalidTransition,
    PayableChanged,
    PaygateError,
    PaymentDeclined,
    PaymentInProgress,
    ProviderError,
    ProviderIdempotencyError,
    ProviderRequestInProgress,
    ProviderUnavailable,
    RefundExceedsCaptured,
)
from django_paygate.models import (
    FAILURE_MESSAGE_LENGTH,
    AbstractPayment,
    Dispute,
    Notification,
    PaymentEvent,
    Refund,
    ReviewReason,
    Source,
    WebhookEvent,
    fit,
    fit_answer,
    get_payment_model,
)
from django_paygate.providers import get_provider
from django_paygate.signals import payment_status_changed
from django_paygate.states import (
    DISPUTE_WITHDRAWING_STATUSES,
    IN_FLIGHT_PAYMENT_STATUSES,
    PAID_STATUSES,
    DisputeStatus,
    PaymentStatus,
    RefundStatus,
    can_transition,
    can_transition_refund,
    is_stale,
    status_after_refund,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    # The payment model in use; a swapped model has the same fields.
    from django_paygate.models import Payment as AnyPayment
    from django_paygate.providers.base import (
        BaseProvider,
        ProviderDispute,
        ProviderEvent,
        ProviderPayment,
        ProviderRefund,
    )

    UserLike = AbstractBaseUser | AnonymousUser | None

logger = logging.getLogger("django_paygate")

P = PaymentStatus
R = ReviewReason

#: Payment statuses that owe the customer a post-commit notification.
_NOTIFY_ON = {
    P.SUCCEEDED: Notification.Kind.PAYMENT_SUCCEEDED,
    P.FAILED: Notification.Kind.PAYMENT_FAILED,
    P.CANCELED: Notification.Kind.PAYMENT_CANCELED,
    P.AUTHORIZED: Notification.Kind.PAYMENT_AUTHORIZED,
}

MAX_METADATA_KEYS = 50


# ---------------------------------------------------------------------------
# The one state-change function and its helpers (always under the row lock)
# ---------------------------------------------------------------------------


def lock_payment(pk: Any) -> AnyPayment:
    """The payment with primary key ``pk``, locked until the transaction ends."""
    return sql.fetch_for_update(get_payment_model(), pk)


def _user_or_none(user: UserLike) -> Any:
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def _write(*writes: sql.Write) -> None:
    """Run ``writes`` (one round trip); an outbox row among them is delivered after commit."""
    from django_paygate.notifications import deliver_after_commit

    for write, pk in zip(writes, sql.execute(*writes), strict=True):
        if write.model is Notification:
            deliver_after_commit(pk)


def _payment_update(payment: AnyPayment, *fields: str) -> sql.Write:
    """The update of a locked ``payment``'s ``fields`` (and ``updated_at``)."""
    return sql.update(payment, [*fields, "updated_at"])


def _audit(payment: AnyPayment, source: str, **values: Any) -> sql.Write:
    """An audit row; without ``to_status`` it records an event that moved no status."""
    values.setdefault("from_status", payment.status)
    values.setdefault("to_status", payment.status)
    values["note"] = values.get("note", "")[:500]
    return sql.insert(PaymentEvent, payment=payment, source=source, **values)


def _notification(
    kind: str,
    payment: AnyPayment,
    *,
    refund: Refund | None = None,
    dispute: Dispute | None = None,
) -> sql.Write:
    """An outbox row (rule 4): :func:`_write` has it delivered after commit."""
    return sql.insert(Notification, kind=kind, payment=payment, refund=refund, dispute=dispute)


def _change(
    payment: AnyPayment,
    to_status: PaymentStatus,
    *,
    source: str,
    fields: tuple[str, ...] = (),
    amount: int | None = None,
    note: str = "",
    webhook_event: WebhookEvent | None = None,
    refund: Refund | None = None,
    user: UserLike = None,
    notify: bool = True,
    also: tuple[sql.Write, ...] = (),
    ledger: bool = False,
) -> None:
    """Move a locked ``payment`` to ``to_status`` and save it with ``fields``.

    Raises :class:`InvalidTransition` when the table does not allow it
    (``ledger``: the move follows a change of the refunded amount, see
    :data:`~django_paygate.states.LEDGER_TRANSITIONS`). Writes the payment,
    its audit row, the outbox row it owes and ``also`` in one round trip,
    then sends ``payment_status_changed`` inside the transaction.
    """
    old = PaymentStatus(payment.status)
    allowed = can_transition(old, to_status, ledger=ledger)
    if to_status != old and not allowed:
        raise InvalidTransition(f"A {old} payment cannot become {to_status}.")
    if to_status == old and not allowed and not fields:
        _write(*also)
        return
    now = timezone.now()
    payment.status = to_status.value
    changed = {"status", *fields}
    if to_status == P.SUCCEEDED and payment.succeeded_at is None:
        payment.succeeded_at = now
        changed.add("succeeded_at")
    if to_status == P.CANCELED:
        payment.canceled_at = now
        changed.add("canceled_at")
    if (
        to_status in {P.SUCCEEDED, P.AUTHORIZED, P.PROCESSING, P.REQUIRES_ACTION}
        and payment.failure_code
    ):
        payment.failure_code = payment.failure_message = ""
        changed |= {"failure_code", "failure_message"}
    writes = [
        _payment_update(payment, *changed),
        _audit(
            payment,
            source,
            from_status=old.value,
            amount=amount,
            note=note,
            webhook_event=webhook_event,
            refund=refund,
            user=_user_or_none(user),
        ),
    ]
    if to_status != old and notify and to_status in _NOTIFY_ON:
        writes.append(_notification(_NOTIFY_ON[to_status], payment))
    _write(*writes, *also)
    if to_status != old:
        payment_status_changed.send(
            sender=type(payment),
            payment=payment,
            old_status=old.value,
            new_status=to_status.value,
            source=source,
        )


def _flag_for_review(
    payment: AnyPayment,
    code: ReviewReason,
    reason: str,
    *,
    source: str,
    webhook_event: WebhookEvent | None = None,
    fields: tuple[str, ...] = (),
) -> None:
    """Set ``needs_review`` on a locked payment (saving ``fields`` too); never cleared silently."""
    logger.warning("Payment %s needs review: %s", payment.pk, reason)
    first = not payment.needs_review
    payment.needs_review = True
    payment.review_code = code.value
    payment.review_reason = (
        f"{payment.review_reason}\n{reason}" if payment.review_reason else reason
    )[-2000:]
    writes = [
        _payment_update(payment, "needs_review", "review_code", "review_reason", *fields),
        _audit(payment, source, note=f"needs review: {reason}", webhook_event=webhook_event),
    ]
    if first:
        writes.append(_notification(Notification.Kind.PAYMENT_NEEDS_REVIEW, payment))
    _write(*writes)


def _apply_payment(
    payment: AnyPayment,
    result: ProviderPayment,
    *,
    source: str,
    webhook_event: WebhookEvent | None = None,
    user: UserLike = None,
) -> bool:
    """Apply what the provider reports about a locked ``payment``.

    Returns whether anything changed. A stale or illegal status is recorded
    by the caller (webhook inbox) and changes nothing; an amount or currency
    that disagrees with the row sets ``needs_review`` and changes nothing.
    """
    current = PaymentStatus(payment.status)
    status = result.status
    moves = status is not None and status != current and can_transition(current, status)
    # News about an earlier or impossible state (a late ``authorized`` of another
    # attempt) must not overwrite what the current state rests on.
    current_news = (
        moves
        or status is None
        or status == current
        or (status == P.SUCCEEDED and current in PAID_STATUSES)
    )
    other = _other_object(payment, result.provider_data)
    if other and status == P.CANCELED and current == P.AUTHORIZED:
        # An authorization released that is not the one this payment rests on
        # (Razorpay: another attempt on the order): news about that one only.
        moves = current_news = False
    if other and current in PAID_STATUSES:
        current_news = False  # never repoint a paid payment at another object
    fields: list[str] = []
    if result.provider_payment_id and not payment.provider_payment_id:
        payment.provider_payment_id = result.provider_payment_id
        payment.creating_until = None  # linked: the creation claim has done its work
        fields += ["provider_payment_id", "creating_until"]
    new_refs = {k: v for k, v in result.provider_data.items() if payment.provider_data.get(k) != v}
    if new_refs and current_news:
        payment.provider_data = {**payment.provider_data, **new_refs}
        fields.append("provider_data")

    problem = _mismatch(payment, result)
    if not problem and (result.amount_refunded or 0) > payment.amount_refunded:
        problem = _unrecorded_refunds(payment, result.amount_refunded or 0)
    if not problem and other and status == P.SUCCEEDED and current in PAID_STATUSES:
        problem = R.SECOND_CAPTURE, f"provider reports a second capture: {other}"
    if not problem and status == P.SUCCEEDED and not current_news:
        # Money was taken for a payment we consider over (an abandoned order paid
        # later): never dropped silently, never applied blindly.
        problem = (
            R.PAID_AFTER_END,
            f"provider reports the payment captured, but it is {current} here",
        )
    if not problem and status == P.SUCCEEDED and current_news:
        # An update that does not say how much was taken never raises a partial capture;
        # with nothing captured yet, it means the whole amount.
        captured = result.amount_captured or payment.amount_captured or payment.amount
        if captured > payment.amount:
            problem = R.OVER_CAPTURED, f"provider reports {captured} captured of {payment.amount}"
        elif captured > payment.amount_captured:
            payment.amount_captured = captured
            fields.append("amount_captured")
    if problem:
        _flag_for_review(
            payment, *problem, source=source, webhook_event=webhook_event, fields=tuple(fields)
        )
        return True
    if status == P.FAILED and moves and result.failure_code != payment.failure_code:
        payment.failure_code = result.failure_code  # cut to its column by fit_answer
        payment.failure_message = result.failure_message
        fields += ["failure_code", "failure_message"]

    if not moves:
        if fields:
            _write(_payment_update(payment, *fields))
        return bool(fields)
    assert status is not None
    moved = payment.amount_captured if status == P.SUCCEEDED else None
    _change(
        payment,
        status,
        source=source,
        fields=tuple(fields),
        amount=moved,
        webhook_event=webhook_event,
        user=user,
    )
    if status == P.SUCCEEDED and payment.payable_type_id:
        _review_changed_payable(payment, source=source, webhook_event=webhook_event)
    return True


def _review_changed_payable(
    payment: AnyPayment, *, source: str, webhook_event: WebhookEvent | None
) -> None:
    """Flag a locked payment that was paid although its payable's price changed (or vanished).

    The money was taken and is recorded as such; ``payment_covers`` is then
    false, so fulfilment waits for a person.
    """
    from django_paygate import payables

    reason = payables.payable_changed(payment)
    if reason:
        _flag_for_review(
            payment,
            R.PAYABLE_CHANGED,
            f"paid after its payable changed: {reason}",
            source=source,
            webhook_event=webhook_event,
        )


def _other_object(payment: AnyPayment, reported: Mapping[str, Any]) -> str:
    """The attempt ``reported`` names when it is not the one ``payment`` rests on, or "".

    Only for providers whose payment may have several attempts (``attempt_key``:
    Razorpay's payments on one order).
    """
    key = get_provider(payment.provider).attempt_key
    mine, theirs = payment.provider_data.get(key), reported.get(key)
    return f"{key} {theirs}, not {mine}" if key and mine and theirs and mine != theirs else ""


#: Why a payment needs review: the code, and the details.
_Problem = tuple[ReviewReason, str] | None


def _mismatch(payment: AnyPayment, result: ProviderPayment) -> _Problem:
    if result.currency and result.currency.upper() != payment.currency:
        detail = f"provider currency {result.currency.upper()} differs from {payment.currency}"
        return R.AMOUNT_MISMATCH, detail
    if result.amount is not None and result.amount != payment.amount:
        return R.AMOUNT_MISMATCH, f"provider amount {result.amount} differs from {payment.amount}"
    return None


def _unrecorded_refunds(payment: AnyPayment, refunded: int) -> _Problem:
    """Why a provider's refunded total is more than this payment's refunds explain, or "".

    Some events give only the total (Stripe's ``charge.refunded`` on API versions
    2022-11-15 to 2024-10-27); refunds made at the provider that no event names
    are recorded by a sync.
    """
    if refunded <= _refund_reserved(payment, disputes=False):
        return None
    return R.UNRECORDED_REFUNDS, (
        f"provider reports {refunded} refunded, {payment.amount_refunded} recorded here; "
        "sync the payment to record its refunds"
    )


def _refund_reserved(payment: AnyPayment, *, disputes: bool = True) -> int:
    """What no new refund of a locked payment may take, in one query.

    What was refunded, what pending refunds hold, and what open or lost
    disputes withdrew: a chargeback already gave that money back to the
    customer, so refunding it too would pay them twice. ``disputes=False``
    leaves the disputes out: what the refunds alone account for.
    """

    def total(rows: QuerySet[Any]) -> Coalesce:
        summed = rows.filter(payment=OuterRef("pk")).values("payment").annotate(s=Sum("amount"))
        return Coalesce(Subquery(summed.values("s")), 0)

    held_by = [total(Refund.objects.filter(status=RefundStatus.PENDING.value))]
    if disputes:
        held_by.append(total(Dispute.objects.filter(status__in=DISPUTE_WITHDRAWING_STATUSES)))
    held = type(payment).objects.filter(pk=payment.pk).values_list(*held_by).get()
    return payment.amount_refunded + sum(held)


def _apply_refund(
    payment: AnyPayment,
    result: ProviderRefund,
    *,
    source: str,
    refund: Refund | None = None,
    webhook_event: WebhookEvent | None = None,
) -> Refund | None:
    """Apply a provider refund to a locked ``payment``; create it if unknown.

    A refund made in the provider's dashboard appears here first: it becomes
    a :class:`Refund` row once, whatever order its events arrive in.
    """
    if refund is None:
        try:
            refund = _find_refund(payment, result)
        except _AmbiguousRefund as exc:
            logger.info("Payment %s: %s", payment.pk, exc)
            _write(_audit(payment, source, note=str(exc), webhook_event=webhook_event))
            return None
    if result.currency and result.currency.upper() != payment.currency:
        _flag_for_review(
            payment,
            R.REFUND_CURRENCY,
            f"refund {result.provider_refund_id} in {result.currency}",
            source=source,
            webhook_event=webhook_event,
        )
        return refund
    other = "" if refund is not None else _other_object(payment, result.provider_data)
    if other:
        _flag_for_review(
            payment,
            R.REFUND_OTHER_ATTEMPT,
            f"refund {result.provider_refund_id} of {result.amount} is for {other}",
            source=source,
            webhook_event=webhook_event,
        )
        return None
    if refund is None:
        final = result.status in {RefundStatus.FAILED, RefundStatus.CANCELED}
        # A final refund is recorded too (it holds nothing), so that its earlier
        # events, arriving after it, find it over instead of making a new one.
        if not final and _refund_reserved(payment) + result.amount > payment.amount_captured:
            _flag_for_review(
                payment,
                R.REFUND_EXCEEDS,
                f"refund {result.provider_refund_id} of {result.amount} "
                "exceeds what is left to refund",
                source=source,
                webhook_event=webhook_event,
            )
            return None
        refund = Refund.objects.create(
            payment=payment,
            provider_refund_id=result.provider_refund_id,
            amount=result.amount,
            currency=payment.currency,
            status=RefundStatus.PENDING.value,
            source=source,
            reason="created at the provider",
        )
    fields = []
    if result.provider_refund_id and refund.provider_refund_id != result.provider_refund_id:
        refund.provider_refund_id = result.provider_refund_id
        fields.append("provider_refund_id")
    old, new = RefundStatus(refund.status), result.status
    if new == old or not can_transition_refund(old, new):
        if fields:
            refund.save(update_fields=[*fields, "updated_at"])
        if old in {RefundStatus.FAILED, RefundStatus.CANCELED} and new == RefundStatus.SUCCEEDED:
            # Either a late event of a refund that succeeded, then failed, or money
            # that left while we recorded a refusal: only a person can tell.
            _flag_for_review(
                payment,
                R.REFUND_REVIVED,
                f"refund {refund.pk} reported succeeded after it was {old.value}",
                source=source,
                webhook_event=webhook_event,
            )
        return refund
    refund.status = new.value
    fields += ["status", "updated_at"]
    if new == RefundStatus.FAILED:
        refund.failure_reason = result.failure_reason
        fields.append("failure_reason")
    if new == RefundStatus.SUCCEEDED:
        refund.succeeded_at = timezone.now()
        fields.append("succeeded_at")
    refund.save(update_fields=fields)

    if RefundStatus.SUCCEEDED in (old, new):
        # The refunded amount changes, and the status with it (the ledger's moves).
        # Stripe: a refund may also fail after it succeeded. Its money came back, so the
        # payment is what is really refunded now (refundable again); the customer still
        # waits for their money, so a person looks at it.
        back = old == RefundStatus.SUCCEEDED
        payment.amount_refunded += -refund.amount if back else refund.amount
        kind = Notification.Kind.REFUND_FAILED if back else Notification.Kind.REFUND_SUCCEEDED
        _change(
            payment,
            status_after_refund(payment.amount_captured, payment.amount_refunded),
            source=source,
            fields=("amount_refunded",),
            amount=refund.amount,
            webhook_event=webhook_event,
            refund=refund,
            note="refund failed after it had succeeded" if back else "refund succeeded",
            notify=False,  # not news of the payment: the refund's own notification is owed
            also=(_notification(kind, payment, refund=refund),),
            ledger=True,
        )
        if back:
            _flag_for_review(
                payment,
                R.REFUND_REVERSED,
                f"refund {refund.pk} failed after it had succeeded; its money came back",
                source=source,
                webhook_event=webhook_event,
            )
    else:
        writes = [
            _audit(
                payment,
                source,
                amount=refund.amount,
                refund=refund,
                webhook_event=webhook_event,
                note=f"refund {new.value}: {refund.failure_reason}",
            )
        ]
        if new == RefundStatus.FAILED:
            writes.append(_notification(Notification.Kind.REFUND_FAILED, payment, refund=refund))
        _write(*writes)
    return refund


class _AmbiguousRefund(Exception):
    """An event of a refund without our id fits more than one pending refund."""


def _find_refund(payment: AnyPayment, result: ProviderRefund) -> Refund | None:
    """The row of the refund ``result`` reports, or ``None`` for one made elsewhere.

    Found by the provider's refund id, or by ours when the provider echoes it.
    An event of a refund we asked for may come before our row has the provider's
    id (its webhook overtook the answer, or the answer was lost), from a provider
    that does not echo our id: it then belongs to the pending refund of the same
    amount that has no provider id yet. When two fit, it raises
    :class:`_AmbiguousRefund` rather than guess (see docs/decisions.md).
    """
    exact = Q(provider_refund_id=result.provider_refund_id)
    if result.our_refund_id and _is_uuid(result.our_refund_id):
        exact |= Q(pk=result.our_refund_id)
    rows = Refund.objects.select_for_update().filter(payment=payment)
    early = (
        not result.our_refund_id
        and result.provider_refund_id
        and (result.currency or payment.currency).upper() == payment.currency
        and not _other_object(payment, result.provider_data)
    )
    if not early:
        return rows.filter(exact).first()
    fits = Q(status=RefundStatus.PENDING.value, provider_refund_id=None, amount=result.amount)
    ranked = rows.filter(exact | fits).order_by(Case(When(exact, then=0), default=1), "created_at")
    found = list(ranked[:2])
    if len(found) == 2 and found[0].provider_refund_id != result.provider_refund_id:
        raise _AmbiguousRefund(
            f"refund {result.provider_refund_id} of {result.amount} fits several pending "
            "refunds; their answers or a sync settle them"
        )
    return found[0] if found else None


def _apply_dispute(
    payment: AnyPayment,
    result: ProviderDispute,
    *,
    source: str,
    webhook_event: WebhookEvent | None = None,
) -> Dispute:
    dispute, created = Dispute.objects.select_for_update().get_or_create(
        payment=payment,
        provider_dispute_id=result.provider_dispute_id,
        defaults={
            "amount": result.amount,
            "currency": (result.currency or payment.currency).upper(),
            "reason": result.reason,
            "status": result.status.value,
        },
    )
    closed = {DisputeStatus.WON, DisputeStatus.LOST, DisputeStatus.CLOSED}
    was_closed = not created and DisputeStatus(dispute.status) in closed
    # A late inquiry event never undoes a chargeback: the money stays withdrawn.
    stale = result.status == DisputeStatus.INQUIRY
    if not created and dispute.status != result.status.value and not (was_closed or stale):
        dispute.status = result.status.value
        dispute.save(update_fields=["status", "updated_at"])
    writes = [
        _audit(
            payment,
            source,
            amount=dispute.amount,
            webhook_event=webhook_event,
            note=f"dispute {dispute.provider_dispute_id} {dispute.status}",
        )
    ]
    if created:
        writes.append(_notification(Notification.Kind.DISPUTE_OPENED, payment, dispute=dispute))
    if DisputeStatus(dispute.status) in closed and not was_closed:
        writes.append(_notification(Notification.Kind.DISPUTE_CLOSED, payment, dispute=dispute))
    _write(*writes)
    return dispute


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# Public services
# ---------------------------------------------------------------------------


def _fingerprint(**params: Any) -> str:
    blob = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _clean_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError("metadata must be a dict.")
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidAmount(f"metadata may hold at most {MAX_METADATA_KEYS} keys.")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise TypeError("metadata must be JSON-serializable.") from exc
    return dict(metadata)


def create_payment(
    *,
    amount: int | None = None,
    currency: str | None = None,
    provider: str | None = None,
    user: UserLike = None,
    email: str = "",
    description: str = "",
    metadata: Mapping[str, Any] | None = None,
    capture: bool = True,
    idempotency_key: str | None = None,
    payable: Any = None,
    customer_amount: int | None = None,
) -> AnyPayment:
    """Create a payment and its counterpart at the provider.

    With ``payable=`` (a host object, see :mod:`django_paygate.payables`) the
    amount, currency, description and receipt address come from the payable,
    and the payment links to it; passing ``amount``, ``currency``, ``email`` or
    ``description`` too is a ``TypeError``. ``customer_amount`` is an amount the
    customer chose, for a payable that accepts one within its bounds. One open
    payment per payable: while one is open for the same amount, currency,
    provider and user, it is returned (``replayed`` set) instead of a new one;
    a payable already paid raises :class:`AlreadyPaid`.

    Without a payable, ``amount`` is an ``int`` in the currency's minor unit.
    The returned payment carries ``client_data``: what the front end needs to
    let the customer pay. With ``idempotency_key``, a second call with the
    same key and parameters returns the same payment (and makes no provider
    call); the same key with other parameters raises :class:`IdempotencyConflict`.

    Raises :class:`InvalidAmount` (and ``TypeError`` for a float) before
    anything is written, :class:`UnknownProvider` for an alias that is not
    configured, and :class:`ProviderUnavailable` when the provider could not
    be reached: the payment then exists, ``pending``, and ``sync_payment``
    finishes the job with the same idempotency key.
    """
    if payable is not None:
        if amount is not None or currency is not None or email or description:
            raise TypeError(
                "create_payment(payable=...) takes the amount, currency, email and "
                "description from the payable: do not pass them too."
            )
        return _create_for_payable(
            payable,
            customer_amount=customer_amount,
            provider=provider,
            user=user,
            metadata=metadata,
            capture=capture,
            idempotency_key=idempotency_key,
        )
    if customer_amount is not None:
        raise TypeError("customer_amount is for a payable that accepts one.")
    if amount is None or currency is None:
        raise TypeError("create_payment() needs payable=, or amount= and currency=.")
    currency = money.normalize_currency(currency)
    amount = money.validate_minor(amount, currency)
    backend = get_provider(provider)
    backend.validate_amount(amount, currency)
    metadata = _clean_metadata(metadata)
    owner = _user_or_none(user)
    _check_idempotency_key(idempotency_key)
    fingerprint = (
        _fingerprint(
            amount=amount,
            currency=currency,
            provider=backend.alias,
            user=owner.pk if owner else None,
            email=email,
            description=description,
            metadata=metadata,
            capture=capture,
        )
        if idempotency_key
        else ""
    )

    Payment = get_payment_model()
    if idempotency_key:
        existing = Payment.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return _replay(existing, fingerprint, backend)
    try:
        with transaction.atomic():
            payment = _insert_payment(
                backend,
                amount=amount,
                currency=currency,
                owner=owner,
                email=email,
                description=description,
                metadata=metadata,
                capture=capture,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
            )
    except IntegrityError:
        if not idempotency_key:
            raise
        return _replay(Payment.objects.get(idempotency_key=idempotency_key), fingerprint, backend)
    return _open_at_provider(payment, backend, claimed=True)


def _check_idempotency_key(idempotency_key: str | None) -> None:
    if idempotency_key is not None and not (
        isinstance(idempotency_key, str) and 0 < len(idempotency_key) <= 255
    ):
        raise InvalidAmount("idempotency_key must be a string of 1 to 255 characters.")


def _insert_payment(
    backend: BaseProvider,
    *,
    amount: int,
    currency: str,
    owner: Any,
    email: str,
    description: str,
    metadata: dict[str, Any],
    capture: bool,
    idempotency_key: str | None,
    fingerprint: str,
    **link: Any,
) -> AnyPayment:
    """Write a new payment row and its "created" audit row (inside the caller's transaction).

    The row carries the creation claim: its creator goes on to open it at the provider.
    """
    payment = get_payment_model().objects.create(
        provider=backend.alias,
        amount=amount,
        currency=currency,
        user=owner,
        email=email or (getattr(owner, "email", "") or ""),
        description=description[:1000],
        metadata=metadata,
        capture_method="automatic" if capture else "manual",
        idempotency_key=idempotency_key or None,
        request_fingerprint=fingerprint,
        creating_until=_creation_claim(),
        **link,
    )
    _write(_audit(payment, Source.API, from_status="", user=owner, note="created"))
    return payment


#: Statuses of a payment that still stands for its payable: it may be paid, or is being paid.
_OPEN_FOR_PAYABLE = frozenset({P.PENDING, P.REQUIRES_ACTION, P.FAILED, P.PROCESSING, P.AUTHORIZED})


def payments_for(payable: Any) -> QuerySet[Any]:
    """Every payment linked to the host object ``payable``."""
    from django.contrib.contenttypes.models import ContentType

    return get_payment_model().objects.filter(
        payable_type=ContentType.objects.get_for_model(payable, for_concrete_model=False),
        payable_id=str(payable.pk),
    )


def _create_for_payable(
    payable: Any,
    *,
    customer_amount: int | None,
    provider: str | None,
    user: UserLike,
    metadata: Mapping[str, Any] | None,
    capture: bool,
    idempotency_key: str | None,
) -> AnyPayment:
    """Create (or return the open) payment for ``payable``, priced by the payable.

    The payable's row is locked while its payments are looked at and the new
    one is written, so concurrent creates for one payable give one payment.
    """
    from django.contrib.contenttypes.models import ContentType

    from django_paygate import payables

    payables.payable_name(payable)  # registered, or ConfigurationError
    backend = get_provider(provider)
    owner = _user_or_none(user)
    extra = _clean_metadata(metadata)
    _check_idempotency_key(idempotency_key)
    model = type(payable)
    content_type = ContentType.objects.get_for_model(payable, for_concrete_model=False)
    fingerprint = _fingerprint(
        payable=f"{content_type.pk}:{payable.pk}",
        customer_amount=customer_amount,
        provider=backend.alias,
        user=owner.pk if owner else None,
        metadata=extra,
        capture=capture,
    )
    Payment = get_payment_model()
    if idempotency_key:
        existing = Payment.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return _replay(existing, fingerprint, backend)
    with transaction.atomic():
        # The host's row, locked: its price is read under the lock, and a second
        # create for it waits here until the first one's payment is committed.
        current = model._default_manager.select_for_update().get(pk=payable.pk)
        # The same request again, which waited for the first one's lock: replayed as it is.
        keyed = (
            Payment.objects.filter(idempotency_key=idempotency_key).first()
            if idempotency_key
            else None
        )
        if keyed is None:
            open_payment, payment = _open_or_insert(
                current,
                backend,
                customer_amount=customer_amount,
                owner=owner,
                extra=extra,
                capture=capture,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                content_type=content_type,
            )
    if keyed is not None:
        return _replay(keyed, fingerprint, backend)
    if open_payment is not None:
        if not open_payment.provider_payment_id and open_payment.status == P.PENDING:
            # Its creator is still asking the provider (a double click), or lost the answer.
            open_payment = _join_creation(open_payment, backend)
        else:
            open_payment.client_data = payment_client_data(open_payment, backend)
        open_payment.replayed = True
        return open_payment
    assert payment is not None
    return _open_at_provider(payment, backend, claimed=True)


def _open_or_insert(
    current: Any,
    backend: BaseProvider,
    *,
    customer_amount: int | None,
    owner: Any,
    extra: dict[str, Any],
    capture: bool,
    idempotency_key: str | None,
    fingerprint: str,
    content_type: Any,
) -> tuple[AnyPayment | None, AnyPayment | None]:
    """Under the payable's lock: ``(its open payment, None)``, or ``(None, a new payment)``."""
    from django_paygate import payables

    terms = payables.terms(current, customer_amount=customer_amount)
    backend.validate_amount(terms.amount, terms.currency)
    linked = payments_for(current)
    paid = [p for p in linked.filter(status__in=PAID_STATUSES) if payables.payment_covers(p)]
    if paid:
        raise AlreadyPaid("This is already paid.")
    open_payment = (
        linked.filter(
            status__in=_OPEN_FOR_PAYABLE,
            amount=terms.amount,
            currency=terms.currency,
            provider=backend.alias,
            capture_method="automatic" if capture else "manual",
            user=owner,
        )
        .order_by("-created_at")
        .first()
    )
    if open_payment is None:
        meta = {**terms.metadata, **extra}
        if customer_amount is not None:
            meta[payables.CUSTOMER_AMOUNT_KEY] = True
        payment = _insert_payment(
            backend,
            amount=terms.amount,
            currency=terms.currency,
            owner=owner,
            email=terms.email,
            description=terms.description,
            metadata=_clean_metadata(meta),
            capture=capture,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            payable_type=content_type,
            payable_id=str(current.pk),
        )
        return None, payment
    return open_payment, None


def check_payable(payment: AbstractPayment) -> None:
    """Refuse to go on with a payment whose payable's price changed since it was created.

    Raises :class:`PayableChanged` after canceling the payment (at the
    provider too), so it is never charged at the old price. A payment without
    a payable passes.
    """
    from django_paygate import payables

    if not payment.payable_type_id:
        return
    reason = payables.payable_changed(payment)
    if not reason:
        return
    logger.info("Payment %s: %s; canceling it.", payment.pk, reason)
    try:
        cancel_payment(payment)
    except PaygateError as exc:
        _review(payment, R.CANCEL_FAILED, f"{reason}, and canceling it failed: {exc}")  # type: ignore[arg-type]
    raise PayableChanged(
        "The amount due changed since this payment was started: it was canceled. "
        "Start the payment again."
    )


def _replay(payment: AnyPayment, fingerprint: str, backend: BaseProvider) -> AnyPayment:
    if payment.request_fingerprint != fingerprint:
        raise IdempotencyConflict("This idempotency key was used with different parameters.")
    payment.client_data = payment_client_data(payment, backend)
    payment.replayed = True
    return payment


def payment_client_data(
    payment: AbstractPayment, backend: BaseProvider | None = None
) -> dict[str, Any] | None:
    """What the front end needs to go on paying ``payment``, or ``None``.

    ``None`` when there is nothing left to pay (or nothing yet to pay with:
    the provider's object is not linked), or the provider cannot be reached.
    May call the provider (a Stripe ``client_secret`` is never stored).
    """
    if not payment.provider_payment_id or not _payable(payment):
        return None
    backend = backend or get_provider(payment.provider)
    try:
        return dict(backend.client_data(payment))
    except ProviderUnavailable:
        return None


def _payable(payment: AbstractPayment) -> bool:
    """Whether the customer may still pay ``payment`` (a failed one may be tried again)."""
    return payment.status in IN_FLIGHT_PAYMENT_STATUSES | {P.FAILED}


def _create_key(payment: AnyPayment) -> str:
    return f"paygate-{payment.pk}-create"


#: How long one caller may take to create a payment's object at the provider before
#: another caller may try (a caller that crashed mid-call leaves its claim behind).
CREATE_CLAIM_SECONDS = 120


def _creation_claim() -> datetime:
    return timezone.now() + timedelta(seconds=CREATE_CLAIM_SECONDS)


def _claim_creation(payment: AbstractPayment) -> bool:
    """Claim the one right to create ``payment``'s object at the provider, or ``False``.

    One conditional ``UPDATE``: of callers racing for an unlinked payment (a sync, the
    customer confirming, the checkout opened again), exactly one wins. Razorpay orders
    have no idempotency key, so two creators could otherwise make two orders.
    """
    now = timezone.now()
    return bool(
        get_payment_model()
        .objects.filter(pk=payment.pk, provider_payment_id__isnull=True)
        .filter(Q(creating_until__isnull=True) | Q(creating_until__lt=now))
        .update(creating_until=_creation_claim())
    )


def _release_creation(payment: AbstractPayment) -> None:
    get_payment_model().objects.filter(pk=payment.pk).update(creating_until=None)


#: How long a second request for a payable waits for the first to open its payment.
JOIN_CREATION_SECONDS = 10.0


def _join_creation(payment: AnyPayment, backend: BaseProvider) -> AnyPayment:
    """Open ``payment`` at the provider, or wait (bounded) for the caller already doing it.

    Raises :class:`PaymentInProgress` if that caller is still at it after
    ``JOIN_CREATION_SECONDS``.
    """
    deadline = time.monotonic() + JOIN_CREATION_SECONDS
    while True:
        try:
            return _open_at_provider(payment, backend)
        except PaymentInProgress:
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.05)
        current = get_payment_model().objects.get(pk=payment.pk)
        if current.provider_payment_id or current.status != P.PENDING:
            current.client_data = payment_client_data(current, backend)
            return current


def _open_at_provider(
    payment: AnyPayment, backend: BaseProvider, *, claimed: bool = False
) -> AnyPayment:
    """Create the provider's object for a committed payment row, then link it.

    ``claimed``: the caller holds the creation claim (a new row is written with it).
    Raises :class:`PaymentInProgress` when another caller holds it.
    """
    if not claimed and not _claim_creation(payment):
        raise PaymentInProgress(
            "This payment is being opened at the provider by another request; retry in a moment.",
            provider=backend.alias,
        )
    try:
        result = _call_provider(
            payment,
            "create",
            lambda: backend.create_payment(payment, idempotency_key=_create_key(payment)),
        )
    except ProviderError as exc:
        _release_creation(payment)
        if not isinstance(exc, ProviderUnavailable | ProviderIdempotencyError):
            _fail(payment, exc)  # refused: nothing to pay with
        raise
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        _apply_payment(locked, result, source=Source.API)
    # Canceled while the provider was creating its object: nothing to pay with.
    locked.client_data = dict(result.client_data) if _payable(locked) else None
    return locked


def _review(payment: AnyPayment, code: ReviewReason, reason: str) -> None:
    with transaction.atomic():
        _flag_for_review(lock_payment(payment.pk), code, reason, source=Source.API)


_T = TypeVar("_T")


def _call_provider(payment: AnyPayment, operation: str, call: Callable[[], _T]) -> _T:
    """Run one provider ``call`` for ``payment`` (made with its idempotency key).

    The failures every operation treats alike: an unknown outcome
    (:class:`ProviderUnavailable`) is logged and raised, for a retry with the
    same key or ``sync_payment`` to settle; a key the provider rejects as reused
    with other parameters (:class:`ProviderIdempotencyError`) flags the payment
    for review, then is raised. Anything else is raised to the caller, which
    knows what a refusal means for its operation.
    """
    try:
        return fit_answer(call())
    except ProviderIdempotencyError as exc:
        _review(payment, R.KEY_REJECTED, f"{operation}: {exc}")
        raise
    except ProviderUnavailable as exc:
        logger.warning(
            "Payment %s: %s, outcome unknown (%s); a retry or a sync settles it.",
            payment.pk,
            operation,
            exc.code,
        )
        raise


#: What the customer is told (``failure_message`` goes into their email) when the
#: provider refused for a reason of ours (a key, a setting), not a decline.
NOT_STARTED_MESSAGE = "The payment could not be started. Please try again later."


def _fail(payment: AnyPayment, exc: PaygateError) -> None:
    code = fit(get_payment_model(), "failure_code", getattr(exc, "decline_code", "") or exc.code)
    declined = isinstance(exc, PaymentDeclined)
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        if can_transition(locked.status, P.FAILED):
            locked.failure_code = code
            locked.failure_message = (
                str(exc)[:FAILURE_MESSAGE_LENGTH] if declined else NOT_STARTED_MESSAGE
            )
            _change(
                locked,
                P.FAILED,
                source=Source.API,
                fields=("failure_code", "failure_message"),
                note="" if declined else str(exc),  # the operator's detail, for staff only
            )
        elif locked.status == P.FAILED:
            _record_decline(locked, code)


def _record_decline(payment: AnyPayment, code: str) -> None:
    """Audit another declined attempt on an already failed payment (fraud signals count them)."""
    _write(_audit(payment, Source.API, note=f"declined again: {code}"))


def _confirm_key(payment: AnyPayment, data: Mapping[str, Any]) -> str:
    digest = _fingerprint(**data)[:16]
    return f"paygate-{payment.pk}-confirm-{payment.status}-{digest}"


def confirm_payment(payment: AbstractPayment, **provider_data: Any) -> AnyPayment:
    """Confirm ``payment`` with the provider's confirmation data.

    ``payment_method=`` (Stripe PaymentMethod id; dummy test card),
    ``return_url=``, or Razorpay's ``razorpay_order_id=``,
    ``razorpay_payment_id=``, ``razorpay_signature=``. Returns the payment; for
    ``requires_action`` its ``next_action`` tells the front end what to do.
    Raises :class:`PaymentDeclined` (after the failure is committed) when the
    provider declines. A payment that is already processing, authorized or
    paid is returned as it is, without a provider call: confirming twice (the
    customer's return racing the webhook) is not an error.
    """
    payment = get_payment_model().objects.get(pk=payment.pk)
    backend = get_provider(payment.provider)
    # An automatic-capture payment that a webhook left ``authorized`` still needs
    # its capture (Razorpay captures on confirm); everything else already
    # confirmed (the webhook often wins the race with the customer's return) is
    # answered as it is, and nobody is called.
    needs_capture = payment.status == P.AUTHORIZED and payment.capture_method == "automatic"
    if not needs_capture and payment.status in {P.PROCESSING, P.AUTHORIZED} | PAID_STATUSES:
        return payment
    if not needs_capture and payment.status not in {P.PENDING, P.REQUIRES_ACTION, P.FAILED}:
        raise InvalidTransition(f"A {payment.status} payment cannot be confirmed.")
    check_payable(payment)
    if not payment.provider_payment_id:
        payment = _open_at_provider(payment, backend)
        if not _payable(payment):  # read under the lock: canceled while we were creating
            raise InvalidTransition(f"A {payment.status} payment cannot be confirmed.")
    before = payment.status
    key = _confirm_key(payment, provider_data)
    try:
        result = _call_provider(
            payment,
            "confirm",
            lambda: backend.confirm_payment(payment, idempotency_key=key, **provider_data),
        )
    except PaymentDeclined as exc:
        _fail(payment, exc)
        raise
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        declined = result.status == P.FAILED
        # A decline answered after a newer attempt moved the payment on (another card
        # now waiting for 3-D Secure) is history, not news: it is recorded, not applied.
        superseded = declined and locked.status not in {before, P.FAILED}
        declined_again = declined and locked.status == P.FAILED
        if not superseded:
            _apply_payment(locked, result, source=Source.API)
        if declined_again or superseded:
            _record_decline(locked, result.failure_code)
    locked.next_action = result.next_action
    if result.status == P.FAILED:
        raise PaymentDeclined(
            result.failure_message or "The payment was declined.",
            decline_code=result.failure_code,
            provider=backend.alias,
            payment=locked,
        )
    return locked


def capture_payment(
    payment: AbstractPayment,
    amount: int | None = None,
    *,
    user: UserLike = None,
    source: str = Source.API,
) -> AnyPayment:
    """Capture an ``authorized`` payment, fully or ``amount`` of it.

    ``user`` and ``source`` are who asked and through what (the audit trail).
    """
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        if locked.status != P.AUTHORIZED:
            raise InvalidTransition(
                f"Only an authorized payment can be captured, not a {locked.status} one."
            )
        amount = locked.amount if amount is None else money.validate_minor(amount, locked.currency)
        if amount > locked.amount:
            raise InvalidAmount(f"Cannot capture {amount}: only {locked.amount} was authorized.")
    backend = get_provider(locked.provider)
    result = _call_provider(
        locked,
        "capture",
        lambda: backend.capture_payment(
            locked, amount=amount, idempotency_key=f"paygate-{locked.pk}-capture"
        ),
    )
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        if result.status == P.SUCCEEDED and result.amount_captured is None:
            from dataclasses import replace

            result = replace(result, amount_captured=amount)
        _apply_payment(locked, result, source=source, user=user)
    return locked


def cancel_payment(
    payment: AbstractPayment, *, user: UserLike = None, source: str = Source.API
) -> AnyPayment:
    """Cancel a payment that has not been captured (releases an authorization).

    ``user`` and ``source`` are who asked and through what (the audit trail).
    """
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        if not can_transition(locked.status, P.CANCELED):
            raise InvalidTransition(f"A {locked.status} payment cannot be canceled.")
    backend = get_provider(locked.provider)
    if locked.provider_payment_id:
        result = _call_provider(
            locked,
            "cancel",
            lambda: backend.cancel_payment(locked, idempotency_key=f"paygate-{locked.pk}-cancel"),
        )
    else:
        result = None  # never reached the provider: nothing to cancel there
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        linked_meanwhile = result is None and bool(locked.provider_payment_id)
        if result is not None:
            _apply_payment(locked, result, source=source, user=user)
        elif not linked_meanwhile and can_transition(locked.status, P.CANCELED):
            _change(locked, P.CANCELED, source=source, user=user)
    if linked_meanwhile:
        # A confirm created the provider's object meanwhile and may be paying with it:
        # only the provider can tell which came first, so it cancels there.
        return cancel_payment(locked, user=user, source=source)
    return locked


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
        return _send_refund(locked, refund, source=source)
    if earlier.status == RefundStatus.PENDING.value and not earlier.provider_refund_id:
        # Never answered (a timeout, a crash): asked again under the same provider key,
        # which the provider answers with the refund it made, or makes it now, once.
        earlier = _send_refund(locked, earlier, source=source)
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
    left = locked.amount_captured - _refund_reserved(locked)
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
        created_by=_user_or_none(user),
        source=source,
        idempotency_key=key or f"paygate-refund-{refund_id}",
    )
    _write(
        _audit(
            locked,
            source,
            amount=amount,
            refund=refund,
            user=_user_or_none(user),
            note=f"refund requested: {reason}",
        )
    )
    return refund


def _send_refund(payment: AnyPayment, refund: Refund, *, source: str = Source.API) -> Refund:
    backend = get_provider(payment.provider)
    try:
        result = _call_provider(
            payment,
            f"refund {refund.pk}",
            lambda: backend.refund_payment(
                payment, refund, idempotency_key=str(refund.idempotency_key)
            ),
        )
    except ProviderRequestInProgress:
        # Our own earlier request with this key is still running (a sync racing the
        # call that made the refund): that one settles it, or the next sync or webhook.
        refund.refresh_from_db()
        return refund
    except (ProviderUnavailable, ProviderIdempotencyError):
        raise  # the refund stays pending, and reserved, until it is settled
    except PaygateError as exc:
        # Refused, by the provider or by the adapter before any call (an amount
        # the provider cannot take): nothing moved, so the reservation is released.
        with transaction.atomic():
            locked = lock_payment(payment.pk)
            refund = Refund.objects.select_for_update().get(pk=refund.pk)
            if refund.status == RefundStatus.PENDING.value:
                from django_paygate.providers.base import ProviderRefund

                failed = ProviderRefund(
                    provider_refund_id=refund.provider_refund_id or "",
                    status=RefundStatus.FAILED,
                    amount=refund.amount,
                    currency=refund.currency,
                    failure_reason=fit(Refund, "failure_reason", str(exc)),
                )
                _apply_refund(locked, failed, source=source, refund=refund)
        raise
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        refund = Refund.objects.select_for_update().get(pk=refund.pk)
        _apply_refund(locked, result, source=source, refund=refund)
    refund.refresh_from_db()
    return refund


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
                    return _open_at_provider(payment, backend)
                except PaymentInProgress:
                    return payment  # its creator links it
            return payment
    else:
        result = fit_answer(backend.fetch_payment(payment))
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        _apply_payment(locked, result, source=source, user=user)
        for provider_refund in result.refunds:
            _apply_refund(locked, provider_refund, source=source)
        unanswered = list(
            Refund.objects.filter(
                payment=locked, status=RefundStatus.PENDING.value, provider_refund_id=None
            )
        )
    for refund in unanswered:
        _send_refund(locked, refund, source=source)
    return get_payment_model().objects.get(pk=payment.pk)


def find_stuck_payments(older_than_seconds: int | None = None) -> Any:
    """Payments in flight or authorized, or with unanswered refunds, untouched for a while."""
    from datetime import timedelta

    from django_paygate.conf import paygate_settings

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
    from datetime import timedelta

    from django_paygate.conf import paygate_settings

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
            _review(
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
            _write(_audit(locked, Source.SYNC, note=f"{SYNC_FAILED_NOTE}{error}"))
            failures = PaymentEvent.objects.filter(
                payment=locked,
                source=Source.SYNC,
                note__startswith=SYNC_FAILED_NOTE,
                created_at__gte=locked.updated_at,
            ).count()
            if failures < SYNC_FAILURES_BEFORE_REVIEW or locked.needs_review:
                return False
            _flag_for_review(
                locked,
                R.SYNC_FAILING,
                f"sync failed {failures} times; last: {error}",
                source=Source.SYNC,
            )
            return True
    except Exception:  # the database itself failed: the next sweep tries again
        logger.exception("Payment %s: the failed sync could not be recorded.", payment.pk)
        return False


# ---------------------------------------------------------------------------
# Webhook events (called by django_paygate.webhooks inside its transaction)
# ---------------------------------------------------------------------------


def payment_lookup(
    provider_alias: str, event: ProviderEvent, *, lock: bool = False
) -> tuple[str, list[Any]] | None:
    """A ``SELECT`` of the payment an event is about, and its parameters.

    Found by the provider's id, or by our id echoed in the event's metadata
    (a webhook may arrive before the provider's id was stored); ``None`` when
    the event names neither. Our id finds only a payment not yet linked to a
    provider object: metadata can be copied onto another object (a Razorpay
    payment's notes come from the customer's browser), and an event about an
    object that is not this payment's must never move it.

    It selects the payment's id, or with ``lock`` the whole row ``FOR UPDATE``
    (for :func:`django_paygate.sql.from_row`).
    The webhook inbox runs it inside its claim, so that finding and locking
    the payment cost no statement of their own.
    """
    by_our_id = bool(event.our_payment_id and _is_uuid(event.our_payment_id))
    if not (event.provider_payment_id or by_our_id):
        return None
    Payment = get_payment_model()
    params: list[Any] = [provider_alias]
    if event.provider_payment_id:
        params.append(event.provider_payment_id)
    if by_our_id:
        params.append(sql.prep(Payment, "id", uuid.UUID(event.our_payment_id)))
    return sql.payment_lookup(Payment, bool(event.provider_payment_id), by_our_id, lock), params


def apply_event(payment: AnyPayment, event: ProviderEvent, *, webhook_event: WebhookEvent) -> bool:
    """Apply a verified webhook event to a locked payment; whether anything changed."""
    changed = False
    if event.payment is not None:
        before = payment.status
        changed |= _apply_payment(
            payment, event.payment, source=Source.WEBHOOK, webhook_event=webhook_event
        )
        status = event.payment.status
        if (
            status is not None
            and before == payment.status
            and status.value != before
            and is_stale(before, status)
        ):
            logger.info(
                "Stale %s event %s ignored (payment is %s).", status, event.event_id, before
            )
    if event.refund is not None:
        before_refunded = payment.amount_refunded
        refund = _apply_refund(
            payment, event.refund, source=Source.WEBHOOK, webhook_event=webhook_event
        )
        changed |= refund is not None and payment.amount_refunded != before_refunded
    if event.dispute is not None:
        _apply_dispute(payment, event.dispute, source=Source.WEBHOOK, webhook_event=webhook_event)
        changed = True
    return changed


def review_unapplied_event(
    payment_id: Any, webhook_event: WebhookEvent, error: PaygateError | BaseException
) -> None:
    """Flag the payment of a webhook event the state machine refused (inside a transaction).

    The event stays in the inbox as ``failed``, to be replayed once a person
    has looked at the payment. ``payment_id`` ``None`` (no payment) does nothing.
    """
    if payment_id is None:
        return
    _flag_for_review(
        lock_payment(payment_id),
        R.EVENT_UNAPPLIED,
        f"webhook event {webhook_event.event_id} cannot be applied: {error}",
        source=Source.WEBHOOK,
        webhook_event=webhook_event,
    )


def refundable_amount(payment: AnyPayment) -> int:
    """What a new refund of ``payment`` may take now, in minor units (a read: no lock)."""
    return max(0, payment.amount_captured - _refund_reserved(payment))


__all__ = [
    "apply_event",
    "cancel_payment",
    "capture_payment",
    "check_payable",
    "confirm_payment",
    "create_payment",
    "find_stuck_payments",
    "lock_payment",
    "payment_client_data",
    "payment_lookup",
    "payments_for",
    "refund_payment",
    "refundable_amount",
    "review_unapplied_event",
    "sync_payment",
    "sync_stuck_payments",
]
