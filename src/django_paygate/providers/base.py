"""The interface every payment provider implements.

A provider is an adapter between django-paygate and one payment API. It
translates our payments into the provider's calls and the provider's answers
and webhook events into the neutral, frozen dataclasses below. It never
touches the database: :mod:`django_paygate.services` and
:mod:`django_paygate.webhooks` decide what to write.

Outbound calls receive our ``payment`` (or ``refund``) to read from, and an
``idempotency_key`` derived from our row. They must send that key (or the
provider's equivalent) so that a retry after a timeout, or after a restart,
cannot charge or refund twice. They raise only :mod:`django_paygate.exceptions`
errors: :class:`ProviderUnavailable` when the outcome is unknown (timeouts,
connection errors, 5xx, 429), :class:`ProviderError` when the provider said
no, :class:`PaymentDeclined` for declines, :class:`InvalidAmount` before any
network call for what the provider cannot charge.

Inbound calls are pure functions of the raw body and headers:
:meth:`BaseProvider.verify_webhook` checks the signature over the exact bytes
received, :meth:`BaseProvider.parse_webhook` turns the event into a
:class:`ProviderEvent`.

A third-party provider subclasses :class:`BaseProvider`, sets ``name``,
``default_options`` (and ``required_options`` / ``secret_options``), and
implements the methods; see ADDING_PROVIDERS.md.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django_paygate import money
from django_paygate.exceptions import (
    ConfigurationError,
    InvalidAmount,
    NotSupported,
    WebhookVerificationError,
)
from django_paygate.states import DisputeStatus, PaymentStatus, RefundStatus

if TYPE_CHECKING:
    from django_paygate.models import AbstractPayment, Refund


@dataclass(frozen=True)
class ProviderRefund:
    """A refund as the provider reports it."""

    provider_refund_id: str
    status: RefundStatus
    amount: int
    currency: str
    provider_payment_id: str | None = None
    #: Our Refund's id, when the provider echoes it back (metadata / notes).
    our_refund_id: str | None = None
    failure_reason: str = ""
    #: References to the provider object the refund is taken from (as in ProviderPayment).
    provider_data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderDispute:
    """A dispute (chargeback) as the provider reports it."""

    provider_dispute_id: str
    status: DisputeStatus
    amount: int
    currency: str
    provider_payment_id: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class ProviderPayment:
    """A payment as the provider reports it, in our terms.

    ``status`` is ``None`` when the answer says nothing about the status.
    ``client_data`` is what the customer's browser needs (a Stripe
    ``client_secret``, a Razorpay ``order_id``): it is handed to the caller
    and never stored or logged. ``provider_data`` holds non-secret references
    the provider needs later (a Razorpay payment id, a Stripe charge id); they
    are merged into ``payment.provider_data``.
    """

    provider_payment_id: str | None
    status: PaymentStatus | None
    amount: int | None = None
    currency: str | None = None
    amount_captured: int | None = None
    failure_code: str = ""
    failure_message: str = ""
    client_data: Mapping[str, Any] = field(default_factory=dict, repr=False)
    next_action: Mapping[str, Any] | None = field(default=None, repr=False)
    provider_data: Mapping[str, Any] = field(default_factory=dict)
    refunds: tuple[ProviderRefund, ...] = ()
    #: Total refunded at the provider, when that is all it says about refunds.
    amount_refunded: int | None = None
    #: Our Payment's id, when the provider echoes it back (metadata / receipt).
    our_payment_id: str | None = None


@dataclass(frozen=True)
class ProviderEvent:
    """A verified webhook event, parsed into neutral terms.

    At most one of ``payment``, ``refund`` and ``dispute`` is usually set;
    none of them means the event type is not one django-paygate acts on
    (it is stored and marked ignored).
    """

    event_id: str
    type: str
    payment: ProviderPayment | None = None
    refund: ProviderRefund | None = None
    dispute: ProviderDispute | None = None
    #: Our Payment's id from the event's metadata, if present.
    our_payment_id: str | None = None
    occurred_at: datetime | None = None

    @property
    def provider_payment_id(self) -> str | None:
        for part in (self.payment, self.refund, self.dispute):
            if part is not None and part.provider_payment_id:
                return part.provider_payment_id
        return None

    @property
    def actionable(self) -> bool:
        return any(part is not None for part in (self.payment, self.refund, self.dispute))


class RedactedOptions(dict[str, Any]):
    """A provider's options; ``repr`` hides the secret ones."""

    secret_keys: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        shown = {k: ("***" if k in self.secret_keys and v else v) for k, v in self.items()}
        return repr(shown)

    __str__ = __repr__


class BaseProvider:
    """Base class of every payment provider adapter.

    Each method says whether a subclass must implement it, may override it, or
    should leave it alone. An adapter only talks to its provider: it never
    touches the database (the services apply what it answers).
    """

    #: Human name, for messages and the admin.
    name: ClassVar[str] = ""
    #: Every option the provider accepts, with its default.
    default_options: ClassVar[Mapping[str, Any]] = {}
    #: Options that must be set (non-empty).
    required_options: ClassVar[tuple[str, ...]] = ()
    #: Options never shown in ``repr``, logs or errors.
    secret_options: ClassVar[tuple[str, ...]] = ("webhook_secret",)
    #: Currencies the provider can charge; ``None`` means any ISO 4217 currency.
    supported_currencies: ClassVar[frozenset[str] | None] = None
    #: Smallest chargeable amount, in minor units, per currency.
    minimum_amounts: ClassVar[Mapping[str, int]] = {}
    #: Header keys (lower case) worth keeping on a stored webhook event.
    webhook_headers_to_keep: ClassVar[tuple[str, ...]] = ("user-agent", "content-type")
    #: Whether the signature covers the event id ``parse_webhook`` reports. When it does
    #: not (an id sent in a header of its own), anyone holding one signed body could
    #: replay it under fresh ids: the inbox then stores the event under
    #: :func:`body_event_id` instead, and keeps the header among the kept headers.
    event_id_signed: ClassVar[bool] = True

    #: The ``provider_data`` key naming one attempt, for a provider whose payment
    #: may have several (each may be captured or refunded on its own); "" for none.
    attempt_key: ClassVar[str] = ""

    def __init__(self, alias: str, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.default_options))
        if unknown:
            raise ConfigurationError(
                f"Unknown option {unknown[0]!r} for provider {alias!r} ({type(self).__name__}). "
                f"Known options: {', '.join(sorted(self.default_options)) or 'none'}."
            )
        merged = RedactedOptions({**self.default_options, **options})
        merged.secret_keys = frozenset(self.secret_options)
        missing = [key for key in self.required_options if not merged.get(key)]
        if missing:
            raise ConfigurationError(
                f"Provider {alias!r} ({type(self).__name__}) needs the option {missing[0]!r}."
            )
        self.alias = alias
        self.options = merged

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias={self.alias!r}>"

    # -- amounts -------------------------------------------------------------

    def validate_amount(self, amount: int, currency: str) -> None:
        """Refuse, before any network call, what this provider cannot charge.

        May be overridden: subclasses add their own rules and call ``super()``.
        """
        if self.supported_currencies is not None and currency not in self.supported_currencies:
            raise InvalidAmount(f"{self.name} does not accept {currency}.", provider=self.alias)
        minimum = self.minimum_amounts.get(currency)
        if minimum is not None and amount < minimum:
            raise InvalidAmount(
                f"{self.name} cannot charge less than "
                f"{money.format_money(minimum, currency)} in {currency}.",
                provider=self.alias,
            )

    # -- outbound calls ------------------------------------------------------

    def create_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        """Create the provider's object for ``payment`` (a PaymentIntent, an Order).

        Must be implemented.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement create_payment().")

    def client_data(self, payment: AbstractPayment) -> Mapping[str, Any]:
        """What the front end needs to continue ``payment`` (may call the provider).

        Must be implemented (the shipped checkout and the API hand it to the browser).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement client_data().")

    def confirm_payment(
        self, payment: AbstractPayment, *, idempotency_key: str, **data: Any
    ) -> ProviderPayment:
        """Confirm with the provider's own confirmation data (a card, a signature).

        Must be implemented.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement confirm_payment().")

    def capture_payment(
        self, payment: AbstractPayment, *, amount: int, idempotency_key: str
    ) -> ProviderPayment:
        """Capture ``amount`` of an authorized payment.

        May be implemented: a provider that cannot authorize now and capture
        later leaves it, and ``services.capture_payment`` raises
        :class:`NotSupported` (the API answers ``400 not_supported``).
        """
        raise NotSupported(f"{self.name} cannot capture a payment later.", provider=self.alias)

    def cancel_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        """Cancel (void) a payment that has not been captured.

        May be implemented; without it ``services.cancel_payment`` raises
        :class:`NotSupported`.
        """
        raise NotSupported(f"{self.name} cannot cancel a payment.", provider=self.alias)

    def refund_payment(
        self, payment: AbstractPayment, refund: Refund, *, idempotency_key: str
    ) -> ProviderRefund:
        """Refund ``refund.amount`` of ``payment``.

        Must be implemented. Send ``refund.pk`` to the provider where it keeps a
        reference of yours (see ADDING_PROVIDERS.md).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement refund_payment().")

    def fetch_payment(self, payment: AbstractPayment) -> ProviderPayment:
        """The provider's current truth about ``payment``, with its refunds.

        A payment the provider has no record of comes back with
        ``provider_payment_id=None`` and ``status=None``. Must be implemented:
        ``sync_payment`` and ``paygate_sync`` repair everything with it.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement fetch_payment().")

    def scrub(self, text: str, *, mask: str = "[redacted]") -> str:
        """``text`` without the values of this provider's :attr:`secret_options` (a key,
        every webhook secret of a rotation). Leave it alone."""
        for name in self.secret_options:
            value = self.options.get(name)
            for secret in [value] if isinstance(value, str) else list(value or ()):
                if isinstance(secret, str) and len(secret.strip()) >= 4:
                    text = text.replace(secret, mask)
        return text

    # -- inbound webhooks ----------------------------------------------------

    def webhook_secrets(self) -> list[str]:
        """The configured webhook secrets (a list during rotation). Leave it alone."""
        value = self.options.get("webhook_secret")
        if not value:
            return []
        secrets = [value] if isinstance(value, str) else list(value)
        return [s for s in secrets if isinstance(s, str) and s.strip()]

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Raise :class:`WebhookVerificationError` unless ``body`` is signed by the provider.

        Must be implemented (:func:`verify_timestamped_hmac` does it for a
        Stripe-style ``t=…,v1=…`` header).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement verify_webhook().")

    def redact_webhook_payload(self, payload: str) -> str:
        """The verified body as it may be stored in the inbox.

        May be overridden, to strip secrets a provider puts in its events (Stripe's
        ``client_secret``); the result must still parse to the same event.
        """
        return payload

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        """Turn a verified webhook into a :class:`ProviderEvent`.

        Raise :class:`WebhookVerificationError` for a body that is not valid
        (not JSON, no event id). Must be implemented.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement parse_webhook().")


def body_event_id(body: bytes) -> str:
    """An event id derived from a signed body: the same body is the same event."""
    return "body-" + hashlib.sha256(body).hexdigest()


def hmac_sha256_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, "sha256").hexdigest()


def signature_matches(candidates: Iterable[str], expected: Iterable[str]) -> bool:
    """Constant-time comparison of any candidate with any expected hex digest.

    Candidates that are not ASCII, or not hex of the right shape, simply fail
    to match (no ``TypeError`` escapes, unlike ``hmac.compare_digest`` on
    non-ASCII ``str``).
    """
    expected_bytes = [e.encode("ascii") for e in expected]
    matched = False
    for candidate in candidates:
        try:
            raw = candidate.strip().encode("ascii")
        except (UnicodeEncodeError, AttributeError):
            continue
        for exp in expected_bytes:
            matched |= hmac.compare_digest(raw, exp)
    return matched


def verify_timestamped_hmac(
    header: str,
    body: bytes,
    secrets: Sequence[str],
    *,
    tolerance: int,
    provider: str,
    name: str = "signature header",
) -> None:
    """Check a ``t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` header.

    The scheme Stripe signs with (``Stripe-Signature``), and the dummy provider
    too. Any ``v1`` may match any of ``secrets`` (rotation); the timestamp must
    be within ``tolerance`` seconds of now, either way. Raises
    :class:`WebhookVerificationError` naming ``name``, never the secrets.
    """

    def refuse(problem: str) -> WebhookVerificationError:
        return WebhookVerificationError(f"{name}: {problem}.", provider=provider)

    if not header:
        raise refuse("missing")
    if len(header) > 4096:
        raise refuse("too long")
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip() == "t":
            timestamps.append(value.strip())
        elif sep and key.strip() == "v1":
            signatures.append(value.strip())
    stamp = timestamps[0] if len(timestamps) == 1 else ""
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        raise refuse("malformed timestamp")
    if not signatures or len(signatures) > 16:
        raise refuse("no v1 signature")
    if not secrets:
        raise refuse(f"no webhook_secret is configured for {provider!r}")
    skew = time.time() - int(stamp)
    if abs(skew) > tolerance:
        raise refuse("timestamp too far " + ("in the past" if skew > 0 else "in the future"))
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    signed = stamp.encode("ascii") + b"." + raw
    if not signature_matches(signatures, [hmac_sha256_hex(secret, signed) for secret in secrets]):
        raise refuse("no signature matches")


def decode_json_body(body: bytes) -> Any:
    """The JSON of a webhook body, or :class:`WebhookVerificationError`."""
    import json

    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookVerificationError("The webhook body is not valid UTF-8 JSON.") from exc
