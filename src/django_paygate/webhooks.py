"""The webhook inbox: verify, store, deduplicate and apply provider events once.

One pipeline serves every provider::

    size cap -> provider verifies the signature over the raw body -> provider
    parses the event -> one transaction { claim the inbox row (unique provider
    + event id) -> lock the payment -> apply through the services' state
    machine -> mark the inbox row } -> 200

The database, not a cache, makes a delivery count once. The inbox row is
claimed with a single ``INSERT … ON CONFLICT … DO UPDATE … WHERE status IN
('received', 'failed') RETURNING id`` (PostgreSQL and SQLite): a first delivery
inserts it; a delivery of an event that already failed takes it back for
another attempt; a duplicate of a processed or ignored event gets no row back
and stops there, after that one statement. Concurrent copies of one event wait
on the unique index for the first to commit, then see it processed. Other
databases use a savepoint and ``IntegrityError``, which costs one statement
more.

A processing error rolls the whole transaction back; the event is then stored
as ``failed`` with the error, and answered 500 so the provider retries.
``manage.py paygate_replay_webhooks`` replays failed events through the same
code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.datastructures import CaseInsensitiveMapping

from django_paygate import services
from django_paygate.conf import paygate_settings
from django_paygate.exceptions import UnknownProvider, WebhookVerificationError
from django_paygate.models import WebhookEvent
from django_paygate.providers import get_provider
from django_paygate.providers.base import BaseProvider, ProviderEvent

logger = logging.getLogger("django_paygate.webhooks")

Status = WebhookEvent.Status


@dataclass(frozen=True)
class WebhookResult:
    """What the view answers: an HTTP status and a short, secret-free message."""

    status_code: int
    message: str
    event_id: int | None = None


def receive_webhook(alias: str, body: bytes, headers: Mapping[str, str]) -> WebhookResult:
    """Run one delivery through the pipeline. Never raises for bad input."""
    try:
        provider = get_provider(alias)
    except UnknownProvider:
        return WebhookResult(404, "Unknown provider.")
    if len(body) > int(paygate_settings.WEBHOOK_MAX_BODY_SIZE):
        return WebhookResult(413, "Payload too large.")
    headers = CaseInsensitiveMapping(dict(headers))
    try:
        provider.verify_webhook(body, headers)
        event = provider.parse_webhook(body, headers)
        payload = body.decode("utf-8")
    except (WebhookVerificationError, UnicodeDecodeError, ValueError, TypeError) as exc:
        logger.warning("Rejected %s webhook: %s", alias, _safe(exc))
        return WebhookResult(400, "Invalid webhook.")
    kept = {k: headers[k] for k in provider.webhook_headers_to_keep if k in headers}
    return process_event(provider, event, payload, kept)


def process_event(
    provider: BaseProvider,
    event: ProviderEvent,
    payload: str,
    headers: Mapping[str, str],
    *,
    replay: bool = False,
) -> WebhookResult:
    """Store ``event`` in the inbox (once) and apply it; see the module docstring."""
    try:
        with transaction.atomic():
            row_id = _claim(provider.alias, event, payload, headers, replay=replay)
            if row_id is None:
                return WebhookResult(200, "Duplicate event.")
            if not event.actionable:
                _finish(row_id, Status.IGNORED, error="event type not handled")
                return WebhookResult(200, "Event ignored.", row_id)
            payment = services.lock_payment_for_event(provider.alias, event)
            if payment is None:
                _finish(row_id, Status.IGNORED, error="no matching payment")
                return WebhookResult(200, "Event ignored.", row_id)
            row = WebhookEvent(pk=row_id, provider=provider.alias, event_id=event.event_id)
            services.apply_event(payment, event, webhook_event=row)
            _finish(row_id, Status.PROCESSED, payment=payment)
            return WebhookResult(200, "Event processed.", row_id)
    except Exception as exc:
        logger.exception("Processing %s event %s failed.", provider.alias, event.event_id)
        row_id = _record_failure(provider.alias, event, payload, headers, exc)
        return WebhookResult(500, "Event processing failed.", row_id)


def replay_event(webhook_event: WebhookEvent) -> WebhookResult:
    """Apply a stored event again through the same pipeline (no new signature check)."""
    provider = get_provider(webhook_event.provider)
    body = webhook_event.payload.encode("utf-8")
    headers = CaseInsensitiveMapping(dict(webhook_event.headers or {}))
    event = provider.parse_webhook(body, headers)
    return process_event(provider, event, webhook_event.payload, webhook_event.headers or {}, replay=True)


def _safe(exc: BaseException) -> str:
    """An exception's class and message, cut short (never the body or the header)."""
    if isinstance(exc, WebhookVerificationError):
        return str(exc)[:200]
    return type(exc).__name__


def _values(alias: str, event: ProviderEvent, payload: str, headers: Mapping[str, str],
            status: str, error: str = "") -> dict[str, Any]:
    headers_field = WebhookEvent._meta.get_field("headers")
    return {
        "provider": alias,
        "event_id": event.event_id,
        "type": event.type,
        "payload": payload,
        "headers": headers_field.get_db_prep_save(dict(headers), connection),
        "status": status,
        "attempts": 1,
        "error": error,
        "received_at": timezone.now(),
    }


def _upsert_sql(columns: list[str], update: str, where: str) -> str:
    qn = connection.ops.quote_name
    table = qn(WebhookEvent._meta.db_table)
    cols = ", ".join(qn(c) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    return (
        f"INSERT INTO {table} ({cols}) VALUES ({marks}) "
        f"ON CONFLICT ({qn('provider')}, {qn('event_id')}) DO UPDATE SET {update} "
        f"{where} RETURNING {qn('id')}"
    )


def _native_upsert() -> bool:
    return connection.vendor in {"postgresql", "sqlite"}


def _claim(alias: str, event: ProviderEvent, payload: str, headers: Mapping[str, str], *,
           replay: bool) -> int | None:
    """The inbox row's id if this delivery must be processed, ``None`` for a duplicate."""
    values = _values(alias, event, payload, headers, Status.RECEIVED)
    retryable = [Status.RECEIVED.value, Status.FAILED.value]
    if _native_upsert():
        qn = connection.ops.quote_name
        table = qn(WebhookEvent._meta.db_table)
        status, attempts = qn("status"), qn("attempts")
        where = "" if replay else f"WHERE {table}.{status} IN ('{retryable[0]}', '{retryable[1]}')"
        sql = _upsert_sql(
            list(values),
            f"{attempts} = {table}.{attempts} + 1, {status} = '{Status.RECEIVED.value}'",
            where,
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, list(values.values()))
            row = cursor.fetchone()
        return int(row[0]) if row else None
    try:
        with transaction.atomic():
            return WebhookEvent.objects.create(**{**values, "headers": dict(headers)}).pk
    except IntegrityError:
        existing = WebhookEvent.objects.select_for_update().get(provider=alias, event_id=event.event_id)
        if not replay and existing.status not in retryable:
            return None
        existing.attempts += 1
        existing.status = Status.RECEIVED
        existing.save(update_fields=["attempts", "status"])
        return existing.pk


def _finish(row_id: int, status: str, *, payment: Any = None, error: str = "") -> None:
    WebhookEvent.objects.filter(pk=row_id).update(
        status=status, payment=payment, error=error, processed_at=timezone.now()
    )


def _record_failure(alias: str, event: ProviderEvent, payload: str, headers: Mapping[str, str],
                    exc: BaseException) -> int | None:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    try:
        with transaction.atomic():
            row, created = WebhookEvent.objects.get_or_create(
                provider=alias, event_id=event.event_id,
                defaults={"type": event.type, "payload": payload, "headers": dict(headers),
                          "status": Status.FAILED, "error": error},
            )
            if not created:
                WebhookEvent.objects.filter(pk=row.pk).update(
                    status=Status.FAILED, error=error, attempts=F("attempts") + 1
                )
            return row.pk
    except Exception:  # the database itself is down: the provider will retry
        logger.exception("Could not record the failure of %s event %s.", alias, event.event_id)
        return None
