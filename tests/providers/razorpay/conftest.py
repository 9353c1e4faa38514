"""A fake Razorpay API behind ``responses``, fixtures and signing helpers.

The provider runs the real ``razorpay`` SDK and ``requests`` code; only the
HTTP exchange is answered by :class:`FakeRazorpay`, a small in-memory model of
Razorpay's Orders, Payments and Refunds API built from the documented entity
shapes in ``fixtures/``. It keeps state (orders, payment attempts, refunds,
refund idempotency keys) so retries and syncs can be checked end to end, and
injects faults (timeouts before or after the effect, 409, HTML 502, ...).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from django_paygate.providers import get_provider
from django_paygate.providers.razorpay import RazorpayProvider

FIXTURES = Path(__file__).parent / "fixtures"
API = "https://api.razorpay.com/v1"
WEBHOOK_URL = "/api/payments/webhooks/razorpay/"

KEY_ID = "rzp_test_PaygateKeyId01"
KEY_SECRET = "rzp-key-secret-3c1e5a9f7b2d4e6f"
WEBHOOK_SECRET = "rzp-webhook-secret-8d0b2f4a6c1e"
OLD_WEBHOOK_SECRET = "rzp-webhook-secret-old-5e7a9c1b"
WRONG_SECRET = "rzp-not-our-secret-000000000000"

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)


def load(name: str) -> dict[str, Any]:
    """A fresh copy of a fixture entity."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def razorpay_options(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "key_id": KEY_ID,
        "key_secret": KEY_SECRET,
        "webhook_secret": [WEBHOOK_SECRET, OLD_WEBHOOK_SECRET],
        "checkout_name": "Paygate Test Shop",
    }
    options.update(overrides)
    return options


def paygate_setting(**overrides: Any) -> dict[str, Any]:
    return {
        "DEFAULT_PROVIDER": "dummy",
        "PROVIDERS": {
            "dummy": {"BACKEND": "django_paygate.providers.dummy.DummyProvider"},
            "razorpay": {
                "BACKEND": "django_paygate.providers.razorpay.RazorpayProvider",
                "OPTIONS": razorpay_options(**overrides),
            },
        },
        "PAYABLES": {"order": "testapp.Order"},
    }


def hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def checkout_signature(order_id: str, payment_id: str, secret: str = KEY_SECRET) -> str:
    return hmac_hex(secret, f"{order_id}|{payment_id}".encode())


# ---------------------------------------------------------------------------
# Webhook events
# ---------------------------------------------------------------------------


def event_body(event: str, *, indent: int | None = None, **entities: dict[str, Any]) -> bytes:
    """The raw body of a Razorpay event carrying ``entities`` (payment=, order=, refund=, ...)."""
    envelope = load("event")
    envelope["event"] = event
    envelope["contains"] = list(entities)
    envelope["payload"] = {name: {"entity": entity} for name, entity in entities.items()}
    return json.dumps(envelope, indent=indent).encode()


def signed_headers(
    body: bytes, *, secret: str = WEBHOOK_SECRET, event_id: str | None = "evt_default"
) -> dict[str, str]:
    """Django test-client headers for a delivery (``HTTP_*`` keys)."""
    headers = {"HTTP_X_RAZORPAY_SIGNATURE": hmac_hex(secret, body)}
    if event_id is not None:
        headers["HTTP_X_RAZORPAY_EVENT_ID"] = event_id
    return headers


def payment_entity(
    template: str = "payment_captured",
    *,
    payment_id: str,
    order_id: str | None,
    amount: int,
    currency: str = "INR",
    notes: Any = None,
    **fields: Any,
) -> dict[str, Any]:
    entity = load(template)
    entity.update(id=payment_id, order_id=order_id, amount=amount, currency=currency)
    entity["notes"] = notes if notes is not None else []
    entity.update(fields)
    return entity


# ---------------------------------------------------------------------------
# The fake API
# ---------------------------------------------------------------------------


class Fault:
    def __init__(self, route: str, kind: str, after: bool) -> None:
        self.route, self.kind, self.after = route, kind, after


def _error(
    status: int, description: str, template: str = "error_bad_request"
) -> tuple[int, dict[str, str], str]:
    body = load(template)
    body["error"]["description"] = description
    return status, {"Content-Type": "application/json"}, json.dumps(body)


class FakeRazorpay:
    """Razorpay's Orders/Payments/Refunds API, in memory, behind ``responses``."""

    ROUTES: tuple[tuple[str, str, str], ...] = (
        ("POST", r"/orders$", "order.create"),
        ("GET", r"/orders$", "order.list"),
        ("GET", r"/orders/(?P<id>[^/?]+)/payments$", "order.payments"),
        ("GET", r"/payments/(?P<id>[^/?]+)$", "payment.fetch"),
        ("POST", r"/payments/(?P<id>[^/?]+)/capture$", "payment.capture"),
        ("POST", r"/payments/(?P<id>[^/?]+)/refund$", "payment.refund"),
        ("GET", r"/payments/(?P<id>[^/?]+)/refunds$", "payment.refunds"),
    )

    def __init__(self, rsps: responses.RequestsMock, *, base: str = API) -> None:
        self.rsps = rsps
        self.base = base
        self.orders: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self.refund_keys: dict[str, tuple[dict[str, Any], str]] = {}
        self.faults: list[Fault] = []
        #: Every request that reached the fake: (route, method, path, headers, json body, kwargs).
        self.log: list[dict[str, Any]] = []
        #: Status of refunds when created ("processed" or "pending").
        self.refund_status = "processed"
        #: Refunds hidden from GET /payments/{id}/refunds (eventual consistency).
        self.hidden_refunds: set[str] = set()
        self._ids = itertools.count(1)
        self._clock = itertools.count(1735689600, 60)
        for method, pattern, route in self.ROUTES:
            rsps.add_callback(
                method,
                re.compile(re.escape(base) + pattern.replace("$", r"(\?.*)?$")),
                callback=self._dispatch(route, re.compile(pattern.rstrip("$"))),
            )

    # -- test controls -------------------------------------------------------

    def fail_next(self, route: str, kind: str = "timeout", *, after: bool = False) -> None:
        """Make the next call of ``route`` fail: ``timeout``, ``connection``, ``409``,
        ``html502``, ``json500``, ``gateway``. With ``after=True`` the effect happens
        first (the answer is lost on the way back)."""
        self.faults.append(Fault(route, kind, after))

    def calls(self, route: str) -> list[dict[str, Any]]:
        return [entry for entry in self.log if entry["route"] == route]

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_Pg{next(self._ids):012d}"

    def add_order(
        self, *, amount: int, currency: str = "INR", receipt: str, notes: Any = None
    ) -> dict[str, Any]:
        order = load("order")
        order.update(
            id=self.new_id("order"),
            amount=amount,
            amount_due=amount,
            currency=currency,
            receipt=receipt,
            notes=notes if notes is not None else [],
            created_at=next(self._clock),
        )
        self.orders[order["id"]] = order
        return order

    def checkout(
        self,
        order_id: str,
        status: str = "authorized",
        *,
        notes: dict[str, str] | None = None,
        secret: str = KEY_SECRET,
    ) -> dict[str, str]:
        """A customer pays ``order_id`` in Checkout: a payment attempt with ``status``.

        Returns what Checkout's handler posts back (with a genuine signature made
        with ``secret``).
        """
        order = self.orders[order_id]
        template = {
            "authorized": "payment_authorized",
            "captured": "payment_captured",
            "failed": "payment_failed",
            "created": "payment_authorized",
        }[status]
        payment = payment_entity(
            template,
            payment_id=self.new_id("pay"),
            order_id=order_id,
            amount=order["amount"],
            currency=order["currency"],
            notes=notes or [],
            status=status,
            captured=status == "captured",
            created_at=next(self._clock),
        )
        self.payments[payment["id"]] = payment
        order["attempts"] += 1
        order["status"] = "attempted"
        if status == "captured":
            self._mark_paid(payment)
        return {
            "razorpay_order_id": order_id,
            "razorpay_payment_id": payment["id"],
            "razorpay_signature": checkout_signature(order_id, payment["id"], secret),
        }

    def auto_refund(self, payment_id: str) -> dict[str, Any]:
        """Razorpay releases an authorization nobody captured."""
        payment = self.payments[payment_id]
        refund = self._new_refund(payment, payment["amount"], notes=[])
        payment.update(status="refunded", amount_refunded=payment["amount"], refund_status="full")
        return refund

    def order_refunds(self, order_id: str) -> list[dict[str, Any]]:
        ids = {p["id"] for p in self.payments.values() if p["order_id"] == order_id}
        return [r for r in self.refunds.values() if r["payment_id"] in ids]

    # -- plumbing -------------------------------------------------------------

    def _dispatch(self, route: str, pattern: re.Pattern[str]) -> Callable[[Any], Any]:
        def callback(request: Any) -> tuple[int, dict[str, str], str]:
            url = urlsplit(request.url)
            path = url.path[len(urlsplit(self.base).path) :]
            match = pattern.match(path)
            assert match is not None
            body = json.loads(request.body) if request.body else {}
            entry = {
                "route": route,
                "method": request.method,
                "path": path,
                "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                "headers": dict(request.headers),
                "body": body,
                "kwargs": dict(getattr(request, "req_kwargs", {})),
            }
            self.log.append(entry)
            fault = next((f for f in self.faults if f.route == route), None)
            if fault is not None:
                self.faults.remove(fault)
                if not fault.after:
                    return self._fault(fault.kind)
            answer = getattr(self, "_" + route.replace(".", "_"))(entry, *match.groups()[:1])
            if fault is not None:
                return self._fault(fault.kind)
            return answer

        return callback

    @staticmethod
    def _fault(kind: str) -> tuple[int, dict[str, str], str]:
        if kind == "timeout":
            raise requests.exceptions.ReadTimeout("Read timed out. (read timeout=15)")
        if kind == "connection":
            raise requests.exceptions.ConnectionError("Connection reset by peer")
        if kind == "409":
            return _error(409, "Request failed because another payment operation is in progress")
        if kind == "html502":
            return 502, {"Content-Type": "text/html"}, HTML_502
        if kind == "json500":
            return _error(500, load("error_server")["error"]["description"], "error_server")
        if kind == "gateway":
            return _error(502, load("error_gateway")["error"]["description"], "error_gateway")
        raise AssertionError(kind)

    @staticmethod
    def _ok(entity: Any) -> tuple[int, dict[str, str], str]:
        return 200, {"Content-Type": "application/json"}, json.dumps(entity)

    @staticmethod
    def _collection(items: list[dict[str, Any]]) -> tuple[int, dict[str, str], str]:
        return FakeRazorpay._ok({"entity": "collection", "count": len(items), "items": items})

    def _mark_paid(self, payment: dict[str, Any]) -> None:
        order = self.orders.get(payment["order_id"])
        if order is not None:
            order.update(status="paid", amount_paid=payment["amount"], amount_due=0)

    def _new_refund(
        self, payment: dict[str, Any], amount: int, *, notes: Any, receipt: Any = None
    ) -> dict[str, Any]:
        refund = load("refund")
        refund.update(
            id=self.new_id("rfnd"),
            amount=amount,
            currency=payment["currency"],
            payment_id=payment["id"],
            notes=notes,
            receipt=receipt,
            status=self.refund_status,
            created_at=next(self._clock),
        )
        self.refunds[refund["id"]] = refund
        return refund

    # -- routes ----------------------------------------------------------------

    def _order_create(self, entry: dict[str, Any]) -> Any:
        body = entry["body"]
        allowed = {
            "amount",
            "currency",
            "receipt",
            "notes",
            "unique_receipt",
            "payment",
            "partial_payment",
        }
        extra = sorted(set(body) - allowed)
        if extra:
            return _error(400, f"{extra[0]} is/are not required and should not be sent")
        if not isinstance(body.get("amount"), int) or body["amount"] < 100:
            return _error(400, f"The amount must be at least {body.get('currency')} 1.00")
        if len(str(body.get("receipt", ""))) > 40:
            return _error(400, "The receipt may not be greater than 40 characters.")
        if body.get("unique_receipt"):
            for order in self.orders.values():
                if order["receipt"] == body["receipt"]:
                    return self._ok(order)
        order = self.add_order(
            amount=body["amount"],
            currency=body["currency"],
            receipt=body["receipt"],
            notes=body.get("notes") or [],
        )
        order["capture_settings"] = body.get("payment")
        return self._ok({k: v for k, v in order.items() if k != "capture_settings"})

    def _order_list(self, entry: dict[str, Any]) -> Any:
        receipt = entry["query"].get("receipt")
        found = [
            {k: v for k, v in o.items() if k != "capture_settings"}
            for o in self.orders.values()
            if receipt is None or o["receipt"] == receipt
        ]
        return self._collection(found)

    def _order_payments(self, entry: dict[str, Any], order_id: str) -> Any:
        if order_id not in self.orders:
            return _error(400, "The id provided does not exist")
        return self._collection([p for p in self.payments.values() if p["order_id"] == order_id])

    def _payment_fetch(self, entry: dict[str, Any], payment_id: str) -> Any:
        if payment_id not in self.payments:
            return _error(400, "The id provided does not exist")
        return self._ok(self.payments[payment_id])

    def _payment_capture(self, entry: dict[str, Any], payment_id: str) -> Any:
        payment = self.payments.get(payment_id)
        if payment is None:
            return _error(400, "The id provided does not exist")
        if payment["status"] == "captured":
            return _error(400, "This payment has already been captured")
        if payment["status"] != "authorized":
            return _error(
                400, "Only payments which have been authorized and not yet captured can be captured"
            )
        if entry["body"].get("amount") != payment["amount"]:
            return _error(400, "Capture amount must be equal to the amount authorized")
        if entry["body"].get("currency") != payment["currency"]:
            return _error(400, "The currency should be same as that of the payment")
        payment.update(status="captured", captured=True)
        self._mark_paid(payment)
        return self._ok(payment)

    def _payment_refund(self, entry: dict[str, Any], payment_id: str) -> Any:
        payment = self.payments.get(payment_id)
        if payment is None:
            return _error(400, "The id provided does not exist")
        key = entry["headers"].get("X-Refund-Idempotency")
        if key is not None:
            if not re.fullmatch(r"[A-Za-z0-9_-]{10,}", key):
                return _error(400, "The idempotency key is invalid.")
            if key in self.refund_keys:
                first_body, refund_id = self.refund_keys[key]
                if first_body != entry["body"]:
                    return _error(
                        400,
                        "Different request with the same idempotency key "
                        "has already been processed.",
                    )
                return self._ok(self.refunds[refund_id])
        if not payment["captured"]:
            return _error(400, "The payment has not been captured yet")
        amount = entry["body"].get("amount", payment["amount"] - payment["amount_refunded"])
        if payment["amount_refunded"] >= payment["amount"]:
            return _error(400, "The payment has been fully refunded already")
        if amount > payment["amount"] - payment["amount_refunded"]:
            return _error(400, "The refund amount provided is greater than amount captured")
        refund = self._new_refund(
            payment,
            amount,
            notes=entry["body"].get("notes") or [],
            receipt=entry["body"].get("receipt"),
        )
        refund["speed_requested"] = entry["body"].get("speed", "normal")
        payment["amount_refunded"] += amount
        full = payment["amount_refunded"] == payment["amount"]
        payment.update(
            refund_status="full" if full else "partial", status="refunded" if full else "captured"
        )
        if key is not None:
            self.refund_keys[key] = (entry["body"], refund["id"])
        return self._ok(refund)

    def _payment_refunds(self, entry: dict[str, Any], payment_id: str) -> Any:
        found = [
            r
            for r in self.refunds.values()
            if r["payment_id"] == payment_id and r["id"] not in self.hidden_refunds
        ]
        skip = int(entry["query"].get("skip", 0))
        count = int(entry["query"].get("count", 10))
        return self._collection(found[skip : skip + count])


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------


@pytest.fixture
def razorpay_settings(settings: Any) -> Any:
    settings.PAYGATE = paygate_setting()
    return settings


@pytest.fixture
def provider(razorpay_settings: Any) -> RazorpayProvider:
    backend = get_provider("razorpay")
    assert isinstance(backend, RazorpayProvider)
    return backend


@pytest.fixture
def fake(razorpay_settings: Any) -> Iterator[FakeRazorpay]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeRazorpay(rsps)


@pytest.fixture
def rzp_payment() -> Callable[..., Any]:
    """A Razorpay payment row linked to ``order_id`` (no HTTP involved)."""
    from tests.factories import PaymentFactory

    def make(order_id: str | None = None, **fields: Any) -> Any:
        fields.setdefault("amount", 49900)
        fields.setdefault("currency", "INR")
        return PaymentFactory(provider="razorpay", provider_payment_id=order_id, **fields)

    return make


def copy_entity(entity: dict[str, Any], **fields: Any) -> dict[str, Any]:
    result = copy.deepcopy(entity)
    result.update(fields)
    return result
