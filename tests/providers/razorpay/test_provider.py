"""RazorpayProvider on its own: options, amounts, keys and signatures (no database, no HTTP)."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import pytest
import razorpay
from hypothesis import given, settings
from hypothesis import strategies as st

from django_paygate import money
from django_paygate.exceptions import ConfigurationError, InvalidAmount, WebhookVerificationError
from django_paygate.providers.razorpay import (
    RAZORPAY_CURRENCIES,
    RazorpayProvider,
    refund_idempotency_key,
)

from .conftest import KEY_ID, KEY_SECRET, OLD_WEBHOOK_SECRET, WEBHOOK_SECRET, razorpay_options

# Exponents Razorpay documents for its currencies (payments/international-payments.md);
# every supported currency must agree with money.CURRENCY_EXPONENTS.
RAZORPAY_THREE_DECIMAL = {"BHD", "IQD", "JOD", "KWD", "OMR", "TND"}
RAZORPAY_ZERO_DECIMAL = {
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
    "VND", "VUV", "XAF", "XOF", "XPF",
}  # fmt: skip


def make(**overrides: Any) -> RazorpayProvider:
    return RazorpayProvider("rzp", **razorpay_options(**overrides))


# -- configuration --------------------------------------------------------------


def test_needs_key_id_and_secret() -> None:
    with pytest.raises(ConfigurationError, match="key_id"):
        RazorpayProvider("rzp", key_secret=KEY_SECRET)
    with pytest.raises(ConfigurationError, match="key_secret"):
        RazorpayProvider("rzp", key_id=KEY_ID)


def test_refuses_unknown_options() -> None:
    with pytest.raises(ConfigurationError, match="secret_key"):
        make(secret_key="x")


@pytest.mark.parametrize("secret", [KEY_SECRET, [WEBHOOK_SECRET, KEY_SECRET]])
def test_webhook_secret_must_not_be_the_key_secret(secret: Any) -> None:
    with pytest.raises(ConfigurationError, match="must not be the key secret") as err:
        make(webhook_secret=secret)
    assert KEY_SECRET not in str(err.value)


@pytest.mark.parametrize("timeout", [0, -1, "15", True, (1, 0), (1, 2, 3)])
def test_refuses_bad_timeouts(timeout: Any) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        make(timeout=timeout)


@pytest.mark.parametrize(
    "api_base",
    [
        "http://api.razorpay.com",
        "ftp://127.0.0.1",
        "https://",
        "http://10.0.0.1:8080",
        "https://x?y=1",
    ],
)
def test_refuses_insecure_api_base(api_base: str) -> None:
    with pytest.raises(ConfigurationError, match="api_base"):
        make(api_base=api_base)


@pytest.mark.parametrize("api_base", ["https://api.razorpay.com/", "http://127.0.0.1:9999"])
def test_accepts_https_and_loopback(api_base: str) -> None:
    assert make(api_base=api_base).client.base_url == api_base.rstrip("/")


@pytest.mark.parametrize(
    ("option", "value"), [("refund_speed", "instant"), ("automatic_expiry_period", 5)]
)
def test_refuses_bad_capture_options(option: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=option):
        make(**{option: value})


def test_client_per_instance_with_retry_off() -> None:
    first, second = make(), make()
    assert first.client is not second.client
    assert first.session is not second.session
    assert first.client.session is first.session
    assert first.client.retry_enabled is False
    assert first.client.auth == (KEY_ID, KEY_SECRET)


def test_repr_hides_secrets() -> None:
    provider = make()
    shown = repr(provider) + repr(provider.options) + str(provider.options)
    for secret in (KEY_SECRET, WEBHOOK_SECRET, OLD_WEBHOOK_SECRET):
        assert secret not in shown
    assert KEY_ID in repr(provider.options)  # the public key id stays visible


# -- amounts and currencies -------------------------------------------------------


def test_supported_currencies_agree_with_iso_exponents() -> None:
    provider = make()
    assert provider.supported_currencies is not None
    assert "INR" in provider.supported_currencies
    assert provider.supported_currencies <= set(money.CURRENCY_EXPONENTS)
    assert RAZORPAY_CURRENCIES - provider.supported_currencies == set()
    for code in provider.supported_currencies:
        documented = (
            3 if code in RAZORPAY_THREE_DECIMAL else 0 if code in RAZORPAY_ZERO_DECIMAL else 2
        )
        assert money.CURRENCY_EXPONENTS[code] == documented, code


@pytest.mark.parametrize(
    ("amount", "currency"),
    [(100, "INR"), (49900, "INR"), (1, "JPY"), (1000, "KWD"), (99990, "KWD"), (100, "USD")],
)
def test_chargeable_amounts(amount: int, currency: str) -> None:
    make().validate_amount(amount, currency)


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        (99, "INR", "less than"),
        (1, "INR", "less than"),
        (999, "KWD", "less than"),
        (99991, "KWD", "end in 0"),
        (1005, "OMR", "end in 0"),
        (500, "XCG", "does not accept"),  # an ISO currency Razorpay does not list
        (500, "BOV", "does not accept"),
    ],
)
def test_refused_amounts(amount: int, currency: str, message: str) -> None:
    with pytest.raises(InvalidAmount, match=message):
        make().validate_amount(amount, currency)


# -- refund idempotency keys ---------------------------------------------------


def test_valid_refund_keys_are_sent_as_they_are() -> None:
    key = "paygate-refund-6f1c1c3e-8c59-4d7e-a4f5-3a2a6a0c9b11"
    assert refund_idempotency_key(key) == key


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300))
def test_any_key_becomes_a_valid_stable_header(key: str) -> None:
    header = refund_idempotency_key(key)
    assert re.fullmatch(r"[A-Za-z0-9_-]{10,64}", header)
    assert refund_idempotency_key(key) == header


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_distinct_invalid_keys_stay_distinct(a: str, b: str) -> None:
    if (
        a != b
        and not re.fullmatch(r"[A-Za-z0-9_-]{10,64}", a)
        and not re.fullmatch(r"[A-Za-z0-9_-]{10,64}", b)
    ):
        assert refund_idempotency_key(a) != refund_idempotency_key(b)


# -- signatures: known answers and the SDK as an oracle -----------------------------


def test_checkout_signature_known_answer() -> None:
    # PROVIDERS.md B2 (razorpay-python's own test vector).
    provider = RazorpayProvider("rzp", key_id="rzp_test_x", key_secret="key_secret")
    assert provider.checkout_signature("fake_order_id", "fake_payment_id") == (
        "b2335e3b0801106b84a7faff035df56ecffde06918c9ddd1f0fafbb37a51cc89"
    )
    # An independent vector, computed with `openssl dgst -sha256 -hmac`.
    provider = RazorpayProvider("rzp", key_id="rzp_test_x", key_secret="paygate-key-kat")
    assert provider.checkout_signature("order_KAT0000000001", "pay_KAT0000000001") == (
        "59cbd2e8da11a8c5ff28e404b7dbd4fac927fc5cb0afcf939204b8344c12be8c"
    )


def test_webhook_signature_known_answer() -> None:
    # Computed with `openssl dgst -sha256 -hmac paygate-webhook-kat` over these exact bytes.
    # (PROVIDERS.md B3's vector needs the SDK's own fixture file, which the project does not
    # copy; the algorithm was checked against it while writing this adapter.)
    provider = make(webhook_secret="paygate-webhook-kat")
    body = b'{"event":"payment.captured","payload":{}}'
    signature = "678967696219943d294d2370357f75743bda6cc713e94a28370b6461afcd56b2"
    provider.verify_webhook(body, {"X-Razorpay-Signature": signature})
    provider.verify_webhook(body, {"X-Razorpay-Signature": signature.upper()})
    with pytest.raises(WebhookVerificationError):
        provider.verify_webhook(body + b" ", {"X-Razorpay-Signature": signature})


_ids = st.from_regex(r"[A-Za-z0-9]{14}", fullmatch=True)
_secrets = st.text(st.characters(categories=["L", "N", "P", "S"]), min_size=8, max_size=40)


@settings(max_examples=50, deadline=None)
@given(order=_ids, payment=_ids, secret=_secrets)
def test_checkout_signatures_pass_the_sdks_own_check(order: str, payment: str, secret: str) -> None:
    provider = RazorpayProvider("rzp", key_id="rzp_test_x", key_secret=secret)
    signature = provider.checkout_signature(f"order_{order}", f"pay_{payment}")
    client = razorpay.Client(auth=("rzp_test_x", secret))
    assert client.utility.verify_payment_signature(
        {
            "razorpay_order_id": f"order_{order}",
            "razorpay_payment_id": f"pay_{payment}",
            "razorpay_signature": signature,
        }
    )


@settings(max_examples=50, deadline=None)
@given(body=st.text(max_size=500), secret=_secrets)
def test_webhook_verification_agrees_with_the_sdk(body: str, secret: str) -> None:
    sdk = razorpay.Client(auth=("rzp_test_x", "unused-key-secret"))
    provider = RazorpayProvider(
        "rzp", key_id="rzp_test_x", key_secret="unused-key-secret", webhook_secret=secret
    )
    signature = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    assert sdk.utility.verify_webhook_signature(body, signature, secret)
    provider.verify_webhook(body.encode(), {"X-Razorpay-Signature": signature})
    wrong = ("0" if signature[0] != "0" else "1") + signature[1:]
    with pytest.raises(razorpay.errors.SignatureVerificationError):
        sdk.utility.verify_webhook_signature(body, wrong, secret)
    with pytest.raises(WebhookVerificationError):
        provider.verify_webhook(body.encode(), {"X-Razorpay-Signature": wrong})


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "   ",
        "é" * 64,
        "d60e67fd884556c045e9be7dad57903e33efc7172c17c6e3ef77db42d2b366e\u0660",
        "zz",
        "0" * 63,
        "0" * 65,
    ],
)
def test_malformed_signatures_are_refused_without_type_errors(signature: str) -> None:
    with pytest.raises(WebhookVerificationError):
        make().verify_webhook(b"{}", {"X-Razorpay-Signature": signature})


def test_missing_signature_header() -> None:
    with pytest.raises(WebhookVerificationError, match="Missing X-Razorpay-Signature"):
        make().verify_webhook(b"{}", {})


def test_no_webhook_secret_configured_refuses_everything() -> None:
    provider = RazorpayProvider("rzp", key_id=KEY_ID, key_secret=KEY_SECRET)
    signature = hmac.new(b"", b"{}", hashlib.sha256).hexdigest()
    with pytest.raises(WebhookVerificationError, match="No webhook_secret"):
        provider.verify_webhook(b"{}", {"X-Razorpay-Signature": signature})


def test_key_secret_signature_is_not_a_webhook_signature() -> None:
    body = b'{"event":"payment.captured"}'
    signature = hmac.new(KEY_SECRET.encode(), body, hashlib.sha256).hexdigest()
    with pytest.raises(WebhookVerificationError):
        make().verify_webhook(body, {"X-Razorpay-Signature": signature})
