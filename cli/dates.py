"""The one parser of the dates users type: ISO days, months, `today`, `yesterday`, positions.

Every date option (--from, --to, --as-of, …) goes through here, so that `2026-12` or
`yesterday` means the same in every command. "Today" is the CLI's clock (LEDGER_NOW / --now fix
it), in UTC like every day of the ledger."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal

from cli.errors import fail
from ledger.errors import InvalidInputError

Edge = Literal["first", "last"]

DATE_FORMS = "an ISO date (2026-11-26), a month (2026-11), today or yesterday"
POSITION_PREFIX = "position:"
_MONTH = re.compile(r"(\d{4})-(\d{2})")


def parse_day(value: str, option: str, *, today: dt.date, edge: Edge = "first") -> dt.date:
    """The UTC day a user means; a month is its first day (`edge="first"`, for --from) or its
    last (`edge="last"`, for --to)."""
    text = value.strip().lower()
    if text == "today":
        return today
    if text == "yesterday":
        return today - dt.timedelta(days=1)
    month = _MONTH.fullmatch(text)
    if month:
        year, number = int(month[1]), int(month[2])
        if 1 <= number <= 12 and year >= 1:
            day = 1 if edge == "first" else calendar.monthrange(year, number)[1]
            return dt.date(year, number, day)
    else:
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
    fail(f"{option} takes {DATE_FORMS}, not {value!r}")


def parse_period(
    start: str | None, end: str | None, *, today: dt.date
) -> tuple[dt.date | None, dt.date | None]:
    """--from and --to as an inclusive range of days (a month spans the whole month)."""
    first = parse_day(start, "--from", today=today) if start is not None else None
    last = parse_day(end, "--to", today=today, edge="last") if end is not None else None
    if first and last and first > last:
        fail(f"--from {first} is after --to {last}")
    return first, last


@dataclass(frozen=True)
class AsOf:
    """A point in the ledger's past: the end of a UTC day, or a $all commit position."""

    day: dt.date | None = None
    position: int | None = None

    def __str__(self) -> str:
        return f"{POSITION_PREFIX}{self.position}" if self.day is None else self.day.isoformat()


def parse_as_of(value: str, *, today: dt.date) -> AsOf:
    """--as-of: a day (its end; a month means its last day) or `position:N` spelled out.

    Bare digits are refused: 5000 could be a year, a day or a commit position."""
    text = value.strip().lower()
    if text.startswith(POSITION_PREFIX):
        digits = text[len(POSITION_PREFIX) :]
        if digits.isascii() and digits.isdigit():
            return AsOf(position=int(digits))
        fail(f"--as-of {POSITION_PREFIX}N takes a commit position in digits, not {value!r}")
    if text.isascii() and text.isdigit():
        fail(
            f"--as-of {value!r} is ambiguous: for a commit position write "
            f"--as-of {POSITION_PREFIX}{text}; for a day, {DATE_FORMS}"
        )
    try:
        return AsOf(day=parse_day(value, "--as-of", today=today, edge="last"))
    except InvalidInputError:
        fail(
            f"--as-of takes {DATE_FORMS}, or {POSITION_PREFIX}N for a commit position, "
            f"not {value!r}"
        )
