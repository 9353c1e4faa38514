"""A provider that needs no network and no keys, and behaves like a real one.

Test cards (``payment_method=`` on confirm):

=====================  =================================================
``4242424242424242``   succeeds (``authorized`` when capture is manual)
``4000000000000002``   declined with ``card_declined``
``4000002500003155``   ``requires_action``; the next confirm succeeds
anything else          declined with ``incorrect_number``
=====================  =================================================

It behaves like a remote service. Its "remote" payments, refunds and
idempotent answers are kept, with the default ``"store": "database"``, in its
own table (:class:`~django_paygate.models.DummyRemoteObject`: the fake
service's storage, not our payment tables, which only services and webhooks
write), so restarts, several processes and ``manage.py shell`` see the same
payments; ``"store": "cache"`` keeps them in a Django cache (shared by every
process when the cache is), ``"store": "memory"`` in this instance only. Every
change of a remote payment happens under a lock on it (a row lock, a cache
lock), so two processes refunding the same payment cannot refund more than
was captured: like a real provider, it refuses an over-refund.

It honours idempotency keys like Stripe (same key, same answer), signs its
webhook events with its ``webhook_secret`` in Stripe's ``t=…,v1=…`` scheme
(header ``Paygate-Dummy-Signature``), and records every event it would send in
:attr:`DummyProvider.sent_events`, so the whole webhook path runs in demos and
tests. With ``"deliver_webhooks": True`` it POSTs them instead to the site's
own webhook URL, like ``stripe listen``: from a background thread, after the
response of the request that caused them, with bounded retries.
:meth:`DummyProvider.fail_next` injects faults, before or after the remote
side took effect, to rehearse timeouts and crashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast
from urllib.parse import urlsplit

from django.core.signals import request_finished, request_started

from django_paygate import conf
from django_paygate.conf import paygate_settings
from django_paygate.exceptions import (
    InvalidTransition,
    PaygateError,
    ProviderError,
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
    decode_json_body,
    hmac_sha256_hex,
    integer,
    is_bool,
    is_int,
    is_number,
    is_one_of,
    is_string,
    mapping,
    text,
)
from django_paygate.states import DisputeStatus, PaymentStatus, RefundStatus

if TYPE_CHECKING:
    from django_paygate.models import AbstractPayment, Refund

CARD_SUCCEEDS = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_REQUIRES_ACTION = "4000002500003155"

SIGNATURE_HEADER = "Paygate-Dummy-Signature"
DEFAULT_WEBHOOK_SECRET = "dummy-webhook-secret"

#: The calls that take money, refused in production (see :func:`refused_in_production`).
CHARGES = frozenset({"create_payment", "confirm_payment", "capture_payment"})

#: Where the remote state lives (the ``store`` option).
STORES = ("database", "cache", "memory")

logger = logging.getLogger("django_paygate")

_A = TypeVar("_A", ProviderPayment, ProviderRefund)


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

    def to_json(self) -> dict[str, Any]:
        state = asdict(self)
        state["status"] = self.status.value
        state["refunds"] = [_refund_state(r) for r in self.refunds.values()]
        return state

    @classmethod
    def from_json(cls, state: Mapping[str, Any]) -> _Remote:
        refunds = [_refund_from_state(r) for r in state.get("refunds") or []]
        return cls(
            **{k: v for k, v in state.items() if k not in {"status", "refunds"}},
            status=PaymentStatus(state["status"]),
            refunds={r.provider_refund_id: r for r in refunds},
        )

    @property
    def refunded(self) -> int:
        return sum(r.amount for r in self.refunds.values() if r.status != RefundStatus.FAILED)


def _refund_state(refund: ProviderRefund) -> dict[str, Any]:
    return {
        "provider_refund_id": refund.provider_refund_id,
        "status": refund.status.value,
        "amount": refund.amount,
        "currency": refund.currency,
        "provider_payment_id": refund.provider_payment_id,
        "our_refund_id": refund.our_refund_id,
    }


def _refund_from_state(state: Mapping[str, Any]) -> ProviderRefund:
    return ProviderRefund(**{**state, "status": RefundStatus(state["status"])})


def _answer_state(answer: ProviderPayment | ProviderRefund) -> dict[str, Any]:
    if isinstance(answer, ProviderRefund):
        return {"refund": _refund_state(answer)}
    state = {
        "provider_payment_id": answer.provider_payment_id,
        "status": answer.status.value if answer.status else None,
        "amount": answer.amount,
        "currency": answer.currency,
        "amount_captured": answer.amount_captured,
        "failure_code": answer.failure_code,
        "failure_message": answer.failure_message,
        "next_action": dict(answer.next_action) if answer.next_action else None,
        "refunds": [_refund_state(r) for r in answer.refunds],
        "our_payment_id": answer.our_payment_id,
    }
    return {"payment": state}


def _answer_from_state(state: Mapping[str, Any]) -> ProviderPayment | ProviderRefund:
    if "refund" in state:
        return _refund_from_state(state["refund"])
    p = dict(state["payment"])
    return ProviderPayment(
        **{
            **p,
            "status": PaymentStatus(p["status"]) if p["status"] else None,
            "refunds": tuple(_refund_from_state(r) for r in p["refunds"]),
        }
    )


@dataclass
class _Fault:
    method: str
    error: PaygateError
    after: bool


# -- where the remote state lives ----------------------------------------------------


class _Locked:
    """One remote payment, held under its store's lock while a call changes it."""

    def __init__(self, store: _Store, remote_id: str, remote: _Remote | None) -> None:
        self.store, self.remote_id, self.remote = store, remote_id, remote

    def answer(self, key: str) -> ProviderPayment | ProviderRefund | None:
        state = self.store.read("answer", _answer_key(key))
        return _answer_from_state(state) if state is not None else None

    def remember(self, key: str, answer: ProviderPayment | ProviderRefund) -> None:
        self.store.write("answer", _answer_key(key), _answer_state(answer))


def _answer_key(key: str) -> str:
    return key if len(key) <= 200 else hashlib.sha256(key.encode()).hexdigest()


class _Store:
    """Keeps JSON documents by (kind, id): ``payment`` and ``answer``.

    :meth:`locked` holds one payment's lock (it serializes every call that
    touches that payment, its answers included) and saves it on the way out.
    """

    def __init__(self, alias: str) -> None:
        self.alias = alias

    @contextlib.contextmanager
    def locked(self, remote_id: str) -> Iterator[_Locked]:
        with self.lock(remote_id):
            state = self.read("payment", remote_id)
            held = _Locked(self, remote_id, _Remote.from_json(state) if state else None)
            before = state
            yield held
            if held.remote is not None and held.remote.to_json() != before:
                self.write("payment", remote_id, held.remote.to_json())

    def lock(self, remote_id: str) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def read(self, kind: str, remote_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def write(self, kind: str, remote_id: str, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def payment_ids(self) -> list[str]:
        raise NotImplementedError

    def clear(self) -> None:
        raise NotImplementedError


class _MemoryStore(_Store):
    def __init__(self, alias: str) -> None:
        super().__init__(alias)
        self._lock = threading.RLock()
        self._docs: dict[tuple[str, str], str] = {}

    def lock(self, remote_id: str) -> contextlib.AbstractContextManager[Any]:
        return self._lock

    def read(self, kind: str, remote_id: str) -> dict[str, Any] | None:
        raw = self._docs.get((kind, remote_id))
        return json.loads(raw) if raw is not None else None

    def write(self, kind: str, remote_id: str, state: dict[str, Any]) -> None:
        self._docs[(kind, remote_id)] = json.dumps(state)

    def payment_ids(self) -> list[str]:
        return [rid for kind, rid in list(self._docs) if kind == "payment"]

    def clear(self) -> None:
        with self._lock:
            self._docs.clear()


class _DatabaseStore(_Store):
    """Rows of :class:`~django_paygate.models.DummyRemoteObject`; the lock is a row lock."""

    @contextlib.contextmanager
    def lock(self, remote_id: str) -> Iterator[None]:
        from django.db import transaction

        from django_paygate.models import DummyRemoteObject

        with transaction.atomic():
            # The row is the lock: made once (a racing maker finds it), then locked.
            DummyRemoteObject.objects.get_or_create(
                provider=self.alias, kind="lock", remote_id=remote_id
            )
            DummyRemoteObject.objects.select_for_update().filter(
                provider=self.alias, kind="lock", remote_id=remote_id
            ).get()
            yield

    def read(self, kind: str, remote_id: str) -> dict[str, Any] | None:
        from django_paygate.models import DummyRemoteObject

        row = (
            DummyRemoteObject.objects.filter(provider=self.alias, kind=kind, remote_id=remote_id)
            .values_list("state", flat=True)
            .first()
        )
        return dict(row) if row is not None else None

    def write(self, kind: str, remote_id: str, state: dict[str, Any]) -> None:
        from django_paygate.models import DummyRemoteObject

        DummyRemoteObject.objects.update_or_create(
            provider=self.alias, kind=kind, remote_id=remote_id, defaults={"state": state}
        )

    def payment_ids(self) -> list[str]:
        from django_paygate.models import DummyRemoteObject

        rows = DummyRemoteObject.objects.filter(provider=self.alias, kind="payment")
        return list(rows.order_by("id").values_list("remote_id", flat=True))

    def clear(self) -> None:
        from django_paygate.models import DummyRemoteObject

        DummyRemoteObject.objects.filter(provider=self.alias).delete()


class _CacheStore(_Store):
    """Keys of a Django cache; the lock is a ``cache.add`` key (atomic on shared caches)."""

    #: How long a lock may be held before it is considered abandoned (a crashed process).
    LOCK_TIMEOUT = 30

    def __init__(self, alias: str, cache_alias: str) -> None:
        super().__init__(alias)
        self.cache_alias = cache_alias

    @property
    def cache(self) -> Any:
        from django.core.cache import caches

        return caches[self.cache_alias]

    def _key(self, kind: str, remote_id: str) -> str:
        digest = hashlib.sha256(remote_id.encode()).hexdigest()[:40]
        return f"paygate:dummy:{self.alias}:{kind}:{digest}"

    @contextlib.contextmanager
    def lock(self, remote_id: str) -> Iterator[None]:
        key, token = self._key("lock", remote_id), uuid.uuid4().hex
        deadline = time.monotonic() + self.LOCK_TIMEOUT
        while not self.cache.add(key, token, timeout=self.LOCK_TIMEOUT):
            if time.monotonic() > deadline:
                raise ProviderUnavailable("The dummy provider is busy.", provider=self.alias)
            time.sleep(0.005)
        try:
            yield
        finally:
            if self.cache.get(key) == token:
                self.cache.delete(key)

    def read(self, kind: str, remote_id: str) -> dict[str, Any] | None:
        raw = self.cache.get(self._key(kind, remote_id))
        return json.loads(raw) if raw is not None else None

    def write(self, kind: str, remote_id: str, state: dict[str, Any]) -> None:
        if kind == "payment" and self.read(kind, remote_id) is None:
            with self.lock("__index__"):
                ids = self.payment_ids()
                self.cache.set(self._key("index", ""), json.dumps([*ids, remote_id]), None)
        self.cache.set(self._key(kind, remote_id), json.dumps(state), None)

    def payment_ids(self) -> list[str]:
        raw = self.cache.get(self._key("index", ""))
        return list(json.loads(raw)) if raw else []

    def clear(self) -> None:
        keys = [self._key("index", "")]
        for remote_id in self.payment_ids():
            keys += [self._key("payment", remote_id), self._key("lock", remote_id)]
        self.cache.delete_many(keys)  # answers expire with the cache's own policy


class _RemoteView(Mapping[str, _Remote]):
    """Read-only ``{remote id: remote payment}`` of a store (for tests and the shell)."""

    def __init__(self, store: _Store) -> None:
        self._store = store

    def __getitem__(self, remote_id: str) -> _Remote:
        state = self._store.read("payment", remote_id)
        if state is None:
            raise KeyError(remote_id)
        return _Remote.from_json(state)

    def __iter__(self) -> Iterator[str]:
        return iter(self._store.payment_ids())

    def __len__(self) -> int:
        return len(self._store.payment_ids())


# -- delivering webhook events to the site --------------------------------------------

_request = threading.local()


def _request_began(sender: Any, environ: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
    """Hold the events a request causes until its response has gone out."""
    _request_ended(sender)  # a previous request that never finished: send what it held
    _request.held = []
    _request.base_url = _base_url(environ) if environ else ""


def _request_ended(sender: Any, **kwargs: Any) -> None:
    held: list[tuple[DummyProvider, str, bytes, dict[str, str]]] = (
        getattr(_request, "held", None) or []
    )
    _request.held = None
    for provider, url, body, headers in held:
        provider._deliverer.put(url, body, headers)


def _base_url(environ: Mapping[str, Any]) -> str:
    """``scheme://host[:port]`` of a WSGI request, as the server saw it."""
    scheme = str(environ.get("wsgi.url_scheme") or "http")
    host = environ.get("HTTP_HOST") or (
        f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    )
    return f"{scheme}://{host}" if host and host != ":" else ""


request_started.connect(_request_began, dispatch_uid="paygate_dummy_request_started")
request_finished.connect(_request_ended, dispatch_uid="paygate_dummy_request_finished")


@dataclass(frozen=True)
class Delivery:
    """The outcome of POSTing one event: the last HTTP status (``None``: no answer)."""

    event_id: str
    url: str
    status: int | None
    attempts: int


class _Deliverer:
    """POSTs events from one background thread, with bounded retries and backoff."""

    def __init__(self, provider: DummyProvider) -> None:
        self.provider = provider
        self.queue: queue.Queue[tuple[str, bytes, dict[str, str]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def put(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        self.queue.put((url, body, headers))
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name=f"paygate-dummy-{self.provider.alias}", daemon=True
                )
                self._thread.start()

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.queue.all_tasks_done:
            while self.queue.unfinished_tasks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.queue.all_tasks_done.wait(remaining)
        return True

    def _run(self) -> None:
        while True:
            url, body, headers = self.queue.get()
            try:
                self.provider.deliveries.append(self._post(url, body, headers))
            except Exception:  # never let one event stop the thread
                logger.exception("Dummy webhook delivery to %s failed.", url)
            finally:
                self.queue.task_done()

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> Delivery:
        event_id = str(json.loads(body).get("id", ""))
        retries: int = self.provider.options["webhook_retries"]
        delay: float = self.provider.options["webhook_retry_delay"]
        status: int | None = None
        for attempt in range(1, retries + 2):
            request = urllib.request.Request(
                url,
                data=body,
                method="POST",
                headers={**headers, "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    status = int(response.status)
            except urllib.error.HTTPError as exc:
                status = exc.code
            except (urllib.error.URLError, OSError) as exc:
                status = None
                logger.info("Dummy webhook %s to %s: %s", event_id, url, exc)
            if status is not None and status < 500:
                break  # delivered, or refused for good (a 4xx is not retried)
            if attempt <= retries:
                time.sleep(delay * 2 ** (attempt - 1))
        if status is None or status >= 300:
            logger.warning("Dummy webhook %s to %s answered %s.", event_id, url, status)
        return Delivery(event_id=event_id, url=url, status=status, attempts=attempt)


def refused_in_production() -> bool:
    """Whether the dummy provider refuses to charge: ``DEBUG`` is off, outside a test run,
    and ``PAYGATE["DUMMY_ALLOWED_IN_PRODUCTION"]`` is not ``True``."""
    return conf.in_production() and paygate_settings.DUMMY_ALLOWED_IN_PRODUCTION is not True


PRODUCTION_REFUSAL = (
    "The dummy provider does not charge while DEBUG is False: it accepts test cards. "
    "Configure a real provider in PAYGATE['PROVIDERS'], or, on a staging site, set "
    "PAYGATE['DUMMY_ALLOWED_IN_PRODUCTION'] = True."
)


def _is_checkout_url(value: Any) -> Any:
    """Empty, or a ``str.format`` template that takes ``{payment_id}`` alone."""
    template = is_string()(value)
    try:
        template.format(payment_id=uuid.UUID(int=0))
    except (KeyError, IndexError, AttributeError, ValueError):
        raise ValueError("must be a str.format template with {payment_id} only") from None
    return template


def _is_webhook_url(value: Any) -> Any:
    """Empty, or an ``http(s)://`` URL with a host (kept as given: its trailing slash matters)."""
    url = is_string()(value)
    parts = urlsplit(url)
    if url and not (parts.scheme in {"http", "https"} and parts.hostname):
        raise ValueError("must be an http:// or https:// URL")
    return url


class DummyProvider(BaseProvider):
    name = "Dummy"
    default_options: ClassVar[Mapping[str, Any]] = {
        "webhook_secret": DEFAULT_WEBHOOK_SECRET,
        # A str.format template with {payment_id}; the example project serves one.
        "checkout_url": "",
        # Seconds of tolerance on webhook timestamps.
        "webhook_tolerance": 300,
        # Where the remote state lives: "database", "cache" or "memory".
        "store": "database",
        # The CACHES alias of the "cache" store.
        "cache": "default",
        # POST the signed events to the site's webhook URL (like `stripe listen`).
        "deliver_webhooks": False,
        # Where to POST them; "" derives it from the request that caused them.
        "webhook_url": "",
        # Further attempts after a connection error or a 5xx, with doubling delays.
        "webhook_retries": 4,
        "webhook_retry_delay": 0.5,
    }
    option_checks: ClassVar[Mapping[str, OptionCheck]] = {
        "checkout_url": _is_checkout_url,
        "store": is_one_of(*STORES),
        "cache": is_string(required=True),
        "deliver_webhooks": is_bool,
        "webhook_url": _is_webhook_url,
        "webhook_retries": is_int(0, 10),
        "webhook_retry_delay": is_number(0, 60),
    }

    confirmation_fields: ClassVar[Mapping[str, int]] = {"payment_method": 255, "return_url": 2048}

    def __init__(self, alias: str, **options: Any) -> None:
        super().__init__(alias, **options)
        store = self.options["store"]
        self._store: _Store = (
            _DatabaseStore(alias)
            if store == "database"
            else _CacheStore(alias, self.options["cache"])
            if store == "cache"
            else _MemoryStore(alias)
        )
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._deliverer = _Deliverer(self)
        #: Every call that reached the "remote" side (in this process): (method, key).
        self.calls: list[tuple[str, str]] = []
        #: Every webhook event the provider would have sent: (body, headers). With
        #: ``deliver_webhooks`` the events are POSTed instead, and land in :attr:`deliveries`.
        self.sent_events: list[tuple[bytes, dict[str, str]]] = []
        #: The outcome of every POSTed event (``deliver_webhooks``), in order.
        self.deliveries: list[Delivery] = []

    def check_options(self) -> None:
        """The ``cache`` store needs a cache to live in."""
        from django.conf import settings

        if self.options["store"] == "cache" and self.options["cache"] not in settings.CACHES:
            raise self.option_error("cache", "must name an alias of CACHES for the 'cache' store")

    @property
    def _remote(self) -> Mapping[str, _Remote]:
        """The remote payments, by remote id (read-only; for tests and the shell)."""
        return _RemoteView(self._store)

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

    def reset(self, *, remote: bool = True) -> None:
        """Forget the faults, calls and events of this process, and (``remote``) the
        remote state itself."""
        with self._lock:
            if remote:
                self._store.clear()
            self._faults.clear()
            self.calls.clear()
            self.sent_events.clear()
            self.deliveries.clear()

    def wait_for_deliveries(self, timeout: float = 30) -> bool:
        """Wait until every event handed to the delivery thread was POSTed (or given up);
        whether that happened within ``timeout`` seconds."""
        return self._deliverer.wait(timeout)

    def _call(self, method: str, key: str, remote_id: str, effect: Callable[[_Locked], _A]) -> _A:
        if method in CHARGES and refused_in_production():
            raise ProviderError(PRODUCTION_REFUSAL, provider=self.alias)
        with self._lock:
            fault = next((f for f in self._faults if f.method == method), None)
            if fault is not None:
                self._faults.remove(fault)
            if fault is not None and not fault.after:
                raise fault.error
            self.calls.append((method, key))
        with self._store.locked(remote_id) as held:
            # A stored answer is of the kind this method's effect makes.
            answer = cast("_A | None", held.answer(key) if key else None)
            if answer is None:
                answer = effect(held)
                if key:
                    held.remember(key, answer)
        if fault is not None:
            raise fault.error
        return answer

    def _get(self, held: _Locked) -> _Remote:
        if held.remote is None:
            raise ProviderError("No such payment at the dummy provider.", provider=self.alias)
        return held.remote

    @staticmethod
    def _remote_id(payment: AbstractPayment) -> str:
        return payment.provider_payment_id or ""

    # -- outbound --------------------------------------------------------------

    def create_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        remote_id = f"dummy_{payment.pk.hex}"

        def effect(held: _Locked) -> ProviderPayment:
            if held.remote is None:
                held.remote = _Remote(
                    id=remote_id,
                    our_id=str(payment.pk),
                    amount=payment.amount,
                    currency=payment.currency,
                    manual=payment.capture_method == "manual",
                )
            return self._result(held.remote)

        result = self._call("create_payment", idempotency_key, remote_id, effect)
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
            data["checkout_url"] = self.options["checkout_url"].format(payment_id=payment.pk)
        return data

    def confirm_payment(
        self, payment: AbstractPayment, *, idempotency_key: str, **data: Any
    ) -> ProviderPayment:
        self.clean_confirmation(data)
        card = text(data.get("payment_method"))

        def effect(held: _Locked) -> ProviderPayment:
            remote = self._get(held)
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

        return self._call("confirm_payment", idempotency_key, self._remote_id(payment), effect)

    def capture_payment(
        self, payment: AbstractPayment, *, amount: int, idempotency_key: str
    ) -> ProviderPayment:
        def effect(held: _Locked) -> ProviderPayment:
            remote = self._get(held)
            if remote.status != PaymentStatus.AUTHORIZED:
                raise InvalidTransition(f"Cannot capture a {remote.status} payment.")
            remote.status, remote.captured = PaymentStatus.SUCCEEDED, amount
            self._emit_payment(remote)
            return self._result(remote)

        return self._call("capture_payment", idempotency_key, self._remote_id(payment), effect)

    def cancel_payment(self, payment: AbstractPayment, *, idempotency_key: str) -> ProviderPayment:
        def effect(held: _Locked) -> ProviderPayment:
            remote = self._get(held)
            if remote.status in {PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED}:
                raise InvalidTransition(f"Cannot cancel a {remote.status} payment.")
            remote.status = PaymentStatus.CANCELED
            self._emit_payment(remote)
            return self._result(remote)

        return self._call("cancel_payment", idempotency_key, self._remote_id(payment), effect)

    def refund_payment(
        self, payment: AbstractPayment, refund: Refund, *, idempotency_key: str
    ) -> ProviderRefund:
        refund_id = f"dummy_re_{refund.pk.hex}"

        def effect(held: _Locked) -> ProviderRefund:
            remote = self._get(held)
            if refund_id in remote.refunds:  # the same refund again: its first answer
                return remote.refunds[refund_id]
            if remote.refunded + refund.amount > remote.captured:
                # What a real provider answers; under the lock, so two processes
                # refunding the same payment cannot both get the last of it.
                raise ProviderError(
                    f"The refund ({refund.amount}) exceeds what is left to refund "
                    f"({remote.captured - remote.refunded}).",
                    provider=self.alias,
                )
            result = ProviderRefund(
                provider_refund_id=refund_id,
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

        return self._call("refund_payment", idempotency_key, self._remote_id(payment), effect)

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
        remote = self._remote.get(self._remote_id(payment))
        if remote is None:
            raise ProviderError("No such payment at the dummy provider.", provider=self.alias)
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
        if not self.options["deliver_webhooks"]:
            self.sent_events.append((body, headers))
            return
        url = self.webhook_url()
        if not url:
            logger.warning(
                "Dummy provider %r: no webhook_url and no request to derive it from; "
                "the %s event is not delivered.",
                self.alias,
                event_type,
            )
            self.sent_events.append((body, headers))
            return
        held = getattr(_request, "held", None)
        if held is not None:  # inside a request: after its response has gone out
            held.append((self, url, body, headers))
        else:
            self._deliverer.put(url, body, headers)

    def webhook_url(self) -> str:
        """Where delivered events go: ``webhook_url``, else this alias's webhook path on
        the host of the request being served ("" outside a request)."""
        if self.options["webhook_url"]:
            return self.options["webhook_url"]
        base = (
            getattr(_request, "base_url", "") if getattr(_request, "held", None) is not None else ""
        )
        if not base:
            return ""
        from django.urls import NoReverseMatch, reverse

        try:
            return base + reverse("paygate:webhook", kwargs={"alias": self.alias})
        except NoReverseMatch:
            return ""

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
        self.verify_timestamped_signature(body, headers, SIGNATURE_HEADER)

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> ProviderEvent:
        event = mapping(decode_json_body(body))
        if not text(event.get("id")):
            raise WebhookVerificationError("The event has no id.", provider=self.alias)
        event_type, data = text(event.get("type")), mapping(event.get("data"))
        base = ProviderEvent(
            event_id=event["id"],
            type=event_type,
            our_payment_id=text(data.get("payment_id")) or None,
        )
        kind, _, status = event_type.partition(".")
        part, read = mapping(data.get(kind)), _EVENT_PARTS.get(kind)
        if read is None or not text(part.get("id")):
            return base  # a type or shape we do not act on: stored and ignored
        try:
            return replace(base, **{kind: read(part, status)})
        except ValueError:  # a status we do not know
            return base


def _event_payment(p: Mapping[str, Any], status: str) -> ProviderPayment:
    return ProviderPayment(
        provider_payment_id=text(p.get("id")),
        status=PaymentStatus(status),
        amount=integer(p.get("amount")),
        currency=text(p.get("currency")) or None,
        amount_captured=integer(p.get("amount_captured")),
        failure_code=text(p.get("failure_code")),
    )


def _event_refund(r: Mapping[str, Any], status: str) -> ProviderRefund:
    return ProviderRefund(
        provider_refund_id=text(r.get("id")),
        status=RefundStatus(status),
        amount=integer(r.get("amount")) or 0,
        currency=text(r.get("currency")),
        provider_payment_id=text(r.get("payment")) or None,
        our_refund_id=text(r.get("our_refund_id")) or None,
    )


def _event_dispute(d: Mapping[str, Any], status: str) -> ProviderDispute:
    return ProviderDispute(
        provider_dispute_id=text(d.get("id")),
        status=DisputeStatus(status),
        amount=integer(d.get("amount")) or 0,
        currency=text(d.get("currency")),
        provider_payment_id=text(d.get("payment")) or None,
        reason=text(d.get("reason")),
    )


#: How each kind of event reads its object (``data[kind]``), given the event's status.
_EVENT_PARTS: Mapping[str, Callable[[Mapping[str, Any], str], Any]] = {
    "payment": _event_payment,
    "refund": _event_refund,
    "dispute": _event_dispute,
}
