"""The rows of the read side's answers and the one statement rule (pure: no I/O)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class BalanceRow:
    """An account as the balance projection has it."""

    account_id: str
    owner: str
    currency: str
    balance: int
    overdraft_limit: int
    status: str
    last_revision: int
    last_position: int
    updated_at: dt.datetime


@dataclass(frozen=True)
class PostingRow:
    """One statement line."""

    account_id: str
    revision: int
    position: int
    transaction_id: str
    kind: str
    amount: int
    balance_after: int
    description: str
    occurred_at: dt.datetime
    transfer_id: str | None = None  # a transfer leg's transfer and the other account
    counterparty: str | None = None
    reverses: str | None = None  # a reversal's: the transaction it reverses
    reversed_by: str | None = None  # a reversed posting's: the reversal's transaction

    @property
    def balance_before(self) -> int:
        """The balance just before this posting (amounts are signed)."""
        return self.balance_after - self.amount

    @property
    def day(self) -> dt.date:
        """The UTC day the posting occurred on."""
        return self.occurred_at.astimezone(dt.UTC).date()


@dataclass(frozen=True)
class Statement:
    """The postings of a period with the balances before and after them; `omitted` counts
    the period's postings a limit left out (older than the first one shown)."""

    account: BalanceRow
    start: dt.date | None
    end: dt.date | None
    opening_balance: int
    closing_balance: int
    postings: list[PostingRow]
    omitted: int = 0


def reversal_links(postings: Iterable[tuple[int, str, str | None]]) -> dict[int, str]:
    """{revision of a reversed posting: its reversal's transaction id}, from an account's
    postings as (revision, transaction id, the transaction it reverses or None) in revision
    order. A reversal reverses the latest earlier posting with that transaction id, as the
    decider's transaction window finds it; the statements projection's SQL does the same."""
    latest: dict[str, int] = {}
    links: dict[int, str] = {}
    for revision, transaction_id, reverses in postings:
        if reverses is not None and reverses in latest:
            links[latest[reverses]] = transaction_id
        latest[transaction_id] = revision
    return links


def build_statement(
    account: BalanceRow,
    postings: Sequence[PostingRow],
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    limit: int | None = None,
    earlier: int = 0,
) -> Statement:
    """The statement from `start` to `end` (inclusive UTC days); `limit` keeps the newest N.

    `postings` are the account's postings in revision order. They must include every posting
    of the period (or, with a limit, at least its newest N) and, when the period has a start,
    the last posting before it if there is one; postings after the end are ignored. `earlier`
    counts the period's postings older than those given (a query that fetched only N)."""
    before = [p for p in postings if start is not None and p.day < start]
    period = [
        p for p in postings if (start is None or p.day >= start) and (end is None or p.day <= end)
    ]
    balance_before_period = before[-1].balance_after if before else 0
    if limit is not None and len(period) >= limit:
        # The limit may have cut the period: the statement opens just before its first line,
        # so that opening + the amounts shown = closing.
        earlier += len(period) - limit
        period = period[-limit:]
        opening = period[0].balance_before
    else:
        opening = balance_before_period
    if end is None:
        closing = account.balance
    else:
        closing = period[-1].balance_after if period else balance_before_period
    return Statement(account, start, end, opening, closing, period, earlier)
