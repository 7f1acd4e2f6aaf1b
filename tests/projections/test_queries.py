"""Queries on the read models: balances now, as of a day or a position, and statements."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from projections.queries import BalanceRow, balance_as_of, get_balance, list_accounts, statement
from tests.support.feed import Feed, project
from tests.support.ids import new_account_id

UTC = dt.UTC
D1, D2, D3, D4 = (dt.date(2024, 5, d) for d in (1, 2, 3, 4))


def at(day: dt.date, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def account(db: psycopg.Connection[Any]) -> tuple[Feed, str]:
    """An account with postings on four days, projected.

    balances after each revision: 1:1000 2:1500 3:1200 4:3200 5:2200 6:2300
    """
    feed, acc = Feed(), new_account_id()
    feed.open(acc, now=at(D1, 9))
    feed.deposit(acc, "10.00", "tx-1", now=at(D1, 10))
    feed.deposit(acc, "5.00", "tx-2", now=at(D1, 23, 59, 59))
    feed.withdraw(acc, "3.00", "tx-3", now=at(D2, 0))
    feed.deposit(acc, "20.00", "tx-4", now=at(D3, 12))
    feed.withdraw(acc, "10.00", "tx-5", now=at(D3, 23, 59, 59))
    feed.deposit(acc, "1.00", "tx-6", now=at(D4, 8))
    project(db, feed.events)
    return feed, acc


def row(conn: psycopg.Connection[Any], account_id: str) -> BalanceRow:
    found = get_balance(conn, account_id)
    assert found is not None
    return found


def test_get_balance_and_list_accounts(db: psycopg.Connection, account: tuple[Feed, str]) -> None:
    feed, acc = account
    other = new_account_id()
    feed.open(other, currency="USD")
    project(db, feed.events)

    balance = row(db, acc)
    assert (balance.balance, balance.last_revision, balance.currency) == (2300, 6, "EUR")
    assert balance.last_position == feed.events[6].position
    assert get_balance(db, new_account_id()) is None
    assert [a.account_id for a in list_accounts(db)] == sorted([acc, other])


def test_balance_as_of_the_end_of_a_day(db: psycopg.Connection, account: tuple[Feed, str]) -> None:
    _, acc = account
    assert balance_as_of(db, acc, day=D1 - dt.timedelta(days=1)) == (0, None)
    assert balance_as_of(db, acc, day=D1) == (1500, 2)
    assert balance_as_of(db, acc, day=D2) == (1200, 3)
    assert balance_as_of(db, acc, day=D3) == (2200, 5)
    assert balance_as_of(db, acc, day=D4 + dt.timedelta(days=30)) == (2300, 6)


def test_balance_as_of_a_position(db: psycopg.Connection, account: tuple[Feed, str]) -> None:
    feed, acc = account
    positions = [e.position for e in feed.events]
    assert balance_as_of(db, acc, position=positions[0]) == (0, None)
    assert balance_as_of(db, acc, position=positions[3]) == (1200, 3)
    assert balance_as_of(db, acc, position=positions[3] + 1) == (1200, 3)
    assert balance_as_of(db, acc, position=positions[4] - 1) == (1200, 3)
    assert balance_as_of(db, acc, position=positions[-1]) == (2300, 6)


def test_a_statement_includes_both_boundary_days(
    db: psycopg.Connection, account: tuple[Feed, str]
) -> None:
    _, acc = account

    s = statement(db, row(db, acc), start=D2, end=D3)

    assert [p.revision for p in s.postings] == [3, 4, 5]
    assert (s.opening_balance, s.closing_balance) == (1500, 2200)
    assert s.opening_balance + sum(p.amount for p in s.postings) == s.closing_balance
    assert [p.kind for p in s.postings] == ["withdrawal", "deposit", "withdrawal"]
    assert [p.balance_after for p in s.postings] == [1200, 3200, 2200]


def test_a_one_day_statement(db: psycopg.Connection, account: tuple[Feed, str]) -> None:
    _, acc = account

    s = statement(db, row(db, acc), start=D1, end=D1)

    assert [p.revision for p in s.postings] == [1, 2]
    assert (s.opening_balance, s.closing_balance) == (0, 1500)


def test_an_open_ended_statement_closes_at_the_current_balance(
    db: psycopg.Connection, account: tuple[Feed, str]
) -> None:
    _, acc = account

    s = statement(db, row(db, acc), start=D3)

    assert [p.revision for p in s.postings] == [4, 5, 6]
    assert (s.opening_balance, s.closing_balance) == (1200, 2300)


def test_a_limit_keeps_the_most_recent_postings_in_revision_order(
    db: psycopg.Connection, account: tuple[Feed, str]
) -> None:
    _, acc = account
    balance = row(db, acc)

    assert [p.revision for p in statement(db, balance, limit=2).postings] == [5, 6]
    assert [p.revision for p in statement(db, balance, limit=100).postings] == [1, 2, 3, 4, 5, 6]
    limited = statement(db, balance, start=D1, end=D3, limit=3)
    assert [p.revision for p in limited.postings] == [3, 4, 5]
    assert limited.closing_balance == 2200


def test_a_statement_cut_by_its_limit_opens_just_before_its_first_line(
    db: psycopg.Connection, account: tuple[Feed, str]
) -> None:
    _, acc = account

    limited = statement(db, row(db, acc), start=D1, end=D3, limit=3)

    assert [p.revision for p in limited.postings] == [3, 4, 5]
    assert (limited.opening_balance, limited.closing_balance) == (1500, 2200)
    assert limited.opening_balance + sum(p.amount for p in limited.postings) == 2200


def test_a_statement_of_a_quiet_period_is_empty_and_flat(
    db: psycopg.Connection, account: tuple[Feed, str]
) -> None:
    _, acc = account
    later = D4 + dt.timedelta(days=10)

    s = statement(db, row(db, acc), start=later, end=later)

    assert s.postings == []
    assert s.opening_balance == s.closing_balance == 2300
