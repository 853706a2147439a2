"""Unit tests for steadypay.money and its ISO 4217 table: what API users rely on."""

import ast
import builtins
import dataclasses
import inspect
import re
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steadypay import currencies, money
from steadypay.currencies import CURRENCY_EXPONENTS
from steadypay.money import (
    MAX_AMOUNT_MINOR,
    MAX_BALANCE_MINOR,
    Currency,
    InvalidAmount,
    MoneyError,
    UnknownCurrency,
    format_amount,
    get_currency,
    is_currency,
    parse_amount,
)

ALL_CODES = sorted(CURRENCY_EXPONENTS)
USD = get_currency("USD")
JPY = get_currency("JPY")
KWD = get_currency("KWD")
BHD = get_currency("BHD")
CLF = get_currency("CLF")
UYW = get_currency("UYW")

any_currency = st.sampled_from(ALL_CODES).map(get_currency)
valid_minor = st.integers(min_value=1, max_value=MAX_AMOUNT_MINOR)


# --- the currency table -------------------------------------------------------------------


def test_table_codes_are_three_upper_case_ascii_letters() -> None:
    bad = [code for code in ALL_CODES if not re.fullmatch(r"[A-Z]{3}", code, re.ASCII)]
    assert bad == []


def test_table_exponents_are_iso_minor_units() -> None:
    bad = {
        code: exp
        for code, exp in CURRENCY_EXPONENTS.items()
        if type(exp) is not int or exp not in {0, 2, 3, 4}
    }
    assert bad == {}


def test_table_has_every_active_code_of_the_pinned_iso_list() -> None:
    # ISO 4217 list one of 2026-01-01: 165 codes with a numeric minor unit.
    assert currencies.ISO_4217_PUBLISHED == "2026-01-01"
    assert len(CURRENCY_EXPONENTS) == 165


@pytest.mark.parametrize(
    ("exponent", "codes"),
    [
        (
            0,
            "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF",
        ),
        (3, "BHD IQD JOD KWD LYD OMR TND"),
        (4, "CLF UYW"),
    ],
)
def test_table_codes_without_two_decimals_are_exactly_these(exponent: int, codes: str) -> None:
    found = {code for code, exp in CURRENCY_EXPONENTS.items() if exp == exponent}
    assert found == set(codes.split())


@pytest.mark.parametrize(
    ("code", "exponent"),
    [
        ("USD", 2),
        ("EUR", 2),
        ("GBP", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("CLF", 4),
        ("UYW", 4),
        ("VES", 2),
        ("VED", 2),
        ("SLE", 2),
        ("ZWG", 2),
        ("XCG", 2),
    ],
)
def test_spot_checks(code: str, exponent: int) -> None:
    assert CURRENCY_EXPONENTS[code] == exponent
    assert get_currency(code) == Currency(code, exponent)
    assert is_currency(code)


@pytest.mark.parametrize(
    "code",
    [
        # withdrawn
        "HRK",
        "SLL",
        "ZWL",
        "ANG",
        "BGN",
        "VEF",
        "MRO",
        "STD",
        # no minor unit in ISO 4217
        "XAU",
        "XAG",
        "XPT",
        "XPD",
        "XDR",
        "XXX",
        "XTS",
        "XBA",
        "XBB",
        "XBC",
        "XBD",
        "XSU",
        "XUA",
    ],
)
def test_withdrawn_and_unitless_codes_are_not_currencies(code: str) -> None:
    assert code not in CURRENCY_EXPONENTS
    assert not is_currency(code)
    with pytest.raises(UnknownCurrency):
        get_currency(code)


def test_table_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        CURRENCY_EXPONENTS["FOO"] = 2  # type: ignore[index]


@pytest.mark.parametrize(
    "code",
    [
        "XYZ",
        "usd",
        "Usd",
        "US",
        "",
        "USDD",
        " USD",
        "USD ",
        "USD\n",
        "\uff35\uff33\uff24",
        840,
        None,
        b"USD",
    ],
)
def test_unknown_codes_raise_unknown_currency(code: object) -> None:
    assert not is_currency(code)  # type: ignore[arg-type]
    with pytest.raises(UnknownCurrency):
        get_currency(code)  # type: ignore[arg-type]


def test_lower_case_code_gets_a_hint_to_use_upper_case() -> None:
    with pytest.raises(UnknownCurrency, match=r"upper case.*'USD'"):
        get_currency("usd")


def test_unknown_currency_message_does_not_echo_long_input() -> None:
    code = "<script>" * 5
    with pytest.raises(UnknownCurrency) as info:
        get_currency(code)
    assert code not in str(info.value)


def test_every_table_code_has_a_currency() -> None:
    for code in ALL_CODES:
        currency = get_currency(code)
        assert (currency.code, currency.exponent) == (code, CURRENCY_EXPONENTS[code])


def test_currency_cannot_be_built_with_a_wrong_exponent_or_code() -> None:
    with pytest.raises(MoneyError, match="USD has 2"):
        Currency("USD", 3)
    with pytest.raises(MoneyError):
        Currency("USD", True)
    with pytest.raises(UnknownCurrency):
        Currency("FOO", 2)


def test_currency_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        USD.exponent = 3  # type: ignore[misc]


def test_error_hierarchy_and_bounds() -> None:
    assert issubclass(MoneyError, ValueError)
    assert issubclass(UnknownCurrency, MoneyError)
    assert issubclass(InvalidAmount, MoneyError)
    assert MAX_AMOUNT_MINOR == 10**15
    assert MAX_AMOUNT_MINOR < MAX_BALANCE_MINOR == 4 * 10**18 < 2**63 - 1


# --- parse_amount: examples -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        # exponent 2
        ("12.34", USD, 1234),
        ("12.3", USD, 1230),
        ("12", USD, 1200),
        ("0.01", USD, 1),
        ("0.1", USD, 10),
        ("007.50", USD, 750),
        ("10000000000000.00", USD, MAX_AMOUNT_MINOR),
        # exponent 0
        ("1", JPY, 1),
        ("1234", JPY, 1234),
        ("1000000000000000", JPY, MAX_AMOUNT_MINOR),
        # exponent 3
        ("0.001", KWD, 1),
        ("1.5", KWD, 1500),
        ("12.345", BHD, 12345),
        ("1000000000000", KWD, MAX_AMOUNT_MINOR),
        # exponent 4
        ("0.0001", CLF, 1),
        ("1.2345", CLF, 12345),
        ("3", UYW, 30000),
        ("100000000000", CLF, MAX_AMOUNT_MINOR),
    ],
)
def test_parse_valid(text: str, currency: Currency, minor: int) -> None:
    assert parse_amount(text, currency) == minor


NOT_A_STRING = 'amount must be a string such as "12.34"'
TOO_LONG = "too long"
EMPTY = "must not be empty"
WHITESPACE = "whitespace"
SIGN = "without a sign"
EXPONENT = "not with an exponent"
SEPARATOR = "no thousands separators"
NON_ASCII_DIGITS = "ASCII digits 0-9"
BOTH_SIDES = "digits on both sides of the decimal point"
ONE_POINT = "at most one decimal point"
GARBAGE = "only digits and an optional decimal point"
WHOLE_NUMBERS = "JPY amounts are whole numbers"
USD_PLACES = "USD amounts have at most 2 digits"
KWD_PLACES = "KWD amounts have at most 3 digits"
CLF_PLACES = "CLF amounts have at most 4 digits"
ZERO = "greater than zero"
TOO_LARGE = "must not exceed"


@pytest.mark.parametrize(
    ("text", "currency", "reason"),
    [
        # not a string: numbers passed by mistake
        (12, USD, NOT_A_STRING),
        (0.1, USD, NOT_A_STRING),
        (12.34, USD, NOT_A_STRING),
        (Decimal("0.1"), USD, NOT_A_STRING),
        (Fraction(1, 10), USD, NOT_A_STRING),
        (True, USD, NOT_A_STRING),
        (None, USD, NOT_A_STRING),
        (b"12.34", USD, NOT_A_STRING),
        # longer than 40 characters, checked before anything else
        ("1" * 41, USD, TOO_LONG),
        (" " * 41, USD, TOO_LONG),
        ("0" * 38 + ".01", USD, TOO_LONG),
        # empty and whitespace
        ("", USD, EMPTY),
        (" ", USD, WHITESPACE),
        (" 1", USD, WHITESPACE),
        ("1 ", USD, WHITESPACE),
        ("1 000", USD, WHITESPACE),
        ("\t1", USD, WHITESPACE),
        ("1\n", USD, WHITESPACE),
        ("12.34\n", USD, WHITESPACE),
        ("\u00a01", USD, WHITESPACE),
        # signs
        ("+1", USD, SIGN),
        ("-1", USD, SIGN),
        ("-0.01", USD, SIGN),
        ("+", USD, SIGN),
        # exponents
        ("1e3", USD, EXPONENT),
        ("1E3", USD, EXPONENT),
        ("1.5e2", USD, EXPONENT),
        ("1e-2", USD, EXPONENT),
        (".5e1", USD, EXPONENT),
        # separators
        ("1,00", USD, SEPARATOR),
        ("1,000.00", USD, SEPARATOR),
        ("1_000", USD, SEPARATOR),
        ("1'000", USD, SEPARATOR),
        # digits that str.isdigit accepts but are not ASCII
        ("\u0661\u0662", USD, NON_ASCII_DIGITS),  # Arabic-Indic
        ("\uff11\uff12", USD, NON_ASCII_DIGITS),  # fullwidth
        ("\u00b2", USD, NON_ASCII_DIGITS),  # superscript two
        ("1.\u0665", USD, NON_ASCII_DIGITS),
        # decimal point without digits on one side, or twice
        ("1.", USD, BOTH_SIDES),
        (".5", USD, BOTH_SIDES),
        (".", USD, BOTH_SIDES),
        ("1..2", USD, ONE_POINT),
        ("1.2.3", USD, ONE_POINT),
        # garbage
        ("abc", USD, GARBAGE),
        ("0x10", USD, GARBAGE),
        ("12.34USD", USD, GARBAGE),
        ("$12", USD, GARBAGE),
        ("NaN", USD, GARBAGE),
        ("inf", USD, GARBAGE),
        ("e", USD, GARBAGE),
        ("1/2", USD, GARBAGE),
        ("\u22121", USD, GARBAGE),  # MINUS SIGN
        # more fractional digits than the currency has, even zeros
        ("1.000", USD, USD_PLACES),
        ("1.001", USD, USD_PLACES),
        ("0.001", USD, USD_PLACES),
        ("1.0", JPY, WHOLE_NUMBERS),
        ("1.00", JPY, WHOLE_NUMBERS),
        ("0.0001", KWD, KWD_PLACES),
        ("1.00000", CLF, CLF_PLACES),
        # zero
        ("0", USD, ZERO),
        ("0.00", USD, ZERO),
        ("0.0", USD, ZERO),
        ("000", USD, ZERO),
        ("0", JPY, ZERO),
        ("0.000", KWD, ZERO),
        # above MAX_AMOUNT_MINOR
        ("10000000000000.01", USD, "must not exceed 10000000000000.00 USD"),
        ("1000000000000001", JPY, "must not exceed 1000000000000000 JPY"),
        ("1000000000000.001", KWD, "must not exceed 1000000000000.000 KWD"),
        ("99999999999999999999", USD, TOO_LARGE),
        ("9" * 40, JPY, TOO_LARGE),
    ],
)
def test_parse_rejects(text: object, currency: Currency, reason: str) -> None:
    with pytest.raises(InvalidAmount, match=re.escape(reason)):
        parse_amount(text, currency)  # type: ignore[arg-type]


def test_parse_error_messages_do_not_echo_the_input() -> None:
    text = "<b>" + "x" * 30
    with pytest.raises(InvalidAmount) as info:
        parse_amount(text, USD)
    assert text not in str(info.value)


# --- format_amount: examples ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (-500, USD, "-5.00"),
        (0, USD, "0.00"),
        (5, USD, "0.05"),
        (-1, USD, "-0.01"),
        (1234, USD, "12.34"),
        (1234, JPY, "1234"),
        (-1234, JPY, "-1234"),
        (0, JPY, "0"),
        (1, KWD, "0.001"),
        (0, KWD, "0.000"),
        (1, CLF, "0.0001"),
        (123456789, CLF, "12345.6789"),
        (MAX_AMOUNT_MINOR, USD, "10000000000000.00"),
        (MAX_BALANCE_MINOR, USD, "40000000000000000.00"),
        (-MAX_BALANCE_MINOR, KWD, "-4000000000000000.000"),
    ],
)
def test_format(minor: int, currency: Currency, text: str) -> None:
    assert format_amount(minor, currency) == text


@pytest.mark.parametrize("minor", [1.0, 0.1, Decimal(1), Fraction(1), True, "100", None])
def test_format_refuses_anything_but_int(minor: object) -> None:
    with pytest.raises(TypeError):
        format_amount(minor, USD)  # type: ignore[arg-type]


# --- properties -----------------------------------------------------------------------------


@given(currency=any_currency, minor=valid_minor)
def test_parse_inverts_format(currency: Currency, minor: int) -> None:
    assert parse_amount(format_amount(minor, currency), currency) == minor


@pytest.mark.parametrize("code", ALL_CODES)
def test_parse_inverts_format_at_the_edges_of_every_currency(code: str) -> None:
    currency = get_currency(code)
    scale = 10**currency.exponent
    for minor in {1, 9, 10, 99, 100, 101, max(scale - 1, 1), scale, scale + 1, MAX_AMOUNT_MINOR}:
        assert parse_amount(format_amount(minor, currency), currency) == minor


@given(currency=any_currency, minor=valid_minor)
def test_negative_amounts_format_as_signed_magnitude(currency: Currency, minor: int) -> None:
    negative = format_amount(-minor, currency)
    assert negative == "-" + format_amount(minor, currency)
    assert parse_amount(negative.removeprefix("-"), currency) == minor
    with pytest.raises(InvalidAmount, match="without a sign"):
        parse_amount(negative, currency)


@given(
    currency=any_currency,
    minor=st.integers(min_value=-MAX_BALANCE_MINOR, max_value=MAX_BALANCE_MINOR),
)
def test_format_is_exact_with_exponent_fraction_digits(currency: Currency, minor: int) -> None:
    text = format_amount(minor, currency)
    fraction = rf"\.[0-9]{{{currency.exponent}}}" if currency.exponent else ""
    assert re.fullmatch(rf"-?[0-9]+{fraction}", text, re.ASCII)
    assert not re.match(r"-?0[0-9]", text)  # no leading zeros
    assert Fraction(text) * 10**currency.exponent == minor


def _check_against_oracle(text: str, currency: Currency) -> None:
    """parse_amount returns the exact value of a plain decimal, or raises InvalidAmount."""
    plain = len(text) <= 40 and re.fullmatch(r"[0-9]+(\.[0-9]+)?", text, re.ASCII)
    if plain:
        fraction_digits = len(text.partition(".")[2])
        minor = Fraction(text) * 10**currency.exponent
        if fraction_digits <= currency.exponent and 0 < minor <= MAX_AMOUNT_MINOR:
            assert parse_amount(text, currency) == minor
            return
    with pytest.raises(InvalidAmount):
        parse_amount(text, currency)


@given(text=st.from_regex(r"[0-9]{1,20}(\.[0-9]{1,5})?", fullmatch=True), currency=any_currency)
def test_parse_plain_decimals_exactly(text: str, currency: Currency) -> None:
    _check_against_oracle(text, currency)


@given(text=st.text(alphabet="0123456789.,+-eE _x\n\u0661", max_size=45), currency=any_currency)
def test_parse_near_miss_text_exactly(text: str, currency: Currency) -> None:
    _check_against_oracle(text, currency)


@given(text=st.text(), currency=any_currency)
def test_parse_any_text_returns_in_range_int_or_raises_money_error(
    text: str, currency: Currency
) -> None:
    outcome: int | MoneyError
    try:
        outcome = parse_amount(text, currency)
    except MoneyError as exc:
        outcome = exc
    if isinstance(outcome, MoneyError):
        assert str(outcome)  # a message an API user can read
    else:
        assert type(outcome) is int
        assert 1 <= outcome <= MAX_AMOUNT_MINOR


# --- no float path --------------------------------------------------------------------------


def test_money_works_with_float_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_float(*args: object) -> None:
        raise AssertionError("float() was called on an amount")

    monkeypatch.setattr(builtins, "float", no_float)
    assert parse_amount("12.34", USD) == 1234
    assert parse_amount("10000000000000.00", USD) == MAX_AMOUNT_MINOR
    assert parse_amount("1234", JPY) == 1234
    assert parse_amount("0.001", KWD) == 1
    assert parse_amount("1.2345", CLF) == 12345
    assert format_amount(-500, USD) == "-5.00"
    assert format_amount(1234, JPY) == "1234"
    assert format_amount(1, KWD) == "0.001"
    assert format_amount(MAX_BALANCE_MINOR, CLF) == "400000000000000.0000"
    with pytest.raises(InvalidAmount):
        parse_amount("1.000", USD)


def test_money_module_source_names_no_float_or_decimal() -> None:
    tree = ast.parse(inspect.getsource(money))
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not names & {"float", "Decimal", "Fraction", "round"}
    assert not imported & {"decimal", "fractions", "math", "Decimal", "Fraction"}
