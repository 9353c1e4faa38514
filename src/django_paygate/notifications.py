"""The outbox: post-commit signals and emails, delivered exactly once.

Services write a :class:`~django_paygate.models.Notification` row in the same
transaction as the change that deserves it, so a rolled-back change owes
nothing and a committed one is never forgotten. After commit, the row's id
goes to the :func:`~django_paygate.tasks.deliver_notifications` task (run at
once by Django's default immediate task backend, or by a worker), or, with
``PAYGATE["TASK_BACKEND"] = None``, waits for the drain command.

Delivery, in batches (:func:`drain`, :func:`deliver`), then one row after another:

1. **Claim** the rows: the drain takes the next due rows, up to
   ``PAYGATE["NOTIFICATION_BATCH_SIZE"]`` (50), the task the due rows among the ids it
   was given. On PostgreSQL one statement picks them with ``FOR UPDATE SKIP LOCKED``
   (rows another worker is claiming are skipped, not waited for), claims each one
   still due with a conditional ``UPDATE``, and reads them with their payment,
   refund, dispute and user; MariaDB and MySQL lock, claim and read them in one
   transaction; SQLite claims them one conditional ``UPDATE`` each, in one transaction.
   Every path commits once per batch, and the database lets exactly one worker win
   each row. The claim moves a row to ``sending`` for a lease and counts the
   attempt. In the webhook view (:func:`held`) with a backend that runs tasks
   in-process, the row is claimed in the transaction that writes it, and only read
   afterwards.
2. Send its **post-commit signal** once (``send_robust``: a failing receiver is
   logged, the other receivers still run) and, when an email follows, record
   ``signal_sent``, so a retried email never repeats the signal. The record
   also renews the lease, and only applies while the row is still this
   worker's claim. A signal without receivers is neither sent nor recorded;
   a signal-only kind is recorded by step 4.
3. Send its **email** (:func:`django_paygate.emails.send_notification_email`),
   only if the claim still held after the signal. The emails of a batch share one
   connection to the email backend (:class:`~django_paygate.emails.EmailBatch`).
4. Mark it ``sent``, right after its own email, before the next row starts: a crash
   repeats at most the one email in flight. If anything in 2-3 raised, the row goes
   back to ``pending`` with ``last_error`` and a later ``next_attempt_at``
   (exponential backoff from ``NOTIFICATION_RETRY_DELAY``); after
   ``NOTIFICATION_MAX_ATTEMPTS`` it is given up as ``failed``.

**The lease.** A claim of one row reserves it for ``PAYGATE["NOTIFICATION_LEASE"]``
(five minutes by default). A claim of several rows reserves them for twice the lease,
and its worker starts a row only within the first lease after the claim
(:attr:`Batch.start_by`; the first row always): every row it starts has at least a
whole lease left for its signal and email, as a row claimed alone has, whatever the
batch size and however slow the emails before it. The rows it could not start in
time, or when it is interrupted, it gives back: ``pending``, due at once, the attempt
uncounted. So the lease must be longer than the slowest receiver and than
``EMAIL_TIMEOUT``, as before; the batch size only bounds how many rows one worker
holds (a worker that dies leaves at most a batch for twice the lease).

``manage.py paygate_send_notifications`` drains what is due. A row whose
worker died while ``sending`` is claimed again once its lease has expired.
Every update after the claim applies only while the row is still this
worker's claim (same status and attempt number): a worker that outlived its
lease stops there, never sends the email the new owner sends, never
overwrites its outcome, and does not count the row as sent.

When an anymail ESP sends the email, the row keeps the ESP's message id, and the
ESP's tracking webhooks (delivered, bounced, complained, rejected…), which anymail
turns into its ``tracking`` signal, are recorded on the row by
:func:`record_tracking` (``delivery_status``, shown in the admin), so staff can
see that a receipt did not arrive.

Two cases repeat a step. A crash *between* a step and its record (after the
email backend accepted a message, before the row is marked sent) runs that
step again after the lease. One step that outlasts the lease (a receiver
that blocks for minutes, an email backend without a timeout) lets another
worker run it too: the lease must be longer than the slowest receiver and
than ``EMAIL_TIMEOUT``. Delivery is exactly once in every other case.

With ``PAYGATE["NOTIFICATION_SYNC_COMMIT"] = False`` (PostgreSQL; ``True`` by default)
the mark's commit does not wait for the WAL to reach the disk. Other workers see it at
once, but a crash of the database server (not of the worker) loses the marks of its last
moments, at most three times ``wal_writer_delay`` and never more than the marks since
the batch's claim: their emails are sent again once their lease lapses. See
docs/decisions.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from django_paygate import sql
from django_paygate.conf import paygate_settings
from django_paygate.emails import EMAIL_FOR_KIND, EmailBatch, send_notification_email
from django_paygate.models import Dispute, Notification, Refund, get_payment_model
from django_paygate.signals import POST_COMMIT_SIGNALS

logger = logging.getLogger("django_paygate")

Status = Notification.Status

#: The longest wait between two attempts, whatever the backoff says.
MAX_RETRY_DELAY = timedelta(hours=6)

#: Where a row read by :func:`sql.outbox`'s statements has the notification's id and its
#: attempt number (its own columns come first, in field order).
_FIELDS = [field.attname for field in Notification._meta.concrete_fields]
_ID, _ATTEMPTS = _FIELDS.index("id"), _FIELDS.index("attempts")


@dataclass
class Held:
    """The rows committed inside :func:`held`, waiting to be handed over by :func:`hand_over`."""

    #: Rows for the task backend to claim and deliver.
    pending: list[int] = field(default_factory=list)
    #: Rows claimed in the transaction that wrote them (attempt 1), delivered in this process.
    claimed: list[int] = field(default_factory=list)


#: While :func:`held` is active (in this thread or task): what it holds.
_held: ContextVar[Held | None] = ContextVar("django_paygate_held", default=None)


def deliver_after_commit(notification_id: int) -> None:
    """Enqueue delivery of ``notification_id`` once the current transaction commits.

    With ``PAYGATE["TASK_BACKEND"] = None`` nothing is enqueued: the row waits
    for ``manage.py paygate_send_notifications --loop``, the outbox's own worker.
    Inside :func:`held`, the committed row is kept for the caller to hand over; when
    the task backend runs tasks in this process (the immediate backend), the row is
    claimed at once, in the transaction that wrote it, so its claim costs no commit
    of its own.
    """
    from django_paygate.tasks import runs_in_process

    backend = paygate_settings.TASK_BACKEND
    if backend is None:
        return
    early = _held.get() is not None and runs_in_process(backend) and claim(notification_id)
    transaction.on_commit(partial(_committed, notification_id, claimed=early), robust=True)


@contextmanager
def held() -> Iterator[Held]:
    """Keep the rows committed inside the block from the task backend.

    The caller hands them over later with :func:`hand_over`: the webhook view does it
    when the server closes its response, after the answer was sent, so the provider
    never waits for an email. A row whose hand-over never comes (the process died)
    stays in the outbox, and the drain delivers it (a claimed one once its lease has
    lapsed).
    """
    rows = Held()
    token = _held.set(rows)
    try:
        yield rows
    finally:
        _held.reset(token)


def hand_over(rows: Held) -> None:
    """Give what :func:`held` kept to the task backend; on failure the rows wait for the drain."""
    pending, claimed = rows.pending, rows.claimed
    rows.pending, rows.claimed = [], []
    if pending:
        enqueue(pending)
    if claimed:
        enqueue(claimed, claimed=True)


def _committed(notification_id: int, *, claimed: bool) -> None:
    rows = _held.get()
    if rows is None:  # committed after the block (an outer transaction): deliver now
        enqueue([notification_id], claimed=claimed)
    else:
        (rows.claimed if claimed else rows.pending).append(notification_id)


def enqueue(notification_ids: list[int], *, claimed: bool = False) -> None:
    """Hand ``notification_ids`` to the delivery task; on failure they wait for the drain.

    ``claimed``: this process claimed them when it wrote them (see :func:`deliver`).
    """
    from django_paygate.tasks import deliver_notifications_on

    try:
        task = deliver_notifications_on(paygate_settings.TASK_BACKEND)
        if claimed:
            task.enqueue(notification_ids, claimed=True)
        else:
            task.enqueue(notification_ids)
    except Exception:  # the outbox keeps the rows; the drain command delivers them
        logger.exception(
            "Could not enqueue notifications %s; they stay in the outbox.", notification_ids
        )


def claim(notification_id: int) -> bool:
    """Take ``notification_id`` for this worker; ``False`` if another has it or it is done."""
    now = timezone.now()
    return _claim(notification_id, now, now + lease())


def _claim(pk: int, now: datetime, until: datetime) -> bool:
    """The one-row claim: ``pk`` is this worker's until ``until`` if it was due at ``now``."""
    params = [Status.SENDING, _when(until), pk, *_due_params(now)]
    with sql.database().cursor() as cursor:
        cursor.execute(sql.outbox().claim, params)
        return cursor.rowcount == 1


def lease() -> timedelta:
    """How long a claimed row is reserved for its worker before another may take it."""
    return timedelta(seconds=int(paygate_settings.NOTIFICATION_LEASE))


def batch_size() -> int:
    """How many rows one claim takes (``PAYGATE["NOTIFICATION_BATCH_SIZE"]``)."""
    return int(paygate_settings.NOTIFICATION_BATCH_SIZE)


@dataclass
class Batch:
    """The rows one claim took for this worker, oldest first, as the claim read them (each
    with its payment, refund, dispute and the payment's user)."""

    rows: list[Sequence[Any]]
    #: A row after the first is started only until then. The claim reserved every row for
    #: a whole lease after this moment, so each row has a lease for its signal and email.
    start_by: datetime

    def ids(self) -> list[int]:
        return [row[_ID] for row in self.rows]


def claim_batch(
    size: int | None = None, *, after: int | None = None, ids: Sequence[int] | None = None
) -> Batch:
    """Claim up to ``size`` due rows with ids above ``after``, oldest first, or (``ids``) the
    due rows among ``ids``, and read them; rows another worker holds are skipped.

    One statement on PostgreSQL: a ``MATERIALIZED`` CTE picks the ids (``FOR UPDATE SKIP
    LOCKED LIMIT …``), ``UPDATE … WHERE id IN (picked) AND <due> RETURNING`` claims them,
    joined with the related rows (:func:`sql.outbox`); a single id takes the one-row
    claim-and-read statement. With ``SKIP LOCKED`` elsewhere (MariaDB 10.6+, MySQL 8):
    lock the ids, claim them, read them, in one transaction. Without it (SQLite, which
    serialises writers): the due ids, then one conditional claim per row and the read,
    in one transaction. Every path commits once per batch.

    A claim of several rows reserves them for twice the lease: its worker starts them
    within the first (:attr:`Batch.start_by`) and gives back the ones it could not start.
    """
    size = batch_size() if size is None else size
    if ids is not None:
        ids = list(dict.fromkeys(ids))
        if not ids:
            return Batch([], timezone.now())
    now = timezone.now()
    several = len(ids) > 1 if ids is not None else size > 1
    start_by = now + lease() if several else now
    until = start_by + lease()
    statements = sql.outbox()
    db = sql.database()
    if statements.claim_one is not None and ids is not None and len(ids) == 1:
        # One row (a task's usual lot): the one-row claim, reading it in the same statement.
        with db.cursor() as cursor:
            cursor.execute(
                statements.claim_one, [Status.SENDING, _when(until), ids[0], *_due_params(now)]
            )
            return Batch(list(cursor.fetchall()), start_by)
    if statements.claim_due is not None and statements.claim_listed is not None:
        due = _due_params(now)
        if ids is None:
            statement = statements.claim_due
            picked = [*due, 0 if after is None else after, size]  # ids start at 1
        else:
            statement, picked = statements.claim_listed, [ids, *due]
        with db.cursor() as cursor:
            cursor.execute(statement, [*picked, Status.SENDING, _when(until), *due])
            return Batch(list(cursor.fetchall()), start_by)
    locking = db.features.has_select_for_update_skip_locked
    # Without locks the ids are read before the transaction: on SQLite, a transaction that
    # read first could not take the write lock while another worker writes.
    candidates = ids if ids is not None or locking else due_ids(size, after=after)
    if candidates == []:
        return Batch([], start_by)
    # One row is claimed by one conditional UPDATE and read after it, as it always was.
    single = candidates is not None and len(candidates) == 1
    with nullcontext() if single else transaction.atomic():
        if locking and not single:
            won = _claim_locked(size, after, candidates, now, until)
        else:
            won = [pk for pk in candidates or () if _claim(pk, now, until)]
        if not won:
            return Batch([], start_by)
        with db.cursor() as cursor:
            cursor.execute(statements.load_ids(len(won)), won)
            return Batch(list(cursor.fetchall()), start_by)


def _claim_locked(
    size: int, after: int | None, ids: list[int] | None, now: datetime, until: datetime
) -> list[int]:
    """Inside a transaction, with ``SKIP LOCKED``: lock the due ids (above ``after`` or
    among ``ids``), then claim them in one ``UPDATE``; the ids claimed."""
    statements = sql.outbox()
    due = _due_params(now)
    with sql.database().cursor() as cursor:
        if ids is None:
            cursor.execute(statements.due_ids_locked(), [*due, 0 if after is None else after, size])
        else:
            cursor.execute(statements.listed_ids_locked(len(ids)), [*ids, *due])
        locked = [row[0] for row in cursor.fetchall()]
        if not locked:
            return []
        cursor.execute(
            statements.claim_ids(len(locked)), [Status.SENDING, _when(until), *locked, *due]
        )
        if cursor.rowcount != len(locked):  # the rows are locked by this transaction
            raise DatabaseError(f"Claimed {cursor.rowcount} of the {len(locked)} rows locked.")
    return locked


def deliver(notification_ids: list[int], *, claimed: bool = False) -> dict[str, int]:
    """Deliver the given outbox rows that are due; counts of ``sent``, ``failed``, ``skipped``.

    Call it outside a transaction (as the task and the drain command do). A row
    another worker holds, one already delivered, or one whose lease this worker
    outlived (the worker that took it over delivers it) is skipped. The rows are
    claimed in batches of :func:`batch_size` (one statement each on PostgreSQL).

    ``claimed``: the rows were claimed (attempt 1) in the transaction that wrote them,
    by this process; they are read, not claimed again, and skipped if that claim is no
    longer current.
    """
    counts = {SENT: 0, FAILED: 0, SKIPPED: 0}
    if claimed:
        with EmailBatch() as mailer:
            for pk in notification_ids:
                row = _read_claimed(pk)
                counts[SKIPPED if row is None else _deliver_claimed(pk, row, mailer)] += 1
        return counts
    size = batch_size()
    todo = list(notification_ids)
    while todo:
        chunk, todo = todo[:size], todo[size:]
        batch = claim_batch(size, ids=chunk)
        counts[SKIPPED] += len(chunk) - len(batch.rows)
        done, given_back, _ = _deliver_batch(batch)
        _add(counts, done)
        todo = given_back + todo  # claimed again, with a lease of their own
    return counts


def drain(limit: int | None = None, *, size: int | None = None) -> dict[str, int]:
    """Deliver the rows due now, oldest first, in batches of ``size`` (default
    :func:`batch_size`), at most ``limit``; each row at most once in a pass.

    What ``manage.py paygate_send_notifications`` and the ``drain_notifications`` task run.
    """
    size = batch_size() if size is None else size
    totals = {SENT: 0, FAILED: 0, SKIPPED: 0}
    after: int | None = None
    while limit is None or sum(totals.values()) < limit:
        want = size if limit is None else min(size, limit - sum(totals.values()))
        batch = claim_batch(want, after=after)
        if not batch.rows:
            break
        # The next claim starts after the last row started: rows given back are claimed again.
        done, _, after = _deliver_batch(batch)
        _add(totals, done)
    return totals


def _add(totals: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        totals[key] += value


def _deliver_batch(batch: Batch) -> tuple[dict[str, int], list[int], int]:
    """Deliver the rows of ``batch`` one after another, each marked sent after its own
    email, through one email connection; the counts, the ids given back unstarted, and the
    id of the last row started.

    A row after the first is started only until :attr:`Batch.start_by`; the rest are given
    back (pending again, due at once), as they are when the worker is interrupted.
    """
    counts = {SENT: 0, FAILED: 0, SKIPPED: 0}
    rows = batch.rows
    if not rows:
        return counts, [], 0
    started = 0
    try:
        with EmailBatch() as mailer:
            for row in rows:
                if started and timezone.now() > batch.start_by:
                    break
                started += 1
                counts[_deliver_claimed(row[_ID], row, mailer)] += 1
    finally:
        given_back = _give_back(rows[started:])
    return counts, given_back, rows[started - 1][_ID]


def _give_back(rows: Sequence[Sequence[Any]]) -> list[int]:
    """Release claimed rows that were never started: pending, due now, the attempt uncounted;
    the ids released (a row whose claim is no longer this worker's is left alone)."""
    released = []
    for row in rows:
        pk, attempt = row[_ID], row[_ATTEMPTS]
        try:
            if _update(sql.outbox().release, [Status.PENDING, pk, Status.SENDING, attempt]):
                released.append(pk)
        except Exception:  # the lease lapses and the drain takes the row then
            logger.exception("Could not give back notification %s.", pk)
    return released


def _read_claimed(pk: int) -> Sequence[Any] | None:
    """The row with its related rows while it is still its first claim; else ``None``."""
    with sql.database().cursor() as cursor:
        cursor.execute(sql.outbox().load_first_claim, [pk, Status.SENDING, 1])
        row: Sequence[Any] | None = cursor.fetchone()
        return row


def due_ids(limit: int | None = None, *, after: int | None = None) -> list[int]:
    """Ids of the rows due now, oldest first, optionally only those above ``after``."""
    statement = sql.outbox().due_ids
    params = [*_due_params(timezone.now()), 0 if after is None else after]  # ids start at 1
    if limit:
        statement += " LIMIT %s"
        params.append(limit)
    with sql.database().cursor() as cursor:
        cursor.execute(statement, params)
        return [row[0] for row in cursor.fetchall()]


def requeue(*, waiting: bool = True, failed: bool = False, ids: Iterable[int] | None = None) -> int:
    """Make rows due now; how many.

    ``waiting``: pending rows still in their retry backoff. ``failed``: rows
    that were given up, with a fresh count of attempts. ``ids`` narrows both
    to those rows. A row being sent is never touched.
    """
    rows = Notification.objects.all()
    if ids is not None:
        rows = rows.filter(pk__in=list(ids))
    count = 0
    if waiting:
        count += rows.filter(status=Status.PENDING, next_attempt_at__gt=timezone.now()).update(
            next_attempt_at=None
        )
    if failed:
        count += rows.filter(status=Status.FAILED).update(
            status=Status.PENDING, attempts=0, next_attempt_at=None
        )
    return count


def outbox_counts() -> dict[str, int]:
    """How many rows are in each status (every status present, zeros included)."""
    counts = {status.value: 0 for status in Status}
    for row in Notification.objects.values("status").annotate(n=Count("id")).order_by():
        counts[row["status"]] = row["n"]
    return counts


SENT, FAILED, SKIPPED = "sent", "failed", "skipped"


def _deliver_claimed(pk: int, row: Sequence[Any], mailer: EmailBatch) -> str:
    """Deliver a row this worker just claimed: ``sent``, ``failed`` or ``skipped`` (lease lost).

    ``row`` is what the claim read; ``mailer`` sends the email (one connection per batch).
    """
    notification: Notification | None = None
    try:
        # Read with the claim: ``attempts`` is this claim's number while the lease holds.
        notification = _from_row(row)
        # The signal's record matters only if an email follows it (it is what a retried
        # email must not repeat); for a signal-only kind, marking the row sent records it.
        record = notification.kind in EMAIL_FOR_KIND
        if not notification.signal_sent and not _send_signal(notification, record=record):
            return SKIPPED
        send_notification_email(notification, mailer=mailer)
    except Exception as exc:
        _retry_later(pk, notification, exc)
        return FAILED
    params = [
        Status.SENT,
        True,
        _when(timezone.now()),
        notification.esp_message_id,
        pk,
        Status.SENDING,
        notification.attempts,
    ]
    return SENT if _update(_sent_statement(), params) else SKIPPED


def _sent_statement() -> str:
    """The mark: with ``NOTIFICATION_SYNC_COMMIT`` off, on PostgreSQL and outside a
    transaction, one whose commit does not wait for the WAL to reach the disk."""
    statements = sql.outbox()
    db = sql.database()
    if (
        statements.sent_async is None
        or paygate_settings.NOTIFICATION_SYNC_COMMIT
        or db.in_atomic_block  # the caller's transaction is not ours to change
        or not db.get_autocommit()
    ):
        return statements.sent
    return statements.sent_async


def _update(statement: str, params: list[Any]) -> bool:
    """Run one of the delivery's conditional updates; whether it changed the row."""
    with sql.database().cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount == 1


def _from_row(row: Sequence[Any]) -> Notification:
    """The notification and its related rows from the columns the outbox statements select."""
    statements = sql.outbox()
    parts: list[Sequence[Any]] = []
    for model in statements.loaded:
        parts.append(row[: sql.width(model)])
        row = row[sql.width(model) :]
    own, payment_row, refund_row, dispute_row, user_row = parts
    notification = sql.from_row(Notification, own)
    notification.payment = payment = sql.from_row(get_payment_model(), payment_row)
    if notification.refund_id is not None:
        notification.refund = sql.from_row(Refund, refund_row)
    if notification.dispute_id is not None:
        notification.dispute = sql.from_row(Dispute, dispute_row)
    if payment.user_id is not None:
        payment.user = sql.from_row(statements.loaded[-1], user_row)  # type: ignore[assignment]
    return notification


def _mine(pk: int, attempt: int | None) -> QuerySet[Notification]:
    """The row, only while it is still the claim numbered ``attempt``."""
    rows = Notification.objects.filter(pk=pk, status=Status.SENDING)
    return rows if attempt is None else rows.filter(attempts=attempt)


def _send_signal(notification: Notification, *, record: bool = True) -> bool:
    """Send the row's signal and, with ``record``, record it; whether the claim still held.

    A signal without receivers is not sent, nor recorded: nobody received it. Without
    ``record`` the caller's next update of the row records it.
    """
    signal = POST_COMMIT_SIGNALS[notification.kind]
    sender = get_payment_model()
    if not signal.has_listeners(sender):
        notification.signal_sent = True
        return True
    kwargs: dict[str, Any] = {"payment": notification.payment}
    if notification.refund_id:
        kwargs["refund"] = notification.refund
    if notification.dispute_id:
        kwargs["dispute"] = notification.dispute
    if notification.kind == Notification.Kind.PAYMENT_NEEDS_REVIEW:
        kwargs["reason"] = notification.payment.review_reason
    for receiver, result in signal.send_robust(sender=sender, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "Receiver %r of %s failed: %r",
                receiver,
                notification.kind,
                result,
                exc_info=result,
            )
    notification.signal_sent = True
    if not record:
        return True
    # Recorded at once: a signal is never sent twice, even if the email is retried. The
    # record renews the lease; it finds no row if another worker took the claim over.
    now = timezone.now()
    params = [True, _when(now + lease()), notification.pk, Status.SENDING, notification.attempts]
    return _update(sql.outbox().signal_sent, params)


def retry_delay(attempts: int) -> timedelta:
    """The wait after a failed attempt number ``attempts`` (1-based): doubling, capped."""
    first = int(paygate_settings.NOTIFICATION_RETRY_DELAY)
    seconds = first * 2 ** max(min(attempts, 32) - 1, 0)
    return min(timedelta(seconds=seconds), MAX_RETRY_DELAY)


def _retry_later(pk: int, notification: Notification | None, exc: Exception) -> None:
    attempt = notification.attempts if notification is not None else None
    kind = notification.kind if notification is not None else "?"
    give_up = attempt is not None and attempt >= int(paygate_settings.NOTIFICATION_MAX_ATTEMPTS)
    log = logger.error if give_up else logger.warning
    log(
        "Notification %s (%s) %s on attempt %s: %s",
        pk,
        kind,
        "given up" if give_up else "failed",
        attempt,
        type(exc).__name__,
        exc_info=exc,
    )
    _mine(pk, attempt).update(
        status=Status.FAILED if give_up else Status.PENDING,
        next_attempt_at=None if give_up else timezone.now() + retry_delay(attempt or 1),
        last_error=f"{type(exc).__name__}: {exc}"[:2000],
    )


# ---------------------------------------------------------------------------
# The delivery's statements, built once (the ORM would compile them for every row)
# ---------------------------------------------------------------------------


def _when(value: datetime) -> Any:
    return sql.prep(Notification, "next_attempt_at", value)


def _due_params(now: datetime) -> list[Any]:
    """The parameters of the "due now" condition of :func:`sql.outbox`'s statements."""
    return [Status.PENDING, _when(now), Status.SENDING, _when(now)]


# ---------------------------------------------------------------------------
# Delivery tracking: anymail's tracking webhooks, recorded on the rows they are about
# ---------------------------------------------------------------------------

#: anymail event types that say whether an email reached its recipient. Opens, clicks
#: and subscription changes say nothing more about that, and are not recorded.
TRACKED_EVENTS: frozenset[str] = frozenset(
    {"queued", "sent", "deferred", "delivered", "bounced", "rejected", "failed", "complained"}
)


def record_tracking(event: Any, esp_name: str = "") -> int:
    """Record an anymail tracking ``event`` on the notification whose email it is about;
    how many rows it changed (0: not ours, not a delivery event, or older than the one
    recorded).

    The email is found by the ESP message id stored when it was sent. An event that is
    older than the one already recorded (ESPs do not deliver in order) changes nothing.
    """
    event_type = str(getattr(event, "event_type", "") or "")
    message_id = getattr(event, "message_id", None)
    if event_type not in TRACKED_EVENTS or message_id in (None, ""):
        return 0
    when = getattr(event, "timestamp", None) or timezone.now()
    detail = " ".join(
        str(part)
        for part in (
            esp_name,
            getattr(event, "recipient", None),
            getattr(event, "reject_reason", None),
            getattr(event, "description", None),
            getattr(event, "mta_response", None),
        )
        if part
    )
    rows = Notification.objects.filter(esp_message_id=str(message_id)[:255]).filter(
        Q(delivery_updated_at__isnull=True) | Q(delivery_updated_at__lte=when)
    )
    return rows.update(
        delivery_status=event_type[:32], delivery_detail=detail[:2000], delivery_updated_at=when
    )


def _on_tracking(sender: Any, event: Any, esp_name: str = "", **kwargs: Any) -> None:
    record_tracking(event, esp_name)


def connect_tracking() -> bool:
    """Listen to anymail's ``tracking`` signal, when anymail is installed; whether it is."""
    try:
        from anymail.signals import tracking
    except ImportError:
        return False
    tracking.connect(_on_tracking, dispatch_uid="django_paygate_tracking")
    return True
