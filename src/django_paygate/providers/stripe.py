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
    AmountRefused,
    BaseProvider,
    OptionCheck,
    ProviderDispute,
    ProviderEvent,
    ProviderPayment,
    ProviderRefund,
    RedactingLogFilter,
    check_three_decimals,
    decode_json_body,
    dicts,
    integer,
    is_int,
    is_string,
    is_strings,
    mapping,
    provider_amount,
    read_answer,
    redact_logger,
    text,
    unix_time,
)
from django_paygate.states import DisputeStatus, PaymentStatus, RefundStatus

if TYPE_CHECKING:
    from django_paygate.models import AbstractPayment, Refund

logger = logging.getLogger("django_paygate.providers.stripe")

SIGNATURE_HEADER = "Stripe-Signature"
METADATA_PAYMENT_KEY = "paygate_payment_id"
METADATA_REFUND_KEY = "paygate_refund_id"

# -- Currencies (https://docs.stripe.com/currencies, checked 2025) ---------------------

#: Currencies Stripe charges in whole units ("zero-decimal").
STRIPE_ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF",
     "VND", "VUV", "XAF", "XOF", "XPF"}
)  # fmt: skip
#: Three-decimal currencies: the amount's last digit must be 0.
STRIPE_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
#: ISO 4217 codes Stripe does not charge in: fund and precious-metal codes,
#: four-decimal units, three-decimal currencies outside Stripe's list, and
#: currencies of sanctioned countries.
STRIPE_UNSUPPORTED = frozenset(
    {"BOV", "CHE", "CHW", "CLF", "COU", "CUC", "CUP", "IQD", "IRR", "KPW", "LYD",
     "MXV", "SYP", "USN", "UYI", "UYW"}
)  # fmt: skip
#: Card payments accept at most 12 digits of Stripe minor units.
STRIPE_MAX_API_AMOUNT = 999_999_999_999

#: Minimum charge per currency, in major units as Stripe publishes them (only Stripe can
#: check the settlement currency's minimum after conversion).
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
    """Decimal places of ``currency`` in Stripe's ``amount`` fields: ISK and UGX keep two,
    written "00" (5 ISK is ``500``), and so do HUF and TWD (zero-decimal for payouts only)."""
    if currency in STRIPE_ZERO_DECIMAL:
        return 0
    return 3 if currency in STRIPE_THREE_DECIMAL else 2


def to_stripe_amount(amount: int, currency: str) -> int:
    """Our minor units -> Stripe's, or :class:`InvalidAmount` if Stripe cannot express it."""
    api = money.to_api_units(amount, currency, api_exponent(currency), provider="Stripe")
    check_three_decimals(amount, currency, provider="Stripe")
    if api > STRIPE_MAX_API_AMOUNT:
        raise InvalidAmount(f"{money.format_money(amount, currency)} is above Stripe's maximum.")
    return api


def from_stripe_amount(api: Any, currency: str) -> int:
    """Stripe's minor units -> ours. Raises :class:`InvalidAmount` (a ``ValueError``)."""
    return money.from_api_units(api, currency, api_exponent(currency), provider="Stripe")


# -- Secret hygiene -------------------------------------------------------------------

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
_CLIENT_SECRET_JSON = re.compile(r'("client_secret"\s*:\s*")(?:[^"\\]|\\.)*(")')


def redact(message: str) -> str:
    """``message`` without API keys, webhook secrets, client secrets or signatures."""
    for pattern, replacement in _SECRET_PATTERNS:
        message = pattern.sub(replacement, message)
    return message


#: The filter on the ``stripe`` logger, with :func:`redact`: the SDK logs every response
#: body at DEBUG level (a PaymentIntent's holds its ``client_secret``), and its error log
#: repeats Stripe's message, which can echo a (masked) API key.
RedactingFilter = RedactingLogFilter
redact_logger("stripe", redact)

# -- Mapping tables ------------------------------------------------------------------

P = PaymentStatus
#: PaymentIntent status -> ours (``requires_payment_method`` after a failed
#: attempt is ``failed``: see :meth:`StripeProvider.payment_from_intent`).
INTENT_STATUSES: Mapping[str, PaymentStatus] = {
    "requires_payment_method": P.PENDING, "requires_confirmation": P.PENDING,
    "requires_action": P.REQUIRES_ACTION, "processing": P.PROCESSING,
    "requires_capture": P.AUTHORIZED, "succeeded": P.SUCCEEDED, "canceled": P.CANCELED,
}  # fmt: skip
#: The events django-paygate acts on.
PAYMENT_EVENTS = frozenset(
    {"payment_intent.succeeded", "payment_intent.processing", "payment_intent.requires_action",
     "payment_intent.payment_failed", "payment_intent.canceled",
     "payment_intent.amount_capturable_updated"}
)  # fmt: skip
REFUND_EVENTS = frozenset(
    {"charge.refunded", "charge.refund.updated", "refund.created", "refund.updated",
     "refund.failed"}
)  # fmt: skip
DISPUTE_EVENTS = frozenset(
    {"charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed"}
)
#: From this API version on, refund.* events are sent for card refunds too.
REFUND_EVENTS_FOR_ALL_REFUNDS = "2024-10-28"
#: Before this API version, releasing an authorization (a partial capture's rest, a cancel)
#: made a Refund through which no money went back (docs/providers/stripe.md, "Webhooks").
RELEASES_WITHOUT_REFUND = "2025-03-31"
#: The reason Stripe gives the Refund of an authorization that expired uncaptured.
EXPIRED_UNCAPTURED = "expired_uncaptured_charge"

R = RefundStatus
REFUND_STATUSES: Mapping[str, RefundStatus] = {
    "pending": R.PENDING, "requires_action": R.PENDING, "succeeded": R.SUCCEEDED,
    "failed": R.FAILED, "canceled": R.CANCELED,
}  # fmt: skip
D = DisputeStatus
DISPUTE_STATUSES: Mapping[str, DisputeStatus] = {
    # Inquiries (warning_*): the bank asks, no funds are withdrawn; a refund may settle one.
    "warning_needs_response": D.INQUIRY, "warning_under_review": D.INQUIRY,
    "needs_response": D.OPEN, "under_review": D.UNDER_REVIEW, "won": D.WON, "lost": D.LOST,
    "warning_closed": D.CLOSED, "prevented": D.CLOSED,
}  # fmt: skip

_PAYMENT_METHOD_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
_MAX_REFUNDS_LISTED = 1000


def _id_of(value: Any) -> str:
    """The id of an expandable field (a string, or an expanded object)."""
    return value if isinstance(value, str) else text(mapping(value).get("id"))


def _metadata(obj: Mapping[str, Any], key: str) -> str | None:
    return text(mapping(obj.get("metadata")).get(key)) or None


def _currency(obj: Mapping[str, Any]) -> str:
    """The currency of a Stripe object, upper case; one we do not know is InvalidAmount."""
    return money.normalize_currency(obj.get("currency"))


def _captured(intent: Mapping[str, Any], currency: str) -> int | None:
    """What a succeeded PaymentIntent captured: its ``amount_received``, else its charge's
    ``amount_captured``; ``None`` if neither says (some test servers), which the core reads
    as the amount it asked to capture."""
    charge = mapping(intent.get("latest_charge"))
    for api in (intent.get("amount_received"), charge.get("amount_captured")):
        if isinstance(api, int) and api > 0:
            return from_stripe_amount(api, currency)
    return None


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
    """The ids of the refunds in ``refunds`` (none of ours) that only released ``charge``'s
    authorization: all when nothing was captured, else an expiry's and the first of exactly
    the rest (made with the capture, before any refund could be)."""
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
    """Whether a refund event (before basil) of a refund we did not make may only report a
    release, and so books nothing: an expiry's, or a succeeded one in ``charge.refund.updated``
    (only its charge tells; a Dashboard refund came with ``charge.refunded`` already)."""
    if refund.get("reason") == EXPIRED_UNCAPTURED:
        return True
    return event_type == "charge.refund.updated" and refund.get("status") == "succeeded"


#: Stripe's errors in ours: the first entry whose SDK class the error is (no class: a
#: 409 ``idempotency_error``, "another in-progress request using this Idempotent Key",
#: our own earlier request still running), and what we say. Other errors are refusals.
_ERRORS: tuple[tuple[str, type[PaygateError], str], ...] = (
    ("IdempotencyError", ProviderIdempotencyError,
     "Stripe refused the idempotency key as reused with other parameters"),
    ("", ProviderRequestInProgress, "another request with this idempotency key is in "
     "progress at Stripe; its outcome is settled by a sync or its webhook"),
    ("APIConnectionError", ProviderUnavailable,
     "Stripe could not be reached or did not answer in time; the outcome is unknown"),
    ("RateLimitError", ProviderUnavailable, "Stripe is rate limiting requests (429); retry later"),
    ("APIError", ProviderUnavailable, "Stripe answered HTTP {status}; the outcome is unknown"),
    ("AuthenticationError", ProviderError, "Stripe rejected the API key (HTTP {status}); "
     "check OPTIONS['secret_key'] of {alias!r}"),
    ("PermissionError", ProviderError, "Stripe rejected the API key (HTTP {status}); "
     "check OPTIONS['secret_key'] of {alias!r}"),
)  # fmt: skip


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
        redact_logger("stripe", redact)  # again, should the filter have been removed

    def check_options(self) -> None:
        secret, public = self.options["secret_key"], self.options["publishable_key"]
        for mode, other in (("live", "test"), ("test", "live")):
            if secret.startswith((f"sk_{mode}", f"rk_{mode}")) and public.startswith(f"pk_{other}"):
                problem = f"the secret key is a {mode} key but the publishable key is a {other} key"
                raise self.option_error("", problem)
        if not self.options["automatic_payment_methods"]:
            try:
                types = is_strings(self.options["payment_method_types"])
            except ValueError as exc:
                problem = f"{exc} when automatic_payment_methods is False"
                raise self.option_error("payment_method_types", problem) from None
            self.options["payment_method_types"] = types

    # -- the SDK client ----------------------------------------------------------

    @property
    def client(self) -> stripe.StripeClient:
        """This instance's own client, built on first use. Nothing is set on the module."""
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

    def _api(
        self, operation: str, fn: Callable[..., Any], *args: Any, key: str = "", **kw: Any
    ) -> dict[str, Any]:
        """One SDK call (a POST with the idempotency key ``key``), its answer as a dict."""
        if key:
            kw["options"] = {"idempotency_key": key}
        return self.call_for_object(operation, fn, *args, **kw)

    def _on_intent(self, action: str, pid: str, key: str, **params: Any) -> ProviderPayment:
        """POST ``action`` (confirm, capture, cancel) on the PaymentIntent ``pid``."""
        fn = getattr(self.client.v1.payment_intents, action)
        intent = self._api(f"{action} PaymentIntent", fn, pid, key=key, params=params)
        return read_answer(self, self.payment_from_intent, intent)

    def translate_error(self, exc: Exception, operation: str) -> PaygateError | None:
        if not isinstance(exc, stripe.StripeError):
            return None
        err = mapping(mapping(exc.json_body).get("error"))
        code = text(err.get("code")) or text(getattr(exc, "code", None))
        message = redact(text(err.get("message")))
        extra = {"http_status": exc.http_status, "stripe_code": code, "request_id": exc.request_id}
        if isinstance(exc, stripe.CardError):
            decline = text(err.get("decline_code")) or code or "card_declined"
            message = message[:300] or "The card was declined."
            return PaymentDeclined(message, decline_code=decline, provider=self.alias, **extra)
        in_progress = exc.http_status == 409 and text(err.get("type")) == "idempotency_error"
        for name, kind, why in _ERRORS:
            if isinstance(exc, getattr(stripe, name)) if name else in_progress:
                why = why.format(status=exc.http_status or "?", alias=self.alias)
                return kind(f"Stripe {operation}: {why}.", provider=self.alias, **extra)
        detail = message or type(exc).__name__
        return self.refused(operation, f"{detail} ({code})" if code else detail, **extra)

    # -- amounts -----------------------------------------------------------------

    def validate_amount(self, amount: int, currency: str) -> None:
        super().validate_amount(amount, currency)
        to_stripe_amount(amount, currency)

    # -- outbound calls -----------------------------------------------------------

    def _intent_id(self, payment: AbstractPayment) -> str:
        return self.linked_id(payment, "PaymentIntent")

    def create_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        o, metadata = self.options, self._forwarded_metadata(payment)
        params: dict[str, Any] = {
            "amount": to_stripe_amount(payment.amount, payment.currency),
            "currency": payment.currency.lower(),
            "metadata": {**metadata, METADATA_PAYMENT_KEY: str(payment.pk)},
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
        create = self.client.v1.payment_intents.create
        intent = self._api("create PaymentIntent", create, params=params, key=idempotency_key)
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
        retrieve, pid = self.client.v1.payment_intents.retrieve, self._intent_id(payment)
        return self._client_data_of(self._api("retrieve PaymentIntent", retrieve, pid))

    def confirm_payment(
        self, payment: AbstractPayment, *, idempotency_key: str, **data: Any
    ) -> ProviderPayment:
        self.clean_confirmation(data)
        pid = self._intent_id(payment)
        method, return_url = data.get("payment_method"), data.get("return_url")
        if method is not None and not _PAYMENT_METHOD_ID.fullmatch(text(method)):
            raise ProviderError(
                "payment_method must be a Stripe PaymentMethod id.", provider=self.alias
            )
        if return_url is not None and not text(return_url).startswith(("https://", "http://")):
            raise ProviderError("return_url must be an http(s) URL.", provider=self.alias)
        params: dict[str, Any] = {"return_url": return_url} if return_url else {}
        if method and self.options["attach_before_confirm"]:
            update, key = self.client.v1.payment_intents.update, f"{idempotency_key}-update"
            self._api(
                "attach payment method", update, pid, params={"payment_method": method}, key=key
            )
        elif method:
            params["payment_method"] = method
        return self._on_intent("confirm", pid, idempotency_key, **params)

    def capture_payment(
        self, payment: AbstractPayment, *, amount: int, idempotency_key: str
    ) -> ProviderPayment:
        api_amount = provider_amount(self, to_stripe_amount, amount, payment.currency)
        pid = self._intent_id(payment)
        return self._on_intent("capture", pid, idempotency_key, amount_to_capture=api_amount)

    def cancel_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        return self._on_intent("cancel", self._intent_id(payment), idempotency_key)

    def refund_payment(
        self, payment: AbstractPayment, refund: Refund, *, idempotency_key: str
    ) -> ProviderRefund:
        pid = self._intent_id(payment)
        amount = provider_amount(self, to_stripe_amount, refund.amount, refund.currency)
        ours = {METADATA_REFUND_KEY: str(refund.pk), METADATA_PAYMENT_KEY: str(payment.pk)}
        params = {"payment_intent": pid, "amount": amount, "metadata": ours}
        create = self.client.v1.refunds.create
        obj = self._api("create refund", create, params=params, key=idempotency_key)
        return read_answer(self, self.refund_from_object, obj, payment_intent=pid)

    def fetch_payment(self, payment: AbstractPayment) -> ProviderPayment:
        if not payment.provider_payment_id:
            # Never linked: the services create it again with the same key (kept 24 hours).
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

    def payment_from_intent(self, intent: Mapping[str, Any]) -> ProviderPayment:
        """A PaymentIntent (as a dict) in our terms."""
        currency, stripe_status = _currency(intent), text(intent.get("status"))
        status = INTENT_STATUSES.get(stripe_status)
        error = mapping(intent.get("last_payment_error"))
        failed = stripe_status == "requires_payment_method" and bool(error)
        code = text(error.get("decline_code")) or text(error.get("code"))
        action = mapping(intent.get("next_action")) or None
        charge_id = _id_of(intent.get("latest_charge"))
        return ProviderPayment(
            provider_payment_id=text(intent.get("id")) or None,
            status=P.FAILED if failed else status,
            amount=from_stripe_amount(intent.get("amount"), currency),
            currency=currency,
            amount_captured=_captured(intent, currency) if status == P.SUCCEEDED else None,
            failure_code=code if failed else "",
            failure_message=redact(text(error.get("message"))) if failed else "",
            next_action=action if status == P.REQUIRES_ACTION else None,
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
            status=status or REFUND_STATUSES.get(text(obj.get("status")), R.PENDING),
            amount=from_stripe_amount(obj.get("amount"), currency),
            currency=currency,
            provider_payment_id=_id_of(obj.get("payment_intent")) or payment_intent,
            our_refund_id=_metadata(obj, METADATA_REFUND_KEY),
            failure_reason=text(obj.get("failure_reason")),
        )

    def dispute_from_object(self, obj: Mapping[str, Any], event_type: str) -> ProviderDispute:
        currency = _currency(obj)
        default = D.CLOSED if event_type.endswith(".closed") else D.OPEN
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
        self.verify_timestamped_signature(body, headers, SIGNATURE_HEADER)

    def redact_webhook_payload(self, payload: str) -> str:
        """Without the ``client_secret`` PaymentIntent events carry (never read from them)."""
        return _CLIENT_SECRET_JSON.sub(r"\1[redacted]\2", payload)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        event = decode_json_body(body)
        if not isinstance(event, dict) or not text(event.get("id")):
            raise WebhookVerificationError("The Stripe event has no id.", provider=self.alias)
        event_id, when = text(event.get("id")), unix_time(event.get("created"))
        base = ProviderEvent(event_id=event_id, type=text(event.get("type")), occurred_at=when)
        # Thin events carry no object (https://docs.stripe.com/event-destinations): ignored.
        obj = mapping(mapping(event.get("data")).get("object"))
        if event.get("object") != "event" or not obj:
            return base
        livemode, mode = event.get("livemode"), self.livemode
        if event.get("account") or (isinstance(livemode, bool) and mode not in (None, livemode)):
            # A connected account's object, or the other mode's (a Connect endpoint also
            # gets test events): never one of ours, whatever its metadata says.
            logger.warning("Stripe event %s is not about this account and mode.", event_id)
            return base
        try:
            return self._event_update(base, obj, text(event.get("api_version")))
        except InvalidAmount as exc:
            # A currency we never charge in (another integration, an old charge): not ours.
            # Refused, Stripe would retry it for days, then disable the endpoint.
            logger.warning("Stripe event %s left unapplied: %s", event_id, exc)
            return base

    @property
    def livemode(self) -> bool | None:
        """True for a live secret key, False for a test one, None if the key says neither."""
        key = str(self.options["secret_key"])
        if key.startswith(("sk_live_", "rk_live_")):
            return True
        return False if key.startswith(("sk_test_", "rk_test_")) else None

    def _event_update(
        self, base: ProviderEvent, obj: dict[str, Any], api_version: str
    ) -> ProviderEvent:
        event_type, kind = base.type, text(obj.get("object"))
        if event_type in PAYMENT_EVENTS and kind == "payment_intent":
            payment = self.payment_from_intent(obj)
            if event_type == "payment_intent.payment_failed" and payment.status == P.PENDING:
                payment = replace(payment, status=P.FAILED)
            return replace(base, payment=payment)
        releases = bool(api_version) and self.releases_are_refunds(api_version)
        if event_type == "charge.refunded" and kind == "charge":
            return self._charge_refunded(base, obj, api_version, releases)
        if event_type in REFUND_EVENTS and kind == "refund":
            theirs = not _metadata(obj, METADATA_REFUND_KEY)
            if releases and theirs and _release_like(event_type, obj):
                return base
            forced = R.FAILED if event_type == "refund.failed" else None
            refund = self.refund_from_object(obj, status=forced)
            return replace(base, refund=refund, our_payment_id=_metadata(obj, METADATA_PAYMENT_KEY))
        if event_type in DISPUTE_EVENTS and kind == "dispute":
            return replace(base, dispute=self.dispute_from_object(obj, event_type))
        return base

    def _charge_refunded(
        self, base: ProviderEvent, charge: dict[str, Any], api_version: str, releases: bool
    ) -> ProviderEvent:
        refunds = dicts(mapping(charge.get("refunds")).get("data"))
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

    def _refunded_total(self, charge: Mapping[str, Any], released: int) -> ProviderPayment | None:
        """What a ``charge.refunded`` without a refunds list says: the total refunded
        (less what releasing the authorization counted in it before basil)."""
        pid, currency = _id_of(charge.get("payment_intent")), _currency(charge)
        # from_stripe_amount refuses what is not an amount (InvalidAmount: left unapplied).
        refunded = charge.get("amount_refunded")
        if released and isinstance(refunded, int):
            refunded = max(0, refunded - released)
        total = from_stripe_amount(refunded, currency)
        if not pid or not total:
            return None
        return ProviderPayment(pid, None, currency=currency, amount_refunded=total)


__all__ = [
    "MINIMUM_AMOUNTS", "AmountRefused", "RedactingFilter", "StripeProvider",
    "from_stripe_amount", "redact", "to_stripe_amount",
]  # fmt: skip
