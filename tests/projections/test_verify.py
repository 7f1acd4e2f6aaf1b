"""verify(): every read model checked both ways against the write model at its checkpoint.

Given a projected history, when one table is corrupted one way, then verify names the table,
the account (or currency and day) and the difference as money; events after the checkpoint are
lag, never violations.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from projections.verify import check, verify
from tests.support.corruption import CASES, DAY, Corruption, write_history
from tests.support.feed import Feed, project
from tests.support.ids import new_account_id


@pytest.fixture
def accounts() -> tuple[str, str, str]:
    """The victim, the other account and a ghost that never existed."""
    return new_account_id("victim"), new_account_id("other"), new_account_id("ghost")


@pytest.fixture
def feed(db: psycopg.Connection[Any], accounts: tuple[str, str, str]) -> Feed:
    """The corruption cases' history, projected."""
    feed = Feed()
    write_history(feed, accounts[0], accounts[1])
    project(db, feed.events)
    return feed


def summary(violations: list[Any]) -> list[tuple[str, str, str | None]]:
    return [(v.table, v.check, v.account_id or v.day) for v in violations]


def test_sound_read_models_have_no_violations(db: psycopg.Connection, feed: Feed) -> None:
    found = check(db, feed.fold)

    assert found.ok and found.violations == [] and found.lag_events == 0
    assert set(found.checkpoints.values()) == {feed.events[-1].position}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_corruption_of_each_table_is_named_with_its_difference(
    db: psycopg.Connection, feed: Feed, accounts: tuple[str, str, str], case: Corruption
) -> None:
    victim, _, ghost = accounts
    db.execute(case.sql, {"victim": victim, "ghost": ghost})

    found = verify(db, feed.fold)
    # A balance or daily total off by an amount also breaks conservation (tested on its own
    # in test_transfer_projections); here each table's own comparison is what is checked.
    violations = [v for v in found if v.table != "money"]

    assert summary(violations) == [(case.table, case.check, case.subject_of(victim, ghost))]
    assert case.says in violations[0].detail
    assert str(violations[0]).startswith(f"{case.table}: {case.check} for ")


def test_an_account_the_projections_never_saw_is_missing_from_every_table(
    db: psycopg.Connection,
) -> None:
    feed, seen, lost = Feed(), new_account_id("seen"), new_account_id("lost")
    write_history(feed, lost, seen)
    # The checkpoint passes the lost account's events, but they were never applied.
    project(db, [e for e in feed.events if e.account_id == seen], upto=feed.events[-1].position)

    violations = verify(db, feed.fold)

    assert summary(violations) == [
        ("account_balances", "missing row", lost),
        ("account_statements", "missing row", lost),
        ("daily_totals", "wrong value", DAY),
    ]
    assert "(and 1 more rows)" in violations[1].detail  # four postings, three shown
    assert "count 1, the write model has 5" in violations[2].detail


def test_rows_of_an_account_with_no_stream_are_extra_in_every_table(
    db: psycopg.Connection, feed: Feed
) -> None:
    # Rows of events that are not in this store (another store's, or made up).
    ghost_feed, ghost = Feed(feed.events[-1].position + 1), new_account_id("ghost")
    ghost_feed.open(ghost, currency="USD")
    ghost_feed.deposit(ghost, "52.00", "tx-1")
    project(db, ghost_feed.events)

    violations = verify(db, feed.fold)

    assert summary(violations) == [
        ("account_balances", "extra row", ghost),
        ("account_statements", "extra row", ghost),
        ("daily_totals", "extra row", "USD 2024-05-01"),
    ]
    assert "balance 52.00 USD" in violations[0].detail
    assert "revision 1 (5200 minor units" in violations[1].detail  # no stream, no currency


def test_events_after_the_checkpoint_are_lag_not_corruption(
    db: psycopg.Connection, feed: Feed, accounts: tuple[str, str, str]
) -> None:
    victim = accounts[0]
    feed.deposit(victim, "2.00", "tx-late-1")
    feed.withdraw(victim, "1.00", "tx-late-2")  # written, never projected: the runner is down

    found = check(db, feed.fold)

    assert found.ok and found.lag_events == 2
    project(db, feed.events[-2:])
    assert check(db, feed.fold).lag_events == 0


def test_lag_does_not_hide_corruption_before_the_checkpoint(
    db: psycopg.Connection, feed: Feed, accounts: tuple[str, str, str]
) -> None:
    victim = accounts[0]
    feed.deposit(victim, "2.00", "tx-late")
    db.execute("UPDATE account_balances SET balance = 1 WHERE account_id = %s", (victim,))

    found = check(db, feed.fold)

    assert found.lag_events == 1
    assert summary(found.violations) == [
        ("account_balances", "wrong value", victim),
        ("money", "wrong value", "EUR"),
    ]


def test_each_projection_is_compared_at_its_own_checkpoint(
    db: psycopg.Connection, feed: Feed, accounts: tuple[str, str, str]
) -> None:
    victim = accounts[0]
    late = feed.deposit(victim, "2.00", "tx-late")
    from projections.applier import PROJECTIONS, Applier

    Applier(db, [PROJECTIONS["balances"]]).apply_batch(late, late[-1].position)

    found = check(db, feed.fold)

    assert found.ok and found.lag_events == 1
    assert found.checkpoints["balances"] == late[-1].position


def test_only_accounts_moved_since_a_position_are_compared(
    db: psycopg.Connection, feed: Feed, accounts: tuple[str, str, str]
) -> None:
    victim, other, _ = accounts
    db.execute("UPDATE account_balances SET balance = 1 WHERE account_id = %s", (victim,))
    moved = feed.deposit(other, "1.00", "tx-moved")
    project(db, moved)
    db.execute("UPDATE account_statements SET amount = 2 WHERE account_id = %s", (other,))
    since = moved[0].position - 1

    violations = verify(db, feed.fold, since=since)

    assert {(v.table, v.account_id) for v in violations} == {("account_statements", other)}
