"""Projection specs: given events, applied (each at least twice) through the Applier, then rows."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from ledger.accounts.events import MoneyDeposited
from projections.applier import ProjectionGapError
from projections.names import PROJECTION_NAMES
from tests.support.clock import T0
from tests.support.feed import Feed, project, project_each_twice
from tests.support.ids import new_account_id

DAY = T0.date()


def balance_row(conn: psycopg.Connection[Any], account_id: str) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT owner, currency, balance, overdraft_limit, status, last_revision"
        " FROM account_balances WHERE account_id = %s",
        (account_id,),
    ).fetchone()


def statement_rows(conn: psycopg.Connection[Any], account_id: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT revision, kind, amount, balance_after, transaction_id FROM account_statements"
        " WHERE account_id = %s ORDER BY revision",
        (account_id,),
    ).fetchall()


def daily_totals(conn: psycopg.Connection[Any]) -> dict[tuple[str, dt.date], tuple[int, ...]]:
    rows = conn.execute(
        "SELECT currency, day, deposited, withdrawn, reversed, count FROM daily_totals"
    ).fetchall()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def checkpoints(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT projection, position FROM projection_checkpoints").fetchall()
    return dict(rows)


def test_an_opened_account_has_a_zero_balance_row_and_no_postings(db: psycopg.Connection) -> None:
    feed, acc = Feed(), new_account_id()
    feed.open(acc, currency="USD", limit="50.00")

    project_each_twice(db, feed.events)

    assert balance_row(db, acc) == ("Alice Example", "USD", 0, 5000, "open", 0)
    assert statement_rows(db, acc) == []
    assert daily_totals(db) == {}
    assert set(checkpoints(db).values()) == {feed.events[-1].position}


def test_postings_give_statement_lines_with_running_balance_and_kinds_once(
    db: psycopg.Connection,
) -> None:
    feed, acc = Feed(), new_account_id()
    feed.open(acc, limit="100.00")
    feed.deposit(acc, "50.00", "tx-1")
    feed.withdraw(acc, "20.00", "tx-2")
    feed.deposit(acc, "5.25", "tx-3")
    feed.reverse(acc, "tx-1", "tx-4")
    feed.withdraw(acc, "60.00", "tx-5")  # into the overdraft
    feed.reverse(acc, "tx-5", "tx-6")

    project_each_twice(db, feed.events)

    assert statement_rows(db, acc) == [
        (1, "deposit", 5000, 5000, "tx-1"),
        (2, "withdrawal", -2000, 3000, "tx-2"),
        (3, "deposit", 525, 3525, "tx-3"),
        (4, "reversal", -5000, -1475, "tx-4"),
        (5, "withdrawal", -6000, -7475, "tx-5"),
        (6, "reversal", 6000, -1475, "tx-6"),
    ]
    assert balance_row(db, acc) == ("Alice Example", "EUR", -1475, 10000, "open", 6)
    # withdrawn is a positive sum; reversed is the signed sum of the reversal postings.
    assert daily_totals(db) == {("EUR", DAY): (5525, 8000, 1000, 6)}


def reversal_links(conn: psycopg.Connection[Any], account_id: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT revision, transaction_id, reverses, reversed_by FROM account_statements"
        " WHERE account_id = %s ORDER BY revision",
        (account_id,),
    ).fetchall()


def test_a_reversal_and_the_posting_it_reverses_name_each_other(db: psycopg.Connection) -> None:
    feed, acc = Feed(), new_account_id()
    feed.open(acc)
    feed.deposit(acc, "50.00", "tx-1")
    feed.deposit(acc, "20.00", "tx-2")
    feed.reverse(acc, "tx-1", "tx-3")

    project_each_twice(db, feed.events)

    assert reversal_links(db, acc) == [
        (1, "tx-1", None, "tx-3"),
        (2, "tx-2", None, None),
        (3, "tx-3", "tx-1", None),
    ]


def test_a_reversal_in_a_later_batch_marks_the_posting_of_an_earlier_one(
    db: psycopg.Connection,
) -> None:
    feed, acc, other = Feed(), new_account_id(), new_account_id()
    feed.open(acc)
    feed.open(other)
    feed.deposit(acc, "50.00", "tx-1")
    feed.deposit(other, "50.00", "tx-1")  # the same id on another account is not linked
    project(db, feed.events)

    project(db, feed.reverse(acc, "tx-1", "tx-9"))

    assert reversal_links(db, acc) == [(1, "tx-1", None, "tx-9"), (2, "tx-9", "tx-1", None)]
    assert reversal_links(db, other) == [(1, "tx-1", None, None)]


def test_limit_changes_and_closing_update_the_balance_row_only(db: psycopg.Connection) -> None:
    feed, acc = Feed(), new_account_id()
    feed.open(acc)
    feed.change_limit(acc, "30.00")
    feed.deposit(acc, "10.00", "tx-1")
    feed.withdraw(acc, "10.00", "tx-2")
    project_each_twice(db, feed.events)
    assert balance_row(db, acc) == ("Alice Example", "EUR", 0, 3000, "open", 3)

    feed.close(acc)
    project_each_twice(db, feed.events)

    assert balance_row(db, acc) == ("Alice Example", "EUR", 0, 3000, "closed", 4)
    assert [r[0] for r in statement_rows(db, acc)] == [2, 3]
    assert daily_totals(db) == {("EUR", DAY): (1000, 1000, 0, 2)}


def test_daily_totals_are_kept_per_currency_and_utc_day(db: psycopg.Connection) -> None:
    feed, eur, usd = Feed(), new_account_id(), new_account_id()
    late_evening_utc = dt.datetime(2024, 5, 1, 23, 59, 59, tzinfo=dt.UTC)
    after_midnight_utc = dt.datetime(2024, 5, 2, 0, 0, tzinfo=dt.UTC)
    feed.open(eur)
    feed.open(usd, currency="USD")
    feed.deposit(eur, "1.00", "tx-1", now=late_evening_utc)
    feed.deposit(usd, "2.00", "tx-2", now=late_evening_utc)
    feed.deposit(eur, "4.00", "tx-3", now=after_midnight_utc)
    feed.withdraw(usd, "0.50", "tx-4", now=after_midnight_utc)
    feed.reverse(usd, "tx-4", "tx-5", now=after_midnight_utc)

    project_each_twice(db, feed.events)

    may1, may2 = dt.date(2024, 5, 1), dt.date(2024, 5, 2)
    assert daily_totals(db) == {
        ("EUR", may1): (100, 0, 0, 1),
        ("USD", may1): (200, 0, 0, 1),
        ("EUR", may2): (400, 0, 0, 1),
        ("USD", may2): (0, 50, 50, 2),
    }


def test_interleaved_accounts_in_one_batch_each_get_their_own_rows(
    db: psycopg.Connection,
) -> None:
    feed = Feed()
    accounts = [new_account_id() for _ in range(3)]
    for acc in accounts:
        feed.open(acc)
    for i in range(4):
        for n, acc in enumerate(accounts):
            feed.deposit(acc, f"{n + 1}.00", f"tx-{i}")

    project(db, feed.events)
    project(db, feed.events)

    for n, acc in enumerate(accounts):
        rows = statement_rows(db, acc)
        assert [(r[0], r[3]) for r in rows] == [(i, i * (n + 1) * 100) for i in range(1, 5)]
    assert daily_totals(db) == {("EUR", DAY): ((1 + 2 + 3) * 400, 0, 0, 12)}


def test_the_revision_guard_alone_keeps_a_replay_exactly_once(db: psycopg.Connection) -> None:
    # upto=0 never moves the checkpoint, so the checkpoint filter lets every event through
    # again: only the per-account revision guard stands between the replay and double rows.
    feed, acc = Feed(), new_account_id()
    feed.open(acc)
    feed.deposit(acc, "1.00", "tx-1")
    feed.deposit(acc, "2.00", "tx-2")
    project(db, feed.events, upto=0)

    result = project(db, feed.events, upto=0)

    assert result.applied == dict.fromkeys(PROJECTION_NAMES, 0)
    assert [r[3] for r in statement_rows(db, acc)] == [100, 300]
    assert daily_totals(db) == {("EUR", DAY): (300, 0, 0, 2)}
    assert checkpoints(db) == {}


def test_a_missing_revision_rolls_the_whole_batch_back(db: psycopg.Connection) -> None:
    feed, acc, other = Feed(), new_account_id(), new_account_id()
    feed.open(other)
    feed.open(acc)
    feed.deposit(acc, "1.00", "tx-1")
    feed.deposit(acc, "2.00", "tx-2")
    without_tx1 = [e for e in feed.events if not (e.account_id == acc and e.revision == 1)]

    with pytest.raises(ProjectionGapError, match="jumps from revision 0 to 2"):
        project(db, without_tx1)

    assert balance_row(db, other) is None
    assert checkpoints(db) == {}
    project(db, feed.events)
    assert [r[0] for r in statement_rows(db, acc)] == [1, 2]


def test_the_checkpoint_only_moves_forward(db: psycopg.Connection) -> None:
    feed, acc = Feed(), new_account_id()
    feed.open(acc)
    feed.deposit(acc, "1.00", "tx-1")
    project(db, feed.events)
    high = feed.events[-1].position

    project(db, feed.events[:1])
    project(db, [], upto=high - 1)

    assert checkpoints(db) == dict.fromkeys(PROJECTION_NAMES, high)


def test_an_event_the_projections_cannot_decode_parks_its_account_only(
    db: psycopg.Connection,
) -> None:
    feed, bad, good = Feed(), new_account_id(), new_account_id()
    feed.open(bad)
    feed.open(good)
    poison = MoneyDeposited(
        account_id=bad,
        transaction_id="tx-poison",
        amount=100,
        currency="EUR",
        description="",
        balance_after=100,
        occurred_at=T0,
    )
    feed.append(bad, poison, metadata=b'{"schema_version": 99}')
    feed.deposit(bad, "1.00", "tx-after")
    feed.deposit(good, "3.00", "tx-good")

    project_each_twice(db, feed.events)

    assert balance_row(db, bad) == ("Alice Example", "EUR", 0, 0, "open", 0)
    assert statement_rows(db, bad) == []
    assert [r[3] for r in statement_rows(db, good)] == [300]
    parked = db.execute(
        "SELECT projection, revision, error FROM parked_events WHERE account_id = %s"
        " ORDER BY projection, revision",
        (bad,),
    ).fetchall()
    assert [(p, r) for p, r, _ in parked] == [
        (name, rev) for name in sorted(PROJECTION_NAMES) for rev in (1, 2)
    ]
    assert all("schema version 99" in e for _, r, e in parked if r == 1)
    assert all("parked by an earlier event" in e for _, r, e in parked if r == 2)
    assert daily_totals(db) == {("EUR", DAY): (300, 0, 0, 1)}
