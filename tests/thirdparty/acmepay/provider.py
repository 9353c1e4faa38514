"""AcmePay: a third-party provider, written only from ADDING_PROVIDERS.md.

AcmePay's (made-up) API: charges with a ``reference`` and an ``Idempotency-Key``,
``/pay`` with a card token (a decline is a 402), full captures, refunds
that take an amount and nothing else (they cannot carry our refund id), and
webhooks signed ``Acme-Signature: sha256=<hex HMAC of the body>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import requests

from django_paygate.exceptions import (
    PaymentDeclined,
    ProviderError,
    ProviderUnavailable,
    WebhookVerificationError,
)
from django_paygate.providers.base import (
    BaseProvider,
    ProviderEvent,
    ProviderPayment,
    ProviderRefund,
    decode_json_body,
    hmac_sha256_hex,
    signature_matches,
)
from django_paygate.states import PaymentStatus, RefundStatus

if TYPE_CHECKING:
    from django_paygate.models import AbstractPayment, Refund

SIGNATURE_HEADER = "Acme-Signature"
STATUSES = {
    "open": PaymentStatus.PENDING,
    "authorized": PaymentStatus.AUTHORIZED,
    "paid": PaymentStatus.SUCCEEDED,
    "failed": PaymentStatus.FAILED,
    "canceled": PaymentStatus.CANCELED,
}
REFUND_STATUSES = {"pending": RefundStatus.PENDING, "succeeded": RefundStatus.SUCCEEDED}


class AcmePayProvider(BaseProvider):
    name = "AcmePay"
    default_options: ClassVar[Mapping[str, Any]] = {
        "api_key": "",
        "webhook_secret": "",
        "api_base": "https://api.acmepay.test/v1",
        "timeout": 10,
    }
    confirmation_fields: ClassVar[Mapping[str, int]] = {"card": 255}
    required_options = ("api_key",)
    secret_options = ("api_key", "webhook_secret")
    supported_currencies = frozenset({"USD", "EUR"})

    def _call(self, method: str, path: str, key: str = "", **body: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.options['api_key']}"}
        if key:
            headers["Idempotency-Key"] = key
        try:
            answer = requests.request(
                method,
                self.options["api_base"] + path,
                json=body or None,
                headers=headers,
                timeout=self.options["timeout"],
            )
            data = answer.json()
        except (requests.RequestException, ValueError) as exc:
            raise ProviderUnavailable("AcmePay did not answer.", provider=self.alias) from exc
        if answer.status_code >= 500 or answer.status_code == 429:
            raise ProviderUnavailable(
                f"AcmePay answered {answer.status_code}.", provider=self.alias
            )
        error = data.get("error") or {}
        if answer.status_code == 402:
            raise PaymentDeclined(
                str(error.get("message", "")),
                decline_code=str(error.get("code", "declined")),
                provider=self.alias,
            )
        if answer.status_code >= 400:
            raise ProviderError(f"AcmePay refused: {error.get('code')}", provider=self.alias)
        return dict(data)

    def _payment(self, charge: Mapping[str, Any]) -> ProviderPayment:
        status = STATUSES.get(str(charge.get("status")))
        return ProviderPayment(
            provider_payment_id=str(charge["id"]),
            status=status,
            amount=charge.get("amount"),
            currency=str(charge.get("currency", "")).upper() or None,
            amount_captured=charge.get("amount_paid")
            if status == PaymentStatus.SUCCEEDED
            else None,
            failure_code=str(charge.get("failure_code") or ""),
            refunds=tuple(self._refund(r) for r in charge.get("refunds", ())),
            our_payment_id=charge.get("reference"),
        )

    @staticmethod
    def _refund(refund: Mapping[str, Any]) -> ProviderRefund:
        return ProviderRefund(
            provider_refund_id=str(refund["id"]),
            status=REFUND_STATUSES.get(str(refund.get("status")), RefundStatus.FAILED),
            amount=int(refund["amount"]),
            currency=str(refund.get("currency", "")).upper(),
            provider_payment_id=str(refund.get("charge") or "") or None,
        )

    def create_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        charge = self._call(
            "POST",
            "/charges",
            idempotency_key,
            amount=payment.amount,
            currency=payment.currency.lower(),
            capture=payment.capture_method != "manual",
            reference=str(payment.pk),
        )
        return replace(self._payment(charge), client_data={"charge": charge["id"]})

    def client_data(self, payment: AbstractPayment) -> Mapping[str, Any]:
        return {"charge": payment.provider_payment_id}

    def confirm_payment(
        self, payment: AbstractPayment, *, idempotency_key: str, **data: Any
    ) -> ProviderPayment:
        path = f"/charges/{payment.provider_payment_id}/pay"
        return self._payment(self._call("POST", path, idempotency_key, card=data.get("card")))

    def capture_payment(
        self, payment: AbstractPayment, *, amount: int, idempotency_key: str
    ) -> ProviderPayment:
        path = f"/charges/{payment.provider_payment_id}/capture"
        return self._payment(self._call("POST", path, idempotency_key, amount=amount))

    def refund_payment(
        self, payment: AbstractPayment, refund: Refund, *, idempotency_key: str
    ) -> ProviderRefund:
        path = f"/charges/{payment.provider_payment_id}/refunds"
        return self._refund(self._call("POST", path, idempotency_key, amount=refund.amount))

    def fetch_payment(self, payment: AbstractPayment) -> ProviderPayment:
        if not payment.provider_payment_id:
            return ProviderPayment(provider_payment_id=None, status=None)
        return self._payment(self._call("GET", f"/charges/{payment.provider_payment_id}"))

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> None:
        scheme, _, digest = (headers.get(SIGNATURE_HEADER) or "").partition("=")
        expected = [hmac_sha256_hex(s, body) for s in self.webhook_secrets()]
        if scheme != "sha256" or not signature_matches([digest], expected):
            raise WebhookVerificationError("Bad Acme-Signature.", provider=self.alias)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        event = decode_json_body(body)
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            raise WebhookVerificationError("Not an AcmePay event.", provider=self.alias)
        base = ProviderEvent(event_id=event["id"], type=str(event.get("type", "")))
        obj = event.get("data") or {}
        if base.type.startswith("charge.") and base.type[7:] in STATUSES:
            payment = self._payment(obj)
            return replace(base, payment=payment, our_payment_id=payment.our_payment_id)
        if base.type == "refund.succeeded":
            return replace(base, refund=self._refund(obj))
        return base
