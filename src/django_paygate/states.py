"""Payment and refund statuses, and the rules for moving between them.

Providers deliver events late, twice and out of order. Every status change,
whether it comes from a service call, a webhook, a sync or the admin, is
checked against :data:`PAYMENT_TRANSITIONS`. A change the table does not
allow is never applied: services raise :class:`InvalidTransition`, webhooks
record the event and change nothing.

:data:`PAYMENT_RANK` orders statuses by how far a payment has gone. An
update whose status ranks below the current one is *stale* (a
``processing`` event that arrives after ``succeeded``): it is recorded
and ignored.

This module imports nothing from Django.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType


class _Status(str, Enum):
    """A status stored as its plain string value."""

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


class PaymentStatus(_Status):
    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    FAILED = "failed"
    CANCELED = "canceled"


class RefundStatus(_Status):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class DisputeStatus(_Status):
    #: The bank asks questions (a Stripe inquiry); no money was taken back yet.
    INQUIRY = "inquiry"
    OPEN = "open"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"
    CLOSED = "closed"


class CaptureMethod(_Status):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


P = PaymentStatus

#: How far a payment has gone. A stale update ranks below the current status.
#: ``failed`` ranks with ``pending``: a customer may try another card.
PAYMENT_RANK: Mapping[PaymentStatus, int] = MappingProxyType(
    {
        P.PENDING: 0,
        P.FAILED: 0,
        P.REQUIRES_ACTION: 1,
        P.PROCESSING: 2,
        P.AUTHORIZED: 3,
        P.SUCCEEDED: 4,
        P.PARTIALLY_REFUNDED: 5,
        P.REFUNDED: 6,
        P.CANCELED: 6,
    }
)

_OPEN = frozenset({P.PENDING, P.REQUIRES_ACTION, P.PROCESSING, P.AUTHORIZED, P.SUCCEEDED})

#: Every allowed change of status. ``partially_refunded`` may follow itself
#: (a second partial refund changes amounts, not the status).
PAYMENT_TRANSITIONS: Mapping[PaymentStatus, frozenset[PaymentStatus]] = MappingProxyType(
    {
        P.PENDING: frozenset(
            {P.REQUIRES_ACTION, P.PROCESSING, P.AUTHORIZED, P.SUCCEEDED, P.FAILED, P.CANCELED}
        ),
        P.REQUIRES_ACTION: frozenset(
            {P.PROCESSING, P.AUTHORIZED, P.SUCCEEDED, P.FAILED, P.CANCELED}
        ),
        P.PROCESSING: frozenset({P.AUTHORIZED, P.SUCCEEDED, P.FAILED, P.CANCELED}),
        # An expired or voided authorization ends canceled, never failed.
        P.AUTHORIZED: frozenset({P.SUCCEEDED, P.CANCELED}),
        # Not final: Stripe lets the customer retry with another card, and
        # Razorpay documents payment.failed followed by payment.captured.
        P.FAILED: frozenset(
            {P.REQUIRES_ACTION, P.PROCESSING, P.AUTHORIZED, P.SUCCEEDED, P.CANCELED}
        ),
        P.SUCCEEDED: frozenset({P.PARTIALLY_REFUNDED, P.REFUNDED}),
        P.PARTIALLY_REFUNDED: frozenset({P.PARTIALLY_REFUNDED, P.REFUNDED}),
        P.REFUNDED: frozenset(),
        P.CANCELED: frozenset(),
    }
)

#: No operation and no report of the provider moves a payment out of a final status.
#: Only the refund ledger can (see :data:`LEDGER_TRANSITIONS`): a refund that fails after
#: it succeeded gives its money back, so a refunded payment is refundable again.
FINAL_PAYMENT_STATUSES = frozenset(s for s, targets in PAYMENT_TRANSITIONS.items() if not targets)

#: Statuses in which the customer has not paid yet and the provider may still move.
IN_FLIGHT_PAYMENT_STATUSES = frozenset({P.PENDING, P.REQUIRES_ACTION, P.PROCESSING})

#: Statuses in which money was captured.
PAID_STATUSES = frozenset({P.SUCCEEDED, P.PARTIALLY_REFUNDED, P.REFUNDED})

#: The moves of the refund ledger: once money was captured, the status is what
#: :func:`status_after_refund` makes of the amounts. A refund that succeeds moves a
#: payment forward; one that fails after it succeeded gave its money back, and the
#: payment goes back to what is really refunded. Only a change of the refunded amount
#: makes these moves: a provider's report about the payment itself never does (a
#: Stripe PaymentIntent stays ``succeeded`` whatever was refunded).
LEDGER_TRANSITIONS: Mapping[PaymentStatus, frozenset[PaymentStatus]] = MappingProxyType(
    {
        P.SUCCEEDED: frozenset({P.PARTIALLY_REFUNDED, P.REFUNDED}),
        P.PARTIALLY_REFUNDED: frozenset({P.SUCCEEDED, P.PARTIALLY_REFUNDED, P.REFUNDED}),
        P.REFUNDED: frozenset({P.SUCCEEDED, P.PARTIALLY_REFUNDED}),
    }
)

R = RefundStatus

REFUND_TRANSITIONS: Mapping[RefundStatus, frozenset[RefundStatus]] = MappingProxyType(
    {
        R.PENDING: frozenset({R.SUCCEEDED, R.FAILED, R.CANCELED}),
        # Stripe: a refund can fail after it succeeded (a closed card account).
        R.SUCCEEDED: frozenset({R.FAILED}),
        R.FAILED: frozenset(),
        R.CANCELED: frozenset(),
    }
)

#: Refund statuses that hold money: they count against what is left to refund.
REFUND_RESERVING_STATUSES = frozenset({R.PENDING, R.SUCCEEDED})

#: Dispute statuses whose amount the provider has taken back (or holds): a refund cannot
#: give that money to the customer a second time. A won dispute returns it; an inquiry
#: that closed without a chargeback never took it.
DISPUTE_WITHDRAWING_STATUSES = frozenset(
    {DisputeStatus.OPEN, DisputeStatus.UNDER_REVIEW, DisputeStatus.LOST}
)


def can_transition(
    current: PaymentStatus | str, new: PaymentStatus | str, *, ledger: bool = False
) -> bool:
    """Whether a payment may move from ``current`` to ``new``.

    ``ledger``: the move follows a change of the refunded amount
    (:data:`LEDGER_TRANSITIONS`), not an operation or a report of the payment.
    """
    current, new = PaymentStatus(current), PaymentStatus(new)
    if ledger and new in LEDGER_TRANSITIONS.get(current, frozenset()):
        return True
    return new in PAYMENT_TRANSITIONS[current]


def is_stale(current: PaymentStatus | str, new: PaymentStatus | str) -> bool:
    """Whether ``new`` describes an earlier point of the payment than ``current``.

    A stale update is recorded and ignored, never applied and never an error.
    """
    current, new = PaymentStatus(current), PaymentStatus(new)
    if new == current or can_transition(current, new):
        return False
    return current in FINAL_PAYMENT_STATUSES or PAYMENT_RANK[new] < PAYMENT_RANK[current]


def can_transition_refund(current: RefundStatus | str, new: RefundStatus | str) -> bool:
    """Whether a refund may move from ``current`` to ``new``."""
    return RefundStatus(new) in REFUND_TRANSITIONS[RefundStatus(current)]


def status_after_refund(amount_captured: int, amount_refunded: int) -> PaymentStatus:
    """The status of a captured payment of which ``amount_refunded`` is refunded now.

    It goes down as well as up: a refund that failed after it succeeded is no
    longer counted (see :data:`LEDGER_TRANSITIONS`).
    """
    if amount_refunded <= 0:
        return P.SUCCEEDED
    if amount_refunded >= amount_captured:
        return P.REFUNDED
    return P.PARTIALLY_REFUNDED


__all__ = [
    "DISPUTE_WITHDRAWING_STATUSES",
    "FINAL_PAYMENT_STATUSES",
    "IN_FLIGHT_PAYMENT_STATUSES",
    "LEDGER_TRANSITIONS",
    "PAID_STATUSES",
    "PAYMENT_RANK",
    "PAYMENT_TRANSITIONS",
    "REFUND_RESERVING_STATUSES",
    "REFUND_TRANSITIONS",
    "CaptureMethod",
    "DisputeStatus",
    "PaymentStatus",
    "RefundStatus",
    "can_transition",
    "can_transition_refund",
    "is_stale",
    "status_after_refund",
]
