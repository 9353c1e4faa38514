"""Correctly signed webhook deliveries, for a host project's tests.

Each builder returns ``(body, headers)``: the exact bytes a provider would
POST and the headers that sign them. The signatures are computed here, from
each provider's published scheme, not by the provider classes of
django-paygate, so a test that feeds them to your endpoint checks the real
verification code::

    from django_paygate.testing.webhooks import post_webhook, stripe_event

    body, headers = stripe_event(
        "payment_intent.succeeded", intent, secret="whsec_test"
    )
    response = post_webhook(client, "stripe", body, headers)
    assert response.status_code == 200

Nothing in this module needs Django settings, except :func:`post_webhook`
(which reverses the webhook URL) and the ``*_from_payment`` helpers (which
read a payment row you pass in).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as _random
import string
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.http import HttpResponse
    from django.test import Client

    from django_paygate.models import AbstractPayment

#: ``(body, headers)``: what a provider POSTs to the webhook endpoint.
Delivery = tuple[bytes, dict[str, str]]

STRIPE_SIGNATURE_HEADER = "Stripe-Signature"
#: The API version stamped on built Stripe events (override with ``api_version=``).
STRIPE_API_VERSION = "2026-10-28.endive"

RAZORPAY_SIGNATURE_HEADER = "X-Razorpay-Signature"
RAZORPAY_EVENT_ID_HEADER = "X-Razorpay-Event-Id"

DUMMY_SIGNATURE_HEADER = "Paygate-Dummy-Signature"
#: The dummy provider's ``webhook_secret`` when its OPTIONS do not set one.
DUMMY_DEFAULT_SECRET = "dummy-webhook-secret"

_BASE62 = string.ascii_letters + string.digits

# Decimal places in Stripe's ``amount`` fields (https://docs.stripe.com/currencies):
# zero-decimal and three-decimal currencies; every other one has two, including
# ISK and UGX, which Stripe sends as whole units with "00" decimals.
_STRIPE_ZERO_DECIMAL = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
_STRIPE_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def _hmac_sha256_hex(key: str, message: bytes) -> str:
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()


#: The ``created_at`` of each Razorpay event id built so far (its retries reuse it).
_RAZORPAY_EVENT_TIMES: dict[str, int] = {}


def _now(timestamp: int | None) -> int:
    return int(time.time()) if timestamp is None else int(timestamp)


def _secret_list(secret: str | Sequence[str]) -> list[str]:
    values = [secret] if isinstance(secret, str) else list(secret)
    if not values or not all(isinstance(s, str) and s for s in values):
        raise ValueError("secret must be a non-empty string (or a list of them).")
    return values


def _random_id(length: int) -> str:
    return "".join(_random.choice(_BASE62) for _ in range(length))


# ---------------------------------------------------------------------------
# Stripe
# ---------------------------------------------------------------------------


def stripe_signature_header(
    body: bytes, secret: str | Sequence[str], *, timestamp: int | None = None
) -> str:
    """The ``Stripe-Signature`` value for ``body``: ``t=<ts>,v1=<hex>[,v1=<hex>…]``.

    ``v1`` is the hex HMAC-SHA256 of ``f"{t}.{body}"`` keyed with the endpoint
    secret. A list of secrets gives one ``v1`` per secret, as Stripe sends
    while an old secret is being rolled.
    """
    ts = _now(timestamp)
    signed = f"{ts}.".encode() + body
    parts = [f"t={ts}"] + [f"v1={_hmac_sha256_hex(s, signed)}" for s in _secret_list(secret)]
    return ",".join(parts)


def stripe_event(
    type: str,
    obj: Mapping[str, Any],
    *,
    secret: str | Sequence[str],
    event_id: str | None = None,
    timestamp: int | None = None,
    created: int | None = None,
    api_version: str = STRIPE_API_VERSION,
    previous_attributes: Mapping[str, Any] | None = None,
    livemode: bool = False,
) -> Delivery:
    """A signed Stripe snapshot event of ``type`` about ``obj``.

    ``obj`` is the API object (a PaymentIntent, a Refund, a Dispute, as a
    dict); :func:`stripe_payment_intent` builds one from a payment row.
    ``timestamp`` is the signature's ``t`` (default: now); ``created`` the
    event's creation time (default: the same).
    """
    ts = _now(timestamp)
    data: dict[str, Any] = {"object": dict(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = dict(previous_attributes)
    event = {
        "id": event_id or f"evt_test_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": api_version,
        "created": ts if created is None else int(created),
        "data": data,
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }
    # Stripe pretty-prints its bodies: a handler that re-serialises the JSON
    # before verifying breaks here, as it would in production.
    body = json.dumps(event, indent=2).encode("utf-8")
    headers = {
        STRIPE_SIGNATURE_HEADER: stripe_signature_header(body, secret, timestamp=ts),
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    return body, headers


def stripe_amount(minor: int, currency: str) -> int:
    """``minor`` (ISO 4217 minor units, as stored on a payment) as Stripe's API writes it."""
    from django_paygate.money import exponent

    code = currency.upper()
    api = 0 if code in _STRIPE_ZERO_DECIMAL else 3 if code in _STRIPE_THREE_DECIMAL else 2
    shift = api - exponent(code)
    if shift >= 0:
        return minor * 10**shift
    unit = 10**-shift
    if minor % unit:
        raise ValueError(f"Stripe cannot express {minor} minor units of {code}.")
    return minor // unit


def stripe_payment_intent(
    payment: AbstractPayment,
    *,
    status: str = "succeeded",
    metadata_key: str = "paygate_payment_id",
    **fields: Any,
) -> dict[str, Any]:
    """A PaymentIntent object for ``payment``, in Stripe's shape.

    ``status`` is Stripe's (``succeeded``, ``requires_capture``,
    ``requires_payment_method``, ``processing``, ``canceled``…). The amounts
    follow it; ``fields`` override any key (``amount_received=…``,
    ``last_payment_error={...}``). Amounts are in Stripe's units (ISK and UGX
    carry two decimals there).
    """
    amount = stripe_amount(payment.amount, payment.currency)
    intent: dict[str, Any] = {
        "id": payment.provider_payment_id or f"pi_test_{payment.pk.hex[:24]}",
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": amount if status == "requires_capture" else 0,
        "amount_received": amount if status == "succeeded" else 0,
        "capture_method": "manual" if payment.capture_method == "manual" else "automatic",
        "currency": payment.currency.lower(),
        "status": status,
        "livemode": False,
        "latest_charge": None,
        "last_payment_error": None,
        "metadata": {metadata_key: str(payment.pk)},
    }
    intent.update(fields)
    return intent


# ---------------------------------------------------------------------------
# Razorpay
# ---------------------------------------------------------------------------


def razorpay_signature(body: bytes, secret: str) -> str:
    """The ``X-Razorpay-Signature`` value: hex HMAC-SHA256 of the raw body keyed with ``secret``."""
    return _hmac_sha256_hex(_secret_list(secret)[0], body)


def razorpay_event(
    event: str,
    entities: Mapping[str, Mapping[str, Any]],
    *,
    secret: str,
    event_id: str | None = None,
    account_id: str = "acc_TestAccount0001",
    created_at: int | None = None,
) -> Delivery:
    """A signed Razorpay webhook ``event`` (``"payment.captured"``, ``"refund.processed"``…).

    ``entities`` maps each entity name to its object, for example
    ``{"payment": {...}}`` or ``{"refund": {...}, "payment": {...}}``; they
    become ``payload.<name>.entity`` and the names are listed in ``contains``.
    ``event_id`` goes in ``X-Razorpay-Event-Id``. That header is not signed, so
    the inbox knows the event by its body: the same ``event_id`` again (without
    ``created_at``) builds the same body, a duplicate, like Razorpay's own retries.
    """
    if created_at is None and event_id is not None:
        created_at = _RAZORPAY_EVENT_TIMES.setdefault(event_id, _now(None))
    body_obj = {
        "entity": "event",
        "account_id": account_id,
        "event": event,
        "contains": list(entities),
        "payload": {name: {"entity": dict(obj)} for name, obj in entities.items()},
        "created_at": _now(created_at),
    }
    body = json.dumps(body_obj, separators=(",", ":")).encode("utf-8")
    headers = {
        RAZORPAY_SIGNATURE_HEADER: razorpay_signature(body, secret),
        RAZORPAY_EVENT_ID_HEADER: event_id or _random_id(14),
        "Content-Type": "application/json",
        "User-Agent": "Razorpay-Webhook/v1",
    }
    return body, headers


def razorpay_payment_entity(
    payment: AbstractPayment,
    *,
    status: str = "captured",
    payment_id: str | None = None,
    order_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A Razorpay payment entity for ``payment`` (``status``: authorized, captured, failed…).

    ``order_id`` defaults to the payment's ``provider_payment_id`` (the
    Razorpay order); ``payment_id`` to the Razorpay payment id in
    ``payment.provider_data`` or a made-up one. ``fields`` override any key.
    """
    refs = payment.provider_data or {}
    entity: dict[str, Any] = {
        "id": payment_id or refs.get("razorpay_payment_id") or f"pay_{_random_id(14)}",
        "entity": "payment",
        "amount": payment.amount,
        "currency": payment.currency,
        "status": status,
        "order_id": order_id or payment.provider_payment_id,
        "international": False,
        "method": "card",
        "amount_refunded": 0,
        "refund_status": None,
        "captured": status in {"captured", "refunded"},
        "description": payment.description or None,
        "email": payment.email or "void@razorpay.com",
        "contact": "+919000090000",
        "notes": {"paygate_payment_id": str(payment.pk)},
        "error_code": None,
        "error_description": None,
        "created_at": int(time.time()),
    }
    entity.update(fields)
    return entity


# ---------------------------------------------------------------------------
# Dummy provider
# ---------------------------------------------------------------------------


def dummy_signature_header(body: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """The ``Paygate-Dummy-Signature`` value (Stripe's ``t=…,v1=…`` scheme)."""
    return stripe_signature_header(body, secret, timestamp=timestamp)


def dummy_event(
    type: str,
    data: Mapping[str, Any],
    *,
    secret: str = DUMMY_DEFAULT_SECRET,
    event_id: str | None = None,
    timestamp: int | None = None,
) -> Delivery:
    """A signed event of the dummy provider (``"payment.succeeded"``, ``"refund.succeeded"``…).

    ``data`` is the event's ``data``; :func:`dummy_payment_data` builds it
    for a payment row.
    """
    event = {"id": event_id or f"evt_{uuid.uuid4().hex}", "type": type, "data": dict(data)}
    body = json.dumps(event, separators=(",", ":")).encode("utf-8")
    headers = {
        DUMMY_SIGNATURE_HEADER: dummy_signature_header(body, secret, timestamp=timestamp),
        "Content-Type": "application/json",
    }
    return body, headers


def dummy_payment_data(
    payment: AbstractPayment,
    *,
    status: str = "succeeded",
    amount_captured: int | None = None,
    failure_code: str = "",
) -> dict[str, Any]:
    """The ``data`` of a dummy ``payment.<status>`` event about ``payment``."""
    if amount_captured is None:
        amount_captured = payment.amount if status == "succeeded" else 0
    return {
        "payment": {
            "id": payment.provider_payment_id or f"dummy_{payment.pk.hex}",
            "amount": payment.amount,
            "currency": payment.currency,
            "amount_captured": amount_captured,
            "status": status,
            "failure_code": failure_code,
        },
        "payment_id": str(payment.pk),
    }


# ---------------------------------------------------------------------------
# Posting
# ---------------------------------------------------------------------------


def headers_to_meta(headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """``(content_type, META)`` for the test client: ``X-Foo`` becomes ``HTTP_X_FOO``."""
    content_type = "application/json"
    meta: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower() == "content-type":
            content_type = value
        else:
            meta["HTTP_" + name.upper().replace("-", "_")] = value
    return content_type, meta


def post_webhook(
    client: Client, alias: str, body: bytes, headers: Mapping[str, str]
) -> HttpResponse:
    """POST a delivery to ``paygate:webhook`` for provider ``alias``; returns the response.

    The body is sent byte for byte, so the signature still matches.
    """
    from django.urls import reverse

    url = reverse("paygate:webhook", kwargs={"alias": alias})
    content_type, meta = headers_to_meta(headers)
    extra: dict[str, Any] = dict(meta)
    response: Any = client.post(url, data=body, content_type=content_type, **extra)
    return response


__all__ = [
    "DUMMY_DEFAULT_SECRET",
    "DUMMY_SIGNATURE_HEADER",
    "RAZORPAY_EVENT_ID_HEADER",
    "RAZORPAY_SIGNATURE_HEADER",
    "STRIPE_API_VERSION",
    "STRIPE_SIGNATURE_HEADER",
    "Delivery",
    "dummy_event",
    "dummy_payment_data",
    "dummy_signature_header",
    "headers_to_meta",
    "post_webhook",
    "razorpay_event",
    "razorpay_payment_entity",
    "razorpay_signature",
    "stripe_amount",
    "stripe_event",
    "stripe_payment_intent",
    "stripe_signature_header",
]
