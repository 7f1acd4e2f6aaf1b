"""Migration 006: statement rows from before reversals were linked are projected again."""

from __future__ import annotations

from typing import Any

import psycopg

from projections.db import migrate
from projections.verify import check
from tests.support.feed import Feed, project
from tests.support.ids import new_account_id


def _as_before_006(db: psycopg.Connection[Any]) -> None:
    """The read side as a release before migration 006 left it: no link columns."""
    db.execute("ALTER TABLE account_statements DROP COLUMN reverses, DROP COLUMN reversed_by")
    db.execute("DELETE FROM schema_migrations WHERE version = 6")


def _statement_accounts(db: psycopg.Connection[Any], projection: str) -> set[str]:
    rows = db.execute(
        "SELECT account_id FROM projection_accounts WHERE projection = %s", (projection,)
    ).fetchall()
    return {r[0] for r in rows}


def test_accounts_with_reversals_are_projected_again_and_then_linked(
    db: psycopg.Connection[Any],
) -> None:
    feed, reversed_, plain = Feed(), new_account_id("rev"), new_account_id("plain")
    feed.open(reversed_)
    feed.deposit(reversed_, "5.00", "tx-1")
    feed.reverse(reversed_, "tx-1", "tx-2")
    feed.open(plain)
    feed.deposit(plain, "3.00", "tx-1")
    project(db, feed.events)
    _as_before_006(db)

    assert migrate(db) == [6]

    # The reversal's account starts over; the other keeps its rows and its place.
    rows = db.execute(
        "SELECT account_id, count(*) FROM account_statements GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert rows == [(plain, 1)]
    assert _statement_accounts(db, "statements") == {plain}
    position = db.execute(
        "SELECT position FROM projection_checkpoints WHERE projection = 'statements'"
    ).fetchone()
    assert position == (0,)

    # The runner reads $all again from the start: only the reversal's account is written.
    project(db, feed.events)

    links = db.execute(
        "SELECT account_id, transaction_id, reverses, reversed_by FROM account_statements"
        " ORDER BY account_id, revision"
    ).fetchall()
    assert sorted(links) == sorted(
        [
            (reversed_, "tx-1", None, "tx-2"),
            (reversed_, "tx-2", "tx-1", None),
            (plain, "tx-1", None, None),
        ]
    )
    assert check(db, feed.fold).ok


def test_a_read_side_without_reversals_keeps_its_checkpoint(db: psycopg.Connection[Any]) -> None:
    feed, plain = Feed(), new_account_id("plain")
    feed.open(plain)
    feed.deposit(plain, "3.00", "tx-1")
    project(db, feed.events)
    _as_before_006(db)

    migrate(db)

    position = db.execute(
        "SELECT position FROM projection_checkpoints WHERE projection = 'statements'"
    ).fetchone()
    assert position == (feed.events[-1].position,)
    assert check(db, feed.fold).ok
