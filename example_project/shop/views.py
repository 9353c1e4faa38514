"""The shop's pages. Every change to a payment goes through ``django_paygate.services``."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from django_paygate import money, services
from django_paygate.exceptions import (
    InvalidTransition,
    PaygateError,
    PaymentDeclined,
    ProviderUnavailable,
)
from django_paygate.models import AbstractPayment, PaymentEvent, WebhookEvent, get_payment_model
from django_paygate.providers import get_provider
from django_paygate.providers.dummy import (
    CARD_DECLINED,
    CARD_REQUIRES_ACTION,
    CARD_SUCCEEDS,
    DummyProvider,
)
from shop.dummy_webhooks import deliver_dummy_webhooks, pending_count
from shop.forms import CheckoutForm, RefundForm, StartForm
from shop.models import Order
from shop.products import PRODUCTS

TEST_CARDS = [
    (CARD_SUCCEEDS, "succeeds"),
    (CARD_DECLINED, "is declined (card_declined)"),
    (CARD_REQUIRES_ACTION, "asks for authentication (3-D Secure), then succeeds"),
]


@require_http_methods(["GET", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    """Pick a product; creating the order creates its payment and sends the customer to pay."""
    form = StartForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        product = PRODUCTS[form.cleaned_data["product"]]
        email = form.cleaned_data["email"]
        order = Order.objects.create(
            product=product.name, amount=product.amount, currency=product.currency, email=email
        )
        try:
            payment = services.create_payment(
                amount=order.amount,
                currency=order.currency,
                user=request.user,
                email=email,
                description=f"{product.name} (order {order.pk})",
                metadata={"order_id": str(order.pk)},
                idempotency_key=f"shop-order-{order.pk}",
            )
        except PaygateError as exc:
            messages.error(request, f"Could not start the payment: {exc}")
        else:
            Order.objects.filter(pk=order.pk).update(payment=payment)
            deliver_dummy_webhooks()
            client = payment.client_data or {}
            return redirect(client.get("checkout_url") or reverse("shop:order", args=[order.pk]))
    recent = Order.objects.all()[:10] if request.user.is_staff else []
    return render(request, "shop/index.html", {"form": form, "recent_orders": recent})


def _dummy_payment(payment_id: str) -> AbstractPayment:
    payment = get_object_or_404(get_payment_model(), pk=payment_id)
    if not isinstance(get_provider(payment.provider), DummyProvider):
        raise Http404("This checkout page serves the dummy provider only.")
    return payment


@require_http_methods(["GET", "POST"])
def checkout(request: HttpRequest, payment_id: str) -> HttpResponse:
    """The dummy provider's checkout page: the customer types a test card."""
    payment = _dummy_payment(payment_id)
    order = get_object_or_404(Order, payment_id=payment.pk)
    if payment.status not in {"pending", "requires_action", "failed"}:
        return redirect("shop:order", order.pk)

    form = CheckoutForm(request.POST or None)
    if request.method == "POST":
        data: dict[str, str] = {}
        if request.POST.get("action") == "authenticate" and payment.status == "requires_action":
            data = {}  # the dummy's "3-D Secure" passes on the next confirm
        elif form.is_valid():
            data = {"payment_method": form.cleaned_data["payment_method"]}
        else:
            return _render_checkout(request, payment, order, form)
        try:
            payment = services.confirm_payment(payment, **data)
        except PaymentDeclined as exc:
            messages.error(
                request, f"Payment declined ({exc.decline_code or exc.code}). Try another card."
            )
            payment.refresh_from_db()
        except InvalidTransition:
            messages.info(request, "This payment cannot be confirmed any more.")
            return redirect("shop:order", order.pk)
        except ProviderUnavailable:
            messages.warning(
                request, "The provider did not answer; the payment will be checked again."
            )
            return redirect("shop:order", order.pk)
        finally:
            deliver_dummy_webhooks()
        if payment.status == "requires_action":
            return redirect("shop:checkout", payment.pk)
        if payment.status in {"succeeded", "authorized", "processing"}:
            return redirect("shop:order", order.pk)
        form = CheckoutForm()
    return _render_checkout(request, payment, order, form)


def _render_checkout(
    request: HttpRequest, payment: object, order: Order, form: CheckoutForm
) -> HttpResponse:
    return render(
        request,
        "shop/checkout.html",
        {"payment": payment, "order": order, "form": form, "test_cards": TEST_CARDS},
    )


def order_detail(request: HttpRequest, order_id: str) -> HttpResponse:
    """The order's status, its payment, refunds and audit trail (and a refund form for staff)."""
    order = get_object_or_404(Order.objects.select_related("payment"), pk=order_id)
    payment = order.payment
    context: dict[str, object] = {"order": order, "payment": payment}
    if payment is not None:
        context["refunds"] = payment.refunds.order_by("created_at")
        context["events"] = PaymentEvent.objects.filter(payment_id=payment.pk).order_by(
            "created_at", "id"
        )
        context["can_pay"] = payment.status in {"pending", "requires_action", "failed"}
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
    finally:
        deliver_dummy_webhooks()
    return redirect("shop:order", order.pk)


@staff_member_required
@require_http_methods(["GET", "POST"])
def webhook_inbox(request: HttpRequest) -> HttpResponse:
    """Staff only: the webhook inbox, and the dummy events not delivered yet."""
    if request.method == "POST":
        results = deliver_dummy_webhooks(force=True)
        messages.info(request, f"Delivered {len(results)} event(s): {[r.message for r in results]}")
        return redirect("shop:webhooks")
    events = WebhookEvent.objects.order_by("-received_at")[:50]
    return render(request, "shop/webhooks.html", {"events": events, "pending": pending_count()})
