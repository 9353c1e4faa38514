"""Fixtures for the Stripe adapter's tests.

Two ways to talk to "Stripe", both through the real ``stripe`` SDK:

- ``localstripe``: a stateful fake Stripe server (PyPI ``localstripe``), started
  once per session as a subprocess on a free loopback port.
- ``fake_stripe``: a small stateful Stripe on ``responses`` (the SDK's
  ``RequestsClient`` goes through ``requests``), which honours idempotency keys
  like Stripe and injects faults (timeouts before or after the effect, 5xx,
  429, idempotency errors, card declines). Nothing leaves the process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from django_paygate.providers import get_provider
from django_paygate.providers.stripe import StripeProvider

SECRET_KEY = "sk_test_paygateFAKE0123456789abcdef"
PUBLISHABLE_KEY = "pk_test_paygateFAKE0123456789abcdef"
WEBHOOK_SECRET = "whsec_paygateFAKE0123456789abcdef"
OLD_WEBHOOK_SECRET = "whsec_paygateOLD9876543210fedcba"
#: A base that can never resolve: the mocked tests cannot reach any network.
MOCK_API = "https://stripe.invalid"
WEBHOOK_URL = "/api/payments/webhooks/stripe/"


def paygate_setting(**stripe_options: Any) -> dict[str, Any]:
    """``settings.PAYGATE`` with the "dummy" and "stripe" aliases."""
    return {
        "DEFAULT_PROVIDER": "dummy",
        "PROVIDERS": {
            "dummy": {"BACKEND": "django_paygate.providers.dummy.DummyProvider"},
            "stripe": {
                "BACKEND": "django_paygate.providers.stripe.StripeProvider",
                "OPTIONS": {
                    "secret_key": SECRET_KEY,
                    "publishable_key": PUBLISHABLE_KEY,
                    "webhook_secret": WEBHOOK_SECRET,
                    **stripe_options,
                },
            },
        },
    }


def sign(
    body: bytes, secret: str | list[str] = WEBHOOK_SECRET, timestamp: int | None = None
) -> str:
    """A ``Stripe-Signature`` value, computed independently of the adapter."""
    ts = int(time.time()) if timestamp is None else timestamp
    secrets = [secret] if isinstance(secret, str) else secret
    v1 = [
        hmac.new(s.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest() for s in secrets
    ]
    return ",".join([f"t={ts}", *(f"v1={sig}" for sig in v1)])


def event_body(
    event_type: str, obj: dict[str, Any], *, event_id: str | None = None, **envelope: Any
) -> bytes:
    """A Stripe snapshot event, pretty-printed as Stripe sends it; ``envelope`` overrides."""
    event = {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2025-03-31.basil",
        "created": int(time.time()),
        "type": event_type,
        "livemode": False,
        "data": {"object": obj},
        **envelope,
    }
    return json.dumps(event, indent=2).encode()


# ---------------------------------------------------------------------------
# Provider configurations
# ---------------------------------------------------------------------------


@pytest.fixture
def stripe_options() -> dict[str, Any]:
    """Options of the mocked "stripe" alias (tests may change them before use)."""
    return {"api_base": MOCK_API, "max_network_retries": 0, "timeout": 5}


@pytest.fixture
def stripe_provider(settings: Any, stripe_options: dict[str, Any]) -> StripeProvider:
    settings.PAYGATE = paygate_setting(**stripe_options)
    provider = get_provider("stripe")
    assert isinstance(provider, StripeProvider)
    return provider


@pytest.fixture(autouse=True)
def _no_retry_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's retry backoff (0.5 s doubling) would only slow the tests down."""
    import stripe._http_client

    monkeypatch.setattr(stripe._http_client.HTTPClient, "_sleep_time_seconds", lambda self, n: 0)


# ---------------------------------------------------------------------------
# localstripe
# ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def localstripe_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a localstripe started for this session."""
    binary = Path(sys.executable).with_name("localstripe")
    if not binary.exists():
        pytest.fail(f"localstripe is not installed next to {sys.executable}")
    port = _free_port()
    log = (tmp_path_factory.mktemp("localstripe") / "localstripe.log").open("wb")
    process = subprocess.Popen(
        [str(binary), "--port", str(port), "--from-scratch"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"localstripe did not start on port {port}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


def localstripe_options(url: str) -> dict[str, Any]:
    """What localstripe needs: no automatic_payment_methods, no description, and
    the payment method attached with an update before confirming."""
    return {
        "api_base": url,
        "automatic_payment_methods": False,
        "payment_method_types": ["card"],
        "send_description": False,
        "attach_before_confirm": True,
        "max_network_retries": 0,
        "timeout": 10,
    }


@pytest.fixture
def local_stripe(settings: Any, localstripe_url: str) -> StripeProvider:
    settings.PAYGATE = paygate_setting(**localstripe_options(localstripe_url))
    provider = get_provider("stripe")
    assert isinstance(provider, StripeProvider)
    return provider


# ---------------------------------------------------------------------------
# A stateful Stripe on `responses`
# ---------------------------------------------------------------------------

FAULTS = ("timeout", "connection", "500", "429", "idempotency", "in_progress", "card_declined")

#: Stripe's answer while another request with the same Idempotency-Key is running.
IN_PROGRESS_MESSAGE = (
    "There is currently another in-progress request using this Idempotent Key (that "
    "probably means you submitted twice, and the other request is still going through): "
    "{key}. Please try again later."
)


@dataclass
class Fault:
    route: str
    kind: str
    after: bool


@dataclass
class FakeStripe:
    """Enough of Stripe's v1 API for the adapter, with Stripe's idempotency rules."""

    rsps: responses.RequestsMock
    base: str = MOCK_API
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Before 2025-03-31.basil, a partial capture or a cancel of an authorization
    #: creates a Refund of what it released, counted in the charge's amount_refunded.
    releases_as_refunds: bool = False
    #: Idempotency keys of the POSTs being executed right now (threads), and how many
    #: concurrent requests with one of them were answered 409.
    in_flight: set[str] = field(default_factory=set)
    in_progress_answers: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Set by a test to hold each refund's execution until it is set (or 5 s pass).
    hold_refunds: threading.Event | None = None
    #: Idempotency-Key -> (route, params, status, body), as Stripe stores them.
    answers: dict[str, tuple[str, list[tuple[str, str]], int, dict[str, Any]]] = field(
        default_factory=dict
    )
    counter: int = 0

    def __post_init__(self) -> None:
        b = re.escape(self.base)
        pi = r"(?P<id>pi_[A-Za-z0-9]+)"
        routes = [
            ("POST", rf"{b}/v1/payment_intents$", "create", self._create),
            ("GET", rf"{b}/v1/payment_intents/{pi}(\?.*)?$", "retrieve", self._retrieve),
            ("POST", rf"{b}/v1/payment_intents/{pi}$", "update", self._update),
            ("POST", rf"{b}/v1/payment_intents/{pi}/confirm$", "confirm", self._confirm),
            ("POST", rf"{b}/v1/payment_intents/{pi}/capture$", "capture", self._capture),
            ("POST", rf"{b}/v1/payment_intents/{pi}/cancel$", "cancel", self._cancel),
            ("POST", rf"{b}/v1/refunds$", "refund", self._refund),
            ("GET", rf"{b}/v1/refunds(\?.*)?$", "list_refunds", self._list_refunds),
        ]
        for method, pattern, route, handler in routes:
            self.rsps.add_callback(
                method, re.compile(pattern), callback=self._dispatch(route, pattern, handler)
            )

    # -- controls ------------------------------------------------------------------

    def fail_next(self, route: str, kind: str, *, after: bool = False) -> None:
        """The next call of ``route`` fails with ``kind``; ``after``: once the effect happened."""
        assert kind in FAULTS
        self.faults.append(Fault(route, kind, after))

    @property
    def calls(self) -> list[Any]:
        return list(self.rsps.calls)

    def new_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_fake{self.counter:06d}"

    # -- plumbing ----------------------------------------------------------------------

    def _dispatch(self, route: str, pattern: str, handler: Any) -> Any:
        def callback(request: requests.PreparedRequest) -> Any:
            match = re.match(pattern, str(request.url))
            assert match is not None
            body = request.body or ""
            params = parse_qsl(body if isinstance(body, str) else body.decode())
            params += parse_qsl(urlsplit(str(request.url)).query)
            fault = next((f for f in self.faults if f.route == route), None)
            if fault is not None:
                self.faults.remove(fault)
                if fault.kind == "in_progress":
                    key = request.headers.get("Idempotency-Key") or ""
                    message = IN_PROGRESS_MESSAGE.format(key=key)
                    return self._error(409, "idempotency_error", message)
                if not fault.after:
                    return self._fault(fault.kind)
            key = request.headers.get("Idempotency-Key")
            with self.lock:
                running = request.method == "POST" and key in self.in_flight
                if request.method == "POST" and key and not running:
                    self.in_flight.add(key)
            if running:  # as Stripe: a concurrent request with a key still being executed
                self.in_progress_answers += 1
                if self.hold_refunds is not None:
                    self.hold_refunds.set()  # the race happened: the held request goes on
                message = IN_PROGRESS_MESSAGE.format(key=key)
                return self._error(409, "idempotency_error", message)
            try:
                return self._answer(request, route, key, params, match, handler, fault)
            finally:
                with self.lock:
                    self.in_flight.discard(key or "")

        return callback

    def _answer(
        self,
        request: Any,
        route: str,
        key: str | None,
        params: list[tuple[str, str]],
        match: Any,
        handler: Any,
        fault: Fault | None,
    ) -> Any:
        if request.method == "POST" and key and key in self.answers:
            old_route, old_params, status, answer = self.answers[key]
            if (old_route, sorted(old_params)) != (route, sorted(params)):
                return self._error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same "
                    "parameters they were first used with.",
                )
            result = (status, answer)
        else:
            result = handler(match.groupdict().get("id"), dict(params), params)
            if request.method == "POST" and key:
                self.answers[key] = (route, params, *result)
        if fault is not None:
            return self._fault(fault.kind)
        status, answer = result
        return status, {"Request-Id": f"req_{self.counter}"}, json.dumps(answer)

    def _fault(self, kind: str) -> Any:
        if kind == "timeout":
            return requests.exceptions.ReadTimeout("Read timed out.")
        if kind == "connection":
            return requests.exceptions.ConnectionError("Connection refused.")
        if kind == "500":
            return self._error(500, "api_error", "An unknown error occurred.")
        if kind == "429":
            return self._error(429, "invalid_request_error", "Too many requests.", "rate_limit")
        if kind == "idempotency":
            return self._error(400, "idempotency_error", "Keys for idempotent requests ...")
        return self._error(
            402,
            "card_error",
            "Your card has insufficient funds.",
            "card_declined",
            decline_code="insufficient_funds",
        )

    @staticmethod
    def _error(status: int, kind: str, message: str, code: str = "", **more: Any) -> Any:
        error = {"type": kind, "message": message, **({"code": code} if code else {}), **more}
        return status, {"Request-Id": "req_error"}, json.dumps({"error": error})

    # -- resources -----------------------------------------------------------------------

    def _create(self, _id: Any, p: dict[str, str], raw: list[tuple[str, str]]) -> Any:
        pid = self.new_id("pi")
        metadata = {k[9:-1]: v for k, v in raw if k.startswith("metadata[")}
        intent = {
            "id": pid,
            "object": "payment_intent",
            "amount": int(p["amount"]),
            "amount_received": 0,
            "currency": p["currency"],
            "capture_method": p.get("capture_method", "automatic_async"),
            "client_secret": f"{pid}_secret_{uuid.uuid4().hex[:12]}",
            "status": "requires_payment_method",
            "metadata": metadata,
            "latest_charge": None,
            "last_payment_error": None,
            "next_action": None,
            "payment_method": None,
        }
        self.intents[pid] = intent
        return 200, intent

    def _get(self, pid: str) -> dict[str, Any] | None:
        return self.intents.get(pid)

    def _retrieve(self, pid: str, p: dict[str, str], raw: Any) -> Any:
        intent = self._get(pid)
        if intent is None:
            return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}}
        if ("expand[0]", "latest_charge") in raw and intent["latest_charge"] in self.charges:
            return 200, {**intent, "latest_charge": self.charges[intent["latest_charge"]]}
        return 200, intent

    def _update(self, pid: str, p: dict[str, str], raw: Any) -> Any:
        intent = self.intents[pid]
        if "payment_method" in p:
            intent["payment_method"] = p["payment_method"]
            intent["status"] = "requires_confirmation"
        return 200, intent

    def _confirm(self, pid: str, p: dict[str, str], raw: Any) -> Any:
        intent = self.intents[pid]
        pm = p.get("payment_method") or intent["payment_method"]
        intent["payment_method"] = pm
        if pm == "pm_card_threeDSecure2Required" and intent["status"] != "requires_action":
            intent["status"] = "requires_action"
            intent["next_action"] = {
                "type": "redirect_to_url",
                "redirect_to_url": {"url": "https://hooks.stripe.test/3ds", "return_url": "x"},
            }
            return 200, intent
        intent["next_action"] = None
        charge = self.new_id("ch")
        intent["latest_charge"] = charge
        manual = intent["capture_method"] == "manual"
        self.charges[charge] = {
            "id": charge,
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": 0 if manual else intent["amount"],
            "amount_refunded": 0,
            "captured": not manual,
            "refunded": False,
            "currency": intent["currency"],
            "payment_intent": pid,
        }
        if manual:
            intent["status"] = "requires_capture"
        else:
            intent["status"] = "succeeded"
            intent["amount_received"] = intent["amount"]
        return 200, intent

    def _release(self, intent: dict[str, Any], amount: int) -> None:
        """What Stripe did before basil: a Refund of the released part of the authorization."""
        charge = self.charges[intent["latest_charge"]]
        rid = self.new_id("re")
        self.refunds[rid] = {
            "id": rid,
            "object": "refund",
            "amount": amount,
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "charge": charge["id"],
            "status": "succeeded",
            "reason": None,
            "metadata": {},
            "created": int(time.time()) + self.counter,
        }
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]

    def _capture(self, pid: str, p: dict[str, str], raw: Any) -> Any:
        intent = self.intents[pid]
        if intent["status"] != "requires_capture":
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "payment_intent_unexpected_state",
                }
            }
        captured = int(p.get("amount_to_capture", intent["amount"]))
        intent["amount_received"] = captured
        intent["status"] = "succeeded"
        charge = self.charges.get(intent["latest_charge"])
        if charge is not None:
            charge.update(amount_captured=captured, captured=True)
            if self.releases_as_refunds and captured < intent["amount"]:
                self._release(intent, intent["amount"] - captured)
        return 200, intent

    def _cancel(self, pid: str, p: dict[str, str], raw: Any) -> Any:
        intent = self.intents[pid]
        if self.releases_as_refunds and intent["status"] == "requires_capture":
            self._release(intent, intent["amount"])
        intent["status"] = "canceled"
        return 200, intent

    def _refund(self, _id: Any, p: dict[str, str], raw: list[tuple[str, str]]) -> Any:
        if self.hold_refunds is not None:
            self.hold_refunds.wait(timeout=5)
        intent = self.intents[p["payment_intent"]]
        rid = self.new_id("re")
        refund = {
            "id": rid,
            "object": "refund",
            "amount": int(p.get("amount", intent["amount_received"])),
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "charge": intent["latest_charge"],
            "status": "succeeded",
            "metadata": {k[9:-1]: v for k, v in raw if k.startswith("metadata[")},
            "created": int(time.time()) + self.counter,
        }
        self.refunds[rid] = refund
        if intent["latest_charge"] in self.charges:
            self.charges[intent["latest_charge"]]["amount_refunded"] += refund["amount"]
        return 200, refund

    def _list_refunds(self, _id: Any, p: dict[str, str], raw: Any) -> Any:
        data = [r for r in self.refunds.values() if r["payment_intent"] == p.get("payment_intent")]
        return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/refunds"}

    # -- helpers for tests -------------------------------------------------------------

    def add_intent(self, **fields: Any) -> dict[str, Any]:
        """An intent that exists at "Stripe" without us having created it through the adapter."""
        pid = fields.pop("id", None) or self.new_id("pi")
        intent = {
            "id": pid,
            "object": "payment_intent",
            "amount": 1000,
            "amount_received": 0,
            "currency": "usd",
            "capture_method": "automatic_async",
            "client_secret": f"{pid}_secret_{uuid.uuid4().hex[:12]}",
            "status": "requires_payment_method",
            "metadata": {},
            "latest_charge": None,
            "last_payment_error": None,
            "next_action": None,
            "payment_method": None,
            **fields,
        }
        self.intents[pid] = intent
        return intent


@pytest.fixture
def fake_stripe(stripe_provider: StripeProvider) -> Iterator[FakeStripe]:
    """A stateful fake Stripe behind ``responses``; any other HTTP call fails."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeStripe(rsps)


def assert_stripe_headers(call: Any, *, key: str | None) -> None:
    """Every call: our secret key as Bearer, a pinned Stripe-Version; POSTs: exactly ``key``."""
    headers = call.request.headers
    assert headers["Authorization"] == f"Bearer {SECRET_KEY}"
    assert headers.get("Stripe-Version")
    if call.request.method == "POST":
        assert headers.get("Idempotency-Key") == key
    else:
        assert "Idempotency-Key" not in headers
