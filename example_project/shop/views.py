"""The shop's pages. Every change to a payment goes through ``django_paygate.services``."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import get_user_model, login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from django_paygate import money, services
from django_paygate.exceptions import PaygateError
from django_paygate.models import PaymentEvent, WebhookEvent
from shop.forms import RefundForm, StartForm
from shop.models import Order
from shop.products import PRODUCTS


def _customer(request: HttpRequest) -> Any:
    """The logged-in user, or a guest account logged in now (the shipped checkout is per user)."""
    if request.user.is_authenticated:
        return request.user
    guest = get_user_model().objects.create_user(f"guest-{uuid.uuid4().hex[:12]}")
    login(request, guest, backend="django.contrib.auth.backends.ModelBackend")
    return guest


@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    """Pick a product; the order is the payable: it sets the price of its payment."""
    form = StartForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        product = PRODUCTS[form.cleaned_data["product"]]
        customer = _customer(request)
        order = Order.objects.create(
            product=product.name,
            amount=product.amount,
            currency=product.currency,
            email=form.cleaned_data["email"],
            customer=customer,
        )
        return _pay(request, order)
    recent = Order.objects.all()[:10] if request.user.is_staff else []
    return render(request, "shop/index.html", {"form": form, "recent_orders": recent})


def _pay(request: HttpRequest, order: Order) -> HttpResponse:
    """Open (or reopen) the order's payment and send the customer to the shipped checkout."""
    try:
        payment = services.create_payment(payable=order, user=request.user)
    except PaygateError as exc:
        messages.error(request, f"Could not start the payment: {exc}")
        return redirect("shop:order", order.pk)
    Order.objects.filter(pk=order.pk).update(payment=payment)
    return redirect("paygate:checkout", payment.pk)


@require_POST
def pay(request: HttpRequest, order_id: str) -> HttpResponse:
    """ "Pay now" on the order page: the open payment again, or a new one at today's price."""
    order = get_object_or_404(Order, pk=order_id)
    if not order.can_be_paid_by(request.user):
        raise Http404("No such order.")
    return _pay(request, order)


def order_detail(request: HttpRequest, order_id: str) -> HttpResponse:
    """The order's status, its payment, refunds and audit trail (and a refund form for staff)."""
    order = get_object_or_404(Order.objects.select_related("payment"), pk=order_id)
    payment = order.payment
    context: dict[str, object] = {
        "order": order,
        "payment": payment,
        "can_pay_order": order.status == Order.Status.NEW and order.can_be_paid_by(request.user),
    }
    if payment is not None:
        context["refunds"] = payment.refunds.order_by("created_at")
        context["events"] = PaymentEvent.objects.filter(payment_id=payment.pk).order_by(
            "created_at", "id"
        )
        if request.user.is_staff and payment.status in {"succeeded", "partially_refunded"}:
            context["refund_form"] = RefundForm(currency=payment.currency)
    return render(request, "shop/order.html", context)


@staff_member_required
@require_POST
def refund(request: HttpRequest, order_id: str) -> HttpResponse:
    """Staff only: refund all or part of an order's payment."""
    order = get_object_or_404(Order.objects.select_related("payment"), pk=order_id)
    if order.payment is None:
        raise Http404("This order has no payment.")
    form = RefundForm(request.POST, currency=order.currency)
    if not form.is_valid():
        for error in form.errors.get("amount", []) + form.errors.get("reason", []):
            messages.error(request, str(error))
        return redirect("shop:order", order.pk)
    try:
        refund = services.refund_payment(
            order.payment,
            amount=form.cleaned_data["amount"],
            reason=form.cleaned_data["reason"] or "refunded from the shop",
            user=request.user,
        )
    except PaygateError as exc:
        messages.error(request, f"Refund refused: {exc}")
    else:
        amount = money.format_money(refund.amount, refund.currency)
        messages.success(request, f"Refund of {amount}: {refund.status}.")
    return redirect("shop:order", order.pk)


@staff_member_required
def webhook_inbox(request: HttpRequest) -> HttpResponse:
    """Staff only: the webhook inbox, as the provider's signed events arrived."""
    events = WebhookEvent.objects.order_by("-received_at")[:50]
    return render(request, "shop/webhooks.html", {"events": events})
