"""Payments, refunds, disputes, the webhook inbox, the audit trail and the outbox.

Amounts are integers in the currency's minor unit (see :mod:`money`). The
database itself refuses a negative amount, a capture above the amount and a
refund total above the capture, so no bug in code above it can invent money.

Rows are written by :mod:`django_paygate.services` and
:mod:`django_paygate.webhooks` only. Read them freely.
"""

from __future__ import annotations

import functools
import uuid
from typing import TYPE_CHECKING, Any, cast

import swapper
from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.core.signals import setting_changed
from django.db import models
from django.db.models import F, Q
from django.dispatch import receiver
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from django_paygate.states import CaptureMethod, DisputeStatus, PaymentStatus, RefundStatus

if TYPE_CHECKING:
    from collections.abc import Mapping


def current_language() -> str:
    """The active language (``settings.LANGUAGE_CODE`` when none is active)."""
    return translation.get_language() or settings.LANGUAGE_CODE


#: The labels of the states, as translatable strings (states.py knows nothing of Django).
STATE_LABELS: Mapping[str, Any] = {
    "Pending": _("Pending"),
    "Requires action": _("Requires action"),
    "Processing": _("Processing"),
    "Authorized": _("Authorized"),
    "Succeeded": _("Succeeded"),
    "Partially refunded": _("Partially refunded"),
    "Refunded": _("Refunded"),
    "Failed": _("Failed"),
    "Canceled": _("Canceled"),
    "Inquiry": _("Inquiry"),
    "Open": _("Open"),
    "Under review": _("Under review"),
    "Won": _("Won"),
    "Lost": _("Lost"),
    "Closed": _("Closed"),
    "Automatic": _("Automatic"),
    "Manual": _("Manual"),
}


def _choices(enum: Any) -> list[tuple[str, str]]:
    return [(member.value, STATE_LABELS.get(member.label, member.label)) for member in enum]


class Source(models.TextChoices):
    API = "api", _("API")
    WEBHOOK = "webhook", _("Webhook")
    SYNC = "sync", _("Sync")
    ADMIN = "admin", _("Admin")


class ReviewReason(models.TextChoices):
    """Why a payment needs a person: stored on it (``review_code``, the latest reason) so
    staff can filter by it; ``review_reason`` keeps every reason's details, one per line."""

    AMOUNT_MISMATCH = "amount_mismatch", _("The provider's amount or currency differs")
    UNRECORDED_REFUNDS = "unrecorded_refunds", _("Refunds at the provider not recorded here")
    SECOND_CAPTURE = "second_capture", _("Another attempt captured too")
    PAID_AFTER_END = "paid_after_end", _("Captured at the provider after it ended here")
    OVER_CAPTURED = "over_captured", _("More captured than authorized")
    PAYABLE_CHANGED = "payable_changed", _("Paid after its payable changed")
    CANCEL_FAILED = "cancel_failed", _("Its payable changed, and canceling it failed")
    REFUND_CURRENCY = "refund_currency", _("A refund in another currency")
    REFUND_OTHER_ATTEMPT = "refund_other_attempt", _("A refund of another attempt")
    REFUND_EXCEEDS = "refund_exceeds", _("A refund beyond what is left to refund")
    REFUND_REVIVED = "refund_revived", _("A refund succeeded after it had ended")
    REFUND_REVERSED = "refund_reversed", _("A refund failed after it had succeeded")
    KEY_REJECTED = "key_rejected", _("The provider rejected an idempotency key")
    UNRESOLVED = "unresolved", _("Left unresolved by sync")
    SYNC_FAILING = "sync_failing", _("Sync keeps failing")
    EVENT_UNAPPLIED = "event_unapplied", _("A webhook event cannot be applied")


class AbstractPayment(models.Model):
    """One attempt to take an amount of money from a customer.

    Subclass it to add fields (an FK to your own ``Order``) and point
    ``PAYGATE_PAYMENT_MODEL`` at the subclass, as you would with
    ``AUTH_USER_MODEL``.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    provider = models.CharField(_("provider"), max_length=64)
    provider_payment_id = models.CharField(
        _("provider payment id"), max_length=255, null=True, blank=True
    )
    #: Non-secret references the provider needs later (a Razorpay payment id, a Stripe charge id).
    provider_data = models.JSONField(_("provider references"), default=dict, blank=True)

    amount = models.BigIntegerField(_("amount (minor units)"))
    currency = models.CharField(_("currency"), max_length=3)
    amount_captured = models.BigIntegerField(_("captured (minor units)"), default=0)
    amount_refunded = models.BigIntegerField(_("refunded (minor units)"), default=0)
    status = models.CharField(
        _("status"),
        max_length=32,
        choices=_choices(PaymentStatus),
        default=PaymentStatus.PENDING.value,
    )
    capture_method = models.CharField(
        _("capture method"),
        max_length=16,
        choices=_choices(CaptureMethod),
        default=CaptureMethod.AUTOMATIC.value,
    )

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="%(app_label)s_%(class)ss",
    )
    email = models.EmailField(_("email"), blank=True)
    description = models.CharField(_("description"), max_length=1000, blank=True)
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    #: The language the customer's emails are written in: the active language when the
    #: payment was created (the request's, with LocaleMiddleware), else LANGUAGE_CODE.
    language = models.CharField(_("language"), max_length=35, blank=True, default=current_language)

    idempotency_key = models.CharField(
        _("idempotency key"), max_length=255, unique=True, null=True, blank=True
    )
    #: A digest of the parameters the idempotency key was first used with.
    request_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    #: While set and in the future, one caller is asking the provider to create this
    #: payment's object, and no other may (Razorpay orders have no idempotency key).
    creating_until = models.DateTimeField(null=True, blank=True, editable=False)

    failure_code = models.CharField(_("failure code"), max_length=128, blank=True)
    failure_message = models.TextField(_("failure message"), blank=True)

    needs_review = models.BooleanField(_("needs review"), default=False)
    review_reason = models.TextField(_("review reason"), blank=True)
    review_code = models.CharField(
        _("review code"), max_length=32, choices=ReviewReason.choices, blank=True, db_index=True
    )

    #: What this payment is for: the host's payable (see :mod:`django_paygate.payables`).
    payable_type = models.ForeignKey(
        "contenttypes.ContentType",
        verbose_name=_("payable type"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    payable_id = models.CharField(_("payable id"), max_length=255, blank=True, default="")
    payable = GenericForeignKey("payable_type", "payable_id")

    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    succeeded_at = models.DateTimeField(_("succeeded"), null=True, blank=True)
    canceled_at = models.DateTimeField(_("canceled"), null=True, blank=True)

    #: What the front end needs next; set by services, never stored.
    client_data: Mapping[str, Any] | None = None
    #: True when ``create_payment`` returned an existing payment for its idempotency key.
    replayed: bool = False
    #: The provider's next step for ``requires_action`` (3-D Secure); never stored.
    next_action: Mapping[str, Any] | None = None

    class Meta:
        abstract = True
        verbose_name = _("payment")
        verbose_name_plural = _("payments")
        ordering = ("-created_at",)
        # Staff actions of the admin (``paygate.refund_payment`` lives on Refund).
        permissions = [
            ("capture_payment", _("Can capture payments")),
            ("cancel_payment", _("Can cancel payments")),
            ("sync_payment", _("Can sync payments from their provider")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=("provider", "provider_payment_id"),
                name="%(app_label)s_%(class)s_provider_id_uniq",
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="%(app_label)s_%(class)s_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(amount_captured__gte=0, amount_captured__lte=F("amount")),
                name="%(app_label)s_%(class)s_captured_le_amount",
            ),
            models.CheckConstraint(
                condition=Q(amount_refunded__gte=0, amount_refunded__lte=F("amount_captured")),
                name="%(app_label)s_%(class)s_refunded_le_captured",
            ),
        ]
        # Unnamed: Django derives short names per concrete model (swapped ones too).
        indexes = [
            models.Index(fields=("status", "updated_at")),
            models.Index(fields=("created_at",)),
            models.Index(fields=("user", "created_at")),
            models.Index(fields=("needs_review", "created_at")),
            models.Index(fields=("payable_type", "payable_id")),
        ]

    def __str__(self) -> str:
        from django_paygate.money import format_money

        return f"{format_money(self.amount, self.currency)} {self.status} ({self.id})"

    @property
    def status_enum(self) -> PaymentStatus:
        return PaymentStatus(self.status)

    @property
    def amount_refundable(self) -> int:
        """Captured minus refunded; pending refunds are not subtracted here."""
        return self.amount_captured - self.amount_refunded


class Payment(AbstractPayment):
    class Meta(AbstractPayment.Meta):
        swappable = swapper.swappable_setting("paygate", "Payment")


PAYMENT_MODEL = swapper.get_model_name("paygate", "Payment")


class Refund(models.Model):
    """Money going back to the customer: a record, not just a number."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    payment = models.ForeignKey(
        PAYMENT_MODEL, verbose_name=_("payment"), on_delete=models.PROTECT, related_name="refunds"
    )
    provider_refund_id = models.CharField(
        _("provider refund id"), max_length=255, null=True, blank=True
    )
    amount = models.BigIntegerField(_("amount (minor units)"))
    currency = models.CharField(_("currency"), max_length=3)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=_choices(RefundStatus),
        default=RefundStatus.PENDING.value,
    )
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    failure_reason = models.CharField(_("failure reason"), max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    idempotency_key = models.CharField(
        _("idempotency key"), max_length=255, unique=True, null=True, blank=True
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    succeeded_at = models.DateTimeField(_("succeeded"), null=True, blank=True)

    #: True when ``refund_payment`` returned an existing refund for its idempotency key.
    replayed: bool = False

    class Meta:
        verbose_name = _("refund")
        verbose_name_plural = _("refunds")
        ordering = ("created_at",)
        permissions = [("refund_payment", _("Can refund payments"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="paygate_refund_amount_positive"
            ),
            models.UniqueConstraint(
                fields=("payment", "provider_refund_id"), name="paygate_refund_provider_id_uniq"
            ),
        ]

    def __str__(self) -> str:
        from django_paygate.money import format_money

        return f"Refund {format_money(self.amount, self.currency)} {self.status}"


class Dispute(models.Model):
    """A chargeback the customer's bank opened against a payment."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    payment = models.ForeignKey(
        PAYMENT_MODEL, verbose_name=_("payment"), on_delete=models.PROTECT, related_name="disputes"
    )
    provider_dispute_id = models.CharField(_("provider dispute id"), max_length=255)
    amount = models.BigIntegerField(_("amount (minor units)"))
    currency = models.CharField(_("currency"), max_length=3)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=_choices(DisputeStatus),
        default=DisputeStatus.OPEN.value,
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("dispute")
        verbose_name_plural = _("disputes")
        ordering = ("-created_at",)
        constraints = [
            models.UniqueConstraint(
                fields=("payment", "provider_dispute_id"), name="paygate_dispute_provider_id_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"Dispute {self.provider_dispute_id} {self.status}"


class WebhookEvent(models.Model):
    """The inbox: every verified webhook delivery, once per provider event id."""

    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        PROCESSED = "processed", _("Processed")
        IGNORED = "ignored", _("Ignored")
        FAILED = "failed", _("Failed")

    id = models.BigAutoField(primary_key=True)
    provider = models.CharField(_("provider"), max_length=64)
    event_id = models.CharField(_("event id"), max_length=255)
    type = models.CharField(_("type"), max_length=128, blank=True)
    #: The raw body, exactly as received (verified UTF-8).
    payload = models.TextField(_("payload"))
    #: A few non-secret headers (never the signature).
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RECEIVED
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=1)
    error = models.TextField(_("error"), blank=True)
    payment = models.ForeignKey(
        PAYMENT_MODEL,
        verbose_name=_("payment"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_events",
    )
    received_at = models.DateTimeField(_("received"), auto_now_add=True)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ("-received_at",)
        constraints = [
            models.UniqueConstraint(
                fields=("provider", "event_id"), name="paygate_webhookevent_uniq"
            ),
        ]
        indexes = [
            models.Index(fields=("status", "received_at"), name="paygate_webhook_status_idx"),
            models.Index(fields=("provider", "received_at"), name="paygate_webhook_provider_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.type or '?'} {self.event_id}"


class PaymentEvent(models.Model):
    """The audit trail: one row per status change or movement of money."""

    id = models.BigAutoField(primary_key=True)
    payment = models.ForeignKey(
        PAYMENT_MODEL, verbose_name=_("payment"), on_delete=models.PROTECT, related_name="events"
    )
    from_status = models.CharField(_("from"), max_length=32, blank=True)
    to_status = models.CharField(_("to"), max_length=32, blank=True)
    #: Money moved by this change (a capture, a refund), in minor units.
    amount = models.BigIntegerField(_("amount"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    note = models.CharField(_("note"), max_length=500, blank=True)
    webhook_event = models.ForeignKey(
        WebhookEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    refund = models.ForeignKey(
        Refund, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        verbose_name = _("payment event")
        verbose_name_plural = _("payment events")
        ordering = ("created_at", "id")

    def __str__(self) -> str:
        return f"{self.from_status or '-'} -> {self.to_status or '-'} ({self.source})"


class Notification(models.Model):
    """The outbox: a post-commit signal and email owed for one change.

    Written in the same transaction as the change, so a rolled-back change
    owes nothing and a committed one is never forgotten. Delivered after
    commit by a task (see :mod:`django_paygate.notifications`).
    """

    class Kind(models.TextChoices):
        PAYMENT_SUCCEEDED = "payment_succeeded", _("Payment succeeded")
        PAYMENT_FAILED = "payment_failed", _("Payment failed")
        PAYMENT_CANCELED = "payment_canceled", _("Payment canceled")
        PAYMENT_AUTHORIZED = "payment_authorized", _("Payment authorized")
        PAYMENT_NEEDS_REVIEW = "payment_needs_review", _("Payment needs review")
        REFUND_SUCCEEDED = "refund_succeeded", _("Refund succeeded")
        REFUND_FAILED = "refund_failed", _("Refund failed")
        DISPUTE_OPENED = "dispute_opened", _("Dispute opened")
        DISPUTE_CLOSED = "dispute_closed", _("Dispute closed")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Given up")

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    payment = models.ForeignKey(
        PAYMENT_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    # Indexed only where set (see Meta): most rows name neither, and every index is
    # written again by each update of the row (its claim, its mark).
    refund = models.ForeignKey(
        Refund, null=True, blank=True, on_delete=models.CASCADE, db_index=False
    )
    dispute = models.ForeignKey(
        Dispute, null=True, blank=True, on_delete=models.CASCADE, db_index=False
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    #: The post-commit signal went out (it is never sent twice, even if the email is retried).
    signal_sent = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    #: The id the email service gave the message (anymail's ``anymail_status.message_id``).
    esp_message_id = models.CharField(_("ESP message id"), max_length=255, blank=True)
    #: The latest tracking event the email service reported (anymail's event type:
    #: ``delivered``, ``bounced``, ``complained``, ``rejected``…); empty: none yet.
    delivery_status = models.CharField(_("delivery"), max_length=32, blank=True)
    delivery_detail = models.TextField(_("delivery detail"), blank=True)
    delivery_updated_at = models.DateTimeField(_("delivery reported"), null=True, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ("id",)
        indexes = [
            models.Index(fields=("status", "next_attempt_at"), name="paygate_notification_due_idx"),
            # Looked up by equality only (tracking events): no LIKE index beside it.
            models.Index(fields=("esp_message_id",), name="paygate_notif_esp_idx"),
            models.Index(
                fields=("refund",),
                condition=models.Q(refund__isnull=False),
                name="paygate_notif_refund_idx",
            ),
            models.Index(
                fields=("dispute",),
                condition=models.Q(dispute__isnull=False),
                name="paygate_notif_dispute_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} ({self.status})"


class DummyRemoteObject(models.Model):
    """The dummy provider's "remote side": what a real provider keeps on its own servers.

    Not a payment table. :class:`~django_paygate.providers.dummy.DummyProvider` stores its
    fake remote payments and idempotent answers here (with its default ``store`` option),
    so that restarts, several processes and ``manage.py shell`` see one remote service.
    Our payment rows are still written by services and webhooks only.
    """

    id = models.BigAutoField(primary_key=True)
    provider = models.CharField(_("provider"), max_length=64)
    kind = models.CharField(_("kind"), max_length=16)
    remote_id = models.CharField(_("remote id"), max_length=255)
    state = models.JSONField(_("state"), default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("dummy remote object")
        verbose_name_plural = _("dummy remote objects")
        constraints = [
            models.UniqueConstraint(
                fields=("provider", "kind", "remote_id"), name="paygate_dummyremote_uniq"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.kind} {self.remote_id}"


class _NoRows(models.Manager["Analytics"]):
    """Always empty, without a query: there is no table to read."""

    def get_queryset(self) -> models.QuerySet[Analytics]:
        return super().get_queryset().none()


class Analytics(models.Model):
    """No table: the admin's analytics dashboard (``admin/paygate/analytics/``) hangs here.

    Its one permission, ``paygate.view_analytics``, is who may see the dashboard.
    Code that walks every model and reads its rows finds none.
    """

    id = models.BigAutoField(primary_key=True)

    objects = _NoRows()

    class Meta:
        managed = False
        default_permissions = ("view",)
        verbose_name = _("analytics")
        verbose_name_plural = _("analytics")

    def __str__(self) -> str:
        return str(self._meta.verbose_name)


@functools.cache
def get_payment_model() -> type[Payment]:
    """The payment model in use (``PAYGATE_PAYMENT_MODEL``, else ``paygate.Payment``).

    Typed as :class:`Payment` for type checkers; a swapped model is any
    concrete subclass of :class:`AbstractPayment`, with the same fields.
    Looked up once: changing ``PAYGATE_PAYMENT_MODEL`` (``override_settings``)
    forgets it.
    """
    return cast("type[Payment]", swapper.load_model("paygate", "Payment"))


@receiver(setting_changed)
def _forget_payment_model(*, setting: str, **kwargs: Any) -> None:
    if setting == "PAYGATE_PAYMENT_MODEL":
        get_payment_model.cache_clear()


#: The longest ``failure_message`` kept from a provider (the column itself is unbounded).
FAILURE_MESSAGE_LENGTH = 1000


def fit(model: type[models.Model], name: str, value: str) -> str:
    """``value`` cut to the ``max_length`` of ``model``'s field ``name``."""
    limit = _max_length(model, name)
    return value[:limit] if limit is not None and len(value) > limit else value


@functools.cache
def _max_length(model: type[models.Model], name: str) -> int | None:
    return getattr(model._meta.get_field(name), "max_length", None)


def fit_answer(answer: Any) -> Any:
    """A provider's answer (a payment, refund, dispute or event) with every text cut to the
    column it is stored in, so an adapter never needs to know a column's length.

    Ids are left whole: a cut id could name another object (the inbox refuses an event
    id that is too long).
    """
    from dataclasses import replace

    from django_paygate.providers.base import (
        ProviderDispute,
        ProviderEvent,
        ProviderPayment,
        ProviderRefund,
    )

    if isinstance(answer, ProviderPayment):
        return replace(
            answer,
            failure_code=fit(get_payment_model(), "failure_code", answer.failure_code),
            failure_message=answer.failure_message[:FAILURE_MESSAGE_LENGTH],
            refunds=tuple(fit_answer(refund) for refund in answer.refunds),
        )
    if isinstance(answer, ProviderRefund):
        return replace(answer, failure_reason=fit(Refund, "failure_reason", answer.failure_reason))
    if isinstance(answer, ProviderDispute):
        return replace(answer, reason=fit(Dispute, "reason", answer.reason))
    if isinstance(answer, ProviderEvent):
        return replace(
            answer,
            type=fit(WebhookEvent, "type", answer.type),
            payment=fit_answer(answer.payment),
            refund=fit_answer(answer.refund),
            dispute=fit_answer(answer.dispute),
        )
    return answer
