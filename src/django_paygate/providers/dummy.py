"""A provider that needs no network and no keys, and behaves like a real one.

Test cards (``payment_method=`` on confirm):

=====================  =================================================
``4242424242424242``   succeeds (``authorized`` when capture is manual)
``4000000000000002``   declined with ``card_declined``
``4000002500003155``   ``requires_action``; the next confirm succeeds
anything else          declined with ``incorrect_number``
=====================  =================================================

It keeps its "remote" state in memory, per instance, honours idempotency
keys like Stripe (same key, same answer), signs its webhook events with its
``webhook_secret`` in Stripe's ``t=…,v1=…`` scheme (header
``Paygate-Dummy-Signature``), and records every event it would send in
:attr:`DummyProvider.sent_events`, so the whole webhook path runs in demos and
tests. :meth:`DummyProvider.fail_next` injects faults, before or after the
remote side took effect, to rehearse timeouts and crashes.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

from django_paygate.exceptions import (
    InvalidTransition,
    PaygateError,
    ProviderError,
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
    hmac_sha256_hex,
    signature_matches,
)
from django_paygate.states import DisputeStatus, PaymentStatus, RefundStatus

if TYPE_CHECKING:
    from django_paygate.models import AbstractPayment, Refund

CARD_SUCCEEDS = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_REQUIRES_ACTION = "4000002500003155"

SIGNATURE_HEADER = "Paygate-Dummy-Signature"
DEFAULT_WEBHOOK_SECRET = "dummy-webhook-secret"


@dataclass
class _Remote:
    """What the fake remote side knows about one payment."""

    id: str
    our_id: str
    amount: int
    currency: str
    manual: bool
    status: PaymentStatus = PaymentStatus.PENDING
    captured: int = 0
    pending_action: bool = False
    failure_code: str = ""
    refunds: dict[str, ProviderRefund] = field(default_factory=dict)


@dataclass
class _Fault:
    method: str
    error: PaygateError
    after: bool


class DummyProvider(BaseProvider):
    name = "Dummy"
    default_options: ClassVar[Mapping[str, Any]] = {
        "webhook_secret": DEFAULT_WEBHOOK_SECRET,
        # A str.format template with {payment_id}; the example project serves one.
        "checkout_url": "",
        # Seconds of tolerance on webhook timestamps.
        "webhook_tolerance": 300,
    }

    def __init__(self, alias: str, **options: Any) -> None:
        super().__init__(alias, **options)
        self._lock = threading.RLock()
        self._remote: dict[str, _Remote] = {}
        self._answers: dict[str, Any] = {}
        self._faults: list[_Fault] = []
        #: Every call that reached the "remote" side: (method, idempotency key).
        self.calls: list[tuple[str, str]] = []
        #: Every webhook event the provider would have sent: (body, headers).
        self.sent_events: list[tuple[bytes, dict[str, str]]] = []

    # -- test controls ---------------------------------------------------------

    def fail_next(
        self, method: str, error: PaygateError | None = None, *, after: bool = False
    ) -> None:
        """Make the next call of ``method`` raise ``error`` (default: a timeout).

        With ``after=True`` the remote side takes effect first, as when a
        response is lost on the way back.
        """
        with self._lock:
            self._faults.append(
                _Fault(
                    method,
                    error or ProviderUnavailable("Dummy timeout.", provider=self.alias),
                    after,
                )
            )

    def reset(self) -> None:
        with self._lock:
            self._remote.clear()
            self._answers.clear()
            self._faults.clear()
            self.calls.clear()
            self.sent_events.clear()

    def _call(self, method: str, key: str, effect: Callable[[], Any]) -> Any:
        with self._lock:
            fault = next((f for f in self._faults if f.method == method), None)
            if fault is not None:
                self._faults.remove(fault)
            if fault is not None and not fault.after:
                raise fault.error
            self.calls.append((method, key))
            if key and key in self._answers:
                answer = self._answers[key]
            else:
                answer = effect()
                if key:
                    self._answers[key] = answer
            if fault is not None:
                raise fault.error
            return answer

    def _get(self, payment: AbstractPayment) -> _Remote:
        remote = self._remote.get(payment.provider_payment_id or "")
        if remote is None:
            raise ProviderError("No such payment at the dummy provider.", provider=self.alias)
        return remote

    # -- outbound --------------------------------------------------------------

    def create_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        def effect() -> ProviderPayment:
            remote = _Remote(
                id=f"dummy_{payment.pk.hex}",
                our_id=str(payment.pk),
                amount=payment.amount,
                currency=payment.currency,
                manual=payment.capture_method == "manual",
            )
            self._remote.setdefault(remote.id, remote)
            return self._result(self._remote[remote.id])

        result: ProviderPayment = self._call("create_payment", idempotency_key, effect)
        return replace(result, client_data=self._client_data(payment, result.provider_payment_id))

    def client_data(self, payment: AbstractPayment) -> Mapping[str, Any]:
        return self._client_data(payment, payment.provider_payment_id)

    def _client_data(self, payment: AbstractPayment, remote_id: str | None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "provider": "dummy",
            "payment_id": str(payment.pk),
            "test_cards": {
                "succeeds": CARD_SUCCEEDS,
                "declined": CARD_DECLINED,
                "requires_action": CARD_REQUIRES_ACTION,
            },
        }
        if self.options["checkout_url"]:
            data["checkout_url"] = str(self.options["checkout_url"]).format(payment_id=payment.pk)
        return data

    def confirm_payment(
        self, payment: AbstractPayment, *, idempotency_key: str, **data: Any
    ) -> ProviderPayment:
        unknown = set(data) - {"payment_method", "return_url"}
        if unknown:
            raise ProviderError(f"Unexpected confirmation field {sorted(unknown)[0]!r}.")
        card = str(data.get("payment_method") or "")

        def effect() -> ProviderPayment:
            remote = self._get(payment)
            if remote.status not in {
                PaymentStatus.PENDING,
                PaymentStatus.REQUIRES_ACTION,
                PaymentStatus.FAILED,
            }:
                raise InvalidTransition(f"Cannot confirm a {remote.status} payment.")
            if remote.pending_action or card == CARD_SUCCEEDS:
                remote.pending_action = False
                remote.failure_code = ""
                if remote.manual:
                    remote.status = PaymentStatus.AUTHORIZED
                else:
                    remote.status, remote.captured = PaymentStatus.SUCCEEDED, remote.amount
            elif card == CARD_REQUIRES_ACTION:
                remote.status, remote.pending_action = PaymentStatus.REQUIRES_ACTION, True
            else:
                remote.status = PaymentStatus.FAILED
                remote.failure_code = (
                    "card_declined" if card == CARD_DECLINED else "incorrect_number"
                )
            self._emit_payment(remote)
            return self._result(remote)

        result: ProviderPayment = self._call("confirm_payment", idempotency_key, effect)
        return result

    def capture_payment(
        self, payment: AbstractPayment, *, amount: int, idempotency_key: str
    ) -> ProviderPayment:
        def effect() -> ProviderPayment:
            remote = self._get(payment)
            if remote.status != PaymentStatus.AUTHORIZED:
                raise InvalidTransition(f"Cannot capture a {remote.status} payment.")
            if amount > remote.amount:
                raise ProviderError("Capture amount exceeds the authorized amount.")
            remote.status, remote.captured = PaymentStatus.SUCCEEDED, amount
            self._emit_payment(remote)
            return self._result(remote)

        result: ProviderPayment = self._call("capture_payment", idempotency_key, effect)
        return result

    def cancel_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        def effect() -> ProviderPayment:
            remote = self._get(payment)
            if remote.status in {PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED}:
                raise InvalidTransition(f"Cannot cancel a {remote.status} payment.")
            remote.status = PaymentStatus.CANCELED
            self._emit_payment(remote)
            return self._result(remote)

        result: ProviderPayment = self._call("cancel_payment", idempotency_key, effect)
        return result

    def refund_payment(
        self, payment: AbstractPayment, refund: Refund, *, idempotency_key: str
    ) -> ProviderRefund:
        def effect() -> ProviderRefund:
            remote = self._get(payment)
            result = ProviderRefund(
                provider_refund_id=f"dummy_re_{refund.pk.hex}",
                status=RefundStatus.SUCCEEDED,
                amount=refund.amount,
                currency=refund.currency,
                provider_payment_id=remote.id,
                our_refund_id=str(refund.pk),
            )
            remote.refunds[result.provider_refund_id] = result
            self._emit(
                "refund.succeeded",
                {"refund": self._refund_json(result), "payment_id": remote.our_id},
            )
            return result

        result: ProviderRefund = self._call("refund_payment", idempotency_key, effect)
        return result

    def fetch_payment(self, payment: AbstractPayment) -> ProviderPayment:
        with self._lock:
            self.calls.append(("fetch_payment", ""))
            remote = self._remote.get(payment.provider_payment_id or f"dummy_{payment.pk.hex}")
            if remote is None:
                return ProviderPayment(provider_payment_id=None, status=None)
            return self._result(remote)

    def open_dispute(
        self, payment: AbstractPayment, *, status: DisputeStatus = DisputeStatus.OPEN
    ) -> None:
        """Emit a dispute event for ``payment`` (demo and tests)."""
        remote = self._get(payment)
        self._emit(
            f"dispute.{status.value}",
            {
                "dispute": {
                    "id": f"dummy_dp_{remote.id}",
                    "payment": remote.id,
                    "amount": remote.captured,
                    "currency": remote.currency,
                    "reason": "fraudulent",
                    "status": status.value,
                },
                "payment_id": remote.our_id,
            },
        )

    def _result(self, remote: _Remote) -> ProviderPayment:
        return ProviderPayment(
            provider_payment_id=remote.id,
            status=remote.status,
            amount=remote.amount,
            currency=remote.currency,
            amount_captured=remote.captured,
            failure_code=remote.failure_code,
            failure_message="The card was declined." if remote.failure_code else "",
            next_action={"type": "dummy_authenticate"} if remote.pending_action else None,
            refunds=tuple(remote.refunds.values()),
            our_payment_id=remote.our_id,
        )

    # -- webhooks --------------------------------------------------------------

    @staticmethod
    def _refund_json(refund: ProviderRefund) -> dict[str, Any]:
        return {
            "id": refund.provider_refund_id,
            "payment": refund.provider_payment_id,
            "amount": refund.amount,
            "currency": refund.currency,
            "status": refund.status.value,
            "our_refund_id": refund.our_refund_id,
        }

    def _emit_payment(self, remote: _Remote) -> None:
        self._emit(
            f"payment.{remote.status.value}",
            {
                "payment": {
                    "id": remote.id,
                    "amount": remote.amount,
                    "currency": remote.currency,
                    "amount_captured": remote.captured,
                    "status": remote.status.value,
                    "failure_code": remote.failure_code,
                },
                "payment_id": remote.our_id,
            },
        )

    def _emit(self, event_type: str, data: dict[str, Any]) -> None:
        body, headers = self.build_event(event_type, data)
        self.sent_events.append((body, headers))

    def build_event(
        self,
        event_type: str,
        data: Mapping[str, Any],
        *,
        event_id: str | None = None,
        timestamp: int | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """A signed webhook delivery: ``(body, headers)``."""
        event = {
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "type": event_type,
            "data": dict(data),
        }
        body = json.dumps(event, separators=(",", ":")).encode()
        return body, {SIGNATURE_HEADER: self.sign(body, timestamp=timestamp)}

    def sign(self, body: bytes, *, timestamp: int | None = None, secret: str | None = None) -> str:
        ts = int(time.time()) if timestamp is None else timestamp
        key = secret or self.webhook_secrets()[0]
        return f"t={ts},v1={hmac_sha256_hex(key, f'{ts}.'.encode() + body)}"

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> None:
        header = headers.get(SIGNATURE_HEADER) or ""
        parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
        timestamps = [v for k, v in parts if k.strip() == "t"]
        signatures = [v for k, v in parts if k.strip() == "v1"]
        stamp = timestamps[0].strip() if len(timestamps) == 1 else ""
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) or not signatures:
            raise WebhookVerificationError(
                "Missing or malformed signature header.", provider=self.alias
            )
        ts = int(stamp)
        if abs(time.time() - ts) > int(self.options["webhook_tolerance"]):
            raise WebhookVerificationError(
                "Timestamp outside the tolerance zone.", provider=self.alias
            )
        expected = [hmac_sha256_hex(s, f"{ts}.".encode() + body) for s in self.webhook_secrets()]
        if not signature_matches(signatures, expected):
            raise WebhookVerificationError("No signature matches.", provider=self.alias)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        event = decode_json_body(body)
        if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not event["id"]:
            raise WebhookVerificationError("The event has no id.", provider=self.alias)
        event_type = str(event.get("type") or "")
        data: dict[str, Any] = event["data"] if isinstance(event.get("data"), dict) else {}
        our_id = data.get("payment_id") if isinstance(data.get("payment_id"), str) else None
        kind, _, status = event_type.partition(".")
        base = ProviderEvent(
            event_id=event["id"][:255], type=event_type[:128], our_payment_id=our_id
        )
        try:
            if kind == "payment" and isinstance(data.get("payment"), dict):
                p = data["payment"]
                return replace(
                    base,
                    payment=ProviderPayment(
                        provider_payment_id=str(p["id"]),
                        status=PaymentStatus(status),
                        amount=_int(p.get("amount")),
                        currency=str(p.get("currency") or "") or None,
                        amount_captured=_int(p.get("amount_captured")),
                        failure_code=str(p.get("failure_code") or ""),
                    ),
                )
            if kind == "refund" and isinstance(data.get("refund"), dict):
                r = data["refund"]
                return replace(
                    base,
                    refund=ProviderRefund(
                        provider_refund_id=str(r["id"]),
                        status=RefundStatus(status),
                        amount=_int(r.get("amount")) or 0,
                        currency=str(r.get("currency") or ""),
                        provider_payment_id=str(r.get("payment") or "") or None,
                        our_refund_id=r.get("our_refund_id")
                        if isinstance(r.get("our_refund_id"), str)
                        else None,
                    ),
                )
            if kind == "dispute" and isinstance(data.get("dispute"), dict):
                d = data["dispute"]
                return replace(
                    base,
                    dispute=ProviderDispute(
                        provider_dispute_id=str(d["id"]),
                        status=DisputeStatus(status),
                        amount=_int(d.get("amount")) or 0,
                        currency=str(d.get("currency") or ""),
                        provider_payment_id=str(d.get("payment") or "") or None,
                        reason=str(d.get("reason") or "")[:255],
                    ),
                )
        except (KeyError, ValueError, TypeError):
            return base  # a type or shape we do not act on: stored and ignored
        return base


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
