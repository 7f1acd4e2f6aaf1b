"""The daily totals rule: a posting counts on its currency's UTC day, in the column of its kind."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ledger.accounts.events import MoneyDeposited, MoneyWithdrawn, Posting, PostingReversed


@dataclass(frozen=True, slots=True)
class DayTotals:
    """What moved in one currency on one UTC day (withdrawn is positive, reversed signed)."""

    deposited: int = 0
    withdrawn: int = 0
    reversed: int = 0
    count: int = 0

    def columns(self) -> tuple[int, int, int, int]:
        """The values in the order of the table's columns."""
        return self.deposited, self.withdrawn, self.reversed, self.count


DayKey = tuple[str, dt.date]


def day_key(posting: Posting) -> DayKey:
    """The (currency, UTC day) a posting counts on."""
    return posting.currency, posting.occurred_at.astimezone(dt.UTC).date()


def add_posting(totals: DayTotals, posting: Posting) -> DayTotals:
    """The totals with one more posting, added to the column of its kind."""
    deposited, withdrawn, reversed_, count = totals.columns()
    if isinstance(posting, MoneyDeposited):
        deposited += posting.amount
    elif isinstance(posting, MoneyWithdrawn):
        withdrawn += -posting.amount
    elif isinstance(posting, PostingReversed):
        reversed_ += posting.amount
    return DayTotals(deposited, withdrawn, reversed_, count + 1)
