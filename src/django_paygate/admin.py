"""The Django admin: the staff console for payments, refunds, disputes, the inbox and the outbox.

Money rows are read-only here: nobody edits an amount or a status by hand.
Staff act through pages and actions that call the same services as
everything else, each behind its permission, and each shows the service's own
message when it refuses:

* refund (``paygate.refund_payment``): an intermediate page with the amount
  (default: what is left) and a reason, then a confirmation naming the amount
  and the customer; the form carries an idempotency key, so submitting it
  twice refunds once (:func:`~django_paygate.services.refund_payment`);
* capture, full or partial, and cancel of an authorized payment
  (``<payment app>.capture_payment`` / ``cancel_payment``);
* sync from the provider (``<payment app>.sync_payment``), on one payment or
  on the selected ones;
* replay of webhook events and requeue of failed notifications (the model's
  *change* permission);
* CSV exports of the filtered payment and refund lists (*view* permission).

The audit trail records the staff member and ``source="admin"``.

The analytics dashboard (``admin/paygate/analytics/``, permission
``paygate.view_analytics``) shows :func:`django_paygate.analytics.payment_analytics`
with server-rendered SVG charts. Open disputes show in a banner on the
admin index (``AdminSite.index_template``, set only when the project has not
set one; otherwise put ``{% load paygate_admin %}{% paygate_dispute_alert %}``
in your own index template) and on the dashboard.

The payment model in use (``PAYGATE_PAYMENT_MODEL``) is registered with
:class:`PaymentAdmin` unless the project registered it first. To customise it,
subclass :class:`PaymentAdmin`, then ``admin.site.unregister(get_payment_model())``
and register your subclass.

Nothing secret is ever shown: stored webhook headers never hold a signature
(and any header whose name looks secret is hidden again here), and keys of
``provider_data`` that look secret are masked.
"""

from __future__ import annotations

import csv
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db import connections, transaction
from django.db.models import Model, Q, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from django_paygate import analytics, charts, money, notifications, services, webhooks
from django_paygate.conf import paygate_settings
from django_paygate.exceptions import InvalidAmount, PaygateError
from django_paygate.models import (
    Analytics,
    Dispute,
    Notification,
    PaymentEvent,
    Refund,
    Source,
    WebhookEvent,
    get_payment_model,
)
from django_paygate.states import PaymentStatus

#: Keys whose values are never displayed.
SECRET_WORDS = ("secret", "signature", "password", "token", "authorization", "cookie", "api_key")

#: A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

SHORT_ID = 8


def _looks_secret(key: str) -> bool:
    lowered = str(key).lower()
    return any(word in lowered for word in SECRET_WORDS)


def _pretty(value: Any) -> str:
    return format_html("<pre style='white-space: pre-wrap'>{}</pre>", value)


def _change_link(obj: Model | None, text: str | None = None) -> str:
    if obj is None:
        return "-"
    opts = obj._meta
    try:
        href = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return str(obj)
    return format_html('<a href="{}">{}</a>', href, text or obj)


def _may(request: HttpRequest, model: type[Model], action: str) -> bool:
    """``request.user`` holds ``<model's app>.<action>_<model>`` (or a custom codename)."""
    opts = model._meta
    codename = action if "_" in action else get_permission_codename(action, opts)
    return bool(request.user.has_perm(f"{opts.app_label}.{codename}"))


def _may_change(request: HttpRequest, model: type[Model]) -> bool:
    return _may(request, model, "change")


def short_id(value: Any) -> str:
    """The first characters of an id, the whole of it on hover."""
    text = str(value)
    return format_html('<span class="pg-id" title="{}">{}</span>', text, text[:SHORT_ID])


def clipped(value: Any, css: str = "pg-clip") -> str:
    """Text cut to its column by CSS (an ellipsis), the whole of it on hover."""
    if value in (None, ""):
        return "-"
    return format_html('<span class="{}" title="{}">{}</span>', css, value, value)


def status_badge(value: str, label: str) -> str:
    return format_html('<span class="pg-badge pg-badge--{}">{}</span>', value, label)


def _short_id_lookup(queryset: QuerySet[Any], prefix: str) -> Q:
    """The rows whose UUID primary key starts with the hex digits ``prefix``.

    A range of keys where UUIDs sort as their text (it uses the primary key's
    index); MariaDB's native UUID type sorts by its last groups first, so there
    the key's text is compared.
    """
    db = connections[queryset.db]
    if db.vendor == "mysql" and db.mysql_is_mariadb:  # type: ignore[attr-defined]
        return Q(**{"pk__startswith": prefix})
    low, high = uuid.UUID(prefix + "0" * 24), uuid.UUID(prefix + "f" * 24)
    return Q(pk__gte=low, pk__lte=high)


def short_time(value: Any) -> str:
    """``Dec 02 19:45`` (local time), the full timestamp on hover."""
    if value is None:
        return "-"
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S %Z"),
        local.strftime("%b %d %H:%M"),
    )


def csv_cell(value: Any) -> str:
    """A CSV cell a spreadsheet shows as text, never runs as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


class _Echo:
    """A file whose ``write`` returns the line (``csv.writer`` into a stream)."""

    def write(self, value: str) -> str:
        return value


def stream_csv(
    filename: str, header: list[str], rows: Iterable[Iterable[Any]]
) -> StreamingHttpResponse:
    """A ``StreamingHttpResponse`` of CSV lines, every cell through :func:`csv_cell`."""
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([csv_cell(cell) for cell in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def major(amount: int, currency: str) -> Decimal:
    """Minor units as a decimal in major units, with the currency's decimals."""
    return money.from_minor(amount, currency)


class ReadOnlyAdminMixin:
    """Rows are written by services and webhooks only: the admin shows them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ConsoleMedia:
    """The console's stylesheet (badges, highlighted rows, charts; light and dark)."""

    class Media:
        css = {"all": ("paygate/admin.css",)}


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


class CsvExportMixin:
    """An "Export CSV" button (the filtered list) and action (the selected rows)."""

    csv_filename = "export.csv"
    csv_header: tuple[str, ...] = ()

    def csv_rows(self, queryset: Iterable[Any]) -> Iterator[list[Any]]:
        raise NotImplementedError

    def csv_response(self, queryset: QuerySet[Any]) -> StreamingHttpResponse:
        return stream_csv(
            self.csv_filename, list(self.csv_header), self.csv_rows(queryset.iterator(2000))
        )

    @admin.action(description=_("Export the selected rows as CSV"), permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Any]) -> StreamingHttpResponse:
        return self.csv_response(queryset)

    def export_view(self, request: HttpRequest) -> HttpResponseBase:
        """The changelist's rows, filtered, searched and ordered as on the page."""
        model_admin: Any = self
        if not model_admin.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = model_admin.get_changelist_instance(request)
        except IncorrectLookupParameters:
            return HttpResponseRedirect("../?e=1")
        return self.csv_response(changelist.get_queryset(request))

    def csv_url(self) -> URLPattern:
        model_admin: Any = self
        opts = model_admin.model._meta
        return path(
            "export/",
            model_admin.admin_site.admin_view(self.export_view),
            name=f"{opts.app_label}_{opts.model_name}_export",
        )


class ClientNetworkFilter(admin.SimpleListFilter):
    """Payments whose client IP is in a network of the analytics (``198.51.100.0/24``)."""

    title = _("client network")
    parameter_name = "client_network"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # Only the value asked for: listing every network would scan the table.
        value = self.value()
        return [(value, value)] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        key = f"metadata__{analytics.CLIENT_IP_KEY}"
        if value.endswith(".0/24"):
            return queryset.filter(**{f"{key}__startswith": value.removesuffix("0/24")})
        return queryset.filter(**{key: value})


ACTION_TITLES = {
    "refund.html": _("Refund payment"),
    "capture.html": _("Capture payment"),
    "cancel.html": _("Cancel payment"),
}


class PaymentActionForm(forms.Form):
    """The fields every action page posts: an idempotency key and the confirmation."""

    key = forms.UUIDField(widget=forms.HiddenInput)
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)


class AmountForm(PaymentActionForm):
    """An amount in major units of the payment's currency, at most its decimals."""

    amount = forms.DecimalField(label=_("Amount"), min_value=Decimal(0), max_digits=20)

    def __init__(self, *args: Any, currency: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        places = money.exponent(currency)
        cast("forms.DecimalField", self.fields["amount"]).decimal_places = places
        self.fields["amount"].widget.attrs["step"] = str(Decimal(1).scaleb(-places))
        self.fields["amount"].help_text = _("In %(currency)s, with at most %(n)s decimals.") % {
            "currency": currency,
            "n": places,
        }

    def clean_amount(self) -> int:
        try:
            return money.to_minor(self.cleaned_data["amount"], self.currency)
        except InvalidAmount as exc:
            raise forms.ValidationError(str(exc)) from exc


class RefundForm(AmountForm):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Kept with the refund and in the audit trail."),
    )


class PaymentAdmin(
    ConsoleMedia, CsvExportMixin, ProviderCallsMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    list_display = (
        "short_id",
        "amount_display",
        "status_display",
        "provider_display",
        "customer",
        "created_display",
    )
    list_filter = (
        "status",
        "provider",
        "needs_review",
        "review_code",
        "currency",
        ClientNetworkFilter,
    )
    search_fields = ("provider_payment_id", "email")
    date_hierarchy = "created_at"
    ordering = ("-created_at",)
    list_select_related = False
    inlines = (RefundInline, DisputeInline, PaymentEventInline)
    actions = ("sync_from_provider", "export_csv")
    exclude = ("provider_data",)
    change_form_template = "admin/paygate/payment/change_form.html"
    change_list_template = "admin/paygate/export_change_list.html"
    csv_filename = "payments.csv"
    csv_header = (
        "id",
        "created_at",
        "status",
        "amount",
        "amount_captured",
        "amount_refunded",
        "currency",
        "provider",
        "provider_payment_id",
        "email",
        "user_id",
        "description",
        "failure_code",
        "needs_review",
        "review_code",
        "review_reason",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = [f.name for f in self.model._meta.concrete_fields if f.name != "provider_data"]
        return [*fields, "amount_display", "provider_references"]

    @admin.display(description=_("id"), ordering="id")
    def short_id(self, obj: Any) -> str:
        return short_id(obj.pk)

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj: Any) -> str:
        return money.format_money(obj.amount, obj.currency)

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, obj: Any) -> str:
        badge = status_badge(obj.status, obj.get_status_display())
        if not obj.needs_review:
            return badge
        return format_html('{}<span class="pg-review">{}</span>', badge, _("Needs review"))

    @admin.display(description=_("provider"), ordering="provider")
    def provider_display(self, obj: Any) -> str:
        return format_html(
            '<span class="pg-sub">{}</span>{}', obj.provider, clipped(obj.provider_payment_id)
        )

    @admin.display(description=_("customer"), ordering="email")
    def customer(self, obj: Any) -> str:
        email = clipped(obj.email)
        if not obj.needs_review:
            return email
        reason = (obj.review_reason or "").strip().splitlines()
        return format_html(
            '{}<span class="pg-reason" title="{}">{}</span>',
            email,
            obj.review_reason,
            reason[-1] if reason else "",
        )

    @admin.display(description=_("created"), ordering="created_at")
    def created_display(self, obj: Any) -> str:
        return short_time(obj.created_at)

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
        term = search_term.strip().lower()
        try:
            return results | queryset.filter(pk=uuid.UUID(term)), may_have_duplicates
        except ValueError:
            pass
        if re.fullmatch(r"[0-9a-f]{8}", term):  # a short id, as the list shows it
            return results | queryset.filter(_short_id_lookup(queryset, term)), may_have_duplicates
        return results, may_have_duplicates

    def csv_rows(self, queryset: Iterable[Any]) -> Iterator[list[Any]]:
        for p in queryset:
            yield [
                p.pk,
                p.created_at.isoformat(),
                p.status,
                major(p.amount, p.currency),
                major(p.amount_captured, p.currency),
                major(p.amount_refunded, p.currency),
                p.currency,
                p.provider,
                p.provider_payment_id,
                p.email,
                p.user_id,
                p.description,
                p.failure_code,
                p.needs_review,
                p.review_code,
                p.review_reason,
            ]

    # -- permissions of the actions ------------------------------------------------

    def has_sync_permission(self, request: HttpRequest) -> bool:
        return _may(request, self.model, "sync_payment")

    def has_capture_permission(self, request: HttpRequest) -> bool:
        return _may(request, self.model, "capture_payment")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return _may(request, self.model, "cancel_payment")

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("paygate.refund_payment"))

    @admin.action(description=_("Sync from provider"), permissions=["sync"])
    def sync_from_provider(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        synced = 0
        for payment in queryset:
            try:
                services.sync_payment(payment, user=request.user, source=Source.ADMIN)
            except PaygateError as exc:
                self.message_user(request, f"{payment.pk}: {exc}", messages.ERROR)
            else:
                synced += 1
        if synced:
            self.message_user(
                request, f"Synced {synced} payment(s) from their provider.", messages.SUCCESS
            )

    # -- the action pages ----------------------------------------------------------

    def get_urls(self) -> list[Any]:
        opts = self.model._meta

        def page(name: str, view: Callable[..., HttpResponse]) -> URLPattern:
            # Services hold short transactions of their own, never one across a provider call.
            @transaction.non_atomic_requests
            def call(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                return view(request, *args, **kwargs)

            wrapped = self.admin_site.admin_view(call)
            return path(
                f"<path:object_id>/{name}/",
                wrapped,
                name=f"{opts.app_label}_{opts.model_name}_{name}",
            )

        return [
            page("refund", self.refund_view),
            page("capture", self.capture_view),
            page("cancel", self.cancel_view),
            page("sync", self.sync_view),
            self.csv_url(),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        payment = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if payment is not None:
            context["paygate_actions"] = self._available_actions(request, payment)
        return super().change_view(request, object_id, form_url, context)

    def _available_actions(self, request: HttpRequest, payment: Any) -> list[tuple[str, str]]:
        opts = self.model._meta
        status = payment.status
        actions = []
        refundable = status in {PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED}
        if refundable and self.has_refund_permission(request):
            actions.append(("refund", str(_("Refund…"))))
        if status == PaymentStatus.AUTHORIZED:
            if self.has_capture_permission(request):
                actions.append(("capture", str(_("Capture…"))))
            if self.has_cancel_permission(request):
                actions.append(("cancel", str(_("Cancel…"))))
        if self.has_sync_permission(request):
            actions.append(("sync", str(_("Sync from provider"))))
        return [
            (
                reverse(f"admin:{opts.app_label}_{opts.model_name}_{name}", args=[payment.pk]),
                label,
            )
            for name, label in actions
        ]

    def _payment_or_404(self, request: HttpRequest, object_id: str) -> Any:
        payment = self.get_object(request, object_id)
        if payment is None:
            raise Http404("No such payment.")
        return payment

    def _change_url(self, payment: Any) -> str:
        opts = self.model._meta
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[payment.pk])

    def _render(
        self, request: HttpRequest, payment: Any, template: str, **context: Any
    ) -> TemplateResponse:
        opts = self.model._meta
        return TemplateResponse(
            request,
            f"admin/paygate/payment/{template}",
            {
                **self.admin_site.each_context(request),
                "opts": opts,
                "original": payment,
                "payment": payment,
                "change_url": self._change_url(payment),
                "customer": _customer(payment),
                "title": ACTION_TITLES[template],
                "media": self.media,
                **context,
            },
        )

    def _refused(self, request: HttpRequest, exc: PaygateError) -> None:
        self.message_user(request, str(exc), messages.ERROR)

    def refund_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Refund: the form, then a confirmation naming the amount and the customer."""
        if not (self.has_view_permission(request) and self.has_refund_permission(request)):
            raise PermissionDenied
        payment = self._payment_or_404(request, object_id)
        left = services.refundable_amount(payment)
        if request.method != "POST":
            form = RefundForm(
                currency=payment.currency,
                initial={"key": uuid.uuid4(), "amount": major(left, payment.currency)},
            )
            return self._render(request, payment, "refund.html", form=form, left=left)
        form = RefundForm(request.POST, currency=payment.currency)
        if not form.is_valid():
            return self._render(request, payment, "refund.html", form=form, left=left)
        amount = form.cleaned_data["amount"]
        if not form.cleaned_data["confirm"]:
            return self._render(
                request,
                payment,
                "refund.html",
                form=form,
                left=left,
                confirming=True,
                amount_display=money.format_money(amount, payment.currency),
            )
        try:
            refund = services.refund_payment(
                payment,
                amount=amount,
                reason=form.cleaned_data["reason"],
                user=request.user,
                idempotency_key=f"admin:{form.cleaned_data['key']}",
                source=Source.ADMIN,
            )
        except PaygateError as exc:
            self._refused(request, exc)
            payment.refresh_from_db()
            return self._render(
                request, payment, "refund.html", form=form, left=services.refundable_amount(payment)
            )
        shown = money.format_money(refund.amount, refund.currency)
        if refund.replayed:
            self.message_user(
                request,
                f"This form was already submitted: refund {refund.pk} of {shown} "
                f"({refund.status}) was made once.",
                messages.WARNING,
            )
        else:
            self.message_user(
                request, f"Refund {refund.pk} of {shown}: {refund.status}.", messages.SUCCESS
            )
        return HttpResponseRedirect(self._change_url(payment))

    def capture_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Capture all (the default) or part of an authorized payment."""
        if not (self.has_view_permission(request) and self.has_capture_permission(request)):
            raise PermissionDenied
        payment = self._payment_or_404(request, object_id)
        if request.method != "POST":
            form = AmountForm(
                currency=payment.currency,
                initial={"key": uuid.uuid4(), "amount": major(payment.amount, payment.currency)},
            )
            return self._render(request, payment, "capture.html", form=form)
        form = AmountForm(request.POST, currency=payment.currency)
        if not form.is_valid():
            return self._render(request, payment, "capture.html", form=form)
        amount = form.cleaned_data["amount"]
        try:
            payment = services.capture_payment(
                payment, amount=amount, user=request.user, source=Source.ADMIN
            )
        except PaygateError as exc:
            self._refused(request, exc)
            return self._render(request, payment, "capture.html", form=form)
        captured = money.format_money(payment.amount_captured, payment.currency)
        self.message_user(request, f"Captured {captured}: {payment.status}.", messages.SUCCESS)
        return HttpResponseRedirect(self._change_url(payment))

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Cancel (release) an authorization, after a confirmation."""
        if not (self.has_view_permission(request) and self.has_cancel_permission(request)):
            raise PermissionDenied
        payment = self._payment_or_404(request, object_id)
        if request.method != "POST":
            form = PaymentActionForm(initial={"key": uuid.uuid4()})
            return self._render(request, payment, "cancel.html", form=form)
        try:
            payment = services.cancel_payment(payment, user=request.user, source=Source.ADMIN)
        except PaygateError as exc:
            self._refused(request, exc)
            return HttpResponseRedirect(self._change_url(payment))
        self.message_user(request, f"Payment {payment.pk}: {payment.status}.", messages.SUCCESS)
        return HttpResponseRedirect(self._change_url(payment))

    def sync_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Sync one payment (a POST from its page)."""
        if not (self.has_view_permission(request) and self.has_sync_permission(request)):
            raise PermissionDenied
        payment = self._payment_or_404(request, object_id)
        if request.method != "POST":
            return HttpResponseRedirect(self._change_url(payment))
        try:
            payment = services.sync_payment(payment, user=request.user, source=Source.ADMIN)
        except PaygateError as exc:
            self._refused(request, exc)
        else:
            self.message_user(
                request, f"Synced from {payment.provider}: {payment.status}.", messages.SUCCESS
            )
        return HttpResponseRedirect(self._change_url(payment))


def _customer(payment: Any) -> str:
    """Who a refund goes back to, as staff know them: email, then the user."""
    parts = [payment.email] if payment.email else []
    if payment.user_id is not None and payment.user is not None:
        parts.append(str(payment.user))
    return " / ".join(parts) or str(_("an anonymous customer"))


@admin.register(Refund)
class RefundAdmin(ConsoleMedia, CsvExportMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "short_id",
        "amount_display",
        "status_display",
        "payment_link",
        "provider_id_display",
        "source",
        "created_display",
    )
    list_filter = ("status", "source", "currency")
    search_fields = ("provider_refund_id", "=payment__id")
    list_select_related = ("payment",)
    date_hierarchy = "created_at"
    actions = ("export_csv",)
    change_list_template = "admin/paygate/export_change_list.html"
    csv_filename = "refunds.csv"
    csv_header = (
        "id",
        "created_at",
        "payment_id",
        "status",
        "amount",
        "currency",
        "provider_refund_id",
        "reason",
        "failure_reason",
        "source",
        "created_by_id",
        "succeeded_at",
    )

    @admin.display(description=_("id"), ordering="id")
    def short_id(self, obj: Refund) -> str:
        return short_id(obj.pk)

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj: Refund) -> str:
        return money.format_money(obj.amount, obj.currency)

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, obj: Refund) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description=_("payment"), ordering="payment")
    def payment_link(self, obj: Refund) -> str:
        return _change_link(obj.payment, str(obj.payment_id)[:SHORT_ID])

    @admin.display(description=_("provider refund id"), ordering="provider_refund_id")
    def provider_id_display(self, obj: Refund) -> str:
        return clipped(obj.provider_refund_id)

    @admin.display(description=_("created"), ordering="created_at")
    def created_display(self, obj: Refund) -> str:
        return short_time(obj.created_at)

    def get_urls(self) -> list[Any]:
        return [self.csv_url(), *super().get_urls()]

    def csv_rows(self, queryset: Iterable[Any]) -> Iterator[list[Any]]:
        for r in queryset:
            yield [
                r.pk,
                r.created_at.isoformat(),
                r.payment_id,
                r.status,
                major(r.amount, r.currency),
                r.currency,
                r.provider_refund_id,
                r.reason,
                r.failure_reason,
                r.source,
                r.created_by_id,
                r.succeeded_at.isoformat() if r.succeeded_at else "",
            ]


@admin.register(Dispute)
class DisputeAdmin(ConsoleMedia, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "provider_dispute_id",
        "amount_display",
        "status_display",
        "reason",
        "payment_link",
        "created_at",
    )
    list_filter = ("status", "currency")
    search_fields = ("provider_dispute_id",)
    list_select_related = ("payment",)
    date_hierarchy = "created_at"

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj: Dispute) -> str:
        return money.format_money(obj.amount, obj.currency)

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, obj: Dispute) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description=_("payment"), ordering="payment")
    def payment_link(self, obj: Dispute) -> str:
        return _change_link(obj.payment, str(obj.payment_id)[:SHORT_ID])


@admin.register(PaymentEvent)
class PaymentEventAdmin(ConsoleMedia, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "payment_link",
        "from_status",
        "to_status",
        "amount",
        "source",
        "user",
        "note",
    )
    list_filter = ("source", "to_status")
    list_select_related = ("payment", "user")
    date_hierarchy = "created_at"

    @admin.display(description=_("payment"), ordering="payment")
    def payment_link(self, obj: PaymentEvent) -> str:
        return _change_link(obj.payment, str(obj.payment_id)[:SHORT_ID])


@admin.register(WebhookEvent)
class WebhookEventAdmin(ConsoleMedia, ProviderCallsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "event_id_display",
        "type_display",
        "status_display",
        "attempts",
        "received_display",
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

    @admin.display(description=_("event id"), ordering="event_id")
    def event_id_display(self, obj: WebhookEvent) -> str:
        return clipped(obj.event_id)

    @admin.display(description=_("provider · type"), ordering="type")
    def type_display(self, obj: WebhookEvent) -> str:
        return format_html(
            '<span class="pg-sub">{}</span>{}',
            obj.provider,
            clipped(obj.type, "pg-clip pg-clip--text"),
        )

    @admin.display(description=_("received"), ordering="received_at")
    def received_display(self, obj: WebhookEvent) -> str:
        return short_time(obj.received_at)

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, obj: WebhookEvent) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description=_("payment"))
    def payment_link(self, obj: WebhookEvent) -> str:
        if obj.payment_id is None:
            return "-"
        return _change_link(obj.payment, str(obj.payment_id)[:SHORT_ID])

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
class NotificationAdmin(ConsoleMedia, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "status_display",
        "payment_link",
        "attempts",
        "created_display",
        "sent_display",
        "delivery_status",
    )
    list_filter = ("kind", "status", "signal_sent", "delivery_status")
    list_select_related = ("payment",)
    date_hierarchy = "created_at"
    actions = ("requeue",)

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, obj: Notification) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description=_("payment"), ordering="payment")
    def payment_link(self, obj: Notification) -> str:
        return _change_link(obj.payment, str(obj.payment_id)[:SHORT_ID])

    @admin.display(description=_("created"), ordering="created_at")
    def created_display(self, obj: Notification) -> str:
        return short_time(obj.created_at)

    @admin.display(description=_("sent"), ordering="sent_at")
    def sent_display(self, obj: Notification) -> str:
        return short_time(obj.sent_at)

    def has_requeue_permission(self, request: HttpRequest) -> bool:
        return _may_change(request, self.model)

    @admin.action(description=_("Send again (given up or waiting)"), permissions=["requeue"])
    def requeue(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        count = notifications.requeue(waiting=True, failed=True, ids=ids)
        due = Notification.objects.filter(pk__in=ids, status=Notification.Status.PENDING)
        for pk in due.values_list("pk", flat=True):
            notifications.deliver_after_commit(pk)
        self.message_user(
            request,
            f"{count} notification(s) requeued; rows being sent or already sent are left alone.",
            messages.SUCCESS if count else messages.WARNING,
        )


# ---------------------------------------------------------------------------
# The analytics dashboard
# ---------------------------------------------------------------------------


class AnalyticsFilterForm(forms.Form):
    start = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput({"type": "date"})
    )
    end = forms.DateField(label=_("To"), required=False, widget=forms.DateInput({"type": "date"}))
    provider = forms.ChoiceField(label=_("Provider"), required=False)
    currency = forms.CharField(label=_("Currency"), required=False, max_length=3)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        aliases = sorted(paygate_settings.PROVIDERS)
        cast("forms.ChoiceField", self.fields["provider"]).choices = [
            ("", _("All")),
            *((a, a) for a in aliases),
        ]
        self.fields["currency"].widget.attrs.update(size=4, placeholder="USD")

    def clean_currency(self) -> str | None:
        value = self.cleaned_data["currency"]
        if not value:
            return None
        try:
            return money.normalize_currency(value)
        except InvalidAmount as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "start" in data and "end" in data:
            try:
                data["start"], data["end"] = analytics.resolve_range(
                    data["start"], data["end"], timezone.localdate()
                )
            except ValueError as exc:
                self.add_error("end", str(exc))
        return data


@admin.register(Analytics)
class AnalyticsAdmin(ConsoleMedia, admin.ModelAdmin):
    """``admin/paygate/analytics/``: :func:`~django_paygate.analytics.payment_analytics`, drawn."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("paygate.view_analytics"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        opts = self.model._meta
        return [
            path(
                "",
                self.admin_site.admin_view(self.changelist_view),
                name=f"{opts.app_label}_{opts.model_name}_changelist",
            )
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        default_start, default_end = analytics.default_range(timezone.localdate())
        form = AnalyticsFilterForm(
            request.GET or None, initial={"start": default_start, "end": default_end}
        )
        result = None
        if not request.GET or form.is_valid():
            data = form.cleaned_data if request.GET else {}
            start, end = data.get("start"), data.get("end")
            if start is None or end is None:
                start, end = default_start, default_end
            result = analytics.payment_analytics(
                start=start,
                end=end,
                currency=data.get("currency"),
                provider=data.get("provider") or None,
                min_failures=int(paygate_settings.ANALYTICS_FRAUD_MIN_FAILURES),
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Payment analytics"),
            "form": form,
            "result": result,
            "media": self.media,
            **(dashboard_context(result) if result else {}),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/paygate/analytics.html", context)


def _percent(rate: float | None) -> str:
    return "\u2013" if rate is None else f"{rate * 100:.1f}\u202f%"


def _list_url(model: type[Model], **params: Any) -> str:
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    shown = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{url}?{urlencode(shown)}" if shown else url


def dashboard_context(result: dict[str, Any]) -> dict[str, Any]:
    """What the dashboard template shows of ``result``: per-currency cards and charts, links."""
    from datetime import date, datetime

    start = date.fromisoformat(result["range"]["start"])
    end = date.fromisoformat(result["range"]["end"])
    filters = result["filters"]
    payments = get_payment_model()
    lower, upper = analytics.bounds(start, end)
    in_range = {
        "created_at__gte": lower.isoformat(),
        "created_at__lt": upper.isoformat(),
        "provider": filters["provider"],
    }
    series = charts.days(start, end)
    daily = charts.daily_by_currency(result["daily"])
    sections = []
    for row in result["currencies"]:
        code = row["currency"]

        def fmt(amount: int, code: str = code) -> str:
            return money.format_money(amount, code)

        days_of = daily.get(code, {})
        sections.append(
            {
                "row": row,
                "captured": fmt(row["amount_captured"]),
                "refunded": fmt(row["amount_refunded"]),
                "net": fmt(row["net"]),
                "open_disputes_amount": fmt(row["open_disputes_amount"]),
                "success_rate": _percent(row["success_rate"]),
                "refund_rate": _percent(row["refund_rate"]),
                "dispute_rate": _percent(row["dispute_rate"]),
                "review_url": _list_url(payments, needs_review__exact=1, currency=code, **in_range),
                "payments_url": _list_url(payments, currency=code, **in_range),
                "disputes_url": _list_url(Dispute, status__in="inquiry,open", currency=code),
                "volume": charts.volume_chart(
                    f"{code}: captured and refunded per day",
                    series,
                    {d: (v[0], v[1]) for d, v in days_of.items()},
                    fmt,
                ),
                "rate": charts.rate_chart(
                    f"{code}: success rate per day",
                    series,
                    {d: (v[2], v[3]) for d, v in days_of.items()},
                ),
            }
        )

    def hour_range(hour: str) -> dict[str, str]:
        begins = datetime.fromisoformat(hour)
        return {
            "created_at__gte": begins.isoformat(),
            "created_at__lt": (begins + timedelta(hours=1)).isoformat(),
        }

    def with_hour(row: dict[str, Any]) -> dict[str, Any]:
        begins = timezone.localtime(datetime.fromisoformat(row["hour"]))
        return {**row, "hour_display": begins.strftime("%b %d, %H:00\u2013%H:59")}

    fraud = result["fraud"]
    links = {
        "failure_codes": [
            (
                row,
                _list_url(
                    payments,
                    status="failed",
                    failure_code=row["failure_code"],
                    **{**in_range, "provider": row["provider"]},
                ),
            )
            for row in result["top_failure_codes"]
        ],
        "decline_sources": [
            (row, _list_url(payments, client_network=row["network"], **in_range))
            for row in fraud["decline_sources"]
        ],
        "network_bursts": [
            (
                with_hour(row),
                _list_url(payments, client_network=row["network"], **hour_range(row["hour"])),
            )
            for row in fraud["bursts"]["networks"]
        ],
        "user_bursts": [
            (
                with_hour(row),
                _list_url(payments, user__id__exact=row["user_id"], **hour_range(row["hour"])),
            )
            for row in fraud["bursts"]["users"]
        ],
        "users": [
            (row, _list_url(payments, user__id__exact=row["user_id"], **in_range))
            for row in fraud["users"]
        ],
        "ips": [
            (row, _list_url(payments, client_network=row["ip"], **in_range)) for row in fraud["ips"]
        ],
    }
    open_disputes = [
        {**row, "display": money.format_money(row["amount"], row["currency"])}
        for row in result["open_disputes"]
    ]
    return {
        "sections": sections,
        "links": links,
        "open_disputes": open_disputes,
        "open_disputes_total": sum(row["count"] for row in open_disputes),
        "disputes_url": _list_url(Dispute, status__in="inquiry,open"),
        "review_url": _list_url(payments, needs_review__exact=1, **in_range),
    }


def register_payment_admin(site: admin.AdminSite = admin.site) -> None:
    """Register the payment model in use with :class:`PaymentAdmin` (once)."""
    model = get_payment_model()
    if not site.is_registered(model):
        site.register(model, PaymentAdmin)


def install_dispute_alert(site: admin.AdminSite = admin.site) -> None:
    """Show open disputes on ``site``'s index, unless the project chose its own index template."""
    if site.index_template is None:
        site.index_template = "admin/paygate/index.html"


register_payment_admin()
install_dispute_alert()


__all__ = [
    "AnalyticsAdmin",
    "DisputeAdmin",
    "NotificationAdmin",
    "PaymentAdmin",
    "PaymentEventAdmin",
    "PaymentEventInline",
    "RefundAdmin",
    "RefundInline",
    "WebhookEventAdmin",
    "csv_cell",
    "install_dispute_alert",
    "register_payment_admin",
    "stream_csv",
]
