"""The daily totals rule: a posting counts on its currency's UTC day, in the column of its kind.

A transfer's legs count apart from deposits and withdrawals: transferred_out is what left
accounts for transit, transferred_in what arrived from it (credits and refunds), so that
deposited - withdrawn + reversed is the money that came in from outside the ledger."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ledger.accounts.events import MoneyDeposited, MoneyWithdrawn, Posting, PostingReversed


@dataclass(frozen=True, slots=True)
class DayTotals:
    """What moved in one currency on one UTC day (withdrawn and transferred_out are
    positive, reversed signed)."""

    deposited: int = 0
    withdrawn: int = 0
    reversed: int = 0
    count: int = 0
    transferred_out: int = 0
    transferred_in: int = 0

    def columns(self) -> tuple[int, int, int, int, int, int]:
        """The values in the order of the table's columns."""
        return (
            self.deposited,
            self.withdrawn,
            self.reversed,
            self.count,
            self.transferred_out,
            self.transferred_in,
        )


DayKey = tuple[str, dt.date]


def day_key(posting: Posting) -> DayKey:
    """The (currency, UTC day) a posting counts on."""
    return posting.currency, posting.occurred_at.astimezone(dt.UTC).date()


def add_posting(totals: DayTotals, posting: Posting) -> DayTotals:
    """The totals with one more posting, added to the column of its kind."""
    deposited, withdrawn, reversed_, count, out, in_ = totals.columns()
    if posting.transfer_id is not None:
        if posting.amount < 0:
            out += -posting.amount
        else:
            in_ += posting.amount
    elif isinstance(posting, MoneyDeposited):
        deposited += posting.amount
    elif isinstance(posting, MoneyWithdrawn):
        withdrawn += -posting.amount
    elif isinstance(posting, PostingReversed):
        reversed_ += posting.amount
    return DayTotals(deposited, withdrawn, reversed_, count + 1, out, in_)
