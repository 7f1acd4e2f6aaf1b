"""Money: the currency table, strict amount syntax, conversion to minor units and formatting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.currency import CURRENCY_EXPONENTS
from ledger.errors import InvalidInputError
from ledger.money import (
    MAX_MINOR_UNITS,
    Money,
    check_amount_syntax,
    check_currency,
    check_limit_syntax,
    currency_code,
    format_minor_units,
    to_minor_units,
)


@pytest.mark.parametrize(
    ("code", "exponent"),
    [
        ("EUR", 2),
        ("USD", 2),
        ("GBP", 2),
        ("CHF", 2),
        ("SEK", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("JOD", 3),
        ("OMR", 3),
        ("TND", 3),
        ("CLF", 4),
    ],
)
def test_the_currency_table_knows_the_exponents(code: str, exponent: int) -> None:
    assert CURRENCY_EXPONENTS[code] == exponent


def test_the_currency_table_is_full_ish_and_well_formed() -> None:
    assert len(CURRENCY_EXPONENTS) > 150
    assert all(len(code) == 3 and code.isascii() and code.isupper() for code in CURRENCY_EXPONENTS)
    assert set(CURRENCY_EXPONENTS.values()) == {0, 2, 3, 4}


@pytest.mark.parametrize("code", ["eur", "Eur", "XYZ", "EURO", "EU", "", " EUR", "ЕUR", "XAU"])
def test_unknown_or_malformed_currencies_are_invalid(code: str) -> None:
    with pytest.raises(InvalidInputError):
        check_currency(code)


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("5", "EUR", 500),
        ("5.00", "EUR", 500),
        ("5.1", "EUR", 510),
        ("0.5", "EUR", 50),
        ("0.01", "EUR", 1),
        ("007", "EUR", 700),
        ("1500", "JPY", 1500),
        ("1.234", "KWD", 1234),
        ("1.2345", "CLF", 12345),
        ("10000000000000", "EUR", MAX_MINOR_UNITS),
        ("1000000000000000", "JPY", MAX_MINOR_UNITS),
    ],
)
def test_valid_amounts_convert_to_minor_units(text: str, currency: str, minor: int) -> None:
    assert check_amount_syntax(text) == text
    assert to_minor_units(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("0", "greater than zero"),
        ("0.00", "greater than zero"),
        ("-5", "sign"),
        ("+5", "sign"),
        (" 5", "whitespace"),
        ("5 ", "whitespace"),
        ("5\n", "whitespace"),
        ("1 000", "whitespace"),
        ("１００", "ASCII"),
        ("٥", "ASCII"),
        ("1e3", "plain decimal"),
        ("1E3", "plain decimal"),
        ("NaN", "plain decimal"),
        ("nan", "plain decimal"),
        ("Infinity", "plain decimal"),
        ("inf", "plain decimal"),
        ("1_000", "plain decimal"),
        ("1,000", "plain decimal"),
        ("0x10", "plain decimal"),
        ("5.", "both sides"),
        (".5", "both sides"),
        (".", "both sides"),
        ("1.2.3", "plain decimal"),
        ("9" * 33, "too long"),
    ],
)
def test_malformed_amounts_are_rejected_with_a_clear_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        check_amount_syntax(text)
    with pytest.raises(InvalidInputError):
        to_minor_units(text, "EUR")


@pytest.mark.parametrize(
    ("text", "currency", "reason"),
    [
        ("5.001", "EUR", "EUR amounts have at most 2 decimals"),
        ("5.000", "EUR", "at most 2 decimals"),
        ("1.5", "JPY", "JPY amounts have no decimals"),
        ("10000000000000000", "EUR", "too large"),
        ("10000000000000.01", "EUR", "too large"),
        ("1000000000000001", "JPY", "too large"),
        ("5", "eur", "uppercase"),
    ],
)
def test_amounts_that_do_not_fit_the_currency_are_invalid(
    text: str, currency: str, reason: str
) -> None:
    with pytest.raises(InvalidInputError, match=reason):
        to_minor_units(text, currency)


def test_a_limit_may_be_zero_but_not_negative() -> None:
    assert check_limit_syntax("0") == "0"
    assert to_minor_units("0.00", "EUR", allow_zero=True) == 0
    with pytest.raises(InvalidInputError):
        check_limit_syntax("-1")


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (7000, "EUR", "70.00"),
        (5, "EUR", "0.05"),
        (0, "EUR", "0.00"),
        (-5, "EUR", "-0.05"),
        (-123456, "EUR", "-1234.56"),
        (70, "JPY", "70"),
        (-70, "JPY", "-70"),
        (1234, "KWD", "1.234"),
        (1, "CLF", "0.0001"),
    ],
)
def test_minor_units_format_with_the_currency_decimals(
    minor: int, currency: str, text: str
) -> None:
    assert format_minor_units(minor, currency) == text


def test_money_prints_amount_and_currency() -> None:
    assert str(Money(-7000, "EUR")) == "-70.00 EUR"


@given(
    minor=st.integers(min_value=1, max_value=MAX_MINOR_UNITS),
    currency=st.sampled_from(["EUR", "JPY", "KWD", "CLF"]),
)
def test_formatting_then_parsing_gives_back_the_same_minor_units(minor: int, currency: str) -> None:
    assert to_minor_units(format_minor_units(minor, currency), currency) == minor


@pytest.mark.parametrize("text", ["-5", "+5", "-0.50"])
def test_a_signed_amount_is_told_that_amounts_are_positive(text: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_amount_syntax(text)
    assert str(caught.value) == (
        f"amount {text!r} has a sign; amounts are positive: use withdraw/deposit"
    )


def test_a_signed_limit_names_the_limit_not_withdraw_or_deposit() -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_limit_syntax("-5")
    assert str(caught.value) == (
        "overdraft limit '-5' must not have a sign; write a positive number like 5.00"
    )


@pytest.mark.parametrize(("text", "meant"), [("12,50", "12.50"), ("0,5", "0.5")])
def test_a_decimal_comma_gets_the_point_form_suggested(text: str, meant: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_amount_syntax(text)
    assert str(caught.value) == (
        f"amount {text!r} has a decimal comma: write a point, did you mean {meant}?"
    )


@pytest.mark.parametrize(("typed", "code"), [("eur", "EUR"), ("Jpy", "JPY"), ("EUR", "EUR")])
def test_a_currency_code_is_upper_cased_before_it_is_checked(typed: str, code: str) -> None:
    assert currency_code(typed) == code


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("euro", "currency 'euro' must be three ASCII letters, like EUR"),
        ("xyz", "currency 'xyz' is not a known ISO 4217 currency code"),
    ],
)
def test_an_upper_cased_currency_code_is_still_checked(typed: str, reason: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        currency_code(typed)
    assert str(caught.value) == reason


def test_a_mistyped_option_in_the_amount_is_not_called_a_signed_amount() -> None:
    with pytest.raises(InvalidInputError, match="is not a plain decimal number"):
        check_amount_syntax("--foo")
