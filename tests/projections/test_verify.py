"""verify(): sound read models pass; a tampered balance or a lost statement line is caught."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from projections.verify import verify, verify_rebuilt
from tests.support.feed import Feed, project
from tests.support.ids import new_account_id


@pytest.fixture
def feed(db: psycopg.Connection[Any]) -> Feed:
    """Two projected accounts with a few postings each."""
    feed = Feed()
    for acc in (new_account_id(), new_account_id()):
        feed.open(acc, limit="10.00")
        feed.deposit(acc, "5.00", "tx-1")
        feed.withdraw(acc, "7.00", "tx-2")
        feed.deposit(acc, "1.50", "tx-3")
        feed.reverse(acc, "tx-2", "tx-4")
    project(db, feed.events)
    return feed


def checks(violations: list[Any], account_id: str | None = None) -> set[str]:
    return {v.check for v in violations if account_id is None or v.account_id in (account_id, None)}


def test_sound_read_models_have_no_violations(db: psycopg.Connection, feed: Feed) -> None:
    assert verify(db, None) == []
    assert verify(db, feed.fold) == []


def test_a_tampered_balance_is_caught(db: psycopg.Connection, feed: Feed) -> None:
    victim = feed.events[0].account_id
    db.execute("UPDATE account_balances SET balance = balance + 1 WHERE account_id = %s", (victim,))

    violations = verify(db, feed.fold)

    assert checks(violations) == {"balance-vs-statement", "currency-totals", "write-model"}
    assert {v.account_id for v in violations} == {victim, None}


@pytest.mark.parametrize("revision", [1, 4], ids=["a middle line", "the last line"])
def test_a_deleted_statement_line_is_caught(
    db: psycopg.Connection, feed: Feed, revision: int
) -> None:
    victim = feed.events[0].account_id
    db.execute(
        "DELETE FROM account_statements WHERE account_id = %s AND revision = %s",
        (victim, revision),
    )

    violations = verify(db, feed.fold)

    found = checks(violations)
    assert {"currency-totals", "statement-revisions"} <= found
    assert found & {"statement-chain", "balance-vs-statement"}
    assert {v.account_id for v in violations} == {victim, None}
    without_fold = checks(verify(db, None))
    assert without_fold and "statement-revisions" not in without_fold


def test_a_read_model_behind_the_write_model_is_caught(db: psycopg.Connection) -> None:
    feed, acc = Feed(), new_account_id()
    feed.open(acc)
    feed.deposit(acc, "1.00", "tx-1")
    project(db, feed.events)
    feed.deposit(acc, "2.00", "tx-2")  # written, never projected

    violations = verify(db, feed.fold)

    assert checks(violations) == {"write-model", "statement-revisions"}
    assert verify(db, feed.fold, upto=feed.events[1].position) == []


def test_a_partial_rebuild_compares_daily_totals_only_when_every_account_is_checked(
    db: psycopg.Connection, feed: Feed
) -> None:
    names = ["balances", "daily_totals"]
    upto = feed.events[-1].position
    one = feed.events[0].account_id

    assert verify_rebuilt(db, feed.fold, names, "", upto) == []
    assert verify_rebuilt(db, feed.fold, names, "", upto, accounts=[]) == []
    assert verify_rebuilt(db, feed.fold, names, "", upto, accounts=[one]) == []


def test_tampered_daily_totals_are_caught_when_every_account_is_checked(
    db: psycopg.Connection, feed: Feed
) -> None:
    db.execute("UPDATE daily_totals SET deposited = deposited + 1")
    upto = feed.events[-1].position

    violations = verify_rebuilt(db, feed.fold, ["daily_totals"], "", upto)

    assert checks(violations) == {"daily-totals"}
