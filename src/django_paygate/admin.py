"""The Django admin for payments, refunds, disputes, the audit trail, the inbox and the outbox.

Money rows are read-only here: nobody edits an amount or a status by hand.
Staff act through two actions that call the same code as everything else:
"Sync from provider" (:func:`django_paygate.services.sync_payment`) on
payments and "Replay" (:func:`django_paygate.webhooks.replay_event`) on
webhook events. Both need the model's *change* permission.

The payment model in use (``PAYGATE_PAYMENT_MODEL``) is registered with
:class:`PaymentAdmin` unless the project registered it first. To customise it,
subclass :class:`PaymentAdmin`, then ``admin.site.unregister(get_payment_model())``
and register your subclass.

Nothing secret is ever shown: stored webhook headers never hold a signature
(and any header whose name looks secret is hidden again here), and keys of
``provider_data`` that look secret are masked.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.db import transaction
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from django_paygate import money, services, webhooks
from django_paygate.exceptions import PaygateError
from django_paygate.models import (
    Dispute,
    Notification,
    PaymentEvent,
    Refund,
    WebhookEvent,
    get_payment_model,
)

#: Keys whose values are never displayed.
SECRET_WORDS = ("secret", "signature", "password", "token", "authorization", "cookie", "api_key")


def _looks_secret(key: str) -> bool:
    lowered = str(key).lower()
    return any(word in lowered for word in SECRET_WORDS)


def _pretty(value: Any) -> str:
    return format_html("<pre style='white-space: pre-wrap'>{}</pre>", value)


def _change_link(obj: Model | None) -> str:
    if obj is None:
        return "-"
    opts = obj._meta
    try:
        href = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return str(obj)
    return format_html('<a href="{}">{}</a>', href, obj)


def _may_change(request: HttpRequest, model: type[Model]) -> bool:
    opts = model._meta
    return bool(
        request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")
    )


class ReadOnlyAdminMixin:
    """Rows are written by services and webhooks only: the admin shows them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False


class RefundInline(ReadOnlyInline):
    model = Refund
    fk_name = "payment"
    fields = (
        "id",
        "amount_display",
        "status",
        "provider_refund_id",
        "source",
        "reason",
        "created_by",
        "created_at",
        "succeeded_at",
    )
    readonly_fields = fields

    @admin.display(description=_("amount"))
    def amount_display(self, obj: Refund) -> str:
        return money.format_money(obj.amount, obj.currency)


class PaymentEventInline(ReadOnlyInline):
    model = PaymentEvent
    fk_name = "payment"
    fields = (
        "created_at",
        "from_status",
        "to_status",
        "amount",
        "source",
        "note",
        "webhook_event",
        "refund",
        "user",
    )
    readonly_fields = fields
    ordering = ("created_at", "id")


class DisputeInline(ReadOnlyInline):
    model = Dispute
    fk_name = "payment"
    fields = ("provider_dispute_id", "amount", "currency", "reason", "status", "created_at")
    readonly_fields = fields


class ProviderCallsMixin:
    """For an admin whose actions call a provider (sync, replay).

    The services open their own short transactions around each provider call
    and never call out inside one. Under ``ATOMIC_REQUESTS`` the changelist,
    which runs the actions, would otherwise hold the request's transaction (and
    the row locks taken in it) across every call. Django's own list edits keep
    their transaction.
    """

    @transaction.non_atomic_requests
    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        return super().changelist_view(request, extra_context)  # type: ignore[misc]


class PaymentAdmin(ProviderCallsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "amount_display",
        "status",
        "provider",
        "provider_payment_id",
        "email",
        "needs_review",
        "created_at",
    )
    list_filter = ("status", "provider", "needs_review", "currency")
    search_fields = ("provider_payment_id", "email")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_select_related = False
    inlines = (RefundInline, DisputeInline, PaymentEventInline)
    actions = ("sync_from_provider",)
    exclude = ("provider_data",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = [f.name for f in self.model._meta.concrete_fields if f.name != "provider_data"]
        return [*fields, "amount_display", "provider_references"]

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj: Any) -> str:
        return money.format_money(obj.amount, obj.currency)

    @admin.display(description=_("provider references"))
    def provider_references(self, obj: Any) -> str:
        shown = {
            k: ("***" if _looks_secret(k) else v) for k, v in (obj.provider_data or {}).items()
        }
        return _pretty(json.dumps(shown, indent=2, sort_keys=True, default=str))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        try:
            pk = uuid.UUID(term)
        except ValueError:
            return results, may_have_duplicates
        return results | queryset.filter(pk=pk), may_have_duplicates

    def has_sync_permission(self, request: HttpRequest) -> bool:
        return _may_change(request, self.model)

    @admin.action(description=_("Sync from provider"), permissions=["sync"])
    def sync_from_provider(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        synced = 0
        for payment in queryset:
            try:
                services.sync_payment(payment)
            except PaygateError as exc:
                self.message_user(request, f"{payment.pk}: {exc}", messages.ERROR)
            else:
                synced += 1
        if synced:
            self.message_user(
                request, f"Synced {synced} payment(s) from their provider.", messages.SUCCESS
            )


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "amount_display",
        "status",
        "payment",
        "provider_refund_id",
        "source",
        "created_at",
    )
    list_filter = ("status", "source", "currency")
    search_fields = ("provider_refund_id",)
    list_select_related = ("payment",)
    date_hierarchy = "created_at"

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj: Refund) -> str:
        return money.format_money(obj.amount, obj.currency)


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "provider_dispute_id",
        "amount",
        "currency",
        "status",
        "reason",
        "payment",
        "created_at",
    )
    list_filter = ("status", "currency")
    search_fields = ("provider_dispute_id",)
    list_select_related = ("payment",)


@admin.register(PaymentEvent)
class PaymentEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "payment", "from_status", "to_status", "amount", "source", "note")
    list_filter = ("source", "to_status")
    list_select_related = ("payment",)
    date_hierarchy = "created_at"


@admin.register(WebhookEvent)
class WebhookEventAdmin(ProviderCallsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "event_id",
        "provider",
        "type",
        "status",
        "attempts",
        "received_at",
        "payment_link",
    )
    list_filter = ("provider", "status", "type")
    search_fields = ("event_id",)
    date_hierarchy = "received_at"
    ordering = ("-received_at",)
    actions = ("replay",)
    fields = (
        "provider",
        "event_id",
        "type",
        "status",
        "attempts",
        "error",
        "payment_link",
        "received_at",
        "processed_at",
        "safe_headers",
        "pretty_payload",
    )
    readonly_fields = fields

    @admin.display(description=_("payment"))
    def payment_link(self, obj: WebhookEvent) -> str:
        return _change_link(obj.payment)

    @admin.display(description=_("headers"))
    def safe_headers(self, obj: WebhookEvent) -> str:
        headers = {k: v for k, v in (obj.headers or {}).items() if not _looks_secret(k)}
        return _pretty(json.dumps(headers, indent=2, sort_keys=True))

    @admin.display(description=_("payload"))
    def pretty_payload(self, obj: WebhookEvent) -> str:
        try:
            text = json.dumps(json.loads(obj.payload), indent=2, sort_keys=True)
        except ValueError:
            text = obj.payload
        return _pretty(text)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return _may_change(request, self.model)

    @admin.action(description=_("Replay through the webhook pipeline"), permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        summary = webhooks.replay_events(queryset.order_by("received_at", "id"))
        level = messages.WARNING if summary.still_failing else messages.SUCCESS
        self.message_user(request, f"{summary}.", level)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "status",
        "payment",
        "attempts",
        "signal_sent",
        "created_at",
        "sent_at",
        "delivery_status",
    )
    list_filter = ("kind", "status", "signal_sent", "delivery_status")
    list_select_related = ("payment",)
    date_hierarchy = "created_at"


def register_payment_admin(site: admin.AdminSite = admin.site) -> None:
    """Register the payment model in use with :class:`PaymentAdmin` (once)."""
    model = get_payment_model()
    if not site.is_registered(model):
        site.register(model, PaymentAdmin)


register_payment_admin()


__all__ = [
    "DisputeAdmin",
    "NotificationAdmin",
    "PaymentAdmin",
    "PaymentEventAdmin",
    "PaymentEventInline",
    "RefundAdmin",
    "RefundInline",
    "WebhookEventAdmin",
    "register_payment_admin",
]
