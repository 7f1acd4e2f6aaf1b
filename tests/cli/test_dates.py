"""The one date parser: ISO days, months (first or last day), today, yesterday, positions."""

from __future__ import annotations

import datetime as dt

import pytest

from cli.dates import AsOf, parse_as_of, parse_day, parse_period
from ledger.errors import InvalidInputError

TODAY = dt.date(2026, 3, 1)


@pytest.mark.parametrize(
    ("text", "edge", "day"),
    [
        ("2026-11-26", "first", dt.date(2026, 11, 26)),
        ("today", "first", TODAY),
        ("Yesterday", "last", dt.date(2026, 2, 28)),
        ("2026-12", "first", dt.date(2026, 12, 1)),
        ("2026-12", "last", dt.date(2026, 12, 31)),
        ("2028-02", "last", dt.date(2028, 2, 29)),
    ],
)
def test_a_day_is_read_in_every_form(text: str, edge: str, day: dt.date) -> None:
    assert parse_day(text, "--from", today=TODAY, edge=edge) == day  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "tomorrowish", "26-12-01", "", "5000"])
def test_anything_else_is_refused_naming_the_option_and_the_forms(text: str) -> None:
    with pytest.raises(InvalidInputError, match=r"--to takes an ISO date .* today or yesterday"):
        parse_day(text, "--to", today=TODAY)


def test_a_month_as_a_period_spans_the_whole_month() -> None:
    assert parse_period("2026-02", "2026-02", today=TODAY) == (
        dt.date(2026, 2, 1),
        dt.date(2026, 2, 28),
    )


def test_a_period_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="--from 2026-03-01 is after --to 2026-02-28"):
        parse_period("today", "yesterday", today=TODAY)


def test_as_of_is_the_end_of_a_day_or_an_explicit_position() -> None:
    assert parse_as_of("2026-02", today=TODAY) == AsOf(day=dt.date(2026, 2, 28))
    assert parse_as_of("yesterday", today=TODAY) == AsOf(day=dt.date(2026, 2, 28))
    assert parse_as_of("position:5000", today=TODAY) == AsOf(position=5000)
    assert str(AsOf(position=5000)) == "position:5000"


def test_as_of_bare_digits_are_refused_with_the_explicit_form() -> None:
    with pytest.raises(InvalidInputError, match="ambiguous: for a commit position write "):
        parse_as_of("5000", today=TODAY)
    with pytest.raises(InvalidInputError, match="position:N takes a commit position"):
        parse_as_of("position:-1", today=TODAY)
