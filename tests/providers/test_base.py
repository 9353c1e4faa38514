"""What the base offers every adapter: the timestamped-HMAC check, NotSupported."""

from __future__ import annotations

import time
from typing import Any

import pytest

from django_paygate import services
from django_paygate.exceptions import NotSupported, WebhookVerificationError
from django_paygate.models import PaymentEvent
from django_paygate.providers.base import BaseProvider, hmac_sha256_hex, verify_timestamped_hmac
from django_paygate.providers.dummy import DummyProvider
from django_paygate.views.api import error_from_paygate
from tests.factories import PaymentFactory

SECRET = "whsec_base_test_0123456789"
OLD = "whsec_base_test_old_9876543210"
BODY = b'{"id":"evt_1"}'


def header(body: bytes = BODY, *, secret: str = SECRET, at: int | None = None) -> str:
    stamp = int(time.time()) if at is None else at
    return f"t={stamp},v1={hmac_sha256_hex(secret, f'{stamp}.'.encode() + body)}"


def check(value: str, body: bytes | str = BODY, secrets: list[str] | None = None) -> None:
    verify_timestamped_hmac(
        value,
        body,  # type: ignore[arg-type]
        [SECRET, OLD] if secrets is None else secrets,
        tolerance=300,
        provider="acme",
        name="Acme-Signature",
    )


def test_a_signature_by_any_current_secret_passes() -> None:
    check(header())
    check(header(secret=OLD))  # during rotation
    check(f"v1=deadbeef, {header()}")  # several v1 values: any may match
    check(header(), body=BODY.decode())  # a str body is its UTF-8 bytes


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "missing"),
        ("t=1," + "v1=ab," * 700, "too long"),
        (f"v1={'0' * 64}", "malformed timestamp"),
        (f"t=1,t=2,v1={'0' * 64}", "malformed timestamp"),
        ("t=\uff11\uff12,v1=00", "malformed timestamp"),  # full-width digits: not ASCII
        (f"t={int(time.time())}", "no v1 signature"),
        (f"t={int(time.time())}," + "v1=00," * 17, "no v1 signature"),
        (header(at=int(time.time()) - 3600), "timestamp too far in the past"),
        (header(at=int(time.time()) + 3600), "timestamp too far in the future"),
        (header(secret="whsec_someone_else"), "no signature matches"),
        (header(body=b"{}"), "no signature matches"),
    ],
)
def test_what_is_refused_and_why(value: str, problem: str) -> None:
    with pytest.raises(WebhookVerificationError) as caught:
        check(value)
    message = str(caught.value)
    assert message == f"Acme-Signature: {problem}."
    assert caught.value.provider == "acme"
    assert SECRET not in message
    assert OLD not in message


def test_no_secret_configured_is_refused() -> None:
    with pytest.raises(WebhookVerificationError, match="no webhook_secret is configured"):
        check(header(), secrets=[])


# -- operations a provider does not offer -------------------------------------------


class NoCapturePay(DummyProvider):
    """A provider that charges at once: it can neither capture later nor cancel."""

    name = "NoCapturePay"
    capture_payment = BaseProvider.capture_payment  # type: ignore[assignment]
    cancel_payment = BaseProvider.cancel_payment  # type: ignore[assignment]


@pytest.fixture
def no_capture(settings: Any) -> None:
    settings.PAYGATE = {
        "PROVIDERS": {"nocap": {"BACKEND": "tests.providers.test_base.NoCapturePay"}},
        "DEFAULT_PROVIDER": "nocap",
    }


@pytest.mark.django_db
@pytest.mark.usefixtures("no_capture")
@pytest.mark.parametrize("verb", ["capture_payment", "cancel_payment"])
def test_an_operation_the_provider_lacks_is_refused_as_not_supported(verb: str) -> None:
    payment = PaymentFactory(
        provider="nocap",
        status="authorized",
        provider_payment_id="dummy_x",
        capture_method="manual",
    )
    events = PaymentEvent.objects.filter(payment_id=payment.pk).count()
    with pytest.raises(NotSupported, match="NoCapturePay cannot") as caught:
        getattr(services, verb)(payment)
    payment.refresh_from_db()
    assert payment.status == "authorized"
    assert PaymentEvent.objects.filter(payment_id=payment.pk).count() == events
    # The JSON API answers it as the caller's mistake, not a server error.
    error = error_from_paygate(caught.value)
    assert (error.status, error.code) == (400, "not_supported")
