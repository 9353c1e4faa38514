"""IDOR, CSRF, rate limits, decline velocity, client IPs and the webhook allowlist."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from django.test import RequestFactory
from hypothesis import given
from hypothesis import strategies as st

from django_paygate import security
from django_paygate.exceptions import ConfigurationError
from django_paygate.models import Refund, get_payment_model
from django_paygate.providers.dummy import CARD_DECLINED, CARD_SUCCEEDS
from tests.factories import PaymentFactory
from tests.views.conftest import Api

Payment = get_payment_model()

db = pytest.mark.django_db(transaction=True)


def _paygate(settings: Any, **values: Any) -> None:
    settings.PAYGATE = {**settings.PAYGATE, **values}


# ---------------------------------------------------------------------------
# IDOR: another user's payment is a 404, like a payment that does not exist
# ---------------------------------------------------------------------------


@pytest.fixture
def victim_payment(other_api: Api) -> Any:
    response = other_api.post("create_intent", other_api.order(4321, "USD"))
    assert response.status_code == 201
    return Payment.objects.get(pk=response.json_body["id"])


def _guesses(victim: Any) -> list[str]:
    return [
        str(victim.pk),
        str(victim.pk).upper(),
        victim.pk.hex,  # uuid.UUID also reads the hyphen-less form
        "{" + str(victim.pk) + "}",
        str(uuid.uuid4()),
        "00000000-0000-0000-0000-000000000000",
        "1",
        "0",
        "-1",
        "' OR '1'='1",
        "../" + str(victim.pk),
        "%",
        "x" * 500,
    ]


@db
def test_idor_status_is_404_for_every_guess(api: Api, victim_payment: Any) -> None:
    bodies = set()
    for guess in _guesses(victim_payment):
        response = api.get("payment_status", {"payment_id": guess})
        assert response.status_code == 404, guess
        bodies.add(response.content)
        text = response.content.decode()
        assert victim_payment.pk.hex not in text.replace("-", "")
        assert "4321" not in text
        assert "victim" not in text
    assert len(bodies) == 1  # nothing tells a foreign payment from a missing one


@db
def test_idor_confirm_is_404_and_changes_nothing(api: Api, victim_payment: Any, dummy: Any) -> None:
    calls = len(dummy.calls)
    bodies = set()
    for guess in _guesses(victim_payment):
        response = api.post(
            "confirm_payment", {"payment_id": guess, "payment_method": CARD_SUCCEEDS}
        )
        assert response.status_code == 404, guess
        bodies.add(response.content)
    assert len(bodies) == 1
    assert len(dummy.calls) == calls
    victim_payment.refresh_from_db()
    assert victim_payment.status == "pending"


@db
def test_idor_status_sync_is_404(api: Api, victim_payment: Any, dummy: Any) -> None:
    calls = len(dummy.calls)
    response = api.post("payment_status", {"payment_id": str(victim_payment.pk)})
    assert response.status_code == 404
    assert len(dummy.calls) == calls


@db
def test_idor_refund_for_customers_is_403_before_any_lookup(api: Api, victim_payment: Any) -> None:
    for guess in _guesses(victim_payment):
        response = api.post("process_refund", {"payment_id": guess})
        assert response.status_code == 403
    assert not Refund.objects.exists()


@db
def test_refunder_gets_404_for_garbage_ids(refund_api: Api) -> None:
    for guess in ["1", "' OR 1=1 --", str(uuid.uuid4())]:
        response = refund_api.post("process_refund", {"payment_id": guess})
        assert response.status_code == 404


@db
def test_another_users_idempotency_key_never_returns_their_client_data(
    api: Api, other_api: Any, dummy: Any
) -> None:
    theirs = other_api.post(
        "create_intent", other_api.order(999, "USD"), **{"Idempotency-Key": "checkout-1"}
    )
    mine = api.post("create_intent", api.order(999, "USD"), **{"Idempotency-Key": "checkout-1"})
    assert mine.status_code == 201
    assert mine.json_body["id"] != theirs.json_body["id"]
    assert str(theirs.json_body["id"]) not in mine.content.decode()


@db
def test_only_the_owner_gets_client_data_and_only_while_there_is_something_to_pay(
    api: Api, staff_api: Api, user: Any
) -> None:
    pending = PaymentFactory(user=user)
    mine = api.get("payment_status", {"payment_id": str(pending.pk)}).json_body
    assert mine["client"]["payment_id"] == str(pending.pk)
    theirs = staff_api.get("payment_status", {"payment_id": str(pending.pk)}).json_body
    assert "client" not in theirs
    paid = PaymentFactory(user=user, status="succeeded")
    assert api.get("payment_status", {"payment_id": str(paid.pk)}).json_body["client"] is None


# ---------------------------------------------------------------------------
# CSRF on every POST endpoint
# ---------------------------------------------------------------------------

POST_ENDPOINTS = ["create_intent", "confirm_payment", "process_refund"]


@db
@pytest.mark.parametrize("name", POST_ENDPOINTS)
def test_post_without_a_csrf_token_is_403(refund_api: Api, name: str) -> None:
    response = refund_api.post(name, {"amount": 100, "currency": "USD"}, token=None)
    assert response.status_code == 403
    assert response.json_body["error"]["code"] == "csrf_failed"
    assert not Payment.objects.exists()


@db
@pytest.mark.parametrize("name", POST_ENDPOINTS)
def test_post_without_the_csrf_cookie_is_403(refund_api: Api, name: str) -> None:
    del refund_api.client.cookies["csrftoken"]
    response = refund_api.post(name, {"amount": 100, "currency": "USD"})
    assert response.status_code == 403
    assert not Payment.objects.exists()


@db
@pytest.mark.parametrize("name", POST_ENDPOINTS)
def test_post_with_another_sessions_token_is_403(
    refund_api: Api, other_api: Api, name: str
) -> None:
    response = refund_api.post(name, {"amount": 100, "currency": "USD"}, token=other_api.token)
    assert response.status_code == 403
    assert response.json_body["error"]["code"] == "csrf_failed"
    assert not Payment.objects.exists()


@db
def test_session_stored_tokens_of_another_session_are_refused(
    api: Api, other_api: Api, settings: Any
) -> None:
    settings.CSRF_USE_SESSIONS = True
    for client in (api, other_api):
        session = client.client.session
        session["_csrftoken"] = client.token
        session.save()
    refused = api.post("create_intent", api.order(100, "USD"), token=other_api.token)
    assert refused.status_code == 403
    accepted = api.post("create_intent", api.order(100, "USD"))
    assert accepted.status_code == 201


@db
def test_csrf_is_still_enforced_with_django_s_own_failure_view(api: Api, settings: Any) -> None:
    settings.CSRF_FAILURE_VIEW = "django.views.csrf.csrf_failure"  # Django's default
    response = api.post("create_intent", api.order(100, "USD"), token=None, check=False)
    assert response.status_code == 403
    assert not response["Content-Type"].startswith("application/json")
    assert not Payment.objects.exists()


@db
def test_csrf_failure_view_answers_html_outside_the_api(api: Api) -> None:
    response = api.client.post("/admin/login/", {"username": "x"})
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


@db
def test_get_endpoints_need_no_token(api: Api, user: Any) -> None:
    payment = PaymentFactory(user=user)
    assert api.get("payment_status", {"payment_id": str(payment.pk)}).status_code == 200


# ---------------------------------------------------------------------------
# Rate limits
# ---------------------------------------------------------------------------

T0 = 1_800_000_000.0  # a multiple of 60 and of 3600: a window starts here


@pytest.fixture
def clock(monkeypatch: Any) -> Any:
    class Clock:
        now = T0

        def advance(self, seconds: float) -> None:
            self.now += seconds

    c = Clock()
    monkeypatch.setattr(security, "now", lambda: c.now)
    return c


@db
def test_per_user_limit_then_recovery(api: Api, user: Any, settings: Any, clock: Any) -> None:
    _paygate(settings, RATE_LIMITS={"payment_status": {"user": "3/m", "ip": None}})
    payment = PaymentFactory(user=user)
    params = {"payment_id": str(payment.pk)}
    assert [api.get("payment_status", params).status_code for _ in range(3)] == [200] * 3
    limited = api.get("payment_status", params)
    assert limited.status_code == 429
    assert limited["Retry-After"] == "60"
    assert limited.json_body["error"]["code"] == "rate_limited"
    assert limited.json_body["error"]["retry_after"] == 60
    clock.advance(59.5)
    again = api.get("payment_status", params)
    assert (again.status_code, again["Retry-After"]) == (429, "1")
    clock.advance(0.5)
    assert api.get("payment_status", params).status_code == 200


@db
def test_user_limit_follows_the_user_across_ips(api: Api, settings: Any, clock: Any) -> None:
    _paygate(settings, RATE_LIMITS={"create_intent": {"user": "2/m", "ip": None}})
    codes = [
        api.post("create_intent", api.order(100), REMOTE_ADDR=f"198.51.100.{i}").status_code
        for i in range(3)
    ]
    assert codes == [201, 201, 429]


@db
def test_ip_limit_spans_users(api: Api, other_api: Api, settings: Any, clock: Any) -> None:
    _paygate(settings, RATE_LIMITS={"create_intent": {"user": None, "ip": "2/m"}})
    for caller, ip, status in [
        (api, "203.0.113.1", 201),
        (api, "203.0.113.1", 201),
        (other_api, "203.0.113.1", 429),
        (other_api, "203.0.113.2", 201),
    ]:
        assert caller.post("create_intent", caller.order(), REMOTE_ADDR=ip).status_code == status


@db
def test_anonymous_callers_are_limited_by_ip(anon_api: Api, settings: Any, clock: Any) -> None:
    _paygate(settings, RATE_LIMITS={"create_intent": {"ip": "2/m"}})
    codes = [anon_api.post("create_intent", {}).status_code for _ in range(3)]
    assert codes == [401, 401, 429]


@db
def test_limits_are_per_endpoint(api: Api, user: Any, settings: Any, clock: Any) -> None:
    _paygate(settings, RATE_LIMITS={"payment_status": {"user": "1/m", "ip": None}})
    payment = PaymentFactory(user=user)
    assert api.get("payment_status", {"payment_id": str(payment.pk)}).status_code == 200
    assert api.get("payment_status", {"payment_id": str(payment.pk)}).status_code == 429
    assert api.post("create_intent", api.order(100, "USD")).status_code == 201


@db
def test_sync_has_its_own_tighter_limit(api: Api, dummy: Any, settings: Any, clock: Any) -> None:
    _paygate(settings, RATE_LIMITS={"payment_sync": {"user": "1/m", "ip": None}})
    created = api.post("create_intent", api.order(100, "USD"))
    body = {"payment_id": str(created.json_body["id"])}
    assert api.post("payment_status", body).status_code == 200
    assert api.post("payment_status", body).status_code == 429
    assert api.get("payment_status", body).status_code == 200


@db
def test_a_limit_set_to_none_is_off(api: Api, user: Any, settings: Any, clock: Any) -> None:
    _paygate(settings, RATE_LIMITS={"payment_status": None})
    payment = PaymentFactory(user=user)
    codes = {
        api.get("payment_status", {"payment_id": str(payment.pk)}).status_code for _ in range(130)
    }
    assert codes == {200}


@db
def test_built_in_limits_apply_without_settings(anon_api: Api, clock: Any) -> None:
    codes = [anon_api.get("openapi_json", check=False).status_code for _ in range(61)]
    assert codes[:60] == [200] * 60
    assert codes[60] == 429


@db
def test_counters_live_in_the_configured_cache(
    api: Api, user: Any, settings: Any, clock: Any
) -> None:
    from django.core.cache import caches

    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "d"},
        "limits": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "l"},
    }
    _paygate(settings, CACHE="limits", RATE_LIMITS={"payment_status": {"user": "1/m", "ip": None}})
    payment = PaymentFactory(user=user)
    api.get("payment_status", {"payment_id": str(payment.pk)})
    assert api.get("payment_status", {"payment_id": str(payment.pk)}).status_code == 429
    caches["limits"].clear()
    assert api.get("payment_status", {"payment_id": str(payment.pk)}).status_code == 200


@db
def test_a_failing_cache_fails_open_and_warns(
    api: Api, user: Any, settings: Any, monkeypatch: Any, caplog: Any
) -> None:
    _paygate(settings, RATE_LIMITS={"payment_status": {"user": "1/m", "ip": None}})

    def broken() -> Any:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(security, "_cache", broken)
    payment = PaymentFactory(user=user)
    with caplog.at_level(logging.WARNING, logger="django_paygate.security"):
        codes = [
            api.get("payment_status", {"payment_id": str(payment.pk)}).status_code for _ in range(3)
        ]
    assert codes == [200, 200, 200]
    assert "cache failed" in caplog.text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10/m", (10, 60)),
        ("100/h", (100, 3600)),
        ("5/30s", (5, 30)),
        ("1000/d", (1000, 86400)),
        (" 3 / 2m ", (3, 120)),
    ],
)
def test_rate_strings(value: str, expected: tuple[int, int]) -> None:
    rate = security.Rate.parse(value, "here")
    assert rate is not None
    assert (rate.limit, rate.period) == expected


@pytest.mark.parametrize("value", ["ten/m", "10/w", "10", 10, "10/0s", "/m"])
def test_bad_rate_strings_are_configuration_errors(value: Any) -> None:
    with pytest.raises(ConfigurationError):
        security.Rate.parse(value, "PAYGATE['RATE_LIMITS']['x']['user']")


def test_rate_limit_settings_are_validated(settings: Any) -> None:
    _paygate(
        settings,
        RATE_LIMITS={
            "create_intnet": {"user": "1/m"},
            "payment_status": {"usr": "1/m"},
            "confirm_payment": {"user": "often"},
        },
    )
    problems = security.validate_rate_limits()
    assert len(problems) == 3
    assert any("create_intnet" in p for p in problems)
    assert any("'usr'" in p for p in problems)
    assert any("often" in p for p in problems)


# ---------------------------------------------------------------------------
# Decline velocity
# ---------------------------------------------------------------------------


def _new_payment(api: Api) -> str:
    return str(api.post("create_intent", api.order(100, "USD")).json_body["id"])


@db
def test_too_many_declines_block_confirm_until_the_window_ends(
    api: Api, settings: Any, clock: Any, dummy: Any
) -> None:
    _paygate(settings, RATE_LIMITS={"declines": {"user": "2/h", "ip": None}})
    payment_id = _new_payment(api)
    for _ in range(2):
        declined = api.post(
            "confirm_payment", {"payment_id": payment_id, "payment_method": CARD_DECLINED}
        )
        assert declined.status_code == 402
    confirms = sum(1 for method, _key in dummy.calls if method == "confirm_payment")
    blocked = api.post(
        "confirm_payment", {"payment_id": payment_id, "payment_method": CARD_SUCCEEDS}
    )
    assert blocked.status_code == 429
    assert blocked.json_body["error"]["code"] == "too_many_declines"
    assert blocked["Retry-After"] == "3600"
    assert sum(1 for method, _key in dummy.calls if method == "confirm_payment") == confirms
    clock.advance(3600)
    ok = api.post("confirm_payment", {"payment_id": payment_id, "payment_method": CARD_SUCCEEDS})
    assert ok.status_code == 200
    assert ok.json_body["status"] == "succeeded"


@db
def test_declines_are_counted_per_ip_across_users(
    api: Api, other_api: Api, settings: Any, clock: Any
) -> None:
    _paygate(settings, RATE_LIMITS={"declines": {"user": None, "ip": "2/h"}})
    for client in (api, api):
        response = client.post(
            "confirm_payment",
            {"payment_id": _new_payment(client), "payment_method": CARD_DECLINED},
            REMOTE_ADDR="203.0.113.50",
        )
        assert response.status_code == 402
    theirs = _new_payment(other_api)
    blocked = other_api.post(
        "confirm_payment",
        {"payment_id": theirs, "payment_method": CARD_SUCCEEDS},
        REMOTE_ADDR="203.0.113.50",
    )
    assert blocked.status_code == 429
    elsewhere = other_api.post(
        "confirm_payment",
        {"payment_id": theirs, "payment_method": CARD_SUCCEEDS},
        REMOTE_ADDR="203.0.113.51",
    )
    assert elsewhere.status_code == 200


@db
def test_successful_payments_do_not_count_as_declines(api: Api, settings: Any, clock: Any) -> None:
    _paygate(settings, RATE_LIMITS={"declines": {"user": "1/h", "ip": None}})
    for _ in range(3):
        response = api.post(
            "confirm_payment", {"payment_id": _new_payment(api), "payment_method": CARD_SUCCEEDS}
        )
        assert response.status_code == 200


# ---------------------------------------------------------------------------
# Client IP and trusted proxies
# ---------------------------------------------------------------------------


def _request(remote: str | None, forwarded: str | None = None) -> Any:
    meta: dict[str, Any] = {}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    request = RequestFactory().get("/", **meta)
    if remote is None:
        del request.META["REMOTE_ADDR"]
    else:
        request.META["REMOTE_ADDR"] = remote
    return request


@pytest.mark.parametrize(
    ("proxies", "remote", "forwarded", "expected"),
    [
        ([], "203.0.113.5", "6.6.6.6", "203.0.113.5"),  # no proxy trusted: header ignored
        (["10.0.0.1"], "203.0.113.5", "6.6.6.6", "203.0.113.5"),  # peer is not the proxy
        (["10.0.0.1"], "10.0.0.1", "203.0.113.5", "203.0.113.5"),
        (["10.0.0.1"], "10.0.0.1", "6.6.6.6, 203.0.113.5", "203.0.113.5"),  # spoofed left part
        (["10.0.0.0/8"], "10.0.0.2", "203.0.113.5, 10.1.1.1", "203.0.113.5"),  # two proxies
        (["10.0.0.0/8"], "10.0.0.2", "10.3.3.3, 10.1.1.1", "10.3.3.3"),  # every hop trusted
        (["10.0.0.0/8"], "10.0.0.2", "garbage, 203.0.113.5", "203.0.113.5"),
        (["10.0.0.0/8"], "10.0.0.2", "203.0.113.5, garbage", "10.0.0.2"),
        (["10.0.0.0/8"], "10.0.0.2", "", "10.0.0.2"),
        (["10.0.0.0/8"], "10.0.0.2", "198.51.100.7:5555", "198.51.100.7"),
        (["10.0.0.0/8"], "10.0.0.2", "[2001:db8::1]:443", "2001:db8::1"),
        (["10.0.0.0/8"], "::ffff:10.0.0.2", "203.0.113.5", "203.0.113.5"),  # v4-mapped peer
        (["2001:db8:ffff::/48"], "2001:db8:ffff::1", "2001:db8::7", "2001:db8::7"),
        (["not-a-network"], "10.0.0.2", "203.0.113.5", "10.0.0.2"),  # typo: nothing trusted
        ("10.0.0.2", "10.0.0.2", "203.0.113.5", "203.0.113.5"),  # a single string
        ([], None, "203.0.113.5", security.UNKNOWN_IP),
        ([], "garbage", None, security.UNKNOWN_IP),
    ],
)
def test_client_ip(
    settings: Any, proxies: Any, remote: str | None, forwarded: str | None, expected: str
) -> None:
    _paygate(settings, TRUSTED_PROXIES=proxies)
    assert security.client_ip(_request(remote, forwarded)) == expected


@given(forwarded=st.text(max_size=80))
def test_an_untrusted_peer_is_the_client_whatever_the_header(forwarded: str) -> None:
    request = _request("198.51.100.20")
    request.META["HTTP_X_FORWARDED_FOR"] = forwarded
    assert security.client_ip(request) == "198.51.100.20"


@given(forwarded=st.lists(st.ip_addresses(v=4).map(str) | st.text(max_size=10), max_size=5))
def test_behind_a_proxy_the_answer_is_a_valid_address(forwarded: list[str]) -> None:
    from django.conf import settings as django_settings
    from django.test import override_settings

    with override_settings(PAYGATE={**django_settings.PAYGATE, "TRUSTED_PROXIES": ["10.0.0.0/8"]}):
        ip = security.client_ip(_request("10.0.0.9", ", ".join(forwarded)))
    assert security.parse_ip(ip) is not None
    assert ip == "10.0.0.9" or ip in {str(security.parse_ip(h)) for h in forwarded}


# ---------------------------------------------------------------------------
# Webhook allowlist
# ---------------------------------------------------------------------------


def _allowlist(settings: Any, entries: Any, **extra: Any) -> None:
    config: dict[str, Any] = {"BACKEND": "django_paygate.providers.dummy.DummyProvider"}
    if entries is not ...:
        config["WEBHOOK_ALLOWED_IPS"] = entries
    _paygate(settings, PROVIDERS={"dummy": config}, **extra)


@pytest.mark.parametrize(
    ("entries", "remote", "allowed"),
    [
        (..., "203.0.113.5", True),
        ([], "203.0.113.5", True),
        (None, "203.0.113.5", True),
        (["203.0.113.0/24"], "203.0.113.5", True),
        (["203.0.113.0/24"], "198.51.100.5", False),
        (["203.0.113.5"], "203.0.113.5", True),
        (["2001:db8::/32"], "2001:db8::5", True),
        (["2001:db8::/32"], "203.0.113.5", False),
        (["oops"], "203.0.113.5", False),  # an invalid list never allows everybody
        (["oops", "203.0.113.0/24"], "203.0.113.5", True),
    ],
)
def test_webhook_allowlist(settings: Any, entries: Any, remote: str, allowed: bool) -> None:
    _allowlist(settings, entries)
    assert security.webhook_ip_allowed(_request(remote), "dummy") is allowed


def test_webhook_allowlist_uses_the_client_behind_trusted_proxies(settings: Any) -> None:
    _allowlist(settings, ["203.0.113.0/24"], TRUSTED_PROXIES=["10.0.0.0/8"])
    assert security.webhook_ip_allowed(_request("10.0.0.2", "203.0.113.5"), "dummy")
    assert not security.webhook_ip_allowed(_request("10.0.0.2", "198.51.100.1"), "dummy")


def test_webhook_allowlist_ignores_a_spoofed_header_from_an_untrusted_peer(settings: Any) -> None:
    _allowlist(settings, ["203.0.113.0/24"])
    assert not security.webhook_ip_allowed(_request("198.51.100.1", "203.0.113.5"), "dummy")


def test_webhook_allowlist_of_an_unknown_alias_defers_to_the_pipeline(settings: Any) -> None:
    _allowlist(settings, ["203.0.113.0/24"])
    assert security.webhook_ip_allowed(_request("198.51.100.1"), "nope")


def test_invalid_network_entries_are_reported() -> None:
    assert security.invalid_network_entries(["10.0.0.0/8", "oops", "::1"]) == ["oops"]
    assert security.invalid_network_entries(None) == []


# ---------------------------------------------------------------------------
# Text no database column takes: a 400, never a 500, and nothing written
# ---------------------------------------------------------------------------

LONE_SURROGATE = '"\\ud800"'  # valid JSON: an escape that decodes to an unpaired surrogate


@db
@pytest.mark.parametrize(
    "field",
    [
        '"description": ' + LONE_SURROGATE,
        '"metadata": {"note": ' + LONE_SURROGATE + "}",
        '"metadata": {' + LONE_SURROGATE + ': "key"}',
        '"description": "nul \\u0000 inside"',
    ],
)
def test_unstorable_text_in_create_intent_is_a_400(api: Api, field: str) -> None:
    raw = '{"payable": "order", "id": "1", ' + field + "}"
    response = api.post("create_intent", raw=raw)
    assert response.status_code == 400
    assert set(response.json_body["error"]["fields"]) <= {"description", "metadata"}
    assert not Payment.objects.exists()


@db
def test_unstorable_text_in_a_refund_reason_is_a_400(api: Api, refund_api: Api) -> None:
    created = api.post("create_intent", api.order(2000, "USD")).json_body
    api.post("confirm_payment", {"payment_id": created["id"], "payment_method": CARD_SUCCEEDS})
    raw = '{"payment_id": "' + created["id"] + '", "reason": ' + LONE_SURROGATE + "}"
    response = refund_api.post("process_refund", raw=raw)
    assert response.status_code == 400
    assert "reason" in response.json_body["error"]["fields"]
    assert not Refund.objects.exists()


# ---------------------------------------------------------------------------
# IPv6 clients are counted per network
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "prefix", "expected"),
    [
        ("203.0.113.5", 64, "203.0.113.5"),
        ("2001:db8:1:2:aaaa::1", 64, "2001:db8:1:2::/64"),
        ("2001:0db8:0001:0002:ffff:ffff:ffff:ffff", 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:aaaa::1", 48, "2001:db8:1::/48"),
        ("2001:db8:1:2:aaaa::1", 128, "2001:db8:1:2:aaaa::1/128"),
        ("::ffff:203.0.113.5", 64, "203.0.113.5"),
        ("garbage", 64, "garbage"),
    ],
)
def test_client_network(settings: Any, address: str, prefix: int, expected: str) -> None:
    _paygate(settings, RATE_LIMIT_IPV6_PREFIX=prefix)
    assert security.client_network(address) == expected


def test_identities_count_an_ipv6_client_per_64(settings: Any) -> None:
    request = _request("2001:db8:1:2:3:4:5:6")
    assert security.identities(request) == {"ip": "2001:db8:1:2::/64"}


@db
def test_declines_from_one_ipv6_64_share_the_per_ip_limit(
    api: Api, other_api: Api, settings: Any, clock: Any
) -> None:
    _paygate(settings, RATE_LIMITS={"declines": {"user": None, "ip": "2/h"}})
    statuses = [
        api.post(
            "confirm_payment",
            {"payment_id": _new_payment(api), "payment_method": CARD_DECLINED},
            REMOTE_ADDR=f"2001:db8:77:1::{n:x}",
        ).status_code
        for n in range(1, 7)
    ]
    assert statuses == [402, 402, 429, 429, 429, 429]
    elsewhere = other_api.post(
        "confirm_payment",
        {"payment_id": _new_payment(other_api), "payment_method": CARD_SUCCEEDS},
        REMOTE_ADDR="2001:db8:77:2::1",  # the next /64
    )
    assert elsewhere.status_code == 200


@pytest.mark.parametrize("value", [0, 129, "64", 64.0, True, None])
def test_the_ipv6_prefix_setting_is_validated(settings: Any, value: Any) -> None:
    from django_paygate.conf import paygate_settings

    _paygate(settings, RATE_LIMIT_IPV6_PREFIX=value)
    assert "PAYGATE['RATE_LIMIT_IPV6_PREFIX'] must be an integer from 1 to 128." in (
        paygate_settings.validate()
    )
