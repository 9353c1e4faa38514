"""The only doors to money.

Every function here follows the same five rules:

1. No database transaction is held open across a network call. The intent is
   written first (the payment row, or a ``pending`` refund that reserves its
   amount) and committed; the provider is called with an idempotency key
   derived from that row; the answer is applied in a second short transaction.
   A retry reuses the key, so nobody is charged or refunded twice.
2. Every status change goes through one function (:func:`.ledger.change`),
   under ``SELECT … FOR UPDATE`` on the payment row, checked against
   :data:`~django_paygate.states.PAYMENT_TRANSITIONS`, with an audit row and the
   ``payment_status_changed`` signal inside the transaction.
3. Money invariants are checked under that lock: captured <= amount, and
   refunded + pending refunds <= captured. The database enforces the first two
   again with check constraints.
4. Side effects (post-commit signals, emails) are owed through an outbox row in
   the same transaction and delivered after commit, exactly once.
5. A payment left between steps by a crash or a timeout is repaired by
   :func:`sync_payment` (and ``manage.py paygate_sync``).

The verbs live in :mod:`~.payments` (create, confirm, capture, cancel),
:mod:`~.refunds` and :mod:`~.recovery` (sync, the sweep of stuck payments);
one function, :func:`~.calls.call_provider`, carries what a provider call's
outcome means for all of them. :mod:`~.ledger` (the lock, the state change,
applying a provider's news) is what they and the webhook inbox build on; it is
not part of the public API.

Rows are written through :mod:`django_paygate.sql`: a status change writes the
payment, its audit row and its outbox row in one round trip on PostgreSQL.
Those writes call no ``save()`` and send no ``pre_save``/``post_save``; the
payment's signals here are the contract.
"""

from django_paygate.services.payments import (
    cancel_payment,
    capture_payment,
    check_payable,
    confirm_payment,
    create_payment,
    payment_client_data,
    payments_for,
)
from django_paygate.services.recovery import (
    SyncOutcome,
    find_stuck_payments,
    sync_payment,
    sync_stuck_payments,
)
from django_paygate.services.refunds import refund_payment, refundable_amount

__all__ = [
    "SyncOutcome",
    "cancel_payment",
    "capture_payment",
    "check_payable",
    "confirm_payment",
    "create_payment",
    "find_stuck_payments",
    "payment_client_data",
    "payments_for",
    "refund_payment",
    "refundable_amount",
    "sync_payment",
    "sync_stuck_payments",
]
