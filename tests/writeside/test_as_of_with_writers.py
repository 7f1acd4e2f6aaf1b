"""Balances as of a day and statements of a period, with two writers on their own clocks.

`ledger balance --as-of` and `statement --from/--to` pick postings by occurred_at and order
them by revision: right only because the decider keeps an account's events in time order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from ledger.errors import EarlierThanLastEventError
from ledger.service import Ledger
from projections.db import connect
from projections.queries import balance_as_of, get_balance, statement
from tests.support.clock import Clock
from tests.support.runners import catch_up

DAY1, DAY2, DAY3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)


def _at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def test_as_of_balances_and_periods_stay_right_with_two_writers_on_their_own_clocks(
    make_ledger: Callable[..., Ledger], database_url: str, esdb_uri: str, account_id: str
) -> None:
    teller, branch = Clock(_at(DAY1, 9)), Clock(_at(DAY1, 8))
    a, b = make_ledger(clock=teller), make_ledger(clock=branch, cache_size=0)
    a.open_account(account_id, "Ida", "EUR")
    teller.now = _at(DAY1, 10)
    a.deposit(account_id, "100.00", "a1")

    with pytest.raises(EarlierThanLastEventError):  # behind: it would land in day 1 after it
        b.deposit(account_id, "7.00", "b0")
    branch.now = dt.datetime.combine(DAY2, dt.time.max, tzinfo=dt.UTC)  # the last instant
    b.deposit(account_id, "50.00", "b1")  # ahead: the account's time moves to day 2's end
    teller.now = _at(DAY2, 12)
    with pytest.raises(EarlierThanLastEventError):  # now the teller is behind
        a.withdraw(account_id, "30.00", "a2")
    teller.now = _at(DAY3, 0)  # exactly the boundary
    a.withdraw(account_id, "30.00", "a2")
    branch.now = _at(DAY3, 0)  # equal to the last event: allowed
    b.deposit(account_id, "5.00", "b2")

    catch_up(database_url, esdb_uri)

    with connect(database_url) as db:
        assert balance_as_of(db, account_id, day=DAY1 - dt.timedelta(days=1)) == (0, None)
        assert balance_as_of(db, account_id, day=DAY1) == (10000, 1)
        assert balance_as_of(db, account_id, day=DAY2) == (15000, 2)
        assert balance_as_of(db, account_id, day=DAY3) == (12500, 4)
        row = get_balance(db, account_id)
        assert row is not None and row.balance == 12500
        day2 = statement(db, row, start=DAY2, end=DAY2)
        assert [p.transaction_id for p in day2.postings if p.occurred_at.date() == DAY2] == ["b1"]
        assert (day2.opening_balance, day2.closing_balance) == (10000, 15000)
        day3 = statement(db, row, start=DAY3, end=DAY3)
        assert (day3.opening_balance, day3.closing_balance) == (15000, 12500)
        whole = statement(db, row, start=DAY1, end=DAY3)
        assert [p.transaction_id for p in whole.postings] == ["a1", "b1", "a2", "b2"]
