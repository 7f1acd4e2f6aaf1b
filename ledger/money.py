"""Money in integer minor units: ISO 4217 currencies, strict amount parsing and formatting."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ledger.currency import CURRENCY_EXPONENTS, format_amount
from ledger.errors import InvalidInputError

MAX_MINOR_UNITS = 10**15
# The largest balance an account may hold; the overdraft limit (at most MAX_MINOR_UNITS) bounds
# it below. So every balance and balance_after fits PostgreSQL's int8 (about 9.2 * 10**18) with
# room to spare. Daily totals are another matter: they add up postings of every account of a
# currency in a day, each up to 10**15, and 9,224 such postings overflow int8, which is within
# reach of a single day; so daily_totals keeps its sums as numeric (migration 003).
MAX_BALANCE = MAX_MINOR_UNITS
MAX_AMOUNT_LENGTH = 32

# Amount syntax, checked before any I/O: ASCII digits, optionally one point and more ASCII
# digits ("5", "5.00", "0.5", "007"). Everything else is refused rather than repaired, because
# a ledger must never guess what a user meant: empty text, any whitespace (leading or trailing
# too, nothing is stripped), signs, exponents, underscores or other separators, NaN/Infinity,
# hexadecimal, non-ASCII digits, a bare point on either side (".5" and "5."), more than
# MAX_AMOUNT_LENGTH characters, and zero where an amount must be positive. The decimals may
# not exceed the currency's exponent even when the extra digits are zeros ("5.000" EUR is
# refused), and a converted amount may be at most MAX_MINOR_UNITS minor units.
_AMOUNT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# A decimal comma ("12,50"), as many locales write it: refused, with the point form suggested.
# Three digits after the comma ("1,000") may be a thousands separator, so no guess is made.
_DECIMAL_COMMA = re.compile(r"[0-9]+,[0-9]{1,2}")
# A signed number ("-5", "+0,50"); other text with a sign ("--tx") is no number at all.
_SIGNED_NUMBER = re.compile(r"[+-][0-9][0-9.,]*")
_CURRENCY = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True)
class Money:
    """An amount of integer minor units in one currency."""

    minor_units: int
    currency: str

    def __str__(self) -> str:
        return f"{format_minor_units(self.minor_units, self.currency)} {self.currency}"


def show(text: str) -> str:
    """Quote user input for an error message: escaped, and cut short if it is very long."""
    quoted = repr(text)
    return quoted if len(quoted) <= 42 else quoted[:40] + "…"


def is_signed_number(text: str) -> bool:
    """Whether the text is a number with a sign ("-5", "+0.50"), which no amount may be."""
    return _SIGNED_NUMBER.fullmatch(text) is not None


def currency_code(text: str) -> str:
    """A currency code as a person types it ("eur"): upper-cased, then checked; a refusal
    quotes what was typed."""
    return _checked_currency(text.upper() if text.isascii() else text, text, "ASCII letters")


def check_currency(code: str) -> str:
    """Return the code if it is a known ISO 4217 code (3 uppercase ASCII letters), else raise."""
    return _checked_currency(code, code, "uppercase ASCII letters")


def _checked_currency(code: str, typed: str, letters: str) -> str:
    if not _CURRENCY.fullmatch(code):
        raise InvalidInputError(f"currency {show(typed)} must be three {letters}, like EUR")
    if code not in CURRENCY_EXPONENTS:
        raise InvalidInputError(f"currency {show(typed)} is not a known ISO 4217 currency code")
    return code


def exponent(currency: str) -> int:
    """Number of decimals (minor-unit exponent) of a known currency."""
    return CURRENCY_EXPONENTS[check_currency(currency)]


def _syntax_problem(text: str, *, allow_zero: bool, what: str) -> str | None:
    if text == "":
        return f"{what} must not be empty"
    if len(text) > MAX_AMOUNT_LENGTH:
        return f"{what} {show(text)} is too long (at most {MAX_AMOUNT_LENGTH} characters)"
    if any(ch.isspace() for ch in text):
        return f"{what} {show(text)} must not contain spaces or other whitespace"
    if text[0] in "+-" and what != "amount":
        return f"{what} {show(text)} must not have a sign; write a positive number like 5.00"
    if is_signed_number(text):
        # The direction of a posting is its command, never the amount's sign.
        return f"amount {show(text)} has a sign; amounts are positive: use withdraw/deposit"
    if not text.isascii():
        return f"{what} {show(text)} must use ASCII digits 0-9 only"
    if _DECIMAL_COMMA.fullmatch(text):
        return (
            f"{what} {show(text)} has a decimal comma: write a point, "
            f"did you mean {text.replace(',', '.')}?"
        )
    if text.startswith(".") or text.endswith("."):
        return f"{what} {show(text)} needs digits on both sides of the point, like 0.50 or 5"
    if not _AMOUNT.fullmatch(text):
        return (
            f"{what} {show(text)} is not a plain decimal number like 5, 5.00 or 0.5 "
            "(no exponents, separators, NaN or Infinity)"
        )
    if not allow_zero and text.strip("0.") == "":
        return f"{what} {show(text)} must be greater than zero"
    return None


def check_amount_syntax(text: str, *, allow_zero: bool = False, what: str = "amount") -> str:
    """Return the text unchanged if it is a well-formed amount (rules above), else raise."""
    problem = _syntax_problem(text, allow_zero=allow_zero, what=what)
    if problem is not None:
        raise InvalidInputError(problem)
    return text


def check_limit_syntax(text: str) -> str:
    """Like check_amount_syntax, but zero is allowed (an overdraft limit may be zero)."""
    return check_amount_syntax(text, allow_zero=True, what="overdraft limit")


def to_minor_units(
    text: str, currency: str, *, allow_zero: bool = False, what: str = "amount"
) -> int:
    """Convert a well-formed amount to integer minor units of the currency, or raise."""
    check_amount_syntax(text, allow_zero=allow_zero, what=what)
    decimals_allowed = exponent(currency)
    whole, _, fraction = text.partition(".")
    if len(fraction) > decimals_allowed:
        allowed = f"at most {decimals_allowed}" if decimals_allowed else "no"
        raise InvalidInputError(
            f"{what} {show(text)} has {len(fraction)} decimals but {currency} amounts have "
            f"{allowed} decimals"
        )
    minor = int(whole + fraction.ljust(decimals_allowed, "0"))
    if minor > MAX_MINOR_UNITS:
        raise InvalidInputError(
            f"{what} {show(text)} {currency} is too large (at most "
            f"{format_minor_units(MAX_MINOR_UNITS, currency)} {currency})"
        )
    return minor


def format_minor_units(minor: int, currency: str) -> str:
    """Format minor units as a decimal string with the currency's decimals: 7000 EUR -> "70.00"."""
    return format_amount(minor, check_currency(currency))
