"""What the base offers every adapter: the timestamped-HMAC check, NotSupported, the
declared option checks, the session and ``call``, ``refused``, the confirmation fields and
the readers of untrusted JSON."""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any, ClassVar

import pytest
import requests
import responses

from django_paygate import services
from django_paygate.exceptions import (
    ConfigurationError,
    InvalidAmount,
    NotSupported,
    PaygateError,
    PaymentDeclined,
    ProviderError,
    ProviderUnavailable,
    WebhookVerificationError,
)
from django_paygate.models import PaymentEvent
from django_paygate.providers import base
from django_paygate.providers.base import (
    COMMON_OPTION_CHECKS,
    BaseProvider,
    OptionCheck,
    TransportFailure,
    hmac_sha256_hex,
    is_bool,
    is_int,
    is_one_of,
    is_optional,
    is_string,
    is_strings,
    verify_timestamped_hmac,
)
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


def _now() -> int:
    return int(time.time())


# Built when the test runs, not when it is collected: a long run must not age them.
REFUSED = [
    (lambda: "", "missing"),
    (lambda: "t=1," + "v1=ab," * 700, "too long"),
    (lambda: f"v1={'0' * 64}", "malformed timestamp"),
    (lambda: f"t=1,t=2,v1={'0' * 64}", "malformed timestamp"),
    (lambda: "t=\uff11\uff12,v1=00", "malformed timestamp"),  # full-width digits: not ASCII
    (lambda: f"t={_now()}", "no v1 signature"),
    (lambda: f"t={_now()}," + "v1=00," * 17, "no v1 signature"),
    (lambda: header(at=_now() - 3600), "timestamp too far in the past"),
    (lambda: header(at=_now() + 3600), "timestamp too far in the future"),
    (lambda: header(secret="whsec_someone_else"), "no signature matches"),
    (lambda: header(body=b"{}"), "no signature matches"),
]


@pytest.mark.parametrize(("make", "problem"), REFUSED, ids=[p for _, p in REFUSED])
def test_what_is_refused_and_why(make: Any, problem: str) -> None:
    with pytest.raises(WebhookVerificationError) as caught:
        check(make())
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


# -- options: declared checks, one message style ---------------------------------------

WHERE = "PAYGATE['PROVIDERS']['x']['OPTIONS']"


class Checked(BaseProvider):
    """A provider declaring one option per check factory."""

    name = "Checked"
    secret_options = ("api_key", "webhook_secret")
    default_options: ClassVar[Mapping[str, Any]] = {
        "api_key": "sk_test_1",
        "label": "",
        "key": "",
        "webhook_secret": "",
        "timeout": 20,
        "retries": 1,
        "live": False,
        "mode": "a",
        "limit": None,
        "api_base": None,
        "methods": ["card"],
    }
    option_checks: ClassVar[Mapping[str, OptionCheck]] = {
        "api_key": is_string(required=True),
        "label": is_string(),
        "key": is_string(prefixes=("sk_", "rk_")),
        "retries": is_int(0, 5),
        "live": is_bool,
        "mode": is_one_of("a", "b"),
        "limit": is_optional(is_int(1, 10)),
        "methods": is_strings,
    }


ACCEPTED = [
    ("api_key", "sk_live_2", "sk_live_2"),
    ("label", "", ""),
    ("key", "rk_1", "rk_1"),
    ("key", "", ""),  # not required: empty passes the prefix check
    ("webhook_secret", "whsec_1", "whsec_1"),
    ("webhook_secret", ["whsec_new", "whsec_old"], ["whsec_new", "whsec_old"]),
    ("timeout", 5, 5.0),
    ("timeout", 2.5, 2.5),
    ("timeout", [3, 30], (3.0, 30.0)),
    ("retries", 0, 0),
    ("retries", 5, 5),
    ("live", True, True),
    ("mode", "b", "b"),
    ("limit", None, None),
    ("limit", 10, 10),
    ("api_base", "https://api.acme.test/v1/", "https://api.acme.test/v1"),
    ("api_base", "http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("api_base", "http://localhost:8080/", "http://localhost:8080"),
    ("api_base", "http://[::1]:8080", "http://[::1]:8080"),
    ("methods", ["card", "upi"], ("card", "upi")),
]


@pytest.mark.parametrize(("key", "value", "kept"), ACCEPTED)
def test_an_option_check_accepts_and_normalises(key: str, value: Any, kept: Any) -> None:
    options = Checked("x", **{key: value}).options
    assert options[key] == kept
    assert type(options[key]) is type(kept)


HTTPS = "must be an https:// URL"
LOOPBACK = "must be an https:// URL (or http:// on the loopback interface)"
REFUSED_OPTIONS = [
    ("api_key", "", "must be a non-empty string"),
    ("api_key", "   ", "must be a non-empty string"),
    ("api_key", 12, "must be a non-empty string"),
    ("label", None, "must be a string"),
    ("key", "pk_1", "must start with 'sk_' or 'rk_'"),
    ("webhook_secret", 5, "must be a string or a list of strings"),
    ("webhook_secret", ["whsec_1", 2], "must be a string or a list of strings"),
    ("timeout", 0, "must be a positive number of seconds, or a (connect, read) pair"),
    ("timeout", True, "must be a positive number of seconds, or a (connect, read) pair"),
    ("timeout", "5", "must be a positive number of seconds, or a (connect, read) pair"),
    ("timeout", [5], "must be a positive number of seconds, or a (connect, read) pair"),
    ("timeout", (5, -1), "must be a positive number of seconds, or a (connect, read) pair"),
    ("retries", 6, "must be an int from 0 to 5"),
    ("retries", -1, "must be an int from 0 to 5"),
    ("retries", True, "must be an int from 0 to 5"),
    ("retries", 1.0, "must be an int from 0 to 5"),
    ("live", 1, "must be True or False"),
    ("mode", "c", "must be 'a' or 'b'"),
    ("limit", 0, "must be an int from 1 to 10"),
    ("api_base", "http://api.acme.test", LOOPBACK),
    ("api_base", "ftp://127.0.0.1", LOOPBACK),
    ("api_base", "https://api.acme.test/v1?x=1", HTTPS),
    ("api_base", "https://api.acme.test/v1#top", HTTPS),
    ("api_base", "https://", HTTPS),
    ("api_base", 443, HTTPS),
    ("methods", [], "must be a non-empty list of strings"),
    ("methods", ["card", ""], "must be a non-empty list of strings"),
    ("methods", "card", "must be a non-empty list of strings"),
]


@pytest.mark.parametrize(("key", "value", "problem"), REFUSED_OPTIONS)
def test_an_option_check_refuses_naming_the_setting(key: str, value: Any, problem: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Checked("x", **{key: value})
    assert str(caught.value) == f"{WHERE}[{key!r}] {problem}."


def test_an_unknown_option_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Checked("x", timout=5, zzz=1)
    known = ", ".join(sorted(Checked.default_options))
    assert str(caught.value) == (f"{WHERE}['timout'] is not an option of Checked (known: {known}).")


def test_a_provider_without_options_knows_none() -> None:
    class Bare(BaseProvider):
        name = "Bare"

    with pytest.raises(ConfigurationError) as caught:
        Bare("x", timeout=5)
    assert str(caught.value) == f"{WHERE}['timeout'] is not an option of Bare (known: none)."


@pytest.mark.parametrize("value", [None, "", 0])
def test_a_missing_required_option_is_refused(value: Any) -> None:
    class Keyed(BaseProvider):
        name = "Keyed"
        default_options: ClassVar[Mapping[str, Any]] = {"api_key": "", "timeout": 20}
        required_options = ("api_key",)

    with pytest.raises(ConfigurationError) as caught:
        Keyed("x") if value is None else Keyed("x", api_key=value)
    assert str(caught.value) == f"{WHERE}['api_key'] is required."
    assert Keyed("x", api_key="k").options["timeout"] == 20.0  # the common check ran


def test_a_declared_check_takes_the_place_of_the_common_one() -> None:
    class WholeSeconds(BaseProvider):
        default_options: ClassVar[Mapping[str, Any]] = {"timeout": 20}
        option_checks: ClassVar[Mapping[str, OptionCheck]] = {"timeout": is_int(1, 60)}

    assert WholeSeconds("x").options["timeout"] == 20
    with pytest.raises(ConfigurationError, match=r"\['timeout'\] must be an int from 1 to 60\."):
        WholeSeconds("x", timeout=2.5)
    assert set(COMMON_OPTION_CHECKS) == {
        "webhook_secret",
        "timeout",
        "api_base",
        "webhook_tolerance",
    }


class Paired(BaseProvider):
    """Checks between options, in the hook; it sees the values the checks kept."""

    name = "Paired"
    default_options: ClassVar[Mapping[str, Any]] = {"low": 1, "high": 2, "timeout": 20}
    option_checks: ClassVar[Mapping[str, OptionCheck]] = {
        "low": is_int(0, 100),
        "high": is_int(0, 100),
    }
    seen: ClassVar[list[Any]] = []

    def check_options(self) -> None:
        self.seen.append(self.options["timeout"])
        if self.options["low"] > self.options["high"]:
            raise self.option_error("low", f"must be at most 'high' ({self.options['high']})")
        if self.options["low"] == self.options["high"] == 0:
            raise self.option_error("", "'low' and 'high' cannot both be 0")


def test_check_options_runs_after_each_option_is_checked() -> None:
    Paired.seen.clear()
    Paired("x", timeout=3)
    assert Paired.seen == [3.0]  # normalised by its own check first
    with pytest.raises(ConfigurationError) as caught:
        Paired("x", low=5, high=2)
    assert str(caught.value) == f"{WHERE}['low'] must be at most 'high' (2)."
    with pytest.raises(ConfigurationError) as caught:
        Paired("x", low=0, high=0)
    assert str(caught.value) == f"{WHERE}: 'low' and 'high' cannot both be 0."
    Paired.seen.clear()
    with pytest.raises(ConfigurationError, match="must be an int from 0 to 100"):
        Paired("x", low=-1)
    assert Paired.seen == []  # a refused option never reaches the hook


def test_secret_options_are_hidden_in_the_options_repr() -> None:
    options = Checked("x", api_key="sk_live_secret_1", webhook_secret="whsec_secret_2").options
    assert "sk_live_secret_1" not in repr(options)
    assert "whsec_secret_2" not in str(options)
    assert "'label': ''" in repr(options)


# -- the session: a default timeout, unknown outcomes as TransportFailure -------------

API = "https://api.acme.test/v1"


class Acme(BaseProvider):
    name = "Acme"
    default_options: ClassVar[Mapping[str, Any]] = {
        "api_key": "",
        "webhook_secret": "",
        "timeout": 7,
    }
    secret_options = ("api_key", "webhook_secret")

    def translate_error(self, exc: Exception, operation: str) -> PaygateError | None:
        if isinstance(exc, LookupError):
            return self.refused(operation, f"no such {exc.args[0]}")
        return None


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as rsps:
        yield rsps


def test_the_session_is_built_once_with_the_timeout_option(api: responses.RequestsMock) -> None:
    provider = Acme("x", timeout=[2, 9])
    assert provider.session is provider.session
    api.get(f"{API}/a", json={"ok": True})
    api.get(f"{API}/b", json={"ok": True})
    provider.session.get(f"{API}/a")
    provider.session.get(f"{API}/b", timeout=1)
    assert [c.request.req_kwargs["timeout"] for c in api.calls] == [(2.0, 9.0), 1]
    assert Acme("x").session is not provider.session  # one per instance


@pytest.mark.parametrize(
    ("status", "problem"),
    [
        (500, "answered HTTP 500"),
        (503, "answered HTTP 503"),
        (429, "answered HTTP 429"),
        (408, "answered HTTP 408"),
        (409, "answered HTTP 409: a request with the same key is in progress"),
    ],
)
def test_an_answer_of_unknown_outcome_is_a_transport_failure(
    api: responses.RequestsMock, status: int, problem: str
) -> None:
    api.post(f"{API}/charges", status=status, json={"error": {"code": "busy"}})
    with pytest.raises(TransportFailure) as caught:
        Acme("x").session.post(f"{API}/charges", json={})
    assert str(caught.value) == problem
    assert_unchained(caught.value)


@pytest.mark.parametrize("status", [200, 400, 502])
def test_a_body_that_is_not_json_is_a_transport_failure(
    api: responses.RequestsMock, status: int
) -> None:
    api.get(f"{API}/charges/ch_1", status=status, body="<html>Bad gateway</html>")
    with pytest.raises(TransportFailure) as caught:
        Acme("x").session.get(f"{API}/charges/ch_1")
    assert str(caught.value) == f"answered HTTP {status} with a body that is not JSON"
    assert_unchained(caught.value)


def test_other_answers_go_back_to_the_caller(api: responses.RequestsMock) -> None:
    api.post(f"{API}/charges", status=402, json={"error": {"code": "card_declined"}})
    api.delete(f"{API}/charges/ch_1", status=204)
    session = Acme("x").session
    assert session.post(f"{API}/charges").json() == {"error": {"code": "card_declined"}}
    assert session.delete(f"{API}/charges/ch_1").status_code == 204


def test_a_refused_connection_is_a_transport_failure() -> None:
    with socket.socket() as sock:  # a port nothing listens on any more
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransportFailure) as caught:
        Acme("x").session.get(f"http://127.0.0.1:{port}/v1/charges")
    assert str(caught.value) == "could not be reached (ConnectionError)"
    assert_unchained(caught.value)


def test_a_timeout_is_a_transport_failure(api: responses.RequestsMock) -> None:
    api.get(f"{API}/slow", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(TransportFailure) as caught:
        Acme("x").session.get(f"{API}/slow")
    assert str(caught.value) == "no answer in time (ReadTimeout)"
    assert_unchained(caught.value)


def assert_unchained(exc: BaseException) -> None:
    """Nothing holding a request (its credentials) travels with the error: no cause, and no
    context shown (the session's own failures) or none at all (what ``call`` raises)."""
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


def assert_no_chain(exc: BaseException) -> None:
    """Raised outside any ``except`` block: it holds no earlier exception at all."""
    assert exc.__cause__ is None
    assert exc.__context__ is None


# -- call: one provider call, its failures mapped ---------------------------------------


def test_call_returns_what_the_function_returns() -> None:
    def charge(amount: int, *, currency: str) -> str:
        return f"{amount} {currency}"

    assert Acme("x").call("charge", charge, 100, currency="USD") == "100 USD"


def test_a_transport_failure_is_an_unknown_outcome(api: responses.RequestsMock) -> None:
    provider = Acme("x", api_key="acme_key_secret_1")
    api.post(f"{API}/charges", status=503, json={})
    with pytest.raises(ProviderUnavailable) as caught:
        provider.call("charge", provider.session.post, f"{API}/charges", json={})
    assert str(caught.value) == "Acme charge: answered HTTP 503; the outcome is unknown."
    assert caught.value.provider == "x"
    assert_no_chain(caught.value)


def test_our_own_errors_pass_through() -> None:
    declined = PaymentDeclined("The card was declined.", decline_code="card_declined")

    def decline() -> None:
        raise declined

    with pytest.raises(PaymentDeclined) as caught:
        Acme("x").call("pay", decline)
    assert caught.value is declined


def test_translate_error_maps_what_the_client_raised() -> None:
    def lookup() -> None:
        raise KeyError("charge")

    with pytest.raises(ProviderError) as caught:
        Acme("x").call("fetch", lookup)
    assert type(caught.value) is ProviderError
    assert str(caught.value) == "Acme fetch: no such charge"
    assert_no_chain(caught.value)


def test_an_exception_translate_error_does_not_know_is_an_unknown_outcome() -> None:
    def broken() -> None:
        raise RuntimeError("the SDK fell over, key acme_key_secret_1")

    with pytest.raises(ProviderUnavailable) as caught:
        Acme("x", api_key="acme_key_secret_1").call("refund", broken)
    assert str(caught.value) == (
        "Acme refund: unexpected error in the client (RuntimeError); the outcome is unknown."
    )
    assert_no_chain(caught.value)


# -- refused: the provider's no, short and without secrets -------------------------------


def test_refused_is_a_provider_error_scrubbed_of_secrets() -> None:
    provider = Acme("x", api_key="acme_key_secret_1", webhook_secret=["whsec_a_1", "whsec_b_2"])
    error = provider.refused(
        "refund", "key acme_key_secret_1 and whsec_b_2 may not refund", code="amount_too_large"
    )
    assert type(error) is ProviderError
    assert str(error) == "Acme refund: key *** and *** may not refund"
    assert error.provider == "x"
    assert error.extra == {"code": "amount_too_large"}


def test_refused_cuts_a_long_message_to_300_characters() -> None:
    error = Acme("x").refused("charge", "no" + "!" * 1000)
    assert str(error) == "Acme charge: no" + "!" * 298
    assert str(Acme("x").refused("charge", "")) == "Acme charge: refused"


def test_refused_never_shows_part_of_a_secret_cut_by_the_limit() -> None:
    secret = "acme_key_secret_0123456789"
    error = Acme("x", api_key=secret).refused("charge", "x" * 290 + secret)
    assert secret[:10] not in str(error)
    assert str(error) == "Acme charge: " + "x" * 290 + "***"


# -- confirmation fields -----------------------------------------------------------------


class Confirming(BaseProvider):
    name = "Confirming"
    confirmation_fields: ClassVar[Mapping[str, int]] = {"card": 255, "otp": 6}


def test_clean_confirmation_takes_the_listed_fields() -> None:
    Confirming("x").clean_confirmation({"card": "tok_1", "otp": "123456"})
    Confirming("x").clean_confirmation({})


def test_clean_confirmation_refuses_any_other_field() -> None:
    with pytest.raises(ProviderError) as caught:
        Confirming("x").clean_confirmation({"card": "tok_1", "zz": 1, "razorpay_signature": "s"})
    assert str(caught.value) == "Unexpected confirmation field 'razorpay_signature'."
    assert caught.value.provider == "x"
    with pytest.raises(ProviderError, match="'card'"):
        BaseProvider("x").clean_confirmation({"card": "tok_1"})  # lists none: takes none


# -- readers of untrusted JSON -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "as_text", "as_mapping", "as_integer"),
    [
        ("ch_1", "ch_1", {}, None),
        ("", "", {}, None),
        ({"id": 1}, "", {"id": 1}, None),
        (0, "", {}, 0),
        (1999, "", {}, 1999),
        (True, "", {}, None),
        (19.99, "", {}, None),
        (None, "", {}, None),
        (["ch_1"], "", {}, None),
    ],
)
def test_the_readers_take_only_their_own_type(
    value: Any, as_text: str, as_mapping: dict[str, Any], as_integer: int | None
) -> None:
    assert base.text(value) == as_text
    assert base.mapping(value) == as_mapping
    assert base.integer(value) == as_integer
    assert base.integer(value) is None or type(base.integer(value)) is int


def test_header_finds_a_header_in_any_case() -> None:
    headers = {"Acme-Signature": "sha256=ab", "X-Count": 3}
    assert base.header(headers, "Acme-Signature") == "sha256=ab"
    assert base.header(headers, "acme-signature") == "sha256=ab"
    assert base.header(headers, "ACME-SIGNATURE") == "sha256=ab"
    assert base.header(headers, "X-Missing") == ""
    assert base.header(headers, "x-count") == ""  # not a string: not read
    assert base.header({}, "Acme-Signature") == ""


def test_dicts_reads_a_list_of_objects() -> None:
    assert base.dicts([{"id": "re_1"}, "re_2", None, {"id": "re_3"}]) == [
        {"id": "re_1"},
        {"id": "re_3"},
    ]
    for value in ({"data": []}, "re_1", None, ({"id": "re_1"},)):
        assert base.dicts(value) == []


@pytest.mark.parametrize("value", [0, -1, -(2**40), "1700000000", True, 10**20])
def test_unix_time_refuses_what_is_no_provider_timestamp(value: Any) -> None:
    assert base.unix_time(value) is None


def test_unix_time_reads_a_timestamp() -> None:
    when = base.unix_time(1_700_000_000)
    assert when is not None
    assert (when.year, when.utcoffset()) == (2023, timedelta(0))


# -- helpers for adapters: a linked id, an answer that is an object, signature headers ----


def test_linked_id_is_the_provider_id_or_a_refusal_naming_what_is_missing() -> None:
    provider = Acme("x")
    linked = PaymentFactory.build(provider_payment_id="ch_123")
    assert provider.linked_id(linked, "charge") == "ch_123"
    assert provider.linked_id(linked, "charge", re.compile(r"ch_[0-9]+")) == "ch_123"
    for payment, pattern in (
        (PaymentFactory.build(provider_payment_id=None), None),
        (PaymentFactory.build(provider_payment_id=""), None),
        (linked, re.compile(r"order_[0-9]+")),
    ):
        with pytest.raises(ProviderError) as caught:
            provider.linked_id(payment, "charge", pattern)
        assert str(caught.value) == "This payment has no Acme charge yet."
        assert caught.value.provider == "x"


class SDKObject:
    def __init__(self, **data: Any) -> None:
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [({"id": "ch_1"}, {"id": "ch_1"}), (SDKObject(id="ch_2"), {"id": "ch_2"})],
)
def test_call_for_object_gives_the_answer_as_a_dict(answer: Any, expected: Any) -> None:
    assert Acme("x").call_for_object("fetch", lambda: answer) == expected


@pytest.mark.parametrize("answer", [None, "ok", ["ch_1"], SDKObject.__new__(SDKObject)])
def test_call_for_object_takes_any_other_answer_as_an_unknown_outcome(answer: Any) -> None:
    with pytest.raises(ProviderUnavailable) as caught:
        Acme("x").call_for_object("fetch", lambda: answer)
    assert "the outcome is unknown" in str(caught.value)


def test_unknown_outcome_scrubs_its_detail_before_cutting_it() -> None:
    secret = "acme_key_secret_0123456789"
    provider = Acme("x", api_key=secret)
    error = base.unknown_outcome(provider, "charge", "x" * 290 + secret)
    assert secret[:10] not in str(error)
    assert str(error) == "Acme charge: " + "x" * 290 + "***; the outcome is unknown."


class Signed(BaseProvider):
    name = "Signed"
    default_options: ClassVar[Mapping[str, Any]] = {
        "webhook_secret": "",
        "webhook_tolerance": 300,
    }


def test_verify_timestamped_signature_reads_the_header_in_any_case_and_the_tolerance() -> None:
    provider = Signed("x", webhook_secret=[OLD, SECRET], webhook_tolerance=60)
    provider.verify_timestamped_signature(BODY, {"acme-signature": header()}, "Acme-Signature")
    late = {"Acme-Signature": header(at=_now() - 120)}
    with pytest.raises(WebhookVerificationError, match="too far in the past"):
        provider.verify_timestamped_signature(BODY, late, "Acme-Signature")
    with pytest.raises(WebhookVerificationError, match="Acme-Signature: missing"):
        provider.verify_timestamped_signature(BODY, {}, "Acme-Signature")


def test_verify_body_signature_checks_the_hex_hmac_of_the_body() -> None:
    provider = Signed("x", webhook_secret=[OLD, SECRET])
    digest = hmac_sha256_hex(SECRET, BODY)
    for value in (digest, digest.upper()):
        provider.verify_body_signature(BODY, {"x-acme-signature": value}, "X-Acme-Signature")
    with pytest.raises(WebhookVerificationError, match="does not match"):
        provider.verify_body_signature(b"{}", {"X-Acme-Signature": digest}, "X-Acme-Signature")
    with pytest.raises(WebhookVerificationError, match="Missing X-Acme-Signature"):
        provider.verify_body_signature(BODY, {}, "X-Acme-Signature")


def test_hex_signature_matches_takes_upper_case_and_never_raises() -> None:
    digest = hmac_sha256_hex(SECRET, BODY)
    assert base.hex_signature_matches(digest, [digest])
    assert base.hex_signature_matches(digest.upper(), ["00", digest])
    assert not base.hex_signature_matches(digest[:-1], [digest])
    assert not base.hex_signature_matches("\u00e9" * 64, [digest])


@pytest.mark.parametrize(
    ("amount", "currency", "refused"),
    [(1230, "KWD", False), (1235, "KWD", True), (1005, "OMR", True), (1999, "USD", False)],
)
def test_check_three_decimals_names_the_nearest_amounts(
    amount: int, currency: str, refused: bool
) -> None:
    if not refused:
        base.check_three_decimals(amount, currency, provider="Acme")
        return
    with pytest.raises(InvalidAmount) as caught:
        base.check_three_decimals(amount, currency, provider="Acme")
    assert str(caught.value).startswith(f"Acme requires {currency} amounts to end in 0")


def test_an_event_has_one_place_for_our_payment_id() -> None:
    from django_paygate.providers.base import ProviderEvent, ProviderPayment

    ours = "6f1c2a9e-8c4b-4f0e-9d7a-1b2c3d4e5f60"
    payment = ProviderPayment("pi_1", status=None, our_payment_id=ours)

    assert ProviderEvent("evt_1", "x", payment=payment).our_payment_id == ours
    assert ProviderEvent("evt_1", "x", payment=payment, our_payment_id="other").our_payment_id == (
        "other"
    )
    assert ProviderEvent("evt_1", "x", our_payment_id=ours).our_payment_id == ours
    assert ProviderEvent("evt_1", "x").our_payment_id is None


@pytest.mark.django_db
def test_an_event_whose_payment_carries_our_id_finds_the_unlinked_payment() -> None:
    from django_paygate.providers.base import ProviderEvent, ProviderPayment
    from django_paygate.services import ledger

    unlinked = PaymentFactory(provider="dummy", provider_payment_id=None)
    event = ProviderEvent(
        "evt_1", "x", payment=ProviderPayment(None, status=None, our_payment_id=str(unlinked.pk))
    )

    lookup = ledger.payment_lookup("dummy", event)
    assert lookup is not None
    statement, params = lookup
    with ledger.sql.database().cursor() as cursor:
        cursor.execute(statement, params)
        assert [uuid.UUID(str(row[0])) for row in cursor.fetchall()] == [unlinked.pk]
