"""Money at the API edge: ISO 4217 currencies and decimal strings <-> integer minor units.

Inside steadypay an amount is an ``int`` count of minor units (cents for USD,
yen for JPY, fils for KWD) next to a :class:`Currency`. Decimal strings in major
units ("12.34") exist only where amounts enter and leave the API, and are
converted here by string handling and ``int()`` alone: no float, no Decimal.

Error messages are written for API users and never echo long or unprintable
input back.
"""

import re
from dataclasses import dataclass
from typing import Final

from steadypay.currencies import CURRENCY_EXPONENTS

__all__ = [
    "MAX_AMOUNT_MINOR",
    "MAX_BALANCE_MINOR",
    "Currency",
    "InvalidAmount",
    "MoneyError",
    "UnknownCurrency",
    "format_amount",
    "get_currency",
    "is_currency",
    "parse_amount",
]

MAX_AMOUNT_MINOR: Final = 10**15
"""Largest single amount accepted, in minor units of any currency."""

MAX_BALANCE_MINOR: Final = 4 * 10**18
"""Bound on any account balance's magnitude; below 2**63 - 1, so safe in a bigint."""

MAX_AMOUNT_TEXT_LENGTH: Final = 40
"""Longer amount strings are rejected before any other work is done on them."""


class MoneyError(ValueError):
    """A currency or amount is not acceptable; the message is safe to show to API users."""


class UnknownCurrency(MoneyError):
    """The code is not an active ISO 4217 currency with a minor unit."""


class InvalidAmount(MoneyError):
    """The amount is not a well-formed, in-range amount of its currency."""


@dataclass(frozen=True, slots=True)
class Currency:
    """An active ISO 4217 currency; 1 major unit is ``10**exponent`` minor units.

    Only codes from the ISO table exist, each with its ISO exponent, so a
    ``Currency`` value can always be trusted. Prefer :func:`get_currency`.
    """

    code: str
    exponent: int

    def __post_init__(self) -> None:
        expected = CURRENCY_EXPONENTS.get(self.code) if isinstance(self.code, str) else None
        if expected is None:
            raise _unknown_currency(self.code)
        if type(self.exponent) is not int or self.exponent != expected:
            raise MoneyError(f"{self.code} has {expected} minor-unit digits, not {self.exponent!r}")


def _unknown_currency(code: object) -> UnknownCurrency:
    """The most helpful error for a code that is not in the table."""
    if not isinstance(code, str):
        return UnknownCurrency("currency must be a three-letter ISO 4217 code such as 'USD'")
    if code.isascii() and code.upper() in CURRENCY_EXPONENTS:
        return UnknownCurrency(
            f"unknown currency {code!r}: currency codes are upper case, use {code.upper()!r}"
        )
    if len(code) <= 8 and code.isascii() and code.isprintable():
        return UnknownCurrency(
            f"unknown currency {code!r}: use an active ISO 4217 code such as 'USD'"
        )
    return UnknownCurrency("unknown currency: use an active ISO 4217 code such as 'USD'")


_CURRENCIES: Final[dict[str, Currency]] = {
    code: Currency(code, exponent) for code, exponent in CURRENCY_EXPONENTS.items()
}


def get_currency(code: str) -> Currency:
    """The currency for an exact, upper-case, active ISO 4217 code such as ``"USD"``.

    Raises :class:`UnknownCurrency` for anything else, including ``"usd"``.
    """
    if isinstance(code, str):
        currency = _CURRENCIES.get(code)
        if currency is not None:
            return currency
    raise _unknown_currency(code)


def is_currency(code: str) -> bool:
    """Whether ``get_currency(code)`` would succeed."""
    return isinstance(code, str) and code in _CURRENCIES


# Plain decimal in major units: ASCII digits, then optionally "." and more digits.
# Used with fullmatch, so a trailing newline does not sneak past "$".
_AMOUNT_RE: Final = re.compile(r"(?P<whole>[0-9]+)(?:\.(?P<fraction>[0-9]+))?", re.ASCII)
_EXPONENT_NOTATION_RE: Final = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+", re.ASCII)
_DIGITS_AND_DOTS_RE: Final = re.compile(r"[0-9.]+", re.ASCII)
_EXAMPLE: Final = '"12.34"'


def parse_amount(text: str, currency: Currency) -> int:
    """Minor units of a positive amount written in major units, e.g. ``"12.34"`` USD -> 1234.

    Accepts only ASCII digits with an optional decimal point followed by at most
    ``currency.exponent`` digits; the result is in ``1..MAX_AMOUNT_MINOR``.
    Raises :class:`InvalidAmount`, with a message saying what is wrong, otherwise.
    """
    if not isinstance(text, str):
        raise InvalidAmount(f"amount must be a string such as {_EXAMPLE}")
    if len(text) > MAX_AMOUNT_TEXT_LENGTH:
        raise InvalidAmount(f"amount is too long: at most {MAX_AMOUNT_TEXT_LENGTH} characters")
    match = _AMOUNT_RE.fullmatch(text)
    if match is None:
        raise InvalidAmount(_malformed_reason(text))

    fraction = match.group("fraction")
    if fraction is not None and len(fraction) > currency.exponent:
        if currency.exponent == 0:
            raise InvalidAmount(
                f"{currency.code} amounts are whole numbers: write them without a decimal point"
            )
        raise InvalidAmount(
            f"{currency.code} amounts have at most {currency.exponent} digits after the "
            "decimal point"
        )

    # "12.3" USD -> "12" + "30" -> 1230: shift the point by padding the digits.
    minor = int(match.group("whole") + (fraction or "").ljust(currency.exponent, "0"))

    if minor == 0:
        raise InvalidAmount("amount must be greater than zero")
    if minor > MAX_AMOUNT_MINOR:
        limit = format_amount(MAX_AMOUNT_MINOR, currency)
        raise InvalidAmount(f"amount must not exceed {limit} {currency.code}")
    return minor


def _malformed_reason(text: str) -> str:
    """Why ``text`` (at most 40 characters, not a plain decimal) is not an amount."""
    if not text:
        return "amount must not be empty"
    if any(ch.isspace() for ch in text):
        return "amount must not contain spaces or other whitespace"
    if text[0] in "+-":
        return f"amount must be positive and written without a sign, such as {_EXAMPLE}"
    if _EXPONENT_NOTATION_RE.fullmatch(text):
        return f"amount must be written as a plain decimal such as {_EXAMPLE}, not with an exponent"
    if "," in text or "_" in text or "'" in text:
        return (
            "amount must use '.' as the decimal point and no thousands separators, "
            f"such as {_EXAMPLE}"
        )
    if any(ch.isdigit() and not ch.isascii() for ch in text):
        return "amount must use the ASCII digits 0-9"
    if _DIGITS_AND_DOTS_RE.fullmatch(text):
        if text.count(".") > 1:
            return "amount must contain at most one decimal point"
        return 'amount must have digits on both sides of the decimal point, such as "0.50"'
    return f"amount must contain only digits and an optional decimal point, such as {_EXAMPLE}"


def format_amount(minor: int, currency: Currency) -> str:
    """The decimal string, in major units, of a signed amount in minor units.

    Always exactly ``currency.exponent`` fractional digits, no separators:
    ``-500`` USD -> ``"-5.00"``, ``0`` USD -> ``"0.00"``, ``1234`` JPY -> ``"1234"``.
    Raises ``TypeError`` if ``minor`` is not an ``int`` (``bool`` included).
    """
    if type(minor) is not int:
        # A float or Decimal here is a bug in our code, not bad input.
        raise TypeError(f"minor must be an int, not {type(minor).__name__}")
    sign = "-" if minor < 0 else ""
    magnitude = -minor if minor < 0 else minor
    exponent = currency.exponent
    if exponent == 0:
        return f"{sign}{magnitude}"
    digits = str(magnitude).rjust(exponent + 1, "0")  # 5 USD -> "005" -> "0.05"
    return f"{sign}{digits[:-exponent]}.{digits[-exponent:]}"
