"""Stripe, through PaymentIntents and the official ``stripe`` SDK.

Configure it as an alias in ``PAYGATE["PROVIDERS"]``; docs/providers/stripe.md
tells every option, the amount rules, how Stripe's errors map to ours, and how
webhooks are verified (here, not by the SDK) and applied.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar

try:
    import stripe
except ImportError:  # the "stripe" extra is not installed: the registry refuses the provider
    stripe = None  # type: ignore[assignment]

from django_paygate import money
from django_paygate.exceptions import (
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
    OptionCheck,
    ProviderDispute,
    ProviderEvent,
    ProviderPayment,
    ProviderRefund,
    RedactingLogFilter,
    decode_json_body,
    header,
    integer,
    is_int,
    is_string,
    is_strings,
    mapping,
    read_answer,
    redact_logger,
    text,
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
    api = money.to_api_units(amount, currency, api_exponent(currency), provider="Stripe")
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
    return money.from_api_units(api, currency, api_exponent(currency), provider="Stripe")


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


def redact(message: str) -> str:
    """``message`` without API keys, webhook secrets, client secrets or signatures."""
    for pattern, replacement in _SECRET_PATTERNS:
        message = pattern.sub(replacement, message)
    return message


#: The filter on the ``stripe`` logger: the SDK logs every response body at DEBUG level
#: (a PaymentIntent's holds its ``client_secret``), and its error log repeats Stripe's
#: message, which can echo a (masked) API key.
RedactingFilter = RedactingLogFilter


def install_log_redaction() -> None:
    """Attach the :class:`RedactingFilter` with :func:`redact` to the ``stripe`` logger (once)."""
    redact_logger("stripe", redact)


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


def _id_of(value: Any) -> str:
    """The id of an expandable field (a string, or an expanded object)."""
    return value if isinstance(value, str) else text(mapping(value).get("id"))


def _metadata(obj: Mapping[str, Any], key: str) -> str | None:
    return text(mapping(obj.get("metadata")).get(key)) or None


def _currency(obj: Mapping[str, Any]) -> str:
    """The upper-case currency of a Stripe object, one we know, else :class:`InvalidAmount`."""
    currency = text(obj.get("currency")).upper()
    if currency not in money.CURRENCY_EXPONENTS:
        raise InvalidAmount("Stripe sent an unknown currency.")
    return currency


def _captured(intent: Mapping[str, Any], currency: str, fallback: int) -> int:
    """What a succeeded PaymentIntent captured: its ``amount_received``, else its charge's
    ``amount_captured``, else ``fallback`` (some test servers send neither)."""
    charge = mapping(intent.get("latest_charge"))
    for api in (intent.get("amount_received"), charge.get("amount_captured")):
        if isinstance(api, int) and api > 0:
            return from_stripe_amount(api, currency)
    return fallback


def _uncaptured(charge: Mapping[str, Any]) -> bool:
    return charge.get("captured") is False or charge.get("amount_captured") == 0


def _released(charge: Mapping[str, Any]) -> int:
    """What releasing ``charge``'s authorization "refunded" before basil (Stripe's units):
    all of it when nothing was captured (a cancel, an expiry), else the rest of a partial
    capture."""
    amount = integer(charge.get("amount")) or 0
    if _uncaptured(charge):
        return amount
    captured = charge.get("amount_captured")
    # A charge without amount_captured (old API versions) was captured whole.
    return max(0, amount - captured) if isinstance(captured, int) else 0


def _release_refunds(charge: Mapping[str, Any], refunds: list[dict[str, Any]]) -> set[str]:
    """The ids of the refunds in ``refunds`` that only released ``charge``'s authorization.

    Stripe made them before basil; they carry none of our metadata. Nothing
    captured: every one of them. A partial capture: the first refund of exactly
    the rest (it was made with the capture, before any refund could be), and any
    refund of an authorization that expired.
    """
    theirs = [r for r in refunds if not _metadata(r, METADATA_REFUND_KEY)]
    released = {text(r.get("id")) for r in theirs if r.get("reason") == EXPIRED_UNCAPTURED}
    if _uncaptured(charge):
        return released | {text(r.get("id")) for r in theirs}
    rest = _released(charge)
    first = sorted(
        (r for r in theirs if integer(r.get("amount")) == rest),
        key=lambda r: integer(r.get("created")) or 0,
    )
    if rest and first:
        released.add(text(first[0].get("id")))
    return released


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


#: SDK errors that leave the outcome unknown (or the call unmade), and what we say of them.
_UNAVAILABLE = (
    (
        "APIConnectionError",
        "Stripe could not be reached or did not answer in time; the outcome is unknown",
    ),
    ("RateLimitError", "Stripe is rate limiting requests (429); retry later"),
    ("APIError", "Stripe answered HTTP {status}; the outcome is unknown"),
)


# ---------------------------------------------------------------------------
# The provider
# ---------------------------------------------------------------------------


class StripeProvider(BaseProvider):
    """Stripe PaymentIntents. See docs/providers/stripe.md for every option."""

    name = "Stripe"
    default_options: ClassVar[Mapping[str, Any]] = {
        "secret_key": "",
        "publishable_key": "",
        "webhook_secret": "",  # a string, or a list while a secret is being rotated
        "api_base": None,  # another Stripe-compatible API (a test server such as localstripe)
        "api_version": None,  # None: the version the installed SDK is pinned to
        "timeout": 20,
        "max_network_retries": 2,  # the SDK's retries (connection, 409, 5xx), with the same key
        "automatic_payment_methods": True,  # False: send payment_method_types
        "payment_method_types": ("card",),
        "webhook_tolerance": 300,  # seconds a webhook timestamp may be off, either way
        "send_description": True,
        "send_receipt_email": False,
        "forward_metadata": False,
        "attach_before_confirm": False,  # two POSTs, for test servers that need them
        "script_url": "https://js.stripe.com/v3/",  # Stripe.js, for the shipped checkout
    }
    option_checks: ClassVar[Mapping[str, OptionCheck]] = {
        "secret_key": is_string(required=True, prefixes=("sk_", "rk_")),
        "publishable_key": is_string(),
        "max_network_retries": is_int(0, 10),
        # Beyond an hour a captured delivery could be replayed for that long.
        "webhook_tolerance": is_int(1, 3600),
    }
    confirmation_fields: ClassVar[Mapping[str, int]] = {"payment_method": 255, "return_url": 2048}
    required_options = ("secret_key",)
    secret_options = ("secret_key", "webhook_secret")
    supported_currencies = frozenset(money.CURRENCY_EXPONENTS) - STRIPE_UNSUPPORTED
    minimum_amounts: ClassVar[Mapping[str, int]] = MINIMUM_AMOUNTS

    def __init__(self, alias: str, **options: Any) -> None:
        super().__init__(alias, **options)
        self._client: stripe.StripeClient | None = None
        self._client_lock = threading.Lock()
        install_log_redaction()

    def check_options(self) -> None:
        o = self.options
        for mode, other in (("live", "test"), ("test", "live")):
            if o["secret_key"].startswith((f"sk_{mode}", f"rk_{mode}")) and o[
                "publishable_key"
            ].startswith(f"pk_{other}"):
                raise self.option_error(
                    "", f"the secret key is a {mode} key but the publishable key is a {other} key"
                )
        if not o["automatic_payment_methods"]:
            try:
                o["payment_method_types"] = is_strings(o["payment_method_types"])
            except ValueError as exc:
                problem = f"{exc} when automatic_payment_methods is False"
                raise self.option_error("payment_method_types", problem) from None

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
        kwargs: dict[str, Any] = {
            # The SDK's own requests client, not self.session: its retries (timeouts, 409,
            # 5xx) and its errors (a 409 "in progress") need the answers the session refuses.
            "http_client": stripe.RequestsClient(timeout=o["timeout"]),
            "max_network_retries": o["max_network_retries"],
        }
        if o["api_base"]:
            kwargs["base_addresses"] = {"api": o["api_base"]}
        if o["api_version"]:
            kwargs["stripe_version"] = o["api_version"]
        return stripe.StripeClient(o["secret_key"], **kwargs)

    def _api(self, operation: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> dict[str, Any]:
        """One SDK call (:meth:`call`), its answer as a dict."""
        answer = self.call(operation, fn, *args, **kw)
        return answer.to_dict() if hasattr(answer, "to_dict") else dict(answer)

    def translate_error(self, exc: Exception, operation: str) -> PaygateError | None:
        if stripe is None or not isinstance(exc, stripe.StripeError):
            return None
        err = mapping(mapping(exc.json_body).get("error"))
        code = text(err.get("code")) or text(getattr(exc, "code", None))
        message = redact(text(err.get("message")))
        extra = {"http_status": exc.http_status, "stripe_code": code, "request_id": exc.request_id}
        what, alias = f"Stripe {operation}", self.alias
        if isinstance(exc, stripe.CardError):
            decline = text(err.get("decline_code")) or code or "card_declined"
            message = message[:300] or "The card was declined."
            return PaymentDeclined(message, decline_code=decline, provider=alias, **extra)
        if isinstance(exc, stripe.IdempotencyError):
            why = "Stripe refused the idempotency key as reused with other parameters."
            return ProviderIdempotencyError(f"{what}: {why}", provider=alias, **extra)
        if exc.http_status == 409 and text(err.get("type")) == "idempotency_error":
            # "another in-progress request using this Idempotent Key": our own earlier
            # request (a sync racing the call that made it) is still running.
            why = "another request with this idempotency key is in progress at Stripe; its "
            why += "outcome is settled by a sync or its webhook."
            return ProviderRequestInProgress(f"{what}: {why}", provider=alias, **extra)
        for name, why in _UNAVAILABLE:
            if isinstance(exc, getattr(stripe, name)):
                why = why.format(status=exc.http_status or "?")
                return ProviderUnavailable(f"{what}: {why}.", provider=alias, **extra)
        if isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
            why = f"Stripe rejected the API key (HTTP {exc.http_status}); check "
            why += f"OPTIONS['secret_key'] of {alias!r}."
            return ProviderError(f"{what}: {why}", provider=alias, **extra)
        detail = message or type(exc).__name__
        return self.refused(operation, f"{detail} ({code})" if code else detail, **extra)

    # -- amounts -----------------------------------------------------------------

    def validate_amount(self, amount: int, currency: str) -> None:
        super().validate_amount(amount, currency)
        to_stripe_amount(amount, currency)

    def _api_amount(self, amount: int, currency: str) -> int:
        """Convert for a capture or a refund: refused amounts fail like a provider refusal."""
        try:
            return to_stripe_amount(amount, currency)
        except InvalidAmount as exc:
            error = AmountRefused(str(exc), provider=self.alias)
        raise error

    # -- outbound calls -----------------------------------------------------------

    def _intent_id(self, payment: AbstractPayment) -> str:
        if not payment.provider_payment_id:
            raise ProviderError(
                "This payment has no Stripe PaymentIntent yet.", provider=self.alias
            )
        return str(payment.provider_payment_id)

    def create_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        o = self.options
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
        if o["automatic_payment_methods"]:
            params["automatic_payment_methods"] = {"enabled": True}
        else:
            params["payment_method_types"] = list(o["payment_method_types"])
        if o["send_description"] and payment.description:
            params["description"] = payment.description
        if o["send_receipt_email"] and payment.email:
            params["receipt_email"] = payment.email
        intent = self._api(
            "create PaymentIntent",
            self.client.v1.payment_intents.create,
            params=params,
            options={"idempotency_key": idempotency_key},
        )
        result = read_answer(self, self.payment_from_intent, intent)
        return replace(result, client_data=self._client_data_of(intent))

    def _forwarded_metadata(self, payment: AbstractPayment) -> dict[str, str]:
        """Scalar entries of ``payment.metadata`` that fit Stripe's limits (50 keys, ours too)."""
        if not self.options["forward_metadata"] or not isinstance(payment.metadata, dict):
            return {}
        fits = (
            (key, str(value))
            for key, value in payment.metadata.items()
            if isinstance(key, str) and 0 < len(key) <= 40 and "[" not in key
            and key != METADATA_PAYMENT_KEY
            and (isinstance(value, str) or integer(value) is not None)
            and len(str(value)) <= 500
        )  # fmt: skip
        return dict(islice(fits, 49))

    def _client_data_of(self, intent: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "client_secret": text(intent.get("client_secret")),
            "publishable_key": self.options["publishable_key"],
            "payment_intent_id": text(intent.get("id")),
        }

    def client_data(self, payment: AbstractPayment) -> Mapping[str, Any]:
        pid = self._intent_id(payment)
        retrieve = self.client.v1.payment_intents.retrieve
        return self._client_data_of(self._api("retrieve PaymentIntent", retrieve, pid))

    def confirm_payment(
        self, payment: AbstractPayment, *, idempotency_key: str, **data: Any
    ) -> ProviderPayment:
        self.clean_confirmation(data)
        pid = self._intent_id(payment)
        method, return_url = data.get("payment_method"), data.get("return_url")
        if method is not None and not (
            isinstance(method, str) and _PAYMENT_METHOD_ID.fullmatch(method)
        ):
            raise ProviderError(
                "payment_method must be a Stripe PaymentMethod id.", provider=self.alias
            )
        if return_url is not None and not (
            isinstance(return_url, str) and return_url.startswith(("https://", "http://"))
        ):
            raise ProviderError("return_url must be an http(s) URL.", provider=self.alias)
        params: dict[str, Any] = {"return_url": return_url} if return_url else {}
        intents = self.client.v1.payment_intents
        if method and self.options["attach_before_confirm"]:
            key = {"idempotency_key": f"{idempotency_key}-update"}
            params_update = {"payment_method": method}
            self._api(
                "attach payment method", intents.update, pid, params=params_update, options=key
            )
        elif method:
            params["payment_method"] = method
        key = {"idempotency_key": idempotency_key}
        intent = self._api(
            "confirm PaymentIntent", intents.confirm, pid, params=params, options=key
        )
        return read_answer(self, self.payment_from_intent, intent)

    def capture_payment(
        self, payment: AbstractPayment, *, amount: int, idempotency_key: str
    ) -> ProviderPayment:
        pid = self._intent_id(payment)
        params = {"amount_to_capture": self._api_amount(amount, payment.currency)}
        key = {"idempotency_key": idempotency_key}
        capture = self.client.v1.payment_intents.capture
        intent = self._api("capture PaymentIntent", capture, pid, params=params, options=key)
        return read_answer(self, self.payment_from_intent, intent, captured_hint=amount)

    def cancel_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        pid = self._intent_id(payment)
        cancel, key = self.client.v1.payment_intents.cancel, {"idempotency_key": idempotency_key}
        intent = self._api("cancel PaymentIntent", cancel, pid, options=key)
        return read_answer(self, self.payment_from_intent, intent)

    def refund_payment(
        self, payment: AbstractPayment, refund: Refund, *, idempotency_key: str
    ) -> ProviderRefund:
        pid = self._intent_id(payment)
        params = {
            "payment_intent": pid,
            "amount": self._api_amount(refund.amount, refund.currency),
            "metadata": {
                METADATA_REFUND_KEY: str(refund.pk),
                METADATA_PAYMENT_KEY: str(payment.pk),
            },
        }
        create, key = self.client.v1.refunds.create, {"idempotency_key": idempotency_key}
        obj = self._api("create refund", create, params=params, options=key)
        return read_answer(self, self.refund_from_object, obj, payment_intent=pid)

    def fetch_payment(self, payment: AbstractPayment) -> ProviderPayment:
        if not payment.provider_payment_id:
            # Never linked: the services create it again with the same idempotency key,
            # which returns the PaymentIntent Stripe may already have made (keys live at
            # least 24 hours).
            return ProviderPayment(provider_payment_id=None, status=None)
        pid = str(payment.provider_payment_id)
        # Before basil the charge tells which refunds only released the authorization.
        releases = self.releases_are_refunds()
        params = {"expand": ["latest_charge"]} if releases else {}
        retrieve = self.client.v1.payment_intents.retrieve
        intent = self._api("retrieve PaymentIntent", retrieve, pid, params=params)
        page: list[dict[str, Any]] = []
        # API versions before 2022-11-15 have no latest_charge: a captured intent is enough.
        # A canceled intent captured nothing: a refund of it only released it (before basil).
        captured = intent.get("latest_charge") or intent.get("status") == "succeeded"
        if captured and intent.get("status") != "canceled":
            page = self.call("list refunds", self._list_refunds, pid)
            charge = mapping(intent.get("latest_charge"))
            if releases and charge:
                released = _release_refunds(charge, page)
                page = [r for r in page if text(r.get("id")) not in released]

        def answer() -> ProviderPayment:
            refunds = tuple(self.refund_from_object(r, payment_intent=pid) for r in page)
            return replace(self.payment_from_intent(intent), refunds=refunds)

        return read_answer(self, answer)

    def _list_refunds(self, pid: str) -> list[dict[str, Any]]:
        found = self.client.v1.refunds.list(params={"payment_intent": pid, "limit": 100})
        return [item.to_dict() for item in islice(found.auto_paging_iter(), _MAX_REFUNDS_LISTED)]

    def releases_are_refunds(self, api_version: str = "") -> bool:
        """Whether Stripe, at ``api_version`` (default: the one we call with), reports the
        release of an authorization as a Refund (versions before basil)."""
        version = api_version or self.options["api_version"] or stripe.api_version
        return str(version) < RELEASES_WITHOUT_REFUND

    # -- Stripe objects -> neutral results ------------------------------------------

    def payment_from_intent(
        self, intent: Mapping[str, Any], *, captured_hint: int | None = None
    ) -> ProviderPayment:
        """A PaymentIntent (as a dict) in our terms.

        ``captured_hint`` is the amount just captured, used when neither the
        PaymentIntent (``amount_received``) nor its charge (``amount_captured``)
        says how much was captured, as with some test servers.
        """
        currency = _currency(intent)
        stripe_status = text(intent.get("status"))
        status = INTENT_STATUSES.get(stripe_status)
        error = mapping(intent.get("last_payment_error"))
        failed = stripe_status == "requires_payment_method" and bool(error)
        amount = from_stripe_amount(intent.get("amount"), currency)
        hint = amount if captured_hint is None else captured_hint
        charge_id = _id_of(intent.get("latest_charge"))
        return ProviderPayment(
            provider_payment_id=text(intent.get("id")) or None,
            status=P.FAILED if failed else status,
            amount=amount,
            currency=currency,
            amount_captured=_captured(intent, currency, hint) if status == P.SUCCEEDED else None,
            failure_code=text(error.get("decline_code")) or text(error.get("code"))
            if failed
            else "",
            failure_message=redact(text(error.get("message"))) if failed else "",
            next_action=mapping(intent.get("next_action")) or None
            if status == P.REQUIRES_ACTION
            else None,
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
        currency = _currency(obj)
        return ProviderRefund(
            provider_refund_id=text(obj.get("id")),
            status=status or REFUND_STATUSES.get(text(obj.get("status")), RefundStatus.PENDING),
            amount=from_stripe_amount(obj.get("amount"), currency),
            currency=currency,
            provider_payment_id=_id_of(obj.get("payment_intent")) or payment_intent,
            our_refund_id=_metadata(obj, METADATA_REFUND_KEY),
            failure_reason=text(obj.get("failure_reason")),
        )

    def dispute_from_object(self, obj: Mapping[str, Any], event_type: str) -> ProviderDispute:
        currency = _currency(obj)
        default = DisputeStatus.CLOSED if event_type.endswith(".closed") else DisputeStatus.OPEN
        return ProviderDispute(
            provider_dispute_id=text(obj.get("id")),
            status=DISPUTE_STATUSES.get(text(obj.get("status")), default),
            amount=from_stripe_amount(obj.get("amount"), currency),
            currency=currency,
            provider_payment_id=_id_of(obj.get("payment_intent")) or None,
            reason=text(obj.get("reason")),
        )

    # -- webhooks --------------------------------------------------------------------

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> None:
        verify_timestamped_hmac(
            header(headers, SIGNATURE_HEADER),
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
        if not isinstance(event, dict) or not text(event.get("id")):
            raise WebhookVerificationError("The Stripe event has no id.", provider=self.alias)
        event_id, event_type = text(event.get("id")), text(event.get("type"))
        created = integer(event.get("created")) or 0
        occurred_at = (
            datetime.fromtimestamp(created, tz=timezone.utc) if 0 < created < 2**37 else None
        )
        base = ProviderEvent(event_id=event_id, type=event_type, occurred_at=occurred_at)
        # Thin events carry no object (https://docs.stripe.com/event-destinations): ignored.
        obj = mapping(mapping(event.get("data")).get("object"))
        if event.get("object") != "event" or not obj:
            return base
        livemode, mode = event.get("livemode"), self.livemode
        if event.get("account") or (isinstance(livemode, bool) and mode not in (None, livemode)):
            # A connected account's object, or one of the other mode (a Connect endpoint
            # also gets test events): never one of our PaymentIntents, whatever its
            # metadata says.
            logger.warning("Stripe event %s is not about this account and mode.", event_id)
            return base
        try:
            return self._event_update(base, event_type, obj, text(event.get("api_version")))
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
        kind = text(obj.get("object"))
        if event_type in PAYMENT_EVENTS and kind == "payment_intent":
            payment = self.payment_from_intent(obj)
            if event_type == "payment_intent.payment_failed" and payment.status == P.PENDING:
                payment = replace(payment, status=P.FAILED)
            return replace(base, payment=payment, our_payment_id=payment.our_payment_id)
        releases = bool(api_version) and self.releases_are_refunds(api_version)
        if event_type == "charge.refunded" and kind == "charge":
            return self._charge_refunded(base, obj, api_version, releases)
        if event_type in REFUND_EVENTS and kind == "refund":
            theirs = not _metadata(obj, METADATA_REFUND_KEY)
            if releases and theirs and _release_like(event_type, obj):
                return base
            forced = RefundStatus.FAILED if event_type == "refund.failed" else None
            refund = self.refund_from_object(obj, status=forced)
            our_payment_id = _metadata(obj, METADATA_PAYMENT_KEY)
            return replace(base, refund=refund, our_payment_id=our_payment_id)
        if event_type in DISPUTE_EVENTS and kind == "dispute":
            return replace(base, dispute=self.dispute_from_object(obj, event_type))
        return base

    def _charge_refunded(
        self, base: ProviderEvent, charge: dict[str, Any], api_version: str, releases: bool
    ) -> ProviderEvent:
        data = mapping(charge.get("refunds")).get("data")
        refunds = [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []
        released = 0
        if releases:
            released = _released(charge)
            if released >= (integer(charge.get("amount")) or 0):
                return base  # nothing was captured: the authorization was released
            ids = _release_refunds(charge, refunds)
            refunds = [r for r in refunds if text(r.get("id")) not in ids]
        if not refunds and api_version and api_version < REFUND_EVENTS_FOR_ALL_REFUNDS:
            # From 2022-11-15 to 2024-10-27 the charge has no refunds list and card
            # refunds send no refund.* event: the total is all there is to go on.
            return replace(base, payment=self._refunded_total(charge, released))
        if not refunds:  # from 2024-10-28 the refund.* events carry it
            return base
        newest = max(refunds, key=lambda r: r.get("created") or 0)
        pid = _id_of(charge.get("payment_intent")) or None
        refund = self.refund_from_object(newest, payment_intent=pid)
        return replace(base, refund=refund, our_payment_id=_metadata(newest, METADATA_PAYMENT_KEY))

    def _refunded_total(
        self, charge: Mapping[str, Any], released: int = 0
    ) -> ProviderPayment | None:
        """What a ``charge.refunded`` without a refunds list says: the total refunded
        (less what releasing the authorization counted in it before basil)."""
        pid = _id_of(charge.get("payment_intent"))
        currency = text(charge.get("currency")).upper()
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


__all__ = [
    "MINIMUM_AMOUNTS",
    "AmountRefused",
    "RedactingFilter",
    "StripeProvider",
    "from_stripe_amount",
    "redact",
    "to_stripe_amount",
]
