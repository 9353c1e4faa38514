"""Tests for django_paygate.money: exact minor-unit arithmetic, no floats, no rounding."""

from __future__ import annotations

import re
from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from django_paygate import money
from django_paygate.exceptions import InvalidAmount, PaygateError
from django_paygate.money import (
    CURRENCY_EXPONENTS,
    CURRENCY_SYMBOLS,
    MAX_MINOR_AMOUNT,
    exponent,
    format_money,
    from_minor,
    normalize_currency,
    to_minor,
    validate_minor,
)

currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))
chargeable = st.integers(min_value=1, max_value=MAX_MINOR_AMOUNT)


# --- the currency table -----------------------------------------------------------------


def test_table_shape() -> None:
    assert len(CURRENCY_EXPONENTS) >= 150
    for code, exp in CURRENCY_EXPONENTS.items():
        assert re.fullmatch(r"[A-Z]{3}", code), code
        assert exp in {0, 2, 3, 4}, (code, exp)


def test_table_groups_are_disjoint() -> None:
    groups = [money._ZERO_DECIMAL, money._TWO_DECIMAL, money._THREE_DECIMAL, money._FOUR_DECIMAL]
    assert sum(len(group) for group in groups) == len(CURRENCY_EXPONENTS)


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        CURRENCY_EXPONENTS["ABC"] = 2  # type: ignore[index]


@pytest.mark.parametrize(
    ("code", "exp"),
    [
        ("USD", 2), ("EUR", 2), ("GBP", 2), ("INR", 2), ("HUF", 2), ("TWD", 2), ("CNY", 2),
        ("JPY", 0), ("KRW", 0), ("CLP", 0), ("VND", 0), ("ISK", 0), ("UGX", 0), ("XAF", 0),
        ("XOF", 0), ("XPF", 0), ("BIF", 0), ("DJF", 0), ("GNF", 0), ("KMF", 0), ("PYG", 0),
        ("RWF", 0), ("VUV", 0), ("UYI", 0),
        ("BHD", 3), ("IQD", 3), ("JOD", 3), ("KWD", 3), ("LYD", 3), ("OMR", 3), ("TND", 3),
        ("CLF", 4), ("UYW", 4),
        ("SLE", 2), ("VES", 2), ("ZWG", 2), ("XCG", 2),
    ],
)  # fmt: skip
def test_known_exponents(code: str, exp: int) -> None:
    assert CURRENCY_EXPONENTS[code] == exp
    assert exponent(code) == exp
    assert exponent(code.lower()) == exp


@pytest.mark.parametrize(
    "code",
    ["HRK", "SLL", "ZWL", "VEF", "MRO", "STD", "BYR", "LTL",  # withdrawn
     "XAU", "XAG", "XPT", "XPD", "XTS", "XXX", "XDR", "XBA", "XBB", "XBC", "XBD", "XSU",
     "XUA"],  # metals, testing codes, units of account
)  # fmt: skip
def test_uncharged_codes_are_absent(code: str) -> None:
    assert code not in CURRENCY_EXPONENTS
    with pytest.raises(InvalidAmount):
        normalize_currency(code)


def test_symbols_are_for_known_currencies() -> None:
    assert set(CURRENCY_SYMBOLS) <= set(CURRENCY_EXPONENTS)
    assert "CNY" not in CURRENCY_SYMBOLS  # ¥ already means JPY


# --- normalize_currency -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_code", "expected"), [("USD", "USD"), ("usd", "USD"), ("Jpy", "JPY")]
)
def test_normalize_currency(given_code: str, expected: str) -> None:
    assert normalize_currency(given_code) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "XYZ",
        "usdd",
        "",
        840,
        "US",
        " USD",
        "USD ",
        "U$D",
        "ÜSD",
        "\uff35\uff33\uff24",
        None,
        b"USD",
        ["USD"],
    ],
)
def test_normalize_currency_rejects(bad: object) -> None:
    with pytest.raises(InvalidAmount) as info:
        normalize_currency(bad)
    assert repr(bad)[:20] in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, PaygateError)


def test_normalize_currency_message_is_truncated() -> None:
    with pytest.raises(InvalidAmount) as info:
        normalize_currency("X" * 1000)
    assert "X" * 19 in str(info.value)
    assert "X" * 20 not in str(info.value)


# --- to_minor --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (Decimal("19.99"), "USD", 1999),
        ("8.29", "USD", 829),
        ("19.99", "USD", 1999),
        ("1.18", "USD", 118),
        ("7.77", "USD", 777),
        ("0.07", "USD", 7),
        ("0.01", "usd", 1),
        (Decimal("19.990"), "USD", 1999),
        ("19.000", "USD", 1900),
        (Decimal("19"), "EUR", 1900),
        (19, "EUR", 1900),
        (5, "JPY", 5),
        ("5", "JPY", 5),
        (Decimal("5.000"), "JPY", 5),
        (Decimal("1E+2"), "JPY", 100),
        (Decimal("1.234"), "KWD", 1234),
        ("1.2", "KWD", 1200),
        (Decimal("0.0001"), "CLF", 1),
        ("10000000000000", "USD", MAX_MINOR_AMOUNT),
        ("1000000000000000", "JPY", MAX_MINOR_AMOUNT),
    ],
)
def test_to_minor_known_values(amount: Decimal | int | str, currency: str, expected: int) -> None:
    result = to_minor(amount, currency)
    assert result == expected
    assert type(result) is int


def test_float_trap_is_real_and_avoided() -> None:
    assert int(19.99 * 100) == 1998  # the bug this module exists to prevent
    assert to_minor("19.99", "USD") == 1999
    assert to_minor(Decimal("19.99"), "USD") == 1999


def test_every_cent_value_round_trips() -> None:
    hundred = Decimal(100)
    for cents in range(1, 100_000):
        assert to_minor(Decimal(cents) / hundred, "USD") == cents
        assert to_minor(f"{cents // 100}.{cents % 100:02d}", "USD") == cents
        assert to_minor(str(from_minor(cents, "USD")), "USD") == cents


def test_to_minor_zero_cents_is_rejected() -> None:
    with pytest.raises(InvalidAmount):
        to_minor(Decimal(0) / 100, "USD")


@pytest.mark.parametrize("amount", [19.99, 1.0, 0.0, True, False, None, [1], (1,), b"1", object()])
def test_to_minor_type_errors(amount: object) -> None:
    with pytest.raises(TypeError):
        to_minor(amount, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        (0, "USD"),
        ("0", "USD"),
        ("0.00", "USD"),
        (Decimal("0"), "USD"),
        (Decimal("-0"), "USD"),
        (-1, "USD"),
        ("-5", "USD"),
        (Decimal("-0.01"), "USD"),
        (Decimal("NaN"), "USD"),
        (Decimal("sNaN"), "USD"),
        (Decimal("Infinity"), "USD"),
        (Decimal("-Infinity"), "USD"),
        ("NaN", "USD"),
        ("Infinity", "USD"),
        ("inf", "USD"),
        ("19.999", "USD"),
        (Decimal("19.999"), "USD"),
        (Decimal("19.991"), "USD"),
        ("1.5", "JPY"),
        (Decimal("0.5"), "JPY"),
        ("1.2345", "KWD"),
        (Decimal("0.00001"), "CLF"),
        (Decimal("1E-999999"), "USD"),
        ("1.0000000000000000000000000000000000001", "USD"),  # more digits than the context
        ("1e3", "USD"),
        ("1E3", "USD"),
        (" 5", "USD"),
        ("5 ", "USD"),
        ("+5", "USD"),
        ("", "USD"),
        ("1_000", "USD"),
        ("1,000", "USD"),
        ("1.", "USD"),
        (".5", "USD"),
        ("--5", "USD"),
        ("\u0665", "USD"),  # ARABIC-INDIC DIGIT FIVE
        ("10000000000000.01", "USD"),
        (MAX_MINOR_AMOUNT + 1, "JPY"),
        pytest.param(10**10000, "USD", id="10**10000"),
        (Decimal("1E+999999"), "USD"),
        ("1", "XYZ"),
        ("1", "usdd"),
        ("1", ""),
        ("1", 840),
        ("1", "US"),
    ],
)
def test_to_minor_invalid_amounts(amount: Decimal | int | str, currency: str) -> None:
    with pytest.raises(InvalidAmount):
        to_minor(amount, currency)


def test_to_minor_ignores_decimal_context() -> None:
    with localcontext() as context:
        context.prec = 3
        assert to_minor("9999999999999.99", "USD") == 999_999_999_999_999
        with pytest.raises(InvalidAmount):
            to_minor("1.001", "USD")


# --- from_minor --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (1999, "USD", "19.99"),
        (1900, "USD", "19.00"),
        (1, "USD", "0.01"),
        (0, "USD", "0.00"),
        (-500, "EUR", "-5.00"),
        (5, "JPY", "5"),
        (1000, "jpy", "1000"),
        (1234, "KWD", "1.234"),
        (1, "CLF", "0.0001"),
        (10**40 + 1, "USD", "1" + "0" * 37 + "0.01"),
    ],
)
def test_from_minor(minor: int, currency: str, text: str) -> None:
    result = from_minor(minor, currency)
    assert str(result) == text
    assert result == Decimal(text)


@pytest.mark.parametrize("minor", [19.99, 1.0, True, Decimal(1), "1", None])
def test_from_minor_type_errors(minor: object) -> None:
    with pytest.raises(TypeError):
        from_minor(minor, "USD")  # type: ignore[arg-type]


def test_from_minor_unknown_currency() -> None:
    with pytest.raises(InvalidAmount):
        from_minor(1, "XYZ")


# --- validate_minor ----------------------------------------------------------------------


@pytest.mark.parametrize("amount", [1, 1999, MAX_MINOR_AMOUNT])
def test_validate_minor_accepts(amount: int) -> None:
    assert validate_minor(amount, "USD") == amount
    assert validate_minor(amount, "usd", allow_zero=True) == amount


def test_validate_minor_zero() -> None:
    assert validate_minor(0, "USD", allow_zero=True) == 0
    with pytest.raises(InvalidAmount):
        validate_minor(0, "USD")


@pytest.mark.parametrize(
    "amount",
    [
        -1,
        -(10**20),
        MAX_MINOR_AMOUNT + 1,
        10**100,
        pytest.param(10**10000, id="10**10000"),
        pytest.param(-(10**10000), id="-10**10000"),
    ],
)
@pytest.mark.parametrize("allow_zero", [False, True])
def test_validate_minor_out_of_range(amount: int, allow_zero: bool) -> None:
    with pytest.raises(InvalidAmount):
        validate_minor(amount, "USD", allow_zero=allow_zero)


@pytest.mark.parametrize("amount", [19.99, 1.0, Decimal(1), "1", True, False, None, [1]])
def test_validate_minor_type_errors(amount: object) -> None:
    with pytest.raises(TypeError):
        validate_minor(amount, "USD")


@pytest.mark.parametrize("currency", ["XYZ", "usdd", "", "US", "XAU"])
def test_validate_minor_currency(currency: str) -> None:
    with pytest.raises(InvalidAmount):
        validate_minor(100, currency)


# --- format_money ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "kwargs", "text"),
    [
        (123456, "USD", {}, "$1,234.56"),
        (1000, "JPY", {}, "¥1,000"),
        (1235, "KWD", {}, "1.235 KWD"),
        (-500, "EUR", {}, "-€5.00"),
        (99, "INR", {}, "₹0.99"),
        (123456, "USD", {"symbol": False}, "1,234.56 USD"),
        (-123456, "USD", {"symbol": False}, "-1,234.56 USD"),
        (0, "GBP", {}, "£0.00"),
        (100000000, "usd", {}, "$1,000,000.00"),
        (1234567, "KRW", {}, "₩1,234,567"),
        (1, "CLF", {}, "0.0001 CLF"),
        (123456, "CHF", {}, "1,234.56 CHF"),
        (123456, "CNY", {}, "1,234.56 CNY"),
        (-1235, "KWD", {}, "-1.235 KWD"),
    ],
)
def test_format_money(minor: int, currency: str, kwargs: dict[str, bool], text: str) -> None:
    assert format_money(minor, currency, **kwargs) == text


@pytest.mark.parametrize("minor", [19.99, True, Decimal(1), "1", None])
def test_format_money_type_errors(minor: object) -> None:
    with pytest.raises(TypeError):
        format_money(minor, "USD")  # type: ignore[arg-type]


def test_format_money_huge_amount() -> None:
    text = format_money(10**10000, "EUR")
    assert text.startswith("€100,000,000,")
    assert text.endswith(",000.00")
    assert len(text) == len("€") + 9999 + (9999 - 1) // 3 + len(".00")  # 10**9998 euros


def test_format_money_unknown_currency() -> None:
    with pytest.raises(InvalidAmount):
        format_money(100, "XYZ")


# --- properties ----------------------------------------------------------------------------


@given(n=chargeable, currency=currencies)
def test_round_trip_through_decimal(n: int, currency: str) -> None:
    assert to_minor(from_minor(n, currency), currency) == n


@given(n=chargeable, currency=currencies)
def test_round_trip_through_str(n: int, currency: str) -> None:
    assert to_minor(str(from_minor(n, currency)), currency) == n


@given(n=chargeable, currency=currencies)
def test_validate_minor_property(n: int, currency: str) -> None:
    assert validate_minor(n, currency) == n


@given(n=st.integers(min_value=-(10**20), max_value=10**20), currency=currencies)
def test_from_minor_has_the_currency_exponent(n: int, currency: str) -> None:
    assert from_minor(n, currency).as_tuple().exponent == -CURRENCY_EXPONENTS[currency]


@given(n=st.integers(min_value=-(10**20), max_value=10**20), currency=currencies, sym=st.booleans())
def test_format_money_never_raises_and_keeps_digits(n: int, currency: str, sym: bool) -> None:
    text = format_money(n, currency, symbol=sym)
    digits = re.sub(r"[^0-9]", "", text)
    assert digits.lstrip("0") == str(abs(n)).lstrip("0")
    assert text.startswith("-") == (n < 0)
    places = CURRENCY_EXPONENTS[currency]
    number = re.search(r"[0-9][0-9,.]*", text)
    assert number is not None
    if places:
        assert re.search(rf"\.[0-9]{{{places}}}$", number.group())
    else:
        assert "." not in number.group()


@given(n=chargeable, extra=st.integers(min_value=1, max_value=9), currency=currencies)
def test_excess_places_are_refused(n: int, extra: int, currency: str) -> None:
    places = CURRENCY_EXPONENTS[currency]
    amount = Decimal(f"{n * 10 + extra}E-{places + 1}")  # one significant digit too many
    with pytest.raises(InvalidAmount):
        to_minor(amount, currency)
    with pytest.raises(InvalidAmount):
        to_minor(f"{amount:f}", currency)


# -- formatting for a locale (CLDR data through Babel) ----------------------------------

NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "shown"),
    [
        (199999, "EUR", "de", f"1.999,99{NBSP}€"),
        (-500, "EUR", "de", f"-5,00{NBSP}€"),
        (1000, "JPY", "de", f"1.000{NBSP}¥"),
        (1234, "HUF", "de", f"12,34{NBSP}HUF"),  # ISO 4217 decimals, never CLDR's cash rounding
        (19999999, "INR", "hi", "₹1,99,999.99"),
        (1999, "USD", "hi", "$19.99"),
        (1235, "KWD", "en-us", f"KWD{NBSP}1.235"),
        (199999, "USD", "en_US", "$1,999.99"),
        (199999, "EUR", "de-at", f"€{NBSP}1.999,99"),
        (199999, "EUR", "xx", "€1,999.99"),  # unknown locale: the format without one
        (199999, "EUR", "de-xx", f"1.999,99{NBSP}€"),  # unknown region: its language
    ],
)
def test_format_money_for_a_locale(minor: int, currency: str, locale: str, shown: str) -> None:
    assert format_money(minor, currency, locale=locale) == shown


def test_format_money_with_the_code_for_a_locale() -> None:
    assert format_money(199999, "EUR", locale="de", symbol=False) == "1.999,99 EUR"
    assert format_money(19999999, "INR", locale="hi", symbol=False) == "1,99,999.99 INR"


@given(
    minor=st.integers(min_value=-(10**15), max_value=10**15),
    currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)),
    locale=st.sampled_from(["de", "hi", "en", "fr", "ar", "ja"]),
)
def test_format_money_for_a_locale_keeps_every_digit(
    minor: int, currency: str, locale: str
) -> None:
    shown = format_money(minor, currency, locale=locale, symbol=False)
    digits = "".join(ch for ch in shown if ch.isdigit())
    assert int(digits) == abs(minor)
