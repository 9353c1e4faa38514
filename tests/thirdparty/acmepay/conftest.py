"""AcmePay's API, faked on ``responses``: charges, refunds, idempotency keys, faults."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import responses

from django_paygate.providers import get_provider

from .provider import SIGNATURE_HEADER, AcmePayProvider

API = "https://api.acmepay.test/v1"
API_KEY = "acme_key_contract_0001"
WEBHOOK_SECRET = "acme-whsec-contract-0001"


def paygate_setting() -> dict[str, Any]:
    return {
        "DEFAULT_PROVIDER": "acme",
        "PROVIDERS": {
            "acme": {
                "BACKEND": "tests.thirdparty.acmepay.provider.AcmePayProvider",
                "OPTIONS": {"api_key": API_KEY, "webhook_secret": WEBHOOK_SECRET},
            }
        },
    }


class FakeAcmePay:
    """The provider's side: its charges and refunds, and the webhooks it would send."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.charges: dict[str, dict[str, Any]] = {}
        #: Idempotency-Key -> the first answer (status, body), as the provider keeps it.
        self.answers: dict[str, tuple[int, str]] = {}
        self.faults: dict[str, str] = {}  # route -> "decline" | "lost"
        self._ids = itertools.count(1)
        routes = {
            ("POST", r"/charges"): self._create,
            ("GET", r"/charges/(\w+)"): self._fetch,
            ("POST", r"/charges/(\w+)/pay"): self._pay,
            ("POST", r"/charges/(\w+)/capture"): self._capture,
            ("POST", r"/charges/(\w+)/refunds"): self._refund,
        }
        for (method, path), handler in routes.items():
            route = handler.__name__[1:]
            pattern = re.compile(re.escape(API) + path + "$")
            rsps.add_callback(method, pattern, callback=self._dispatch(route, pattern, handler))

    def _dispatch(self, route: str, pattern: re.Pattern[str], handler: Any) -> Any:
        def callback(request: requests.PreparedRequest) -> Any:
            assert request.headers["Authorization"] == f"Bearer {API_KEY}"
            match = pattern.match(str(request.url))
            assert match is not None
            body = json.loads(request.body or "{}")
            fault = self.faults.pop(route, "")
            if fault == "decline":
                error = {"code": "card_declined", "message": "The card was declined."}
                return 402, {}, json.dumps({"error": error})
            key = request.headers.get("Idempotency-Key")
            if key and key in self.answers:
                status, answer = self.answers[key]
            else:
                status, data = handler(*match.groups(), body)
                status, answer = status, json.dumps(data)
                if key:
                    self.answers[key] = (status, answer)
            if fault == "lost":
                raise requests.exceptions.ReadTimeout("Read timed out.")
            return status, {}, answer

        return callback

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def _create(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        charge = {
            "id": self._new_id("ch"),
            "status": "open",
            "amount": body["amount"],
            "currency": body["currency"],
            "capture": body["capture"],
            "amount_paid": 0,
            "reference": body["reference"],
            "refunds": [],
        }
        self.charges[charge["id"]] = charge
        return 200, charge

    def _fetch(self, charge_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, self.charges[charge_id]

    def _pay(self, charge_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        charge = self.charges[charge_id]
        assert body["card"] == "tok_acme_ok"
        if charge["capture"]:
            charge.update(status="paid", amount_paid=charge["amount"], failure_code=None)
        else:
            charge.update(status="authorized", failure_code=None)
        return 200, charge

    def _capture(self, charge_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        charge = self.charges[charge_id]
        if charge["status"] != "authorized" or body["amount"] != charge["amount"]:
            return 400, {"error": {"code": "capture_refused"}}
        charge.update(status="paid", amount_paid=charge["amount"])
        return 200, charge

    def _refund(self, charge_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        charge = self.charges[charge_id]
        left = charge["amount_paid"] - sum(r["amount"] for r in charge["refunds"])
        if not 0 < body["amount"] <= left:
            return 400, {"error": {"code": "amount_too_large"}}
        refund = {
            "id": self._new_id("rf"),
            "charge": charge_id,
            "amount": body["amount"],
            "currency": charge["currency"],
            "status": "succeeded",
        }
        charge["refunds"].append(refund)
        return 200, refund

    # -- the contract's hooks --------------------------------------------------

    def confirm_data(self, payment: Any) -> dict[str, Any]:
        return {"card": "tok_acme_ok"}

    def decline_next(self) -> None:
        self.faults["pay"] = "decline"

    def lose_next_answer(self, operation: str) -> None:
        route = {"confirm": "pay", "refund": "refund"}.get(operation, operation)
        self.faults[route] = "lost"

    def _charges_of(self, payment: Any) -> list[dict[str, Any]]:
        return [c for c in self.charges.values() if c["reference"] == str(payment.pk)]

    def payment_objects(self, payment: Any) -> list[str]:
        return [c["id"] for c in self._charges_of(payment)]

    def refund_objects(self, payment: Any) -> list[str]:
        return [r["id"] for c in self._charges_of(payment) for r in c["refunds"]]

    def signed_event(
        self, kind: str, payment: Any, *, refund_id: str = "", secret: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        (charge,) = self._charges_of(payment)
        if kind == "payment.succeeded":
            event_type, data = "charge.paid", {**charge, "status": "paid"}
            data["amount_paid"] = charge["amount"]
        elif kind == "refund.succeeded":
            event_type = "refund.succeeded"
            data = next(r for r in charge["refunds"] if r["id"] == refund_id)
        else:
            event_type, data = "payout.sent", {"id": "po_1", "amount": 1}
        event = {"id": f"evt_{uuid.uuid4().hex}", "type": event_type, "data": data}
        body = json.dumps(event).encode()
        digest = hmac.new((secret or WEBHOOK_SECRET).encode(), body, hashlib.sha256).hexdigest()
        return body, {SIGNATURE_HEADER: f"sha256={digest}", "Content-Type": "application/json"}


@pytest.fixture
def acme_api(settings: Any) -> Iterator[FakeAcmePay]:
    settings.PAYGATE = paygate_setting()
    assert isinstance(get_provider("acme"), AcmePayProvider)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeAcmePay(rsps)
