"""The shipped checkout: a page per payment, its return URL, and the price re-check.

- ``GET checkout/<uuid>/`` (the payment's owner): the provider's widget
  (``paygate/checkout/<provider>.html``), run by one static script
  (``paygate/checkout.js``) that works under a strict Content-Security-Policy:
  no inline script, no inline style, its settings in a JSON data block.
- ``GET checkout/<uuid>/return/``: where the provider (or the script) sends
  the customer back. It syncs the payment from the provider, then redirects to
  the payable's success or failure URL.
- ``POST checkout/<uuid>/check/``: asked by the script right before a
  confirmation that happens in the browser (Stripe's ``confirmPayment``): a
  payable whose price changed is answered ``409 payable_changed`` and the
  payment is canceled.

Views only call services; every payment is looked up with its owner, so
another user's payment is a 404.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.loader import select_template
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from django_paygate import services
from django_paygate.exceptions import PayableChanged, PaygateError, ProviderUnavailable
from django_paygate.models import get_payment_model
from django_paygate.providers import get_provider
from django_paygate.states import IN_FLIGHT_PAYMENT_STATUSES, PAID_STATUSES, PaymentStatus

if TYPE_CHECKING:
    from django_paygate.models import AbstractPayment

logger = logging.getLogger("django_paygate.checkout")

#: Statuses after which the customer is sent to the success URL.
DONE_STATUSES = PAID_STATUSES | {PaymentStatus.AUTHORIZED, PaymentStatus.PROCESSING}


def owned_payment(request: HttpRequest, payment_id: Any) -> AbstractPayment:
    """The payment if it is the requester's own, else 404 (the same for "not yours")."""
    user = request.user
    payment = (
        get_payment_model().objects.filter(pk=payment_id, user_id=user.pk).first()
        if user.is_authenticated
        else None
    )
    if payment is None:
        raise Http404("No such payment.")
    return payment


def provider_kind(payment: AbstractPayment) -> str:
    """The template name of a payment's provider: ``stripe``, ``razorpay``, ``dummy``, …"""
    return get_provider(payment.provider).name.lower()


def return_urls(payment: AbstractPayment) -> tuple[str, str]:
    """The payable's (success, failure) URLs; the library's result page without a payable."""
    payable = payment.payable if payment.payable_type_id else None
    if payable is not None:
        success, failure = payable.get_payment_return_urls()
        return str(success), str(failure)
    result = reverse("paygate:checkout_result", args=[payment.pk])
    return result, result


def checkout_context(request: HttpRequest, payment: AbstractPayment) -> dict[str, Any]:
    """What ``paygate/checkout/widget.html`` needs (the page and the template tag share it)."""
    backend = get_provider(payment.provider)
    kind = backend.name.lower()
    client = services.payment_client_data(payment, backend) or {}
    config = {
        "provider": kind,
        "payment_id": str(payment.pk),
        "status": payment.status,
        "confirm_url": reverse("paygate:confirm_payment"),
        "check_url": reverse("paygate:checkout_check", args=[payment.pk]),
        "return_url": request.build_absolute_uri(
            reverse("paygate:checkout_return", args=[payment.pk])
        ),
        "client": _public_client(kind, client),
    }
    return {
        "payment": payment,
        "provider_kind": kind,
        "provider_template": select_template(
            [f"paygate/checkout/{kind}.html", "paygate/checkout/unsupported.html"]
        ).template.name,
        "script_url": backend.options.get("script_url") or "",
        "paygate_config": config,
        "test_cards": client.get("test_cards") or {},
    }


def _public_client(kind: str, client: dict[str, Any]) -> dict[str, Any]:
    """The part of ``client_data`` the page's script needs; never more."""
    keep = {
        "stripe": ("client_secret", "publishable_key"),
        "razorpay": (
            "key_id",
            "order_id",
            "amount",
            "currency",
            "name",
            "description",
            "prefill",
            "notes",
        ),
    }.get(kind, ())
    return {key: client[key] for key in keep if key in client}


@never_cache
@login_required
@require_GET
def checkout_page(request: HttpRequest, payment_id: Any) -> HttpResponse:
    """``GET checkout/<uuid>/``: the owner pays here (or is sent on if there is nothing to pay)."""
    payment = owned_payment(request, payment_id)
    success, failure = return_urls(payment)
    if payment.status in DONE_STATUSES:
        return _redirect(success)
    if payment.status == PaymentStatus.CANCELED:
        return _redirect(failure)
    try:
        services.check_payable(payment)
    except PayableChanged:
        return _redirect(failure)
    return render(request, "paygate/checkout/page.html", checkout_context(request, payment))


@never_cache
@login_required
@require_GET
def checkout_return(request: HttpRequest, payment_id: Any) -> HttpResponse:
    """``GET checkout/<uuid>/return/``: sync from the provider, then on to the payable's URL."""
    payment = owned_payment(request, payment_id)
    success, failure = return_urls(payment)
    if payment.status not in PAID_STATUSES | {PaymentStatus.CANCELED}:
        try:
            payment = services.sync_payment(payment)
        except ProviderUnavailable:
            logger.warning(
                "Return of payment %s: provider unreachable; sync will tell.", payment.pk
            )
        except PaygateError as exc:
            logger.warning("Return of payment %s: sync refused: %s", payment.pk, exc)
    if payment.status in IN_FLIGHT_PAYMENT_STATUSES - {PaymentStatus.PROCESSING}:
        # Back without paying (a 3-D Secure step abandoned): the price still counts.
        try:
            services.check_payable(payment)
        except PayableChanged:
            return _redirect(failure)
    return _redirect(success if payment.status in DONE_STATUSES else failure)


@never_cache
@require_POST
def checkout_check(request: HttpRequest, payment_id: Any) -> HttpResponse:
    """``POST checkout/<uuid>/check/``: 204 while the payable's price stands, else 409."""
    from django_paygate.views.api import ApiError, error_from_paygate

    try:
        payment = owned_payment(request, payment_id)
    except Http404:
        return ApiError(404, "not_found", "No such payment.").response()
    try:
        services.check_payable(payment)
    except PaygateError as exc:
        return error_from_paygate(exc).response()
    return HttpResponse(status=204)


@never_cache
@login_required
@require_GET
def checkout_result(request: HttpRequest, payment_id: Any) -> HttpResponse:
    """The result page of a payment that has no payable to send the customer back to."""
    payment = owned_payment(request, payment_id)
    return render(request, "paygate/checkout/result.html", {"payment": payment})


def _redirect(url: str) -> HttpResponse:
    # The URL comes from the host's payable, never from the request; still, only a
    # relative URL or an http(s) one is followed.
    if not url_has_allowed_host_and_scheme(url, allowed_hosts=None) and not url.startswith(
        ("https://", "http://")
    ):
        raise Http404("The payable's return URL is not an http(s) URL.")
    return HttpResponseRedirect(url)
