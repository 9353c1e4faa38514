"""The outbox: post-commit signals and emails, delivered exactly once.

Services write a :class:`~django_paygate.models.Notification` row in the same
transaction as the change that deserves it. After commit, the row's id goes to
the :func:`~django_paygate.tasks.deliver_notifications` task. Delivery first
*claims* the row with a conditional ``UPDATE`` (only one worker can win it),
sends the post-commit signal once (``send_robust``: a failing receiver is
logged, the others still run), then the email. A failed email leaves the row
``pending`` with its error and a later ``next_attempt_at`` (exponential
backoff); ``manage.py paygate_send_notifications`` drains what is due. A row
whose worker died while ``sending`` is claimed again once its lease expires.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from django_paygate.conf import paygate_settings
from django_paygate.models import Notification, get_payment_model
from django_paygate.signals import POST_COMMIT_SIGNALS

logger = logging.getLogger("django_paygate")

#: How long a claimed row is reserved for its worker.
CLAIM_LEASE = timedelta(minutes=5)


def deliver_after_commit(notification_id: int) -> None:
    """Enqueue delivery of ``notification_id`` once the current transaction commits."""
    transaction.on_commit(partial(enqueue, [notification_id]), robust=True)


def enqueue(notification_ids: list[int]) -> None:
    from django_paygate.tasks import deliver_notifications

    try:
        deliver_notifications.using(backend=paygate_settings.TASK_BACKEND).enqueue(notification_ids)
    except Exception:  # the outbox keeps the rows; the drain command delivers them
        logger.exception("Could not enqueue notifications %s; they stay in the outbox.", notification_ids)


def _due() -> Q:
    now = timezone.now()
    return Q(status=Notification.Status.PENDING) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    ) | Q(status=Notification.Status.SENDING, next_attempt_at__lte=now)


def claim(notification_id: int) -> bool:
    """Take ``notification_id`` for this worker; ``False`` if another has it or it is done."""
    return bool(
        Notification.objects.filter(_due(), pk=notification_id).update(
            status=Notification.Status.SENDING,
            attempts=F("attempts") + 1,
            next_attempt_at=timezone.now() + CLAIM_LEASE,
        )
    )


def deliver(notification_ids: list[int]) -> dict[str, Any]:
    """Deliver the given outbox rows that are due; returns counts."""
    sent = failed = skipped = 0
    for pk in notification_ids:
        if not claim(pk):
            skipped += 1
            continue
        if _deliver_claimed(pk):
            sent += 1
        else:
            failed += 1
    return {"sent": sent, "failed": failed, "skipped": skipped}


def due_ids(limit: int | None = None) -> list[int]:
    ids = Notification.objects.filter(_due()).order_by("id").values_list("id", flat=True)
    return list(ids[:limit] if limit else ids)


def _deliver_claimed(pk: int) -> bool:
    notification = Notification.objects.select_related("payment", "refund", "dispute").get(pk=pk)
    if not notification.signal_sent:
        _send_signal(notification)
    try:
        from django_paygate.emails import send_notification_email

        send_notification_email(notification)
    except Exception as exc:
        _retry_later(notification, exc)
        return False
    Notification.objects.filter(pk=pk).update(
        status=Notification.Status.SENT, signal_sent=True, sent_at=timezone.now(),
        next_attempt_at=None, last_error="",
    )
    return True


def _send_signal(notification: Notification) -> None:
    signal = POST_COMMIT_SIGNALS[notification.kind]
    kwargs: dict[str, Any] = {"payment": notification.payment}
    if notification.refund_id:
        kwargs["refund"] = notification.refund
    if notification.dispute_id:
        kwargs["dispute"] = notification.dispute
    if notification.kind == Notification.Kind.PAYMENT_NEEDS_REVIEW:
        kwargs["reason"] = notification.payment.review_reason
    for receiver, result in signal.send_robust(sender=get_payment_model(), **kwargs):
        if isinstance(result, Exception):
            logger.error("Receiver %r of %s failed: %r", receiver, notification.kind, result,
                         exc_info=result)
    # Recorded at once: a signal is never sent twice, even if the email is retried.
    Notification.objects.filter(pk=notification.pk).update(signal_sent=True)
    notification.signal_sent = True


def _retry_later(notification: Notification, exc: Exception) -> None:
    attempts = notification.attempts
    give_up = attempts >= int(paygate_settings.NOTIFICATION_MAX_ATTEMPTS)
    delay = int(paygate_settings.NOTIFICATION_RETRY_DELAY) * 2 ** max(attempts - 1, 0)
    logger.warning("Notification %s (%s) failed on attempt %s: %s", notification.pk,
                   notification.kind, attempts, type(exc).__name__)
    Notification.objects.filter(pk=notification.pk).update(
        status=Notification.Status.FAILED if give_up else Notification.Status.PENDING,
        next_attempt_at=None if give_up else timezone.now() + timedelta(seconds=delay),
        last_error=f"{type(exc).__name__}: {exc}"[:2000],
    )
