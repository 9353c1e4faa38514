"""Payments: create, confirm, capture and cancel.

Each verb writes its intent and commits it, calls the provider once with an
idempotency key derived from the payment (:func:`~.calls.call_provider` maps
the outcome), and applies the answer under the payment's lock
(:mod:`~django_paygate.services.ledger`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from django_paygate import money
from django_paygate.exceptions import (
    AlreadyPaid,
    IdempotencyConflict,
    InvalidAmount,
    InvalidTransition,
    PayableChanged,
    PaygateError,
    PaymentDeclined,
    PaymentInProgress,
    ProviderUnavailable,
)
from django_paygate.models import (
    FAILURE_MESSAGE_LENGTH,
    AbstractPayment,
    ReviewReason,
    Source,
    fit,
    get_payment_model,
)
from django_paygate.providers import get_provider
from django_paygate.services.calls import call_provider
from django_paygate.services.ledger import (
    API,
    Origin,
    apply_payment,
    audit,
    change,
    lock_payment,
    review,
    user_or_none,
    write,
)
from django_paygate.states import (
    IN_FLIGHT_PAYMENT_STATUSES,
    PAID_STATUSES,
    PaymentStatus,
    can_transition,
)

if TYPE_CHECKING:
    from django_paygate.models import Payment as AnyPayment
    from django_paygate.providers.base import BaseProvider
    from django_paygate.services.ledger import UserLike

logger = logging.getLogger("django_paygate")

P = PaymentStatus
R = ReviewReason

MAX_METADATA_KEYS = 50


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
    asked = _Asked(
        backend=get_provider(provider),
        owner=user_or_none(user),
        metadata=_clean_metadata(metadata),
        capture=capture,
        idempotency_key=_checked_key(idempotency_key),
    )
    if payable is not None:
        if amount is not None or currency is not None or email or description:
            raise TypeError(
                "create_payment(payable=...) takes the amount, currency, email and "
                "description from the payable: do not pass them too."
            )
        return _create_for_payable(payable, asked, customer_amount=customer_amount)
    if customer_amount is not None:
        raise TypeError("customer_amount is for a payable that accepts one.")
    if amount is None or currency is None:
        raise TypeError("create_payment() needs payable=, or amount= and currency=.")
    currency = money.normalize_currency(currency)
    amount = money.validate_minor(amount, currency)
    asked.backend.validate_amount(amount, currency)
    price: dict[str, Any] = {
        "amount": amount,
        "currency": currency,
        "email": email,
        "description": description,
    }
    asked = asked.keyed(**price)
    known = _known(asked)
    if known is not None:
        return known
    try:
        with transaction.atomic():
            payment = _insert_payment(asked, **price)
    except IntegrityError:
        known = _known(asked)  # the same request, racing this one
        if known is None:
            raise
        return known
    return open_at_provider(payment, asked.backend, claimed=True)


@dataclass(frozen=True)
class _Asked:
    """What a caller of :func:`create_payment` asked for, checked, besides the price."""

    backend: BaseProvider
    owner: Any
    metadata: dict[str, Any]
    capture: bool
    idempotency_key: str | None
    #: The request's digest, stored with its key: a replay must be the same request.
    fingerprint: str = ""

    @property
    def capture_method(self) -> str:
        return "automatic" if self.capture else "manual"

    def keyed(self, **request: Any) -> _Asked:
        """This request with its fingerprint (over ``request`` too), when it has a key."""
        if not self.idempotency_key:
            return self
        owner = self.owner.pk if self.owner else None
        digest = _fingerprint(
            **request,
            provider=self.backend.alias,
            user=owner,
            metadata=self.metadata,
            capture=self.capture,
        )
        return replace(self, fingerprint=digest)


def _known(asked: _Asked) -> AnyPayment | None:
    """The payment made earlier for this request's key, replayed; or ``None``.

    Raises :class:`IdempotencyConflict` when the key was used with other parameters.
    """
    if not asked.idempotency_key:
        return None
    earlier = get_payment_model().objects.filter(idempotency_key=asked.idempotency_key).first()
    return None if earlier is None else _replay(earlier, asked.fingerprint, asked.backend)


def _checked_key(idempotency_key: str | None) -> str | None:
    if idempotency_key is not None and not (
        isinstance(idempotency_key, str) and 0 < len(idempotency_key) <= 255
    ):
        raise InvalidAmount("idempotency_key must be a string of 1 to 255 characters.")
    return idempotency_key


def _insert_payment(
    asked: _Asked, *, amount: int, currency: str, email: str, description: str, **link: Any
) -> AnyPayment:
    """Write a new payment row and its "created" audit row (inside the caller's transaction).

    The row carries the creation claim: its creator goes on to open it at the provider.
    """
    owner = asked.owner
    payment = get_payment_model().objects.create(
        provider=asked.backend.alias,
        amount=amount,
        currency=currency,
        user=owner,
        email=email or (getattr(owner, "email", "") or ""),
        description=description[:1000],
        metadata=asked.metadata,
        capture_method=asked.capture_method,
        idempotency_key=asked.idempotency_key or None,
        request_fingerprint=asked.fingerprint,
        creating_until=_creation_claim(),
        **link,
    )
    write(audit(payment, Origin(Source.API, user=owner), from_status="", note="created"))
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


def _create_for_payable(payable: Any, asked: _Asked, *, customer_amount: int | None) -> AnyPayment:
    """Create (or return the open) payment for ``payable``, priced by the payable.

    The payable's row is locked while its payments are looked at and the new
    one is written, so concurrent creates for one payable give one payment.
    """
    from django.contrib.contenttypes.models import ContentType

    from django_paygate import payables

    payables.payable_name(payable)  # registered, or ConfigurationError
    content_type = ContentType.objects.get_for_model(payable, for_concrete_model=False)
    asked = asked.keyed(payable=f"{content_type.pk}:{payable.pk}", customer_amount=customer_amount)
    known = _known(asked)
    if known is not None:
        return known
    with transaction.atomic():
        # The host's row, locked: its price is read under the lock, and a second
        # create for it waits here until the first one's payment is committed.
        current = type(payable)._default_manager.select_for_update().get(pk=payable.pk)
        # The same request again, which waited for the first one's lock: replayed as it is.
        known = _known(asked)
        if known is None:
            open_payment, payment = _open_or_insert(
                current, asked, customer_amount=customer_amount, content_type=content_type
            )
    if known is not None:
        return known
    if open_payment is not None:
        return _reopen(open_payment, asked.backend)
    assert payment is not None
    return open_at_provider(payment, asked.backend, claimed=True)


def _reopen(payment: AnyPayment, backend: BaseProvider) -> AnyPayment:
    """The payable's open ``payment``, answered again (``replayed``) with its client data."""
    if not payment.provider_payment_id and payment.status == P.PENDING:
        # Its creator is still asking the provider (a double click), or lost the answer.
        payment = _join_creation(payment, backend)
    else:
        payment.client_data = payment_client_data(payment, backend)
    payment.replayed = True
    return payment


def _open_or_insert(
    current: Any, asked: _Asked, *, customer_amount: int | None, content_type: Any
) -> tuple[AnyPayment | None, AnyPayment | None]:
    """Under the payable's lock: ``(its open payment, None)``, or ``(None, a new payment)``."""
    from django_paygate import payables

    terms = payables.terms(current, customer_amount=customer_amount)
    asked.backend.validate_amount(terms.amount, terms.currency)
    linked = payments_for(current)
    paid = [p for p in linked.filter(status__in=PAID_STATUSES) if payables.payment_covers(p)]
    if paid:
        raise AlreadyPaid("This is already paid.")
    open_payment = (
        linked.filter(
            status__in=_OPEN_FOR_PAYABLE,
            amount=terms.amount,
            currency=terms.currency,
            provider=asked.backend.alias,
            capture_method=asked.capture_method,
            user=asked.owner,
        )
        .order_by("-created_at")
        .first()
    )
    if open_payment is not None:
        return open_payment, None
    meta = {**terms.metadata, **asked.metadata}
    if customer_amount is not None:
        meta[payables.CUSTOMER_AMOUNT_KEY] = True
    payment = _insert_payment(
        replace(asked, metadata=_clean_metadata(meta)),
        amount=terms.amount,
        currency=terms.currency,
        email=terms.email,
        description=terms.description,
        payable_type=content_type,
        payable_id=str(current.pk),
    )
    return None, payment


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
        review(payment, R.CANCEL_FAILED, f"{reason}, and canceling it failed: {exc}")  # type: ignore[arg-type]
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
            return open_at_provider(payment, backend)
        except PaymentInProgress:
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.05)
        current = get_payment_model().objects.get(pk=payment.pk)
        if current.provider_payment_id or current.status != P.PENDING:
            current.client_data = payment_client_data(current, backend)
            return current


def open_at_provider(
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
    release = partial(_release_creation, payment)

    def refused(exc: PaygateError) -> None:
        release()
        _fail(payment, exc)  # nothing to pay with

    result = call_provider(
        payment,
        "create",
        lambda: backend.create_payment(payment, idempotency_key=_create_key(payment)),
        unsettled=release,  # a sync or the next try opens it again with the same key
        refused=refused,
    )
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        apply_payment(locked, result, API)
    # Canceled while the provider was creating its object: nothing to pay with.
    locked.client_data = dict(result.client_data) if _payable(locked) else None
    return locked


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
            change(
                locked,
                P.FAILED,
                API,
                fields=("failure_code", "failure_message"),
                note="" if declined else str(exc),  # the operator's detail, for staff only
            )
        elif locked.status == P.FAILED:
            _record_decline(locked, code)


def _record_decline(payment: AnyPayment, code: str) -> None:
    """Audit another declined attempt on an already failed payment (fraud signals count them)."""
    write(audit(payment, API, note=f"declined again: {code}"))


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
        payment = open_at_provider(payment, backend)
        if not _payable(payment):  # read under the lock: canceled while we were creating
            raise InvalidTransition(f"A {payment.status} payment cannot be confirmed.")
    before = payment.status
    key = _confirm_key(payment, provider_data)

    def refused(exc: PaygateError) -> None:
        if isinstance(exc, PaymentDeclined):
            _fail(payment, exc)  # any other refusal (a bad request) leaves it to try again

    result = call_provider(
        payment,
        "confirm",
        lambda: backend.confirm_payment(payment, idempotency_key=key, **provider_data),
        refused=refused,
    )
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        declined = result.status == P.FAILED
        # A decline answered after a newer attempt moved the payment on (another card
        # now waiting for 3-D Secure) is history, not news: it is recorded, not applied.
        superseded = declined and locked.status not in {before, P.FAILED}
        declined_again = declined and locked.status == P.FAILED
        if not superseded:
            apply_payment(locked, result, API)
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
    result = call_provider(
        locked,
        "capture",
        lambda: backend.capture_payment(
            locked, amount=amount, idempotency_key=f"paygate-{locked.pk}-capture"
        ),
    )
    with transaction.atomic():
        locked = lock_payment(payment.pk)
        if result.status == P.SUCCEEDED and result.amount_captured is None:
            result = replace(result, amount_captured=amount)
        apply_payment(locked, result, Origin(source, user=user))
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
        result = call_provider(
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
            apply_payment(locked, result, Origin(source, user=user))
        elif not linked_meanwhile and can_transition(locked.status, P.CANCELED):
            change(locked, P.CANCELED, Origin(source, user=user))
    if linked_meanwhile:
        # A confirm created the provider's object meanwhile and may be paying with it:
        # only the provider can tell which came first, so it cancels there.
        return cancel_payment(locked, user=user, source=source)
    return locked
