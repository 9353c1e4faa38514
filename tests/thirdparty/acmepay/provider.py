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

from django_paygate.exceptions import PaymentDeclined, WebhookVerificationError
from django_paygate.providers.base import (
    BaseProvider,
    OptionCheck,
    ProviderEvent,
    ProviderPayment,
    ProviderRefund,
    decode_json_body,
    header,
    hmac_sha256_hex,
    integer,
    is_string,
    mapping,
    signature_matches,
    text,
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
    # webhook_secret, timeout and api_base are checked by the base (COMMON_OPTION_CHECKS).
    option_checks: ClassVar[Mapping[str, OptionCheck]] = {
        "api_key": is_string(required=True, prefixes=("acme_",)),
    }
    confirmation_fields: ClassVar[Mapping[str, int]] = {"card": 255}
    required_options = ("api_key",)
    secret_options = ("api_key", "webhook_secret")
    supported_currencies = frozenset({"USD", "EUR"})

    def _call(
        self, operation: str, method: str, path: str, key: str = "", **body: Any
    ) -> dict[str, Any]:
        """One request; an unknown outcome (a timeout, a 5xx, a 429, a body that is not
        JSON) is a ProviderUnavailable from ``call``, a 402 a decline, another 4xx a refusal."""
        headers = {"Authorization": f"Bearer {self.options['api_key']}"}
        if key:
            headers["Idempotency-Key"] = key
        url = self.options["api_base"] + path
        answer = self.call(
            operation, self.session.request, method, url, json=body or None, headers=headers
        )
        data = mapping(answer.json())
        if answer.status_code < 400:
            return data
        error = mapping(data.get("error"))
        if answer.status_code == 402:
            raise PaymentDeclined(
                text(error.get("message")),
                decline_code=text(error.get("code")) or "declined",
                provider=self.alias,
            )
        raise self.refused(operation, text(error.get("code")) or f"HTTP {answer.status_code}")

    def _payment(self, charge: Mapping[str, Any]) -> ProviderPayment:
        status = STATUSES.get(text(charge.get("status")))
        listed = charge.get("refunds")
        refunds = [r for r in listed if isinstance(r, dict)] if isinstance(listed, list) else []
        return ProviderPayment(
            provider_payment_id=text(charge.get("id")) or None,
            status=status,
            amount=integer(charge.get("amount")),
            currency=text(charge.get("currency")).upper() or None,
            amount_captured=integer(charge.get("amount_paid"))
            if status == PaymentStatus.SUCCEEDED
            else None,
            failure_code=text(charge.get("failure_code")),
            refunds=tuple(self._refund(r) for r in refunds),
            our_payment_id=text(charge.get("reference")) or None,
        )

    @staticmethod
    def _refund(refund: Mapping[str, Any]) -> ProviderRefund:
        return ProviderRefund(
            provider_refund_id=text(refund.get("id")),
            status=REFUND_STATUSES.get(text(refund.get("status")), RefundStatus.FAILED),
            amount=integer(refund.get("amount")) or 0,
            currency=text(refund.get("currency")).upper(),
            provider_payment_id=text(refund.get("charge")) or None,
        )

    def create_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        charge = self._call(
            "create",
            "POST",
            "/charges",
            idempotency_key,
            amount=payment.amount,
            currency=payment.currency.lower(),
            capture=payment.capture_method != "manual",
            reference=str(payment.pk),
        )
        answer = self._payment(charge)
        return replace(answer, client_data={"charge": answer.provider_payment_id})

    def client_data(self, payment: AbstractPayment) -> Mapping[str, Any]:
        return {"charge": payment.provider_payment_id}

    def confirm_payment(
        self, payment: AbstractPayment, *, idempotency_key: str, **data: Any
    ) -> ProviderPayment:
        self.clean_confirmation(data)
        path = f"/charges/{payment.provider_payment_id}/pay"
        charge = self._call("confirm", "POST", path, idempotency_key, card=data.get("card"))
        return self._payment(charge)

    def capture_payment(
        self, payment: AbstractPayment, *, amount: int, idempotency_key: str
    ) -> ProviderPayment:
        path = f"/charges/{payment.provider_payment_id}/capture"
        return self._payment(self._call("capture", "POST", path, idempotency_key, amount=amount))

    def refund_payment(
        self, payment: AbstractPayment, refund: Refund, *, idempotency_key: str
    ) -> ProviderRefund:
        path = f"/charges/{payment.provider_payment_id}/refunds"
        return self._refund(
            self._call("refund", "POST", path, idempotency_key, amount=refund.amount)
        )

    def fetch_payment(self, payment: AbstractPayment) -> ProviderPayment:
        if not payment.provider_payment_id:
            return ProviderPayment(provider_payment_id=None, status=None)
        return self._payment(self._call("fetch", "GET", f"/charges/{payment.provider_payment_id}"))

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> None:
        scheme, _, digest = header(headers, SIGNATURE_HEADER).partition("=")
        expected = [hmac_sha256_hex(s, body) for s in self.webhook_secrets()]
        if scheme != "sha256" or not signature_matches([digest], expected):
            raise WebhookVerificationError("Bad Acme-Signature.", provider=self.alias)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        event = mapping(decode_json_body(body))
        if not text(event.get("id")):
            raise WebhookVerificationError("Not an AcmePay event.", provider=self.alias)
        base = ProviderEvent(event_id=event["id"], type=text(event.get("type")))
        obj = mapping(event.get("data"))
        if base.type.startswith("charge.") and base.type[7:] in STATUSES:
            payment = self._payment(obj)
            return replace(base, payment=payment, our_payment_id=payment.our_payment_id)
        if base.type == "refund.succeeded":
            return replace(base, refund=self._refund(obj))
        return base
