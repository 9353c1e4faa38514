"""Razorpay: Orders, Payments, captures, refunds and webhooks, on the official ``razorpay`` SDK.

One Razorpay *Order* per django-paygate payment (``receipt`` and
``notes.paygate_payment_id`` carry our id); the customer pays it in Razorpay
Checkout, which may make several *payment* attempts on the order. What the
adapter stores: the order id as ``provider_payment_id``, the id of the payment
that counts as ``provider_data["razorpay_payment_id"]``.

Razorpay's own rules it enforces or works around (docs/providers/razorpay.md
has the user-facing version):

* Checkout returns ``razorpay_order_id``, ``razorpay_payment_id`` and
  ``razorpay_signature`` = hex HMAC-SHA256 of ``"<order_id>|<payment_id>"``
  with the key secret. It is checked against the order id *we stored*, never
  the posted one (https://razorpay.com/docs/payments/payment-gateway/web-integration/standard/build-integration/).
* Capture takes the full authorized amount only; there is no void: an
  authorized payment that is not captured is refunded by Razorpay itself after
  the capture window (https://razorpay.com/docs/payments/payments/capture-settings/).
* Refunds are made idempotent with the ``X-Refund-Idempotency`` header
  (https://razorpay.com/docs/api/refunds/normal-refunds-idempotent); orders by
  looking the receipt up before creating, plus ``unique_receipt``.
* Webhooks: ``X-Razorpay-Signature`` = hex HMAC-SHA256 of the raw body with the
  webhook secret (not the key secret), ``X-Razorpay-Event-Id`` names the event
  (https://razorpay.com/docs/webhooks/validate-test/).

Transport: the SDK has no default timeout, resends without idempotency when
its retry is on, and ``print()``\\ s on network errors. The client here uses its
own :class:`requests.Session` subclass that applies the timeout and turns every
transport failure, 409/429/5xx answer and non-JSON body into an exception the
SDK does not catch, so the SDK's retry and print paths are never reached and no
SDK or ``requests`` exception leaves this module.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import requests

from django_paygate import __version__, money
from django_paygate.exceptions import (
    CheckoutVerificationError,
    ConfigurationError,
    InvalidAmount,
    InvalidTransition,
    ProviderError,
    ProviderIdempotencyError,
    ProviderUnavailable,
    WebhookVerificationError,
)
from django_paygate.providers.base import (
    BaseProvider,
    ProviderDispute,
    ProviderEvent,
    ProviderPayment,
    ProviderRefund,
    body_event_id,
    decode_json_body,
    hmac_sha256_hex,
    signature_matches,
)
from django_paygate.states import DisputeStatus, PaymentStatus, RefundStatus

try:
    import razorpay
    from razorpay.errors import (
        BadRequestError,
        GatewayError,
        ServerError,
        SignatureVerificationError,
    )
except ImportError:  # pragma: no cover - the "razorpay" extra is not installed
    razorpay = None

    class BadRequestError(Exception):  # type: ignore[no-redef]
        pass

    class GatewayError(Exception):  # type: ignore[no-redef]
        pass

    class ServerError(Exception):  # type: ignore[no-redef]
        pass

    class SignatureVerificationError(Exception):  # type: ignore[no-redef]
        pass


if TYPE_CHECKING:
    from django_paygate.models import AbstractPayment, Refund

logger = logging.getLogger("django_paygate.providers.razorpay")

P = PaymentStatus

SIGNATURE_HEADER = "X-Razorpay-Signature"
EVENT_ID_HEADER = "X-Razorpay-Event-Id"
DEFAULT_API_BASE = "https://api.razorpay.com"
NOTE_PAYMENT_ID = "paygate_payment_id"
NOTE_REFUND_ID = "paygate_refund_id"

#: Currencies Razorpay accepts (payments/international-payments.md, "Supported
#: Currencies"), minus the codes ISO 4217 has withdrawn (HRK, SLL, BGN). Foreign
#: currencies need International Payments enabled on the Razorpay account.
RAZORPAY_CURRENCIES = frozenset(
    {
        "AED", "ALL", "AMD", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BHD", "BIF",
        "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BZD", "CAD", "CHF", "CLP",
        "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP",
        "ETB", "EUR", "FJD", "GBP", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD",
        "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "ISK", "JMD", "JOD", "JPY",
        "KES", "KGS", "KHR", "KMF", "KRW", "KWD", "KYD", "KZT", "LAK", "LKR", "LRD",
        "LSL", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MUR", "MVR", "MWK",
        "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PEN",
        "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR",
        "SCR", "SEK", "SGD", "SOS", "SVC", "SZL", "THB", "TND", "TRY", "TTD", "TWD",
        "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VND", "VUV", "XAF", "XCD", "XOF",
        "XPF", "YER", "ZAR", "ZMW",
    }
)  # fmt: skip

#: Razorpay payment status -> ours. ``refunded`` depends on ``captured``
#: (see :func:`_payment_status`); ``created`` says nothing yet.
PAYMENT_STATUSES: Mapping[str, PaymentStatus] = {
    "authorized": P.AUTHORIZED,
    "captured": P.SUCCEEDED,
    "failed": P.FAILED,
}

#: Webhook event -> the status it reports when the entity carries none.
PAYMENT_EVENTS: Mapping[str, PaymentStatus] = {
    "payment.authorized": P.AUTHORIZED,
    "payment.captured": P.SUCCEEDED,
    "payment.failed": P.FAILED,
    "order.paid": P.SUCCEEDED,
}

REFUND_STATUSES: Mapping[str, RefundStatus] = {
    "pending": RefundStatus.PENDING,
    "processed": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
}

REFUND_EVENTS: Mapping[str, RefundStatus] = {
    "refund.created": RefundStatus.PENDING,
    "refund.processed": RefundStatus.SUCCEEDED,
    "refund.failed": RefundStatus.FAILED,
}

DISPUTE_STATUSES: Mapping[str, DisputeStatus] = {
    "open": DisputeStatus.OPEN,
    "created": DisputeStatus.OPEN,
    "action_required": DisputeStatus.OPEN,
    "under_review": DisputeStatus.UNDER_REVIEW,
    "won": DisputeStatus.WON,
    "lost": DisputeStatus.LOST,
    "closed": DisputeStatus.CLOSED,
}

DISPUTE_EVENT_PREFIX = "payment.dispute."

# Ids that go into URL paths: never anything but Razorpay's own id shapes.
_PAYMENT_ID = re.compile(r"pay_[A-Za-z0-9]{1,64}")
#: The ``provider_data`` key of the attempt a payment rests on.
ATTEMPT_KEY = "razorpay_payment_id"
_ORDER_ID = re.compile(r"order_[A-Za-z0-9]{1,64}")
_REFUND_KEY = re.compile(r"[A-Za-z0-9_-]{10,64}")
_EVENT_ID = re.compile(r"[\x21-\x7e]{1,255}")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_REFUND_PAGE = 100


class _TransportFailure(Exception):
    """Raised inside the session: the outcome of the call is unknown.

    Deliberately not a ``requests`` exception, so the SDK's ``except`` clauses
    (which print to stdout) never see it.
    """


class _GuardedSession(requests.Session):
    """A ``requests.Session`` that never hangs and never lets the SDK misread an answer.

    * a call without ``timeout=`` gets the provider's timeout;
    * transport errors (timeouts, refused connections, TLS errors) become
      :class:`_TransportFailure`;
    * 408, 409 ("request in progress"), 429 and 5xx answers become
      :class:`_TransportFailure`: the outcome is unknown and a retry with the
      same idempotency key is safe;
    * a body that is not JSON (an HTML error page from a proxy) too.

    Other 4xx JSON answers go back to the SDK, which raises its own
    ``BadRequestError`` (mapped by the provider).
    """

    def __init__(self, timeout: float | tuple[float, float]) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(  # type: ignore[override]
        self, method: str, url: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        failure = ""
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.Timeout as exc:
            failure = f"Razorpay did not answer in time ({type(exc).__name__})."
        except requests.RequestException as exc:
            failure = f"Razorpay could not be reached ({type(exc).__name__})."
        if failure:
            # Raised outside the except block: the requests exception (which
            # holds the request and its Authorization header) is not chained.
            raise _TransportFailure(failure)
        status = response.status_code
        path = urlsplit(str(response.url)).path
        logger.debug("Razorpay %s %s answered %s.", str(method).upper(), path, status)
        is_json = True
        if status != 204:
            try:
                response.json()
            except ValueError:
                is_json = False
        if not is_json:
            # An HTML error page from a proxy or load balancer, whatever the status.
            raise _TransportFailure(
                f"Razorpay answered HTTP {status} with a body that is not JSON."
            )
        if status in (408, 409, 429) or status >= 500:
            reason = ": a request with the same key is still in progress" if status == 409 else ""
            raise _TransportFailure(f"Razorpay answered HTTP {status}{reason}.")
        return response


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _attempt(payment_id: str) -> dict[str, str]:
    """``provider_data`` naming one attempt; nothing for what is not a payment id."""
    return {ATTEMPT_KEY: payment_id} if _PAYMENT_ID.fullmatch(payment_id) else {}


def _stored_attempt(payment: AbstractPayment) -> str:
    """The attempt ``payment`` rests on, or ""."""
    return _str(_dict(payment.provider_data).get(ATTEMPT_KEY))


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _our_id(value: Any) -> str | None:
    """Our payment id from a note or a receipt, when it is one (a UUID), else ``None``."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _notes(entity: Mapping[str, Any]) -> dict[str, Any]:
    # Razorpay sends ``"notes": []`` for an entity without notes.
    return _dict(entity.get("notes"))


def _items(answer: Any) -> list[dict[str, Any]]:
    """The entities of a Razorpay collection (``{"entity": "collection", "items": [...]}``)."""
    items = _dict(answer).get("items")
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _payment_status(entity: Mapping[str, Any]) -> PaymentStatus | None:
    """Our status for a Razorpay payment entity (``None``: not decided yet)."""
    status = _str(entity.get("status"))
    if status == "refunded":
        # Refunded after a capture: it succeeded (the refunds say the rest).
        # Refunded without a capture: Razorpay released an uncaptured
        # authorization (auto-refund), the payment never went through.
        return P.SUCCEEDED if entity.get("captured") is True else P.CANCELED
    return PAYMENT_STATUSES.get(status)


def _created_at(entity: Mapping[str, Any]) -> int:
    return _int(entity.get("created_at")) or 0


def refund_idempotency_key(key: str) -> str:
    """The ``X-Refund-Idempotency`` value for our idempotency key.

    Razorpay wants 10+ characters of ``[A-Za-z0-9_-]``. A key that already
    fits is sent as is; any other is replaced by a digest of it, so the same
    key always gives the same header.
    """
    if _REFUND_KEY.fullmatch(key):
        return key
    return "paygate-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


class RazorpayProvider(BaseProvider):
    """Razorpay Orders + Payments. Options: see docs/providers/razorpay.md."""

    name = "Razorpay"
    default_options: ClassVar[Mapping[str, Any]] = {
        "key_id": "",
        "key_secret": "",
        # A string, or a list while rotating. Not the key secret.
        "webhook_secret": "",
        # Seconds for every API call (a number, or a (connect, read) pair).
        "timeout": 15,
        # Razorpay's API; an http://127.0.0.1 test server is allowed too.
        "api_base": DEFAULT_API_BASE,
        # The business name Checkout shows.
        "checkout_name": "",
        # "normal" or "optimum" (instant when possible), for refunds we make and
        # for uncaptured manual-capture payments Razorpay releases.
        "refund_speed": "normal",
        # Ask Razorpay to refuse a second order with the same receipt.
        "unique_receipt": True,
        # Minutes during which Razorpay captures automatic-capture payments itself
        # (late authorizations included); None keeps the account's Dashboard setting.
        "automatic_expiry_period": None,
        # Razorpay Checkout.js, as the shipped checkout page loads it (a stand-in for tests).
        "script_url": "https://checkout.razorpay.com/v1/checkout.js",
    }
    confirmation_fields: ClassVar[Mapping[str, int]] = {
        "razorpay_order_id": 255,
        "razorpay_payment_id": 255,
        "razorpay_signature": 255,
    }
    required_options = ("key_id", "key_secret")
    secret_options = ("key_secret", "webhook_secret")
    supported_currencies = frozenset(
        c for c in RAZORPAY_CURRENCIES if c in money.CURRENCY_EXPONENTS
    )
    #: "The amount must be at least INR 1.00": one unit of the currency.
    minimum_amounts: ClassVar[Mapping[str, int]] = {
        code: 10 ** money.CURRENCY_EXPONENTS[code] for code in supported_currencies
    }
    webhook_headers_to_keep = ("user-agent", "content-type", "x-razorpay-event-id")
    # X-Razorpay-Event-Id is outside the signed body: the inbox deduplicates on the body.
    event_id_signed = False
    attempt_key = ATTEMPT_KEY

    def __init__(self, alias: str, **options: Any) -> None:
        super().__init__(alias, **options)
        if razorpay is None:  # pragma: no cover
            raise ConfigurationError(
                "The Razorpay provider needs the razorpay SDK: "
                'pip install "django-paygate[razorpay]".'
            )
        opts = self.options
        for key in ("key_id", "key_secret"):
            if not isinstance(opts[key], str):
                raise ConfigurationError(f"Razorpay option {key!r} of {alias!r} must be a string.")
        secrets = opts["webhook_secret"]
        secret_list = [secrets] if isinstance(secrets, str) else secrets
        if not isinstance(secret_list, (list, tuple)) or not all(
            isinstance(s, str) for s in secret_list
        ):
            raise ConfigurationError(
                f"Razorpay option 'webhook_secret' of {alias!r} must be a string "
                "or a list of strings."
            )
        if opts["key_secret"] in secret_list:
            raise ConfigurationError(
                f"Razorpay option 'webhook_secret' of {alias!r} must not be the key secret: "
                "set the secret you chose for the webhook in the Razorpay Dashboard."
            )
        self.timeout = self._check_timeout(opts["timeout"])
        self.api_base = self._check_api_base(str(opts["api_base"] or DEFAULT_API_BASE))
        if opts["refund_speed"] not in ("normal", "optimum"):
            raise ConfigurationError(
                f"Razorpay option 'refund_speed' of {alias!r} must be 'normal' or 'optimum'."
            )
        period = opts["automatic_expiry_period"]
        if period is not None and not (_int(period) is not None and 12 <= period <= 7200):
            raise ConfigurationError(
                f"Razorpay option 'automatic_expiry_period' of {alias!r} must be None or "
                "minutes from 12 to 7200."
            )
        self._session = _GuardedSession(self.timeout)
        self.client = razorpay.Client(
            session=self.session,
            auth=(opts["key_id"], opts["key_secret"]),
            base_url=self.api_base,
        )
        # The SDK's retry resends without idempotency keys and prints: keep it off.
        self.client.enable_retry(False)
        self.client.set_app_details({"title": "django-paygate", "version": __version__})

    def _check_timeout(self, value: Any) -> float | tuple[float, float]:
        def positive(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0

        if positive(value):
            return float(value)
        if isinstance(value, (tuple, list)) and len(value) == 2 and all(map(positive, value)):
            return (float(value[0]), float(value[1]))
        raise ConfigurationError(
            f"Razorpay option 'timeout' of {self.alias!r} must be seconds > 0 "
            "or a (connect, read) pair."
        )

    def _check_api_base(self, value: str) -> str:
        parts = urlsplit(value)
        secure = parts.scheme == "https"
        local = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
        if not parts.hostname or not (secure or local) or parts.query or parts.fragment:
            raise ConfigurationError(
                f"Razorpay option 'api_base' of {self.alias!r} must be an https:// URL "
                "(or http:// on the loopback interface, for tests)."
            )
        return value.rstrip("/")

    # -- transport ------------------------------------------------------------

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Run one SDK call with the timeout; map every failure to our exceptions."""
        kwargs["timeout"] = self.timeout
        try:
            answer = fn(*args, **kwargs)
        except _TransportFailure as exc:
            raise ProviderUnavailable(str(exc), provider=self.alias) from None
        except BadRequestError as exc:
            raise self._refusal(str(exc)) from None
        except (GatewayError, ServerError) as exc:
            message = self._scrub(str(exc)) or "no description"
            raise ProviderUnavailable(
                f"Razorpay reported a {type(exc).__name__}: {message}", provider=self.alias
            ) from None
        except SignatureVerificationError:  # pragma: no cover - API calls never raise it
            raise CheckoutVerificationError(
                "Razorpay signature verification failed.", provider=self.alias
            ) from None
        except Exception as exc:  # anything else the SDK or requests may raise
            raise ProviderUnavailable(
                f"Unexpected error in the Razorpay client ({type(exc).__name__}).",
                provider=self.alias,
            ) from None
        if not isinstance(answer, dict):
            raise ProviderUnavailable(
                "Razorpay answered with an unexpected body.", provider=self.alias
            )
        return answer

    def _refusal(self, description: str) -> ProviderError:
        message = self._scrub(description) or "Razorpay refused the request."
        if "idempotency key" in message.lower():
            return ProviderIdempotencyError(f"Razorpay: {message}", provider=self.alias)
        return ProviderError(f"Razorpay: {message}", provider=self.alias)

    def _scrub(self, text: str) -> str:
        """A provider message, cut short and with no secret in it."""
        return self.scrub(text[:300], mask="***")

    # -- amounts --------------------------------------------------------------

    def validate_amount(self, amount: int, currency: str) -> None:
        super().validate_amount(amount, currency)
        if money.CURRENCY_EXPONENTS.get(currency) == 3 and amount % 10:
            raise InvalidAmount(
                f"Razorpay needs three-decimal amounts to end in 0: {amount} {currency} "
                f"cannot be charged (use {amount - amount % 10} or {amount - amount % 10 + 10}).",
                provider=self.alias,
            )

    # -- orders ---------------------------------------------------------------

    def _order_id(self, payment: AbstractPayment) -> str:
        order_id = payment.provider_payment_id or ""
        if not _ORDER_ID.fullmatch(order_id):
            raise ProviderError("This payment has no Razorpay order yet.", provider=self.alias)
        return order_id

    def _find_order(self, payment: AbstractPayment) -> dict[str, Any] | None:
        """Our order for ``payment``, found by its receipt (a retried create must not make two)."""
        receipt = str(payment.pk)
        found = [
            order
            for order in _items(self._call(self.client.order.all, {"receipt": receipt}))
            if order.get("receipt") == receipt and _ORDER_ID.fullmatch(_str(order.get("id")))
        ]
        if not found:
            return None
        ours = [o for o in found if _notes(o).get(NOTE_PAYMENT_ID) in (None, receipt)]
        return min(ours or found, key=_created_at)

    def create_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        self.validate_amount(payment.amount, payment.currency)
        order = self._find_order(payment)
        if order is None:
            body: dict[str, Any] = {
                "amount": payment.amount,
                "currency": payment.currency,
                "receipt": str(payment.pk),
                "notes": {NOTE_PAYMENT_ID: str(payment.pk)},
            }
            if self.options["unique_receipt"]:
                body["unique_receipt"] = True
            capture = self._capture_settings(payment)
            if capture:
                body["payment"] = capture
            order = self._call(self.client.order.create, body)
        elif (
            order.get("amount") != payment.amount or _str(order.get("currency")) != payment.currency
        ):
            raise ProviderIdempotencyError(
                "A Razorpay order with this payment's receipt exists with another amount "
                "or currency.",
                provider=self.alias,
            )
        order_id = _str(order.get("id"))
        if not _ORDER_ID.fullmatch(order_id):
            raise ProviderUnavailable("Razorpay answered without an order id.", provider=self.alias)
        paid = order.get("status") == "paid"
        return ProviderPayment(
            provider_payment_id=order_id,
            status=P.SUCCEEDED if paid else P.PENDING,
            amount=_int(order.get("amount")),
            currency=_str(order.get("currency")) or None,
            amount_captured=_int(order.get("amount_paid")) if paid else None,
            client_data=self._client_data(payment, order_id),
            our_payment_id=str(payment.pk),
        )

    def _capture_settings(self, payment: AbstractPayment) -> dict[str, Any] | None:
        """The order's ``payment`` capture settings (they override the Dashboard's)."""
        speed = self.options["refund_speed"]
        if payment.capture_method == "manual":
            return {"capture": "manual", "capture_options": {"refund_speed": speed}}
        period = self.options["automatic_expiry_period"]
        if period is None:
            return None
        return {
            "capture": "automatic",
            "capture_options": {"automatic_expiry_period": period, "refund_speed": speed},
        }

    def client_data(self, payment: AbstractPayment) -> Mapping[str, Any]:
        return self._client_data(payment, self._order_id(payment))

    def _client_data(self, payment: AbstractPayment, order_id: str) -> dict[str, Any]:
        """The options Razorpay Checkout needs (``new Razorpay(options)``); no secret."""
        data: dict[str, Any] = {
            "provider": "razorpay",
            "key_id": self.options["key_id"],
            "order_id": order_id,
            "amount": payment.amount,
            "currency": payment.currency,
            "name": self.options["checkout_name"],
            "prefill": {"email": payment.email} if payment.email else {},
            # Checkout copies these to the payment: webhooks then carry our id.
            "notes": {NOTE_PAYMENT_ID: str(payment.pk)},
        }
        if payment.description:
            data["description"] = payment.description[:255]
        return data

    # -- payments -------------------------------------------------------------

    def _fetch(self, payment_id: str) -> dict[str, Any]:
        return self._call(self.client.payment.fetch, payment_id, {})

    def _order_payments(self, order_id: str) -> list[dict[str, Any]]:
        return _items(self._call(self.client.order.payments, order_id, {}))

    def _result(
        self,
        payment: AbstractPayment,
        order_id: str,
        entity: Mapping[str, Any],
        status: PaymentStatus | None,
        **extra: Any,
    ) -> ProviderPayment:
        amount = _int(entity.get("amount"))
        payment_id = _str(entity.get("id"))
        kept = status in (P.AUTHORIZED, P.SUCCEEDED)
        return ProviderPayment(
            provider_payment_id=order_id,
            status=status,
            amount=amount,
            currency=_str(entity.get("currency")) or None,
            amount_captured=amount if status == P.SUCCEEDED else None,
            failure_code=_str(entity.get("error_code"))[:128] if status == P.FAILED else "",
            failure_message=_str(entity.get("error_description"))[:1000]
            if status == P.FAILED
            else "",
            provider_data=_attempt(payment_id) if kept else {},
            our_payment_id=str(payment.pk),
            **extra,
        )

    def confirm_payment(
        self, payment: AbstractPayment, *, idempotency_key: str, **data: Any
    ) -> ProviderPayment:
        """Check Checkout's answer against the stored order, then settle the payment.

        Raises :class:`CheckoutVerificationError` (nothing changes) when the
        posted order id is not ours or the signature does not match.
        """
        expected = {"razorpay_order_id", "razorpay_payment_id", "razorpay_signature"}
        unknown = sorted(set(data) - expected)
        if unknown:
            raise ProviderError(
                f"Unexpected confirmation field {unknown[0]!r}.", provider=self.alias
            )
        posted_order = data.get("razorpay_order_id")
        payment_id = data.get("razorpay_payment_id")
        signature = data.get("razorpay_signature")
        if not (
            isinstance(posted_order, str)
            and isinstance(payment_id, str)
            and isinstance(signature, str)
            and posted_order
            and payment_id
            and signature
        ):
            raise CheckoutVerificationError(
                "razorpay_order_id, razorpay_payment_id and razorpay_signature are required.",
                provider=self.alias,
            )
        order_id = self._order_id(payment)
        if posted_order != order_id:
            raise CheckoutVerificationError(
                "The Checkout response is for another order.", provider=self.alias
            )
        digest = self.checkout_signature(order_id, payment_id)
        candidate = signature.lower() if signature.isascii() else signature
        if not _PAYMENT_ID.fullmatch(payment_id) or not signature_matches([candidate], [digest]):
            raise CheckoutVerificationError(
                "The Checkout signature does not match this payment.", provider=self.alias
            )

        entity = self._fetch(payment_id)
        if entity.get("order_id") != order_id:
            raise CheckoutVerificationError(
                "Razorpay reports this payment on another order.", provider=self.alias
            )
        status = _payment_status(entity)
        if status == P.AUTHORIZED and payment.capture_method != "manual":
            return self._capture(payment, order_id, entity)
        if status is None:
            # Paid in Checkout but not settled yet (a bank still answering):
            # webhooks or sync finish it.
            status = P.PROCESSING
        return self._result(payment, order_id, entity, status)

    def checkout_signature(self, order_id: str, payment_id: str) -> str:
        """The signature Checkout returns for a payment on an order (key-secret HMAC)."""
        return hmac_sha256_hex(self.options["key_secret"], f"{order_id}|{payment_id}".encode())

    def _capture(
        self, payment: AbstractPayment, order_id: str, entity: Mapping[str, Any]
    ) -> ProviderPayment:
        """Capture an authorized payment for its full amount (Razorpay takes nothing else)."""
        payment_id = _str(entity.get("id"))
        amount = _int(entity.get("amount"))
        if amount is None:
            raise ProviderUnavailable(
                "Razorpay reported a payment without an amount.", provider=self.alias
            )
        try:
            captured = self._call(
                self.client.payment.capture,
                payment_id,
                amount,
                {"currency": _str(entity.get("currency")) or payment.currency},
            )
        except ProviderIdempotencyError:
            raise
        except ProviderError as exc:
            if isinstance(exc, ProviderUnavailable) or "already" not in str(exc).lower():
                raise
            captured = self._fetch(payment_id)  # "already captured": read what is true
        return self._result(payment, order_id, captured, _payment_status(captured))

    def capture_payment(
        self, payment: AbstractPayment, *, amount: int, idempotency_key: str
    ) -> ProviderPayment:
        if amount != payment.amount:
            raise InvalidAmount(
                "Razorpay captures only the full authorized amount "
                f"({money.format_money(payment.amount, payment.currency)}).",
                provider=self.alias,
            )
        order_id = self._order_id(payment)
        entity = self._payment_entity(payment, order_id, want=P.AUTHORIZED)
        status = _payment_status(entity)
        if status == P.SUCCEEDED:
            return self._result(payment, order_id, entity, status)
        if status != P.AUTHORIZED:
            raise InvalidTransition(
                f"Razorpay reports the payment as {_str(entity.get('status')) or 'unknown'}, "
                "not authorized.",
                provider=self.alias,
            )
        return self._capture(payment, order_id, entity)

    def _payment_entity(
        self, payment: AbstractPayment, order_id: str, *, want: PaymentStatus
    ) -> dict[str, Any]:
        """The Razorpay payment that counts: the one we stored, else the order's best one."""
        stored = _stored_attempt(payment)
        if _PAYMENT_ID.fullmatch(stored):
            entity = self._fetch(stored)
            if entity.get("order_id") == order_id and _payment_status(entity) in (
                want,
                P.SUCCEEDED,
            ):
                return entity
        chosen, _ = self._choose(self._order_payments(order_id))
        if chosen is None or _payment_status(chosen) not in (want, P.SUCCEEDED):
            raise InvalidTransition(
                f"Razorpay has no {want.value} payment on this order.", provider=self.alias
            )
        return chosen

    @staticmethod
    def _choose(
        entities: list[dict[str, Any]],
    ) -> tuple[dict[str, Any] | None, PaymentStatus | None]:
        """The payment that decides an order's outcome, and our status for the order.

        A captured payment wins, then an authorized one. While an attempt is
        still in progress (``created``) nothing is decided. Then an uncaptured
        authorization Razorpay released (canceled), then the latest failure.
        No attempt at all: pending.
        """
        by_status: dict[PaymentStatus | None, list[dict[str, Any]]] = {}
        for entity in sorted(entities, key=_created_at, reverse=True):
            by_status.setdefault(_payment_status(entity), []).append(entity)
        for status in (P.SUCCEEDED, P.AUTHORIZED):
            if by_status.get(status):
                return by_status[status][0], status
        if by_status.get(None):
            return by_status[None][0], None
        for status in (P.CANCELED, P.FAILED):
            if by_status.get(status):
                return by_status[status][0], status
        return None, P.PENDING

    def cancel_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        """Cancel an order nobody has paid.

        Razorpay has no API to cancel an order or void an authorization: an
        order without a successful payment is simply abandoned (canceled
        here), an authorized payment is refused with :class:`InvalidTransition`
        (Razorpay refunds it itself when the capture window ends, and the
        refund webhook or a sync then cancels it here), a captured one too
        (refund it instead).
        """
        order_id = self._order_id(payment)
        _chosen, status = self._choose(self._order_payments(order_id))
        if status == P.SUCCEEDED:
            raise InvalidTransition(
                "Razorpay captured this payment: refund it instead of canceling it.",
                provider=self.alias,
            )
        if status == P.AUTHORIZED:
            raise InvalidTransition(
                "Razorpay cannot void an authorized payment. Capture it, or let Razorpay "
                "refund it automatically when the capture window ends; it is canceled here "
                "when Razorpay reports that refund.",
                provider=self.alias,
            )
        if status is None:
            raise InvalidTransition(
                "A payment is in progress on this Razorpay order; try again later.",
                provider=self.alias,
            )
        return ProviderPayment(
            provider_payment_id=order_id, status=P.CANCELED, our_payment_id=str(payment.pk)
        )

    def fetch_payment(self, payment: AbstractPayment) -> ProviderPayment:
        order_id = payment.provider_payment_id or ""
        order: dict[str, Any] = {}
        if not _ORDER_ID.fullmatch(order_id):
            order = self._find_order(payment) or {}
            if not order:
                return ProviderPayment(provider_payment_id=None, status=None)
            order_id = _str(order.get("id"))
        entities = self._order_payments(order_id)
        chosen, status = self._choose(entities)
        captured = [e for e in entities if _payment_status(e) == P.SUCCEEDED]
        stored = _stored_attempt(payment)
        chosen = next((e for e in captured if e.get("id") == stored), chosen)
        if chosen is None:
            return ProviderPayment(
                provider_payment_id=order_id,
                status=status,
                # Found by receipt: its amount must be ours (else the payment needs review).
                amount=_int(order.get("amount")),
                currency=_str(order.get("currency")) or None,
                our_payment_id=str(payment.pk),
            )
        refunds: tuple[ProviderRefund, ...] = ()
        if status == P.SUCCEEDED:
            refunds = tuple(
                self._refund_result(r, order_id) for r in self._refunds(_str(chosen.get("id")))
            )
        result = self._result(payment, order_id, chosen, status, refunds=refunds)
        if len(captured) > 1:
            # The customer paid twice: report all of it, so the payment is flagged.
            total = sum(_int(e.get("amount")) or 0 for e in captured)
            result = replace(result, amount_captured=total)
        return result

    def _refunds(self, payment_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = _items(
                self._call(
                    self.client.payment.fetch_multiple_refund,
                    payment_id,
                    {"count": _REFUND_PAGE, "skip": len(found)},
                )
            )
            found += page
            if len(page) < _REFUND_PAGE:
                return found

    # -- refunds --------------------------------------------------------------

    def refund_payment(
        self, payment: AbstractPayment, refund: Refund, *, idempotency_key: str
    ) -> ProviderRefund:
        if refund.currency != payment.currency:
            raise InvalidAmount("A refund is made in the payment's currency.", provider=self.alias)
        # Refunds follow the charges' rules: at least one unit, three decimals ending in 0.
        self.validate_amount(refund.amount, refund.currency)
        order_id = self._order_id(payment)
        entity = self._payment_entity(payment, order_id, want=P.SUCCEEDED)
        body = {
            "amount": refund.amount,
            "speed": self.options["refund_speed"],
            "receipt": str(refund.pk),
            "notes": {NOTE_REFUND_ID: str(refund.pk), NOTE_PAYMENT_ID: str(payment.pk)},
        }
        answer = self._call(
            self.client.payment.refund,
            _str(entity.get("id")),
            body,
            headers={"X-Refund-Idempotency": refund_idempotency_key(idempotency_key)},
        )
        result = self._refund_result(answer, order_id)
        if not result.provider_refund_id:
            raise ProviderUnavailable("Razorpay answered without a refund id.", provider=self.alias)
        return result

    @staticmethod
    def _refund_result(
        entity: Mapping[str, Any], order_id: str | None, status: RefundStatus | None = None
    ) -> ProviderRefund:
        notes = _notes(entity)
        our_id = notes.get(NOTE_REFUND_ID)
        return ProviderRefund(
            provider_refund_id=_str(entity.get("id")),
            status=REFUND_STATUSES.get(_str(entity.get("status")))
            or status
            or RefundStatus.PENDING,
            amount=_int(entity.get("amount")) or 0,
            currency=_str(entity.get("currency")),
            provider_payment_id=order_id,
            our_refund_id=our_id if isinstance(our_id, str) else None,
            provider_data=_attempt(_str(entity.get("payment_id"))),
        )

    # -- webhooks -------------------------------------------------------------

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Check ``X-Razorpay-Signature`` over the raw body with each webhook secret.

        Upper-case hex is accepted (it is the same digest); a signature that is
        not ASCII simply does not match.
        """
        signature = headers.get(SIGNATURE_HEADER)
        if not isinstance(signature, str) or not signature.strip():
            raise WebhookVerificationError(
                f"Missing {SIGNATURE_HEADER} header.", provider=self.alias
            )
        secrets = self.webhook_secrets()
        if not secrets:
            raise WebhookVerificationError(
                f"No webhook_secret is configured for {self.alias!r}.", provider=self.alias
            )
        candidate = signature.lower() if signature.isascii() else signature
        expected = [hmac_sha256_hex(secret, bytes(body)) for secret in secrets]
        if not signature_matches([candidate], expected):
            raise WebhookVerificationError(
                f"The {SIGNATURE_HEADER} does not match the body.", provider=self.alias
            )

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        event = decode_json_body(body)
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            raise WebhookVerificationError("The body is not a Razorpay event.", provider=self.alias)
        event_type = event["event"]
        event_id = _str(headers.get(EVENT_ID_HEADER)).strip()
        if not _EVENT_ID.fullmatch(event_id):
            # Razorpay always sends the header; without it, the same body is the same event.
            event_id = body_event_id(body)
        payload = _dict(event.get("payload"))
        pay = _dict(_dict(payload.get("payment")).get("entity"))
        order = _dict(_dict(payload.get("order")).get("entity"))
        refund = _dict(_dict(payload.get("refund")).get("entity"))
        dispute = _dict(_dict(payload.get("dispute")).get("entity"))

        order_id = _str(order.get("id")) or _str(pay.get("order_id"))
        order_id = order_id if _ORDER_ID.fullmatch(order_id) else ""
        if pay and not order_id:
            # Every payment of ours is on an order: an orderless one (Checkout opened
            # with our public key_id) is not ours, whatever its browser-set notes say.
            return ProviderEvent(event_id=event_id, type=event_type[:128])
        # Notes are untrusted: a payment's come from the customer's browser (Checkout
        # options). Only a well-formed id of ours is taken; anything else is as if absent.
        our_id = next(
            (
                found
                for found in map(
                    _our_id,
                    (
                        _notes(refund).get(NOTE_PAYMENT_ID),
                        _notes(pay).get(NOTE_PAYMENT_ID),
                        _notes(order).get(NOTE_PAYMENT_ID),
                        order.get("receipt"),
                    ),
                )
                if found
            ),
            None,
        )
        created = _int(event.get("created_at"))
        base = ProviderEvent(
            event_id=event_id,
            type=event_type[:128],
            our_payment_id=our_id,
            occurred_at=datetime.fromtimestamp(created, tz=timezone.utc) if created else None,
        )

        if event_type.startswith(DISPUTE_EVENT_PREFIX) and dispute:
            dispute_status = DISPUTE_STATUSES.get(
                _str(dispute.get("status"))
            ) or DISPUTE_STATUSES.get(event_type[len(DISPUTE_EVENT_PREFIX) :])
            if dispute_status is None or not _str(dispute.get("id")):
                return base
            reason = _str(dispute.get("reason_code")) or _str(dispute.get("reason_description"))
            return replace(
                base,
                dispute=ProviderDispute(
                    provider_dispute_id=_str(dispute.get("id")),
                    status=dispute_status,
                    amount=_int(dispute.get("amount")) or 0,
                    currency=_str(dispute.get("currency")),
                    provider_payment_id=order_id or None,
                    reason=reason[:255],
                ),
            )

        if event_type in REFUND_EVENTS and refund and _str(refund.get("id")):
            if pay and pay.get("captured") is False:
                # Razorpay's auto-refund of an authorization nobody captured: the
                # payment never went through; no money was ever ours to refund.
                return replace(
                    base,
                    payment=ProviderPayment(
                        provider_payment_id=order_id or None,
                        status=P.CANCELED,
                        our_payment_id=our_id,
                        # Which attempt was released: another one may still be authorized.
                        provider_data=_attempt(_str(pay.get("id"))),
                    ),
                )
            return replace(
                base,
                refund=self._refund_result(refund, order_id or None, REFUND_EVENTS[event_type]),
            )

        if event_type in PAYMENT_EVENTS and (pay or order):
            if event_type == "order.paid":
                status: PaymentStatus | None = P.SUCCEEDED
                entity = order or pay
                amount = _int(order.get("amount")) if order else _int(pay.get("amount"))
            else:
                status = _payment_status(pay) or PAYMENT_EVENTS[event_type]
                entity = pay
                amount = _int(pay.get("amount"))
            payment_id = _str(pay.get("id"))
            kept = status in (P.AUTHORIZED, P.SUCCEEDED)
            return replace(
                base,
                payment=ProviderPayment(
                    provider_payment_id=order_id or None,
                    status=status,
                    amount=amount,
                    currency=_str(entity.get("currency")) or None,
                    amount_captured=(
                        (_int(order.get("amount_paid")) if order else None) or amount
                        if status == P.SUCCEEDED
                        else None
                    ),
                    failure_code=_str(pay.get("error_code"))[:128] if status == P.FAILED else "",
                    failure_message=(
                        _str(pay.get("error_description"))[:1000] if status == P.FAILED else ""
                    ),
                    provider_data=_attempt(payment_id) if kept else {},
                    our_payment_id=our_id,
                ),
            )
        return base  # payment.pending, refund.speed_changed, ...: stored and ignored


__all__ = [
    "RAZORPAY_CURRENCIES",
    "CheckoutVerificationError",
    "RazorpayProvider",
    "refund_idempotency_key",
]
