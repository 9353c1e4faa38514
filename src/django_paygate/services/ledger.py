"""The ledger: the locked payment, its one state-change function, applying a provider's news.

Not public API. The services (:mod:`django_paygate.services`) and the webhook
inbox (:mod:`django_paygate.webhooks`) call it inside their transactions; a
host project calls the services.

Everything here runs under ``SELECT … FOR UPDATE`` on the payment row
(:func:`lock_payment`), and every status change goes through :func:`change`:
checked against :data:`~django_paygate.states.PAYMENT_TRANSITIONS`, written with
its audit row and the outbox row it owes in one round trip, then announced by
``payment_status_changed`` inside the transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Case, OuterRef, Q, QuerySet, Subquery, Sum, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from django_paygate import sql
from django_paygate.exceptions import InvalidTransition, PaygateError
from django_paygate.models import (
    Dispute,
    Notification,
    PaymentEvent,
    Refund,
    ReviewReason,
    Source,
    WebhookEvent,
    get_payment_model,
)
from django_paygate.providers import get_provider
from django_paygate.signals import payment_status_changed
from django_paygate.states import (
    DISPUTE_WITHDRAWING_STATUSES,
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


@dataclass(frozen=True)
class Origin:
    """What moved a payment, for its audit trail: a source, and the webhook event or user."""

    source: str
    webhook_event: WebhookEvent | None = None
    user: UserLike = None


#: The origin of a change the API asked for, with nobody named.
API = Origin(Source.API)


def lock_payment(pk: Any) -> AnyPayment:
    """The payment with primary key ``pk``, locked until the transaction ends."""
    return sql.fetch_for_update(get_payment_model(), pk)


def user_or_none(user: UserLike) -> Any:
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def write(*writes: sql.Write) -> None:
    """Run ``writes`` (one round trip); an outbox row among them is delivered after commit."""
    from django_paygate.notifications import deliver_after_commit

    for row, pk in zip(writes, sql.execute(*writes), strict=True):
        if row.model is Notification:
            deliver_after_commit(pk)


def _payment_update(payment: AnyPayment, *fields: str) -> sql.Write:
    """The update of a locked ``payment``'s ``fields`` (and ``updated_at``)."""
    return sql.update(payment, [*fields, "updated_at"])


def audit(payment: AnyPayment, origin: Origin, **values: Any) -> sql.Write:
    """An audit row; without ``to_status`` it records an event that moved no status."""
    values.setdefault("from_status", payment.status)
    values.setdefault("to_status", payment.status)
    values["note"] = values.get("note", "")[:500]
    return sql.insert(
        PaymentEvent,
        payment=payment,
        source=origin.source,
        webhook_event=origin.webhook_event,
        user=user_or_none(origin.user),
        **values,
    )


def notification(
    kind: str,
    payment: AnyPayment,
    *,
    refund: Refund | None = None,
    dispute: Dispute | None = None,
) -> sql.Write:
    """An outbox row (rule 4): :func:`write` has it delivered after commit."""
    return sql.insert(Notification, kind=kind, payment=payment, refund=refund, dispute=dispute)


def change(
    payment: AnyPayment,
    to_status: PaymentStatus,
    origin: Origin,
    *,
    fields: tuple[str, ...] = (),
    amount: int | None = None,
    note: str = "",
    refund: Refund | None = None,
    also: tuple[sql.Write, ...] = (),
    ledger: bool = False,
) -> None:
    """Move a locked ``payment`` to ``to_status`` and save it with ``fields``.

    Raises :class:`InvalidTransition` when the table does not allow it. Writes
    the payment, its audit row, the outbox row it owes and ``also`` in one
    round trip, then sends ``payment_status_changed`` inside the transaction.
    ``ledger``: the move follows a change of the refunded amount (see
    :data:`~django_paygate.states.LEDGER_TRANSITIONS`); it owes no payment
    notification, since the refund's own is in ``also``.
    """
    old = PaymentStatus(payment.status)
    allowed = can_transition(old, to_status, ledger=ledger)
    if to_status != old and not allowed:
        raise InvalidTransition(f"A {old} payment cannot become {to_status}.")
    if to_status == old and not allowed and not fields:
        write(*also)
        return
    payment.status = to_status.value
    changed = {"status", *fields, *_stamp(payment, to_status)}
    writes = [
        _payment_update(payment, *changed),
        audit(payment, origin, from_status=old.value, amount=amount, note=note, refund=refund),
    ]
    if to_status != old and not ledger and to_status in _NOTIFY_ON:
        writes.append(notification(_NOTIFY_ON[to_status], payment))
    write(*writes, *also)
    if to_status != old:
        payment_status_changed.send(
            sender=type(payment),
            payment=payment,
            old_status=old.value,
            new_status=to_status.value,
            source=origin.source,
        )


def _stamp(payment: AnyPayment, to_status: PaymentStatus) -> set[str]:
    """Set the fields that go with reaching ``to_status``; their names."""
    stamped = set()
    if to_status == P.SUCCEEDED and payment.succeeded_at is None:
        payment.succeeded_at = timezone.now()
        stamped.add("succeeded_at")
    if to_status == P.CANCELED:
        payment.canceled_at = timezone.now()
        stamped.add("canceled_at")
    if to_status in _CLEARS_FAILURE and payment.failure_code:
        payment.failure_code = payment.failure_message = ""
        stamped |= {"failure_code", "failure_message"}
    return stamped


#: Statuses that mean a failed attempt is over: its failure is no longer the news.
_CLEARS_FAILURE = frozenset({P.SUCCEEDED, P.AUTHORIZED, P.PROCESSING, P.REQUIRES_ACTION})


def flag_for_review(
    payment: AnyPayment,
    code: ReviewReason,
    reason: str,
    origin: Origin,
    *,
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
        audit(payment, origin, note=f"needs review: {reason}"),
    ]
    if first:
        writes.append(notification(Notification.Kind.PAYMENT_NEEDS_REVIEW, payment))
    write(*writes)


def review(payment: AnyPayment, code: ReviewReason, reason: str) -> None:
    """Flag ``payment`` for review in a transaction of its own."""
    with transaction.atomic():
        flag_for_review(lock_payment(payment.pk), code, reason, API)


def apply_payment(payment: AnyPayment, result: ProviderPayment, origin: Origin) -> bool:
    """Apply what the provider reports about a locked ``payment``.

    Returns whether anything changed. A stale or illegal status is recorded
    by the caller (webhook inbox) and changes nothing; an amount or currency
    that disagrees with the row sets ``needs_review`` and changes nothing.
    """
    status = result.status
    other = _other_object(payment, result.provider_data)
    moves, news = _reach(PaymentStatus(payment.status), status, other)
    fields = _link(payment, result, news)
    problem = _payment_problem(payment, result, news, other)
    if problem:
        flag_for_review(payment, *problem, origin, fields=tuple(fields))
        return True
    if status == P.SUCCEEDED and news and _captured(payment, result) > payment.amount_captured:
        payment.amount_captured = _captured(payment, result)
        fields.append("amount_captured")
    if status == P.FAILED and moves and result.failure_code != payment.failure_code:
        payment.failure_code = result.failure_code  # cut to its column by fit_answer
        payment.failure_message = result.failure_message
        fields += ["failure_code", "failure_message"]
    if not moves:
        if fields:
            write(_payment_update(payment, *fields))
        return bool(fields)
    assert status is not None
    moved = payment.amount_captured if status == P.SUCCEEDED else None
    change(payment, status, origin, fields=tuple(fields), amount=moved)
    if status == P.SUCCEEDED and payment.payable_type_id:
        _review_changed_payable(payment, origin)
    return True


def _reach(current: PaymentStatus, status: PaymentStatus | None, other: str) -> tuple[bool, bool]:
    """Whether the reported ``status`` moves the payment, and whether it is news of now.

    News about an earlier or impossible state (a late ``authorized`` of another
    attempt) must not overwrite what the current state rests on.
    """
    moves = status is not None and status != current and can_transition(current, status)
    news = (
        moves
        or status is None
        or status == current
        or (status == P.SUCCEEDED and current in PAID_STATUSES)
    )
    if other and status == P.CANCELED and current == P.AUTHORIZED:
        # An authorization released that is not the one this payment rests on
        # (Razorpay: another attempt on the order): news about that one only.
        return False, False
    if other and current in PAID_STATUSES:
        news = False  # never repoint a paid payment at another object
    return moves, news


def _link(payment: AnyPayment, result: ProviderPayment, news: bool) -> list[str]:
    """Take the provider's id and references from ``result``; the fields that changed."""
    fields: list[str] = []
    if result.provider_payment_id and not payment.provider_payment_id:
        payment.provider_payment_id = result.provider_payment_id
        payment.creating_until = None  # linked: the creation claim has done its work
        fields += ["provider_payment_id", "creating_until"]
    new_refs = {k: v for k, v in result.provider_data.items() if payment.provider_data.get(k) != v}
    if new_refs and news:
        payment.provider_data = {**payment.provider_data, **new_refs}
        fields.append("provider_data")
    return fields


def _captured(payment: AnyPayment, result: ProviderPayment) -> int:
    """What a ``succeeded`` report says was captured.

    An update that does not say how much was taken never raises a partial
    capture; with nothing captured yet, it means the whole amount.
    """
    return result.amount_captured or payment.amount_captured or payment.amount


#: Why a payment needs review: the code, and the details.
_Problem = tuple[ReviewReason, str] | None


def _payment_problem(
    payment: AnyPayment, result: ProviderPayment, news: bool, other: str
) -> _Problem:
    """Why ``result`` must not be applied to ``payment`` without a person, or ``None``."""
    current, status = PaymentStatus(payment.status), result.status
    if result.currency and result.currency.upper() != payment.currency:
        detail = f"provider currency {result.currency.upper()} differs from {payment.currency}"
        return R.AMOUNT_MISMATCH, detail
    if result.amount is not None and result.amount != payment.amount:
        return R.AMOUNT_MISMATCH, f"provider amount {result.amount} differs from {payment.amount}"
    if (result.amount_refunded or 0) > payment.amount_refunded:
        problem = _unrecorded_refunds(payment, result.amount_refunded or 0)
        if problem:
            return problem
    if status != P.SUCCEEDED:
        return None
    if other and current in PAID_STATUSES:
        return R.SECOND_CAPTURE, f"provider reports a second capture: {other}"
    if not news:
        # Money was taken for a payment we consider over (an abandoned order paid
        # later): never dropped silently, never applied blindly.
        return R.PAID_AFTER_END, f"provider reports the payment captured, but it is {current} here"
    captured = _captured(payment, result)
    if captured > payment.amount:
        return R.OVER_CAPTURED, f"provider reports {captured} captured of {payment.amount}"
    return None


def _review_changed_payable(payment: AnyPayment, origin: Origin) -> None:
    """Flag a locked payment that was paid although its payable's price changed (or vanished).

    The money was taken and is recorded as such; ``payment_covers`` is then
    false, so fulfilment waits for a person.
    """
    from django_paygate import payables

    reason = payables.payable_changed(payment)
    if reason:
        flag_for_review(
            payment, R.PAYABLE_CHANGED, f"paid after its payable changed: {reason}", origin
        )


def _other_object(payment: AnyPayment, reported: Mapping[str, Any]) -> str:
    """The attempt ``reported`` names when it is not the one ``payment`` rests on, or "".

    Only for providers whose payment may have several attempts (``attempt_key``:
    Razorpay's payments on one order).
    """
    key = get_provider(payment.provider).attempt_key
    mine, theirs = payment.provider_data.get(key), reported.get(key)
    return f"{key} {theirs}, not {mine}" if key and mine and theirs and mine != theirs else ""


def _unrecorded_refunds(payment: AnyPayment, refunded: int) -> _Problem:
    """Why a provider's refunded total is more than this payment's refunds explain, or ``None``.

    Some events give only the total (Stripe's ``charge.refunded`` on API versions
    2022-11-15 to 2024-10-27); refunds made at the provider that no event names
    are recorded by a sync.
    """
    if refunded <= refund_reserved(payment, disputes=False):
        return None
    return R.UNRECORDED_REFUNDS, (
        f"provider reports {refunded} refunded, {payment.amount_refunded} recorded here; "
        "sync the payment to record its refunds"
    )


def refund_reserved(payment: AnyPayment, *, disputes: bool = True) -> int:
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


_OVER = frozenset({RefundStatus.FAILED, RefundStatus.CANCELED})


def apply_refund(
    payment: AnyPayment, result: ProviderRefund, origin: Origin, *, refund: Refund | None = None
) -> Refund | None:
    """Apply a provider refund to a locked ``payment``; create it if unknown.

    A refund made in the provider's dashboard appears here first: it becomes
    a :class:`Refund` row once, whatever order its events arrive in. Returns
    the row, or ``None`` when the report was recorded without one.
    """
    if refund is None:
        try:
            refund = _find_refund(payment, result)
        except _AmbiguousRefund as exc:
            logger.info("Payment %s: %s", payment.pk, exc)
            write(audit(payment, origin, note=str(exc)))
            return None
    problem = _refund_problem(payment, result, refund)
    if problem:
        flag_for_review(payment, *problem, origin)
        return refund
    if refund is None:
        # Made elsewhere. A final refund is recorded too (it holds nothing), so that
        # its earlier events, arriving after it, find it over instead of making a new one.
        refund = Refund.objects.create(
            payment=payment,
            provider_refund_id=result.provider_refund_id,
            amount=result.amount,
            currency=payment.currency,
            status=RefundStatus.PENDING.value,
            source=origin.source,
            reason="created at the provider",
        )
    old, new = RefundStatus(refund.status), result.status
    if not _move_refund(refund, result):
        if old in _OVER and new == RefundStatus.SUCCEEDED:
            # Either a late event of a refund that succeeded, then failed, or money
            # that left while we recorded a refusal: only a person can tell.
            detail = f"refund {refund.pk} reported succeeded after it was {old.value}"
            flag_for_review(payment, R.REFUND_REVIVED, detail, origin)
        return refund
    if RefundStatus.SUCCEEDED in (old, new):
        _book_refund(payment, refund, origin, back=old == RefundStatus.SUCCEEDED)
        return refund
    writes = [
        audit(
            payment,
            origin,
            amount=refund.amount,
            refund=refund,
            note=f"refund {new.value}: {refund.failure_reason}",
        )
    ]
    if new == RefundStatus.FAILED:
        writes.append(notification(Notification.Kind.REFUND_FAILED, payment, refund=refund))
    write(*writes)
    return refund


def _refund_problem(payment: AnyPayment, result: ProviderRefund, refund: Refund | None) -> _Problem:
    """Why a reported refund must not be applied without a person, or ``None``.

    Without a ``refund`` row it is one made elsewhere, which must fit what is left.
    """
    if result.currency and result.currency.upper() != payment.currency:
        return R.REFUND_CURRENCY, f"refund {result.provider_refund_id} in {result.currency}"
    if refund is not None:
        return None
    about = f"refund {result.provider_refund_id} of {result.amount}"
    other = _other_object(payment, result.provider_data)
    if other:
        return R.REFUND_OTHER_ATTEMPT, f"{about} is for {other}"
    over = result.status in _OVER
    if not over and refund_reserved(payment) + result.amount > payment.amount_captured:
        return R.REFUND_EXCEEDS, f"{about} exceeds what is left to refund"
    return None


def _move_refund(refund: Refund, result: ProviderRefund) -> bool:
    """Save what ``result`` says of ``refund``; whether its status moved."""
    fields = []
    if result.provider_refund_id and refund.provider_refund_id != result.provider_refund_id:
        refund.provider_refund_id = result.provider_refund_id
        fields.append("provider_refund_id")
    old, new = RefundStatus(refund.status), result.status
    if new == old or not can_transition_refund(old, new):
        if fields:
            refund.save(update_fields=[*fields, "updated_at"])
        return False
    refund.status = new.value
    fields += ["status", "updated_at"]
    if new == RefundStatus.FAILED:
        refund.failure_reason = result.failure_reason
        fields.append("failure_reason")
    if new == RefundStatus.SUCCEEDED:
        refund.succeeded_at = timezone.now()
        fields.append("succeeded_at")
    refund.save(update_fields=fields)
    return True


def _book_refund(payment: AnyPayment, refund: Refund, origin: Origin, *, back: bool) -> None:
    """Move the refunded amount by a refund that succeeded, or (``back``) failed after that.

    The payment's status moves with it (the ledger's moves). Stripe: a refund
    may fail after it succeeded. Its money came back, so the payment is what is
    really refunded now (refundable again); the customer still waits for their
    money, so a person looks at it.
    """
    payment.amount_refunded += -refund.amount if back else refund.amount
    kind = Notification.Kind.REFUND_FAILED if back else Notification.Kind.REFUND_SUCCEEDED
    change(
        payment,
        status_after_refund(payment.amount_captured, payment.amount_refunded),
        origin,
        fields=("amount_refunded",),
        amount=refund.amount,
        refund=refund,
        note="refund failed after it had succeeded" if back else "refund succeeded",
        also=(notification(kind, payment, refund=refund),),
        ledger=True,
    )
    if back:
        detail = f"refund {refund.pk} failed after it had succeeded; its money came back"
        flag_for_review(payment, R.REFUND_REVERSED, detail, origin)


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


def apply_dispute(payment: AnyPayment, result: ProviderDispute, origin: Origin) -> Dispute:
    """Record a dispute the provider reports on a locked ``payment`` (a chargeback, an inquiry)."""
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
        audit(
            payment,
            origin,
            amount=dispute.amount,
            note=f"dispute {dispute.provider_dispute_id} {dispute.status}",
        )
    ]
    if created:
        writes.append(notification(Notification.Kind.DISPUTE_OPENED, payment, dispute=dispute))
    if DisputeStatus(dispute.status) in closed and not was_closed:
        writes.append(notification(Notification.Kind.DISPUTE_CLOSED, payment, dispute=dispute))
    write(*writes)
    return dispute


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


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
    origin = Origin(Source.WEBHOOK, webhook_event)
    changed = False
    if event.payment is not None:
        before = payment.status
        changed |= apply_payment(payment, event.payment, origin)
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
        refund = apply_refund(payment, event.refund, origin)
        changed |= refund is not None and payment.amount_refunded != before_refunded
    if event.dispute is not None:
        apply_dispute(payment, event.dispute, origin)
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
    flag_for_review(
        lock_payment(payment_id),
        R.EVENT_UNAPPLIED,
        f"webhook event {webhook_event.event_id} cannot be applied: {error}",
        Origin(Source.WEBHOOK, webhook_event),
    )
