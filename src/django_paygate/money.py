"""Exact money arithmetic: major units, minor units and display strings.

django-paygate passes and stores every amount as an ``int`` of *minor units*, the
smallest unit of the currency as ISO 4217 defines it: ``1999`` is 19.99 USD,
1,999 JPY or 1.999 KWD. The rules this module enforces:

* **Integers in minor units.** Services check amounts with :func:`validate_minor`;
  a chargeable amount is at least 1 and at most :data:`MAX_MINOR_AMOUNT`.
* **No floats, anywhere.** ``19.99 * 100`` is ``1998.9999999999998`` and
  ``int(19.99 * 100) == 1998``: a float amount is a bug waiting for the right price.
  Every function here raises ``TypeError`` for a ``float`` (and for a ``bool``).
  Major-unit amounts come in as :class:`~decimal.Decimal`, ``int`` or a plain
  decimal string such as ``"19.99"``.
* **Never silently rounded.** An amount with more decimal places than the currency
  has (``Decimal("19.999")`` in USD, ``"1.5"`` in JPY) raises
  :class:`~django_paygate.exceptions.InvalidAmount`. Trailing zeros
  (``"19.990"``) are accepted, because dropping them changes nothing.
* **Known currencies only.** :data:`CURRENCY_EXPONENTS` holds every active ISO 4217
  currency except the precious metals, the test codes and the units of account (XAU,
  XAG, XPT, XPD, XTS, XXX, XDR, XBA to XBD, XSU, XUA), which cannot be charged.

Provider-specific rules (minimum charges, Stripe's three-decimal amounts that must
end in 0, currencies a provider does not support) belong to the provider adapters,
not here. This module imports nothing from Django; it formats for a locale with Babel.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

import babel
from babel.numbers import NumberPattern, get_currency_symbol, parse_pattern

from django_paygate.exceptions import InvalidAmount

__all__ = [
    "CURRENCY_EXPONENTS",
    "CURRENCY_SYMBOLS",
    "MAX_MINOR_AMOUNT",
    "exponent",
    "format_money",
    "from_minor",
    "normalize_currency",
    "to_minor",
    "validate_minor",
]

#: The largest amount, in minor units, that django-paygate charges, refunds or stores.
#: It fits a ``BigIntegerField`` with room to spare and every provider's own limit.
MAX_MINOR_AMOUNT = 10**15

# ISO 4217 list one, grouped by minor-unit exponent. Withdrawn codes (HRK, SLL, ZWL,
# ANG, ...) are absent; fund codes that are still listed (BOV, CHE, CHW, CLF, COU,
# MXV, USN, UYI, UYW) are present.
_ZERO_DECIMAL = frozenset(
    {
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
        "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
    }
)  # fmt: skip
_THREE_DECIMAL = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
_FOUR_DECIMAL = frozenset({"CLF", "UYW"})
_TWO_DECIMAL = frozenset(
    {
        "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN",
        "BAM", "BBD", "BDT", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN",
        "BWP", "BYN", "BZD",
        "CAD", "CDF", "CHE", "CHF", "CHW", "CNY", "COP", "COU", "CRC", "CUC", "CUP",
        "CVE", "CZK",
        "DKK", "DOP", "DZD",
        "EGP", "ERN", "ETB", "EUR",
        "FJD", "FKP",
        "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ", "GYD",
        "HKD", "HNL", "HTG", "HUF",
        "IDR", "ILS", "INR", "IRR",
        "JMD",
        "KES", "KGS", "KHR", "KPW", "KYD", "KZT",
        "LAK", "LBP", "LKR", "LRD", "LSL",
        "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK",
        "MXN", "MXV", "MYR", "MZN",
        "NAD", "NGN", "NIO", "NOK", "NPR", "NZD",
        "PAB", "PEN", "PGK", "PHP", "PKR", "PLN",
        "QAR",
        "RON", "RSD", "RUB",
        "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP",
        "STN", "SVC", "SYP", "SZL",
        "THB", "TJS", "TMT", "TOP", "TRY", "TTD", "TWD", "TZS",
        "UAH", "USD", "USN", "UYU", "UZS",
        "VED", "VES",
        "WST",
        "XCD", "XCG",
        "YER",
        "ZAR", "ZMW", "ZWG",
    }
)  # fmt: skip

#: ISO 4217 minor-unit exponent of every chargeable currency: ``USD`` 2, ``JPY`` 0,
#: ``KWD`` 3, ``CLF`` 4. Read-only.
CURRENCY_EXPONENTS: Mapping[str, int] = MappingProxyType(
    dict(
        sorted(
            (code, exp)
            for exp, codes in (
                (0, _ZERO_DECIMAL),
                (2, _TWO_DECIMAL),
                (3, _THREE_DECIMAL),
                (4, _FOUR_DECIMAL),
            )
            for code in codes
        )
    )
)

#: Symbols used by :func:`format_money`, only where the symbol alone says which
#: currency it is well enough. Every other currency is shown as ``"1,234.56 CODE"``.
CURRENCY_SYMBOLS: Mapping[str, str] = MappingProxyType(
    {
        "EUR": "€",
        "GBP": "£",
        "ILS": "₪",
        "INR": "₹",
        "JPY": "¥",
        "KRW": "₩",
        "NGN": "₦",
        "PHP": "₱",
        "THB": "฿",
        "TRY": "₺",
        "UAH": "₴",
        "USD": "$",
        "VND": "₫",
    }
)

# A plain decimal number: optional minus, ASCII digits, optional fraction. No exponent,
# sign "+", whitespace, underscores, NaN or Infinity.
_PLAIN_DECIMAL = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def _show(value: object) -> str:
    """``repr`` of a caller's value, cut short enough for an error message."""
    try:
        text = repr(value)
    except Exception:  # an int with more digits than Python converts to text, a broken repr
        text = f"<{type(value).__name__}>"
    return text[:20]


def normalize_currency(currency: object) -> str:
    """Return ``currency`` as an upper-case ISO 4217 code from :data:`CURRENCY_EXPONENTS`.

    Accepts a ``str`` of exactly three ASCII letters in any case; nothing is stripped.
    Anything else raises :class:`InvalidAmount`.
    """
    if (
        isinstance(currency, str)
        and len(currency) == 3
        and currency.isascii()
        and currency.isalpha()
    ):
        code = currency.upper()
        if code in CURRENCY_EXPONENTS:
            return code
    raise InvalidAmount(f"{_show(currency)} is not a supported ISO 4217 currency code")


def exponent(currency: str) -> int:
    """Number of decimal places of ``currency``'s minor unit (``USD`` 2, ``JPY`` 0)."""
    return CURRENCY_EXPONENTS[normalize_currency(currency)]


def _require_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int of minor units, not {type(value).__name__}")
    return int(value)


def to_minor(amount: Decimal | int | str, currency: str) -> int:
    """Convert a positive major-unit amount to an exact ``int`` of minor units.

    ``to_minor(Decimal("19.99"), "USD") == 1999``, ``to_minor("1.234", "KWD") == 1234``,
    ``to_minor(5, "JPY") == 5``.

    ``amount`` is a :class:`~decimal.Decimal`, an ``int`` or a plain decimal string
    (``"19.99"``, not ``"1e3"``, ``" 5"`` or ``"+5"``); any other type, ``float`` and
    ``bool`` included, raises ``TypeError``. A malformed string, NaN, infinity, zero,
    a negative amount, more decimal places than the currency has, or more than
    :data:`MAX_MINOR_AMOUNT` minor units raises :class:`InvalidAmount`. Nothing is
    rounded.
    """
    if isinstance(amount, bool) or not isinstance(amount, (Decimal, int, str)):
        raise TypeError(
            f"amount must be a Decimal, int or str, not {type(amount).__name__}"
            " (floats cannot hold money exactly)"
        )
    code = normalize_currency(currency)
    places = CURRENCY_EXPONENTS[code]
    if isinstance(amount, str) and not _PLAIN_DECIMAL.fullmatch(amount):
        raise InvalidAmount(f"{_show(amount)} is not a plain decimal amount")
    value = Decimal(amount)  # exact for str, int and Decimal, whatever the context

    if not value.is_finite():
        raise InvalidAmount(f"{_show(amount)} is not a finite amount")
    if value <= 0:
        raise InvalidAmount(f"{_show(amount)} is not a positive amount")
    # Decimal comparisons are exact, whatever the context's precision.
    if value > from_minor(MAX_MINOR_AMOUNT, code):
        raise InvalidAmount(f"{_show(amount)} {code} is more than the largest amount allowed")

    _sign, digits, exp = value.as_tuple()
    if not isinstance(exp, int):  # pragma: no cover - finite values have an int exponent
        raise InvalidAmount(f"{_show(amount)} is not a finite amount")
    coefficient = "".join(map(str, digits)).rstrip("0")  # not empty: value > 0
    exp += len(digits) - len(coefficient)
    if -exp > places:
        raise InvalidAmount(
            f"{_show(amount)} has more decimal places than {code} allows ({places})"
        )
    # The bound above keeps this small: at most 20 digits, a scale of at most 10**19.
    scale: int = 10 ** (exp + places)
    return int(coefficient) * scale


def from_minor(minor: int, currency: str) -> Decimal:
    """Convert an ``int`` of minor units to a :class:`~decimal.Decimal` in major units.

    The result has exactly the currency's number of decimal places:
    ``from_minor(1900, "USD") == Decimal("19.00")``, ``from_minor(5, "JPY") == Decimal("5")``.
    Zero and negative amounts are allowed (this is a display and ledger helper);
    ``minor`` must be an ``int`` (not ``bool`` or ``float``: ``TypeError``).
    """
    minor = _require_int(minor, "minor")
    places = exponent(currency)
    sign, digits, _exp = Decimal(minor).as_tuple()
    return Decimal((sign, digits, -places))  # exact, whatever the context's precision


def validate_minor(amount: object, currency: str, *, allow_zero: bool = False) -> int:
    """Check a minor-unit amount before it is charged, refunded or stored, and return it.

    ``amount`` must be an ``int`` (``float``, ``Decimal``, ``str``, ``bool`` and ``None``
    raise ``TypeError``) from 1 (0 with ``allow_zero``) to :data:`MAX_MINOR_AMOUNT`,
    else :class:`InvalidAmount`. ``currency`` is checked with :func:`normalize_currency`.
    """
    value = _require_int(amount, "amount")
    code = normalize_currency(currency)
    lowest = 0 if allow_zero else 1
    if value < lowest:
        raise InvalidAmount(
            f"{_show(value)} {code} is less than the smallest amount allowed ({lowest})"
        )
    if value > MAX_MINOR_AMOUNT:
        raise InvalidAmount(
            f"{_show(value)} {code} is more than the largest amount allowed ({MAX_MINOR_AMOUNT})"
        )
    return value


def format_money(
    minor: int, currency: str, *, symbol: bool = True, locale: str | None = None
) -> str:
    """Format an ``int`` of minor units for display, with thousands separators.

    Without ``locale``: ``format_money(123456, "USD") == "$1,234.56"``,
    ``format_money(1000, "JPY") == "¥1,000"``, ``format_money(1235, "KWD") == "1.235 KWD"``,
    ``format_money(-500, "EUR") == "-€5.00"``. Currencies without an entry in
    :data:`CURRENCY_SYMBOLS`, and every currency when ``symbol`` is false, are shown as
    ``"<number> <CODE>"``.

    With ``locale`` (``"de"``, ``"hi"``, ``"en-us"``, ``"pt_BR"``) the amount is written as
    that locale writes money, from the CLDR data of Babel: ``format_money(199999, "EUR",
    locale="de") == "1.999,99 €"``, ``format_money(19999999, "INR", locale="hi") ==
    "₹1,99,999.99"``; with ``symbol=False`` the locale's number and the code:
    ``"1.999,99 EUR"``. The number of decimals is always the ISO 4217 exponent (CLDR
    rounds some currencies, such as HUF, for cash; an amount is never rounded here). A
    locale Babel does not know falls back to its language, then to the format without one.
    """
    code = normalize_currency(currency)
    value = from_minor(minor, code)
    known = _babel_locale(locale) if locale else None
    if known is not None:
        return _format_for_locale(value, code, known, symbol=symbol)
    sign = "-" if value < 0 else ""
    number = f"{value.copy_abs():,f}"  # exact: keeps every digit and the decimal places
    if symbol and code in CURRENCY_SYMBOLS:
        return f"{sign}{CURRENCY_SYMBOLS[code]}{number}"
    return f"{sign}{number} {code}"


@functools.lru_cache(maxsize=256)
def _babel_locale(tag: str) -> babel.Locale | None:
    """The Babel locale of a language tag or locale name, else of its language, else None."""
    name = tag.replace("-", "_")
    for candidate in (name, name.split("_")[0]):
        try:
            return babel.Locale.parse(candidate)
        except (ValueError, TypeError, babel.UnknownLocaleError):
            continue
    return None


@functools.lru_cache(maxsize=1024)
def _pattern(locale: babel.Locale, digits: int, currency: bool) -> NumberPattern:
    """The locale's currency (or plain number) pattern, with exactly ``digits`` decimals."""
    formats = locale.currency_formats if currency else locale.decimal_formats
    source = formats["standard"] if currency else formats[None]
    pattern = copy.copy(parse_pattern(source))
    pattern.frac_prec = (digits, digits)
    return pattern


def _format_for_locale(value: Decimal, code: str, locale: babel.Locale, *, symbol: bool) -> str:
    digits = exponent(code)
    if symbol:
        text = _pattern(locale, digits, True).apply(
            value, locale, currency=code, currency_digits=False
        )
        # CLDR's currency spacing, which Babel leaves out: a letter-ending symbol
        # ("CHF", "KWD") and a digit are kept apart by a no-break space.
        sign = get_currency_symbol(code, locale)
        if sign[-1:].isalpha():
            text = re.sub(re.escape(sign) + r"(?=[-\d])", sign + "\u00a0", text, count=1)
        if sign[:1].isalpha():
            text = re.sub(r"(?<=\d)" + re.escape(sign), "\u00a0" + sign, text, count=1)
        return text
    number = _pattern(locale, digits, False).apply(value, locale)
    return f"{number} {code}"


# ---------------------------------------------------------------------------
# A provider API's own minor units (where its exponent is not ISO 4217's)
# ---------------------------------------------------------------------------


def to_api_units(amount: int, currency: str, api_exponent: int, *, provider: str) -> int:
    """``amount`` (ISO 4217 minor units) in the units of an API that writes ``currency``
    with ``api_exponent`` decimals. :class:`InvalidAmount` when the API cannot write it
    exactly (``provider`` names the API in the message); nothing is rounded."""
    shift = api_exponent - exponent(currency)
    if shift >= 0:
        return amount * 10**shift
    if amount % 10**-shift:
        decimals = "in whole units" if api_exponent == 0 else f"with {api_exponent} decimals"
        raise InvalidAmount(
            f"{provider} charges {currency} {decimals}: "
            f"{format_money(amount, currency)} is not a whole amount."
        )
    return amount // 10**-shift


def from_api_units(api: object, currency: str, api_exponent: int, *, provider: str) -> int:
    """The inverse of :func:`to_api_units`, for an untrusted ``api`` amount: anything but
    a non-negative ``int`` that is a whole number of ISO minor units is
    :class:`InvalidAmount`."""
    if isinstance(api, bool) or not isinstance(api, int) or api < 0:
        raise InvalidAmount(f"{provider} sent an amount that is not a non-negative integer.")
    shift = api_exponent - exponent(currency)
    if shift <= 0:
        return api * 10**-shift
    if api % 10**shift:
        raise InvalidAmount(f"{provider} sent a fractional {currency} amount ({api}).")
    return api // 10**shift
