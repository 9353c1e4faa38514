"""The JSON API: plain Django views that call :mod:`django_paygate.services`.

Every endpoint answers JSON, errors included (``{"error": {"code", "message"}}``,
plus ``fields`` for invalid input). The rules, in the order a request meets them:

1. CSRF on ``POST`` (Django's ``CsrfViewMiddleware``: these views are not exempt;
   :func:`csrf_failure` makes its 403 JSON), then the method (405 with ``Allow``);
2. the rate limit of the endpoint, per IP and per user (429 with ``Retry-After``);
3. who is asking: anonymous 401 (never a redirect), staff-only endpoints 403;
4. the body: ``application/json`` only (415), at most ``API_MAX_BODY_BYTES``
   (413), parsed with exact decimals and checked field by field (400);
5. the payment: looked up *with* its owner, so another user's payment and an id
   that does not exist (or is not even a UUID) are the same 404.

The views never write rows: services do. They run outside ``ATOMIC_REQUESTS``
(services hold short transactions of their own and never one across a provider
call) and outside ``LoginRequiredMiddleware`` (anonymous callers get a JSON 401).
"""

from __future__ import annotations

import functools
import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from importlib import resources
from typing import TYPE_CHECKING, Any

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.csrf import csrf_failure as django_csrf_failure

from django_paygate import analytics, money, payables, security, services, sql
from django_paygate.conf import paygate_settings
from django_paygate.exceptions import (
    ActionRequired,
    InvalidAmount,
    PaygateError,
    PaymentDeclined,
    ProviderError,
)
from django_paygate.models import AbstractPayment, Refund, ReviewReason, get_payment_model
from django_paygate.providers import get_provider
from django_paygate.states import PaymentStatus

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

logger = logging.getLogger("django_paygate.api")

ViewFunc = Callable[..., HttpResponse]

#: The metadata key prefix reserved for django-paygate's own entries.
RESERVED_METADATA_PREFIX = "paygate_"
MAX_REASON_LENGTH = 500
MAX_IDEMPOTENCY_KEY_LENGTH = 200
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]+")  # visible ASCII, no spaces

CREATE_FIELDS = frozenset({"payable", "id", "provider", "amount"})
#: What the payable decides, never the browser (``amount`` only for a payable that accepts one).
PRICED_BY_PAYABLE = frozenset({"amount", "currency", "email", "description", "metadata"})
REFUND_FIELDS = frozenset({"payment_id", "amount", "reason"})


# ---------------------------------------------------------------------------
# Responses and errors
# ---------------------------------------------------------------------------


def json_response(data: Mapping[str, Any], status: int = 200) -> JsonResponse:
    """A JSON answer that no cache keeps (it may carry a client secret)."""
    response = JsonResponse(dict(data), status=status, encoder=DjangoJSONEncoder)
    response["Cache-Control"] = "no-store"
    return response


class ApiError(Exception):
    """An answer other than success, raised anywhere inside a view."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> JsonResponse:
        error: dict[str, Any] = {"code": self.code, "message": self.message, **self.extra}
        if self.fields:
            error["fields"] = self.fields
        response = json_response({"error": error}, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response


def invalid(fields: Mapping[str, str], message: str = "") -> ApiError:
    return ApiError(
        400, "invalid_request", message or "The request has invalid fields.", fields=fields
    )


NOT_FOUND_MESSAGE = "No such payment."


def not_found() -> ApiError:
    return ApiError(404, "not_found", NOT_FOUND_MESSAGE)


def error_from_paygate(exc: PaygateError) -> ApiError:
    """The API answer for a library error: its own ``status_code`` and ``code``."""
    status = int(exc.status_code)
    message = exc.message
    if status >= 500 and not isinstance(exc, ProviderError):
        # A misconfiguration: the details are for the logs, not for the caller.
        logger.error("Paygate error answered as %s: %s", status, exc, exc_info=exc)
        message = "The payment service is not available."
    extra: dict[str, Any] = {}
    if isinstance(exc, PaymentDeclined) and exc.decline_code:
        extra["decline_code"] = exc.decline_code
    if isinstance(exc, ActionRequired) and exc.next_action:
        extra["next_action"] = exc.next_action
    return ApiError(status, exc.code, message, **extra)


def _is_staff(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(user.is_authenticated and user.is_active and getattr(user, "is_staff", False))


def api_endpoint(
    name: str, methods: tuple[str, ...], access: str
) -> Callable[[ViewFunc], ViewFunc]:
    """Wrap an API view: method, rate limit, authentication and error mapping.

    ``access`` is ``"public"``, ``"user"`` (logged in) or ``"staff"``.
    ``name`` is the endpoint's key in ``PAYGATE["RATE_LIMITS"]``.
    """

    def decorator(func: ViewFunc) -> ViewFunc:
        @functools.wraps(func)
        def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                if request.method not in methods:
                    raise ApiError(
                        405,
                        "method_not_allowed",
                        f"Use {' or '.join(methods)}.",
                        headers={"Allow": ", ".join(methods)},
                    )
                retry_after = security.check_rate_limit(request, name)
                if retry_after is not None:
                    raise rate_limited(retry_after)
                user = request.user
                if access != "public" and not user.is_authenticated:
                    raise ApiError(401, "not_authenticated", "Log in to use this endpoint.")
                if access == "staff" and not _is_staff(user):
                    raise ApiError(403, "permission_denied", "This endpoint is for staff.")
                return func(request, *args, **kwargs)
            except ApiError as exc:
                return exc.response()
            except PaygateError as exc:
                return error_from_paygate(exc).response()

        view.paygate_api = True  # type: ignore[attr-defined]
        view.api_methods = methods  # type: ignore[attr-defined]
        # Services run their own short transactions, never one across a provider call.
        return login_not_required(transaction.non_atomic_requests(view))

    return decorator


def rate_limited(retry_after: int, *, code: str = "rate_limited", message: str = "") -> ApiError:
    return ApiError(
        429,
        code,
        message or f"Too many requests. Retry in {retry_after} s.",
        headers={"Retry-After": str(retry_after)},
        retry_after=retry_after,
    )


def csrf_failure(request: HttpRequest, reason: str = "", **kwargs: Any) -> HttpResponse:
    """A ``CSRF_FAILURE_VIEW`` that answers the JSON API's requests in JSON.

    ``CSRF_FAILURE_VIEW = "django_paygate.views.api.csrf_failure"``. Every
    other view gets Django's own failure page.
    """
    match = getattr(request, "resolver_match", None)
    if match is not None and getattr(match.func, "paygate_api", False):
        return ApiError(
            403, "csrf_failed", "CSRF verification failed: send the X-CSRFToken header."
        ).response()
    return django_csrf_failure(request, reason=reason, **kwargs)


# ---------------------------------------------------------------------------
# Request bodies
# ---------------------------------------------------------------------------


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def read_json(request: HttpRequest) -> dict[str, Any]:
    """The request body as a JSON object; numbers with a fraction become ``Decimal``."""
    if request.content_type != "application/json":
        raise ApiError(
            415, "unsupported_media_type", "Send the body as JSON (Content-Type: application/json)."
        )
    limit = int(paygate_settings.API_MAX_BODY_BYTES)
    too_large = ApiError(413, "body_too_large", f"The body is larger than {limit} bytes.")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large
    try:
        body = request.body
    except RequestDataTooBig:
        raise too_large from None
    if len(body) > limit:
        raise too_large
    try:
        data = json.loads(
            body.decode("utf-8"),
            parse_float=Decimal,
            parse_constant=_no_constants,
            object_pairs_hook=_no_duplicates,
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "The body is not valid UTF-8 JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "The body must be a JSON object.")
    return data


def _unknown(data: Mapping[str, Any], allowed: frozenset[str] | set[str]) -> dict[str, str]:
    return {key: "Unknown field." for key in data if key not in allowed}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string(
    data: Mapping[str, Any],
    name: str,
    errors: dict[str, str],
    *,
    max_length: int,
    required: bool = False,
    default: str = "",
) -> str:
    if name not in data or data[name] is None:
        if required:
            errors[name] = "This field is required."
        return default
    value = data[name]
    if not isinstance(value, str):
        errors[name] = "Must be a string."
        return default
    if len(value) > max_length:
        errors[name] = f"At most {max_length} characters."
        return default
    if sql.unstorable_text(value):
        errors[name] = "Must be valid Unicode text without NUL characters."
        return default
    return value


AMOUNT_TYPE_MESSAGE = (
    "Must be an integer of minor units (1999) or a decimal string in major units ('19.99')."
)


def _amount(value: object, currency: str | None, errors: dict[str, str]) -> int | None:
    """An amount in minor units from an int of minor units or a decimal string."""
    if isinstance(value, Decimal):
        errors["amount"] = (
            "JSON numbers with a fraction or an exponent are refused (floats cannot hold money"
            " exactly): send an integer of minor units or a decimal string."
        )
        return None
    if not (_is_int(value) or isinstance(value, str)):
        errors["amount"] = AMOUNT_TYPE_MESSAGE
        return None
    if currency is None:
        return None  # the currency's own error says why
    try:
        if isinstance(value, str):
            return money.to_minor(value, currency)
        return money.validate_minor(value, currency)
    except (InvalidAmount, TypeError) as exc:
        errors["amount"] = str(exc)
        return None


def _uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


# ---------------------------------------------------------------------------
# Selectors (reads only)
# ---------------------------------------------------------------------------


def payment_for(request: HttpRequest, raw_id: object, *, staff_sees_all: bool) -> AbstractPayment:
    """The payment ``raw_id`` names, if the requester may see it, else a 404.

    One query, filtered by owner for everybody but staff (when allowed), so a
    payment of someone else and a payment that does not exist look the same.
    """
    payment_id = _uuid(raw_id)
    if payment_id is None:
        raise not_found()
    query = get_payment_model().objects.filter(pk=payment_id)
    user = request.user
    if not (staff_sees_all and _is_staff(user)):
        if user.pk is None:
            raise not_found()
        query = query.filter(user_id=user.pk)
    payment = query.first()
    if payment is None:
        raise not_found()
    return payment


def payment_by_idempotency_key(key: str) -> AbstractPayment | None:
    return get_payment_model().objects.filter(idempotency_key=key).first()


def _public_metadata(metadata: Mapping[str, Any], *, staff: bool) -> dict[str, Any]:
    if staff:
        return dict(metadata)
    return {k: v for k, v in metadata.items() if not str(k).startswith(RESERVED_METADATA_PREFIX)}


def payment_json(payment: AbstractPayment, *, staff: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": payment.pk,
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "provider": payment.provider,
        "capture_method": payment.capture_method,
        "amount_captured": payment.amount_captured,
        "amount_refunded": payment.amount_refunded,
        "email": payment.email,
        "description": payment.description,
        "metadata": _public_metadata(payment.metadata or {}, staff=staff),
        "failure_code": payment.failure_code,
        "failure_message": payment.failure_message,
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
        "succeeded_at": payment.succeeded_at,
        "canceled_at": payment.canceled_at,
    }
    if staff:
        data["needs_review"] = payment.needs_review
        data["review_code"] = payment.review_code
        data["review_reason"] = payment.review_reason
        data["user_id"] = payment.user_id
    return data


def refund_json(refund: Refund, *, staff: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": refund.pk,
        "payment_id": refund.payment_id,
        "amount": refund.amount,
        "currency": refund.currency,
        "status": refund.status,
        "created_at": refund.created_at,
        "succeeded_at": refund.succeeded_at,
    }
    if staff:
        data["reason"] = refund.reason
        data["failure_reason"] = refund.failure_reason
        data["created_by"] = refund.created_by_id
        data["source"] = refund.source
    return data


# ---------------------------------------------------------------------------
# Endpoints
# ---------------------------------------------------------------------------


def _idempotency_key(request: HttpRequest, errors: dict[str, str]) -> str | None:
    """The request's ``Idempotency-Key`` header, or ``None``; a malformed one is an error."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (
        0 < len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH and _IDEMPOTENCY_KEY.fullmatch(key)
    ):
        errors["Idempotency-Key"] = (
            f"1 to {MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters, no spaces."
        )
    return key


@api_endpoint("create_intent", ("POST",), "user")
def create_intent(request: HttpRequest) -> HttpResponse:
    """``POST create_intent/``: a payment for a payable of the host, priced by the payable.

    Body: ``{"payable": "<name in PAYGATE['PAYABLES']>", "id": "<pk>", "provider": alias}``.
    The payable decides the amount, the currency, the receipt address and who
    may pay it (anyone else gets the same 404 as for an id that does not
    exist). ``amount`` is accepted only by a payable that takes an amount the
    customer chooses, within its bounds; ``currency``, ``email``,
    ``description`` and ``metadata`` never.

    201 with the payment and its ``client`` data; 200 with the open payment
    when one exists for the same amount, currency and provider (or for the
    same ``Idempotency-Key`` and body); 409 ``already_paid``.
    """
    data = read_json(request)
    errors = {
        key: "Decided by the payable, not the request."
        for key in data
        if key in PRICED_BY_PAYABLE - {"amount"}
    }
    errors.update(_unknown(data, CREATE_FIELDS | PRICED_BY_PAYABLE))
    key = _idempotency_key(request, errors)
    name = _string(data, "payable", errors, max_length=64, required=True)
    raw_pk = data.get("id")
    if raw_pk is None:
        errors["id"] = "This field is required."
    elif not (isinstance(raw_pk, str) or _is_int(raw_pk)) or len(str(raw_pk)) > 255:
        errors["id"] = "Must be a string or an integer."
    model = payables.payable_model(name) if name else None
    if model is None and "payable" not in errors:
        errors["payable"] = "No payable is registered under this name."
    provider = _string(data, "provider", errors, max_length=64) or None
    if provider is not None and provider not in paygate_settings.PROVIDERS:
        errors["provider"] = "No provider is configured under this alias."
    if errors:
        raise invalid(errors)
    assert model is not None

    user = request.user
    payable = _payable_for(model, raw_pk, user)
    customer_amount: int | None = None
    if data.get("amount") is not None:
        if payables.customer_amount_bounds(payable) is None:
            raise invalid({"amount": "Decided by the payable, not the request."})
        customer_amount = _amount(data["amount"], payable.get_payment_amount()[1], errors)
        if errors:
            raise invalid(errors)

    scoped_key = f"api:{user.pk}:{key}" if key else None
    metadata: dict[str, Any] = {}
    if paygate_settings.API_STORE_CLIENT_IP:
        existing = payment_by_idempotency_key(scoped_key) if scoped_key else None
        # What the idempotency key remembers includes the client IP: a replay from
        # another network must not look like another request.
        stored_ip = (existing.metadata or {}).get(analytics.CLIENT_IP_KEY) if existing else None
        metadata[analytics.CLIENT_IP_KEY] = stored_ip or security.client_ip(request)
    try:
        payment = services.create_payment(
            payable=payable,
            customer_amount=customer_amount,
            provider=provider,
            user=user,
            metadata=metadata,
            idempotency_key=scoped_key,
        )
    except InvalidAmount as exc:
        if customer_amount is None:
            raise
        raise invalid({"amount": str(exc)}) from exc
    body = payment_json(payment)
    body["client"] = dict(payment.client_data) if payment.client_data is not None else None
    return json_response(body, status=200 if payment.replayed else 201)


def _payable_for(model: type[Any], raw_pk: object, user: Any) -> Any:
    """The payable ``raw_pk`` names if ``user`` may pay it, else the 404 of "no such payable"."""
    missing = ApiError(404, "not_found", "No such payable.")
    try:
        payable = model._default_manager.filter(pk=raw_pk).first()
    except (ValueError, TypeError, ValidationError):
        raise missing from None
    if payable is None or not payable.can_be_paid_by(user):
        raise missing
    return payable


@api_endpoint("confirm_payment", ("POST",), "user")
def confirm_payment(request: HttpRequest) -> HttpResponse:
    """``POST confirm_payment/``: confirm the caller's own payment with provider data.

    200 with the new status; for ``requires_action``, ``next_action`` says
    what the front end must do. A decline is 402 and counts against the
    caller's decline velocity limit.
    """
    data = read_json(request)
    raw_id = data.get("payment_id")
    if raw_id is None:
        raise invalid({"payment_id": "This field is required."})
    if not isinstance(raw_id, str):
        raise invalid({"payment_id": "Must be a string."})
    payment = payment_for(request, raw_id, staff_sees_all=False)
    # Each provider names the confirmation fields it takes (a Stripe PaymentMethod,
    # Razorpay's signed checkout answer), with their longest values.
    fields = get_provider(payment.provider).confirmation_fields
    errors = _unknown(data, {"payment_id", *fields})
    provider_data: dict[str, str] = {}
    for name, max_length in fields.items():
        value = _string(data, name, errors, max_length=max_length)
        if value:
            provider_data[name] = value
    if "return_url" in provider_data:
        try:
            URLValidator(schemes=["http", "https"])(provider_data["return_url"])
        except ValidationError:
            errors["return_url"] = "Enter a valid http(s) URL."
    if errors:
        raise invalid(errors)

    attempt = security.reserve_decline_attempt(request)
    if attempt.retry_after is not None:
        raise rate_limited(
            attempt.retry_after,
            code="too_many_declines",
            message=f"Too many declined payments. Retry in {attempt.retry_after} s.",
        )
    declined = False
    try:
        payment = services.confirm_payment(payment, **provider_data)
    except PaymentDeclined as exc:
        declined = True  # the attempt keeps its place: that is what counts it
        error = error_from_paygate(exc)
        error.extra["payment_status"] = "failed"
        raise error from exc
    except TypeError as exc:
        raise invalid({}, str(exc)) from exc
    finally:
        if not declined:
            attempt.release()
    body = payment_json(payment)
    body["next_action"] = dict(payment.next_action) if payment.next_action else None
    return json_response(body)


@api_endpoint("process_refund", ("POST",), "staff")
def process_refund(request: HttpRequest) -> HttpResponse:
    """``POST process_refund/``: refund all or part of a payment (staff with permission).

    201 with the refund and the payment. The refund records who asked
    (``created_by``) and why (``reason``), and so does the audit trail. With an
    ``Idempotency-Key`` header, a retry of the same refund (after a timeout)
    answers 200 with it instead of refunding again; the same key with another
    amount answers 409.
    """
    if not request.user.has_perm("paygate.refund_payment"):
        raise ApiError(403, "permission_denied", "You may not refund payments.")
    data = read_json(request)
    errors = _unknown(data, REFUND_FIELDS)
    raw_id = data.get("payment_id")
    if raw_id is None:
        errors["payment_id"] = "This field is required."
    elif not isinstance(raw_id, str):
        errors["payment_id"] = "Must be a string."
    raw_amount = data.get("amount")
    if raw_amount is not None:
        _amount(raw_amount, None, errors)  # the type now; the value with the currency below
    reason = _string(data, "reason", errors, max_length=MAX_REASON_LENGTH)
    key = _idempotency_key(request, errors)
    if errors:
        raise invalid(errors)

    payment = payment_for(request, raw_id, staff_sees_all=True)
    amount: int | None = None
    if raw_amount is not None:
        amount = _amount(raw_amount, payment.currency, errors)
        if errors:
            raise invalid(errors)
    try:
        refund = services.refund_payment(
            payment,
            amount=amount,
            reason=reason,
            user=request.user,
            idempotency_key=f"api:{request.user.pk}:{key}" if key else None,
        )
    except TypeError as exc:
        raise invalid({}, str(exc)) from exc
    payment = payment_for(request, str(payment.pk), staff_sees_all=True)
    return json_response(
        {"refund": refund_json(refund, staff=True), "payment": payment_json(payment, staff=True)},
        status=200 if refund.replayed else 201,
    )


_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no", ""}


@api_endpoint("payment_status", ("GET", "POST"), "user")
def payment_status(request: HttpRequest) -> HttpResponse:
    """The owner's (or staff's) view of one payment.

    ``GET payment_status/?payment_id=<uuid>`` reads what is stored and never
    calls the provider. ``POST payment_status/`` with ``{"payment_id": "<uuid>"}``
    first pulls the truth from the provider (``services.sync_payment``), under
    the tighter ``payment_sync`` rate limit: a sync can create objects at the
    provider and re-send pending refunds, so it is never a GET.
    """
    errors: dict[str, str] = {}
    if request.method == "POST":
        data = read_json(request)
        errors = _unknown(data, {"payment_id"})
        raw_id = data.get("payment_id")
        if raw_id is not None and not isinstance(raw_id, str):
            errors["payment_id"] = "Must be a string."
    else:
        raw_id = request.GET.get("payment_id")
        if "sync" in request.GET:
            errors["sync"] = "A GET never calls the provider: POST payment_status/ to sync."
    if not raw_id and "payment_id" not in errors:
        errors["payment_id"] = "This field is required."
    if errors:
        raise invalid(errors)
    payment = payment_for(request, raw_id, staff_sees_all=True)
    if request.method == "POST":
        retry_after = security.check_rate_limit(request, "payment_sync")
        if retry_after is not None:
            raise rate_limited(retry_after)
        payment = services.sync_payment(payment)
    staff = _is_staff(request.user)
    body = payment_json(payment, staff=staff)
    if payment.user_id is not None and payment.user_id == request.user.pk:
        # Only the owner ever gets the front-end data (a Stripe client_secret).
        body["client"] = services.payment_client_data(payment)
    body["refunds"] = [
        refund_json(r, staff=staff)
        for r in Refund.objects.filter(payment_id=payment.pk).order_by("created_at")
    ]
    return json_response(body)


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


#: Dates the analytics take: far enough from ``date.min`` and ``date.max`` that the
#: range's arithmetic (a default start 29 days back, an end's following day) never overflows.
_DATES = (date(1900, 1, 1), date(9998, 12, 31))


def _date(value: str | None, name: str, errors: dict[str, str]) -> date | None:
    if not value:
        return None
    try:
        if not _ISO_DATE.fullmatch(value):
            raise ValueError(value)
        parsed = date.fromisoformat(value)
    except ValueError:
        errors[name] = "Use an ISO date: YYYY-MM-DD."
        return None
    if not _DATES[0] <= parsed <= _DATES[1]:
        errors[name] = f"Use a date from {_DATES[0]} to {_DATES[1]}."
        return None
    return parsed


@api_endpoint("payment_analytics", ("GET",), "staff")
def payment_analytics(request: HttpRequest) -> HttpResponse:
    """``GET payment_analytics/``: totals, rates, series and fraud signals (staff)."""
    errors: dict[str, str] = {}
    start = _date(request.GET.get("start"), "start", errors)
    end = _date(request.GET.get("end"), "end", errors)
    currency = request.GET.get("currency") or None
    if currency is not None:
        try:
            currency = money.normalize_currency(currency)
        except InvalidAmount as exc:
            errors["currency"] = str(exc)
    provider = request.GET.get("provider") or None
    if provider is not None and len(provider) > 64:
        errors["provider"] = "At most 64 characters."
    raw_min = request.GET.get("min_failures")
    min_failures = int(paygate_settings.ANALYTICS_FRAUD_MIN_FAILURES)
    if raw_min:
        if raw_min.isascii() and raw_min.isdigit() and 1 <= int(raw_min) <= 1000:
            min_failures = int(raw_min)
        else:
            errors["min_failures"] = "An integer from 1 to 1000."
    if errors:
        raise invalid(errors)
    try:
        start, end = analytics.resolve_range(start, end, timezone.localdate())
    except ValueError as exc:
        raise invalid({"end": str(exc)}) from None
    result = analytics.payment_analytics(
        start=start, end=end, currency=currency, provider=provider, min_failures=min_failures
    )
    return json_response(result)


#: Query parameters of ``GET payments/``; the second set is for staff only.
PAYMENTS_PARAMS = frozenset(
    {"status", "provider", "currency", "start", "end", "q", "page", "page_size"}
)
PAYMENTS_STAFF_PARAMS = frozenset({"needs_review", "review_code", "review_reason"})
PAYMENTS_PAGE_SIZE = 20
PAYMENTS_MAX_PAGE_SIZE = 100
MAX_SEARCH_LENGTH = 255


def _positive(value: str | None, name: str, errors: dict[str, str], *, most: int) -> int | None:
    if value is None:
        return None
    if value.isascii() and value.isdigit() and 1 <= int(value) <= most:
        return int(value)
    errors[name] = f"An integer from 1 to {most}."
    return None


@api_endpoint("payment_status", ("GET",), "user")
def payments(request: HttpRequest) -> HttpResponse:
    """``GET payments/``: search payments, newest first, a page at a time.

    Staff search every payment; a customer only their own (the same filters,
    without the staff-only ``needs_review`` and ``review_reason``). ``q`` is
    our id, the provider's id or (part of) the email address. Shares the rate
    limit of ``payment_status``.
    """
    staff = _is_staff(request.user)
    params = request.GET
    allowed = PAYMENTS_PARAMS | PAYMENTS_STAFF_PARAMS if staff else PAYMENTS_PARAMS
    errors = {
        name: ("For staff only." if name in PAYMENTS_STAFF_PARAMS else "Unknown parameter.")
        for name in params
        if name not in allowed
    }
    query = get_payment_model().objects.order_by("-created_at", "-pk")
    owner = request.user.pk
    if not staff:
        query = query.filter(user_id=owner) if owner is not None else query.none()
    statuses = [value for value in params.getlist("status") if value]
    known = {s.value for s in PaymentStatus}
    if any(value not in known for value in statuses):
        errors["status"] = f"One or more of: {', '.join(sorted(known))}."
    elif statuses:
        query = query.filter(status__in=statuses)
    provider = params.get("provider") or None
    if provider is not None:
        if len(provider) > 64:
            errors["provider"] = "At most 64 characters."
        query = query.filter(provider=provider)
    currency = params.get("currency") or None
    if currency is not None:
        try:
            query = query.filter(currency=money.normalize_currency(currency))
        except InvalidAmount as exc:
            errors["currency"] = str(exc)
    start = _date(params.get("start"), "start", errors)
    end = _date(params.get("end"), "end", errors)
    if start and end and end < start:
        errors["end"] = "Must not be before start."
    elif start or end:
        lower, upper = analytics.bounds(start or _DATES[0], end or _DATES[1])
        query = query.filter(created_at__gte=lower, created_at__lt=upper)
    review = params.get("needs_review", "").lower() if staff else ""
    if review:
        if review not in _TRUE | _FALSE:
            errors["needs_review"] = "Use 1 or 0."
        query = query.filter(needs_review=review in _TRUE)
    code = params.get("review_code", "") if staff else ""
    if code:
        if code not in ReviewReason.values:
            errors["review_code"] = "Not a review code."
        query = query.filter(review_code=code)
    reason = params.get("review_reason", "") if staff else ""
    if reason:
        if len(reason) > MAX_SEARCH_LENGTH or sql.unstorable_text(reason):
            errors["review_reason"] = f"At most {MAX_SEARCH_LENGTH} characters of text."
        query = query.filter(review_reason__icontains=reason)
    term = params.get("q", "").strip()
    if term:
        if len(term) > MAX_SEARCH_LENGTH or sql.unstorable_text(term):
            errors["q"] = f"At most {MAX_SEARCH_LENGTH} characters of text."
        found = Q(provider_payment_id=term) | Q(email__icontains=term)
        our_id = _uuid(term)
        if our_id is not None:
            found |= Q(pk=our_id)
        query = query.filter(found)
    page = _positive(params.get("page"), "page", errors, most=10**6) or 1
    size = (
        _positive(params.get("page_size"), "page_size", errors, most=PAYMENTS_MAX_PAGE_SIZE)
        or PAYMENTS_PAGE_SIZE
    )
    if errors:
        raise invalid(errors)
    count = query.count()
    rows = list(query[(page - 1) * size : page * size])
    return json_response(
        {
            "count": count,
            "page": page,
            "page_size": size,
            "next": page + 1 if page * size < count else None,
            "previous": page - 1 if page > 1 else None,
            "results": [payment_json(payment, staff=staff) for payment in rows],
        }
    )


@functools.lru_cache(maxsize=1)
def _openapi_document() -> str:
    return resources.files("django_paygate").joinpath("openapi.json").read_text("utf-8")


@api_endpoint("openapi_json", ("GET",), "public")
def openapi_json(request: HttpRequest) -> HttpResponse:
    """``GET openapi.json``: the OpenAPI document, with ``servers`` set to this mount point."""
    document = json.loads(_openapi_document())
    prefix = request.path[: -len("openapi.json")] if request.path.endswith("openapi.json") else "/"
    document["servers"] = [{"url": prefix.rstrip("/") or "/"}]
    response = JsonResponse(document)
    response["Cache-Control"] = "public, max-age=300"
    return response


__all__ = [
    "confirm_payment",
    "create_intent",
    "csrf_failure",
    "openapi_json",
    "payment_analytics",
    "payment_status",
    "payments",
    "process_refund",
]
