"""Stripe, through PaymentIntents and the official ``stripe`` SDK.

Configure it as an alias in ``PAYGATE["PROVIDERS"]`` (see docs/providers/stripe.md)::

    "stripe": {
        "BACKEND": "django_paygate.providers.stripe.StripeProvider",
        "OPTIONS": {"secret_key": "sk_test_...", "publishable_key": "pk_test_...",
                    "webhook_secret": "whsec_..."},
    }

What this adapter guarantees:

- One :class:`stripe.StripeClient` per provider instance, built on first use,
  with an explicit timeout and retry count. Nothing is set on the ``stripe``
  module (no global ``stripe.api_key``).
- Every POST carries the deterministic ``Idempotency-Key`` the services derive
  from our row; a call made of two POSTs (attach, then confirm) derives one
  key per POST from it. The SDK's own retries reuse the same key.
- Amounts are converted between our ISO 4217 minor units and Stripe's
  (https://docs.stripe.com/currencies): ISK and UGX are whole units in ISO but
  two-decimal in Stripe's API, MGA the other way round; three-decimal
  currencies must end in 0; minimum charge amounts per currency. Anything
  Stripe cannot charge is refused with :class:`InvalidAmount` before any
  network call.
- Stripe exceptions never escape: they become :mod:`django_paygate.exceptions`
  errors whose messages are redacted (Stripe's error text can echo a masked
  key, and ``StripeError.args`` / ``http_body`` hold whole response bodies).
  The SDK's own DEBUG log (which prints response bodies, ``client_secret``
  included) is redacted by a filter on the ``stripe`` logger.
- Webhooks are verified here, not by the SDK: several ``v1`` signatures and
  several secrets (rotation), a tolerance applied to timestamps in the past
  *and* in the future, and every malformed input is a
  :class:`WebhookVerificationError` (HTTP 400), never a ``TypeError``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

try:
    import stripe
except ImportError:  # the "stripe" extra is not installed: the registry refuses the provider
    stripe = None  # type: ignore[assignment]

from django_paygate import money
from django_paygate.exceptions import (
    ConfigurationError,
    InvalidAmount,
    PaygateError,
    PaymentDeclined,
    ProviderError,
    ProviderIdempotencyError,
    ProviderRequestInProgress,
    ProviderUnavailable,
    WebhookVerificationError,
)
from django_paygate.providers.base import (
    BaseProvider,
    ProviderDispute,
    ProviderEvent,
    ProviderPayment,
    ProviderRefund,
    decode_json_body,
    verify_timestamped_hmac,
)
from django_paygate.states import DisputeStatus, PaymentStatus, RefundStatus

if TYPE_CHECKING:
    from django_paygate.models import AbstractPayment, Refund

logger = logging.getLogger("django_paygate.providers.stripe")

SIGNATURE_HEADER = "Stripe-Signature"
METADATA_PAYMENT_KEY = "paygate_payment_id"
METADATA_REFUND_KEY = "paygate_refund_id"

# ---------------------------------------------------------------------------
# Currencies (https://docs.stripe.com/currencies, checked 2025)
# ---------------------------------------------------------------------------

#: Currencies Stripe charges in whole units ("zero-decimal").
STRIPE_ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF",
     "VND", "VUV", "XAF", "XOF", "XPF"}
)  # fmt: skip
#: Three-decimal currencies: the amount's last digit must be 0.
STRIPE_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
#: "Special cases": ISK and UGX became zero-decimal, but Stripe's API keeps them
#: two-decimal with "00" as the decimals (5 ISK is ``500``). HUF and TWD are
#: zero-decimal for payouts only; charges keep two decimals, as in ISO 4217.
STRIPE_TWO_DECIMAL_WHOLE_UNITS = frozenset({"ISK", "UGX"})
#: ISO 4217 codes Stripe does not charge in: fund and precious-metal codes,
#: four-decimal units, three-decimal currencies outside Stripe's list, and
#: currencies of sanctioned countries.
STRIPE_UNSUPPORTED = frozenset(
    {"BOV", "CHE", "CHW", "CLF", "COU", "CUC", "CUP", "IQD", "IRR", "KPW", "LYD",
     "MXV", "SYP", "USN", "UYI", "UYW"}
)  # fmt: skip
#: Card payments accept at most 12 digits of Stripe minor units.
STRIPE_MAX_API_AMOUNT = 999_999_999_999

#: Minimum charge per currency, in major units as Stripe publishes them. Stripe
#: also requires converted charges to meet the minimum of the settlement
#: currency, which only Stripe can check. Subclass and override
#: ``minimum_amounts`` to change the table.
_MINIMUMS_MAJOR = {
    "USD": "0.50", "AED": "2.00", "ARS": "0.50", "AUD": "0.50", "BRL": "0.50",
    "CAD": "0.50", "CHF": "0.50", "COP": "0.50", "CZK": "15.00", "DKK": "2.50",
    "EUR": "0.50", "GBP": "0.30", "HKD": "4.00", "HUF": "175.00", "IDR": "0.50",
    "ILS": "0.50", "INR": "0.50", "JPY": "50", "KRW": "50", "MXN": "10",
    "MYR": "2.00", "NOK": "3.00", "NZD": "0.50", "PHP": "0.50", "PLN": "2.00",
    "RON": "2.00", "RUB": "0.50", "SEK": "3.00", "SGD": "0.50", "THB": "10",
    "ZAR": "0.50",
}  # fmt: skip
MINIMUM_AMOUNTS: Mapping[str, int] = {
    code: money.to_minor(value, code) for code, value in _MINIMUMS_MAJOR.items()
}


def api_exponent(currency: str) -> int:
    """Decimal places of ``currency`` in Stripe's ``amount`` fields."""
    if currency in STRIPE_ZERO_DECIMAL:
        return 0
    if currency in STRIPE_THREE_DECIMAL:
        return 3
    return 2


def to_stripe_amount(amount: int, currency: str) -> int:
    """Our minor units -> Stripe's, or :class:`InvalidAmount` if Stripe cannot express it."""
    shift = api_exponent(currency) - money.exponent(currency)
    if shift >= 0:
        api = amount * 10**shift
    else:
        unit = 10**-shift
        if amount % unit:
            raise InvalidAmount(
                f"Stripe charges {currency} in whole units: "
                f"{money.format_money(amount, currency)} is not a whole amount."
            )
        api = amount // unit
    if currency in STRIPE_THREE_DECIMAL and api % 10:
        raise InvalidAmount(
            f"Stripe requires {currency} amounts to end in 0 (the third decimal): "
            f"{money.format_money(amount, currency)} cannot be charged; round it to "
            f"{money.format_money(amount - amount % 10, currency)} or "
            f"{money.format_money(amount - amount % 10 + 10, currency)}."
        )
    if api > STRIPE_MAX_API_AMOUNT:
        raise InvalidAmount(f"{money.format_money(amount, currency)} is above Stripe's maximum.")
    return api


def from_stripe_amount(api: Any, currency: str) -> int:
    """Stripe's minor units -> ours. Raises :class:`InvalidAmount` (a ``ValueError``)."""
    if isinstance(api, bool) or not isinstance(api, int) or api < 0:
        raise InvalidAmount("Stripe sent an amount that is not a non-negative integer.")
    shift = api_exponent(currency) - money.exponent(currency)
    if shift >= 0:
        unit = 10**shift
        if api % unit:
            raise InvalidAmount(f"Stripe sent a fractional {currency} amount ({api}).")
        return api // unit
    return int(api * 10**-shift)


# ---------------------------------------------------------------------------
# Secret hygiene
# ---------------------------------------------------------------------------

_SECRET_PATTERNS = (
    # "client_secret": "...", client_secret=... (JSON, logfmt, form bodies).
    (
        re.compile(r"""(client_secret\\?["']?\s*[:=]\s*\\?["']?)[^"'\\\s,}&\[]+"""),
        r"\1[redacted]",
    ),
    # PaymentIntent / SetupIntent client secrets anywhere else: pi_123_secret_abc.
    (re.compile(r"\b[a-z]+_[A-Za-z0-9]+_secret_[A-Za-z0-9]+"), "[redacted client_secret]"),
    # API keys (Stripe masks them as sk_test_****1234 in its error messages).
    (re.compile(r"\b(?:sk|rk)_[A-Za-z0-9_*]*"), "[redacted key]"),
    (re.compile(r"\bwhsec_[A-Za-z0-9_*]*"), "[redacted webhook secret]"),
    # A Stripe-Signature value, should one be echoed anywhere.
    (re.compile(r"\bv[01]=[0-9a-fA-F]{16,}"), "v1=[redacted]"),
)


def redact(text: str) -> str:
    """``text`` without API keys, webhook secrets, client secrets or signatures."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Redacts secrets from records of the ``stripe`` SDK logger.

    The SDK logs every response body at DEBUG level, and a PaymentIntent's
    body holds its ``client_secret``; its error log repeats Stripe's message,
    which can echo a (masked) API key.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, ()
        return True


def install_log_redaction() -> None:
    """Attach :class:`RedactingFilter` to the ``stripe`` logger (once)."""
    sdk_logger = logging.getLogger("stripe")
    if not any(isinstance(f, RedactingFilter) for f in sdk_logger.filters):
        sdk_logger.addFilter(RedactingFilter())


install_log_redaction()


# ---------------------------------------------------------------------------
# Mapping tables
# ---------------------------------------------------------------------------

P = PaymentStatus

#: PaymentIntent status -> ours (``requires_payment_method`` after a failed
#: attempt is ``failed``: see :meth:`StripeProvider.payment_from_intent`).
INTENT_STATUSES: Mapping[str, PaymentStatus] = {
    "requires_payment_method": P.PENDING,
    "requires_confirmation": P.PENDING,
    "requires_action": P.REQUIRES_ACTION,
    "processing": P.PROCESSING,
    "requires_capture": P.AUTHORIZED,
    "succeeded": P.SUCCEEDED,
    "canceled": P.CANCELED,
}

#: PaymentIntent events django-paygate acts on.
PAYMENT_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.processing",
        "payment_intent.requires_action",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.amount_capturable_updated",
    }
)
REFUND_EVENTS = frozenset(
    {
        "charge.refunded",
        "charge.refund.updated",
        "refund.created",
        "refund.updated",
        "refund.failed",
    }
)
#: From this API version on, refund.* events are sent for card refunds too.
REFUND_EVENTS_FOR_ALL_REFUNDS = "2024-10-28"
#: Before this API version, releasing an authorization created a Refund: the rest of a
#: partial capture, or all of a canceled authorization. It was listed with the
#: PaymentIntent's refunds, counted in the charge's ``amount_refunded`` and reported by
#: ``charge.refunded`` and ``charge.refund.updated``, but no money went back to anyone
#: (https://docs.stripe.com/changelog/basil/2025-03-31/remove-refund-from-partial-capture-and-payment-cancellation-flow).
RELEASES_WITHOUT_REFUND = "2025-03-31"
#: The reason Stripe gives the Refund of an authorization that expired uncaptured.
EXPIRED_UNCAPTURED = "expired_uncaptured_charge"
DISPUTE_EVENTS = frozenset(
    {"charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed"}
)

REFUND_STATUSES: Mapping[str, RefundStatus] = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.CANCELED,
}

DISPUTE_STATUSES: Mapping[str, DisputeStatus] = {
    # Inquiries (warning_*): the bank asks, no funds are withdrawn; a refund may settle one.
    "warning_needs_response": DisputeStatus.INQUIRY,
    "warning_under_review": DisputeStatus.INQUIRY,
    "needs_response": DisputeStatus.OPEN,
    "under_review": DisputeStatus.UNDER_REVIEW,
    "won": DisputeStatus.WON,
    "lost": DisputeStatus.LOST,
    "warning_closed": DisputeStatus.CLOSED,
    "prevented": DisputeStatus.CLOSED,
}

_CLIENT_SECRET_JSON = re.compile(r'("client_secret"\s*:\s*")(?:[^"\\]|\\.)*(")')
_PAYMENT_METHOD_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
_MAX_REFUNDS_LISTED = 1000


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _id_of(value: Any) -> str:
    """The id of an expandable field (a string, or an expanded object)."""
    if isinstance(value, str):
        return value
    return _str(_dict(value).get("id"))


def _metadata(obj: Mapping[str, Any], key: str) -> str | None:
    return _str(_dict(obj.get("metadata")).get(key)) or None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _released(charge: Mapping[str, Any]) -> int:
    """What releasing ``charge``'s authorization "refunded" before basil (Stripe's units).

    All of it when nothing was captured (a cancel, an expiry), the rest of a
    partial capture otherwise.
    """
    amount = _int(charge.get("amount"))
    if _uncaptured(charge):
        return amount
    captured = charge.get("amount_captured")
    # A charge without amount_captured (old API versions) was captured whole.
    return max(0, amount - captured) if isinstance(captured, int) else 0


def _uncaptured(charge: Mapping[str, Any]) -> bool:
    return charge.get("captured") is False or charge.get("amount_captured") == 0


def _release_refunds(charge: Mapping[str, Any], refunds: list[dict[str, Any]]) -> set[str]:
    """The ids of the refunds in ``refunds`` that only released ``charge``'s authorization.

    Stripe made them before basil; they carry none of our metadata. Nothing
    captured: every one of them. A partial capture: the first refund of exactly
    the rest (it was made with the capture, before any refund could be), and any
    refund of an authorization that expired.
    """
    theirs = [r for r in refunds if not _metadata(r, METADATA_REFUND_KEY)]
    released = {_str(r.get("id")) for r in theirs if r.get("reason") == EXPIRED_UNCAPTURED}
    if _uncaptured(charge):
        return released | {_str(r.get("id")) for r in theirs}
    rest = _released(charge)
    first = sorted(
        (r for r in theirs if _int(r.get("amount")) == rest),
        key=lambda r: _int(r.get("created")),
    )
    if rest and first:
        released.add(_str(first[0].get("id")))
    return released


# ---------------------------------------------------------------------------
# The provider
# ---------------------------------------------------------------------------


class StripeProvider(BaseProvider):
    """Stripe PaymentIntents. See docs/providers/stripe.md for every option."""

    name = "Stripe"
    default_options: ClassVar[Mapping[str, Any]] = {
        "secret_key": "",
        "publishable_key": "",
        # A string, or a list of strings while a secret is being rotated.
        "webhook_secret": "",
        # Another Stripe-compatible API (a test server such as localstripe).
        "api_base": None,
        # None: the version the installed SDK is pinned to.
        "api_version": None,
        # Seconds: a number, or a (connect, read) pair.
        "timeout": 20,
        # The SDK's retries of connection errors, 409 and 5xx, with the same key.
        "max_network_retries": 2,
        # True: Stripe picks payment methods (Dashboard settings); False: send
        # ``payment_method_types``.
        "automatic_payment_methods": True,
        "payment_method_types": ("card",),
        # Seconds a webhook timestamp may differ from now, in either direction.
        "webhook_tolerance": 300,
        # Send the payment's description to Stripe.
        "send_description": True,
        # Send the payment's email as ``receipt_email`` (Stripe then emails receipts).
        "send_receipt_email": False,
        # Copy the payment's scalar metadata entries into the PaymentIntent's metadata.
        "forward_metadata": False,
        # Attach ``payment_method`` with an update, then confirm without it (two
        # POSTs). Needed by test servers that cannot confirm with a payment method.
        "attach_before_confirm": False,
        # Stripe.js, as the shipped checkout page loads it (a stand-in for tests and
        # air-gapped staging; allow its host in your Content-Security-Policy).
        "script_url": "https://js.stripe.com/v3/",
    }
    confirmation_fields: ClassVar[Mapping[str, int]] = {"payment_method": 255, "return_url": 2048}
    required_options = ("secret_key",)
    secret_options = ("secret_key", "webhook_secret")
    supported_currencies = frozenset(money.CURRENCY_EXPONENTS) - STRIPE_UNSUPPORTED
    minimum_amounts: ClassVar[Mapping[str, int]] = MINIMUM_AMOUNTS

    def __init__(self, alias: str, **options: Any) -> None:
        super().__init__(alias, **options)
        self._check_options()
        self._client: stripe.StripeClient | None = None
        self._client_lock = threading.Lock()
        install_log_redaction()

    def _check_options(self) -> None:
        o = self.options
        where = f"PAYGATE['PROVIDERS'][{self.alias!r}]['OPTIONS']"
        if not isinstance(o["secret_key"], str) or not o["secret_key"].strip():
            raise ConfigurationError(f"{where}['secret_key'] must be a non-empty string.")
        if not o["secret_key"].startswith(("sk_", "rk_")):
            raise ConfigurationError(
                f"{where}['secret_key'] must be a secret (sk_...) or restricted (rk_...) key, "
                "not a publishable key or a webhook secret."
            )
        if not isinstance(o["publishable_key"], str):
            raise ConfigurationError(f"{where}['publishable_key'] must be a string.")
        secret, public = o["secret_key"], o["publishable_key"]
        for mode, other in (("live", "test"), ("test", "live")):
            if secret.startswith(("sk_" + mode, "rk_" + mode)) and public.startswith("pk_" + other):
                raise ConfigurationError(
                    f"{where}: the secret key is a {mode} key but the publishable key is a "
                    f"{other} key."
                )
        hook = o["webhook_secret"]
        if hook and not (
            isinstance(hook, str)
            or (isinstance(hook, (list, tuple)) and all(isinstance(s, str) for s in hook))
        ):
            raise ConfigurationError(f"{where}['webhook_secret'] must be a string or a list.")
        timeout = o["timeout"]
        parts = timeout if isinstance(timeout, (list, tuple)) else (timeout,)
        if not 1 <= len(parts) <= 2 or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and t > 0 for t in parts
        ):
            raise ConfigurationError(
                f"{where}['timeout'] must be a positive number of seconds, "
                "or a (connect, read) pair."
            )
        retries = o["max_network_retries"]
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
            raise ConfigurationError(f"{where}['max_network_retries'] must be an int from 0 to 10.")
        tolerance = o["webhook_tolerance"]
        if (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, int)
            or not 0 < tolerance <= 3600
        ):
            # Beyond an hour a captured delivery could be replayed for that long.
            raise ConfigurationError(
                f"{where}['webhook_tolerance'] must be an int of seconds from 1 to 3600."
            )
        types = o["payment_method_types"]
        if not o["automatic_payment_methods"] and (
            isinstance(types, str)
            or not isinstance(types, (list, tuple))
            or not types
            or not all(isinstance(t, str) and t for t in types)
        ):
            raise ConfigurationError(
                f"{where}['payment_method_types'] must be a non-empty list of strings "
                "when automatic_payment_methods is False."
            )
        base = o["api_base"]
        if base is not None and (not isinstance(base, str) or not base.startswith("http")):
            raise ConfigurationError(f"{where}['api_base'] must be an http(s) URL.")

    # -- the SDK client ----------------------------------------------------------

    @property
    def client(self) -> stripe.StripeClient:
        """This instance's own client, built on first use."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._build_client()
        return self._client

    def _build_client(self) -> stripe.StripeClient:
        o = self.options
        timeout = o["timeout"]
        if isinstance(timeout, list):
            timeout = tuple(timeout)
        kwargs: dict[str, Any] = {
            # A requests-based client: a per-instance timeout, and mockable in tests.
            "http_client": stripe.RequestsClient(timeout=timeout),
            "max_network_retries": o["max_network_retries"],
        }
        if o["api_base"]:
            kwargs["base_addresses"] = {"api": o["api_base"].rstrip("/")}
        if o["api_version"]:
            kwargs["stripe_version"] = o["api_version"]
        return stripe.StripeClient(o["secret_key"], **kwargs)

    def _call(self, operation: str, call: Callable[[], Any]) -> dict[str, Any]:
        """Run one SDK call; return the object as a dict, or raise our error."""
        try:
            result = call()
        except stripe.StripeError as exc:
            error = self._translate(exc, operation)
        else:
            return result.to_dict() if hasattr(result, "to_dict") else dict(result)
        # Raised outside the except block: the SDK exception (whose args and
        # http_body hold the whole response) is neither the cause nor the context.
        raise error

    def _translate(self, exc: stripe.StripeError, operation: str) -> PaygateError:
        err = _dict(_dict(exc.json_body).get("error"))
        stripe_code = _str(err.get("code")) or _str(getattr(exc, "code", None))
        stripe_message = redact(_str(err.get("message")))[:300]
        extra = {
            "http_status": exc.http_status,
            "stripe_code": stripe_code,
            "request_id": _str(exc.request_id),
        }
        what = f"Stripe {operation}"
        if isinstance(exc, stripe.CardError):
            decline = _str(err.get("decline_code")) or stripe_code or "card_declined"
            return PaymentDeclined(
                stripe_message or "The card was declined.",
                decline_code=decline[:128],
                provider=self.alias,
                **extra,
            )
        if isinstance(exc, stripe.IdempotencyError):
            return ProviderIdempotencyError(
                f"{what}: Stripe refused the idempotency key as reused with other parameters.",
                provider=self.alias,
                **extra,
            )
        if exc.http_status == 409 and _str(err.get("type")) == "idempotency_error":
            # "There is currently another in-progress request using this Idempotent Key":
            # our own earlier request (a sync racing the call that made it) is running.
            return ProviderRequestInProgress(
                f"{what}: another request with this idempotency key is in progress at "
                "Stripe; its outcome is settled by a sync or its webhook.",
                provider=self.alias,
                **extra,
            )
        if isinstance(exc, stripe.APIConnectionError):
            return ProviderUnavailable(
                f"{what}: Stripe could not be reached or did not answer in time; "
                "the outcome is unknown.",
                provider=self.alias,
                **extra,
            )
        if isinstance(exc, stripe.RateLimitError):
            return ProviderUnavailable(
                f"{what}: Stripe is rate limiting requests (429); retry later.",
                provider=self.alias,
                **extra,
            )
        if isinstance(exc, stripe.APIError):
            return ProviderUnavailable(
                f"{what}: Stripe answered HTTP {exc.http_status or '?'}; the outcome is unknown.",
                provider=self.alias,
                **extra,
            )
        if isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
            return ProviderError(
                f"{what}: Stripe rejected the API key (HTTP {exc.http_status}); check "
                f"OPTIONS['secret_key'] of {self.alias!r}.",
                provider=self.alias,
                **extra,
            )
        detail = f" ({stripe_code})" if stripe_code else ""
        return ProviderError(
            f"{what} failed{detail}: {stripe_message or type(exc).__name__}",
            provider=self.alias,
            **extra,
        )

    # -- amounts -----------------------------------------------------------------

    def validate_amount(self, amount: int, currency: str) -> None:
        super().validate_amount(amount, currency)
        to_stripe_amount(amount, currency)

    def _api_amount(self, amount: int, currency: str) -> int:
        """Convert for a capture or a refund: refused amounts fail like a provider refusal."""
        try:
            return to_stripe_amount(amount, currency)
        except InvalidAmount as exc:
            raise AmountRefused(str(exc), provider=self.alias) from None

    # -- outbound calls -----------------------------------------------------------

    def _intent_id(self, payment: AbstractPayment) -> str:
        if not payment.provider_payment_id:
            raise ProviderError(
                "This payment has no Stripe PaymentIntent yet.", provider=self.alias
            )
        return str(payment.provider_payment_id)

    def create_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        params: dict[str, Any] = {
            "amount": to_stripe_amount(payment.amount, payment.currency),
            "currency": payment.currency.lower(),
            "metadata": {
                **self._forwarded_metadata(payment),
                METADATA_PAYMENT_KEY: str(payment.pk),
            },
        }
        if payment.capture_method == "manual":
            params["capture_method"] = "manual"
        if self.options["automatic_payment_methods"]:
            params["automatic_payment_methods"] = {"enabled": True}
        else:
            params["payment_method_types"] = list(self.options["payment_method_types"])
        if self.options["send_description"] and payment.description:
            params["description"] = payment.description[:1000]
        if self.options["send_receipt_email"] and payment.email:
            params["receipt_email"] = payment.email
        intent = self._call(
            "create PaymentIntent",
            lambda: self.client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            ),
        )
        result = self._result(intent)
        return _with(result, client_data=self._client_data_of(intent))

    def _forwarded_metadata(self, payment: AbstractPayment) -> dict[str, str]:
        """Scalar entries of ``payment.metadata`` that fit Stripe's limits."""
        if not self.options["forward_metadata"] or not isinstance(payment.metadata, dict):
            return {}
        out: dict[str, str] = {}
        for key, value in payment.metadata.items():
            if len(out) >= 49:  # 50 keys at most, ours included
                break
            if (
                isinstance(key, str)
                and 0 < len(key) <= 40
                and "[" not in key
                and key != METADATA_PAYMENT_KEY
                and isinstance(value, (str, int))
                and not isinstance(value, bool)
                and len(str(value)) <= 500
            ):
                out[key] = str(value)
        return out

    def _client_data_of(self, intent: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "client_secret": _str(intent.get("client_secret")),
            "publishable_key": self.options["publishable_key"],
            "payment_intent_id": _str(intent.get("id")),
        }

    def client_data(self, payment: AbstractPayment) -> Mapping[str, Any]:
        pid = self._intent_id(payment)
        intent = self._call(
            "retrieve PaymentIntent", lambda: self.client.v1.payment_intents.retrieve(pid)
        )
        return self._client_data_of(intent)

    def confirm_payment(
        self, payment: AbstractPayment, *, idempotency_key: str, **data: Any
    ) -> ProviderPayment:
        unknown = sorted(set(data) - {"payment_method", "return_url"})
        if unknown:
            raise ProviderError(
                f"Unexpected confirmation field {unknown[0]!r}.", provider=self.alias
            )
        pid = self._intent_id(payment)
        payment_method = data.get("payment_method")
        return_url = data.get("return_url")
        if payment_method is not None and (
            not isinstance(payment_method, str) or not _PAYMENT_METHOD_ID.fullmatch(payment_method)
        ):
            raise ProviderError(
                "payment_method must be a Stripe PaymentMethod id.", provider=self.alias
            )
        if return_url is not None and (
            not isinstance(return_url, str) or not return_url.startswith(("https://", "http://"))
        ):
            raise ProviderError("return_url must be an http(s) URL.", provider=self.alias)
        params: dict[str, Any] = {}
        if return_url:
            params["return_url"] = return_url
        if payment_method and self.options["attach_before_confirm"]:
            self._call(
                "attach payment method",
                lambda: self.client.v1.payment_intents.update(
                    pid,
                    params={"payment_method": payment_method},
                    options={"idempotency_key": f"{idempotency_key}-update"},
                ),
            )
        elif payment_method:
            params["payment_method"] = payment_method
        intent = self._call(
            "confirm PaymentIntent",
            lambda: self.client.v1.payment_intents.confirm(
                pid,
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            ),
        )
        return self._result(intent)

    def capture_payment(
        self, payment: AbstractPayment, *, amount: int, idempotency_key: str
    ) -> ProviderPayment:
        pid = self._intent_id(payment)
        if amount > payment.amount:
            raise AmountRefused(
                f"Cannot capture {money.format_money(amount, payment.currency)}: only "
                f"{money.format_money(payment.amount, payment.currency)} was authorized.",
                provider=self.alias,
            )
        api_amount = self._api_amount(amount, payment.currency)
        intent = self._call(
            "capture PaymentIntent",
            lambda: self.client.v1.payment_intents.capture(
                pid,
                params={"amount_to_capture": api_amount},
                options={"idempotency_key": idempotency_key},
            ),
        )
        return self._result(intent, captured_hint=amount)

    def cancel_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        pid = self._intent_id(payment)
        intent = self._call(
            "cancel PaymentIntent",
            lambda: self.client.v1.payment_intents.cancel(
                pid, options={"idempotency_key": idempotency_key}
            ),
        )
        return self._result(intent)

    def refund_payment(
        self, payment: AbstractPayment, refund: Refund, *, idempotency_key: str
    ) -> ProviderRefund:
        pid = self._intent_id(payment)
        # localstripe (and a bug above us) would accept more: check our own invariants.
        if refund.currency != payment.currency:
            raise AmountRefused(
                "The refund's currency differs from the payment's.", provider=self.alias
            )
        if refund.amount <= 0 or refund.amount > payment.amount_captured:
            raise AmountRefused(
                f"Cannot refund {money.format_money(refund.amount, refund.currency)} of a payment "
                f"with {money.format_money(payment.amount_captured, payment.currency)} captured.",
                provider=self.alias,
            )
        api_amount = self._api_amount(refund.amount, refund.currency)
        params = {
            "payment_intent": pid,
            "amount": api_amount,
            "metadata": {
                METADATA_REFUND_KEY: str(refund.pk),
                METADATA_PAYMENT_KEY: str(payment.pk),
            },
        }
        obj = self._call(
            "create refund",
            lambda: self.client.v1.refunds.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            ),
        )
        try:
            return self.refund_from_object(obj, payment_intent=pid)
        except InvalidAmount as exc:
            raise ProviderError(str(exc), provider=self.alias) from None

    def fetch_payment(self, payment: AbstractPayment) -> ProviderPayment:
        if not payment.provider_payment_id:
            # Never linked: the services create it again with the same
            # idempotency key, which returns the PaymentIntent Stripe may
            # already have made (keys live at least 24 hours).
            return ProviderPayment(provider_payment_id=None, status=None)
        pid = str(payment.provider_payment_id)
        # Before basil the charge tells which refunds only released the authorization.
        releases = self.releases_are_refunds()
        params: dict[str, Any] = {"expand": ["latest_charge"]} if releases else {}
        intent = self._call(
            "retrieve PaymentIntent",
            lambda: self.client.v1.payment_intents.retrieve(pid, params=params),  # type: ignore[arg-type]
        )
        refunds: list[ProviderRefund] = []
        # API versions before 2022-11-15 have no latest_charge: a captured intent is enough.
        # A canceled intent captured nothing: a refund of it only released it (before basil).
        captured = intent.get("latest_charge") or intent.get("status") == "succeeded"
        if captured and intent.get("status") != "canceled":
            page = self._call_list(pid)
            charge = _dict(intent.get("latest_charge"))
            if releases and charge:
                released = _release_refunds(charge, page)
                page = [r for r in page if _str(r.get("id")) not in released]
            try:
                refunds = [self.refund_from_object(r, payment_intent=pid) for r in page]
            except InvalidAmount as exc:
                raise ProviderError(str(exc), provider=self.alias) from None
        return _with(self._result(intent), refunds=tuple(refunds))

    def releases_are_refunds(self, api_version: str = "") -> bool:
        """Whether Stripe, at ``api_version`` (default: the one we call with), reports the
        release of an authorization as a Refund (versions before basil)."""
        version = api_version or self.options["api_version"] or stripe.api_version
        return str(version) < RELEASES_WITHOUT_REFUND

    def _call_list(self, pid: str) -> list[dict[str, Any]]:
        def listing() -> Any:
            found = self.client.v1.refunds.list(params={"payment_intent": pid, "limit": 100})
            items = []
            for item in found.auto_paging_iter():
                items.append(item.to_dict())
                if len(items) >= _MAX_REFUNDS_LISTED:
                    break
            return {"data": items}

        return list(self._call("list refunds", listing)["data"])

    # -- Stripe objects -> neutral results ------------------------------------------

    def _result(
        self, intent: Mapping[str, Any], *, captured_hint: int | None = None
    ) -> ProviderPayment:
        """:meth:`payment_from_intent` for an answer to our own call (an odd answer is
        Stripe's failure, not the caller's input)."""
        try:
            return self.payment_from_intent(intent, captured_hint=captured_hint)
        except InvalidAmount as exc:
            raise ProviderError(str(exc), provider=self.alias) from None

    def payment_from_intent(
        self, intent: Mapping[str, Any], *, captured_hint: int | None = None
    ) -> ProviderPayment:
        """A PaymentIntent (as a dict) in our terms.

        ``captured_hint`` is the amount just captured, used when neither the
        PaymentIntent (``amount_received``) nor its charge (``amount_captured``)
        says how much was captured, as with some test servers.
        """
        currency = _str(intent.get("currency")).upper()
        if currency not in money.CURRENCY_EXPONENTS:
            raise InvalidAmount("Stripe sent an unknown currency.")
        stripe_status = _str(intent.get("status"))
        status = INTENT_STATUSES.get(stripe_status)
        error = _dict(intent.get("last_payment_error"))
        failure_code = failure_message = ""
        if stripe_status == "requires_payment_method" and error:
            status = P.FAILED
            failure_code = (_str(error.get("decline_code")) or _str(error.get("code")))[:128]
            failure_message = redact(_str(error.get("message")))[:1000]
        amount = from_stripe_amount(intent.get("amount"), currency)
        charge = intent.get("latest_charge")
        charge_id = _id_of(charge)
        captured: int | None = None
        if status == P.SUCCEEDED:
            received = intent.get("amount_received")
            charge_captured = _dict(charge).get("amount_captured")
            if isinstance(received, int) and received > 0:
                captured = from_stripe_amount(received, currency)
            elif isinstance(charge_captured, int) and charge_captured > 0:
                captured = from_stripe_amount(charge_captured, currency)
            elif captured_hint is not None:
                captured = captured_hint
            else:
                captured = amount
        next_action = _dict(intent.get("next_action")) or None
        return ProviderPayment(
            provider_payment_id=_str(intent.get("id")) or None,
            status=status,
            amount=amount,
            currency=currency,
            amount_captured=captured,
            failure_code=failure_code,
            failure_message=failure_message,
            next_action=next_action if status == P.REQUIRES_ACTION else None,
            provider_data={"latest_charge": charge_id} if charge_id else {},
            our_payment_id=_metadata(intent, METADATA_PAYMENT_KEY),
        )

    def refund_from_object(
        self,
        obj: Mapping[str, Any],
        *,
        payment_intent: str | None = None,
        status: RefundStatus | None = None,
    ) -> ProviderRefund:
        """A Stripe Refund (as a dict) in our terms."""
        currency = _str(obj.get("currency")).upper()
        if currency not in money.CURRENCY_EXPONENTS:
            raise InvalidAmount("Stripe sent an unknown currency.")
        if status is None:
            status = REFUND_STATUSES.get(_str(obj.get("status")), RefundStatus.PENDING)
        return ProviderRefund(
            provider_refund_id=_str(obj.get("id")),
            status=status,
            amount=from_stripe_amount(obj.get("amount"), currency),
            currency=currency,
            provider_payment_id=_id_of(obj.get("payment_intent")) or payment_intent,
            our_refund_id=_metadata(obj, METADATA_REFUND_KEY),
            failure_reason=_str(obj.get("failure_reason"))[:255],
        )

    def dispute_from_object(self, obj: Mapping[str, Any], event_type: str) -> ProviderDispute:
        currency = _str(obj.get("currency")).upper()
        if currency not in money.CURRENCY_EXPONENTS:
            raise InvalidAmount("Stripe sent an unknown currency.")
        default = DisputeStatus.CLOSED if event_type.endswith(".closed") else DisputeStatus.OPEN
        return ProviderDispute(
            provider_dispute_id=_str(obj.get("id")),
            status=DISPUTE_STATUSES.get(_str(obj.get("status")), default),
            amount=from_stripe_amount(obj.get("amount"), currency),
            currency=currency,
            provider_payment_id=_id_of(obj.get("payment_intent")) or None,
            reason=_str(obj.get("reason"))[:255],
        )

    # -- webhooks --------------------------------------------------------------------

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> None:
        verify_timestamped_hmac(
            _header(headers, SIGNATURE_HEADER),
            body,
            self.webhook_secrets(),
            tolerance=int(self.options["webhook_tolerance"]),
            provider=self.alias,
            name=SIGNATURE_HEADER,
        )

    def redact_webhook_payload(self, payload: str) -> str:
        """``payload`` as it may be stored: PaymentIntent events carry the intent's
        ``client_secret``, which must never be kept. The JSON stays valid and parses
        to the same event (the adapter never reads ``client_secret`` from events)."""
        return _CLIENT_SECRET_JSON.sub(r"\1[redacted]\2", payload)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        event = decode_json_body(body)
        if not isinstance(event, dict) or not _str(event.get("id")):
            raise WebhookVerificationError("The Stripe event has no id.", provider=self.alias)
        event_id = _str(event.get("id"))[:255]
        event_type = _str(event.get("type"))[:128]
        created = event.get("created")
        occurred_at = (
            datetime.fromtimestamp(created, tz=timezone.utc)
            if isinstance(created, int) and not isinstance(created, bool) and 0 < created < 2**37
            else None
        )
        base = ProviderEvent(event_id=event_id, type=event_type, occurred_at=occurred_at)
        # Thin events carry no object (https://docs.stripe.com/event-destinations): ignored.
        obj = _dict(_dict(event.get("data")).get("object"))
        if event.get("object") != "event" or not obj:
            return base
        livemode = event.get("livemode")
        mode = self.livemode
        if event.get("account") or (isinstance(livemode, bool) and mode not in (None, livemode)):
            # A connected account's object, or one of the other mode (a Connect endpoint
            # also gets test events): never one of our PaymentIntents, whatever its
            # metadata says.
            logger.warning("Stripe event %s is not about this account and mode.", event_id)
            return base
        try:
            return self._event_update(base, event_type, obj, _str(event.get("api_version")))
        except InvalidAmount as exc:
            # Signed by Stripe, so not garbage: an object in a currency we never charge in
            # (another integration on the account, an old charge) is not ours. Refusing it
            # would have Stripe retry it for days and, in the end, disable the endpoint.
            logger.warning("Stripe event %s left unapplied: %s", event_id, exc)
            return base

    @property
    def livemode(self) -> bool | None:
        """True for a live secret key, False for a test one, None if the key says neither."""
        key = str(self.options["secret_key"])
        if key.startswith(("sk_live_", "rk_live_")):
            return True
        if key.startswith(("sk_test_", "rk_test_")):
            return False
        return None

    def _event_update(
        self, base: ProviderEvent, event_type: str, obj: dict[str, Any], api_version: str = ""
    ) -> ProviderEvent:
        kind = _str(obj.get("object"))
        if event_type in PAYMENT_EVENTS and kind == "payment_intent":
            payment = self.payment_from_intent(obj)
            if event_type == "payment_intent.payment_failed" and payment.status == P.PENDING:
                payment = _with(payment, status=P.FAILED)
            return _with(base, payment=payment, our_payment_id=payment.our_payment_id)
        releases = bool(api_version) and self.releases_are_refunds(api_version)
        if event_type == "charge.refunded" and kind == "charge":
            data = _dict(obj.get("refunds")).get("data")
            refunds = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
            released = 0
            if releases:
                released = _released(obj)
                if released >= _int(obj.get("amount")):
                    return base  # nothing was captured: the authorization was released
                ids = _release_refunds(obj, refunds)
                refunds = [r for r in refunds if _str(r.get("id")) not in ids]
            if not refunds and api_version and api_version < REFUND_EVENTS_FOR_ALL_REFUNDS:
                # From 2022-11-15 to 2024-10-27 the charge has no refunds list and card
                # refunds send no refund.* event: the total is all there is to go on.
                return _with(base, payment=self._refunded_total(obj, released))
            if not refunds:  # from 2024-10-28 the refund.* events carry it
                return base
            newest = max(refunds, key=lambda r: r.get("created") or 0)
            refund = self.refund_from_object(
                newest, payment_intent=_id_of(obj.get("payment_intent")) or None
            )
            return _with(
                base, refund=refund, our_payment_id=_metadata(newest, METADATA_PAYMENT_KEY)
            )
        if event_type in REFUND_EVENTS and kind == "refund":
            theirs = not _metadata(obj, METADATA_REFUND_KEY)
            if releases and theirs and _release_like(event_type, obj):
                return base
            forced = RefundStatus.FAILED if event_type == "refund.failed" else None
            refund = self.refund_from_object(obj, status=forced)
            return _with(base, refund=refund, our_payment_id=_metadata(obj, METADATA_PAYMENT_KEY))
        if event_type in DISPUTE_EVENTS and kind == "dispute":
            return _with(base, dispute=self.dispute_from_object(obj, event_type))
        return base

    def _refunded_total(
        self, charge: Mapping[str, Any], released: int = 0
    ) -> ProviderPayment | None:
        """What a ``charge.refunded`` without a refunds list says: the total refunded
        (less what releasing the authorization counted in it before basil)."""
        pid = _id_of(charge.get("payment_intent"))
        currency = _str(charge.get("currency")).upper()
        # from_stripe_amount refuses what is not an amount (InvalidAmount: left unapplied).
        refunded = charge.get("amount_refunded")
        if released and isinstance(refunded, int):
            refunded = max(0, refunded - released)
        total = from_stripe_amount(refunded, currency)
        if not pid or not total:
            return None
        return ProviderPayment(pid, None, currency=currency, amount_refunded=total)


class AmountRefused(InvalidAmount, ProviderError):
    """Stripe cannot capture or refund this amount; refused before any network call.

    An :class:`InvalidAmount` for callers, and a :class:`ProviderError` for the
    services, which then settle the pending refund as failed instead of
    leaving it reserved.
    """

    code = "invalid_amount"
    status_code = 400


def _release_like(event_type: str, refund: Mapping[str, Any]) -> bool:
    """Whether a refund event (rendered before basil) of a refund we did not make may only
    report the release of an authorization, and so books nothing.

    An expired authorization's refund says so. A partial capture's or a cancel's
    is told apart by its charge, which ``charge.refunded`` carries (and a sync
    reads); a succeeded refund in ``charge.refund.updated`` may be one, and a
    refund made in the dashboard was reported by ``charge.refunded`` already.
    """
    if refund.get("reason") == EXPIRED_UNCAPTURED:
        return True
    return event_type == "charge.refund.updated" and refund.get("status") == "succeeded"


def _header(headers: Mapping[str, str], name: str) -> str:
    value: Any = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == lower), None)
    return value if isinstance(value, str) else ""


def _with(obj: Any, **changes: Any) -> Any:
    from dataclasses import replace

    return replace(obj, **changes)


__all__ = [
    "MINIMUM_AMOUNTS",
    "AmountRefused",
    "RedactingFilter",
    "StripeProvider",
    "from_stripe_amount",
    "redact",
    "to_stripe_amount",
]
