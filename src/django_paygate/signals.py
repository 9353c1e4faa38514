"""Every signal django-paygate sends, in one place.

``payment_status_changed`` is sent *inside* the transaction that changes the
payment: a receiver's writes (marking your order paid) commit or roll back
with the change, and an exception in a receiver rolls the change back.

All the others are sent *after commit*, exactly once per change, through the
outbox (:mod:`django_paygate.notifications`): a rolled-back change sends
nothing, a duplicate webhook sends nothing twice, and a failing receiver is
logged without stopping the other receivers or the payment. ``sender`` is
the payment model class.

Example::

    from django.dispatch import receiver
    from django_paygate.signals import payment_succeeded

    @receiver(payment_succeeded)
    def fulfil_order(sender, payment, **kwargs):
        Order.objects.filter(payment=payment).update(paid=True)
"""

from __future__ import annotations

from django.dispatch import Signal

#: Inside the transaction. Arguments: ``payment``, ``old_status``, ``new_status``,
#: ``source`` ("api", "webhook", "sync" or "admin").
payment_status_changed = Signal()

#: After commit. Argument: ``payment``.
payment_succeeded = Signal()
#: After commit. Arguments: ``payment`` (``failure_code`` / ``failure_message`` are set).
payment_failed = Signal()
#: After commit. Argument: ``payment``.
payment_canceled = Signal()
#: After commit, for manual capture. Argument: ``payment``.
payment_authorized = Signal()
#: After commit. Arguments: ``payment``, ``reason``.
payment_needs_review = Signal()
#: After commit. Arguments: ``payment``, ``refund``.
refund_succeeded = Signal()
#: After commit. Arguments: ``payment``, ``refund``.
refund_failed = Signal()
#: After commit. Arguments: ``payment``, ``dispute``.
dispute_opened = Signal()
#: After commit. Arguments: ``payment``, ``dispute``.
dispute_closed = Signal()

#: Notification kind -> the post-commit signal sent for it.
POST_COMMIT_SIGNALS: dict[str, Signal] = {
    "payment_succeeded": payment_succeeded,
    "payment_failed": payment_failed,
    "payment_canceled": payment_canceled,
    "payment_authorized": payment_authorized,
    "payment_needs_review": payment_needs_review,
    "refund_succeeded": refund_succeeded,
    "refund_failed": refund_failed,
    "dispute_opened": dispute_opened,
    "dispute_closed": dispute_closed,
}
