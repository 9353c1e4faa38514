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
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from django_paygate import money
from django_paygate.exceptions import (
    ConfigurationError,
    InvalidAmount,
    NotSupported,
    PaygateError,
    ProviderError,
    ProviderUnavailable,
    WebhookVerificationError,
)
from django_paygate.states import DisputeStatus, PaymentStatus, RefundStatus

if TYPE_CHECKING:
    import re

    import requests

    from django_paygate.models import AbstractPayment, Refund

_T = TypeVar("_T")


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
    #: Our Payment's id from the event's metadata, if present: the one place the
    #: core reads it. Without it, the id its ``payment`` carries.
    our_payment_id: str | None = None
    occurred_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.our_payment_id is None and self.payment is not None:
            object.__setattr__(self, "our_payment_id", self.payment.our_payment_id)

    @property
    def provider_payment_id(self) -> str | None:
        for part in (self.payment, self.refund, self.dispute):
            if part is not None and part.provider_payment_id:
                return part.provider_payment_id
        return None

    @property
    def actionable(self) -> bool:
        return any(part is not None for part in (self.payment, self.refund, self.dispute))


# ---------------------------------------------------------------------------
# Reading a provider's JSON without trusting its shape
# ---------------------------------------------------------------------------


def text(value: Any) -> str:
    """``value`` if it is a string, else ""."""
    return value if isinstance(value, str) else ""


def mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is a dict, else an empty one."""
    return value if isinstance(value, dict) else {}


def integer(value: Any) -> int | None:
    """``value`` if it is an int (not a bool), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def dicts(value: Any) -> list[dict[str, Any]]:
    """The dicts in ``value`` if it is a list (a provider's list of objects), else []."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def header(headers: Mapping[str, str], name: str) -> str:
    """The header ``name`` (any case) as a string, or ""."""
    value: Any = headers.get(name)
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == lower), None)
    return text(value)


# ---------------------------------------------------------------------------
# Options: each declared with a check, every problem told in one style
# ---------------------------------------------------------------------------

#: A check of one option's value: returns the value to keep, or raises ``ValueError``
#: with what the value must be ("must be a string").
OptionCheck = Callable[[Any], Any]


def is_string(*, required: bool = False, prefixes: tuple[str, ...] = ()) -> OptionCheck:
    """A string (non-empty if ``required``; starting with one of ``prefixes`` if given)."""

    def check(value: Any) -> Any:
        if not isinstance(value, str) or (required and not value.strip()):
            raise ValueError("must be a non-empty string" if required else "must be a string")
        if prefixes and value and not value.startswith(prefixes):
            raise ValueError("must start with " + " or ".join(repr(p) for p in prefixes))
        return value

    return check


def is_secrets(value: Any) -> Any:
    """A string, or a list of strings (several secrets while one is rotated)."""
    if isinstance(value, str) or (
        isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value)
    ):
        return value
    raise ValueError("must be a string or a list of strings")


def is_timeout(value: Any) -> float | tuple[float, float]:
    """Seconds > 0, or a (connect, read) pair of them; kept as a float or a tuple."""

    def positive(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0

    if positive(value):
        return float(value)
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(map(positive, value)):
        return (float(value[0]), float(value[1]))
    raise ValueError("must be a positive number of seconds, or a (connect, read) pair")


def is_int(low: int, high: int) -> OptionCheck:
    """An int from ``low`` to ``high``."""

    def check(value: Any) -> Any:
        if integer(value) is None or not low <= value <= high:
            raise ValueError(f"must be an int from {low} to {high}")
        return value

    return check


def is_bool(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("must be True or False")
    return value


def is_one_of(*choices: Any) -> OptionCheck:
    def check(value: Any) -> Any:
        if value not in choices:
            raise ValueError("must be " + " or ".join(repr(c) for c in choices))
        return value

    return check


def is_optional(inner: OptionCheck) -> OptionCheck:
    """``None``, or what ``inner`` accepts."""
    return lambda value: None if value is None else inner(value)


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_api_base(value: Any) -> Any:
    """An ``https://`` URL (``http://`` on the loopback interface, for test servers),
    kept without its trailing slash."""
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("must be an https:// URL")
    if not (
        parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)
    ):
        raise ValueError("must be an https:// URL (or http:// on the loopback interface)")
    return value.rstrip("/")


def is_strings(value: Any) -> Any:
    """A non-empty list of non-empty strings."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ValueError("must be a non-empty list of strings")


#: Checks every provider gets for the options it declares under these names.
COMMON_OPTION_CHECKS: Mapping[str, OptionCheck] = {
    "webhook_secret": is_secrets,
    "timeout": is_timeout,
    "api_base": is_optional(is_api_base),
    # Seconds a signed timestamp may be off, either way: beyond an hour a captured
    # delivery could be replayed for that long.
    "webhook_tolerance": is_int(1, 3600),
}


# ---------------------------------------------------------------------------
# Transport: one session that never hangs and never misreads an answer
# ---------------------------------------------------------------------------


class TransportFailure(Exception):
    """The outcome of a call is unknown (raised by :class:`ProviderSession`).

    Not a ``requests`` exception, so no SDK's own ``except`` clause sees it;
    :meth:`BaseProvider.call` turns it into :class:`ProviderUnavailable`.
    """


def provider_session(timeout: float | tuple[float, float]) -> requests.Session:
    """A ``requests.Session`` for one provider's calls.

    * a call without ``timeout=`` gets ``timeout``;
    * a transport error (a timeout, a refused connection, TLS) is a
      :class:`TransportFailure`, unchained (the request holds the credentials);
    * so is an answer whose outcome is unknown: 408, 409 (a request with the
      same key in progress), 429, 5xx, or a body that is not JSON (a proxy's
      error page). Other answers go back to the caller (or the SDK).
    """
    import requests

    class ProviderSession(requests.Session):
        def request(  # type: ignore[override]
            self, method: str, url: str, *args: Any, **kwargs: Any
        ) -> requests.Response:
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = timeout
            failure = ""
            try:
                response = super().request(method, url, *args, **kwargs)
            except requests.Timeout as exc:
                failure = f"no answer in time ({type(exc).__name__})"
            except requests.RequestException as exc:
                failure = f"could not be reached ({type(exc).__name__})"
            if failure:
                raise TransportFailure(failure)
            status = response.status_code
            if status != 204:
                try:
                    response.json()
                except ValueError:
                    raise TransportFailure(
                        f"answered HTTP {status} with a body that is not JSON"
                    ) from None
            if status in (408, 409, 429) or status >= 500:
                busy = ": a request with the same key is in progress" if status == 409 else ""
                raise TransportFailure(f"answered HTTP {status}{busy}")
            return response

    return ProviderSession()


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

    #: How options are checked, by name (see :data:`COMMON_OPTION_CHECKS`, which every
    #: provider gets for the names it declares); a check returns the value kept.
    option_checks: ClassVar[Mapping[str, OptionCheck]] = {}
    #: The confirmation fields ``confirm_payment`` takes, with each one's longest value
    #: (the API refuses any other field, and longer values, before calling the provider).
    confirmation_fields: ClassVar[Mapping[str, int]] = {}

    def __init__(self, alias: str, **options: Any) -> None:
        """Merge ``options`` over :attr:`default_options` and check them. Leave it alone,
        or call ``super()`` first; checks between options go in :meth:`check_options`."""
        self.alias = alias
        unknown = sorted(set(options) - set(self.default_options))
        if unknown:
            known = ", ".join(sorted(self.default_options)) or "none"
            raise self.option_error(
                unknown[0], f"is not an option of {type(self).__name__} (known: {known})"
            )
        merged = RedactedOptions({**self.default_options, **options})
        merged.secret_keys = frozenset(self.secret_options)
        for key in self.required_options:
            if not merged.get(key):
                raise self.option_error(key, "is required")
        checks = {**COMMON_OPTION_CHECKS, **self.option_checks}
        for key in merged.keys() & checks.keys():
            try:
                merged[key] = checks[key](merged[key])
            except ValueError as exc:
                raise self.option_error(key, str(exc)) from None
        self.options = merged
        self._session: requests.Session | None = None
        self.check_options()

    def check_options(self) -> None:
        """May be overridden: checks that involve several options (raise
        :meth:`option_error`). Each option's own check belongs in :attr:`option_checks`."""

    def option_error(self, key: str, problem: str) -> ConfigurationError:
        """The error for option ``key``, in the one style every provider uses. Leave it alone."""
        where = f"PAYGATE['PROVIDERS'][{self.alias!r}]['OPTIONS']"
        return ConfigurationError(f"{where}[{key!r}] {problem}." if key else f"{where}: {problem}.")

    # -- transport -------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        """This instance's HTTP session (:func:`provider_session`), with the ``timeout``
        option. Leave it alone: hand it to the SDK, or call it through :meth:`call`."""
        if self._session is None:
            self._session = provider_session(self.options.get("timeout") or 20.0)
        return self._session

    def call(self, operation: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """``fn(*args, **kwargs)``, one call to the provider, with its failures mapped.

        A :class:`TransportFailure` (or any ``requests`` error) is
        :class:`ProviderUnavailable`: the outcome is unknown. Any other exception
        goes to :meth:`translate_error`. Our errors pass through. Errors are
        raised unchained, so nothing that holds a request or a response (and
        its credentials) travels with them. Leave it alone.
        """
        try:
            return fn(*args, **kwargs)
        except PaygateError:
            raise
        except Exception as exc:
            error = self._mapped(exc, operation)
        raise error

    def call_for_object(
        self, operation: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        """:meth:`call` of an SDK method that answers an object: a dict, or an object with
        ``to_dict()`` (as the dict); any other answer is an unknown outcome. Leave it alone."""

        def read() -> Any:
            answer = fn(*args, **kwargs)
            return answer.to_dict() if hasattr(answer, "to_dict") else answer

        answer = self.call(operation, read)
        if not isinstance(answer, dict):
            raise unknown_outcome(self, operation, "an answer that is not an object")
        return answer

    def _mapped(self, exc: Exception, operation: str) -> PaygateError:
        what = f"{self.name} {operation}"
        if isinstance(exc, TransportFailure):
            return ProviderUnavailable(
                f"{what}: {exc}; the outcome is unknown.", provider=self.alias
            )
        translated = self.translate_error(exc, operation)
        if translated is not None:
            return translated
        return ProviderUnavailable(
            f"{what}: unexpected error in the client ({type(exc).__name__}); "
            "the outcome is unknown.",
            provider=self.alias,
        )

    def translate_error(self, exc: Exception, operation: str) -> PaygateError | None:
        """May be overridden: our error for the SDK's ``exc`` (a decline, a refusal);
        ``None`` treats it as an unknown outcome. Use :meth:`refused` for a refusal."""
        return None

    def refused(self, operation: str, message: str, **extra: Any) -> ProviderError:
        """A :class:`ProviderError` for the provider's refusal, its ``message`` cut short and
        scrubbed of secrets. Leave it alone."""
        # Scrubbed before it is cut: a cut through a secret would keep its first characters.
        detail = self.scrub(message, mask="***")[:300] or "refused"
        return ProviderError(f"{self.name} {operation}: {detail}", provider=self.alias, **extra)

    def clean_confirmation(self, data: Mapping[str, Any]) -> None:
        """Refuse a confirmation field not in :attr:`confirmation_fields`. Leave it alone."""
        unknown = sorted(set(data) - set(self.confirmation_fields))
        if unknown:
            raise ProviderError(
                f"Unexpected confirmation field {unknown[0]!r}.", provider=self.alias
            )

    def linked_id(
        self, payment: AbstractPayment, what: str, pattern: re.Pattern[str] | None = None
    ) -> str:
        """``payment.provider_payment_id`` (when it matches ``pattern``, if given), else a
        :class:`ProviderError`: the payment has no ``what`` at the provider yet. Leave it
        alone."""
        linked = payment.provider_payment_id or ""
        if not linked or (pattern is not None and not pattern.fullmatch(linked)):
            raise ProviderError(f"This payment has no {self.name} {what} yet.", provider=self.alias)
        return str(linked)

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

        Must be implemented (:meth:`verify_timestamped_signature` does it for a
        Stripe-style ``t=…,v1=…`` header, :meth:`verify_body_signature` for a header
        holding the hex HMAC of the body).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement verify_webhook().")

    def verify_timestamped_signature(
        self, body: bytes, headers: Mapping[str, str], name: str
    ) -> None:
        """:func:`verify_timestamped_hmac` of the header ``name`` with :meth:`webhook_secrets`
        and the ``webhook_tolerance`` option (300 seconds without one). Leave it alone."""
        verify_timestamped_hmac(
            header(headers, name),
            body,
            self.webhook_secrets(),
            tolerance=int(self.options.get("webhook_tolerance") or 300),
            provider=self.alias,
            name=name,
        )

    def verify_body_signature(self, body: bytes, headers: Mapping[str, str], name: str) -> None:
        """:func:`verify_body_hmac` of the header ``name`` with :meth:`webhook_secrets`.
        Leave it alone."""
        signature = header(headers, name)
        verify_body_hmac(signature, body, self.webhook_secrets(), provider=self.alias, name=name)

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


def hex_signature_matches(signature: str, expected: Iterable[str]) -> bool:
    """:func:`signature_matches` for one hex signature; upper-case hex is accepted (the
    same digest)."""
    candidate = signature.lower() if signature.isascii() else signature
    return signature_matches([candidate], expected)


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


# ---------------------------------------------------------------------------
# More option checks
# ---------------------------------------------------------------------------


def is_number(low: float, high: float) -> OptionCheck:
    """A number (an int or a float, not a bool) from ``low`` to ``high``, kept as a float."""

    def check(value: Any) -> Any:
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        if number is None or not low <= number <= high:
            raise ValueError(f"must be a number from {low:g} to {high:g}")
        return float(number)

    return check


# Adapters' helpers: an SDK logger kept clean, answers to our own calls
# ---------------------------------------------------------------------------


class RedactingLogFilter(logging.Filter):
    """Runs every record of a logger through ``redact`` (for an SDK that logs response
    bodies, which may hold client secrets or masked keys); it never drops a record."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler
            return True
        cleaned = self.redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, ()
        return True


def redact_logger(name: str, redact: Callable[[str], str]) -> None:
    """Attach a :class:`RedactingLogFilter` with ``redact`` to the logger ``name``, once."""
    target = logging.getLogger(name)
    if not any(isinstance(f, RedactingLogFilter) for f in target.filters):
        target.addFilter(RedactingLogFilter(redact))


def read_answer(provider: BaseProvider, read: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """``read(*args, **kwargs)``, reading the provider's answer to one of our own calls.

    An :class:`InvalidAmount` raised there (an amount or a currency the provider should
    never have sent) is the provider's failure, a :class:`ProviderError`, not the
    caller's input; it is raised unchained.
    """
    try:
        return read(*args, **kwargs)
    except InvalidAmount as exc:
        error = ProviderError(str(exc), provider=provider.alias)
    raise error


class AmountRefused(InvalidAmount, ProviderError):
    """The provider cannot capture or refund this amount (its own amount rules); refused
    before any network call.

    An :class:`InvalidAmount` for callers, and a :class:`ProviderError` for the
    services, which then settle the pending refund as failed instead of leaving it
    reserved.
    """

    code = "invalid_amount"
    status_code = 400


def provider_amount(
    provider: BaseProvider, convert: Callable[[int, str], int], amount: int, currency: str
) -> int:
    """``convert(amount, currency)``, our minor units in the provider's, for a capture or a
    refund: an amount it refuses (:class:`InvalidAmount`) is an :class:`AmountRefused`,
    raised unchained."""
    try:
        return convert(amount, currency)
    except InvalidAmount as exc:
        error = AmountRefused(str(exc), provider=provider.alias)
    raise error


def check_three_decimals(amount: int, currency: str, *, provider: str) -> None:
    """Refuse a three-decimal ``amount`` (KWD, BHD, ...) whose last digit is not 0, for a
    provider that charges those currencies in tens of minor units (Stripe and Razorpay
    do): an :class:`InvalidAmount` naming the two nearest amounts it can charge."""
    if money.exponent(currency) == 3 and amount % 10:
        low = amount - amount % 10
        raise InvalidAmount(
            f"{provider} requires {currency} amounts to end in 0 (the third decimal): "
            f"{money.format_money(amount, currency)} cannot be charged; round it to "
            f"{money.format_money(low, currency)} or {money.format_money(low + 10, currency)}."
        )


# Helpers for adapters: our ids in untrusted text, provider timestamps, body signatures
# ---------------------------------------------------------------------------


def our_uuid(value: Any) -> str | None:
    """Our id (a UUID, in its canonical form) from untrusted text (a note, a receipt,
    metadata), or ``None`` for anything else: an id of ours is taken, nothing else is."""
    import uuid

    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def unix_time(value: Any) -> datetime | None:
    """The UTC time of a provider's Unix timestamp; ``None`` for 0 or less, a non-int, or
    a value no datetime holds."""
    from datetime import timezone

    seconds = integer(value) or 0
    try:
        return datetime.fromtimestamp(seconds, tz=timezone.utc) if seconds > 0 else None
    except (OverflowError, OSError, ValueError):
        return None


def verify_body_hmac(
    signature: str, body: bytes, secrets: Sequence[str], *, provider: str, name: str
) -> None:
    """Check ``signature`` (the header ``name``): the hex HMAC-SHA256 of the raw body with
    any of ``secrets`` (rotation). Upper-case hex is accepted (the same digest); one that
    is not ASCII simply does not match. Raises :class:`WebhookVerificationError`, naming
    ``name``, never the secrets."""
    if not signature.strip():
        raise WebhookVerificationError(f"Missing {name} header.", provider=provider)
    if not secrets:
        raise WebhookVerificationError(
            f"No webhook_secret is configured for {provider!r}.", provider=provider
        )
    expected = [hmac_sha256_hex(secret, bytes(body)) for secret in secrets]
    if not hex_signature_matches(signature, expected):
        raise WebhookVerificationError(f"The {name} does not match the body.", provider=provider)


def stored_reference(payment: AbstractPayment, key: str) -> str:
    """The text ``payment.provider_data[key]`` (an attempt or charge id stored earlier), or ""."""
    return text(mapping(payment.provider_data).get(key))


def fitted_key(key: str, pattern: re.Pattern[str], *, prefix: str = "paygate-") -> str:
    """Our idempotency key as a provider that wants its own key shape takes it: ``key`` when
    it matches ``pattern``, else ``prefix`` and 40 hex of its SHA-256 (the same key always
    gives the same value)."""
    if pattern.fullmatch(key):
        return key
    return prefix + hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]


def all_pages(fetch_page: Callable[[int], list[_T]], size: int) -> list[_T]:
    """Every item of an offset-paged list: ``fetch_page(skip)`` until a page has fewer
    than ``size`` items."""
    found: list[_T] = []
    while True:
        page = fetch_page(len(found))
        found += page
        if len(page) < size:
            return found


def unknown_outcome(provider: BaseProvider, operation: str, detail: str) -> ProviderUnavailable:
    """The :class:`ProviderUnavailable` for a call whose outcome is unknown, in the style of
    :meth:`BaseProvider.call`; ``detail`` scrubbed of secrets, then cut short, as in
    :meth:`BaseProvider.refused`."""
    detail = provider.scrub(detail, mask="***")[:300]
    return ProviderUnavailable(
        f"{provider.name} {operation}: {detail}; the outcome is unknown.", provider=provider.alias
    )


def answer_logger(logger: logging.Logger, name: str) -> Callable[..., None]:
    """A response hook for a provider's session (``session.hooks["response"]``): one debug
    line per answer, its method, path and status, never its headers or body."""

    def log(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        path = urlsplit(str(response.url)).path
        logger.debug(
            "%s %s %s answered %s.", name, response.request.method, path, response.status_code
        )

    return log
