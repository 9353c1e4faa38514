"""Razorpay: Orders, Payments, captures, refunds and webhooks, on the official ``razorpay`` SDK.

One order per payment, paid in Checkout in one or more payment attempts. Razorpay's rules
this adapter keeps, and their sources, are told in docs/providers/razorpay.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from django_paygate import __version__, money
from django_paygate.exceptions import (
    CheckoutVerificationError,
    InvalidAmount,
    InvalidTransition,
    PaygateError,
    ProviderError,
    ProviderIdempotencyError,
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
    all_pages,
    answer_logger,
    body_event_id,
    check_three_decimals,
    decode_json_body,
    dicts,
    fitted_key,
    header,
    hex_signature_matches,
    hmac_sha256_hex,
    integer,
    is_api_base,
    is_int,
    is_one_of,
    is_optional,
    is_string,
    mapping,
    our_uuid,
    stored_reference,
    text,
    unix_time,
    unknown_outcome,
)
from django_paygate.states import DisputeStatus, PaymentStatus, RefundStatus

try:
    import razorpay
    from razorpay.errors import BadRequestError, GatewayError, ServerError
except ImportError:  # pragma: no cover - the "razorpay" extra is not installed
    razorpay = None
    BadRequestError = GatewayError = ServerError = type("NoSDKError", (Exception,), {})

if TYPE_CHECKING:
    from django_paygate.models import AbstractPayment, Refund

logger = logging.getLogger("django_paygate.providers.razorpay")

P, R, D = PaymentStatus, RefundStatus, DisputeStatus

SIGNATURE_HEADER = "X-Razorpay-Signature"
EVENT_ID_HEADER = "X-Razorpay-Event-Id"
DEFAULT_API_BASE = "https://api.razorpay.com"
NOTE_PAYMENT_ID = "paygate_payment_id"
NOTE_REFUND_ID = "paygate_refund_id"
#: The ``provider_data`` key of the attempt a payment rests on.
ATTEMPT_KEY = "razorpay_payment_id"

#: Currencies Razorpay accepts ("Supported Currencies" of International Payments), minus
#: the codes ISO 4217 has withdrawn (HRK, SLL, BGN).
RAZORPAY_CURRENCIES = frozenset(
    {
        "AED", "ALL", "AMD", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BHD", "BIF", "BMD",
        "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BZD", "CAD", "CHF", "CLP", "CNY", "COP",
        "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ETB", "EUR", "FJD",
        "GBP", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR",
        "ILS", "INR", "IQD", "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KRW",
        "KWD", "KYD", "KZT", "LAK", "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK",
        "MNT", "MOP", "MUR", "MVR", "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK",
        "NPR", "NZD", "OMR", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD",
        "RUB", "RWF", "SAR", "SCR", "SEK", "SGD", "SOS", "SVC", "SZL", "THB", "TND", "TRY",
        "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VND", "VUV", "XAF", "XCD",
        "XOF", "XPF", "YER", "ZAR", "ZMW",
    }
)  # fmt: skip

#: Razorpay's statuses and webhook events -> ours. A ``refunded`` payment depends on
#: ``captured`` and a ``created`` one is undecided (:func:`_payment_status`); a payment
#: event reports its status when the entity carries none.
PAYMENT_STATUSES = {"authorized": P.AUTHORIZED, "captured": P.SUCCEEDED, "failed": P.FAILED}
PAYMENT_EVENTS = {f"payment.{k}": v for k, v in PAYMENT_STATUSES.items()} | {
    "order.paid": P.SUCCEEDED
}
REFUND_STATUSES = {"pending": R.PENDING, "processed": R.SUCCEEDED, "failed": R.FAILED}
REFUND_EVENTS = {
    "refund.created": R.PENDING, "refund.processed": R.SUCCEEDED, "refund.failed": R.FAILED,
}  # fmt: skip
DISPUTE_STATUSES = {
    "open": D.OPEN, "created": D.OPEN, "action_required": D.OPEN, "under_review": D.UNDER_REVIEW,
    "won": D.WON, "lost": D.LOST, "closed": D.CLOSED,
}  # fmt: skip
DISPUTE_EVENT_PREFIX = "payment.dispute."

# Ids that go into URL paths: never anything but Razorpay's own id shapes.
_PAYMENT_ID = re.compile(r"pay_[A-Za-z0-9]{1,64}")
_ORDER_ID = re.compile(r"order_[A-Za-z0-9]{1,64}")
_REFUND_KEY = re.compile(r"[A-Za-z0-9_-]{10,64}")
_EVENT_ID = re.compile(r"[\x21-\x7e]{1,255}")
_REFUND_PAGE = 100
#: Why an order whose payments are in this state cannot be canceled here.
_NOT_CANCELABLE: Mapping[PaymentStatus | None, str] = {
    P.SUCCEEDED: "Razorpay captured this payment: refund it instead of canceling it.",
    P.AUTHORIZED: "Razorpay cannot void an authorized payment. Capture it, or let Razorpay "
    "refund it automatically when the capture window ends; it is canceled here when "
    "Razorpay reports that refund.",
    None: "A payment is in progress on this Razorpay order; try again later.",
}


def _attempt(payment_id: str) -> dict[str, str]:
    """``provider_data`` naming one attempt; nothing for what is not a payment id."""
    return {ATTEMPT_KEY: payment_id} if _PAYMENT_ID.fullmatch(payment_id) else {}


def _notes(entity: Mapping[str, Any]) -> dict[str, Any]:
    # Razorpay sends ``"notes": []`` for an entity without notes.
    return mapping(entity.get("notes"))


def _items(answer: Any) -> list[dict[str, Any]]:
    """The entities of a Razorpay collection (``{"entity": "collection", "items": [...]}``)."""
    return dicts(mapping(answer).get("items"))


def _entity(payload: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The ``name`` entity of a webhook payload (``{"payment": {"entity": {...}}}``)."""
    return mapping(mapping(payload.get(name)).get("entity"))


def _payment_status(entity: Mapping[str, Any]) -> PaymentStatus | None:
    """Our status for a Razorpay payment entity (``None``: not decided yet)."""
    status = text(entity.get("status"))
    if status == "refunded":
        # Refunded after a capture: it succeeded (the refunds say the rest). Refunded
        # without one: Razorpay released an uncaptured authorization (auto-refund).
        return P.SUCCEEDED if entity.get("captured") is True else P.CANCELED
    return PAYMENT_STATUSES.get(status)


def _created_at(entity: Mapping[str, Any]) -> int:
    return integer(entity.get("created_at")) or 0


def _choose(entities: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, PaymentStatus | None]:
    """The attempt that decides an order, and our status for it (docs: "Sync")."""
    latest_first = sorted(entities, key=_created_at, reverse=True)
    for wanted in (P.SUCCEEDED, P.AUTHORIZED, None, P.CANCELED, P.FAILED):
        found = next((e for e in latest_first if _payment_status(e) == wanted), None)
        if found is not None:
            return found, wanted
    return None, P.PENDING


def _payment(
    order_id: str | None,
    status: PaymentStatus | None,
    entity: Mapping[str, Any],
    attempt: Mapping[str, Any],
    our_id: str | None,
    paid: int | None = None,
    **extra: Any,
) -> ProviderPayment:
    """A payment of ``status``: its amount from ``entity`` (the attempt, or the order),
    its failure and attempt id from ``attempt``, ``paid`` (the order's) if captured."""
    amount = integer(entity.get("amount"))
    failed = status == P.FAILED
    kept = status in (P.AUTHORIZED, P.SUCCEEDED)  # the attempt a payment rests on
    return ProviderPayment(
        provider_payment_id=order_id or None,
        status=status,
        amount=amount,
        currency=text(entity.get("currency")) or None,
        amount_captured=(paid or amount) if status == P.SUCCEEDED else None,
        failure_code=text(attempt.get("error_code")) if failed else "",
        failure_message=text(attempt.get("error_description")) if failed else "",
        provider_data=_attempt(text(attempt.get("id"))) if kept else {},
        our_payment_id=our_id,
        **extra,
    )


def _refund(
    entity: Mapping[str, Any], order_id: str | None, status: RefundStatus | None = None
) -> ProviderRefund:
    return ProviderRefund(
        provider_refund_id=text(entity.get("id")),
        status=REFUND_STATUSES.get(text(entity.get("status"))) or status or R.PENDING,
        amount=integer(entity.get("amount")) or 0,
        currency=text(entity.get("currency")),
        provider_payment_id=order_id,
        our_refund_id=text(_notes(entity).get(NOTE_REFUND_ID)) or None,
        provider_data=_attempt(text(entity.get("payment_id"))),
    )


def refund_idempotency_key(key: str) -> str:
    """The ``X-Refund-Idempotency`` value (10+ of ``[A-Za-z0-9_-]``) for our key."""
    return fitted_key(key, _REFUND_KEY)


class RazorpayProvider(BaseProvider):
    """Razorpay Orders + Payments. Options: see docs/providers/razorpay.md."""

    name = "Razorpay"
    default_options: ClassVar[Mapping[str, Any]] = {
        "key_id": "",
        "key_secret": "",
        "webhook_secret": "",
        "timeout": 15,
        "api_base": DEFAULT_API_BASE,
        "checkout_name": "",
        "refund_speed": "normal",
        "unique_receipt": True,
        "automatic_expiry_period": None,
        "script_url": "https://checkout.razorpay.com/v1/checkout.js",
    }
    option_checks: ClassVar[Mapping[str, OptionCheck]] = {
        "key_id": is_string(),
        "key_secret": is_string(),
        "api_base": lambda value: is_api_base(value or DEFAULT_API_BASE),
        "refund_speed": is_one_of("normal", "optimum"),
        "automatic_expiry_period": is_optional(is_int(12, 7200)),
    }
    confirmation_fields: ClassVar[Mapping[str, int]] = dict.fromkeys(
        ("razorpay_order_id", "razorpay_payment_id", "razorpay_signature"), 255
    )
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
        super().__init__(alias, **options)  # without the SDK, the core refuses to build it
        self.session.hooks["response"].append(answer_logger(logger, "Razorpay"))
        self.client = razorpay.Client(
            session=self.session,
            auth=(self.options["key_id"], self.options["key_secret"]),
            base_url=self.options["api_base"],
        )
        # The SDK's retry resends without idempotency keys and prints: keep it off.
        self.client.enable_retry(False)
        self.client.set_app_details({"title": "django-paygate", "version": __version__})

    def check_options(self) -> None:
        if self.options["key_secret"] in self.webhook_secrets():
            raise self.option_error(
                "webhook_secret",
                "must not be the key secret: set the secret you chose for the webhook "
                "in the Razorpay Dashboard",
            )

    # -- transport ------------------------------------------------------------

    def translate_error(self, exc: Exception, operation: str) -> PaygateError | None:
        """Razorpay's ``BAD_REQUEST_ERROR`` is a refusal (an idempotency-key conflict has
        its own error); ``GATEWAY_ERROR`` and ``SERVER_ERROR`` leave the outcome unknown."""
        if isinstance(exc, BadRequestError):
            refusal = self.refused(operation, str(exc))
            if "idempotency key" in str(exc).lower():
                return ProviderIdempotencyError(refusal.message, provider=self.alias)
            return refusal
        if isinstance(exc, (GatewayError, ServerError)):
            detail = str(exc) or "no description"
            return unknown_outcome(self, operation, f"{type(exc).__name__}: {detail}")
        return None

    def _fetch(self, payment_id: str) -> dict[str, Any]:
        return self.call_for_object("payment fetch", self.client.payment.fetch, payment_id, {})

    def _order_payments(self, order_id: str) -> list[dict[str, Any]]:
        answer = self.call_for_object("order payments", self.client.order.payments, order_id, {})
        return _items(answer)

    def _refunds(self, payment_id: str) -> list[dict[str, Any]]:
        def page(skip: int) -> list[dict[str, Any]]:
            query = {"count": _REFUND_PAGE, "skip": skip}
            fetch = self.client.payment.fetch_multiple_refund
            return _items(self.call_for_object("refund list", fetch, payment_id, query))

        return all_pages(page, _REFUND_PAGE)

    # -- amounts --------------------------------------------------------------

    def validate_amount(self, amount: int, currency: str) -> None:
        super().validate_amount(amount, currency)
        check_three_decimals(amount, currency, provider=self.name)

    # -- orders ---------------------------------------------------------------

    def _order_id(self, payment: AbstractPayment) -> str:
        return self.linked_id(payment, "order", _ORDER_ID)

    def _find_order(self, payment: AbstractPayment) -> dict[str, Any] | None:
        """Our order for ``payment``, found by its receipt (a retried create must not make two)."""
        receipt = str(payment.pk)
        answer = self.call_for_object("order lookup", self.client.order.all, {"receipt": receipt})
        found = [
            order
            for order in _items(answer)
            if order.get("receipt") == receipt and _ORDER_ID.fullmatch(text(order.get("id")))
        ]
        if not found:
            return None
        ours = [o for o in found if _notes(o).get(NOTE_PAYMENT_ID) in (None, receipt)]
        return min(ours or found, key=_created_at)

    def create_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
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
            order = self.call_for_object("order create", self.client.order.create, body)
        elif order.get("amount") != payment.amount or order.get("currency") != payment.currency:
            raise ProviderIdempotencyError(
                "A Razorpay order with this payment's receipt exists with another amount "
                "or currency.",
                provider=self.alias,
            )
        order_id = text(order.get("id"))
        if not _ORDER_ID.fullmatch(order_id):
            raise ProviderUnavailable("Razorpay answered without an order id.", provider=self.alias)
        status = P.SUCCEEDED if order.get("status") == "paid" else P.PENDING
        paid, client = integer(order.get("amount_paid")), self._client_data(payment, order_id)
        return _payment(order_id, status, order, {}, str(payment.pk), paid, client_data=client)

    def _capture_settings(self, payment: AbstractPayment) -> dict[str, Any] | None:
        """The order's ``payment`` capture settings (they override the Dashboard's)."""
        speed = self.options["refund_speed"]
        if payment.capture_method == "manual":
            return {"capture": "manual", "capture_options": {"refund_speed": speed}}
        period = self.options["automatic_expiry_period"]
        if period is None:
            return None
        options = {"automatic_expiry_period": period, "refund_speed": speed}
        return {"capture": "automatic", "capture_options": options}

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
            data["description"] = payment.description[:255]  # Checkout's limit
        return data

    # -- payments -------------------------------------------------------------

    def confirm_payment(
        self, payment: AbstractPayment, *, idempotency_key: str, **data: Any
    ) -> ProviderPayment:
        """Check Checkout's answer against the stored order (else
        :class:`CheckoutVerificationError`, nothing changes), then settle the payment."""
        self.clean_confirmation(data)
        posted_order, payment_id, signature = (text(data.get(k)) for k in self.confirmation_fields)
        if not (posted_order and payment_id and signature):
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
        if not _PAYMENT_ID.fullmatch(payment_id) or not hex_signature_matches(signature, [digest]):
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
        # Undecided: paid in Checkout, a bank still answering; webhooks or sync finish it.
        return _payment(order_id, status or P.PROCESSING, entity, entity, str(payment.pk))

    def checkout_signature(self, order_id: str, payment_id: str) -> str:
        """The signature Checkout returns for a payment on an order (key-secret HMAC)."""
        return hmac_sha256_hex(self.options["key_secret"], f"{order_id}|{payment_id}".encode())

    def _capture(
        self, payment: AbstractPayment, order_id: str, entity: Mapping[str, Any]
    ) -> ProviderPayment:
        """Capture an authorized payment for its full amount (Razorpay takes nothing else)."""
        payment_id, amount = text(entity.get("id")), integer(entity.get("amount"))
        if amount is None:
            raise ProviderUnavailable(
                "Razorpay reported a payment without an amount.", provider=self.alias
            )
        currency = {"currency": text(entity.get("currency")) or payment.currency}
        try:
            captured = self.call_for_object(
                "capture", self.client.payment.capture, payment_id, amount, currency
            )
        except ProviderError as exc:
            # A plain refusal saying "already captured": read what is true.
            if type(exc) is not ProviderError or "already" not in exc.message.lower():
                raise
            captured = self._fetch(payment_id)
        return _payment(order_id, _payment_status(captured), captured, captured, str(payment.pk))

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
            return _payment(order_id, status, entity, entity, str(payment.pk))
        if status != P.AUTHORIZED:
            raise InvalidTransition(
                f"Razorpay reports the payment as {text(entity.get('status')) or 'unknown'}, "
                "not authorized.",
                provider=self.alias,
            )
        return self._capture(payment, order_id, entity)

    def _payment_entity(
        self, payment: AbstractPayment, order_id: str, *, want: PaymentStatus
    ) -> dict[str, Any]:
        """The Razorpay payment that counts: the one we stored, else the order's best one."""
        usable = (want, P.SUCCEEDED)
        stored = stored_reference(payment, ATTEMPT_KEY)
        if _PAYMENT_ID.fullmatch(stored):
            entity = self._fetch(stored)
            if entity.get("order_id") == order_id and _payment_status(entity) in usable:
                return entity
        chosen, _ = _choose(self._order_payments(order_id))
        if chosen is None or _payment_status(chosen) not in usable:
            raise InvalidTransition(
                f"Razorpay has no {want.value} payment on this order.", provider=self.alias
            )
        return chosen

    def cancel_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        """Cancel an order nobody has paid; Razorpay can neither cancel an order nor void an
        authorization (docs/providers/razorpay.md, "Cancel")."""
        order_id = self._order_id(payment)
        _chosen, status = _choose(self._order_payments(order_id))
        if status in _NOT_CANCELABLE:
            raise InvalidTransition(_NOT_CANCELABLE[status], provider=self.alias)
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
            order_id = text(order.get("id"))
        entities = self._order_payments(order_id)
        chosen, status = _choose(entities)
        captured = [e for e in entities if _payment_status(e) == P.SUCCEEDED]
        stored = stored_reference(payment, ATTEMPT_KEY)
        chosen = next((e for e in captured if e.get("id") == stored), chosen)
        if chosen is None:
            # Found by receipt: its amount must be ours (else the payment needs review).
            return _payment(order_id, status, order, {}, str(payment.pk))
        refunds: tuple[ProviderRefund, ...] = ()
        if status == P.SUCCEEDED:
            found = self._refunds(text(chosen.get("id")))
            refunds = tuple(_refund(r, order_id) for r in found)
        result = _payment(order_id, status, chosen, chosen, str(payment.pk), refunds=refunds)
        if len(captured) > 1:
            # The customer paid twice: report all of it, so the payment is flagged.
            total = sum(integer(e.get("amount")) or 0 for e in captured)
            result = replace(result, amount_captured=total)
        return result

    # -- refunds --------------------------------------------------------------

    def refund_payment(
        self, payment: AbstractPayment, refund: Refund, *, idempotency_key: str
    ) -> ProviderRefund:
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
        key = {"X-Refund-Idempotency": refund_idempotency_key(idempotency_key)}
        payment_id = text(entity.get("id"))
        create = self.client.payment.refund
        answer = self.call_for_object("refund", create, payment_id, body, headers=key)
        result = _refund(answer, order_id)
        if not result.provider_refund_id:
            raise ProviderUnavailable("Razorpay answered without a refund id.", provider=self.alias)
        return result

    # -- webhooks -------------------------------------------------------------

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> None:
        self.verify_body_signature(body, headers, SIGNATURE_HEADER)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        event = decode_json_body(body)
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            raise WebhookVerificationError("The body is not a Razorpay event.", provider=self.alias)
        event_type = event["event"]
        event_id = header(headers, EVENT_ID_HEADER).strip()
        if not _EVENT_ID.fullmatch(event_id):
            # Razorpay always sends the header; without it, the same body is the same event.
            event_id = body_event_id(body)
        payload = mapping(event.get("payload"))
        pay, order = _entity(payload, "payment"), _entity(payload, "order")
        refund, dispute = _entity(payload, "refund"), _entity(payload, "dispute")
        order_id = text(order.get("id")) or text(pay.get("order_id"))
        order_id = order_id if _ORDER_ID.fullmatch(order_id) else ""
        if pay and not order_id:
            # Every payment of ours is on an order: an orderless one (Checkout opened with
            # our public key_id) is not ours, whatever its browser-set notes say.
            return ProviderEvent(event_id=event_id, type=event_type)
        # Notes are untrusted (a payment's come from the customer's browser): only a
        # well-formed id of ours is taken; anything else is as if absent.
        candidates = (
            *(_notes(entity).get(NOTE_PAYMENT_ID) for entity in (refund, pay, order)),
            order.get("receipt"),
        )
        our_id = next(filter(None, map(our_uuid, candidates)), None)
        base = ProviderEvent(
            event_id=event_id,
            type=event_type,
            our_payment_id=our_id,
            occurred_at=unix_time(event.get("created_at")),
        )
        if event_type.startswith(DISPUTE_EVENT_PREFIX) and dispute:
            return self._dispute_event(base, dispute, order_id)
        if event_type in REFUND_EVENTS and refund and text(refund.get("id")):
            if pay and pay.get("captured") is False:
                # Razorpay's auto-refund of an uncaptured authorization: that attempt (in
                # provider_data; another may still be authorized) never went through.
                released = _payment(order_id, P.CANCELED, {}, {}, our_id)
                released = replace(released, provider_data=_attempt(text(pay.get("id"))))
                return replace(base, payment=released)
            stated = REFUND_EVENTS[event_type]
            return replace(base, refund=_refund(refund, order_id or None, stated))
        if event_type in PAYMENT_EVENTS and (pay or order):
            if event_type == "order.paid":
                status: PaymentStatus | None = P.SUCCEEDED
                entity = order or pay
            else:
                status, entity = _payment_status(pay) or PAYMENT_EVENTS[event_type], pay
            paid = integer(order.get("amount_paid")) if order else None
            return replace(base, payment=_payment(order_id, status, entity, pay, our_id, paid))
        return base  # payment.pending, refund.speed_changed, ...: stored and ignored

    @staticmethod
    def _dispute_event(
        base: ProviderEvent, dispute: Mapping[str, Any], order_id: str
    ) -> ProviderEvent:
        dispute_id = text(dispute.get("id"))
        named = base.type.removeprefix(DISPUTE_EVENT_PREFIX)
        status = DISPUTE_STATUSES.get(text(dispute.get("status"))) or DISPUTE_STATUSES.get(named)
        if status is None or not dispute_id:
            return base
        found = ProviderDispute(
            provider_dispute_id=dispute_id,
            status=status,
            amount=integer(dispute.get("amount")) or 0,
            currency=text(dispute.get("currency")),
            provider_payment_id=order_id or None,
            reason=text(dispute.get("reason_code")) or text(dispute.get("reason_description")),
        )
        return replace(base, dispute=found)


__all__ = [
    "RAZORPAY_CURRENCIES",
    "CheckoutVerificationError",
    "RazorpayProvider",
    "refund_idempotency_key",
]
