"""The webhook inbox: verify, store, deduplicate and apply provider events once.

One pipeline serves every provider::

    size cap -> provider verifies the signature over the raw body -> provider
    parses the event -> one transaction { claim the inbox row (unique provider
    + event id) and lock the payment -> apply through the services' state
    machine } -> 200

The database, not a cache, makes a delivery count once. The inbox row is
claimed with a single ``INSERT … ON CONFLICT … DO UPDATE … WHERE status IN
('received', 'failed') RETURNING id`` (PostgreSQL and SQLite): a first delivery
inserts it; a delivery of an event that already failed takes it back for
another attempt; a duplicate of a processed or ignored event gets no row back
and stops there, after that one statement. Concurrent copies of one event wait
for the first to commit, then see it processed. Other databases use a
savepoint and ``IntegrityError``, which costs one statement more.

The row is written in its final state (processed, or ignored for an unmapped
type) with the payment it is about, since the transaction either commits all
of it or rolls it back. On PostgreSQL the claim's statement also finds and
locks the payment (a ``SELECT … FOR UPDATE`` in its ``WITH`` clause), and the
services write the payment, its audit row and its outbox row in one more
(:mod:`django_paygate.sql`): a first delivery that changes a status costs two
data statements there, five elsewhere; a duplicate costs one (pinned by
tests/webhooks/test_budget.py). The outbox row is delivered after commit by
:mod:`django_paygate.notifications`, outside this budget.

A processing error rolls the whole transaction back; the event is then stored
as ``failed`` with the error, and answered 500 so the provider retries. An
event that arrives before it can be applied (a refund of a payment that is not
captured yet) is stored as ``failed`` too and answered 409: the provider
delivers it again later, by which time the event it depends on has arrived.
``manage.py paygate_replay_webhooks`` replays failed events through the same
code.

Nothing here logs a request body, a signature or a secret.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Max, Q, QuerySet
from django.utils import timezone
from django.utils.datastructures import CaseInsensitiveMapping

from django_paygate import sql
from django_paygate.conf import paygate_settings
from django_paygate.exceptions import PaygateError, UnknownProvider, WebhookVerificationError
from django_paygate.models import AbstractPayment, WebhookEvent, fit_answer, get_payment_model
from django_paygate.providers import get_provider
from django_paygate.providers.base import BaseProvider, ProviderEvent, body_event_id
from django_paygate.services import ledger
from django_paygate.states import (
    FINAL_PAYMENT_STATUSES,
    PAID_STATUSES,
    REFUND_RESERVING_STATUSES,
    PaymentStatus,
)

if TYPE_CHECKING:
    from django_paygate.models import Payment as AnyPayment

logger = logging.getLogger("django_paygate.webhooks")

Status = WebhookEvent.Status

#: Header names containing any of these words are never stored, whatever a provider asks.
SECRET_HEADER_WORDS = ("signature", "authorization", "secret", "token", "cookie", "key")
#: Longest header value kept on an inbox row.
MAX_HEADER_VALUE = 1000

PROCESSED = "processed"
IGNORED = "ignored"
DUPLICATE = "duplicate"
FAILED = "failed"
EARLY = "early"
REJECTED = "rejected"
UNAPPLIED = "unapplied"
#: Outcomes after which the event still waits for a successful delivery or replay.
NOT_DONE = frozenset({FAILED, EARLY, REJECTED, UNAPPLIED})


@dataclass(frozen=True)
class WebhookResult:
    """What the view answers: an HTTP status and a short, secret-free message.

    ``outcome`` is one of ``processed``, ``ignored``, ``duplicate``, ``failed``,
    ``early`` (stored as failed, to be delivered again), ``unapplied`` (refused
    by the state machine: stored as failed, the payment flagged for review,
    answered 200) and ``rejected`` (nothing stored); ``event_id`` is the inbox
    row's id when there is one.
    """

    status_code: int
    message: str
    event_id: int | None = None
    outcome: str = ""


class EventTooEarly(Exception):
    """The event depends on another one that has not arrived yet."""


def receive_webhook(alias: str, body: bytes, headers: Mapping[str, str]) -> WebhookResult:
    """Run one delivery through the pipeline. Never raises for bad input."""
    try:
        provider = get_provider(alias)
    except UnknownProvider:
        return WebhookResult(404, "Unknown provider.", outcome=REJECTED)
    if len(body) > max_body_size():
        return WebhookResult(413, "Payload too large.", outcome=REJECTED)
    headers = CaseInsensitiveMapping(dict(headers))
    try:
        provider.verify_webhook(body, headers)
        payload = body.decode("utf-8")
        event = provider.parse_webhook(body, headers)
        if not provider.event_id_signed:
            # An unsigned id is the sender's word: the same signed body is the same event.
            event = dataclasses.replace(event, event_id=body_event_id(body))
        payload = redacted_payload(provider, payload)
    except WebhookVerificationError as exc:
        return _reject(alias, str(exc)[:200])
    except UnicodeDecodeError:
        return _reject(alias, "The body is not valid UTF-8.")
    except Exception as exc:
        # A provider adapter that raises something else on hostile input is a
        # bug in the adapter; the delivery is still refused, never a 500.
        return _reject(alias, f"unexpected {type(exc).__name__} while verifying or parsing")
    return process_event(provider, event, payload, kept_headers(provider, headers))


def redacted_payload(provider: BaseProvider, payload: str) -> str:
    """The payload as it may be stored: the provider removes what must never be kept.

    Stripe's ``payment_intent.*`` events carry the intent's ``client_secret``;
    see :meth:`BaseProvider.redact_webhook_payload`.
    """
    return str(provider.redact_webhook_payload(payload))


def max_body_size() -> int:
    """``PAYGATE["WEBHOOK_MAX_BODY_SIZE"]`` in bytes."""
    return int(paygate_settings.WEBHOOK_MAX_BODY_SIZE)


def _reject(alias: str, reason: str) -> WebhookResult:
    logger.warning("Rejected %s webhook: %s", alias, reason)
    return WebhookResult(400, "Invalid webhook.", outcome=REJECTED)


def kept_headers(provider: BaseProvider, headers: Mapping[str, str]) -> dict[str, str]:
    """The headers worth storing on the inbox row: never a signature or a secret."""
    kept: dict[str, str] = {}
    for name in provider.webhook_headers_to_keep:
        lowered = name.lower()
        if any(word in lowered for word in SECRET_HEADER_WORDS):
            continue
        value = headers.get(name)
        if value is not None:
            kept[lowered] = storable_text(str(value))[:MAX_HEADER_VALUE]
    return kept


def storable_text(text: str) -> str:
    """``text`` as every database text column takes it: a NUL or a lone surrogate
    (``"\\ud800"`` in JSON, not UTF-8 at all; PostgreSQL refuses NUL in ``text``
    and ``jsonb``) becomes its escape ``\\u0000``, the rest is unchanged.

    A signed event is stored and applied whatever a customer wrote into it
    (Razorpay's notes come from the browser); escaping, not dropping, keeps two
    different event ids different.
    """
    if not sql.unstorable_text(text):
        return text
    return "".join(
        f"\\u{ord(char):04x}" if char == "\x00" or 0xD800 <= ord(char) <= 0xDFFF else char
        for char in text
    )


def storable(value: Any) -> Any:
    """``value`` (an event, and everything in it) with :func:`storable_text` applied to
    every string; the same object when there was nothing to change."""
    if isinstance(value, str):
        return storable_text(value)
    kind: type = type(value)
    checked = _stored_fields(kind)
    if checked is not None:
        changes = {}
        for name in checked:
            item = getattr(value, name)
            clean = storable(item)
            if clean is not item:
                changes[name] = clean
        return dataclasses.replace(value, **changes) if changes else value
    if isinstance(value, Mapping):
        pairs = [(storable(k), storable(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    if isinstance(value, (list, tuple)):
        items = [storable(v) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return type(value)(items)
    return value


@functools.cache
def _stored_fields(cls: type) -> tuple[str, ...] | None:
    """The fields of a dataclass that are stored, or ``None`` for any other type.

    ``client_data`` and ``next_action`` are for the browser, never stored.
    """
    if not dataclasses.is_dataclass(cls):
        return None
    return tuple(
        f.name for f in dataclasses.fields(cls) if f.name not in {"client_data", "next_action"}
    )


def process_event(
    provider: BaseProvider,
    event: ProviderEvent,
    payload: str,
    headers: Mapping[str, str],
    *,
    replay: bool = False,
) -> WebhookResult:
    """Store ``event`` in the inbox (once) and apply it; see the module docstring.

    Text no database column takes is escaped first (:func:`storable`): a
    verified event is never refused for what a customer wrote into it.
    """
    event, payload = fit_answer(storable(event)), storable_text(payload)
    if not event.event_id or len(event.event_id) > 255:
        return _reject(provider.alias, "The event id is missing or longer than 255 characters.")
    payment_id: Any = None
    try:
        with transaction.atomic():
            claimed = _claim(provider.alias, event, payload, headers, replay=replay)
            if claimed is None:
                return WebhookResult(200, "Duplicate event.", outcome=DUPLICATE)
            row_id, payment = claimed
            if not event.actionable:
                return WebhookResult(200, "Event ignored.", row_id, IGNORED)
            if payment is None:
                _ignore(row_id, "no matching payment")
                return WebhookResult(200, "Event ignored.", row_id, IGNORED)
            early = _too_early(payment, event)
            if early:
                raise EventTooEarly(early)
            payment_id = payment.pk
            row = WebhookEvent(pk=row_id, provider=provider.alias, event_id=event.event_id)
            ledger.apply_event(payment, event, webhook_event=row)
            return WebhookResult(200, "Event processed.", row_id, PROCESSED)
    except PaygateError as exc:
        # The state machine refused it: every delivery would be refused the same way,
        # so the provider is not made to retry. A person looks at the payment.
        logger.warning(
            "%s event %s cannot be applied (%s); the payment is flagged for review.",
            provider.alias,
            event.event_id,
            type(exc).__name__,
        )
        failed_id = _record_unapplied(
            provider.alias, event, payload, headers, exc, payment_id, replay=replay
        )
        if failed_id is None:
            return WebhookResult(500, "Event processing failed.", None, FAILED)
        return WebhookResult(200, "Event stored for review.", failed_id, UNAPPLIED)
    except EventTooEarly as exc:
        logger.info(
            "%s event %s is early (%s); the provider will deliver it again.",
            provider.alias,
            event.event_id,
            exc,
        )
        failed_id = _record_failure(provider.alias, event, payload, headers, exc, replay=replay)
        return WebhookResult(409, "Event arrived early; deliver it again later.", failed_id, EARLY)
    except Exception as exc:
        logger.exception("Processing %s event %s failed.", provider.alias, event.event_id)
        failed_id = _record_failure(provider.alias, event, payload, headers, exc, replay=replay)
        return WebhookResult(500, "Event processing failed.", failed_id, FAILED)


def _too_early(payment: AbstractPayment, event: ProviderEvent) -> str:
    """Why ``event`` cannot be applied to the locked ``payment`` yet ("" when it can).

    A refund that holds money (pending or succeeded) needs a captured
    payment: when its event overtakes the payment's own ``succeeded`` event,
    applying it now would drop the refund. Refusing it makes the provider
    deliver it again once the payment has caught up.
    """
    refund = event.refund
    if refund is None or refund.status not in REFUND_RESERVING_STATUSES:
        return ""
    status = PaymentStatus(payment.status)
    if status in PAID_STATUSES or status in FINAL_PAYMENT_STATUSES:
        # A final payment will never catch up (a canceled order the customer paid
        # anyway): waiting would only have the provider retry, then disable the
        # endpoint. The services flag what does not fit.
        return ""
    return f"refund {refund.provider_refund_id} for a {payment.status} payment"


def replay_event(webhook_event: WebhookEvent) -> WebhookResult:
    """Apply a stored event again through the same pipeline (no new signature check).

    The stored payload was verified when it arrived. The event is applied
    whatever its status; the services' state machine makes a second
    application of a processed event change nothing.
    """
    try:
        provider = get_provider(webhook_event.provider)
    except UnknownProvider:
        return WebhookResult(404, "Unknown provider.", webhook_event.pk, REJECTED)
    body = webhook_event.payload.encode("utf-8")
    headers = CaseInsensitiveMapping(dict(webhook_event.headers or {}))
    try:
        event = provider.parse_webhook(body, headers)
    except Exception as exc:
        logger.warning(
            "Cannot replay %s event %s: %s",
            webhook_event.provider,
            webhook_event.event_id,
            type(exc).__name__,
        )
        return WebhookResult(400, "The stored event cannot be parsed.", webhook_event.pk, REJECTED)
    # The stored row is the event, whatever id parsing the payload again would give.
    event = dataclasses.replace(event, event_id=webhook_event.event_id)
    return process_event(
        provider, event, webhook_event.payload, webhook_event.headers or {}, replay=True
    )


@dataclass
class ReplaySummary:
    """How a batch of replays went, by outcome."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, result: WebhookResult) -> None:
        self.counts[result.outcome] = self.counts.get(result.outcome, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def get(self, outcome: str) -> int:
        return self.counts.get(outcome, 0)

    @property
    def still_failing(self) -> int:
        return sum(self.get(outcome) for outcome in NOT_DONE)

    def __str__(self) -> str:
        parts = ", ".join(f"{n} {outcome}" for outcome, n in sorted(self.counts.items()))
        return f"{self.total} event(s) replayed" + (f": {parts}" if parts else "")


def replay_events(events: Iterable[WebhookEvent]) -> ReplaySummary:
    """Replay each event in turn (each in its own transaction)."""
    summary = ReplaySummary()
    for webhook_event in events:
        summary.add(replay_event(webhook_event))
    return summary


def select_events(
    *,
    ids: Iterable[str] = (),
    provider: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    statuses: Iterable[str] | None = (Status.FAILED,),
) -> QuerySet[WebhookEvent]:
    """Inbox rows to replay, oldest first.

    ``ids`` match the provider's event id or the row's own id; ``statuses``
    ``None`` means every status.
    """
    query = WebhookEvent.objects.all()
    ids = [str(i) for i in ids]
    if ids:
        by_id = Q(event_id__in=ids)
        numeric = [int(i) for i in ids if i.isascii() and i.isdigit()]  # not "²"
        if numeric:
            by_id |= Q(pk__in=numeric)
        query = query.filter(by_id)
    if provider:
        query = query.filter(provider=provider)
    if since is not None:
        query = query.filter(received_at__gte=since)
    if until is not None:
        query = query.filter(received_at__lt=until)
    if statuses is not None:
        query = query.filter(status__in=list(statuses))
    return query.order_by("received_at", "id")


def prune_events(
    *,
    older_than_days: int,
    include_failed: bool = False,
    dry_run: bool = False,
    batch_size: int = 1000,
) -> int:
    """Delete inbox rows received more than ``older_than_days`` ago; how many.

    Only ``processed`` and ``ignored`` rows go (and ``failed`` ones with
    ``include_failed``); ``received`` rows are never touched. Deleting is done
    in batches so no transaction grows large. A pruned event that a provider
    delivers again is processed again: keep more days than providers retry.
    """
    if older_than_days < 0:
        raise ValueError("older_than_days must not be negative.")
    statuses = [Status.PROCESSED, Status.IGNORED] + ([Status.FAILED] if include_failed else [])
    cutoff = timezone.now() - timedelta(days=older_than_days)
    query = WebhookEvent.objects.filter(status__in=statuses, received_at__lt=cutoff)
    if dry_run:
        return query.count()
    deleted = 0
    while True:
        with transaction.atomic():
            # Rows a delivery or a replay holds are left for the next run: it may be
            # writing an audit row that points at its event.
            mine = query.select_for_update(skip_locked=True).order_by("id")
            batch = list(mine.values_list("id", flat=True)[:batch_size])
            if not batch:
                return deleted
            WebhookEvent.objects.filter(pk__in=batch).delete()
        deleted += len(batch)


def health(*, details: bool) -> tuple[dict[str, Any], bool]:
    """The health endpoint's body, and whether the database answered.

    With ``details``: per provider alias, when its last event arrived and how
    many of its events are ``failed``.
    """
    try:
        sql.ping()
        database = True
    except Exception:
        logger.exception("Health check: the database did not answer.")
        database = False
    body: dict[str, Any] = {"status": "ok" if database else "unavailable", "database": database}
    if database and details:
        rows = (
            WebhookEvent.objects.order_by()
            .values("provider")
            .annotate(
                last_event_at=Max("received_at"),
                failed=Count("id", filter=Q(status=Status.FAILED)),
            )
        )
        providers: dict[str, dict[str, Any]] = {
            alias: {"last_event_at": None, "failed_events": 0}
            for alias in paygate_settings.PROVIDERS
        }
        for row in rows:
            last = row["last_event_at"]
            providers[row["provider"]] = {
                "last_event_at": last.isoformat() if last else None,
                "failed_events": row["failed"],
            }
        body["providers"] = providers
        body["failed_events"] = sum(p["failed_events"] for p in providers.values())
    return body, database


def _values(
    alias: str, event: ProviderEvent, payload: str, headers: Mapping[str, str]
) -> dict[str, Any]:
    """The inbox row as it is written: in its final state, since a failure rolls it back."""
    now = timezone.now()
    return {
        "provider": alias,
        "event_id": event.event_id,
        "type": event.type,  # made storable and cut to its column in process_event
        "payload": payload,
        "headers": dict(headers),
        "status": Status.PROCESSED if event.actionable else Status.IGNORED,
        "attempts": 1,
        "error": "" if event.actionable else "event type not handled",
        "received_at": now,
        "processed_at": now,
    }


def _native_upsert() -> bool:
    return sql.database().vendor in {"postgresql", "sqlite"}


def _claim(
    alias: str, event: ProviderEvent, payload: str, headers: Mapping[str, str], *, replay: bool
) -> tuple[int, AnyPayment | None] | None:
    """Claim the inbox row: its id and the payment, locked; ``None`` for a duplicate.

    The row is written in its final state (processed, or ignored for a type
    the provider does not map), since a failure rolls it back, and with the
    payment it is about. On PostgreSQL one statement finds and locks the
    payment and claims the row; elsewhere the lock is a second statement.
    """
    values = _values(alias, event, payload, headers)
    if not _native_upsert():
        return _claim_with_savepoint(alias, event, values, replay=replay)
    locking = sql.database().vendor == "postgresql"
    lookup = ledger.payment_lookup(alias, event, lock=locking) if event.actionable else None
    statement, params = _claim_statement(values, lookup, replay=replay, locking=locking)
    with sql.database().cursor() as cursor:
        cursor.execute(statement, params)
        row = cursor.fetchone()
    if row is None:
        return None  # a duplicate of a processed or ignored event
    row_id, payment_id = int(row[0]), row[1]
    if payment_id is None:
        return row_id, None
    if locking:
        return row_id, sql.from_row(get_payment_model(), row[1:])
    return row_id, ledger.lock_payment(payment_id)


def _claim_statement(
    values: dict[str, Any],
    lookup: tuple[str, list[Any]] | None,
    *,
    replay: bool,
    locking: bool,
) -> tuple[str, list[Any]]:
    """The claim's SQL and parameters.

    It returns the row's id and the payment's id; with ``locking``, the
    payment is found and locked first (``WITH p``) and its whole row is
    returned after the inbox row's id.
    """
    columns = tuple(values)
    params = [sql.prep(WebhookEvent, name, value) for name, value in values.items()]
    if lookup is None:
        return sql.inbox_claim(columns, replay, payment=None), params
    lookup_sql, lookup_params = lookup
    if not locking:
        return sql.inbox_claim(columns, replay, payment=f"({lookup_sql})"), [
            *params,
            *lookup_params,
        ]
    return sql.inbox_claim_locking(columns, replay, lookup_sql), [*lookup_params, *params]


def _claim_with_savepoint(
    alias: str, event: ProviderEvent, values: dict[str, Any], *, replay: bool
) -> tuple[int, AnyPayment | None] | None:
    """:func:`_claim` for databases without ``INSERT … ON CONFLICT … RETURNING``."""
    payment: AnyPayment | None = None
    lookup = ledger.payment_lookup(alias, event, lock=True) if event.actionable else None
    if lookup:
        with sql.database().cursor() as cursor:
            cursor.execute(*lookup)
            found = cursor.fetchone()
        payment = sql.from_row(get_payment_model(), found) if found else None
    fields = {**values, "payment": payment}
    try:
        with transaction.atomic():
            return WebhookEvent.objects.create(**fields).pk, payment
    except IntegrityError:
        existing = WebhookEvent.objects.select_for_update().get(
            provider=alias, event_id=event.event_id
        )
        if not replay and existing.status not in (Status.RECEIVED, Status.FAILED):
            return None
        existing.attempts += 1
        for name in ("status", "error", "processed_at", "payment"):
            setattr(existing, name, fields[name])
        existing.save(update_fields=["attempts", "status", "error", "processed_at", "payment"])
        return existing.pk, payment


def _ignore(row_id: int, reason: str) -> None:
    WebhookEvent.objects.filter(pk=row_id).update(status=Status.IGNORED, error=reason)


def _record_unapplied(
    alias: str,
    event: ProviderEvent,
    payload: str,
    headers: Mapping[str, str],
    exc: BaseException,
    payment_id: Any,
    *,
    replay: bool,
) -> int | None:
    """Store a refused event as ``failed`` and flag its payment for review, at once."""
    try:
        with transaction.atomic():
            row_id = _record_failure(alias, event, payload, headers, exc, replay=replay)
            if row_id is None:
                raise RuntimeError("the failure could not be recorded")
            WebhookEvent.objects.filter(pk=row_id).update(payment_id=payment_id)
            ledger.review_unapplied_event(
                payment_id, WebhookEvent(pk=row_id, provider=alias, event_id=event.event_id), exc
            )
            return row_id
    except Exception:  # the database itself is down: the provider will retry
        logger.exception("Could not flag the payment of %s event %s.", alias, event.event_id)
        return None


def _record_failure(
    alias: str,
    event: ProviderEvent,
    payload: str,
    headers: Mapping[str, str],
    exc: BaseException,
    *,
    replay: bool = False,
) -> int | None:
    """Store the event as ``failed`` with ``exc`` (its transaction was rolled back).

    A concurrent copy of the event may have been processed in the meantime:
    a processed or ignored row is then left alone (unless this was a replay).
    """
    error = storable_text(f"{type(exc).__name__}: {exc}")[:2000]
    try:
        with transaction.atomic():
            row, created = WebhookEvent.objects.get_or_create(
                provider=alias,
                event_id=event.event_id,
                defaults={
                    "type": event.type,  # made storable and cut to its column in process_event
                    "payload": payload,
                    "headers": dict(headers),
                    "status": Status.FAILED,
                    "error": error,
                },
            )
            if not created:
                rows = WebhookEvent.objects.filter(pk=row.pk)
                if not replay:
                    rows = rows.filter(status__in=[Status.RECEIVED, Status.FAILED])
                rows.update(
                    status=Status.FAILED,
                    error=error,
                    attempts=F("attempts") + 1,
                    processed_at=None,
                )
            return row.pk
    except Exception:  # the database itself is down: the provider will retry
        logger.exception("Could not record the failure of %s event %s.", alias, event.event_id)
        return None
