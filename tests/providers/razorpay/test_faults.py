"""Transport faults: timeouts, 409, HTML error pages, hangs.

No SDK exception escapes, nothing is printed.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from django_paygate import services
from django_paygate.exceptions import (
    ProviderError,
    ProviderIdempotencyError,
    ProviderUnavailable,
)
from django_paygate.models import Refund, get_payment_model
from django_paygate.providers import get_provider
from django_paygate.providers.razorpay import RazorpayProvider

from .conftest import FakeRazorpay, paygate_setting

pytestmark = pytest.mark.django_db(transaction=True)


def paid(fake: FakeRazorpay, amount: int = 49900) -> Any:
    payment = services.create_payment(amount=amount, currency="INR", provider="razorpay")
    checkout = fake.checkout(payment.provider_payment_id, "captured")
    return services.confirm_payment(payment, **checkout)


def chain(exc: BaseException | None) -> list[BaseException]:
    found = []
    while exc is not None and exc not in found:
        found.append(exc)
        exc = exc.__cause__ or exc.__context__
    return found


def refund_posts(fake: FakeRazorpay) -> list[dict[str, Any]]:
    return fake.calls("payment.refund")


# -- refunds: the outcome is unknown, the retry is safe ------------------------------


def test_read_timeout_after_the_refund_was_made_retry_sends_the_same_key(
    fake: FakeRazorpay, capsys: Any
) -> None:
    payment = paid(fake)
    fake.fail_next("payment.refund", "timeout", after=True)
    with pytest.raises(ProviderUnavailable, match="no answer in time"):
        services.refund_payment(payment, amount=10000)
    refund = Refund.objects.get(payment_id=payment.pk)
    assert (refund.status, refund.provider_refund_id) == ("pending", None)
    assert len(fake.refunds) == 1  # Razorpay did make it

    # Razorpay's refund list does not show it yet: sync sends it again, same key, same body.
    fake.hidden_refunds.update(fake.refunds)
    payment = services.sync_payment(payment)
    first, retry = refund_posts(fake)
    assert retry["headers"]["X-Refund-Idempotency"] == first["headers"]["X-Refund-Idempotency"]
    assert retry["headers"]["X-Refund-Idempotency"] == refund.idempotency_key
    assert retry["body"] == first["body"]
    assert len(fake.refunds) == 1  # one refund exists at Razorpay
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert refund.provider_refund_id == next(iter(fake.refunds))
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 10000)
    assert capsys.readouterr().out == ""


def test_read_timeout_then_sync_finds_the_refund_by_its_notes(fake: FakeRazorpay) -> None:
    payment = paid(fake)
    fake.fail_next("payment.refund", "timeout", after=True)
    with pytest.raises(ProviderUnavailable):
        services.refund_payment(payment, amount=10000)
    payment = services.sync_payment(payment)
    assert len(refund_posts(fake)) == 1  # found in the list: nothing to resend
    refund = Refund.objects.get(payment_id=payment.pk)
    assert refund.status == "succeeded"
    assert (payment.status, payment.amount_refunded) == ("partially_refunded", 10000)
    assert len(fake.refunds) == 1


def test_read_timeout_before_razorpay_saw_the_refund(fake: FakeRazorpay) -> None:
    payment = paid(fake)
    fake.fail_next("payment.refund", "timeout")
    with pytest.raises(ProviderUnavailable):
        services.refund_payment(payment, amount=10000)
    assert fake.refunds == {}
    payment = services.sync_payment(payment)
    assert len(fake.refunds) == 1
    assert Refund.objects.get(payment_id=payment.pk).status == "succeeded"


def test_409_request_in_progress_is_retryable(fake: FakeRazorpay) -> None:
    payment = paid(fake)
    fake.fail_next("payment.refund", "409")
    with pytest.raises(ProviderUnavailable, match=r"409.*in progress"):
        services.refund_payment(payment, amount=10000)
    refund = Refund.objects.get(payment_id=payment.pk)
    assert refund.status == "pending"  # not failed: the retry may still succeed
    services.sync_payment(payment)
    refund.refresh_from_db()
    assert refund.status == "succeeded"
    assert len(fake.refunds) == 1


def test_same_key_with_another_body_needs_review(fake: FakeRazorpay) -> None:
    payment = paid(fake)
    fake.fail_next("payment.refund", "timeout", after=True)
    with pytest.raises(ProviderUnavailable):
        services.refund_payment(payment, amount=10000)
    fake.hidden_refunds.update(fake.refunds)
    key = next(iter(fake.refund_keys))
    first_body, refund_id = fake.refund_keys[key]
    fake.refund_keys[key] = ({**first_body, "amount": 1}, refund_id)
    with pytest.raises(ProviderIdempotencyError, match="Different request"):
        services.sync_payment(payment)
    payment.refresh_from_db()
    assert payment.needs_review
    assert Refund.objects.get(payment_id=payment.pk).status == "pending"


def test_a_refusal_fails_the_refund(fake: FakeRazorpay) -> None:
    payment = paid(fake)
    # Someone refunded most of it in the Dashboard meanwhile.
    razorpay_payment = next(iter(fake.payments.values()))
    razorpay_payment["amount_refunded"] = 45000
    with pytest.raises(ProviderError, match="greater than amount captured") as err:
        services.refund_payment(payment, amount=10000)
    assert not isinstance(err.value, ProviderUnavailable)
    refund = Refund.objects.get(payment_id=payment.pk)
    assert refund.status == "failed"
    assert "greater than amount captured" in refund.failure_reason


# -- every kind of transport trouble, on every kind of call ----------------------------


FAULTS = ["timeout", "connection", "409", "html502", "json500", "gateway"]


@pytest.mark.parametrize("kind", FAULTS)
def test_faults_on_create_leave_a_pending_payment(
    fake: FakeRazorpay, kind: str, capsys: Any
) -> None:
    fake.fail_next("order.create", kind)
    with pytest.raises(ProviderUnavailable) as err:
        services.create_payment(amount=49900, currency="INR", provider="razorpay")
    payment = get_payment_model().objects.get()
    assert (payment.status, payment.provider_payment_id) == ("pending", None)
    # No requests exception (it holds the request and its Authorization header) is chained.
    assert not any(isinstance(e, requests.RequestException) for e in chain(err.value))
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("kind", FAULTS)
def test_faults_on_capture_keep_the_payment_pending(
    fake: FakeRazorpay, kind: str, capsys: Any
) -> None:
    payment = services.create_payment(amount=49900, currency="INR", provider="razorpay")
    checkout = fake.checkout(payment.provider_payment_id, "authorized")
    fake.fail_next("payment.capture", kind)
    with pytest.raises(ProviderUnavailable):
        services.confirm_payment(payment, **checkout)
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("kind", FAULTS)
def test_faults_on_sync_change_nothing(fake: FakeRazorpay, kind: str, capsys: Any) -> None:
    payment = paid(fake)
    fake.fail_next("order.payments", kind)
    with pytest.raises(ProviderUnavailable):
        services.sync_payment(payment)
    payment.refresh_from_db()
    assert payment.status == "succeeded"
    assert capsys.readouterr().out == ""


def test_html_502_is_unavailable_not_a_decode_error(fake: FakeRazorpay) -> None:
    fake.fail_next("order.create", "html502")
    with pytest.raises(ProviderUnavailable, match="HTTP 502 with a body that is not JSON"):
        services.create_payment(amount=49900, currency="INR", provider="razorpay")


@pytest.mark.parametrize("status", [200, 400, 403])
def test_html_with_any_status_is_unavailable(
    fake: FakeRazorpay, status: int, monkeypatch: Any, capsys: Any
) -> None:
    from .conftest import HTML_502

    monkeypatch.setattr(
        FakeRazorpay,
        "_fault",
        staticmethod(lambda kind: (status, {"Content-Type": "text/html"}, HTML_502)),
    )
    fake.fail_next("order.list", "html")
    with pytest.raises(ProviderUnavailable, match=f"HTTP {status} with a body that is not JSON"):
        services.create_payment(amount=49900, currency="INR", provider="razorpay")
    assert capsys.readouterr().out == ""


def test_unexpected_sdk_errors_do_not_escape(fake: FakeRazorpay, monkeypatch: Any) -> None:
    provider = get_provider("razorpay")
    assert isinstance(provider, RazorpayProvider)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("error")

    monkeypatch.setattr(provider.client.order, "all", broken)
    with pytest.raises(ProviderUnavailable, match="KeyError"):
        services.create_payment(amount=49900, currency="INR", provider="razorpay")


def test_every_call_carries_the_configured_timeout(settings: Any) -> None:
    import responses

    settings.PAYGATE = paygate_setting(timeout=(3.05, 7))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeRazorpay(rsps)
        payment = paid(fake)
        services.refund_payment(payment, amount=100)
        services.sync_payment(payment)
        kwargs = [call.request.req_kwargs for call in rsps.calls]
    assert len(kwargs) >= 7
    assert all(k["timeout"] == (3.05, 7.0) for k in kwargs)


# -- a server that accepts and never answers -------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[str]:
    """``http://127.0.0.1:<port>``: accepts connections, reads, never answers.

    Held connections are released after 30 s so a broken client cannot hang the
    suite; the assertions below do not depend on that.
    """
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    timer = threading.Timer(30, stop.set)
    timer.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        timer.cancel()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def test_a_hang_ends_as_unavailable_with_the_timeout_passed(
    settings: Any, silent_server: str, monkeypatch: Any, capsys: Any
) -> None:
    settings.PAYGATE = paygate_setting(api_base=silent_server, timeout=0.3)
    provider = get_provider("razorpay")
    assert isinstance(provider, RazorpayProvider)
    seen: list[dict[str, Any]] = []
    sent = requests.Session.send

    def record(self: requests.Session, request: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return sent(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", record)
    with pytest.raises(ProviderUnavailable, match=r"no answer in time \(ReadTimeout\)"):
        services.create_payment(amount=49900, currency="INR", provider="razorpay")
    assert [k["timeout"] for k in seen] == [0.3]
    assert capsys.readouterr().out == ""
    payment = get_payment_model().objects.get()
    assert payment.status == "pending"


def test_the_session_applies_the_timeout_when_a_caller_forgets(
    settings: Any, silent_server: str
) -> None:
    settings.PAYGATE = paygate_setting(api_base=silent_server, timeout=0.3)
    provider = get_provider("razorpay")
    assert isinstance(provider, RazorpayProvider)
    from django_paygate.providers.base import TransportFailure

    with pytest.raises(TransportFailure, match="ReadTimeout"):
        provider.session.get(f"{silent_server}/v1/orders")  # no timeout= given
